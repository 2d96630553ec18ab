"""Hebbian rule / linear attention: chunk == naive (values and gradients) in float64."""

import pytest
import torch

from runtime.ops.hebbian import chunk_hebbian, naive_hebbian

TOL = dict(rtol=1e-9, atol=1e-10)


def _inputs(T, Dk, Dv, gated, seed=0, B=2, H=2):
    g = torch.Generator().manual_seed(seed)
    opts = dict(dtype=torch.float64, generator=g)
    q = torch.randn(B, T, H, Dk, **opts) / Dk**0.5
    k = torch.randn(B, T, H, Dk, **opts) / Dk**0.5
    v = torch.randn(B, T, H, Dv, **opts)
    a = torch.rand(B, T, H, **opts) * 0.5 + 0.5 if gated else None  # retention in (0.5, 1)
    M0 = torch.randn(B, H, Dv, Dk, **opts)
    return q, k, v, a, M0


def _check(T, C, Dk, Dv, gated):
    q, k, v, a, M0 = _inputs(T, Dk, Dv, gated)
    leaves = [x.requires_grad_() for x in (q, k, v, a, M0) if x is not None]
    o_n, S_n = naive_hebbian(q, k, v, a, initial_state=M0)
    o_c, S_c = chunk_hebbian(q, k, v, a, initial_state=M0, chunk_size=C)
    torch.testing.assert_close(o_c, o_n, **TOL)
    torch.testing.assert_close(S_c, S_n, **TOL)
    # A random linear functional of (o, final state) so every entry gets its own cotangent.
    g = torch.Generator().manual_seed(1)
    wo = torch.randn(o_n.shape, dtype=torch.float64, generator=g)
    wS = torch.randn(S_n.shape, dtype=torch.float64, generator=g)
    grads_n = torch.autograd.grad((o_n * wo).sum() + (S_n * wS).sum(), leaves)
    grads_c = torch.autograd.grad((o_c * wo).sum() + (S_c * wS).sum(), leaves)
    for gc, gn in zip(grads_c, grads_n):
        torch.testing.assert_close(gc, gn, **TOL)


@pytest.mark.parametrize("T", [1, 63, 100])
@pytest.mark.parametrize("C", [16, 64])
@pytest.mark.parametrize("gated", [False, True])
def test_chunk_matches_naive(T, C, gated):
    _check(T, C, Dk=8, Dv=16, gated=gated)


def test_chunk_matches_naive_square_heads():
    _check(T=40, C=16, Dk=16, Dv=16, gated=True)


def test_log_a_equals_a():
    q, k, v, a, M0 = _inputs(37, 8, 4, gated=True)
    o1, S1 = chunk_hebbian(q, k, v, a, initial_state=M0, chunk_size=16)
    o2, S2 = chunk_hebbian(q, k, v, log_a=a.log(), initial_state=M0, chunk_size=16)
    o3, S3 = naive_hebbian(q, k, v, log_a=a.log(), initial_state=M0)
    torch.testing.assert_close(o2, o1, **TOL)
    torch.testing.assert_close(S2, S1, **TOL)
    torch.testing.assert_close(o3, o1, **TOL)
    torch.testing.assert_close(S3, S1, **TOL)


def test_hand_computed_two_tokens():
    # Dk = Dv = 2, one batch and head. Token 1 writes e1 -> 2 e2; token 2 decays by 1/2 and writes
    # e2 -> 3 e1. Then M_2 = 0.5 * [[0,0],[2,0]] + [[0,3],[0,0]] = [[0,3],[1,0]].
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64).view(1, 2, 1, 2)
    v = torch.tensor([[0.0, 2.0], [3.0, 0.0]], dtype=torch.float64).view(1, 2, 1, 2)
    q = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64).view(1, 2, 1, 2)
    a = torch.tensor([1.0, 0.5], dtype=torch.float64).view(1, 2, 1)
    M2 = torch.tensor([[0.0, 3.0], [1.0, 0.0]], dtype=torch.float64)
    for fn, kw in ((naive_hebbian, {}), (chunk_hebbian, {"chunk_size": 16})):
        o, S = fn(q, k, v, a, **kw)
        torch.testing.assert_close(S[0, 0], M2)
        torch.testing.assert_close(o[0, 0, 0], torch.tensor([0.0, 2.0], dtype=torch.float64))
        torch.testing.assert_close(o[0, 1, 0], torch.tensor([3.0, 1.0], dtype=torch.float64))
