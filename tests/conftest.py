"""Fixtures shared by every test folder."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Many tiny ops: intra-op threads only add synchronisation (about 10x slower on a busy
    2-core machine). Restored afterwards so other modules keep their setting. Use it with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def checked_kernel_memory():
    """In Triton's interpreter, every load, store and atomic of a kernel must fall inside one of its
    launch's tensor arguments, and no program may read or write what another program of the same
    launch writes (tests/bounds.py): the fault a GPU would give, the neighbour's bytes it would
    silently read, or the race it would run, becomes an error on the CPU. A no-op when the kernels
    run compiled (on CUDA, without TRITON_INTERPRET)."""
    import os

    if os.environ.get("TRITON_INTERPRET") != "1":
        yield
        return
    from bounds import checked_memory

    with checked_memory(races=True):
        yield
