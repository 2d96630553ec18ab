"""`--data task:NAME?...`: generated training data (runtime/data/tasks.py)."""
import re

import pytest
import torch

from runtime.data import BatchSampler, DataError, ValidationIterator, open_corpus
from runtime.data.tasks import EOD, TaskBatchSampler, TaskValidationIterator, parse, train_seed, val_seed
from runtime.eval import make
from runtime.eval.formal import member


def _texts(batch):
    return [bytes(t for t in row.tolist() if t != EOD).decode("ascii") for row in batch]


def test_parse():
    assert parse("task:mqar?num_pairs=4,8&seq_len=256") == ("mqar", {"num_pairs": (4, 8), "seq_len": 256})
    assert parse("task:formal_parity") == ("formal_parity", {})
    with pytest.raises(DataError):
        parse("task:mqar?num_pairs")
    with pytest.raises(DataError):
        open_corpus("task:nonesuch")
    with pytest.raises(DataError):
        open_corpus("task:mqar", tokenizer="gpt2")


def test_deterministic_and_resumable():
    corpus = open_corpus("task:mqar?num_pairs=4&seq_len=96")
    a, b = BatchSampler(corpus, 3, 96, seed=1), BatchSampler(corpus, 3, 96, seed=1)
    assert isinstance(a, TaskBatchSampler)
    first = [a.next_batch() for _ in range(3)]
    assert all(torch.equal(x, b.next_batch()) for x in first)
    c = BatchSampler(corpus, 3, 96, seed=1)
    c.next_batch()
    state = c.state_dict()
    d = BatchSampler(corpus, 3, 96, seed=1)
    d.load_state_dict(state)
    assert torch.equal(d.next_batch(), first[1])
    assert not torch.equal(BatchSampler(corpus, 3, 96, seed=2).next_batch(), first[0])
    # ranks split a step's rows
    r0, r1 = BatchSampler(corpus, 3, 96, seed=1, rank=0, world_size=2), BatchSampler(corpus, 3, 96, seed=1, rank=1,
                                                                                       world_size=2)
    whole = BatchSampler(corpus, 6, 96, seed=1).next_batch()
    assert torch.equal(torch.cat([r0.next_batch(), r1.next_batch()]), whole)


def test_mqar_rows_are_valid_and_not_the_eval_set():
    corpus = open_corpus("task:mqar?num_pairs=4&seq_len=96")
    batch = BatchSampler(corpus, 16, 96, seed=0).next_batch()
    assert batch.shape == (16, 97) and batch.dtype == torch.int64
    assert (batch[:, 0] == EOD).all()
    task = make("mqar", num_pairs=4, seq_len=96)
    eval_texts = {task.sequence(i, 0)["text"] for i in range(64)}
    for text in _texts(batch):
        assert len(text) == 96
        head, _, tail = text.partition(" |")
        pairs = dict(p.split(":") for p in head.split())
        assert len(pairs) == 4
        for key, value in re.findall(r"([a-z]{3}):(\d{3})", tail):
            assert pairs[key] == value  # every query is followed by its value
        assert text not in eval_texts
    val = ValidationIterator(corpus, 8, 96, max_batches=2)
    assert isinstance(val, TaskValidationIterator) and len(val) == 2
    val_texts = [t for b in val for t in _texts(b)]
    assert val_texts == [t for b in val for t in _texts(b)]  # the same every pass
    assert not set(val_texts) & set(_texts(batch)) and not set(val_texts) & eval_texts
    assert train_seed(0) != val_seed(0) and str(0) not in (train_seed(0), val_seed(0))


@pytest.mark.parametrize("language", ["parity", "anbn", "shuffle2"])
def test_formal_stream_is_the_training_bin_only(language):
    corpus = open_corpus(f"task:formal_{language}")
    batch = BatchSampler(corpus, 64, 64, seed=0).next_batch()
    labels = []
    for text in _texts(batch):
        string, verdict = text[:-2], text[-1]
        assert text[-2] == "?" and verdict in "YN"
        assert 1 <= len(string) <= 50  # bin0 of the evaluation
        assert member(language, string) == (verdict == "Y")
        labels.append(verdict)
    assert set(labels) == {"Y", "N"}
    short = open_corpus(f"task:formal_{language}?bin0=2-10")
    assert all(len(t) - 2 <= 10 for t in _texts(BatchSampler(short, 32, 16, seed=0).next_batch()))


def test_window_too_short_fails_early():
    corpus = open_corpus("task:mqar?num_pairs=4&seq_len=96")
    with pytest.raises(DataError, match="context"):
        BatchSampler(corpus, 2, 64)
