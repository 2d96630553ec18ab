"""Multi-query associative recall (MQAR, Zoology: Arora et al. 2023) on byte-level tokens.

A sequence of exactly `seq_len` characters: first the `num_pairs` key-value pairs, then the
queries, which repeat keys (each key at most once) at random places in a filler region, each
followed by its value, as in Zoology's teacher-forced layout (a query follows at least one filler):

    kqz:381 abf:907 ... xyo:114 |.....abf:907..........kqz:381...xyo:114....

Every query is one example: the prompt is the sequence up to and including the query's "key:",
the answer is the value. Keys are `key_len` lowercase letters, values `value_len` digits (both
sets without repeats inside a sequence), so one character is one byte-level token.

Scoring: generation is right when the first `value_len` characters are the value (exact match);
log-likelihood ranks the `num_pairs` values of the sequence (chance = 1 / num_pairs).
Bins: number of pairs, sequence length, and the key-to-query distance (powers of two, characters).

`num_pairs` and `seq_len` may be tuples: sequences cycle through their combinations
(pairs fastest), so one task sweeps a Zoology grid.
"""

from __future__ import annotations

import itertools
import string
from typing import Sequence

from .common import Example, Task, exact_prefix, rng_for


class MQAR(Task):
    name = "mqar"
    bin_keys = ("num_pairs", "seq_len", "distance")

    def __init__(self, num_pairs: int | Sequence[int] = 8, seq_len: int | Sequence[int] = 256,
                 num_queries: int | None = None, key_len: int = 3, value_len: int = 3,
                 key_chars: str = string.ascii_lowercase, value_chars: str = string.digits,
                 filler: str = "."):
        pairs = (num_pairs,) if isinstance(num_pairs, int) else tuple(num_pairs)
        lengths = (seq_len,) if isinstance(seq_len, int) else tuple(seq_len)
        self.grid = [(p, n) for n, p in itertools.product(lengths, pairs)]
        self.num_queries = num_queries
        self.key_len, self.value_len = key_len, value_len
        self.key_chars, self.value_chars = key_chars, value_chars
        if len(filler) != 1 or filler in key_chars + value_chars + ": |":
            raise ValueError("filler must be one character that no key, value or separator uses")
        self.filler = filler
        for p, n in self.grid:
            q = self._queries(p)
            if q > p:
                raise ValueError(f"num_queries ({q}) cannot exceed num_pairs ({p})")
            if len(key_chars) ** key_len < p or len(value_chars) ** value_len < p:
                raise ValueError(f"{p} pairs need more distinct keys/values than key_len/value_len allow")
            if self.min_length(p, q) > n:
                raise ValueError(f"seq_len {n} is too short for {p} pairs and {q} queries "
                                 f"(needs at least {self.min_length(p, q)})")

    def _queries(self, pairs: int) -> int:
        return pairs if self.num_queries is None else self.num_queries

    def min_length(self, pairs: int, queries: int) -> int:
        pair = self.key_len + 1 + self.value_len
        return pairs * (pair + 1) + 1 + queries * (pair + 1)  # pairs with spaces, "|", filler + query

    def sequence(self, index: int, seed: int) -> dict:
        """Sequence number `index`: its text and where each query is."""
        p, n = self.grid[index % len(self.grid)]
        q = self._queries(p)
        rng = rng_for(self.name, self.grid, self.num_queries, self.key_len, self.value_len, seed, index)

        def distinct(chars: str, width: int) -> list[str]:
            seen: list[str] = []
            while len(seen) < p:
                s = "".join(rng.choice(chars) for _ in range(width))
                if s not in seen:
                    seen.append(s)
            return seen

        keys, values = distinct(self.key_chars, self.key_len), distinct(self.value_chars, self.value_len)
        head = " ".join(f"{k}:{v}" for k, v in zip(keys, values)) + " |"
        pair_at = [i * (self.key_len + self.value_len + 2) for i in range(p)]
        asked = rng.sample(range(p), q)
        # Every query follows at least one filler character; the other filler characters are split
        # into q + 1 gaps uniformly (stars and bars).
        free = n - len(head) - q * (self.key_len + 2 + self.value_len)
        cuts = sorted(rng.sample(range(free + q), q))
        gaps = [c - i for i, c in enumerate(cuts)]
        gaps = [gaps[0]] + [b - a for a, b in zip(gaps, gaps[1:])] + [free - gaps[-1]] if q else [free]
        text, queries = head, []
        for j, which in enumerate(asked):
            text += self.filler * (gaps[j] + 1)
            queries.append({"pair": which, "key_at": len(text), "value_at": len(text) + self.key_len + 1})
            text += f"{keys[which]}:{values[which]}"
        text += self.filler * gaps[-1]
        return {"text": text, "keys": keys, "values": values, "pair_at": pair_at, "queries": queries,
                "num_pairs": p, "seq_len": n}

    def example(self, index: int, seed: int) -> Example:
        # Examples are numbered query by query: with q queries per sequence, example i is query
        # i % q of sequence i // q (q may differ along the grid, so walk it).
        seq = 0
        while True:
            q = self._queries(self.grid[seq % len(self.grid)][0])
            if index < q:
                break
            index -= q
            seq += 1
        s = self.sequence(seq, seed)
        query = s["queries"][index]
        value = s["values"][query["pair"]]
        distance = query["key_at"] - s["pair_at"][query["pair"]]
        choices = list(s["values"])
        rng_for(self.name, "choices", seed, seq, index).shuffle(choices)
        return Example(
            prompt=s["text"][: query["value_at"]].encode("ascii"), choices=choices, answer=value,
            meta={"num_pairs": s["num_pairs"], "seq_len": s["seq_len"], "sequence": seq, "query": index,
                  "key": s["keys"][query["pair"]], "distance": 1 << max(0, distance - 1).bit_length(),
                  "max_chars": self.value_len})

    def match(self, example: Example, generated: str) -> float:
        return exact_prefix(example, generated)
