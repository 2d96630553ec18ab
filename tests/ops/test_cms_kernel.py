"""CMS chunk-boundary update: the fused Triton kernel == the PyTorch ops (values, gradients of
every input, double backward), and Continuum.update == advance(accumulate(...)) in every mode.

Without CUDA the kernel runs in Triton's interpreter (TRITON_INTERPRET=1, set before triton is
imported). The update is elementwise and linear, so in float64 the kernel (which accumulates fp64
inputs in fp64) and PyTorch agree to rounding: 1e-12 absolute on O(1) values. In fp32 both round
once or twice per element: 1e-6 relative.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported (kernel.py reads it)
pytest.importorskip("triton")

from runtime.layers.common import implementation  # noqa: E402
from runtime.layers.continuum import Continuum  # noqa: E402
from runtime.ops.cms.dispatch import cms_update  # noqa: E402

pytestmark = pytest.mark.usefixtures("checked_kernel_memory")  # tests/bounds.py

DEV = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {torch.float64: dict(rtol=0, atol=1e-12), torch.float32: dict(rtol=1e-6, atol=1e-6)}


def _leaves(shape, B, dtype, expand, seed=0):
    g = torch.Generator().manual_seed(seed)
    w0 = torch.randn(shape, generator=g, dtype=dtype).to(DEV).requires_grad_()
    p = torch.randn(B, *shape, generator=g, dtype=dtype).to(DEV).requires_grad_()
    gr = torch.randn(B, *shape, generator=g, dtype=dtype).to(DEV).requires_grad_()
    return w0, p, gr


def _through(impl, w0, p, g, apply, expand, B, lr=0.3):
    """Update, a loss on (W', P'), first gradients with create_graph, then second gradients."""
    w = w0.expand(B, *w0.shape) if expand else (w0 * 1.5).unsqueeze(0).repeat(B, *[1] * w0.dim())
    W, P = cms_update(w, p, g, lr, apply, impl=impl)
    mix = torch.linspace(-1, 1, P[0].numel(), device=P.device, dtype=P.dtype).view(P.shape[1:])
    loss = 0.5 * (W * W).sum() + (P * mix).sum()
    grads = torch.autograd.grad(loss, [w0, p, g], create_graph=True)
    second = torch.autograd.grad(sum((x * x.detach().cos()).sum() for x in grads), [w0, p, g],
                                 allow_unused=True)  # without a boundary: linear in p, g
    second = [torch.zeros_like(x) if d is None else d for x, d in zip((w0, p, g), second)]
    return (W, P, *grads, *second)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("apply", [True, False])
@pytest.mark.parametrize("expand", [True, False])  # W = theta_0 broadcast (stride 0) or full
def test_kernel_matches_pytorch(dtype, apply, expand):
    B, shape = 3, (37, 61)  # 2257 elements per row: one full block of 2048 and a ragged one
    w0, p, g = _leaves(shape, B, dtype, expand)
    got = _through("kernel", w0, p, g, apply, expand, B)
    ref = _through("reference", w0, p, g, apply, expand, B)
    names = ["W'", "P'", "dw", "dp", "dg", "d2w", "d2p", "d2g"]
    for name, a, b in zip(names, got, ref):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        torch.testing.assert_close(a, b, **TOL[dtype], msg=name)
    if apply:  # the pending update is spent: exactly zero
        assert got[1].count_nonzero() == 0


def test_kernel_without_w_output_unused():
    # only the pending output is used (no boundary): W' is W itself, not a copy
    w0, p, g = _leaves((5, 7), 2, torch.float64, True)
    w = w0.expand(2, 5, 7)
    W, P = cms_update(w, p, g, 0.1, False, impl="kernel")
    assert W is w
    torch.testing.assert_close(P, p + 0.1 * g, rtol=0, atol=1e-15)


def test_dispatch_rejects():
    w0, p, g = _leaves((4, 4), 2, torch.float32, False)
    with pytest.raises(ValueError):
        cms_update(w0.expand(2, 4, 4), p, g, 0.1, True, impl="fast")
    with pytest.raises(ValueError):  # mixed dtypes: the kernel refuses, "auto" would fall back
        cms_update(w0.expand(2, 4, 4), p.double(), g, 0.1, True, impl="kernel")


@pytest.mark.parametrize("variant", ["sequential", "nested"])
@pytest.mark.parametrize("meta", [True, False])
def test_continuum_update_equals_accumulate_advance(variant, meta):
    torch.manual_seed(0)
    cms = Continuum(dim=12, hidden=20, kind="mlp", act="gelu", variant=variant, periods=[4, 8],
                    regimes=["in_context", "in_context"], lr=0.05, signal="exact", context=32)
    cms = cms.double().to(DEV)
    x = torch.randn(2, 24, 12, dtype=torch.float64, device=DEV)
    results = {}
    for mode in ("kernel", "reference", "split"):
        y, state = _run_segments(cms, x, mode, meta)
        params = list(cms.parameters())
        grads = torch.autograd.grad(y.square().sum(), params, allow_unused=True)
        results[mode] = (y, *[w for lv in state.weights for w in lv], *grads)
    for mode in ("kernel", "reference"):
        for a, b in zip(results[mode], results["split"]):
            if a is None or b is None:
                assert a is None and b is None
                continue
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def _run_segments(cms, x, mode, meta, seg=4):
    """A small copy of the model's segment loop (runtime/model_base.py) on one Continuum layer:
    read a segment, take d(loss)/d(weights) (create_graph under meta), update, go on. mode
    "kernel" / "reference": Continuum.update under that implementation; "split": the unfused
    accumulate + advance."""
    state = cms.init_state(x.shape[0])
    outs = []
    with implementation("reference" if mode == "split" else mode):
        for s in range(0, x.shape[1], seg):
            ws = tuple(tuple(w.view_as(w) for w in lv) for lv in state.weights)
            state = state._replace(weights=ws)
            y, state = cms(x[:, s:s + seg], state)
            flat = [w for lv in ws for w in lv]
            grads = torch.autograd.grad(y.tanh().square().sum(), flat, create_graph=meta,
                                        retain_graph=True)
            it = iter(grads)
            grads = tuple(tuple(next(it) for _ in lv) for lv in ws)
            if mode == "split":  # the unfused PyTorch steps the model loop calls today
                state = cms.advance(cms.accumulate(state, grads), seg)
            else:
                state = cms.update(state, grads, seg)
            outs.append(y)
    return torch.cat(outs, 1), state
