"""Hebbian rule (linear attention): the Triton kernels == the chunk reference (values, final
state, the gradient of every input).

The kernels are the gated delta rule's with DELTA=False (runtime/ops/hebbian/kernel.py). Without
CUDA they run in Triton's interpreter (TRITON_INTERPRET=1, set here before triton is imported) on
tiny shapes; with CUDA the same small cases run compiled, and the `gpu` tests add real shapes in
bf16 and fp32 against an fp32 reference.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported (kernel.py reads it)
pytest.importorskip("triton")

from ops_common import (  # noqa: E402
    assert_errors_below, check_linear_rule_dispatch, check_linear_rule_gpu,
    check_linear_rule_strong_decay, gpu_dtypes, gpu_real_shapes, gpu_test, linear_rule_errors,
    linear_rule_inputs)
from runtime.ops.hebbian import chunk_hebbian, hebbian  # noqa: E402
from runtime.ops.hebbian.kernel import chunk_hebbian_kernel  # noqa: E402

pytestmark = pytest.mark.usefixtures("checked_kernel_memory")  # tests/bounds.py

# Small cases: the kernel in fp32 (exact fp32 products, input_precision="ieee") against the chunk
# reference in float64 on the same inputs: measured 1e-7 to 6e-7 relative RMSE on values, final
# state and every gradient (d a is the largest: it divides d log a by a). 1e-4 leaves margin for
# strong decay and still fails on any real bug (a wrong term, mask or transpose gives 1e-2 to 1).
TOL_FP32 = 1e-4
_inputs = linear_rule_inputs  # no beta input: q, k, v, the gate and the initial state


CASES = [
    # B, T, H, Dk, Dv, C, gate, h0, loss
    (2, 63, 2, 16, 16, 16, "log_a", True, "both"),
    (1, 100, 2, 32, 16, 64, "a", True, "both"),  # Dk != Dv, a (not log a) gets its gradient
    (1, 100, 1, 32, 32, 32, None, False, "o"),  # plain linear attention; final state unused
    (2, 63, 2, 16, 32, 16, None, True, "both"),  # no retention, with an initial state
    (2, 63, 1, 20, 12, 16, "log_a", True, "state"),  # widths padded to 32 / 16; o unused
]


@pytest.mark.parametrize("B,T,H,Dk,Dv,C,gate,h0,loss", CASES)
def test_kernel_matches_chunk(B, T, H, Dk, Dv, C, gate, h0, loss):
    x = _inputs(B, T, H, Dk, Dv, gate, h0)
    errs, (o, _, _) = linear_rule_errors(chunk_hebbian_kernel, chunk_hebbian, x, C, loss)
    assert o.dtype == x["q"].dtype
    assert_errors_below(errs, TOL_FP32)


def test_strong_decay_stays_finite():
    check_linear_rule_strong_decay(chunk_hebbian_kernel, chunk_hebbian, TOL_FP32)


def test_half_precision():
    # The 16-bit path (fp16 storage of q, k, v and the per-chunk states, fp32 accumulation)
    # against the float64 reference: measured 2.8e-4 to 4.1e-4 on values and every gradient
    # (fp16 rounds at ~5e-4 relative per element); limit 5e-3. (bf16 is checked by the gpu tests: the interpreter's bf16 emulation is not faithful.)
    x = _inputs(2, 63, 2, 32, 16, "log_a", True, dtype=torch.float16)
    errs, (o, _, _) = linear_rule_errors(chunk_hebbian_kernel, chunk_hebbian, x, 32)
    assert o.dtype == torch.float16
    assert max(errs.values()) < 5e-3, errs


def test_dispatch():
    x = _inputs(1, 20, 1, 16, 16, "log_a", True)
    args, kw = check_linear_rule_dispatch(hebbian, chunk_hebbian, x, TOL_FP32)
    with pytest.raises(ValueError):  # a and log_a together
        hebbian(*args, a=x["log_a"].exp(), **kw, impl="kernel")


# ---------------------------------------------------------------------------------------------
# GPU: real shapes, against the fp32 chunk reference computed from the same (rounded) inputs.
# fp32 kernels use exact fp32 products: limit 1e-5 (the gated delta kernels, which add the WY
# solve to these same kernels, measured ~3e-7 on an H200). bf16 kernels round q, k, v and the
# per-chunk states to bf16 (~4e-3 relative per rounding) between fp32 accumulations; the gated
# delta kernels, which round more tensors (W, U, E as well), measured 3e-3 to 3.6e-3 on values and
# gradients at D = 64 and 128, so the same limits apply: 1e-2 (values), 1.5e-2 (gradients).
# Head widths 64 and 128: Triton 3.4-3.7.0 can miscompile Hopper backward kernels at these.
# ---------------------------------------------------------------------------------------------

GPU_TOL = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (1e-2, 1.5e-2)}


@gpu_real_shapes
def test_kernel_gpu_real_shapes(D, dtype):
    x = _inputs(2, 2048, 4, D, D, "log_a", True, dtype=dtype)
    check_linear_rule_gpu(chunk_hebbian_kernel, chunk_hebbian, x, 64, GPU_TOL[dtype], dtype)


@gpu_test
@gpu_dtypes
def test_linear_attention_gpu_no_gate_no_h0(dtype):
    # no retention: the state sums 2048 writes; relative errors stay per-element roundings
    x = _inputs(2, 2048, 4, 128, 128, None, False, dtype=dtype)
    check_linear_rule_gpu(chunk_hebbian_kernel, chunk_hebbian, x, 64, GPU_TOL[dtype], dtype)
