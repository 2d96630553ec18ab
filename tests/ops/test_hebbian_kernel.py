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

from runtime.ops.hebbian import chunk_hebbian, hebbian  # noqa: E402
from runtime.ops.hebbian.kernel import chunk_hebbian_kernel  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"
# Small cases: the kernel in fp32 (exact fp32 products, input_precision="ieee") against the chunk
# reference in float64 on the same inputs: measured 1e-7 to 6e-7 relative RMSE on values, final
# state and every gradient (d a is the largest: it divides d log a by a). 1e-4 leaves margin for
# strong decay and still fails on any real bug (a wrong term, mask or transpose gives 1e-2 to 1).
TOL_FP32 = 1e-4


def _rel(x, ref):
    """Relative RMSE: ||x - ref|| / ||ref||."""
    x, ref = x.double(), ref.double()
    return ((x - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def _inputs(B, T, H, Dk, Dv, gate, h0, dtype=torch.float32, seed=0, strong_decay=False):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    x = dict(
        q=r(B, T, H, Dk) / Dk**0.5,
        k=torch.nn.functional.normalize(r(B, T, H, Dk), dim=-1),
        v=r(B, T, H, Dv),
    )
    if gate == "a":
        x["a"] = torch.rand(B, T, H, generator=g) * 0.7 + 0.3
    elif gate == "log_a":
        la = torch.nn.functional.logsigmoid(r(B, T, H) + 3)
        if strong_decay:  # exp(-G) would overflow; only differences G_t - G_s <= 0 are used
            la = torch.where(torch.rand(B, T, H, generator=g) < 0.5, la, torch.full_like(la, -30.0))
        x["log_a"] = la
    if h0:
        x["initial_state"] = r(B, H, Dv, Dk) * 0.5
    return {n: t.to(DEV, dtype) for n, t in x.items()}


def _run(fn, x, C, loss="both", seed=1):
    """Forward, a random linear loss on o and/or the final state, and every input's gradient."""
    leaves = {n: t.detach().clone().requires_grad_() for n, t in x.items()}
    kw = {n: leaves[n] for n in ("a", "log_a", "initial_state") if n in leaves}
    o, S = fn(leaves["q"], leaves["k"], leaves["v"], chunk_size=C, **kw)
    g = torch.Generator().manual_seed(seed)
    wo = torch.randn(o.shape, generator=g).to(o.device, torch.float64)
    wS = torch.randn(S.shape, generator=g).to(S.device, torch.float64)
    total = 0.0
    if loss in ("o", "both"):
        total = total + (o.double() * wo).sum()
    if loss in ("state", "both"):
        total = total + (S.double() * wS).sum()
    total.backward()
    # an input that the loss does not reach has gradient None in autograd, zeros from the kernel
    grads = {n: torch.zeros_like(t) if t.grad is None else t.grad for n, t in leaves.items()}
    return o.detach(), S.detach(), grads


def _f64(x):
    return {n: t.double() for n, t in x.items()}


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
    o, S, grads = _run(chunk_hebbian_kernel, x, C, loss)
    o_r, S_r, grads_r = _run(chunk_hebbian, _f64(x), C, loss)
    assert o.shape == o_r.shape and S.shape == S_r.shape
    assert o.dtype == x["q"].dtype
    assert _rel(o, o_r) < TOL_FP32
    assert _rel(S, S_r) < TOL_FP32
    assert grads.keys() == grads_r.keys()
    for name, g_ref in grads_r.items():
        assert _rel(grads[name], g_ref) < TOL_FP32, name


def test_strong_decay_stays_finite():
    # log a = -30 on half the tokens: cumulative log gates of order -1000 inside a chunk.
    x = _inputs(1, 63, 1, 16, 16, "log_a", True, strong_decay=True)
    o, S, grads = _run(chunk_hebbian_kernel, x, 32)
    o_r, S_r, grads_r = _run(chunk_hebbian, _f64(x), 32)
    assert _rel(o, o_r) < TOL_FP32 and _rel(S, S_r) < TOL_FP32
    for name, g_ref in grads_r.items():
        assert torch.isfinite(grads[name]).all(), name
        assert _rel(grads[name], g_ref) < TOL_FP32, name


def test_half_precision():
    # The 16-bit path (fp16 storage of q, k, v and the per-chunk states, fp32 accumulation)
    # against the float64 reference: measured 2.8e-4 to 4.1e-4 on values and every gradient
    # (fp16 rounds at ~5e-4 relative per element); limit 5e-3. (bf16 is checked by the gpu tests: the interpreter's bf16 emulation is not faithful.)
    x = _inputs(2, 63, 2, 32, 16, "log_a", True, dtype=torch.float16)
    o, S, grads = _run(chunk_hebbian_kernel, x, 32)
    o_r, S_r, grads_r = _run(chunk_hebbian, _f64(x), 32)
    assert o.dtype == torch.float16
    errs = {"o": _rel(o, o_r), "state": _rel(S, S_r)}
    errs.update({f"d{n}": _rel(grads[n], grads_r[n]) for n in grads_r})
    assert max(errs.values()) < 5e-3, errs


def test_dispatch():
    x = _inputs(1, 20, 1, 16, 16, "log_a", True)
    args = (x["q"], x["k"], x["v"])
    kw = dict(log_a=x["log_a"], initial_state=x["initial_state"], chunk_size=16)
    ref = chunk_hebbian(*args, **kw)
    for impl in ("reference", "auto", "kernel"):
        o, S = hebbian(*args, **kw, impl=impl)
        assert _rel(o, ref[0]) < TOL_FP32 and _rel(S, ref[1]) < TOL_FP32, impl
    # chunk sizes the kernel does not take: "auto" falls back, "kernel" refuses
    for c in (12, 128):
        o, _ = hebbian(*args, **{**kw, "chunk_size": c}, impl="auto")
        assert _rel(o, ref[0]) < TOL_FP32
        with pytest.raises(ValueError):
            hebbian(*args, **{**kw, "chunk_size": c}, impl="kernel")
    with pytest.raises(ValueError):  # a and log_a together
        hebbian(*args, a=x["log_a"].exp(), **kw, impl="kernel")
    with pytest.raises(ValueError):
        hebbian(*args, **kw, impl="fast")


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


def _gpu_case(x, C, dtype):
    o, S, grads = _run(chunk_hebbian_kernel, x, C)
    o_r, S_r, grads_r = _run(chunk_hebbian, {n: t.float() for n, t in x.items()}, C)
    tol_v, tol_g = GPU_TOL[dtype]
    errs = {"o": _rel(o, o_r), "state": _rel(S, S_r)}
    errs.update({f"d{n}": _rel(grads[n], grads_r[n]) for n in grads_r})
    print(dtype, {n: f"{e:.1e}" for n, e in errs.items()})
    assert errs["o"] < tol_v and errs["state"] < tol_v, errs
    for n in grads_r:
        assert errs[f"d{n}"] < tol_g, errs


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("D", [64, 128])
def test_kernel_gpu_real_shapes(D, dtype):
    _gpu_case(_inputs(2, 2048, 4, D, D, "log_a", True, dtype=dtype), 64, dtype)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_linear_attention_gpu_no_gate_no_h0(dtype):
    # no retention: the state sums 2048 writes; relative errors stay per-element roundings
    _gpu_case(_inputs(2, 2048, 4, 128, 128, None, False, dtype=dtype), 64, dtype)
