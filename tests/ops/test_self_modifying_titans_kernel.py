"""Self-modifying Titans: the fused Triton kernels == the chunk reference: outputs, every memory's
final W1, W2, S1, S2, and the gradients of every input (x, W_q, each memory's init weights or its
whole initial state); and the dispatch runs them only where it may.

Without CUDA the kernel runs in Triton's interpreter (TRITON_INTERPRET=1, set before triton is
imported) on small awkward shapes against the chunk form in float64; with CUDA the same cases run
compiled, and a `gpu` test adds the 125M block's shape (head width 64, hidden 128, T = 2048).
"""

import os
from functools import partial

import pytest
import torch
import torch.nn.functional as F

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported
pytest.importorskip("triton")

from ops_common import DEV, gpu_test, rel_rmse  # noqa: E402
from test_self_modifying_titans import OPTIONS  # noqa: E402  (the chunk form's option sets)
from runtime.ops.self_modifying_titans import chunk_self_modifying_titans, memory_names  # noqa: E402
from runtime.ops.self_modifying_titans.dispatch import self_modifying_titans  # noqa: E402
from runtime.ops.self_modifying_titans.kernel import (  # noqa: E402
    chunk_self_modifying_titans_kernel, why_not,
)

# The cases below run the kernel with exact fp32 products ("ieee"), on CUDA too, where tf32 is the
# default: so the compiled kernels meet the same tolerance as the interpreter.
kernel_fp32 = partial(chunk_self_modifying_titans_kernel, precision="ieee")
# Through the dispatch or the layer, CUDA runs the tf32 default: its tolerance is the one the
# 125M-shape test measured (5.3e-3 worst over 32 chunks), here over fewer chunks.
TOL_DEFAULT = 2e-2 if DEV == "cuda" else 2e-5

pytestmark = pytest.mark.usefixtures("one_thread", "checked_kernel_memory")

# The kernel in fp32 (exact fp32 products in the interpreter) against the chunk form in float64
# on the same inputs: measured 7e-8 to 1.5e-7 relative RMSE on the outputs, up to 4e-6 on the
# states (the momentum buffers S, whose norms are a few percent of W's, carry the most relative
# rounding) and 1e-7 to 1.5e-6 on the gradients. 2e-5 keeps a 5x margin on the worst and still
# fails on a real bug: a wrong sign, mask or missing term gives 1e-3 to 1.
TOL = 2e-5
B, H = 2, 2

# the layer's regime (runtime/layers/selfmod.py): unit inputs and values, eta ~ 0.07, alpha ~ 0.993
BASE = dict(eta_bias=-2.6, alpha_bias=5.0, v_l2norm=True)


