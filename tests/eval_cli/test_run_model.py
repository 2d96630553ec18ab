"""runtime.eval.run_model: scores equal a hand computation from the logits, batching and carried
state change nothing, a 16K haystack is read in chunks, greedy generation with state equals
recomputing the whole sequence."""
from __future__ import annotations

import itertools

import pytest
import torch
from eval_cli_common import TINY, TINY_DELTA, trained_run

from runtime.data.tokenizers import ByteTokenizer
from runtime.eval import make
from runtime.eval.common import Example, Task
from runtime.eval.run_model import MODES, RunModel, _cat_states, _split_state, run_task, task_mode
from runtime.train.build import compile_package
from runtime.train.generate import greedy_recompute

pytestmark = pytest.mark.usefixtures("one_thread")

EOD = 256


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    return trained_run(tmp_path_factory)


class TwoExamples(Task):
    """Two examples with two choices each (one with a bytes prompt, as the byte-level tasks have)."""

    name = "two"

    def example(self, index, seed):
        return [Example("the king", [" is dead", " lives"], " lives"),
                Example(b"thou art", [" fair", " foul"], " fair")][index]


def hand_ll(model, context: str, continuation: str) -> float:
    """Sum of log-probs of the continuation's bytes after EOD + context, from one forward pass."""
    ids = [EOD] + list(context.encode()) + list(continuation.encode())
    with torch.no_grad():
        logits = model(torch.tensor([ids]))
    logp = torch.log_softmax(logits[0].double(), dim=-1)
    n = 1 + len(context.encode())
    return sum(float(logp[n - 1 + j, ids[n + j]]) for j in range(len(continuation.encode())))


def test_score_fn_equals_hand_computation(run_dir):
    rm = RunModel.load(run_dir, device="cpu")
    assert rm.info["step"] == 3 and rm.info["tokenizer"] == "byte"
    task = TwoExamples()
    examples = task.examples(2)
    hand = {(ex.text, c): hand_ll(rm.model, ex.text, c) for ex in examples for c in ex.choices}
    for (ctx, cont), expected in hand.items():
        assert rm.score_fn(ctx, cont) == pytest.approx(expected, abs=1e-4)
    metrics = run_task(RunModel.load(run_dir, device="cpu"), task, 2, mode="ll")
    right = [max(ex.choices, key=lambda c: hand[(ex.text, c)]) == ex.answer for ex in examples]
    assert metrics["n"] == 2 and metrics["acc"] == sum(right) / 2 and metrics["mode"] == "ll"


def test_batching_changes_nothing_and_saves_calls(run_dir):
    requests = [("the king", " is dead"), ("the king", " lives"), ("thou", " art"), ("", "hello"),
                ("a" * 40, " b"), ("x", "")]
    one = RunModel.load(run_dir, device="cpu", batch_size=1)
    many = RunModel.load(run_dir, device="cpu", batch_size=8)
    a, b = one.loglikelihoods(requests), many.loglikelihoods(requests)
    assert [x[1] for x in a] == [x[1] for x in b]
    assert [x[0] for x in a] == pytest.approx([x[0] for x in b], abs=1e-4)
    assert a[-1] == (0.0, True)  # an empty continuation
    assert many.calls == 1 < one.calls == 5
    # score_fn after prefetch is a cache hit: no new forward call
    many.prefetch(requests)
    calls = many.calls
    assert many.score_fn("the king", " lives") == pytest.approx(a[1][0], abs=1e-4) and many.calls == calls


def _random_model(tmp_path, text, name):
    path = tmp_path / f"{name}.nsam"
    path.write_text(text)
    pkg = compile_package(path, tmp_path / name)
    torch.manual_seed(0)
    model = pkg.Model(pkg.Config()).double().eval()
    with torch.no_grad():  # sharper logits than at init, so greedy decoding is no near tie
        for p in model.parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 0.3)
    return model


