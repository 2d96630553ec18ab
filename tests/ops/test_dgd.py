"""DGD on a linear memory: closed form == argmin; chunk (via gated delta) == naive, float64."""

import pytest
import torch

from runtime.ops.dgd import chunk_dgd, dgd_step_size, naive_dgd

TOL = dict(rtol=1e-9, atol=1e-10)


def _inputs(T, Dk, Dv, seed=0, B=2, H=2):
    g = torch.Generator().manual_seed(seed)
    opts = dict(dtype=torch.float64, generator=g)
    q = torch.randn(B, T, H, Dk, **opts) / Dk**0.5
    k = torch.randn(B, T, H, Dk, **opts) / Dk**0.5  # not unit norm: "exact" != "paper"
    v = torch.randn(B, T, H, Dv, **opts)
    eta = torch.rand(B, T, H, **opts)
    a = torch.rand(B, T, H, **opts) * 0.7 + 0.3
    M0 = torch.randn(B, H, Dv, Dk, **opts)
    return q, k, v, eta, a, M0


def _grads(out, leaves, seed=1):
    o, S = out
    g = torch.Generator().manual_seed(seed)
    wo = torch.randn(o.shape, dtype=torch.float64, generator=g)
    wS = torch.randn(S.shape, dtype=torch.float64, generator=g)
    return torch.autograd.grad((o * wo).sum() + (S * wS).sum(), leaves)


@pytest.mark.parametrize("T", [1, 63, 100])
@pytest.mark.parametrize("C", [16, 64])
@pytest.mark.parametrize("step", ["exact", "paper"])
def test_chunk_matches_naive(T, C, step):
    leaves = [x.requires_grad_() for x in _inputs(T, Dk=16, Dv=8)]
    q, k, v, eta, a, M0 = leaves
    out_n = naive_dgd(q, k, v, eta, a, step=step, initial_state=M0)
    out_c = chunk_dgd(q, k, v, eta, a, step=step, initial_state=M0, chunk_size=C)
    torch.testing.assert_close(out_c[0], out_n[0], **TOL)
    torch.testing.assert_close(out_c[1], out_n[1], **TOL)
    for gc, gn in zip(_grads(out_c, leaves), _grads(out_n, leaves)):
        torch.testing.assert_close(gc, gn, **TOL)


def test_no_retention_default():
    q, k, v, eta, _, M0 = _inputs(40, 8, 16)
    out_n = naive_dgd(q, k, v, eta, initial_state=M0)
    out_c = chunk_dgd(q, k, v, eta, initial_state=M0, chunk_size=16)
    torch.testing.assert_close(out_c[0], out_n[0], **TOL)
    torch.testing.assert_close(out_c[1], out_n[1], **TOL)


def _argmin(W0, k, v, eta):
    """argmin_W 1/2 ||W k - v||^2 + ||W - W0||^2 / (2 eta), by a direct linear solve.

    Zero gradient: W (k k^T + I / eta) = v k^T + W0 / eta; the matrix is symmetric, so solve the
    transposed system (k k^T + I / eta) W^T = k v^T + W0^T / eta.
    """
    Dk = k.shape[-1]
    lhs = k[..., :, None] * k[..., None, :] + torch.eye(Dk, dtype=k.dtype) / eta[..., None, None]
    rhs = k[..., :, None] * v[..., None, :] + W0.transpose(-1, -2) / eta[..., None, None]
    return torch.linalg.solve(lhs, rhs).transpose(-1, -2)


@pytest.mark.parametrize("fn", [naive_dgd, chunk_dgd])
def test_exact_step_is_the_argmin(fn):
    q, k, v, eta, a, M0 = _inputs(1, 8, 5)
    eta = eta * 4  # large steps, so a wrong eta' would show
    _, S = fn(q, k, v, eta, a, initial_state=M0)
    # Retention decays the proximal anchor: W0 = a_1 M_0.
    expected = _argmin(a[:, 0, :, None, None] * M0, k[:, 0], v[:, 0], eta[:, 0])
    torch.testing.assert_close(S, expected, **TOL)
    # The paper's eta / (1 + eta) is not the argmin for ||k|| != 1 ...
    _, S_paper = fn(q, k, v, eta, a, step="paper", initial_state=M0)
    assert (S_paper - expected).abs().max() > 1e-3
    # ... and is for unit keys, where it coincides with the exact step.
    k1 = torch.nn.functional.normalize(k, dim=-1)
    _, S_paper = fn(q, k1, v, eta, a, step="paper", initial_state=M0)
    expected = _argmin(a[:, 0, :, None, None] * M0, k1[:, 0], v[:, 0], eta[:, 0])
    torch.testing.assert_close(S_paper, expected, **TOL)


def test_step_size_values():
    k = torch.tensor([[[[3.0, 4.0]]]], dtype=torch.float64)  # ||k||^2 = 25
    eta = torch.tensor([[[0.5]]], dtype=torch.float64)
    torch.testing.assert_close(dgd_step_size(eta, k), torch.tensor([[[0.5 / 13.5]]], dtype=torch.float64))
    torch.testing.assert_close(dgd_step_size(eta, k, "paper"), torch.tensor([[[1 / 3]]], dtype=torch.float64))
    with pytest.raises(ValueError):
        dgd_step_size(eta, k, "approx")
