"""Titans MLP memory: hand-written MLP gradients vs autograd, chunk == naive in float64 (outputs,
final state, and the gradient of every input)."""

import pytest
import torch

from runtime.ops.mlp_memory import mlp_forward, mlp_l2_grads
from runtime.ops.titans import chunk_titans, naive_titans
from ops_common import assert_close

DT = torch.float64
B, H, D, DH = 2, 2, 8, 16


pytestmark = pytest.mark.usefixtures("one_thread")


def make_inputs(T, seed=0, d_out=D):
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=DT)
    uni = lambda *s: torch.rand(*s, generator=g, dtype=DT)
    q, k = 0.5 * rnd(B, T, H, D), 0.5 * rnd(B, T, H, D)
    v = 0.5 * rnd(B, T, H, d_out)
    eta = 0.5 + 0.5 * uni(B, T, H)  # momentum in [0.5, 1)
    theta = 0.1 * uni(B, T, H)  # inner learning rate
    alpha = 0.1 * uni(B, T, H)  # forgetting
    W1 = 0.3 * rnd(H, d_out, DH)
    W2 = 0.3 * rnd(H, DH, D)
    return q, k, v, eta, theta, alpha, W1, W2


@pytest.mark.parametrize("activation", ["silu", "gelu"])
@pytest.mark.parametrize("residual", [False, True])
def test_mlp_grads_match_autograd(activation, residual):
    g = torch.Generator().manual_seed(1)
    W1 = torch.randn(B, H, D, DH, generator=g, dtype=DT)
    W2 = torch.randn(B, H, DH, D, generator=g, dtype=DT)
    k = torch.randn(B, H, 5, D, generator=g, dtype=DT)
    v = torch.randn(B, H, 5, D, generator=g, dtype=DT)
    G1, G2 = mlp_l2_grads(W1, W2, k, v, activation, residual)
    for n in range(5):
        w1, w2 = W1.clone().requires_grad_(), W2.clone().requires_grad_()
        y = mlp_forward(w1, w2, k[:, :, n:n + 1], activation, residual)
        loss = ((y - v[:, :, n:n + 1]) ** 2).sum()  # per (b, h) losses are independent
        a1, a2 = torch.autograd.grad(loss, (w1, w2))
        assert_close(G1[:, :, n], a1, 1e-12)
        assert_close(G2[:, :, n], a2, 1e-12)


def test_mlp_grads_are_differentiable():
    """The outer loop differentiates the inner gradient (meta-learning): check d/dW of a
    functional of the hand-written gradient against the autograd-of-autograd value."""
    g = torch.Generator().manual_seed(2)
    W1 = torch.randn(H, D, DH, generator=g, dtype=DT, requires_grad=True)
    W2 = torch.randn(H, DH, D, generator=g, dtype=DT, requires_grad=True)
    k, v = torch.randn(2, H, 1, D, generator=g, dtype=DT)
    G1, G2 = mlp_l2_grads(W1, W2, k, v, "silu", True)
    h1 = torch.autograd.grad(G1.sin().sum() + G2.cos().sum(), (W1, W2))
    loss = ((mlp_forward(W1, W2, k, "silu", True) - v) ** 2).sum()
    a1, a2 = torch.autograd.grad(loss, (W1, W2), create_graph=True)
    h2 = torch.autograd.grad(a1.sin().sum() + a2.cos().sum(), (W1, W2))
    for x, y in zip(h1, h2):
        assert_close(x, y, 1e-12)


@pytest.mark.parametrize("T", [1, 63, 100])
@pytest.mark.parametrize("chunk_size", [16, 64])
@pytest.mark.parametrize("memory,activation,read", [
    ("mlp", "silu", "current"), ("residual_mlp", "gelu", "current"),
    ("mlp", "gelu", "chunk_start"), ("residual_mlp", "silu", "chunk_start")])
def test_chunk_equals_naive(T, chunk_size, memory, activation, read):
    q, k, v, eta, theta, alpha, W1, W2 = make_inputs(T)
    kw = dict(chunk_size=chunk_size, memory=memory, activation=activation, read=read)
    o1, s1 = naive_titans(q, k, v, eta, theta, alpha, W1, W2, **kw)
    o2, s2 = chunk_titans(q, k, v, eta, theta, alpha, W1, W2, **kw)
    assert_close(o2, o1)
    for a, b in zip(s2, s1):
        assert_close(a, b)


def test_non_square_memory_and_chunk_one():
    """D_v != D_k (plain MLP memory), chunk size 1 = fully sequential rule, zero momentum gate."""
    q, k, v, eta, theta, alpha, W1, W2 = make_inputs(37, seed=3, d_out=5)
    eta = eta.clone()
    eta[:, ::3] = 0.0  # exact zeros in the cumulative products
    for C in (1, 7):
        o1, s1 = naive_titans(q, k, v, eta, theta, alpha, W1, W2, chunk_size=C)
        o2, s2 = chunk_titans(q, k, v, eta, theta, alpha, W1, W2, chunk_size=C)
        assert o2.shape == (B, 37, H, 5)
        assert_close(o2, o1)
        for a, b in zip(s2, s1):
            assert_close(a, b)


def _grads(fn, inputs, kw, seed=5):
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    o, state = fn(*inputs, **kw)
    g = torch.Generator().manual_seed(seed)
    loss = (o * torch.randn(o.shape, generator=g, dtype=DT)).sum()
    for s in state:
        loss = loss + (s * torch.randn(s.shape, generator=g, dtype=DT)).sum()
    return torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("T,chunk_size,memory,read", [
    (63, 16, "mlp", "current"), (100, 64, "residual_mlp", "current"),
    (100, 16, "mlp", "chunk_start")])
def test_gradients_chunk_equal_naive(T, chunk_size, memory, read):
    """Gradients of q, k, v, the three gates and the meta-learned init weights."""
    inputs = make_inputs(T, seed=7)
    kw = dict(chunk_size=chunk_size, memory=memory, read=read)
    for a, b in zip(_grads(chunk_titans, inputs, kw), _grads(naive_titans, inputs, kw)):
        assert_close(a, b)


def test_gradients_initial_state():
    """Gradients through an explicit initial state (W1, W2, S1, S2 per sequence)."""
    q, k, v, eta, theta, alpha, W1, W2 = make_inputs(50, seed=9)
    g = torch.Generator().manual_seed(10)
    state = [0.3 * torch.randn(B, *W1.shape, generator=g, dtype=DT),
             0.3 * torch.randn(B, *W2.shape, generator=g, dtype=DT),
             0.05 * torch.randn(B, *W1.shape, generator=g, dtype=DT),
             0.05 * torch.randn(B, *W2.shape, generator=g, dtype=DT)]

    def wrap(fn):
        return lambda q, k, v, eta, theta, alpha, *st, **kw: fn(
            q, k, v, eta, theta, alpha, initial_state=st, **kw)

    inputs = [q, k, v, eta, theta, alpha, *state]
    kw = dict(chunk_size=16, memory="residual_mlp")
    for a, b in zip(_grads(wrap(chunk_titans), inputs, kw), _grads(wrap(naive_titans), inputs, kw)):
        assert_close(a, b)
