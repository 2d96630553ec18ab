"""Titans MLP memory: the Triton kernels == the chunk reference (values, final state, gradients of
every input: q, k, v, eta, theta, alpha, the init weights or the whole initial state).

Without CUDA the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set here before triton is
imported) on small awkward shapes; with CUDA the same cases run compiled, and the `gpu` tests add
real shapes (D = 64 and 128, T = 2048, chunk 64) in fp32 and bf16 against an fp32 reference.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported (kernel.py reads it)
pytest.importorskip("triton")

from ops_common import DEV, assert_errors_below, gpu_real_shapes, gpu_test, rel_rmse  # noqa: E402
from runtime.ops.titans import chunk_titans, titans  # noqa: E402
from runtime.ops.titans.kernel import chunk_titans_kernel, supports  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread", "checked_kernel_memory")  # tests/bounds.py

# Small cases: the kernel in fp32 (exact fp32 products in the interpreter), the chunk reference in
# float64 on the same inputs, so the gap is the kernel's fp32 rounding: measured 3e-8 to 4e-7
# relative RMSE on values, final state and every gradient (the chain through 4 to 7 chunks of an
# MLP memory, its grad factors and s'' adds a few roundings per step). 1e-5 keeps a 25x margin and
# still fails on any real bug: a wrong sign, mask, transpose or missing term gives 1e-3 to 1.
TOL_FP32 = 1e-5
NAMES = ("q", "k", "v", "eta", "theta", "alpha")


def _inputs(B, T, H, Dk, Dv, hid, h0=False, dtype=torch.float32, seed=0):
    """Titans' regime: unit keys, momentum in [0.5, 1), small lr and forgetting."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    x = dict(
        q=torch.nn.functional.normalize(r(B, T, H, Dk), dim=-1),
        k=torch.nn.functional.normalize(r(B, T, H, Dk), dim=-1),
        v=r(B, T, H, Dv) * 0.5,
        eta=0.5 + 0.5 * u(B, T, H),
        theta=0.1 * u(B, T, H),
        alpha=0.1 * u(B, T, H),
    )
    if h0:  # a whole state, momentum included (W1_init / W2_init are then unused)
        x.update(W1=r(B, H, Dv, hid) / hid**0.5, W2=r(B, H, hid, Dk) / Dk**0.5,
                 S1=r(B, H, Dv, hid) * 0.05, S2=r(B, H, hid, Dk) * 0.05)
    else:  # meta-learned init weights shared over the batch
        x.update(W1=r(H, Dv, hid) / hid**0.5, W2=r(H, hid, Dk) / Dk**0.5)
    return {n: t.to(DEV, dtype) for n, t in x.items()}


def _run(fn, x, loss="both", seed=1, **kw):
    """Forward, a random linear loss on o and/or the final state, and every input's gradient."""
    leaves = {n: t.detach().clone().requires_grad_() for n, t in x.items()}
    args = [leaves[n] for n in NAMES]
    if "S1" in leaves:
        state = tuple(leaves[n] for n in ("W1", "W2", "S1", "S2"))
        o, S = fn(*args, initial_state=state, **kw)
    else:
        o, S = fn(*args, leaves["W1"], leaves["W2"], **kw)
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    if loss in ("o", "both"):
        total = total + (o.double() * torch.randn(o.shape, generator=g).to(o.device)).sum()
    if loss in ("state", "both"):
        for s in S:
            total = total + (s.double() * torch.randn(s.shape, generator=g).to(s.device)).sum()
    total.backward()
    grads = {n: torch.zeros_like(t) if t.grad is None else t.grad for n, t in leaves.items()}
    return o.detach(), [s.detach() for s in S], grads


def _compare(x, C, memory, activation, loss, tol, tol_grad=None, block_hidden=None, precision=None,
             tol_state=None):
    kw = dict(chunk_size=C, memory=memory, activation=activation)
    o, S, grads = _run(chunk_titans_kernel, x, loss, block_hidden=block_hidden, precision=precision, **kw)
    ref_in = {n: t.double() if t.device.type == "cpu" else t.float() for n, t in x.items()}
    o_r, S_r, grads_r = _run(chunk_titans, ref_in, loss, **kw)
    assert o.shape == o_r.shape and o.dtype == x["q"].dtype
    errs = {"o": rel_rmse(o, o_r)}
    errs.update({f"state{i}": rel_rmse(s, s_r) for i, (s, s_r) in enumerate(zip(S, S_r))})
    errs.update({f"d{n}": rel_rmse(grads[n], grads_r[n]) for n in grads_r})
    print({n: f"{e:.1e}" for n, e in errs.items()})
    states = {n: e for n, e in errs.items() if n.startswith("state")}
    assert_errors_below({n: e for n, e in errs.items() if n not in states}, tol, tol_grad)
    assert_errors_below(states, tol_state or tol)
    return errs


