"""TTT-linear (mini-batch GD): dual form == token loop (values and gradients), float64."""

import pytest
import torch

from runtime.ops.delta import naive_delta
from runtime.ops.ttt_linear import chunk_ttt_linear, naive_ttt_linear

TOL = dict(rtol=1e-9, atol=1e-10)


def _inputs(T, Dk, Dv, seed=0, B=2, H=2):
    g = torch.Generator().manual_seed(seed)
    opts = dict(dtype=torch.float64, generator=g)
    q = torch.randn(B, T, H, Dk, **opts) / Dk**0.5
    k = torch.nn.functional.normalize(torch.randn(B, T, H, Dk, **opts), dim=-1)
    v = torch.randn(B, T, H, Dv, **opts)
    eta = torch.rand(B, T, H, **opts) * 0.05  # 2 eta ||sum of a mini-batch's k k^T|| < 2
    W0 = torch.randn(B, H, Dv, Dk, **opts)
    return q, k, v, eta, W0


def _grads(out, leaves, seed=1):
    o, S = out
    g = torch.Generator().manual_seed(seed)
    wo = torch.randn(o.shape, dtype=torch.float64, generator=g)
    wS = torch.randn(S.shape, dtype=torch.float64, generator=g)
    return torch.autograd.grad((o * wo).sum() + (S * wS).sum(), leaves)


@pytest.mark.parametrize("T", [1, 63, 100])
@pytest.mark.parametrize("b", [16, 64])
@pytest.mark.parametrize("Dk,Dv", [(8, 16), (16, 8)])
def test_chunk_matches_naive(T, b, Dk, Dv):
    leaves = [x.requires_grad_() for x in _inputs(T, Dk, Dv)]
    q, k, v, eta, W0 = leaves
    out_n = naive_ttt_linear(q, k, v, eta, mini_batch_size=b, initial_state=W0)
    out_c = chunk_ttt_linear(q, k, v, eta, mini_batch_size=b, initial_state=W0)
    torch.testing.assert_close(out_c[0], out_n[0], **TOL)
    torch.testing.assert_close(out_c[1], out_n[1], **TOL)
    for gc, gn in zip(_grads(out_c, leaves), _grads(out_n, leaves)):
        torch.testing.assert_close(gc, gn, **TOL)


@pytest.mark.parametrize("fn", [naive_ttt_linear, chunk_ttt_linear])
def test_mini_batch_of_one_is_the_delta_rule(fn):
    # b = 1: W_t = W_{t-1} - 2 eta_t (W_{t-1} k_t - v_t) k_t^T, the delta rule with b_t = 2 eta_t.
    q, k, v, eta, W0 = _inputs(30, 8, 4)
    out = fn(q, k, v, eta, mini_batch_size=1, initial_state=W0)
    out_d = naive_delta(q, k, v, 2 * eta, initial_state=W0)
    torch.testing.assert_close(out[0], out_d[0], **TOL)
    torch.testing.assert_close(out[1], out_d[1], **TOL)


@pytest.mark.parametrize("fn", [naive_ttt_linear, chunk_ttt_linear])
def test_gradients_taken_at_mini_batch_start(fn):
    # Two tokens, same unit key k and value v, eta = 1/4, W_0 = 0. In one mini-batch both
    # gradients are -2 v k^T (taken at W_0 = 0): W_2 = 0 + 2 * (1/4) * 2 v k^T = v k^T.
    # Per-token GD (b = 1) instead gives W_1 = v k^T / 2, W_2 = W_1 + (1/2)(v - v/2) k^T = 3/4 v k^T.
    k = torch.tensor([0.6, 0.8], dtype=torch.float64).view(1, 1, 1, 2).expand(1, 2, 1, 2)
    v = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64).view(1, 1, 1, 3).expand(1, 2, 1, 3)
    eta = torch.full((1, 2, 1), 0.25, dtype=torch.float64)
    vkT = torch.outer(v[0, 0, 0], k[0, 0, 0])
    _, W = fn(k, k, v, eta, mini_batch_size=2)
    torch.testing.assert_close(W[0, 0], vkT, **TOL)
    _, W = fn(k, k, v, eta, mini_batch_size=1)
    torch.testing.assert_close(W[0, 0], 0.75 * vkT, **TOL)
