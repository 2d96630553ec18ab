"""The batch sampler: shapes, determinism, exact resume, data-parallel slices; the validation iterator."""

import numpy as np
import pytest
import torch

from runtime.data import BatchSampler, DataError, ValidationIterator, prepare

# Every token is its own position, so a window says where it starts: row[0].
TOKENS = np.arange(1000, dtype=np.uint16)


def batches(sampler, n):
    return [sampler.next_batch() for _ in range(n)]


def test_batches_are_windows_of_the_stream():
    s = BatchSampler(TOKENS, batch_size=4, seq_len=16, seed=0)
    for b in batches(s, 5):
        assert b.shape == (4, 17) and b.dtype == torch.int64
        for row in b.numpy():
            assert (row == TOKENS[row[0]:row[0] + 17]).all()


def test_same_seed_same_batches_other_seed_other_batches():
    a = batches(BatchSampler(TOKENS, 4, 16, seed=1), 10)
    b = batches(BatchSampler(TOKENS, 4, 16, seed=1), 10)
    c = batches(BatchSampler(TOKENS, 4, 16, seed=2), 10)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_saved_position_restores_the_exact_next_batches():
    # 1000 tokens, T=16: ~62 windows per epoch, so 40 batches of 4 cross two epoch boundaries.
    s = BatchSampler(TOKENS, 4, 16, seed=7)
    batches(s, 23)
    state = s.state_dict()
    assert all(isinstance(v, int) for v in state.values())
    expected = batches(s, 40)
    r = BatchSampler(TOKENS, 4, 16, seed=0)  # a different seed: the state carries the real one
    r.load_state_dict(dict(state))
    assert all(torch.equal(x, y) for x, y in zip(expected, batches(r, 40)))


def test_an_epoch_serves_each_window_once():
    s = BatchSampler(TOKENS, 1, 16, seed=0)
    n = s.windows_per_epoch
    starts = [int(b[0, 0]) for b in batches(s, n)]
    # n distinct windows on one grid (same start modulo T), then a new epoch begins.
    assert len(set(starts)) == n == (999 - min(starts)) // 16 and len({x % 16 for x in starts}) == 1
    assert s.state_dict()["epoch"] == 1 and s.state_dict()["cursor"] == 0


def test_ranks_split_the_global_batch():
    whole = batches(BatchSampler(TOKENS, 6, 16, seed=3), 5)
    parts = [batches(BatchSampler(TOKENS, 2, 16, seed=3, rank=r, world_size=3), 5) for r in range(3)]
    for step in range(5):
        assert torch.equal(whole[step], torch.cat([parts[r][step] for r in range(3)]))


def test_resume_refuses_other_data():
    s = BatchSampler(TOKENS, 4, 16)
    with pytest.raises(DataError, match="same prepared corpus"):
        BatchSampler(TOKENS, 4, 32).load_state_dict(s.state_dict())
    with pytest.raises(DataError, match="fewer than seq_len"):
        BatchSampler(TOKENS[:10], 4, 16)


def test_validation_iterator_is_ordered_and_repeatable():
    v = ValidationIterator(TOKENS, batch_size=4, seq_len=16)
    first = list(v)
    rows = torch.cat(first).numpy()
    assert len(rows) == (len(TOKENS) - 1) // 16 == 62 and len(first) == len(v) == 16
    for i, row in enumerate(rows):
        assert (row == TOKENS[i * 16: i * 16 + 17]).all()
    assert all(torch.equal(x, y) for x, y in zip(first, v))
    assert len(list(ValidationIterator(TOKENS, 4, 16, max_batches=3))) == 3
    halves = [torch.cat(list(ValidationIterator(TOKENS, 4, 16, rank=r, world_size=2))) for r in range(2)]
    assert len(halves[0]) + len(halves[1]) == 62


def test_sampler_on_a_prepared_corpus(fake_source):
    corpus = prepare("fake", val_fraction=0.2, progress=False)
    train = BatchSampler(corpus, 2, 8, seed=0).next_batch()
    assert train.shape == (2, 9) and int(train.max()) < corpus.vocab_size
    val = next(iter(ValidationIterator(corpus, 2, 8)))
    assert torch.equal(val[0], torch.from_numpy(np.asarray(corpus.val[:9], dtype=np.int64)))
