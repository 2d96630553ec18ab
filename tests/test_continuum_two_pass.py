"""The CMS layer's two_pass second pass (runtime/layers/cms_learning.py) keeps each level's gradient
as token-sized factors, reads applied updates in low-rank form and folds them into the weights
every FOLD_TOKENS tokens. It must equal
the plain definition, written here: per segment, autograd.grad of sum(y . u) with respect to
fresh aliases of every in-context level's weights, then `update`. Checked in float64 on outputs,
final weights and pending updates, and the outer gradients of x and every initial weight, across
variants, level kinds, detached and differentiable writes, and calls that stop mid-period."""
from __future__ import annotations

import pytest
import torch

from runtime.layers import cms_learning
from runtime.layers.common import alias_weight
from runtime.layers.continuum import Continuum
from runtime.ops.cms.chunk import segment_cuts

pytestmark = pytest.mark.usefixtures("one_thread")


def per_segment_reference(layer: Continuum, x, state, u, meta: bool):
    """The definition: one autograd.grad per segment with respect to the weights in force."""
    outer_grad = torch.is_grad_enabled()
    periods = [layer.periods[i] for i in layer.in_context]
    cuts = segment_cuts(state.pos, x.shape[1], periods)
    outputs = []
    for a, b in zip(cuts, cuts[1:]):
        ws = tuple(tuple(alias_weight(w, outer_grad) for w in lv) for lv in state.weights)
        state = state._replace(weights=ws)
        with torch.enable_grad():
            y, _ = layer._read(x[:, a:b], state)
            flat = [w for lv in ws for w in lv]
            grads = torch.autograd.grad((y * u[:, a:b]).sum(), flat, create_graph=meta,
                                        retain_graph=outer_grad, allow_unused=True)
        grads = iter(torch.zeros_like(w) if g is None else g for w, g in zip(flat, grads))
        state = layer.update(state, tuple(tuple(next(grads) for _ in lv) for lv in ws), b - a)
        outputs.append(y)
    return torch.cat(outputs, dim=1), state


def _layer(variant, kind, periods=(4, 8, 32),
           regimes=("in_context", "in_context", "cross_sequence")):
    torch.manual_seed(0)
    layer = Continuum(6, 10, kind, "silu", variant, list(periods), list(regimes), 0.05, "two_pass",
                      16).double()
    with torch.no_grad():  # the residual levels' second layer starts at 0: make every term count
        for lv in layer.levels:
            lv["down"].normal_(0, 0.1)
    return layer


def _run(layer, x, u, meta, fn, cut):
    """Two calls (x[:, :cut], x[:, cut:]) carrying the state; outputs, final state."""
    state = layer.init_state(x.shape[0])
    ys = []
    for a, b in ((0, cut), (cut, x.shape[1])):
        if fn == "layer":
            layer.two_pass_mode = ("learn", u[:, a:b], meta)
            try:
                y, state = layer(x[:, a:b], state)
            finally:
                layer.two_pass_mode = None
        else:
            y, state = per_segment_reference(layer, x[:, a:b], state, u[:, a:b], meta)
        ys.append(y)
    return torch.cat(ys, dim=1), state


@pytest.mark.parametrize("variant,kind,periods", [
    ("sequential", "residual_mlp", (4, 8, 32)), ("sequential", "swiglu", (4, 8, 32)),
    ("independent", "mlp", (4, 8, 32)), ("nested", "residual_mlp", (4, 8, 32)),
    # a reset (every 8) between the fast level's boundaries (every 3) discards its collected terms
    ("nested", "residual_mlp", (3, 8, 32))])
@pytest.mark.parametrize("meta", [True, False])
@pytest.mark.parametrize("cut", [6, 13])
# applied updates read in low-rank form until 4, 6 or 128 tokens of them are folded in
@pytest.mark.parametrize("fold", [4, 6, 128])
def test_collected_gradients_equal_the_per_segment_definition(variant, kind, periods, meta, cut,
                                                              fold, monkeypatch):
    monkeypatch.setattr(cms_learning, "FOLD_TOKENS", fold)
    layer = _layer(variant, kind, periods)
    torch.manual_seed(1)
    x = torch.randn(2, 23, 6, dtype=torch.float64, requires_grad=True)
    u = torch.randn(2, 23, 6, dtype=torch.float64)
    y, state = _run(layer, x, u, meta, "layer", cut)
    y_ref, state_ref = _run(layer, x, u, meta, "reference", cut)
    # float64; the sums over a period run in another order than the per-segment additions
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    for got, want in zip((state.weights, state.pending), (state_ref.weights, state_ref.pending)):
        for g_lv, w_lv in zip(got, want):
            for g, w in zip(g_lv, w_lv):
                torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
    assert state.pos == state_ref.pos == 23
    # the call stops mid-period of the slower level: its pending update is not empty
    assert any(p.abs().max() > 0 for p in state.pending[-1])

    leaves = [x, *layer.parameters()]

    def outer(out, st):
        loss = out.square().sum() + sum(w.square().sum() for lv in st.weights for w in lv)
        return torch.autograd.grad(loss, leaves, allow_unused=True)

    y, state = _run(layer, x, u, meta, "layer", cut)
    got = outer(y, state)
    y_ref, state_ref = _run(layer, x, u, meta, "reference", cut)
    want = outer(y_ref, state_ref)
    for g, w in zip(got, want):
        if w is None:
            assert g is None or g.abs().max() == 0
        else:
            torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_outside_training_the_pass_keeps_no_graph():
    layer = _layer("sequential", "residual_mlp")
    x, u = (torch.randn(1, 11, 6, dtype=torch.float64) for _ in range(2))
    layer.two_pass_mode = ("learn", u, False)
    with torch.no_grad():
        y, state = layer(x)
    y_ref, state_ref = per_segment_reference(layer, x, layer.init_state(1), u, False)
    torch.testing.assert_close(y, y_ref.detach(), rtol=1e-12, atol=1e-12)
    assert not y.requires_grad
    assert not any(w.requires_grad for lv in state.weights for w in lv)
