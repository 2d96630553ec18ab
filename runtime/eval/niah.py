"""Needle in a haystack, in the RULER variants that the paper's Table 1 reports (plus MK-2/MK-3).

    niah_single_1     one needle (word key, 7-digit number) in the repeated "noise" paragraph (passkey)
    niah_single_2     one needle (word key, number) in real prose
    niah_single_3     one needle (word key, UUID) in real prose
    niah_multikey_1   four needles with different keys in prose; one key is asked (MK-NIAH-1)
    niah_multikey_2   the haystack is made of distractor needles (word keys, numbers); one is asked
    niah_multikey_3   the same with UUID keys and UUID values
    niah_multivalue   four needles with the same key and different values; all four are asked (MV-NIAH)
    niah_multiquery   four needles with different keys; all four keys are asked (MQ-NIAH)

A needle reads "A special magic number for <key> is: <value>." The prompt is an instruction, the
haystack with the needles, and a question that ends in an answer prefix, so the value is the
continuation. Lengths are budgets for the whole prompt, counted by `count` (characters by default;
pass a tokenizer's `lambda s: len(tok.encode(s))` for tokens). Examples cycle through the lengths,
then through the depths (fraction of the haystack, in characters, where the needle starts; needle
of the single-needle variants only; multi-needle variants draw their depths at random).

Scoring. Generation (RULER): the share of expected values that appear in the generated text.
Log-likelihood: the values are ranked among distractors (the other needles' values in the prompt,
then fresh values of the same kind); recall@k for k expected values.
Prose comes from `runtime.data.documents(haystack)` ("shakespeare" by default; "wiki" works too);
tests pass a list of strings.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Callable, Sequence

from .common import Example, Task, contains_all, rng_for
from .haystack import Haystack, Window, fit, insert

LENGTHS = (1024, 2048, 4096, 8192, 16384)
DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)

_ADJECTIVES = (
    "amber", "brave", "calm", "dusty", "eager", "faint", "gentle", "hollow", "icy", "jolly", "keen", "lofty",
    "mellow", "narrow", "odd", "pale", "quiet", "rapid", "silent", "tidy", "upbeat", "vivid", "wary", "young",
    "zesty", "bold", "crisp", "damp", "early", "fancy", "grand", "hasty", "idle", "lucky", "merry", "noble",
)
_NOUNS = (
    "anchor", "basket", "candle", "desert", "engine", "falcon", "garden", "harbor", "island", "jacket",
    "kettle", "ladder", "meadow", "needle", "orchard", "pebble", "quarry", "ribbon", "saddle", "teapot",
    "umbrella", "valley", "wagon", "yarn", "zephyr", "bridge", "cellar", "doorway", "feather", "glacier",
    "hammer", "lantern", "mirror", "pillow", "river", "tower",
)


@dataclass(frozen=True)
class Variant:
    haystack: str  # "noise", "prose" or "needles"
    key: str  # "word" or "uuid"
    value: str  # "number" or "uuid"
    num_keys: int = 1  # needles with different keys
    num_values: int = 1  # needles (values) per key
    num_queries: int = 1  # keys asked


VARIANTS = {
    "niah_single_1": Variant("noise", "word", "number"),
    "niah_single_2": Variant("prose", "word", "number"),
    "niah_single_3": Variant("prose", "word", "uuid"),
    "niah_multikey_1": Variant("prose", "word", "number", num_keys=4),
    "niah_multikey_2": Variant("needles", "word", "number"),
    "niah_multikey_3": Variant("needles", "uuid", "uuid"),
    "niah_multivalue": Variant("prose", "word", "number", num_values=4),
    "niah_multiquery": Variant("prose", "word", "number", num_keys=4, num_queries=4),
}


def _key(rng, kind: str) -> str:
    if kind == "uuid":
        return _uuid(rng)
    return f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}"


def _value(rng, kind: str) -> str:
    return _uuid(rng) if kind == "uuid" else str(rng.randrange(1_000_000, 10_000_000))


def _uuid(rng) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def needle_text(key: str, value: str, value_kind: str) -> str:
    noun = "number" if value_kind == "number" else "uuid"
    return f"A special magic {noun} for {key} is: {value}."


def _join(keys: Sequence[str]) -> str:
    return keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + " and " + keys[-1]


class NIAH(Task):
    bin_keys = ("length", "depth")

    def __init__(self, variant: str = "niah_single_1", lengths: Sequence[int] = LENGTHS,
                 depths: Sequence[float] = DEPTHS, haystack: str | Sequence[str] | None = None,
                 count: Callable[[str], int] = len, num_distractors: int = 3):
        if variant not in VARIANTS:
            raise ValueError(f"unknown NIAH variant {variant!r}; known: {', '.join(VARIANTS)}")
        if not lengths or not depths or any(not 0.0 <= d <= 1.0 for d in depths):
            raise ValueError("lengths must be non-empty and depths in [0, 1]")
        self.name = variant
        self.variant = VARIANTS[variant]
        self.lengths, self.depths = tuple(lengths), tuple(depths)
        self.count = count
        self.num_distractors = num_distractors
        if self.variant.haystack == "noise":
            self.haystack = Haystack("noise")
        elif self.variant.haystack == "prose":
            self.haystack = Haystack(haystack if haystack is not None else "shakespeare")
        else:
            self.haystack = None  # made of distractor needles, per example

    def example(self, index: int, seed: int) -> Example:
        v = self.variant
        rng = rng_for(self.name, seed, index)
        length = self.lengths[index % len(self.lengths)]
        single = v.num_keys * v.num_values == 1
        noun = "number" if v.value == "number" else "uuid"
        nouns = noun + "s"

        keys: list[str] = []
        while len(keys) < v.num_keys:
            k = _key(rng, v.key)
            if k not in keys:
                keys.append(k)
        used_values: set[str] = set()

        def fresh_value() -> str:
            while True:
                val = _value(rng, v.value)
                if val not in used_values:
                    used_values.add(val)
                    return val

        needles = [(k, fresh_value()) for k in keys for _ in range(v.num_values)]
        rng.shuffle(needles)
        if single:
            depths = [self.depths[(index // len(self.lengths)) % len(self.depths)]]
        else:
            depths = sorted(rng.random() for _ in needles)
        queried = keys[: v.num_queries]
        answers = [val for k, val in needles if k in queried]
        if v.num_queries > 1:  # in the order the question names the keys
            answers = [val for k in queried for kk, val in needles if kk == k]

        plural = len(answers) > 1
        prefix = (f"A long text follows. Special magic {nouns} are hidden in it; remember them, "
                  f"you will be asked about them afterwards.\n\n")
        if plural:
            suffix = (f"\n\nWhat are all the special magic {nouns} for {_join(queried)} mentioned in the text above? "
                      f"The special magic {nouns} for {_join(queried)} are:")
        else:
            suffix = (f"\n\nWhat is the special magic {noun} for {queried[0]} mentioned in the text above? "
                      f"The special magic {noun} for {queried[0]} is:")
        needle_sentences = [needle_text(k, val, v.value) for k, val in needles]
        items = list(zip(depths, needle_sentences))

        if self.haystack is None:
            # A haystack of distractor needles: keys and values never repeat the real ones.
            taken_keys = set(keys)

            def distractor_needle() -> str:
                while True:
                    k = _key(rng, v.key)
                    if k not in taken_keys:
                        taken_keys.add(k)
                        return needle_text(k, fresh_value(), v.value)

            window = Window.of(distractor_needle)
        else:
            start = rng.randrange(len(self.haystack.sentences))
            forbidden = [val for _, val in needles] + keys
            window = self.haystack.window(start, exclude=lambda s: any(f in s for f in forbidden))

        def render(k: int) -> str:
            return prefix + insert(window.take(k), items)[0] + suffix

        prompt, k = fit(render, length, self.count)
        body, offsets = insert(window.take(k), items)
        start = len(prefix)
        # Distractors for log-likelihood scoring: the other values in the prompt first, then fresh ones.
        in_prompt = [val for _, val in needles if val not in answers]
        if self.haystack is None:
            in_prompt += [s.rsplit(" ", 1)[1][:-1] for s in window.take(k)]
        rng.shuffle(in_prompt)
        distractors = in_prompt[: self.num_distractors]
        while len(distractors) < self.num_distractors:
            distractors.append(fresh_value())
        choices = [" " + a for a in answers] + [" " + d for d in distractors]
        rng.shuffle(choices)
        answer = " " + ", ".join(answers)
        meta = {
            "length": length, "size": self.count(prompt), "variant": self.name,
            "haystack": self.haystack.name if self.haystack else "needles",
            "needles": needle_sentences, "keys": queried,
            "needle_offsets": [start + o for o in offsets],
            "haystack_span": (start, start + len(body)),
            "max_chars": len(answer) + 8,
        }
        if single:
            meta["depth"] = depths[0]
        else:
            meta["depths"] = depths
            meta["answers"] = [" " + a for a in answers]
        return Example(prompt=prompt, choices=choices, answer=answer, meta=meta)

    def match(self, example: Example, generated: str) -> float:
        return contains_all(example, generated)


def tasks(lengths: Sequence[int] = LENGTHS, **kw) -> dict[str, NIAH]:
    """Every variant with the same settings."""
    return {name: NIAH(name, lengths=lengths, **kw) for name in VARIANTS}
