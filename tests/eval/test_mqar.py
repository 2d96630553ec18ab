"""MQAR: layout and length, answers recoverable from the prompt, chance for a blind guesser, determinism."""

import re

import pytest
from eval_common import assert_chance, scorer_from, uniform_scorer

from runtime.eval.mqar import MQAR


def solve(prompt: str) -> str:
    """Independent reader: the prompt ends with "key:"; the pairs before "|" say the value."""
    key = re.search(r"([a-z]+):$", prompt).group(1)
    head = prompt.split("|", 1)[0]
    return re.search(rf"(?:^| ){key}:(\d+) ", head).group(1)


def test_sequences_have_the_requested_shape():
    task = MQAR(num_pairs=(4, 16), seq_len=(320, 512))
    for i in range(8):
        s = task.sequence(i, seed=3)
        p, n = s["num_pairs"], s["seq_len"]
        assert len(s["text"]) == n
        head, tail = s["text"].split("|")
        pairs = re.findall(r"([a-z]{3}):(\d{3})", head)
        assert len(pairs) == p and len({k for k, _ in pairs}) == p and len({v for _, v in pairs}) == p
        queries = re.findall(r"([a-z]{3}):(\d{3})", tail)
        assert len(queries) == p and len({k for k, _ in queries}) == p  # every key asked once
        assert all(dict(pairs)[k] == v for k, v in queries)
        assert set(re.sub(r"[a-z]{3}:\d{3}", "", tail)) <= {"."}
    assert {(task.sequence(i, 0)["num_pairs"], task.sequence(i, 0)["seq_len"]) for i in range(4)} == \
        {(4, 320), (16, 320), (4, 512), (16, 512)}


def test_oracle_scores_100_percent_both_ways():
    task = MQAR(num_pairs=8, seq_len=256)
    exs = task.examples(200, seed=1)
    assert all(ex.text.endswith(":") and ex.answer in ex.choices and len(ex.choices) == 8 for ex in exs)
    out = task.score(exs, score_fn=scorer_from(lambda ctx: {solve(ctx)}), generate_fn=lambda p, n: solve(p) + "!!")
    assert out["acc"] == 1.0 and out["gen_acc"] == 1.0
    assert set(out["bins"]["num_pairs"]) == {"8"} and sum(b["n"] for b in out["bins"]["distance"].values()) == 200


def test_uniform_guesser_is_at_chance():
    task = MQAR(num_pairs=(4, 8), seq_len=256)
    exs = task.examples(600, seed=2)
    out = task.score(exs, score_fn=uniform_scorer(0))
    assert_chance(out["acc"], [1 / len(ex.choices) for ex in exs])
    assert out["chance"] == pytest.approx(sum(1 / len(ex.choices) for ex in exs) / len(exs))


def test_deterministic_from_the_seed():
    task = MQAR(num_pairs=8, seq_len=256)
    assert task.examples(20, seed=5) == task.examples(20, seed=5)
    assert task.examples(20, seed=5)[:7] == task.examples(7, seed=5)
    assert task.examples(20, seed=5) != task.examples(20, seed=6)


def test_too_short_sequences_are_refused():
    with pytest.raises(ValueError, match="too short"):
        MQAR(num_pairs=32, seq_len=128)
    with pytest.raises(ValueError, match="cannot exceed"):
        MQAR(num_pairs=4, num_queries=5, seq_len=512)