@pytest.mark.parametrize("text", [TINY, TINY_DELTA], ids=["attention", "delta"])
def test_long_context_in_chunks_equals_one_call(tmp_path, text):
    model = _random_model(tmp_path, text, "m")
    requests = [("to be or not " * 12, " to be"), ("to be or not " * 12, " that"), ("short", " one"),
                ("", "a whole text of several words read from the start " * 2)]
    whole = RunModel(model, ByteTokenizer(), chunk=4096)
    chunked = RunModel(model, ByteTokenizer(), chunk=16, batch_size=2)
    a, b = whole.loglikelihoods(requests), chunked.loglikelihoods(requests)
    assert [x[0] for x in a] == pytest.approx([x[0] for x in b], abs=1e-9, rel=1e-9)
    for (ctx, cont), (ll, _) in zip(requests, a):
        assert ll == pytest.approx(hand_ll(model, ctx, cont), abs=1e-9, rel=1e-9)
    assert chunked.calls >= 10  # the 157-token context went in 16-token calls, read once for both


@pytest.mark.parametrize("text", [TINY, TINY_DELTA], ids=["attention", "delta"])
def test_greedy_generation_with_state_equals_recompute(tmp_path, text):
    model = _random_model(tmp_path, text, "g")
    rm = RunModel(model, ByteTokenizer(), chunk=16)
    prompt = [EOD] + list(b"To be, or not to be, that is")  # 30 tokens: two prompt calls
    new = list(itertools.islice(rm.greedy_tokens(prompt, 16), 16))
    assert new == greedy_recompute(model, prompt, 16)
    assert len(set(new)) > 1
    text_out = rm.generate_fn("To be, or not to be, that is", 10)
    assert len(text_out) <= 10
    assert text_out == ByteTokenizer().decode([t for t in new if t != EOD])[:10] or EOD in new[:10]
    stop = text_out[3:5]
    if stop and EOD not in new[:10]:
        cut = rm.generate("To be, or not to be, that is", max_tokens=16, until=[stop])
        assert cut == text_out[:text_out.index(stop)]


def test_a_16k_haystack_is_read_in_chunks(run_dir):
    task = make("niah_single_1", lengths=(16384,), depths=(0.5,))
    rm = RunModel.load(run_dir, device="cpu")
    assert rm.chunk == 1024
    metrics = run_task(rm, task, 1, seed=0, mode="ll")
    assert len(task.examples(1)[0].text) > 16000
    assert metrics["n"] == 1 and 0.0 <= metrics["acc"] <= 1.0
    # the context up to its last token read once (15 whole chunks and the rest: 16 calls), then
    # its 4 choices in one call
    assert rm.calls == 17
    assert set(metrics["bins"]["length"]) == {"16384"}


def test_modes():
    assert task_mode("mqar") == "both" and task_mode("piqa") == "ll" and task_mode("piqa", "gen") == "gen"
    with pytest.raises(ValueError):
        task_mode("mqar", "sample")
    from nslang.cli_eval import MODES as CLI_MODES

    assert CLI_MODES == MODES


# TINY_DELTA with its MLP as an in-context CMS level (the segment loop of runtime/model_base.py, as
# Hope has)
TINY_DELTA_CMS = (TINY_DELTA.replace("model tiny_delta {", "model tiny_delta_cms {")
                  .replace("  level outer frozen\n", "  level chunk every 16\n  level outer frozen\n")
                  .replace("memory mlp in outer { shape = swiglu; heads = shared; objective = task }",
                           "cms mlp { levels = [chunk]; shape = swiglu }"))
assert "cms mlp" in TINY_DELTA_CMS and "level chunk" in TINY_DELTA_CMS