CASES = [
    # B, T, H, Dk, Dv, hid, C, memory, activation, h0, loss, block_hidden (tiles of the hidden)
    (2, 63, 2, 16, 16, 32, 16, "mlp", "silu", False, "both", 16),  # 2 tiles, padded last chunk
    (1, 100, 1, 32, 32, 128, 32, "residual_mlp", "silu", False, "both", 32),  # 4x, 4 tiles
    (1, 100, 2, 16, 16, 64, 16, "residual_mlp", "gelu", True, "o", None),  # initial state given
    (1, 63, 1, 32, 16, 64, 32, "mlp", "silu", True, "state", 32),  # Dk != Dv; o unused
]


@pytest.mark.parametrize("B,T,H,Dk,Dv,hid,C,memory,activation,h0,loss,bh", CASES)
def test_kernel_matches_chunk(B, T, H, Dk, Dv, hid, C, memory, activation, h0, loss, bh):
    x = _inputs(B, T, H, Dk, Dv, hid, h0)
    # exact fp32 products asked for explicitly: the interpreter's default, and on CUDA the 1e-5
    # limit would otherwise meet the compiled kernel's default bf16 products (not yet run on a
    # GPU: should fp32 tiles at these small widths not fit shared memory, the launch says so;
    # the `gpu` tests below cover bf16 at real shapes)
    _compare(x, C, memory, activation, loss, TOL_FP32, block_hidden=bh, precision="ieee")


def test_no_grad_forward():
    """Without a gradient due the forward keeps only the latest state (two slots)."""
    x = _inputs(1, 63, 2, 16, 16, 32, h0=True)
    state = tuple(x[n] for n in ("W1", "W2", "S1", "S2"))
    args = [x[n] for n in NAMES]
    with torch.no_grad():
        o, S = chunk_titans_kernel(*args, initial_state=state, chunk_size=16)
    o_r, S_r = chunk_titans(*[t.double() for t in args],
                            initial_state=tuple(t.double() for t in state), chunk_size=16)
    assert rel_rmse(o, o_r) < TOL_FP32
    assert all(rel_rmse(a, b) < TOL_FP32 for a, b in zip(S, S_r))


def test_empty_sequence():
    x = _inputs(1, 0, 2, 16, 16, 32, h0=True)
    state = tuple(x[n] for n in ("W1", "W2", "S1", "S2"))
    o, S = chunk_titans_kernel(*[x[n] for n in NAMES], initial_state=state, chunk_size=16)
    assert o.shape == x["v"].shape
    assert all(torch.equal(a, b) for a, b in zip(S, state))


def test_dispatch_and_fallback():
    x = _inputs(1, 20, 1, 16, 16, 32)
    args = [x[n] for n in NAMES] + [x["W1"], x["W2"]]
    ref = chunk_titans(*args, chunk_size=16)
    for impl in ("reference", "auto", "kernel"):
        o, S = titans(*args, chunk_size=16, impl=impl)
        assert rel_rmse(o, ref[0]) < TOL_FP32 and rel_rmse(S[0], ref[1][0]) < TOL_FP32, impl
    # options the kernel does not take: "auto" falls back to the chunk form, "kernel" refuses
    for bad in (dict(chunk_size=12), dict(read="chunk_start"), dict(chunk_size=128)):
        kw = {"chunk_size": 16, **bad}
        assert not supports(*args, **kw)
        o, _ = titans(*args, **kw, impl="auto")
        assert rel_rmse(o, chunk_titans(*args, **kw)[0]) < TOL_FP32
        with pytest.raises(ValueError, match="does not support"):
            titans(*args, **kw, impl="kernel")
    with pytest.raises(ValueError):
        titans(*args, impl="fast")