def make_inputs(T, D, hid, d_gate=1, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    x = F.normalize(r(B, T, H, D), dim=-1)
    init = {n: (0.5 * r(H, d_gate if n in ("eta", "alpha") else D, hid) / hid**0.5,
                r(H, hid, D) / D**0.5) for n in memory_names(True)}
    W_q = r(H, D, D) / D**0.5
    to = lambda t: t.to(DEV, dtype)  # noqa: E731
    return to(x), {n: (to(a), to(b)) for n, (a, b) in init.items()}, to(W_q)


def errors(out, state, ref_out, ref_state):
    errs = {"o": rel_rmse(out, ref_out)}
    for n in ref_state:
        for part, a, b in zip(("W1", "W2", "S1", "S2"), state[n], ref_state[n]):
            assert a.shape == b.shape and a.dtype == b.dtype, (n, part)
            if b.abs().max() > 0:  # (S without momentum is the zero initial state)
                errs[f"{n}.{part}"] = rel_rmse(a, b)
            else:
                assert a.abs().max() == 0, (n, part)
    return errs


def fp32(init):
    return {n: tuple(t.float() for t in ws) for n, ws in init.items()}


# (T, head width, hidden width, chunk): one token; a last chunk of 15 and of 4 tokens; a
# sequence shorter than its chunk; hidden narrower than the head. Each option runs two of them
# (the interpreter takes 1-5 s a case), and every shape runs with some option.
SHAPES = [(1, 16, 32, 16), (63, 16, 32, 16), (100, 32, 64, 16), (100, 16, 16, 32), (63, 16, 32, 32)]
CASES = [(opt, *shape) for i, opt in enumerate(OPTIONS)
         for shape in (SHAPES[i % 2], SHAPES[2 + i % 3])]


@pytest.mark.parametrize("opt,T,D,hid,chunk", CASES)
def test_kernel_equals_chunk(opt, T, D, hid, chunk):
    x, init, W_q = make_inputs(T, D, hid)
    kw = {**BASE, **OPTIONS[opt], "chunk_size": chunk}
    with torch.no_grad():
        ref_o, ref_s = chunk_self_modifying_titans(x, init, W_q, **kw)
        o, s = kernel_fp32(x.float(), fp32(init), W_q.float(), **kw)
    assert o.shape == x.shape and o.dtype == torch.float32
    errs = errors(o, s, ref_o.float(), {n: tuple(t.float() for t in ws) for n, ws in ref_s.items()})
    assert max(errs.values()) < TOL, errs


def residual_gates_with_state(T, D=16, hid=32):
    """Inputs with gate memories as wide as the head (residual), a per-token momentum [B, T, H]
    and a whole per-sequence initial state, momentum buffers included: (x, W_q, mom, state)."""
    x, init, W_q = make_inputs(T, D, hid, d_gate=D, seed=3)
    g = torch.Generator().manual_seed(7)
    mom = (0.4 * torch.rand(B, T, H, generator=g, dtype=torch.float64)).to(DEV)
    noise = lambda t: 0.02 * torch.randn(B, *t.shape, generator=g, dtype=torch.float64).to(DEV)  # noqa: E731
    state = {n: (W1.expand(B, *W1.shape).clone(), W2.expand(B, *W2.shape).clone(), noise(W1),
                 noise(W2)) for n, (W1, W2) in init.items()}
    return x, W_q, mom, state


def test_kernel_residual_gates_token_momentum_and_initial_state():
    """Gate memories as wide as the head (they keep the residual skip), a per-token momentum
    [B, T, H], and a whole initial state (momentum buffers included) instead of init weights."""
    x, W_q, mom, state = residual_gates_with_state(T=45)
    kw = {**BASE, "chunk_size": 16, "adaptive_q": True}
    with torch.no_grad():
        ref_o, ref_s = chunk_self_modifying_titans(x, None, W_q, momentum=mom, initial_state=state,
                                                   **kw)
        o, s = kernel_fp32(x.float(), None, W_q.float(), momentum=mom.float(),
                           initial_state=fp32(state), **kw)
    errs = errors(o, s, ref_o.float(), {n: tuple(t.float() for t in ws) for n, ws in ref_s.items()})
    assert max(errs.values()) < TOL, errs


def _grads(fn, x, init, W_q, kw, dtype, state=None, seed=5):
    """Every input's gradient under a random linear loss on the output and the final state."""
    leaves = {"x": x, "W_q": W_q}
    weights = state if state is not None else init
    names = memory_names(kw.get("adaptive_q", False), kw.get("retention", True))
    leaves.update({f"{n}.{i}": t for n in names for i, t in enumerate(weights[n])})
    leaves = {k: t.detach().to(dtype).requires_grad_() for k, t in leaves.items()}
    ws = {n: tuple(leaves[f"{n}.{i}"] for i in range(len(weights[n]))) for n in names}
    if state is not None:
        o, final = fn(leaves["x"], None, leaves["W_q"], initial_state=ws, **kw)
    else:
        o, final = fn(leaves["x"], ws, leaves["W_q"], **kw)
    g = torch.Generator().manual_seed(seed)
    probe = lambda t: (t.double() * torch.randn(t.shape, generator=g, dtype=torch.float64)  # noqa: E731
                       .to(t.device)).sum()
    loss = probe(o) + sum(probe(t) for n in sorted(final) for t in final[n])
    loss.backward()
    return {k: t.grad for k, t in leaves.items()}


def assert_grads_close(got, ref):
    errs = {}
    for k, r in ref.items():
        if r is None:  # (W_q is unused with an adaptive q)
            assert got[k] is None, k
            continue
        errs[k] = rel_rmse(got[k], r)
    assert max(errs.values()) < TOL, errs


@pytest.mark.parametrize("opt", list(OPTIONS))
def test_kernel_gradients_equal_chunk(opt):
    """Gradients through 3 chunks (a last one of 8 tokens) into x, W_q and every memory's init
    weights: the kernel's backward in fp32 against autograd through the chunk form in float64."""
    x, init, W_q = make_inputs(40, 16, 32)
    kw = {**BASE, **OPTIONS[opt], "chunk_size": 16}
    ref = _grads(chunk_self_modifying_titans, x, init, W_q, kw, torch.float64)
    got = _grads(kernel_fp32, x, init, W_q, kw, torch.float32)
    assert_grads_close(got, ref)


def test_kernel_residual_gates_token_momentum_and_initial_state_gradients():
    """The gradients of a whole initial state (momentum buffers included), with residual gate
    memories, a per-token momentum and chunk 32 over a sequence shorter than two chunks."""
    x, W_q, mom, state = residual_gates_with_state(T=45)
    kw = {**BASE, "chunk_size": 32, "read": "current"}
    ref = _grads(chunk_self_modifying_titans, x, None, W_q, {**kw, "momentum": mom},
                 torch.float64, state=state)
    got = _grads(kernel_fp32, x, None, W_q, {**kw, "momentum": mom.float()}, torch.float32,
                 state=state)
    assert_grads_close(got, ref)


def test_kernel_pads_widths_that_are_not_powers_of_two():
    """Head width 24 and hidden 20 (run as 32 and 32, zero-padded), with gate memories as wide as
    the head (residual, so the padding must not change which skip they take): values, final state
    and gradients as the chunk form's."""
    x, init, W_q = make_inputs(40, 24, 20, d_gate=24, seed=2)
    kw = {**BASE, "chunk_size": 16, "momentum": 0.5, "read": "current"}
    with torch.no_grad():
        ref_o, ref_s = chunk_self_modifying_titans(x, init, W_q, **kw)
        o, s = kernel_fp32(x.float(), fp32(init), W_q.float(), **kw)
    errs = errors(o, s, ref_o.float(), {n: tuple(t.float() for t in ws) for n, ws in ref_s.items()})
    assert max(errs.values()) < TOL, errs
    ref = _grads(chunk_self_modifying_titans, x, init, W_q, kw, torch.float64)
    assert_grads_close(_grads(kernel_fp32, x, init, W_q, kw, torch.float32), ref)


def test_kernel_recomputed_spans_give_the_same_values_and_gradients():
    """recompute_step=True: spans of chunks checkpointed and run again in the backward (less
    memory); same outputs, final state and gradients as keeping every chunk's start."""
    x, init, W_q = make_inputs(40, 16, 32)
    kw = {**BASE, "chunk_size": 16, "momentum": 0.5}
    plain = _grads(kernel_fp32, x, init, W_q, kw, torch.float32)
    spans = _grads(partial(kernel_fp32, recompute_step=True), x, init, W_q, kw, torch.float32)
    # bitwise equal but for W_q, whose per-span sums add in another order (measured 6e-8)
    errs = {k: rel_rmse(spans[k], plain[k]) for k in plain}
    assert max(errs.values()) < 1e-6, errs


def test_why_not_names_each_unsupported_call():
    x, init, W_q = make_inputs(20, 16, 32, dtype=torch.float32)
    assert why_not(x, init, W_q) is None
    assert why_not(x.clone().requires_grad_(), init, W_q) is None  # training runs it too
    assert "chunk 8" in why_not(x, init, W_q, chunk_size=8)
    assert "head width 192" in why_not(torch.zeros(1, 4, 2, 192), init, W_q)
    wide, wide_init, wide_q = make_inputs(4, 96, 32, dtype=torch.float32)  # runs as 128
    assert why_not(wide, wide_init, wide_q) is None
    assert "run as 128" in why_not(wide, wide_init, wide_q, verified_only=True)
    # no hidden tile fits Hopper's shared memory at width 128 and chunk 32 (bench/hopper_fit.py)
    assert "shared memory" in why_not(wide, wide_init, wide_q, chunk_size=32)
    assert why_not(x, init, W_q, chunk_size=32) is None  # width 16 (and 64) at chunk 32 fit
    assert why_not(x, init, W_q, verified_only=True) is None  # chunk 16 at width 16: checked
    assert "chunk 32" in why_not(x, init, W_q, chunk_size=32, verified_only=True)
    assert "per-head gate" in why_not(x, init, W_q, eta_bias=torch.zeros(H))
    mom = torch.full((B, 20, H), 0.5, requires_grad=True)
    assert "momentum gate that needs a gradient" in why_not(x, init, W_q, momentum=mom)
    uneven = dict(init, k=(init["k"][0][..., :16], init["k"][1][:, :16]))
    assert "different hidden widths" in why_not(x, uneven, W_q)


def test_dispatch():
    """impl="kernel" runs the kernel (values and gradients); "reference" and, off CUDA, "auto"
    run the chunk form; a constexpr that disagrees with the call is an error."""
    x, init, W_q = make_inputs(20, 16, 32, dtype=torch.float32)
    kw = {**BASE, "chunk_size": 16}
    leaf = x.clone().requires_grad_()
    o_k, _ = self_modifying_titans(leaf, init, W_q, impl="kernel", **kw)
    o_k.sum().backward()
    o_r, _ = self_modifying_titans(x, init, W_q, impl="reference", **kw)
    assert rel_rmse(o_k.detach(), o_r.detach()) < TOL_DEFAULT
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0
    if not torch.cuda.is_available():
        o_a, _ = self_modifying_titans(x, init, W_q, impl="auto", **kw)
        assert torch.equal(o_a, o_r)  # the chunk form itself
    with pytest.raises(ValueError, match="do not match"):
        self_modifying_titans(x, init, W_q, impl="auto", constexprs={"CHUNK": 32}, **kw)
    with pytest.raises(ValueError, match="chunk 8"):
        self_modifying_titans(x, init, W_q, impl="kernel", **{**kw, "chunk_size": 8})


def test_layer_runs_the_kernel():
    """The layer under implementation("kernel") gives the chunk form's outputs, the state it
    carries to the next call included, and its parameters' gradients."""
    from runtime.layers import SelfModifying
    from runtime.layers.common import implementation

    torch.manual_seed(0)
    hidden = {n: 32 for n in memory_names(False)}
    layer = SelfModifying(dim=32, heads=2, hidden=hidden, chunk=16, adaptive_q=False, dgd="input",
                          momentum=0.9, read="previous", lr_gate="softplus",
                          retain_gate="sigmoid", act="silu", conv=4, learn_init=True,
                          retain_init=0.95).to(DEV)
    x1, x2 = torch.randn(2, 21, 32, device=DEV), torch.randn(2, 13, 32, device=DEV)
    outs, grads = {}, {}
    for mode in ("chunk", "kernel"):
        layer.zero_grad()
        with implementation(mode):
            y1, st = layer(x1)
            y2, _ = layer(x2, st)
        (y1.square().sum() + y2.square().sum()).backward()
        outs[mode] = (y1.detach(), y2.detach())
        grads[mode] = {k: p.grad.clone() for k, p in layer.named_parameters()}
    for a, b in zip(outs["kernel"], outs["chunk"]):
        assert rel_rmse(a, b) < TOL_DEFAULT
    assert grads["kernel"].keys() == grads["chunk"].keys()
    # both sides fp32 with their own rounding orders (the interpreter: 1e-6 at most)
    for k in grads["chunk"]:
        assert rel_rmse(grads["kernel"][k], grads["chunk"][k]) < max(1e-4, TOL_DEFAULT), k


def _against_fp32_chunk(x, init, W_q, kw):
    """Every error (outputs, final state, gradients) of the chunk form in fp32 (the yardstick),
    the kernel with exact fp32 products and with tf32, all against the chunk form in float64."""
    init64 = {n: tuple(t.double() for t in ws) for n, ws in init.items()}
    ref = _grads(chunk_self_modifying_titans, x, init, W_q, kw, torch.float64)
    with torch.no_grad():
        ref_o, ref_s = chunk_self_modifying_titans(x.double(), init64, W_q.double(), **kw)
    ref_o, ref_s = ref_o.float(), {n: tuple(t.float() for t in ws) for n, ws in ref_s.items()}

    def measure(fn):
        errs = {k: rel_rmse(g, ref[k]) for k, g in _grads(fn, x, init, W_q, kw, torch.float32).items()}
        with torch.no_grad():
            o, s = fn(x.float(), fp32(init), W_q.float(), **kw)
        errs.update(errors(o.float(), {n: tuple(t.float() for t in ws) for n, ws in s.items()},
                           ref_o, ref_s))
        return errs

    return (measure(chunk_self_modifying_titans), measure(kernel_fp32),
            measure(partial(chunk_self_modifying_titans_kernel, precision="tf32")))


def _assert_near_fp32_chunk(yardstick, ieee, tf32):
    print("fp32 chunk", max(yardstick.values()), "ieee", max(ieee.values()), "tf32",
          max(tf32.values()))
    worse = {k: (v, yardstick[k]) for k, v in ieee.items() if v > 2 * yardstick[k] + 1e-6}
    assert not worse, worse
    assert max(tf32.values()) < 2e-2, tf32


@gpu_test
def test_kernel_at_the_125m_block_shape():
    """The 125M Hope block's memory: head width 64, hidden 128 (2x), momentum 0.9, chunk 16, over
    512 tokens: outputs, final state and every gradient against the chunk form in float64 on the
    GPU. The yardstick is the chunk form's own error in fp32 on the same inputs (H100: up to
    3.4e-5 on the final W and 4.3e-4 on the momentum buffers S, the rounding of 512 steps of a
    self-referential recurrence; 1e-7 on the gradients): "ieee" (exact fp32 products) must stay
    within 2x of it (H100: worst 4.9e-4). tf32 rounds each product's operands to 10 bits;
    measured up to 5.3e-3 (the eta memory's init gradient), so 2e-2; a wrong term gives O(1)."""
    x, init, W_q = make_inputs(512, 64, 128, dtype=torch.float32)
    kw = {**BASE, "chunk_size": 16, "momentum": 0.9, "eta_scale": 0.1, "alpha_bias": 2.944}
    _assert_near_fp32_chunk(*_against_fp32_chunk(x[:1], init, W_q, kw))


@gpu_test
@pytest.mark.parametrize("D,hid,chunk", [(128, 256, 16), (96, 192, 16), (64, 128, 32)])
def test_kernel_at_wide_tiles(D, hid, chunk):
    """Head width 128, 96 zero-padded to 128 (the results grid's dim 384 in 4 heads), and chunk 32
    at width 64 (width 128 at chunk 32 fits no tile: `why_not`): the tiles no GPU run has checked
    yet (`VERIFIED_WIDTH`), with the same yardstick."""
    x, init, W_q = make_inputs(128, D, hid, dtype=torch.float32)
    kw = {**BASE, "chunk_size": chunk, "momentum": 0.9, "eta_scale": 0.1, "alpha_bias": 2.944}
    _assert_near_fp32_chunk(*_against_fp32_chunk(x, init, W_q, kw))


def test_second_order_passes_run_the_chunk_form():
    """The kernels' backwards are first-order: a create_graph pass (the exact CMS signal's) must
    run the chunk forms under "fast", and a double backward through the kernel is an error, never
    a silently dropped term."""
    from runtime.layers.common import implementation, op, second_order

    picked = op(lambda: "chunk", lambda: "reference", auto=lambda: "kernel")
    assert picked() == "kernel"
    with second_order():
        assert picked() == "chunk"
        with implementation("reference"):
            assert picked() == "reference"
    assert picked() == "kernel"

    x, init, W_q = make_inputs(20, 16, 32, dtype=torch.float32)
    leaf = x.clone().requires_grad_()
    o, _ = kernel_fp32(leaf, init, W_q, **BASE)
    (g,) = torch.autograd.grad(o.square().sum(), leaf, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|double backward|twice"):
        g.sum().backward()
