"""What every evaluation family shares: the example type, the two model interfaces, and the scorer.

A task yields `Example`s deterministically from a seed. A model is seen through one of two callables:

    score_fn(context: str, continuation: str) -> float     log-likelihood (natural log) of the continuation
    generate_fn(prompt: str, max_chars: int) -> str         greedy text after the prompt, at most max_chars

Choice mode (`score_fn`, examples with `choices`): every choice is scored as a continuation of the
prompt (or of its own context in `meta["contexts"]`, as WinoGrande needs), and the best one is the
prediction. `acc` ranks by the raw log-likelihood, `acc_norm` by log-likelihood per character of
the continuation (the usual length normalisation). An example with several answers
(`meta["answers"]`, multi-value / multi-query needles) is scored by recall@k: the share of its k
answers among the k best-scored choices.

Generation mode (`generate_fn`): the model writes at most `meta["max_chars"]` characters after the
prompt and the task's `match` function turns (example, generated text) into a score in [0, 1]
(`gen_acc`). Tasks define what counts as right (an exact value, the first word, every needle).

Choices are the exact continuation strings, leading space included where the prompt wants one;
`answer` is one of them (with several answers, each of `meta["answers"]` is, and `answer` is
them joined, the text a generator should write). Prompts may be bytes (byte-level tasks); they are decoded as UTF-8
before they reach the model, and the byte-level tasks here are plain ASCII, so a character is a byte.

`evaluate` returns a flat dict of metrics plus per-bin breakdowns: `{"n", "acc", "acc_norm",
"chance", "gen_acc", ..., "bins": {key: {value: {"n", "acc", ...}}}}` for every key the task lists
in `bin_keys` (length, depth, bin, task ...).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

ScoreFn = Callable[[str, str], float]
GenerateFn = Callable[[str, int], str]
MatchFn = Callable[["Example", str], float]


@dataclass(frozen=True)
class Example:
    """One evaluation item.

    prompt:  what the model reads (str, or bytes for byte-level tasks)
    choices: the candidate continuations (exact strings), or None for generation-only items
    answer:  the right continuation (one of `choices` when there are choices)
    meta:    everything else: bins (length, depth ...), `answers` for multi-answer items,
             `contexts` (one context per choice), `gold` (the right choice's index, or indices,
             where the choice text alone does not say), `max_chars` for generation, task facts
    """

    prompt: bytes | str
    choices: list[str] | None
    answer: str
    meta: dict = field(default_factory=dict, compare=True, hash=False)

    @property
    def text(self) -> str:
        return self.prompt.decode("utf-8") if isinstance(self.prompt, bytes) else self.prompt

    @property
    def answers(self) -> list[str]:
        return list(self.meta.get("answers") or [self.answer])


def rng_for(*parts) -> random.Random:
    """A generator seeded by a tuple of names and numbers.

    Example i of a task is drawn from rng_for(task, params, seed, i), so the first k examples of
    `examples(n, seed)` do not depend on n, and the stream is the same on every machine and run
    (a str seed goes through SHA-512, not through Python's salted hash).
    """
    return random.Random(":".join(map(str, parts)))


# ---------------------------------------------------------------------------------------------
# Matching generated text.

def exact_prefix(example: Example, generated: str) -> float:
    """Right if the first len(answer) characters are the answer (values of a fixed width)."""
    return float(generated[: len(example.answer)] == example.answer)


def first_word(example: Example, generated: str) -> float:
    """Right if the first word (case and surrounding punctuation ignored) is the answer."""
    words = generated.split()
    if not words:
        return 0.0
    strip = ".,;:!?\"'()[]"
    return float(words[0].strip(strip).lower() == example.answer.strip().strip(strip).lower())


def contains_all(example: Example, generated: str) -> float:
    """RULER's string match: the share of the expected strings that occur in the output."""
    wanted = [a.strip() for a in example.answers]
    low = generated.lower()
    return sum(a.lower() in low for a in wanted) / len(wanted)


# ---------------------------------------------------------------------------------------------
# Scoring.

def score_choices(example: Example, score_fn: ScoreFn) -> dict:
    """acc / acc_norm (recall@k for k answers) of one example with choices."""
    choices = example.choices
    if not choices:
        raise ValueError("score_choices needs an example with choices")
    contexts = example.meta.get("contexts") or [example.text] * len(choices)
    lls = [float(score_fn(ctx, cont)) for ctx, cont in zip(contexts, choices)]
    gold_index = example.meta.get("gold")
    if gold_index is not None:  # by position: WinoGrande's choices are the same text in two contexts
        gold = {gold_index} if isinstance(gold_index, int) else set(gold_index)
    else:
        gold = {choices.index(a) for a in example.answers}
    k = len(gold)

    def recall(values: Sequence[float]) -> float:
        # Ties go to the earlier choice: a constant score_fn scores the share of examples whose
        # answer comes first (chance where a task shuffles its choices or balances its labels).
        top = sorted(range(len(values)), key=lambda i: -values[i])[:k]
        return len(gold.intersection(top)) / k

    norm = [ll / max(1, len(c)) for ll, c in zip(lls, choices)]
    return {"acc": recall(lls), "acc_norm": recall(norm), "chance": k / len(choices)}


def evaluate(examples: Iterable[Example], *, score_fn: ScoreFn | None = None,
             generate_fn: GenerateFn | None = None, match: MatchFn = exact_prefix,
             bin_keys: Sequence[str] = (), max_chars: int | None = None) -> dict:
    """Score examples with a log-likelihood function and/or a generator; aggregate by bins.

    Without choices, `score_fn` gives the mean log-likelihood of the answer (`ll`) and its
    perplexity per example (`ppl` = exp(-mean ll), as LAMBADA reports it).
    """
    if score_fn is None and generate_fn is None:
        raise ValueError("give score_fn (log-likelihood) or generate_fn (generation), or both")
    rows = []
    for ex in examples:
        row: dict = {}
        if score_fn is not None:
            if ex.choices:
                row.update(score_choices(ex, score_fn))
            else:
                row["ll"] = float(score_fn(ex.text, ex.answer))
        if generate_fn is not None:
            limit = int(ex.meta.get("max_chars") or max_chars or max(len(a) for a in ex.answers))
            out = generate_fn(ex.text, limit)
            row["gen_acc"] = float(match(ex, out[:limit]))
        rows.append((ex, row))
    result = _aggregate([r for _, r in rows])
    bins: dict = {}
    for key in bin_keys:
        groups: dict = {}
        for ex, row in rows:
            if key in ex.meta:
                groups.setdefault(_bin_label(ex.meta[key]), []).append(row)
        bins[key] = {label: _aggregate(group) for label, group in sorted(groups.items(), key=_bin_order)}
    if bins:
        result["bins"] = bins
    return result


def _aggregate(rows: list[dict]) -> dict:
    out: dict = {"n": len(rows)}
    for key in ("acc", "acc_norm", "chance", "gen_acc", "ll"):
        values = [r[key] for r in rows if key in r]
        if values:
            out[key] = sum(values) / len(values)
    if "ll" in out:
        out["ppl"] = math.exp(-out["ll"])
    return out


def _bin_label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _bin_order(item):
    label = item[0]
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


class Task:
    """Base class of a task family: `examples(n, seed)` and `score(examples, score_fn=, generate_fn=)`.

    Subclasses set `name`, `bin_keys`, `match`, and implement `example(i, seed)`.
    """

    name: str = "task"
    bin_keys: tuple[str, ...] = ()

    def example(self, index: int, seed: int) -> Example:
        raise NotImplementedError

    def examples(self, n: int, seed: int = 0) -> list[Example]:
        return [self.example(i, seed) for i in range(n)]

    def match(self, example: Example, generated: str) -> float:
        return exact_prefix(example, generated)

    def score(self, examples: Iterable[Example], score_fn: ScoreFn | None = None,
              generate_fn: GenerateFn | None = None) -> dict:
        out = evaluate(examples, score_fn=score_fn, generate_fn=generate_fn, match=self.match,
                       bin_keys=self.bin_keys)
        out["task"] = self.name
        return out

    def run(self, n: int, seed: int = 0, score_fn: ScoreFn | None = None,
            generate_fn: GenerateFn | None = None) -> dict:
        """Draw n examples and score them in one call."""
        return self.score(self.examples(n, seed), score_fn=score_fn, generate_fn=generate_fn)
