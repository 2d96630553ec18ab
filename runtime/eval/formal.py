"""The formal languages of the paper's Table 5 (after Irie et al. 2023), as string classification.

    parity    strings over {0,1} with an even number of 1s
    aa_star   (aa)*: even runs of a
    abab_star (abab)*
    anbn      a^n b^n,       n >= 1
    anbncn    a^n b^n c^n,   n >= 1
    shuffle2  Shuffle-2: strings over ( ) [ ] in which each bracket pair on its own is balanced
              (an interleaving of two Dyck words)

The first three are regular but not star-free (no counting needed, but a modular state);
the others need counters. Each task samples labelled strings in length bins: "bin0" is the
training range and "bin1" a longer one (defaults 1-50 and 51-100). Examples alternate between
members and non-members and cycle through the bins. Non-members are drawn three ways, so that
none is trivially told apart: a near miss of the language's own shape (a^n b^m with m != n,
an odd run, ...), a member with one symbol changed, and a uniform random string, each kept
only if it is really outside the language.

The example's prompt is the string followed by "?" (ASCII, one byte per symbol) and the verdict is
one character: "Y" (accept) or "N" (reject). A classifier can read meta["string"] and
meta["label"] instead. Bins: "bin" and "label".
"""

from __future__ import annotations

import re
from typing import Callable

from .common import Example, Task, exact_prefix, rng_for

BINS = {"bin0": (1, 50), "bin1": (51, 100)}
ACCEPT, REJECT = "Y", "N"


def _dyck_ok(s: str, opening: str, closing: str) -> bool:
    depth = 0
    for ch in s:
        if ch == opening:
            depth += 1
        elif ch == closing:
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


