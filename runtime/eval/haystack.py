"""Long filler text for needle and BABILong tasks: prose cut into sentences, facts inserted at depths.

A `Haystack` is a cyclic stream of sentences (from a packaged corpus, a list of documents, or the
repeated "noise" paragraph of the passkey task). `window(start)` reads it from a sentence index
onwards, skipping sentences a task must not see (ones that contain a needle's value, a bAbI name);
`fit` finds the longest window whose rendered prompt still fits a length budget, where length is
counted by any function (characters by default, tokens with a tokenizer's encode).
"""

from __future__ import annotations

import bisect
import functools
import re
from typing import Callable, Sequence

# The passkey-retrieval filler (Mohtashami & Jaggi 2023; RULER's "noise" haystack).
NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."

_MAX_SENTENCE = 300  # longer runs (verse without full stops) are cut at spaces, so depths stay precise


def split_sentences(text: str) -> list[str]:
    text = " ".join(text.split())
    out = []
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        while len(sentence) > _MAX_SENTENCE:
            cut = sentence.rfind(" ", 0, _MAX_SENTENCE)
            cut = cut if cut > 0 else _MAX_SENTENCE
            out.append(sentence[:cut])
            sentence = sentence[cut:].lstrip()
        if sentence:
            out.append(sentence)
    return out


@functools.lru_cache(maxsize=4)
def _corpus_sentences(name: str) -> list[str]:
    """A named corpus cut into sentences, once per process (every task of a run shares it)."""
    if name == "noise":
        return split_sentences(NOISE)
    from runtime.data import documents  # only when a corpus is really needed

    return [s for doc in documents(name, progress=False) for s in split_sentences(doc)]


class Haystack:
    """A cyclic sentence stream. `source`: "noise", a corpus name of runtime.data, or documents."""

    def __init__(self, source: str | Sequence[str] = "shakespeare"):
        self.source = source
        self._sentences: list[str] | None = None

    @property
    def name(self) -> str:
        return self.source if isinstance(self.source, str) else "inline"

    @property
    def sentences(self) -> list[str]:
        if self._sentences is None:
            if isinstance(self.source, str):
                self._sentences = _corpus_sentences(self.source)
            else:
                self._sentences = [s for doc in self.source for s in split_sentences(doc)]
            if not self._sentences:
                raise ValueError(f"haystack {self.name!r} has no text")
        return self._sentences

    def window(self, start: int, exclude: Callable[[str], bool] | None = None) -> "Window":
        return Window(self.sentences, start % len(self.sentences), exclude)


class Window:
    """Sentences of a haystack from `start` on (wrapping around), without excluded ones; grows lazily.

    `Window.of(next_sentence)` makes one from any sentence generator instead (a haystack of needles).
    """

    def __init__(self, sentences: list[str], start: int, exclude: Callable[[str], bool] | None):
        self._all, self._pos, self._exclude = sentences, start, exclude
        self._taken: list[str] = []
        self._skipped = 0
        self._next: Callable[[], str] = self._from_list

    @classmethod
    def of(cls, next_sentence: Callable[[], str]) -> "Window":
        w = cls([], 0, None)
        w._next = next_sentence
        return w

    def _from_list(self) -> str:
        while True:
            s = self._all[self._pos]
            self._pos = (self._pos + 1) % len(self._all)
            if self._exclude is None or not self._exclude(s):
                return s
            self._skipped += 1
            if self._skipped > len(self._all) and not self._taken:
                raise ValueError("every sentence of the haystack is excluded")

    def take(self, k: int) -> list[str]:
        while len(self._taken) < k:
            self._taken.append(self._next())
        return self._taken[:k]


def insert(sentences: Sequence[str], items: Sequence[tuple[float, str]]) -> tuple[str, list[int]]:
    """Join sentences with spaces, inserting each (depth, text) at the sentence boundary nearest to
    depth x the haystack's length in characters. Returns the text and each item's offset in it
    (items keep their order when they share a boundary)."""
    bounds = [0]
    for s in sentences:
        bounds.append(bounds[-1] + len(s) + 1)
    total = max(1, bounds[-1] - 1)
    slots = []
    for depth, _ in items:
        target = depth * total
        j = bisect.bisect_left(bounds, target)
        cands = [c for c in (j - 1, j) if 0 <= c <= len(sentences)]
        slots.append(min(cands, key=lambda c: (abs(bounds[c] - target), c)))
    order = sorted(range(len(items)), key=lambda i: (slots[i], i))
    pieces: list[str] = []
    offsets = [0] * len(items)
    pos = 0
    length = 0
    for i in order:
        while pos < slots[i]:
            pieces.append(sentences[pos])
            length += len(sentences[pos]) + 1
            pos += 1
        offsets[i] = length
        pieces.append(items[i][1])
        length += len(items[i][1]) + 1
    pieces.extend(sentences[pos:])
    return " ".join(pieces), offsets


def fit(render: Callable[[int], str], budget: int, count: Callable[[str], int] = len) -> tuple[str, int]:
    """The longest render(k) (k haystack sentences) with count(...) <= budget, and its k."""
    if count(render(0)) > budget:
        raise ValueError(f"a length of {budget} is too short for the task's fixed text ({count(render(0))})")
    lo, hi = 0, 1
    while count(render(hi)) <= budget:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # invariant: render(lo) fits, render(hi) does not
        mid = (lo + hi) // 2
        if count(render(mid)) <= budget:
            lo = mid
        else:
            hi = mid
    return render(lo), lo
