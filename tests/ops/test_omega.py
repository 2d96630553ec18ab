"""Omega rule (sliding window): chunk (block WY form) == naive (values and gradients), float64."""

import pytest
import torch

from runtime.ops.gated_delta import naive_gated_delta
from runtime.ops.omega import chunk_omega, naive_omega

TOL = dict(rtol=1e-9, atol=1e-10)


def _inputs(T, Dk, Dv, window, seed=0, B=2, H=2):
    g = torch.Generator().manual_seed(seed)
    opts = dict(dtype=torch.float64, generator=g)
    q = torch.randn(B, T, H, Dk, **opts) / Dk**0.5
    k = torch.nn.functional.normalize(torch.randn(B, T, H, Dk, **opts), dim=-1)
    v = torch.randn(B, T, H, Dv, **opts)
    # ||2 eta sum_window g k k^T|| < 0.8: the state stays bounded however long the sequence.
    eta = torch.rand(B, T, H, **opts) * 0.4 / window
    a = torch.rand(B, T, H, **opts) * 0.7 + 0.3
    w = torch.rand(B, T, H, **opts) * 0.5 + 0.5  # loss weights g_i
    M0 = torch.randn(B, H, Dv, Dk, **opts)
    return q, k, v, eta, a, w, M0


def _grads(out, leaves, seed=1):
    o, S = out
    g = torch.Generator().manual_seed(seed)
    wo = torch.randn(o.shape, dtype=torch.float64, generator=g)
    wS = torch.randn(S.shape, dtype=torch.float64, generator=g)
    return torch.autograd.grad((o * wo).sum() + (S * wS).sum(), leaves)


def _check(T, C, window, Dk, Dv):
    leaves = [x.requires_grad_() for x in _inputs(T, Dk, Dv, window)]
    q, k, v, eta, a, w, M0 = leaves
    out_n = naive_omega(q, k, v, eta, a, window=window, g=w, initial_state=M0)
    out_c = chunk_omega(q, k, v, eta, a, window=window, g=w, initial_state=M0, chunk_size=C)
    torch.testing.assert_close(out_c[0], out_n[0], **TOL)
    torch.testing.assert_close(out_c[1], out_n[1], **TOL)
    for gc, gn in zip(_grads(out_c, leaves), _grads(out_n, leaves)):
        torch.testing.assert_close(gc, gn, **TOL)


@pytest.mark.parametrize("T", [1, 63, 100])
@pytest.mark.parametrize("C", [16, 64])
@pytest.mark.parametrize("window", [1, 4])
def test_chunk_matches_naive(T, C, window):
    _check(T, C, window, Dk=8, Dv=16)


def test_window_wider_than_chunk():
    # c = 20 > C = 8: windows reach back over more than one earlier chunk.
    _check(T=45, C=8, window=20, Dk=16, Dv=8)


def test_defaults_no_gate_no_weights():
    q, k, v, eta, _, _, M0 = _inputs(30, 8, 8, window=3)
    out_n = naive_omega(q, k, v, eta, window=3, initial_state=M0)
    out_c = chunk_omega(q, k, v, eta, window=3, initial_state=M0, chunk_size=16)
    torch.testing.assert_close(out_c[0], out_n[0], **TOL)
    torch.testing.assert_close(out_c[1], out_n[1], **TOL)


def test_window_one_is_gated_delta():
    # c = 1: M_t = a_t M_{t-1} + 2 eta_t g_t (v_t - M_{t-1} k_t) k_t^T. With beta = 2 eta g this is
    # a_t M_{t-1} (I - (beta/a_t) k k^T) + (beta/a_t)(a_t v_t) k^T: the gated delta rule with
    # b = beta / a and values a v (the erase term is not decayed by a_t, the write is b v k^T).
    q, k, v, eta, a, w, M0 = _inputs(40, 8, 4, window=1)
    beta = 2 * eta * w
    out_o = chunk_omega(q, k, v, eta, a, window=1, g=w, initial_state=M0, chunk_size=16)
    out_g = naive_gated_delta(q, k, a[..., None] * v, beta / a, a, initial_state=M0)
    torch.testing.assert_close(out_o[0], out_g[0], **TOL)
    torch.testing.assert_close(out_o[1], out_g[1], **TOL)
    # Without retention it is exactly the delta rule with b = 2 eta g.
    out_o = chunk_omega(q, k, v, eta, window=1, g=w, initial_state=M0, chunk_size=16)
    out_g = naive_gated_delta(q, k, v, beta, initial_state=M0)
    torch.testing.assert_close(out_o[0], out_g[0], **TOL)
    torch.testing.assert_close(out_o[1], out_g[1], **TOL)


@pytest.mark.parametrize("fn", [naive_omega, chunk_omega])
def test_step_is_autograd_gradient_of_window_loss(fn):
    # M_t = a_t M_{t-1} - eta_t grad_M sum_{i=t-c+1}^t g_i ||M k_i - v_i||^2 at M_{t-1}, with the
    # gradient taken by autograd (checks the hand-derived 2 (M k - v) k^T and the window bounds).
    c, T = 3, 6
    q, k, v, eta, a, w, M0 = _inputs(T, 8, 4, window=c)
    for t in (1, T - 1):  # a truncated window (t < c) and a full one
        _, M_prev = fn(q[:, :t], k[:, :t], v[:, :t], eta[:, :t], a[:, :t], window=c,
                       g=w[:, :t], initial_state=M0)
        _, M_t = fn(q[:, : t + 1], k[:, : t + 1], v[:, : t + 1], eta[:, : t + 1],
                    a[:, : t + 1], window=c, g=w[:, : t + 1], initial_state=M0)
        Mv = M_prev.detach().requires_grad_()
        lo = max(0, t - c + 1)
        pred = torch.einsum("bhvk,bihk->bihv", Mv, k[:, lo : t + 1])
        loss = (w[:, lo : t + 1, :, None] * (pred - v[:, lo : t + 1]) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, Mv)
        expected = a[:, t, :, None, None] * M_prev - eta[:, t, :, None, None] * grad
        torch.testing.assert_close(M_t, expected, **TOL)
