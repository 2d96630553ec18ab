"""Batches of token windows for training and validation.

Training (`BatchSampler`): each epoch cuts the token stream into windows of T+1 tokens on a grid
with a random start offset (so epochs cut the text in different places), shuffles the windows
with a generator seeded by (seed, epoch), and serves them B at a time. Within an epoch no window
repeats. The whole position is (epoch, cursor), so `state_dict()` is a few ints and
`load_state_dict()` resumes with exactly the same next batches.

Data parallel: with `world_size` ranks, every rank walks the same shuffled order, a step takes
B * world_size windows, and rank r keeps rows [r*B, (r+1)*B). All ranks share one state.

Validation (`ValidationIterator`): the val split cut into consecutive, non-overlapping windows,
in order, the same every time it is iterated.

Windows run across document boundaries; the EOD token marks them (and the corpus's offsets say
where they are, for models that reset their memory state at a new document).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from ._common import DataError
from .prepare import PreparedCorpus


def _tokens_of(corpus, split: str) -> np.ndarray:
    if isinstance(corpus, PreparedCorpus):
        return corpus.tokens(split)
    return np.asarray(corpus)  # a plain token array, for tests and in-memory data


def _to_device(batch: torch.Tensor, device) -> torch.Tensor:
    return batch.to(device, non_blocking=True) if device is not None else batch


def _gather(tokens: np.ndarray, starts: np.ndarray, width: int, device) -> torch.Tensor:
    rows = np.asarray(tokens[starts[:, None] + np.arange(width)], dtype=np.int64)
    return _to_device(torch.from_numpy(rows), device)


def _task_corpus(corpus) -> bool:
    from .tasks import TaskCorpus

    return isinstance(corpus, TaskCorpus)


class _EndlessBatches:
    """Iterating a training sampler (BatchSampler, tasks.TaskBatchSampler) calls its next_batch forever."""

    def next_batch(self) -> torch.Tensor:
        raise NotImplementedError

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            yield self.next_batch()

    def __next__(self) -> torch.Tensor:
        return self.next_batch()


class BatchSampler(_EndlessBatches):
    """Deterministic, resumable sampler of `[batch_size, seq_len + 1]` training windows.

    Given a TaskCorpus (`--data task:...`, runtime/data/tasks.py) it is a TaskBatchSampler: one
    generated example per row instead of windows cut from a token stream.
    """

    def __new__(cls, corpus=None, *args, **kwargs):
        if cls is BatchSampler and _task_corpus(corpus):
            from .tasks import TaskBatchSampler

            return TaskBatchSampler(corpus, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, corpus, batch_size: int, seq_len: int, seed: int = 0, split: str = "train",
                 rank: int = 0, world_size: int = 1, device=None):
        if batch_size < 1 or seq_len < 1:
            raise DataError(f"batch_size and seq_len must be positive, got {batch_size} and {seq_len}", "")
        if not 0 <= rank < world_size:
            raise DataError(f"rank {rank} is outside world_size {world_size}", "")
        self.tokens = _tokens_of(corpus, split)
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        self.rank, self.world_size, self.device = rank, world_size, device
        if len(self.tokens) < seq_len + 1:
            raise DataError(f"the {split} split has {len(self.tokens)} tokens, fewer than seq_len + 1 = {seq_len + 1}",
                            "use a shorter seq_len or a larger corpus")
        self.epoch = 0
        self.cursor = 0  # windows of the current epoch already served (to all ranks together)
        self._plan: tuple[int, int, np.ndarray] | None = None  # (epoch, offset, permutation), cached

    def _epoch_plan(self, epoch: int) -> tuple[int, np.ndarray]:
        if self._plan is None or self._plan[0] != epoch:
            T, N = self.seq_len, len(self.tokens)
            rng = np.random.default_rng([self.seed, epoch])
            last_start = N - 1 - T  # a window starting here ends exactly at the last token
            offset = int(rng.integers(0, min(T, last_start + 1)))
            n_windows = (N - 1 - offset) // T
            self._plan = (epoch, offset, rng.permutation(n_windows))
        return self._plan[1], self._plan[2]

    @property
    def windows_per_epoch(self) -> int:
        return len(self._epoch_plan(self.epoch)[1])

    def next_batch(self) -> torch.Tensor:
        """The next `[batch_size, seq_len + 1]` int64 batch of this rank; inputs are [:, :-1], targets [:, 1:]."""
        need = self.batch_size * self.world_size
        starts = []
        while need > 0:
            offset, perm = self._epoch_plan(self.epoch)
            take = perm[self.cursor:self.cursor + need]
            starts.append(offset + take * self.seq_len)
            self.cursor += len(take)
            need -= len(take)
            if self.cursor >= len(perm):  # epoch finished: the next one reshuffles with a new offset
                self.epoch += 1
                self.cursor = 0
        starts = np.concatenate(starts)[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        return _gather(self.tokens, starts, self.seq_len + 1, self.device)

    def state_dict(self) -> dict:
        """The position, as a small dict of ints; save it in the checkpoint."""
        return {"seed": self.seed, "epoch": self.epoch, "cursor": self.cursor, "seq_len": self.seq_len,
                "batch_size": self.batch_size, "world_size": self.world_size, "tokens": len(self.tokens)}

    def load_state_dict(self, state: dict) -> None:
        """Resume at a saved position. The batch size and world size may change; the data and T may not,
        since the position counts windows of a grid that depends on both."""
        if int(state["tokens"]) != len(self.tokens) or int(state["seq_len"]) != self.seq_len:
            raise DataError(
                f"this position was saved for {state['tokens']} tokens and seq_len {state['seq_len']}, "
                f"but the sampler has {len(self.tokens)} tokens and seq_len {self.seq_len}",
                "resume with the same prepared corpus and sequence length")
        self.seed, self.epoch, self.cursor = int(state["seed"]), int(state["epoch"]), int(state["cursor"])
        self._plan = None


class _InOrderBatches:
    """A fixed list of row keys served `batch_size` at a time, in order, the same on every pass: the part
    ValidationIterator and tasks.TaskValidationIterator share. A subclass calls `_take` with all the
    keys of the split and turns a slice of them into a `[<=batch_size, seq_len + 1]` batch (`_rows`)."""

    keys: Sequence
    batch_size: int
    seq_len: int
    device: object

    def _take(self, keys: Sequence, batch_size: int, seq_len: int, max_batches: int | None, rank: int,
              world_size: int, device) -> None:
        self.batch_size, self.seq_len, self.device = batch_size, seq_len, device
        # Every rank takes every world_size-th row, so ranks cover disjoint parts of the split;
        # max_batches keeps the first batches, so a capped evaluation is still deterministic.
        self.keys = keys[rank::world_size]
        if max_batches is not None:
            self.keys = self.keys[:max_batches * batch_size]

    def _rows(self, keys: Sequence) -> torch.Tensor:
        raise NotImplementedError

    def __len__(self) -> int:
        return -(-len(self.keys) // self.batch_size)

    @property
    def n_tokens(self) -> int:
        """Predicted tokens per full pass (each row predicts seq_len of them)."""
        return len(self.keys) * self.seq_len

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i in range(0, len(self.keys), self.batch_size):
            yield _to_device(self._rows(self.keys[i:i + self.batch_size]), self.device)


class ValidationIterator(_InOrderBatches):
    """Consecutive `[<=batch_size, seq_len + 1]` windows of the validation split, in order.

    Each iteration starts over, so evaluating twice gives the same batches. The tail shorter than
    a window is dropped; the last batch may have fewer rows. `max_batches` caps the count (the
    first batches are kept, so a capped evaluation is still deterministic). Given a TaskCorpus it
    is a TaskValidationIterator (a fixed held-out slice of generated examples).
    """

    def __new__(cls, corpus=None, *args, **kwargs):
        if cls is ValidationIterator and _task_corpus(corpus):
            from .tasks import TaskValidationIterator

            return TaskValidationIterator(corpus, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, corpus, batch_size: int, seq_len: int, max_batches: int | None = None, split: str = "val",
                 rank: int = 0, world_size: int = 1, device=None):
        self.tokens = _tokens_of(corpus, split)
        n_windows = max(0, (len(self.tokens) - 1) // seq_len)
        if n_windows == 0:
            raise DataError(f"the {split} split has {len(self.tokens)} tokens, fewer than seq_len + 1 = {seq_len + 1}",
                            "use a shorter seq_len, a larger val_fraction or a larger corpus")
        # The keys are the windows' start offsets.
        self._take(np.arange(n_windows, dtype=np.int64) * seq_len, batch_size, seq_len, max_batches, rank,
                   world_size, device)

    def _rows(self, starts: np.ndarray) -> torch.Tensor:
        return _gather(self.tokens, starts, self.seq_len + 1, None)
