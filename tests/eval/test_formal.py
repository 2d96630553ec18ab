"""Formal languages: samples are members / non-members (checked by independent code), bins, balance, chance."""

import re
from collections import Counter

import pytest
from eval_common import assert_chance, uniform_scorer

from runtime.eval.formal import LANGUAGES, FormalLanguage


def _balanced(s, opening, closing):
    depth = 0
    for ch in s:
        depth += (ch == opening) - (ch == closing)
        if depth < 0:
            return False
    return depth == 0


def _counts_equal(s, letters):
    m = re.fullmatch("".join(f"({c}+)" for c in letters), s)
    return m is not None and len({len(g) for g in m.groups()}) == 1


# Written here, independently of runtime/eval/formal.py.
CHECK = {
    "parity": lambda s: re.fullmatch(r"[01]*", s) is not None and s.count("1") % 2 == 0,
    "aa_star": lambda s: re.fullmatch(r"(aa)*", s) is not None,
    "abab_star": lambda s: re.fullmatch(r"(abab)*", s) is not None,
    "anbn": lambda s: _counts_equal(s, "ab"),
    "anbncn": lambda s: _counts_equal(s, "abc"),
    "shuffle2": lambda s: re.fullmatch(r"[()\[\]]*", s) is not None
    and _balanced(s, "(", ")") and _balanced(s, "[", "]"),
}
ALPHABET = {"parity": "01", "aa_star": "a", "abab_star": "ab", "anbn": "ab", "anbncn": "abc", "shuffle2": "()[]"}


@pytest.mark.parametrize("language", LANGUAGES)
def test_samples_are_labelled_right_and_in_their_bin(language):
    bins = {"bin0": (1, 40), "bin1": (41, 120)}
    task = FormalLanguage(language, bins)
    exs = task.examples(400, seed=0)
    for ex in exs:
        s = ex.meta["string"]
        assert ex.text == s + "?" and set(s) <= set(ALPHABET[language])
        assert CHECK[language](s) == ex.meta["label"], (s, ex.meta)
        assert ex.answer == ("Y" if ex.meta["label"] else "N") and ex.choices == ["Y", "N"]
        lo, hi = bins[ex.meta["bin"]]
        assert lo <= len(s) <= hi and ex.meta["length"] == len(s)
    counts = Counter((ex.meta["bin"], ex.meta["label"]) for ex in exs)
    assert counts == {(b, lab): 100 for b in bins for lab in (True, False)}
    kinds = Counter(ex.meta["kind"] for ex in exs if not ex.meta["label"])
    # Non-members are not all random noise: near misses (and, where a symbol can change, edits) occur.
    assert kinds["near"] > 20 and (language in ("aa_star", "parity") or kinds["edit"] + kinds["near"] > 60)


@pytest.mark.parametrize("language", LANGUAGES)
def test_oracle_and_guessers(language):
    task = FormalLanguage(language)
    exs = task.examples(400, seed=1)
    oracle = task.score(exs, generate_fn=lambda p, n: "Y" if CHECK[language](p[:-1]) else "N")
    assert oracle["gen_acc"] == 1.0
    assert oracle["bins"]["bin"]["bin1"]["gen_acc"] == 1.0
    guess = task.score(exs, score_fn=uniform_scorer(3))
    assert_chance(guess["acc"], [0.5] * len(exs))
    # A constant verdict is right exactly half the time: the labels are balanced.
    assert task.score(exs, generate_fn=lambda p, n: "Y")["gen_acc"] == 0.5


def test_deterministic_from_the_seed():
    task = FormalLanguage("shuffle2")
    assert task.examples(30, seed=4) == task.examples(30, seed=4)
    assert task.examples(30, seed=4)[:9] == task.examples(9, seed=4)
    assert task.examples(30, seed=4) != task.examples(30, seed=5)


def test_bins_without_members_are_refused():
    with pytest.raises(ValueError, match="no member"):
        FormalLanguage("anbncn", {"bin0": (4, 5)})
    with pytest.raises(ValueError, match="unknown language"):
        FormalLanguage("dyck3")