@pytest.mark.parametrize("text", [TINY, TINY_DELTA, TINY_DELTA_CMS], ids=["attention", "delta", "delta+cms"])
def test_long_contexts_read_side_by_side_equal_one_at_a_time(tmp_path, text):
    """Long contexts with as many whole chunks are read in one batch and the state split by rows:
    the scores equal those of reading each alone, and the batch saves calls. A context with other
    whole chunks (the last) is read in its own batch."""
    model = _random_model(tmp_path, text, "b")
    contexts = ["to be or not to be " * 3, "that is the question" * 3, "whether tis nobler " * 3,
                "in the mind to suffer the slings " * 3]
    requests = [(c, cont) for c in contexts for cont in (" yes", " no")]
    alone = RunModel(model, ByteTokenizer(), chunk=16, batch_size=1)
    together = RunModel(model, ByteTokenizer(), chunk=16, batch_size=8)
    a, b = alone.loglikelihoods(requests), together.loglikelihoods(requests)
    assert [x[0] for x in a] == pytest.approx([x[0] for x in b], abs=1e-9, rel=1e-9)
    assert [x[1] for x in a] == [x[1] for x in b]
    # The first three contexts (58-61 tokens with EOD) are read together up to the cut (the last
    # segment boundary before the shortest one's final token: 57 tokens, 4 calls of 16; with the CMS
    # level's 16-token segments 48, 3 calls), then their six continuations in one call, each from
    # its own context's state; the fourth (100 tokens: cut 99 or 96) alone, then its two in one
    # call. At batch_size 1: each context alone, and one call per choice.
    first, fourth = (3, 6) if "cms" in text else (4, 7)
    assert together.calls == first + 1 + fourth + 1
    assert alone.calls == 3 * (first + 2) + fourth + 2


def test_cat_states_inverts_split_state():
    state = [{"attn": ((torch.arange(6.0).view(3, 2), torch.zeros(3, 4)), 7), "x": None,
              "s": torch.tensor(2.0)}]
    back = _cat_states(_split_state(state, 3))
    assert torch.equal(back[0]["attn"][0][0], state[0]["attn"][0][0]) and back[0]["attn"][1] == 7
    assert back[0]["x"] is None and back[0]["s"] == 2.0 and back[0]["attn"][0][1].shape == (3, 4)
    assert _cat_states([None, None]) is None


def test_split_state_gives_batch_one_rows():
    state = [{"attn": ((torch.arange(6.0).view(3, 2), torch.zeros(3, 4)), 7), "x": None,
              "s": torch.tensor(2.0)}]
    rows = _split_state(state, 3)
    assert len(rows) == 3 and rows[1][0]["attn"][0][0].tolist() == [[2.0, 3.0]]
    assert rows[2][0]["attn"][1] == 7 and rows[0][0]["x"] is None and rows[0][0]["s"] == 2.0
    with pytest.raises(ValueError, match="not batch-first"):
        _split_state([torch.zeros(2, 3)], 3)


@pytest.mark.parametrize("text", [TINY, TINY_DELTA, TINY_DELTA_CMS], ids=["attention", "delta", "delta+cms"])
def test_generate_many_equals_one_prompt_at_a_time(tmp_path, text):
    """Prompts of about one length are read side by side up to their cut, then generate in
    lockstep: the same texts as `generate`, in fewer calls; run_task's generation goes through it.
    The second prompt's tail is 3 tokens longer than the first's, so it reads them one per call
    while the first generates. An in-context CMS level learns nothing from tokens read one per call,
    so for that model the second prompt is as long as the first (both tails are read in one call)."""
    model = _random_model(tmp_path, text, "gm")
    second = "whether tis nobler " * 3 if "cms" in text else "that is the question" * 3
    prompts = [("to be or not to be " * 3, 12), (second, 12), ("short", 8),
               ("in the mind to suffer the slings " * 3, 10)]
    one = RunModel(model, ByteTokenizer(), chunk=16, batch_size=8)
    expected = [one.generate(p, max_chars=n) for p, n in prompts]
    calls_one = one.calls
    many = RunModel(model, ByteTokenizer(), chunk=16, batch_size=8)
    assert many.generate_many(prompts) == expected
    # the first two prompts' prefix read once and their 12 characters in one stream of calls
    assert many.calls < calls_one - 12
    assert any(len(t) > 0 for t in expected)

    class Prompts(Task):
        name = "prompts"

        def example(self, index, seed):
            prompt, n = prompts[index]
            return Example(prompt, [expected[index][:n]], expected[index][:n])

    metrics = run_task(RunModel(model, ByteTokenizer(), chunk=16, batch_size=8), Prompts(), 4, mode="gen")
    assert metrics["n"] == 4 and metrics["mode"] == "gen" and metrics["gen_acc"] == 1.0
