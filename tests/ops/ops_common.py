"""Comparisons shared by the op tests (float64 chunk form vs token-by-token definition), and the
inputs, runs and checks shared by the Triton kernel tests (test_*_kernel.py)."""
from __future__ import annotations

import pytest
import torch


def rel_err(a, b) -> float:
    """Largest absolute difference over the largest magnitude of the reference."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def assert_close(a, b, rtol=1e-9):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = rel_err(a, b)
    assert err < rtol, err


def rel_rmse(x, ref) -> float:
    """Relative RMSE in float64: ||x - ref|| / ||ref|| (the Triton kernel tests' measure)."""
    x, ref = x.double(), ref.double()
    return ((x - ref).norm() / ref.norm().clamp_min(1e-30)).item()


# ---------------------------------------------------------------------------------------------
# Triton kernel tests (test_*_kernel.py). Each module sets TRITON_INTERPRET itself before it
# imports triton; nothing here imports triton.
# ---------------------------------------------------------------------------------------------

DEV = "cuda" if torch.cuda.is_available() else "cpu"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
gpu_dtypes = pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])


def gpu_test(fn):
    """A `gpu` test: marked `gpu`, skipped without CUDA."""
    return pytest.mark.gpu(needs_cuda(fn))


def gpu_real_shapes(fn):
    """A `gpu` test over head widths D in (64, 128) and dtype in (bf16, fp32)."""
    return gpu_test(gpu_dtypes(pytest.mark.parametrize("D", [64, 128])(fn)))


def assert_errors_below(errs, tol, tol_grad=None):
    """Every error in `errs` under tol; gradients ("d<name>") under tol_grad where it is given."""
    for n, err in errs.items():
        assert err < (tol_grad if tol_grad and n.startswith("d") else tol), (n, errs)


# Linear rules with a matrix state (gated delta: beta input `b`; Hebbian: none): inputs q, k, v,
# [b], an optional gate `a` or `log_a` and an optional initial state; fn(q, k, v, [b], a=.. |
# log_a=.., initial_state=.., chunk_size=C) -> (o, final state).


def linear_rule_inputs(B, T, H, Dk, Dv, gate, h0, dtype=torch.float32, seed=0,
                       strong_decay=False, beta=False):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    x = dict(
        q=r(B, T, H, Dk) / Dk**0.5,
        k=torch.nn.functional.normalize(r(B, T, H, Dk), dim=-1),
        v=r(B, T, H, Dv),
    )
    if beta:
        x["b"] = torch.sigmoid(r(B, T, H))
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


def linear_rule_args(x):
    """The positional inputs: q, k, v and b where the rule has it."""
    return [x[n] for n in ("q", "k", "v", "b") if n in x]


def linear_rule_run(fn, x, C, loss="both", seed=1):
    """Forward, a random linear loss on o and/or the final state, and every input's gradient."""
    leaves = {n: t.detach().clone().requires_grad_() for n, t in x.items()}
    kw = {n: leaves[n] for n in ("a", "log_a", "initial_state") if n in leaves}
    o, S = fn(*linear_rule_args(leaves), chunk_size=C, **kw)
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


def linear_rule_errors(kernel, reference, x, C, loss="both", ref_dtype=torch.float64):
    """The kernel on x against the reference on x cast to ref_dtype: the relative RMSE of the
    values ("o"), the final state ("state") and every input's gradient ("d<name>"), and the
    kernel's (o, S, grads)."""
    o, S, grads = run = linear_rule_run(kernel, x, C, loss)
    o_r, S_r, grads_r = linear_rule_run(reference, {n: t.to(ref_dtype) for n, t in x.items()}, C,
                                        loss)
    assert o.shape == o_r.shape and S.shape == S_r.shape
    assert grads.keys() == grads_r.keys()
    errs = {"o": rel_rmse(o, o_r), "state": rel_rmse(S, S_r)}
    errs.update({f"d{n}": rel_rmse(grads[n], grads_r[n]) for n in grads_r})
    return errs, run


def check_linear_rule_strong_decay(kernel, reference, tol, beta=False):
    """log a = -30 on half the tokens: cumulative log gates of order -1000 inside a chunk."""
    x = linear_rule_inputs(1, 63, 1, 16, 16, "log_a", True, strong_decay=True, beta=beta)
    errs, (_, _, grads) = linear_rule_errors(kernel, reference, x, 32)
    for name, g in grads.items():
        assert torch.isfinite(g).all(), name
    assert_errors_below(errs, tol)


def check_linear_rule_gpu(kernel, reference, x, C, tols, *label):
    """Real shapes on the GPU against the fp32 reference on the same (rounded) inputs, with limits
    tols = (values and state, gradients); prints the errors after `label`."""
    errs, _ = linear_rule_errors(kernel, reference, x, C, ref_dtype=torch.float32)
    print(*label, {n: f"{e:.1e}" for n, e in errs.items()})
    assert_errors_below(errs, *tols)


def check_linear_rule_dispatch(dispatch, reference, x, tol):
    """impl= "reference", "auto" and "kernel" agree with the reference; chunk sizes the kernel does
    not take fall back under "auto" and raise under "kernel"; an unknown impl raises. Returns the
    positional and keyword arguments used."""
    args = linear_rule_args(x)
    kw = dict(log_a=x["log_a"], initial_state=x["initial_state"], chunk_size=16)
    ref = reference(*args, **kw)
    for impl in ("reference", "auto", "kernel"):
        o, S = dispatch(*args, **kw, impl=impl)
        assert rel_rmse(o, ref[0]) < tol and rel_rmse(S, ref[1]) < tol, impl
    for c in (12, 128):
        o, _ = dispatch(*args, **{**kw, "chunk_size": c}, impl="auto")
        assert rel_rmse(o, ref[0]) < tol
        with pytest.raises(ValueError):
            dispatch(*args, **{**kw, "chunk_size": c}, impl="kernel")
    with pytest.raises(ValueError):
        dispatch(*args, **kw, impl="fast")
    return args, kw
