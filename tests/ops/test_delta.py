"""Delta rule: chunk (WY form) == naive (values and gradients) in float64."""

import pytest
import torch

from runtime.ops.delta import chunk_delta, naive_delta

TOL = dict(rtol=1e-9, atol=1e-10)


def _inputs(T, Dk, Dv, seed=0, B=2, H=2):
    g = torch.Generator().manual_seed(seed)
    opts = dict(dtype=torch.float64, generator=g)
    q = torch.randn(B, T, H, Dk, **opts) / Dk**0.5
    k = torch.nn.functional.normalize(torch.randn(B, T, H, Dk, **opts), dim=-1)  # as in DeltaNet
    v = torch.randn(B, T, H, Dv, **opts)
    b = torch.rand(B, T, H, **opts)  # in (0, 1): every step is a contraction along k_t
    M0 = torch.randn(B, H, Dv, Dk, **opts)
    return q, k, v, b, M0


@pytest.mark.parametrize("T", [1, 63, 100])
@pytest.mark.parametrize("C", [16, 64])
@pytest.mark.parametrize("Dk,Dv", [(8, 16), (16, 8)])
def test_chunk_matches_naive(T, C, Dk, Dv):
    leaves = [x.requires_grad_() for x in _inputs(T, Dk, Dv)]
    q, k, v, b, M0 = leaves
    o_n, S_n = naive_delta(q, k, v, b, initial_state=M0)
    o_c, S_c = chunk_delta(q, k, v, b, initial_state=M0, chunk_size=C)
    torch.testing.assert_close(o_c, o_n, **TOL)
    torch.testing.assert_close(S_c, S_n, **TOL)
    g = torch.Generator().manual_seed(1)
    wo = torch.randn(o_n.shape, dtype=torch.float64, generator=g)
    wS = torch.randn(S_n.shape, dtype=torch.float64, generator=g)
    grads_n = torch.autograd.grad((o_n * wo).sum() + (S_n * wS).sum(), leaves)
    grads_c = torch.autograd.grad((o_c * wo).sum() + (S_c * wS).sum(), leaves)
    for gc, gn in zip(grads_c, grads_n):
        torch.testing.assert_close(gc, gn, **TOL)


def test_zero_initial_state_default():
    q, k, v, b, _ = _inputs(20, 8, 8)
    o_n, S_n = naive_delta(q, k, v, b)
    o_c, S_c = chunk_delta(q, k, v, b, chunk_size=16)
    torch.testing.assert_close(o_c, o_n, **TOL)
    torch.testing.assert_close(S_c, S_n, **TOL)


@pytest.mark.parametrize("fn", [naive_delta, chunk_delta])
def test_unit_key_with_b_one_stores_value_exactly(fn):
    # With b = 1 and ||k|| = 1, M_t k_t = M_{t-1} k_t (1 - 1) + v_t = v_t, whatever M_{t-1} was.
    # Orthonormal keys do not disturb each other, so after all writes M k_i = v_i for every i.
    q, _, v, _, M0 = _inputs(6, 8, 5)
    keys = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))[0][:6]  # 6 orthonormal rows
    k = keys.view(1, 6, 1, 8).expand(2, 6, 2, 8).contiguous()
    b = torch.ones(2, 6, 2, dtype=torch.float64)
    o, S = fn(q, k, v, b, initial_state=M0)
    recalled = torch.einsum("bhvk,bthk->bthv", S, k)
    torch.testing.assert_close(recalled, v, **TOL)
    # The read-out right after each write with q_t = k_t returns v_t.
    o2, _ = fn(k, k, v, b, initial_state=M0)
    torch.testing.assert_close(o2, v, **TOL)
