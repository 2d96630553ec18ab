"""Gated delta rule: the Triton kernels == the chunk reference (values, final state, all gradients).

Without CUDA the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set here before triton is
imported) on tiny shapes; with CUDA the same small cases run compiled, and the `gpu` tests add
real shapes in bf16 and fp32 against an fp32 reference.
"""

import os
from functools import partial

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported (kernel.py reads it)
pytest.importorskip("triton")

from ops_common import (  # noqa: E402
    assert_errors_below, check_linear_rule_dispatch, check_linear_rule_gpu,
    check_linear_rule_strong_decay, gpu_real_shapes, gpu_test, linear_rule_errors,
    linear_rule_inputs)
from runtime.ops.gated_delta import chunk_gated_delta  # noqa: E402
from runtime.ops.gated_delta.dispatch import gated_delta  # noqa: E402
from runtime.ops.gated_delta.kernel import chunk_gated_delta_kernel  # noqa: E402

pytestmark = pytest.mark.usefixtures("checked_kernel_memory")  # tests/bounds.py

# Small cases: the kernel runs in fp32 (its fp32 matmuls use input_precision="ieee"), the chunk
# reference in float64 on the same inputs, so the gap is the kernel's fp32 rounding: ~1e-7
# relative RMSE on ordinary draws, up to ~2e-5 for d log_a under strong decay (the fp32 reference
# itself is at ~5e-6 there: dg is a difference of larger row and column sums). 1e-4 covers that
# with margin and still fails on any real bug (a wrong term, mask or transpose gives 1e-2 to 1).
TOL_FP32 = 1e-4
_inputs = partial(linear_rule_inputs, beta=True)  # q, k, v, b, the gate and the initial state


CASES = [
    # B, T, H, Dk, Dv, C, gate, h0, loss
    (2, 63, 2, 16, 16, 16, "log_a", True, "both"),
    (1, 100, 2, 32, 16, 64, "a", True, "both"),  # Dk != Dv, a (not log a) gets its gradient
    (1, 100, 1, 32, 32, 32, None, False, "o"),  # the delta rule; final state unused (dht = None)
    (2, 63, 1, 20, 12, 16, "log_a", True, "state"),  # widths padded to 32 / 16; o unused
]


@pytest.mark.parametrize("B,T,H,Dk,Dv,C,gate,h0,loss", CASES)
def test_kernel_matches_chunk(B, T, H, Dk, Dv, C, gate, h0, loss):
    x = _inputs(B, T, H, Dk, Dv, gate, h0)
    errs, _ = linear_rule_errors(chunk_gated_delta_kernel, chunk_gated_delta, x, C, loss)
    assert_errors_below(errs, TOL_FP32)


def test_strong_decay_stays_finite():
    check_linear_rule_strong_decay(chunk_gated_delta_kernel, chunk_gated_delta, TOL_FP32, beta=True)


def test_dispatch():
    x = _inputs(1, 20, 1, 16, 16, "log_a", True)
    check_linear_rule_dispatch(gated_delta, chunk_gated_delta, x, TOL_FP32)


# ---------------------------------------------------------------------------------------------
# GPU: real shapes, against the fp32 chunk reference computed from the same (rounded) inputs.
# fp32 kernels use exact fp32 products: measured ~3e-7 (H200), limit 1e-5. bf16 kernels round
# q, k, v, W, U, E and the per-chunk states to bf16 (8 bits of mantissa, ~4e-3 relative per
# rounding) between fp32 accumulations: measured 3e-3 to 3.6e-3 on values and every gradient at
# D = 64 and 128; limits 1e-2 (values) and 1.5e-2 (gradients chain more rounded tensors).
# ---------------------------------------------------------------------------------------------

GPU_TOL = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (1e-2, 1.5e-2)}


@gpu_real_shapes
def test_kernel_gpu_real_shapes(D, dtype):
    x = _inputs(2, 2048, 4, D, D, "log_a", True, dtype=dtype)
    check_linear_rule_gpu(chunk_gated_delta_kernel, chunk_gated_delta, x, 64, GPU_TOL[dtype],
                          dtype, D)


@gpu_test
def test_delta_rule_gpu_no_gate_no_h0():
    x = _inputs(2, 2048, 4, 128, 128, None, False, dtype=torch.bfloat16)
    check_linear_rule_gpu(chunk_gated_delta_kernel, chunk_gated_delta, x, 64,
                          GPU_TOL[torch.bfloat16], torch.bfloat16)