_PREDICATES: dict[str, Callable[[str], bool]] = {
    "parity": lambda s: set(s) <= {"0", "1"} and s.count("1") % 2 == 0,
    "aa_star": lambda s: re.fullmatch(r"(?:aa)*", s) is not None,
    "abab_star": lambda s: re.fullmatch(r"(?:abab)*", s) is not None,
    "anbn": lambda s: (n := len(s) // 2) >= 1 and s == "a" * n + "b" * n,
    "anbncn": lambda s: (n := len(s) // 3) >= 1 and s == "a" * n + "b" * n + "c" * n,
    "shuffle2": lambda s: set(s) <= set("()[]") and _dyck_ok(s, "(", ")") and _dyck_ok(s, "[", "]"),
}
ALPHABETS = {"parity": "01", "aa_star": "a", "abab_star": "ab", "anbn": "ab", "anbncn": "abc", "shuffle2": "()[]"}
# Which lengths have members: the length of every member is a multiple of this.
_PERIOD = {"parity": 1, "aa_star": 2, "abab_star": 4, "anbn": 2, "anbncn": 3, "shuffle2": 2}
LANGUAGES = tuple(_PREDICATES)


def member(language: str, s: str) -> bool:
    return _PREDICATES[language](s)


def _dyck(rng, pairs: int, opening: str, closing: str) -> list[str]:
    out, depth, left = [], 0, pairs
    while left or depth:
        if depth == 0 or (left and rng.random() < 0.5):
            out.append(opening)
            depth += 1
            left -= 1
        else:
            out.append(closing)
            depth -= 1
    return out


def positive(language: str, length: int, rng) -> str:
    if language == "parity":
        bits = [rng.choice("01") for _ in range(length)]
        if bits.count("1") % 2:
            i = rng.randrange(length)
            bits[i] = "1" if bits[i] == "0" else "0"
        return "".join(bits)
    if language == "aa_star":
        return "a" * length
    if language == "abab_star":
        return "abab" * (length // 4)
    if language == "anbn":
        return "a" * (length // 2) + "b" * (length // 2)
    if language == "anbncn":
        return "a" * (length // 3) + "b" * (length // 3) + "c" * (length // 3)
    # shuffle2: two Dyck words of random sizes, interleaved at random.
    pairs = length // 2
    first = rng.randint(0, pairs)
    x, y = _dyck(rng, first, "(", ")"), _dyck(rng, pairs - first, "[", "]")
    slots = sorted(rng.sample(range(length), len(x)))
    out, xi, yi, taken = [], 0, 0, set(slots)
    for i in range(length):
        if i in taken:
            out.append(x[xi])
            xi += 1
        else:
            out.append(y[yi])
            yi += 1
    return "".join(out)


def _near_miss(language: str, length: int, rng) -> str:
    if language == "parity":
        return positive(language, length, rng)[:-1] + rng.choice("01")
    if language == "aa_star":
        return "a" * length
    if language == "abab_star":
        return ("abab" * (length // 4 + 1))[:length]
    if language == "anbn":
        n = rng.randint(0, length)
        return "a" * n + "b" * (length - n)
    if language == "anbncn":
        i = rng.randint(0, length)
        j = rng.randint(0, length - i)
        return "a" * i + "b" * j + "c" * (length - i - j)
    # shuffle2: one pair closed in the wrong order or left open: a member with two symbols swapped.
    s = list(positive(language, length - length % 2, rng)) + list(rng.choice("()[]") * (length % 2))
    if len(s) >= 2:
        i, j = sorted(rng.sample(range(len(s)), 2))
        s[i], s[j] = s[j], s[i]
    return "".join(s)


def negative(language: str, length: int, rng) -> tuple[str, str]:
    """(a non-member of this length, how it was made), or ("", kind) if none was found."""
    alphabet = ALPHABETS[language]
    for _ in range(100):
        kind = rng.choice(("near", "edit", "random"))
        if kind == "near":
            s = _near_miss(language, length, rng)
        elif kind == "edit" and len(alphabet) > 1 and length % _PERIOD[language] == 0:
            s = list(positive(language, length, rng))
            i = rng.randrange(length)
            s[i] = rng.choice([c for c in alphabet if c != s[i]])
            s = "".join(s)
        else:
            kind = "random"
            s = "".join(rng.choice(alphabet) for _ in range(length))
        if len(s) == length and not member(language, s):
            return s, kind
    return "", "none"


class FormalLanguage(Task):
    bin_keys = ("bin", "label")

    def __init__(self, language: str = "parity", bins: dict[str, tuple[int, int]] | None = None):
        if language not in _PREDICATES:
            raise ValueError(f"unknown language {language!r}; known: {', '.join(LANGUAGES)}")
        self.language = language
        self.name = f"formal_{language}"
        self.bins = dict(bins or BINS)
        period = _PERIOD[language]
        for name, (lo, hi) in self.bins.items():
            if not 1 <= lo <= hi:
                raise ValueError(f"bin {name!r}: need 1 <= lo <= hi, got ({lo}, {hi})")
            if not self._lengths(lo, hi, True):
                raise ValueError(f"bin {name!r} ({lo}-{hi}) holds no member of {language} "
                                 f"(member lengths are multiples of {period})")

    def _lengths(self, lo: int, hi: int, label: bool) -> list[int]:
        period = _PERIOD[self.language]
        if label:
            return [n for n in range(lo, hi + 1) if n % period == 0]
        if self.language == "aa_star":
            return [n for n in range(lo, hi + 1) if n % 2]  # every even run of a is a member
        return list(range(lo, hi + 1))

    def example(self, index: int, seed: int) -> Example:
        rng = rng_for(self.name, sorted(self.bins.items()), seed, index)
        label = index % 2 == 0
        names = list(self.bins)
        bin_name = names[(index // 2) % len(names)]
        lengths = self._lengths(*self.bins[bin_name], label)
        while True:
            length = rng.choice(lengths)
            if label:
                s, kind = positive(self.language, length, rng), "member"
            else:
                s, kind = negative(self.language, length, rng)
            if s:
                break
        verdict = ACCEPT if label else REJECT
        return Example(prompt=(s + "?").encode("ascii"), choices=[ACCEPT, REJECT], answer=verdict,
                       meta={"string": s, "label": label, "bin": bin_name, "length": length,
                             "language": self.language, "kind": kind, "max_chars": 1})

    def match(self, example: Example, generated: str) -> float:
        return exact_prefix(example, generated)


def tasks(bins: dict[str, tuple[int, int]] | None = None) -> dict[str, FormalLanguage]:
    return {f"formal_{lang}": FormalLanguage(lang, bins) for lang in LANGUAGES}
