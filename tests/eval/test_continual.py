"""Continual streams: task splits, the accuracy matrix under learners with known behaviour, forgetting."""

import pytest
from eval_common import assert_chance, uniform_scorer

from runtime.eval.continual import ContinualResult, class_incremental, forgetting, new_language

CLASSES = ["Arts", "Biology", "Geography", "History", "Mathematics"]


def fake_wiki(per_class=30):
    """Labelled records where each class has its own keyword: kw-<class> (plus unlabelled noise)."""
    recs = []
    for c in CLASSES:
        for i in range(per_class):
            recs.append({"text": f"Article {i} about kw-{c} and other things. " * 3, "topic": c})
    recs.append({"text": "no topic", "topic": "Uncategorized"})
    return recs


def keyword(context: str) -> str:
    return context.split("kw-", 1)[1].split()[0]


class Learner:
    """Learns keyword -> class from the training examples it is given.

    forgetful=True keeps only the last task: old classes are never predicted again."""

    def __init__(self, forgetful=False):
        self.known, self.forgetful, self.calls = {}, forgetful, []

    def train(self, i, task):
        self.calls.append((i, task.name))
        if self.forgetful:
            self.known = {}
        for ex in task.train:
            self.known[keyword(ex.text)] = ex.answer.strip()

    def score(self, context, continuation):
        guess = self.known.get(keyword(context))
        if guess == continuation.strip():
            return 0.0
        return -1.0 if continuation.strip() in self.known.values() else -5.0


def test_tasks_split_the_classes_and_documents():
    stream = class_incremental(fake_wiki(), classes_per_task=2, test_per_class=10, seed=0)
    assert [len(t.classes) for t in stream.tasks] == [2, 3]  # the remainder joins the last task
    assert sorted(c for t in stream.tasks for c in t.classes) == CLASSES
    for t in stream.tasks:
        assert len(t.test) == 10 * len(t.classes) and len(t.train) == 20 * len(t.classes)
        assert not {e.text for e in t.train} & {e.text for e in t.test}
        assert {e.answer.strip() for e in t.train} == set(t.classes)
        assert all(e.text.endswith("\nTopic:") for e in t.test)
    again = class_incremental(fake_wiki(), classes_per_task=2, test_per_class=10, seed=0)
    assert [t.test for t in again.tasks] == [t.test for t in stream.tasks]
    other = class_incremental(fake_wiki(), classes_per_task=2, test_per_class=10, seed=1)
    assert [t.classes for t in other.tasks] != [t.classes for t in stream.tasks]


def test_class_incremental_choices_grow():
    stream = class_incremental(fake_wiki(), classes_per_task=1, test_per_class=5, order=CLASSES)
    assert [t.classes for t in stream.tasks] == [(c,) for c in CLASSES]
    assert stream.test_examples(0, after=0)[0].choices == [" Arts"]
    assert stream.test_examples(0, after=2)[0].choices == [" Arts", " Biology", " Geography"]
    task_il = class_incremental(fake_wiki(), classes_per_task=1, test_per_class=5, order=CLASSES, scenario="task")
    assert task_il.test_examples(0, after=2)[0].choices == [" Arts"]


def test_matrix_and_forgetting_for_known_learners():
    stream = class_incremental(fake_wiki(), classes_per_task=1, test_per_class=10, order=CLASSES[:4])
    good = Learner()
    res = stream.run(good.train, score_fn=good.score)
    assert good.calls == [(i, c) for i, c in enumerate(CLASSES[:4])]
    assert res.matrix == [[1.0, None, None, None], [1.0, 1.0, None, None], [1.0] * 3 + [None], [1.0] * 4]
    assert res.forgetting == 0.0 and res.final_accuracy == 1.0 and res.bwt == 0.0
    bad = Learner(forgetful=True)
    res = stream.run(bad.train, score_fn=bad.score)
    assert [res.matrix[i][i] for i in range(4)] == [1.0] * 4
    assert all(res.matrix[i][j] == 0.0 for i in range(4) for j in range(i))
    assert res.forgetting == 1.0 and res.final_accuracy == 0.25 and res.bwt == -1.0
    assert res.to_dict()["average_accuracies"] == [1.0, 0.5, 1 / 3, 0.25]


def test_forgetting_formula():
    m = [[0.9, None, None], [0.5, 0.8, None], [0.2, 0.6, 0.9]]
    # task 0: best before the end 0.9, final 0.2; task 1: 0.8 -> 0.6
    assert forgetting(m) == pytest.approx((0.7 + 0.2) / 2)
    assert ContinualResult(["a", "b", "c"], m).bwt == pytest.approx(((0.2 - 0.9) + (0.6 - 0.8)) / 2)
    assert forgetting([[0.5]]) == 0.0


def test_blind_guesser_in_class_incremental_is_at_chance():
    stream = class_incremental(fake_wiki(per_class=130), classes_per_task=1, test_per_class=120, order=CLASSES)
    res = stream.run(lambda i, task: None, score_fn=uniform_scorer(6))
    # After the last task, every test example chooses among all 5 classes.
    n = sum(len(t.test) for t in stream.tasks)
    assert_chance(sum(res.matrix[-1][j] * len(stream.tasks[j].test) for j in range(5)) / n, [1 / 5] * n)


def fake_bibles():
    en, es = [], []
    for book in ("Genesis", "Exodus"):
        for ch in range(1, 21):
            verses = [f"{book} {ch}:{v} says that the people walked {v + ch} miles to the river" for v in range(8)]
            en.append({"text": "\n".join(verses), "book": book, "chapter": ch})
            es_verses = [f"{book} {ch}:{v} dice que el pueblo anduvo {v + ch} millas al rio" for v in range(8)]
            if (book, ch) == ("Exodus", 20):
                es_verses = es_verses[:-1]  # a verse lost in cleaning: this chapter cannot be aligned
            es.append({"text": "\n".join(es_verses), "book": book, "chapter": ch})
    return en, es


def test_new_language_stream():
    en, es = fake_bibles()
    stream = new_language(en, es, test_fraction=0.1, test_per_task=20, seed=0)
    assert [t.name for t in stream.tasks] == ["en", "es", "en-es"]
    en_task, es_task, tr_task = stream.tasks
    everything = [e.text + e.answer for t in stream.tasks for e in t.train + t.test]
    assert not any("Exodus 20:" in x for x in everything)
    assert len(en_task.train) == 35 * 8  # 39 aligned chapters, 4 held out for testing
    trained = {e.text for e in en_task.train}
    for ex in en_task.test:
        assert len(ex.choices) == 4 and len(set(ex.choices)) == 4 and ex.answer in ex.choices
        assert not any((ex.text + ex.answer) == t for t in trained)  # test verses come from held-out chapters
    assert all("dice que" in e.text + e.answer for e in es_task.test)
    for ex in tr_task.test:
        # The Spanish verse with the same book, chapter and verse is the answer.
        assert ex.text.split(" says")[0].split("English: ")[1] == ex.answer.split(" dice")[0].strip()
    right = {(e.text, e.answer) for t in stream.tasks for e in t.test}
    res = stream.run(lambda i, task: None, score_fn=lambda c, x: 0.0 if (c, x) in right else -1.0)
    assert res.matrix[-1] == [1.0, 1.0, 1.0] and res.forgetting == 0.0