# bf16 products, the GPU's precision for every input dtype (kernel.py `_prec`: fp32 operand tiles
# do not fit Hopper's shared memory), emulated in the interpreter by rounding each operand to the
# nearest bf16 (what .to(bf16) does on the GPU) before an fp32 product. Against the float64
# reference: measured 2.4e-3 to 5.8e-3 relative RMSE on values, state and every gradient at D = 16
# (fp32 or bf16 inputs) and <= 7.3e-3 at D = 64, C = 64, 4 chunks; PyTorch's own bf16 chunk form
# is at 0.8e-2 to 2.3e-2 on the same inputs. Limit 2e-2.
TOL_BF16 = 2e-2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the interpreter's emulation of the bf16 "
                    "products; on CUDA the real ones are tested by test_kernel_gpu_real_shapes (bf16)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernel_bf16_products(dtype):
    x = _inputs(1, 100, 1, 16, 16, 64, dtype=dtype)
    kw = dict(chunk_size=16, memory="mlp", precision="bf16")
    o, S, grads = _run(chunk_titans_kernel, x, **kw)
    o_r, S_r, grads_r = _run(chunk_titans, {n: t.double() for n, t in x.items()}, chunk_size=16)
    errs = [rel_rmse(o, o_r)] + [rel_rmse(s, s_r) for s, s_r in zip(S, S_r)]
    errs += [rel_rmse(grads[n], grads_r[n]) for n in grads_r]
    assert max(errs) < TOL_BF16, errs


# ---------------------------------------------------------------------------------------------
# GPU: real shapes, against the fp32 chunk reference computed from the same (rounded) inputs.
# On CUDA the kernel's products have bf16 operands for fp32 and bf16 inputs alike (see above),
# accumulated in fp32, with the state and its gradient carried in fp32. The limits extrapolate
# the interpreter's emulation (<= 7.3e-3 at D = 64 over 4 chunks) to 32 chunks at D = 64 and
# 128: 3e-2 on values and state, 5e-2 on gradients. They were not measured on a GPU when written
# (no device here): tighten them to ~3x the printed errors after the first H100 run.
# ---------------------------------------------------------------------------------------------

GPU_TOL = {torch.float32: (3e-2, 5e-2), torch.bfloat16: (3e-2, 5e-2)}
# The final state after 32 chunks sums 32 updates, each a product of bf16 operands (the kernel's
# products on CUDA for every input dtype, `_prec`): its relative RMSE measured 2.0-3.1e-2 on an
# H100 at D = 64 and 128 (fp32 inputs, D = 64, reached 3.1e-2 and failed the values' 3e-2), like
# the gradients, which sum as many bf16 products; a wrong term or transpose gives 1e-1 or more.
GPU_TOL_STATE = 5e-2


@gpu_real_shapes
def test_kernel_gpu_real_shapes(D, dtype):
    x = _inputs(2, 2048, 4, D, D, 4 * D, dtype=dtype)
    tol_v, tol_g = GPU_TOL[dtype]
    _compare(x, 64, "mlp", "silu", "both", tol_v, tol_g, tol_state=GPU_TOL_STATE)


@gpu_test
def test_kernel_gpu_residual_initial_state():
    x = _inputs(2, 1000, 4, 128, 128, 256, h0=True, dtype=torch.bfloat16)
    _compare(x, 64, "residual_mlp", "silu", "both", *GPU_TOL[torch.bfloat16], tol_state=GPU_TOL_STATE)


def test_deep_memory_layer_uses_kernel():
    """The compiled layer (runtime/layers/fast.py DeepMemory) under implementation("kernel") equals
    implementation("chunk"): outputs and the gradients of its parameters (meta-learned init)."""
    from runtime.layers.common import implementation
    from runtime.layers.fast import DeepMemory

    torch.manual_seed(0)
    data = {"mode": "data"}
    layer = DeepMemory(32, 2, "gd", "l2", 16, data, data, data, 0, True, True, False, "mlp", 32,
                       "silu", "current").to(DEV)
    x = torch.randn(2, 40, 32, device=DEV)
    results = []
    for mode in ("kernel", "chunk"):
        layer.zero_grad()
        with implementation(mode):
            y, (state, _) = layer(x)
        (y.square().sum() + state[0].sum()).backward()
        results.append((y.detach(), {n: p.grad.clone() for n, p in layer.named_parameters()}))
    (y_k, g_k), (y_c, g_c) = results
    assert rel_rmse(y_k, y_c) < TOL_FP32
    for n in g_c:
        assert rel_rmse(g_k[n], g_c[n]) < TOL_FP32, n
