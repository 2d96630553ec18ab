"""The shared scorer: choice ranking, length normalisation, recall@k, per-choice contexts, bins, perplexity."""

import math

import pytest

from runtime.eval.common import Example, contains_all, evaluate, exact_prefix, first_word, score_choices


def test_acc_and_acc_norm_rank_differently():
    ex = Example("q", [" a", " bbbbbbbbbb"], " bbbbbbbbbb")
    # Raw log-likelihood prefers the short choice, per character the long one.
    lls = {" a": -2.0, " bbbbbbbbbb": -5.0}
    out = score_choices(ex, lambda ctx, cont: lls[cont])
    assert out == {"acc": 0.0, "acc_norm": 1.0, "chance": 0.5}


def test_recall_at_k_for_several_answers():
    ex = Example("q", [" 1", " 2", " 3", " 4"], " 1, 2", {"answers": [" 1", " 2"]})
    lls = {" 1": -1.0, " 2": -9.0, " 3": -2.0, " 4": -8.0}
    out = score_choices(ex, lambda ctx, cont: lls[cont])
    assert out["acc"] == 0.5 and out["chance"] == 0.5


def test_per_choice_contexts_and_gold_index():
    # WinoGrande: the same continuation after two contexts; the gold index says which is right.
    ex = Example("A so _ won.", [" won.", " won."], " won.", {"contexts": ["A so A", "A so B"], "gold": 1})
    seen = []

    def ll(ctx, cont):
        seen.append(ctx)
        return 0.0 if ctx.endswith("B") else -1.0
    assert score_choices(ex, ll)["acc"] == 1.0 and seen == ["A so A", "A so B"]


def test_evaluate_bins_generation_and_perplexity():
    exs = [Example("x", None, " cat", {"length": 1024}), Example("y", None, " dog", {"length": 2048})]
    out = evaluate(exs, score_fn=lambda c, x: -2.0, generate_fn=lambda p, n: " cat" if p == "x" else " cow",
                   match=first_word, bin_keys=("length",))
    assert out["n"] == 2 and out["ll"] == -2.0 and math.isclose(out["ppl"], math.exp(2.0))
    assert out["gen_acc"] == 0.5
    assert list(out["bins"]["length"]) == ["1024", "2048"]
    assert out["bins"]["length"]["1024"]["gen_acc"] == 1.0 and out["bins"]["length"]["2048"]["gen_acc"] == 0.0


def test_generation_is_cut_to_max_chars():
    ex = Example(b"abc:", None, "123", {"max_chars": 3})
    got = []
    out = evaluate([ex], generate_fn=lambda p, n: got.append((p, n)) or "1234567", match=exact_prefix)
    assert got == [("abc:", 3)] and out["gen_acc"] == 1.0


def test_matchers():
    ex = Example("p", None, " kitchen")
    assert first_word(ex, " Kitchen. And more") == 1.0 and first_word(ex, "") == 0.0
    multi = Example("p", None, " 1, 2", {"answers": [" 111", " 222"]})
    assert contains_all(multi, "the numbers are 222 and 333") == 0.5


def test_needs_a_model():
    with pytest.raises(ValueError):
        evaluate([Example("p", None, "a")])
