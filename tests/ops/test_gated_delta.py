"""Gated delta rule: chunk (WY form with log decay) == naive (values and gradients), float64."""

import pytest
import torch

from runtime.ops.delta import naive_delta
from runtime.ops.gated_delta import chunk_gated_delta, naive_gated_delta

TOL = dict(rtol=1e-9, atol=1e-10)


def _inputs(T, Dk, Dv, seed=0, B=2, H=2):
    g = torch.Generator().manual_seed(seed)
    opts = dict(dtype=torch.float64, generator=g)
    q = torch.randn(B, T, H, Dk, **opts) / Dk**0.5
    k = torch.nn.functional.normalize(torch.randn(B, T, H, Dk, **opts), dim=-1)
    v = torch.randn(B, T, H, Dv, **opts)
    b = torch.rand(B, T, H, **opts)
    a = torch.rand(B, T, H, **opts) * 0.7 + 0.3  # retention in (0.3, 1)
    M0 = torch.randn(B, H, Dv, Dk, **opts)
    return q, k, v, b, a, M0


def _grads(out, leaves, seed=1):
    o, S = out
    g = torch.Generator().manual_seed(seed)
    wo = torch.randn(o.shape, dtype=torch.float64, generator=g)
    wS = torch.randn(S.shape, dtype=torch.float64, generator=g)
    return torch.autograd.grad((o * wo).sum() + (S * wS).sum(), leaves)


@pytest.mark.parametrize("T", [1, 63, 100])
@pytest.mark.parametrize("C", [16, 64])
@pytest.mark.parametrize("Dk,Dv", [(8, 16), (16, 8)])
def test_chunk_matches_naive(T, C, Dk, Dv):
    leaves = [x.requires_grad_() for x in _inputs(T, Dk, Dv)]
    q, k, v, b, a, M0 = leaves
    out_n = naive_gated_delta(q, k, v, b, a, initial_state=M0)
    out_c = chunk_gated_delta(q, k, v, b, a, initial_state=M0, chunk_size=C)
    torch.testing.assert_close(out_c[0], out_n[0], **TOL)
    torch.testing.assert_close(out_c[1], out_n[1], **TOL)
    for gc, gn in zip(_grads(out_c, leaves), _grads(out_n, leaves)):
        torch.testing.assert_close(gc, gn, **TOL)


def test_log_a_gradients_and_strong_decay():
    # log a = -30 per token: the cumulative log gate reaches -30 * 64 inside a chunk, far past
    # where exp(-G) would overflow; the chunk form only exponentiates differences G_t - G_s <= 0.
    q, k, v, b, a, M0 = _inputs(100, 8, 4)
    log_a = torch.where(torch.rand(a.shape, generator=torch.Generator().manual_seed(2)) < 0.5, a.log(), -30.0)
    leaves = [x.requires_grad_() for x in (q, k, v, b, log_a, M0)]
    out_n = naive_gated_delta(q, k, v, b, log_a=log_a, initial_state=M0)
    out_c = chunk_gated_delta(q, k, v, b, log_a=log_a, initial_state=M0, chunk_size=64)
    torch.testing.assert_close(out_c[0], out_n[0], **TOL)
    torch.testing.assert_close(out_c[1], out_n[1], **TOL)
    for gc, gn in zip(_grads(out_c, leaves), _grads(out_n, leaves)):
        assert torch.isfinite(gc).all()
        torch.testing.assert_close(gc, gn, **TOL)


def test_no_gate_is_the_delta_rule():
    q, k, v, b, _, M0 = _inputs(30, 8, 8)
    o_d, S_d = naive_delta(q, k, v, b, initial_state=M0)
    o_c, S_c = chunk_gated_delta(q, k, v, b, initial_state=M0, chunk_size=16)
    torch.testing.assert_close(o_c, o_d, **TOL)
    torch.testing.assert_close(S_c, S_d, **TOL)


@pytest.mark.parametrize("fn", [naive_gated_delta, chunk_gated_delta])
def test_hand_computed_facts(fn):
    q, k, v, _, a, M0 = _inputs(10, 8, 4)
    # b = 0: pure decay, M_T = (a_1 ... a_T) M_0.
    _, S = fn(q, k, v, torch.zeros_like(a), a, initial_state=M0)
    torch.testing.assert_close(S, a.prod(dim=1)[..., None, None] * M0, **TOL)
    # b = 1, unit k: M_t k_t = a_t M_{t-1} (k_t - k_t) + v_t = v_t, so reading with q = k gives v.
    o, _ = fn(k, k, v, torch.ones_like(a), a, initial_state=M0)
    torch.testing.assert_close(o, v, **TOL)
