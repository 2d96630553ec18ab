"""The interpreter's bounds check (tests/bounds.py) itself: it must catch what a GPU would fault on."""
import os

import pytest
import torch

# tests/bounds.py checks every load and store that Triton's interpreter executes; with CUDA present
# the kernel tests run compiled (no interpreter to hook), where an out-of-bounds access faults by
# itself, and this module's checker has nothing to test.
if torch.cuda.is_available():
    pytest.skip("tests/bounds.py hooks Triton's interpreter (TRITON_INTERPRET=1, CPU runs); on CUDA the "
                "kernels run compiled and the GPU kernel tests cover them", allow_module_level=True)
os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported, as the kernel tests do
triton = pytest.importorskip("triton")

import triton.language as tl  # noqa: E402

from bounds import Race, checked_memory  # noqa: E402


@triton.jit
def _shifted_copy(x, y, n, SHIFT: tl.constexpr, BLOCK: tl.constexpr, ATOMIC: tl.constexpr):
    o = tl.arange(0, BLOCK)
    v = tl.load(x + o, mask=o < n)
    if ATOMIC:
        tl.atomic_add(y + o + SHIFT, v, mask=o < n)
    else:
        tl.store(y + o + SHIFT, v, mask=o < n)


def _launch(shift, atomic=False, n=10):
    x, y = torch.arange(10.0), torch.zeros(10)
    _shifted_copy[(1,)](x, y, n, SHIFT=shift, BLOCK=16, ATOMIC=atomic)
    return y


def test_in_bounds_runs_unchanged():
    with checked_memory():
        assert torch.equal(_launch(0), torch.arange(10.0))
        assert torch.equal(_launch(3, n=7)[3:], torch.arange(7.0))  # masked lanes are not checked


@pytest.mark.parametrize("shift,atomic,where", [(3, False, "element 10 of `y`, which holds 10"),
                                                (-2, False, "element -2 of `y`"),
                                                (1, True, "element 10 of `y`")])
def test_out_of_bounds_is_an_error(shift, atomic, where):
    with checked_memory(), pytest.raises(Exception, match="OutOfBounds") as err:
        _launch(shift, atomic)
    assert "_shifted_copy" in str(err.value) and where in str(err.value)


def test_the_interpreter_is_unchecked_outside_the_context():
    _launch(0)  # the patches are gone: no error path, and nothing left behind
    from triton.runtime import interpreter as itp

    assert itp.InterpreterBuilder.create_masked_load.__name__ == "create_masked_load"


@triton.jit
def _neighbour(x, y, BLOCK: tl.constexpr, READ_NEXT: tl.constexpr, SAME_SLOT: tl.constexpr):
    pid = tl.program_id(0)
    o = tl.arange(0, BLOCK)
    tl.store(x + (0 if SAME_SLOT else pid * BLOCK) + o, o.to(tl.float32))
    if READ_NEXT:  # program p reads what program p + 1 writes: a race on a GPU
        v = tl.load(x + ((pid + 1) % tl.num_programs(0)) * BLOCK + o)
        tl.store(y + pid * BLOCK + o, v)


@pytest.mark.parametrize("read_next,same_slot,message", [
    (False, False, None),
    (True, False, "program 0 reads `x` byte 64, which program 1 writes"),
    (False, True, "programs 0 and 1 both write `x` byte 0"),
])
def test_races_between_programs_are_errors(read_next, same_slot, message):
    x, y = torch.zeros(2 * 16), torch.zeros(2 * 16)
    with checked_memory(races=True):
        if message is None:
            _neighbour[(2,)](x, y, BLOCK=16, READ_NEXT=read_next, SAME_SLOT=same_slot)
            return
        with pytest.raises(Race) as err:
            _neighbour[(2,)](x, y, BLOCK=16, READ_NEXT=read_next, SAME_SLOT=same_slot)
    assert message in str(err.value)
