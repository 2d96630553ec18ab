"""TTT-MLP: chunk (dual) form == naive token loop in float64, outputs, state and all gradients."""

import pytest
import torch

from runtime.ops.ttt_mlp import chunk_ttt_mlp, naive_ttt_mlp
from ops_common import assert_close

DT = torch.float64
B, H, D, DH = 2, 2, 8, 16


pytestmark = pytest.mark.usefixtures("one_thread")


def make_inputs(T, seed=0, d_out=D):
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=DT)
    q, k, v = 0.5 * rnd(B, T, H, D), 0.5 * rnd(B, T, H, D), 0.5 * rnd(B, T, H, d_out)
    eta = 0.05 * torch.rand(B, T, H, generator=g, dtype=DT)
    W1, W2 = 0.3 * rnd(H, d_out, DH), 0.3 * rnd(H, DH, D)
    return q, k, v, eta, W1, W2


@pytest.mark.parametrize("T", [1, 63, 100])
@pytest.mark.parametrize("chunk_size", [16, 64])
@pytest.mark.parametrize("memory,activation", [("residual_mlp", "gelu"), ("mlp", "silu")])
def test_chunk_equals_naive(T, chunk_size, memory, activation):
    q, k, v, eta, W1, W2 = make_inputs(T)
    kw = dict(chunk_size=chunk_size, memory=memory, activation=activation)
    o1, s1 = naive_ttt_mlp(q, k, v, eta, W1, W2, **kw)
    o2, s2 = chunk_ttt_mlp(q, k, v, eta, W1, W2, **kw)
    assert_close(o2, o1)
    for a, b in zip(s2, s1):
        assert_close(a, b)


def test_chunk_one_and_non_square():
    q, k, v, eta, W1, W2 = make_inputs(21, seed=3, d_out=5)
    for C in (1, 4):
        o1, s1 = naive_ttt_mlp(q, k, v, eta, W1, W2, chunk_size=C, memory="mlp")
        o2, s2 = chunk_ttt_mlp(q, k, v, eta, W1, W2, chunk_size=C, memory="mlp")
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


@pytest.mark.parametrize("T,chunk_size", [(63, 16), (100, 64)])
def test_gradients_chunk_equal_naive(T, chunk_size):
    """Gradients of q, k, v, eta and the meta-learned init weights W1, W2."""
    inputs = make_inputs(T, seed=7)
    kw = dict(chunk_size=chunk_size)
    for a, b in zip(_grads(chunk_ttt_mlp, inputs, kw), _grads(naive_ttt_mlp, inputs, kw)):
        assert_close(a, b)


def test_gradients_initial_state():
    q, k, v, eta, W1, W2 = make_inputs(40, seed=9)
    g = torch.Generator().manual_seed(10)
    state = [0.3 * torch.randn(B, *W.shape, generator=g, dtype=DT) for W in (W1, W2)]

    def wrap(fn):
        return lambda q, k, v, eta, w1, w2, **kw: fn(q, k, v, eta, initial_state=(w1, w2), **kw)

    inputs = [q, k, v, eta, *state]
    kw = dict(chunk_size=16)
    grads_chunk = _grads(wrap(chunk_ttt_mlp), inputs, kw)
    grads_naive = _grads(wrap(naive_ttt_mlp), inputs, kw)
    for a, b in zip(grads_chunk, grads_naive):
        assert_close(a, b)
