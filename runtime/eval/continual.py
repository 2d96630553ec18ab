"""Continual-learning streams: a sequence of tasks, an accuracy matrix, and forgetting.

A `ContinualStream` holds tasks, each with training and test examples. `run(train_fn, score_fn=...)`
calls the trainer's `train_fn(i, task)` ("train on task i", any code that updates the model), then
tests the model on every task seen so far, and returns a `ContinualResult`:

    matrix[i][j]   accuracy on task j after training on tasks 0..i (None for j > i)
    final_accuracy mean of the last row
    forgetting     mean over tasks j < T-1 of (best accuracy on j after any step before the last)
                   minus (accuracy on j at the end)                    (Chaudhry et al. 2018)
    bwt            backward transfer: mean over j < T-1 of matrix[T-1][j] - matrix[j][j]

`score_fn` / `generate_fn` are the interfaces of `common.py` and must see the model as it is now
(a closure over the model does).

Two streams:

`class_incremental(...)`: topic classification over the packaged Wikipedia leads (`records("wiki")`,
11 topics; any labelled corpus works: `label_key="genre"` with "brown"). The topics, in a seeded
order, are split into tasks of `classes_per_task` (the remainder joins the last task). Every test
example is "<text>\nTopic:" with the topic names as continuations. Class-incremental (the default
`scenario="class"`): the choices are all topics seen so far, so old classes compete with new ones.
`scenario="task"`: only the task's own topics.

`new_language(...)`: KJV (English) then Reina-Valera 1909 (Spanish), verse-aligned (same
versification): task "en" and task "es" test the language itself (pick the true second half of a
held-out verse among halves of other verses), task "en-es" is translation (pick the Spanish verse
of an English one). Chapters are split into train and test chapters, so no test verse is trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from .common import Example, GenerateFn, ScoreFn, evaluate, rng_for


@dataclass
class ContinualTask:
    name: str
    train: list[Example]
    test: list[Example]
    classes: tuple[str, ...] = ()  # the new classes of this task (class-incremental streams)


TrainFn = Callable[[int, ContinualTask], None]


@dataclass
class ContinualResult:
    names: list[str]
    matrix: list[list[float | None]]
    metric: str = "acc"
    details: list[list[dict]] = field(default_factory=list)

    @property
    def final_accuracy(self) -> float:
        last = self.matrix[-1]
        return sum(last) / len(last)

    @property
    def average_accuracies(self) -> list[float]:
        """Mean accuracy over the tasks seen so far, after each step."""
        return [sum(row[: i + 1]) / (i + 1) for i, row in enumerate(self.matrix)]

    @property
    def forgetting(self) -> float:
        return forgetting(self.matrix)

    @property
    def bwt(self) -> float:
        t = len(self.matrix)
        if t < 2:
            return 0.0
        return sum(self.matrix[-1][j] - self.matrix[j][j] for j in range(t - 1)) / (t - 1)

    def to_dict(self) -> dict:
        return {"names": self.names, "metric": self.metric, "matrix": self.matrix,
                "final_accuracy": self.final_accuracy, "average_accuracies": self.average_accuracies,
                "forgetting": self.forgetting, "bwt": self.bwt}


def forgetting(matrix: Sequence[Sequence[float | None]]) -> float:
    """Mean over tasks j < T-1 of max_{j <= i < T-1} matrix[i][j] - matrix[T-1][j]; 0 for one task."""
    t = len(matrix)
    if t < 2:
        return 0.0
    drops = [max(matrix[i][j] for i in range(j, t - 1)) - matrix[t - 1][j] for j in range(t - 1)]
    return sum(drops) / len(drops)


def _prefix_match(example: Example, generated: str) -> float:
    return float(generated.strip().startswith(example.answer.strip()))


class ContinualStream:
    def __init__(self, name: str, tasks: Sequence[ContinualTask], scenario: str = "fixed"):
        """scenario: "class" (choices = classes seen so far), "task" (the task's classes), or
        "fixed" (test examples carry their own choices)."""
        if scenario not in ("class", "task", "fixed"):
            raise ValueError("scenario must be 'class', 'task' or 'fixed'")
        self.name, self.tasks, self.scenario = name, list(tasks), scenario

    def test_examples(self, j: int, after: int) -> list[Example]:
        """Task j's test examples as they are asked after training on tasks 0..after."""
        if self.scenario == "fixed":
            return self.tasks[j].test
        if self.scenario == "class":
            classes = [c for task in self.tasks[: after + 1] for c in task.classes]
        else:
            classes = list(self.tasks[j].classes)
        choices = [" " + c for c in classes]
        return [replace(ex, choices=choices) for ex in self.tasks[j].test]

    def evaluate(self, j: int, after: int, score_fn: ScoreFn | None = None,
                 generate_fn: GenerateFn | None = None) -> dict:
        return evaluate(self.test_examples(j, after), score_fn=score_fn, generate_fn=generate_fn,
                        match=_prefix_match)

    def run(self, train_fn: TrainFn, score_fn: ScoreFn | None = None,
            generate_fn: GenerateFn | None = None) -> ContinualResult:
        metric = "acc" if score_fn is not None else "gen_acc"
        matrix, details = [], []
        for i, task in enumerate(self.tasks):
            train_fn(i, task)
            row = [self.evaluate(j, i, score_fn, generate_fn) for j in range(i + 1)]
            details.append(row)
            matrix.append([r[metric] for r in row] + [None] * (len(self.tasks) - i - 1))
        return ContinualResult([t.name for t in self.tasks], matrix, metric, details)


def classification_prompt(text: str, max_chars: int) -> str:
    text = " ".join(text.split())
    if len(text) > max_chars:
        cut = text.rfind(" ", 0, max_chars)
        text = text[: cut if cut > 0 else max_chars]
    return f"{text}\nTopic:"


def class_incremental(source: str | Sequence[dict] = "wiki", label_key: str = "topic",
                      classes_per_task: int = 2, test_per_class: int = 50, train_per_class: int | None = None,
                      max_chars: int = 1000, seed: int = 0, order: Sequence[str] | None = None,
                      drop: Sequence[str] = ("Uncategorized", ""), scenario: str = "class") -> ContinualStream:
    """Split a labelled corpus (a name for runtime.data.records, or the records) into class-incremental tasks."""
    if isinstance(source, str):
        from runtime.data import records

        name, recs = source, records(source, progress=False)
    else:
        name, recs = "inline", list(source)
    by_class: dict[str, list[str]] = {}
    for r in recs:
        label = r.get(label_key)
        if label is None or label in drop or not r.get("text", "").strip():
            continue
        by_class.setdefault(str(label), []).append(r["text"])
    classes = sorted(by_class)
    if order is not None:
        missing = set(order) - set(classes)
        if missing:
            raise ValueError(f"classes not in the data: {sorted(missing)}")
        classes = list(order)
    else:
        rng_for("class-order", name, seed).shuffle(classes)
    if len(classes) < classes_per_task:
        raise ValueError(f"{len(classes)} classes cannot make a task of {classes_per_task}")
    groups = [classes[i: i + classes_per_task] for i in range(0, len(classes), classes_per_task)]
    if len(groups) > 1 and len(groups[-1]) < classes_per_task:
        groups[-2].extend(groups.pop())
    tasks = []
    for t, group in enumerate(groups):
        train, test = [], []
        for c in group:
            texts = list(by_class[c])
            if len(texts) <= test_per_class:
                raise ValueError(f"class {c!r} has {len(texts)} documents; "
                                 f"needs more than test_per_class={test_per_class}")
            rng_for("class-split", name, seed, c).shuffle(texts)
            cut = texts[test_per_class:]
            if train_per_class is not None:
                cut = cut[:train_per_class]
            test += [Example(classification_prompt(x, max_chars), None, " " + c, {"task": t, "label": c})
                     for x in texts[:test_per_class]]
            train += [Example(classification_prompt(x, max_chars), None, " " + c, {"task": t, "label": c})
                      for x in cut]
        rng_for("class-train-order", name, seed, t).shuffle(train)
        tasks.append(ContinualTask("+".join(group), train, test, tuple(group)))
    return ContinualStream(f"class_incremental:{name}", tasks, scenario=scenario)


def _verses(recs: Sequence[dict]) -> dict[tuple[str, int], list[str]]:
    return {(r["book"], int(r["chapter"])): r["text"].split("\n") for r in recs}


def _halves(verse: str) -> tuple[str, str]:
    """Cut a verse at the word boundary nearest its middle: (first half, " second half")."""
    mid = len(verse) // 2
    left, right = verse.rfind(" ", 0, mid + 1), verse.find(" ", mid)
    cands = [c for c in (left, right) if c > 0]
    if not cands:
        return verse, ""
    cut = min(cands, key=lambda c: abs(c - mid))
    return verse[:cut], verse[cut:]


def new_language(english: str | Sequence[dict] = "kjv", spanish: str | Sequence[dict] = "rv1909",
                 tasks: Sequence[str] = ("en", "es", "en-es"), test_fraction: float = 0.05,
                 test_per_task: int = 200, num_choices: int = 4, min_words: int = 6,
                 seed: int = 0) -> ContinualStream:
    """KJV then RV1909 (then translation) as a stream; see the module docstring."""
    def load(src):
        if isinstance(src, str):
            from runtime.data import records

            return records(src, progress=False)
        return list(src)

    en, es = _verses(load(english)), _verses(load(spanish))
    # Chapters whose verse counts agree (the loader drops verses that are empty after cleaning).
    chapters = sorted(k for k in en if k in es and len(en[k]) == len(es[k]))
    if not chapters:
        raise ValueError("no chapter is verse-aligned between the two texts")
    rng = rng_for("new-language", seed)
    shuffled = list(chapters)
    rng.shuffle(shuffled)
    n_test = max(1, round(test_fraction * len(shuffled)))
    test_ch, train_ch = set(shuffled[:n_test]), set(shuffled[n_test:])
    pairs = {split: [(e, s) for k in chapters if k in chs for e, s in zip(en[k], es[k])]
             for split, chs in (("train", train_ch), ("test", test_ch))}

    def pick_test(kind: str) -> list[Example]:
        r = rng_for("new-language-test", seed, kind)
        pool = [p for p in pairs["test"] if min(len(p[0].split()), len(p[1].split())) >= min_words]
        if len(pool) < num_choices:
            raise ValueError(f"only {len(pool)} test verses of at least {min_words} words")
        out = []
        for i in r.sample(range(len(pool)), len(pool)):
            if len(out) == test_per_task:
                break
            if kind == "en-es":
                prompt, right = f"English: {pool[i][0]}\nSpanish:", " " + pool[i][1]
                ending = lambda k: " " + pool[k][1]  # noqa: E731
            else:
                side = 0 if kind == "en" else 1
                prompt, right = _halves(pool[i][side])
                ending = lambda k: _halves(pool[k][side])[1]  # noqa: E731
            # Distractors: of 50 random verses, the ones closest in length to the answer (so that
            # length is no cue), with distinct texts (verses repeat, "Selah" and the like).
            candidates = sorted({ending(k) for k in r.sample(range(len(pool)), min(50, len(pool)))} - {right},
                                key=lambda c: (abs(len(c) - len(right)), c))
            choices = [right] + candidates[: num_choices - 1]
            if len(choices) < num_choices:
                continue
            r.shuffle(choices)
            out.append(Example(prompt, choices, right, {"task": kind, "max_chars": len(right) + 8}))
        return out

    def train_examples(kind: str) -> list[Example]:
        if kind == "en-es":
            return [Example(f"English: {e}\nSpanish:", None, " " + s, {"task": kind}) for e, s in pairs["train"]]
        side = 0 if kind == "en" else 1
        return [Example(p[side], None, "", {"task": kind}) for p in pairs["train"]]

    known = ("en", "es", "en-es")
    bad = [t for t in tasks if t not in known]
    if bad:
        raise ValueError(f"unknown language tasks {bad}; known: {known}")
    stream = [ContinualTask(kind, train_examples(kind), pick_test(kind)) for kind in tasks]
    return ContinualStream("new_language", stream, scenario="fixed")
