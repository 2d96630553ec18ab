"""RULER needle-in-a-haystack: needles present once at the requested depth, length budgets, oracle, chance."""

import re

import pytest
from eval_common import PROSE, assert_chance, scorer_from, uniform_scorer

from runtime.eval.niah import NIAH, VARIANTS

LENGTHS = (1024, 4096, 16384)
NEEDLE = re.compile(r"A special magic (?:number|uuid) for (\S+) is: (\S+)\.")


def read(prompt: str) -> tuple[str, str, str]:
    """Independent reading of a prompt: (instruction, haystack, question)."""
    parts = prompt.split("\n\n")
    assert len(parts) == 3, "the haystack must not contain a blank line"
    return parts[0], parts[1], parts[2]


def solve(prompt: str) -> list[str]:
    """The values a perfect reader would give: the needles of the asked keys, in the asked order."""
    _, body, question = read(prompt)
    asked = re.search(r"for (.+) mentioned in the text above\?", question).group(1)
    keys = re.split(r", | and ", asked)
    found = NEEDLE.findall(body)
    return [v for k in keys for kk, v in found if kk == k]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_oracle_scores_100_percent_and_lengths_fit(variant):
    task = NIAH(variant, lengths=LENGTHS, haystack=PROSE)
    exs = task.examples(15, seed=0)
    for ex in exs:
        assert len(ex.text) <= ex.meta["length"]
        # Filled up to the budget, within one haystack sentence.
        assert len(ex.text) > ex.meta["length"] - 350
        values = solve(ex.text)
        assert values == [a.strip() for a in ex.answers]
        assert ex.answer == " " + ", ".join(values)
        assert all(a in ex.choices for a in ex.answers) and len(set(ex.choices)) == len(ex.choices)
    out = task.score(exs, score_fn=scorer_from(lambda ctx: set(solve(ctx))),
                     generate_fn=lambda p, n: " " + ", ".join(solve(p)))
    assert out["acc"] == 1.0 and out["gen_acc"] == 1.0
    assert set(out["bins"]["length"]) == {str(n) for n in LENGTHS}
    assert all(b["n"] == 5 for b in out["bins"]["length"].values())


@pytest.mark.parametrize("variant", ["niah_single_1", "niah_single_2", "niah_single_3"])
def test_single_needle_is_present_once_at_the_requested_depth(variant):
    depths = (0.0, 0.1, 0.5, 0.9, 1.0)
    task = NIAH(variant, lengths=(2048, 16384), depths=depths, haystack=PROSE)
    seen = set()
    for ex in task.examples(20, seed=7):
        _, body, _ = read(ex.text)
        (needle,) = ex.meta["needles"]
        key, value = NEEDLE.fullmatch(needle).groups()
        assert body.count(needle) == 1 and ex.text.count(value) == 1
        assert len(NEEDLE.findall(ex.text)) == 1
        # Depth = where the needle starts, as a share of the haystack without the needle.
        rest = len(body) - len(needle) - 1
        actual = body.index(needle) / rest
        longest = max(len(s) for s in re.split(r"(?<=[.!?]) ", body.replace(needle, "")))
        assert abs(actual - ex.meta["depth"]) <= (longest + 1) / rest
        assert ex.meta["needle_offsets"] == [ex.text.index(needle)]
        seen.add((ex.meta["length"], ex.meta["depth"]))
    assert seen == {(n, d) for n in (2048, 16384) for d in depths}


def test_noise_haystack_and_multikey_distractors():
    ex = NIAH("niah_single_1", lengths=(1024,)).examples(1, seed=0)[0]
    _, body, _ = read(ex.text)
    assert body.replace(ex.meta["needles"][0], "").count("The grass is green.") >= 8
    mk = NIAH("niah_multikey_2", lengths=(4096,)).examples(3, seed=0)
    for ex in mk:
        found = NEEDLE.findall(read(ex.text)[1])
        assert len(found) > 40 and len({k for k, _ in found}) == len(found)  # distractors never reuse a key
        in_prompt = {v for _, v in found}
        assert all(c.strip() in in_prompt for c in ex.choices)  # hard distractors: values that are in the text


def test_uniform_guesser_is_at_chance():
    task = NIAH("niah_multikey_1", lengths=(1024,), haystack=PROSE)
    exs = task.examples(400, seed=1)
    out = task.score(exs, score_fn=uniform_scorer(1))
    assert_chance(out["acc"], [1 / len(ex.choices) for ex in exs])
    mv = NIAH("niah_multivalue", lengths=(1024,), haystack=PROSE)
    exs = mv.examples(200, seed=1)
    # recall@4 among 7 candidates: each answer is in the top 4 with chance 4/7 (taken as independent,
    # which widens the band: the four are negatively correlated).
    assert_chance(mv.score(exs, score_fn=uniform_scorer(2))["acc"], [4 / 7] * (4 * len(exs)))


def test_token_budgets_and_determinism():
    words = lambda s: len(s.split())  # noqa: E731  (any length function: a tokenizer's encode, here words)
    task = NIAH("niah_single_2", lengths=(300, 1200), haystack=PROSE, count=words)
    exs = task.examples(6, seed=2)
    for ex in exs:
        assert ex.meta["length"] - 40 < words(ex.text) <= ex.meta["length"] and ex.meta["size"] == words(ex.text)
    assert exs == task.examples(6, seed=2) and exs[:2] == task.examples(2, seed=2)
    assert exs != task.examples(6, seed=3)


def test_bad_parameters():
    with pytest.raises(ValueError, match="unknown NIAH variant"):
        NIAH("niah_single_9")
    with pytest.raises(ValueError, match="too short"):
        NIAH("niah_single_2", lengths=(50,), haystack=PROSE).examples(1)
