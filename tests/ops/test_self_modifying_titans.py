"""Self-modifying Titans: chunk == naive (float64) on outputs, final states and every input
gradient; and with chunk size 1 the naive form equals a direct transcription of Eq. 83-88."""

import pytest
import torch
import torch.nn.functional as F

from ops_common import assert_close
from runtime.ops.self_modifying_titans import (
    chunk_self_modifying_titans, memory_names, naive_self_modifying_titans,
)

DT = torch.float64
B, H, D, DH = 2, 2, 8, 16


pytestmark = pytest.mark.usefixtures("one_thread")


def assert_states_close(s1, s2, rtol=1e-9):
    assert s1.keys() == s2.keys()
    for n in s1:
        for a, b in zip(s1[n], s2[n]):
            assert_close(a, b, rtol)


def make_inputs(T, seed=0, d_gate=1, hidden=DH):
    """x [B, T, H, D], init weights of all six memories, W_q [H, D, D]."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=DT)
    x = rnd(B, T, H, D) / D ** 0.5  # |x| ~ 1, like the unit-norm keys
    init = {n: (0.3 * rnd(H, d_gate if n in ("eta", "alpha") else D, hidden), 0.3 * rnd(H, hidden, D))
            for n in memory_names(True)}
    W_q = rnd(H, D, D) / D ** 0.5
    return x, init, W_q


# Gates for the tests: alpha ~ 0.993, eta ~ 0.07 with unit-norm keys. The self-referential
# dynamics only stay bounded in a narrow band (larger eta, or alpha farther from 1, and the v
# memory, whose target is M_v(M_v(x)), blows up within ~50 tokens; smaller alpha and every state
# decays to ~0), so the comparisons would otherwise be between infs or between zeros.
BASE = dict(eta_scale=0.1, alpha_bias=5.0)
OPTIONS = {
    "default": dict(),
    "adaptive_q_current_momentum_gelu": dict(adaptive_q=True, read="current", momentum=0.3,
                                             activation="gelu"),
    "no_dgd_chunk_start_maps": dict(dgd="none", read="chunk_start", eta_map="sigmoid",
                                    alpha_map="softplus", alpha_bias=0.45, qk_l2norm=False,
                                    eta_scale=0.2),
    # what compiled models use: unit-norm values; and Table 6's "w/o weight decay" (no alpha)
    "unit_values_no_retention": dict(v_l2norm=True, retention=False, momentum=0.5),
}


@pytest.mark.parametrize("T", [1, 63, 100])
@pytest.mark.parametrize("chunk_size", [16, 64])
@pytest.mark.parametrize("opt", list(OPTIONS))
def test_chunk_equals_naive(T, chunk_size, opt):
    x, init, W_q = make_inputs(T)
    kw = {**BASE, **OPTIONS[opt], "chunk_size": chunk_size}
    o1, s1 = naive_self_modifying_titans(x, init, W_q, **kw)
    o2, s2 = chunk_self_modifying_titans(x, init, W_q, **kw)
    assert o2.shape == x.shape
    assert_close(o2, o1)
    assert_states_close(s2, s1)


def test_chunk_equals_naive_residual_gates_and_token_momentum():
    """d_gate == D (gate memories keep the residual skip), per-token momentum, odd chunk."""
    x, init, W_q = make_inputs(45, seed=4, d_gate=D)
    mom = 0.4 * torch.rand(B, 45, H, dtype=DT, generator=torch.Generator().manual_seed(1))
    kw = {**BASE, "chunk_size": 7, "momentum": mom, "adaptive_q": True}
    o1, s1 = naive_self_modifying_titans(x, init, W_q, **kw)
    o2, s2 = chunk_self_modifying_titans(x, init, W_q, **kw)
    assert_close(o2, o1)
    assert_states_close(s2, s1)


def eq88_reference(x, init, W_q, adaptive_q, eta_scale, alpha_bias):
    """Direct transcription of Eq. 83-88 (defaults: softplus/sigmoid gates, SiLU, L2-normalised
    q and k, DGD factor on W2), gradients by autograd, explicit (alpha I - eta k k^T) matrix."""
    names = memory_names(adaptive_q)
    M = {n: [w.expand(B, *w.shape).detach() for w in init[n]] for n in names}

    def apply(n, inp):  # M_n(inp), inp [B, H, D]
        W1, W2 = M[n]
        out = torch.einsum("bhoj,bhj->bho", W1, F.silu(torch.einsum("bhjd,bhd->bhj", W2, inp)))
        return inp + out if out.shape == inp.shape else out

    ys = []
    eye = torch.eye(D, dtype=DT)
    for t in range(x.shape[1]):
        x_t = x[:, t]  # [B, H, D]
        q = F.normalize(apply("q", x_t) if adaptive_q else torch.einsum("bhd,hde->bhe", x_t, W_q),
                        dim=-1)
        ys.append(apply("mem", q))  # Eq. 83: y_t = M_mem,t-1(q_t)
        k = F.normalize(apply("k", x_t), dim=-1)  # Eq. 84
        v = apply("v", x_t)  # Eq. 85
        eta = eta_scale * F.softplus(apply("eta", x_t).mean(-1))  # Eq. 86 [B, H]
        alpha = torch.sigmoid(apply("alpha", x_t).mean(-1) + alpha_bias)
        new = {}
        for n in names:
            vhat = apply(n, v)  # Eq. 87, fixed target
            W1, W2 = (w.clone().requires_grad_() for w in M[n])
            saved, M[n] = M[n], [W1, W2]
            loss = ((apply(n, k) - vhat) ** 2).sum()  # L(M; k, vhat) summed over (b, h)
            g1, g2 = torch.autograd.grad(loss, (W1, W2))
            M[n] = saved
            e, a = eta[..., None, None], alpha[..., None, None]
            P = a * eye - e * k.unsqueeze(-1) * k.unsqueeze(-2)  # alpha_t I - eta_t k_t k_t^T
            new[n] = [a * saved[0] - e * g1, saved[1] @ P - e * g2]  # Eq. 88
        M = new
    return torch.stack(ys, dim=1), M


@pytest.mark.parametrize("adaptive_q", [False, True])
def test_chunk_size_one_is_eq88(adaptive_q):
    x, init, W_q = make_inputs(20, seed=2)
    y_ref, M_ref = eq88_reference(x, init, W_q, adaptive_q, **BASE)
    kw = {**BASE, "chunk_size": 1, "adaptive_q": adaptive_q}
    for fn in (naive_self_modifying_titans, chunk_self_modifying_titans):
        o, state = fn(x, init, W_q, **kw)
        assert_close(o, y_ref, 1e-12)
        for n in M_ref:
            assert_close(state[n][0], M_ref[n][0], 1e-12)
            assert_close(state[n][1], M_ref[n][1], 1e-12)


def _grads(fn, inputs, kw, seed=5):
    """Gradients of a random functional of (o, final state) wrt every tensor in `inputs`."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs["tensors"]]
    o, state = fn(*inputs["build"](leaves), **kw)
    g = torch.Generator().manual_seed(seed)
    loss = (o * torch.randn(o.shape, generator=g, dtype=DT)).sum()
    for n in sorted(state):
        for s in state[n]:
            loss = loss + (s * torch.randn(s.shape, generator=g, dtype=DT)).sum()
    return torch.autograd.grad(loss, leaves, allow_unused=True)


def _init_inputs(x, init, W_q, names, extra=()):
    """Flatten (x, W_q, init weights, extras) into leaves and a builder for the call."""
    tensors = [x, W_q] + [w for n in names for w in init[n]] + list(extra)

    def build(leaves):
        it = iter(leaves[2:])
        return leaves[0], {n: (next(it), next(it)) for n in names}, leaves[1]

    return dict(tensors=tensors, build=build)


@pytest.mark.parametrize("T,chunk_size,opt", [
    (63, 16, "default"), (100, 64, "adaptive_q_current_momentum_gelu"),
    (100, 16, "no_dgd_chunk_start_maps")])
def test_gradients_chunk_equal_naive(T, chunk_size, opt):
    """Gradients of x, W_q and the init weights of every memory (the meta-learned init)."""
    x, init, W_q = make_inputs(T, seed=7)
    kw = {**BASE, **OPTIONS[opt], "chunk_size": chunk_size}
    inputs = _init_inputs(x, init, W_q, memory_names(kw.get("adaptive_q", False)))
    for a, b in zip(_grads(chunk_self_modifying_titans, inputs, kw),
                    _grads(naive_self_modifying_titans, inputs, kw)):
        if b is None:  # W_q is unused when q is adaptive
            assert a is None
        else:
            assert_close(a, b)


def test_gradients_initial_state_momentum_and_biases():
    """Gradients through an explicit initial state (W1, W2, S1, S2 of each memory), a per-token
    momentum gate and per-head gate biases."""
    T = 50
    x, init, W_q = make_inputs(T, seed=9)
    names = memory_names(False)
    g = torch.Generator().manual_seed(11)
    state0 = [0.3 * torch.randn(B, *w.shape, generator=g, dtype=DT) for n in names for w in init[n]]
    mom0 = [0.01 * torch.randn(B, *w.shape, generator=g, dtype=DT) for n in names for w in init[n]]
    mom = 0.4 * torch.rand(B, T, H, generator=g, dtype=DT)
    eta_bias = 0.1 * torch.randn(H, generator=g, dtype=DT)
    alpha_bias = 5.0 + 0.1 * torch.randn(H, generator=g, dtype=DT)

    def build(leaves):
        x, W_q, mom, eb, ab = leaves[:5]
        W, S = leaves[5:5 + len(state0)], leaves[5 + len(state0):]
        st = {n: (W[2 * i], W[2 * i + 1], S[2 * i], S[2 * i + 1]) for i, n in enumerate(names)}
        return x, None, W_q, dict(momentum=mom, eta_bias=eb, alpha_bias=ab, initial_state=st)

    def call(fn):
        return lambda x, init, W_q, extra, **kw: fn(x, init, W_q, **extra, **kw)

    inputs = dict(tensors=[x, W_q, mom, eta_bias, alpha_bias, *state0, *mom0], build=build)
    kw = dict(chunk_size=16, eta_scale=0.1)
    for a, b in zip(_grads(call(chunk_self_modifying_titans), inputs, kw),
                    _grads(call(naive_self_modifying_titans), inputs, kw)):
        assert_close(a, b)


@pytest.mark.parametrize("opt", ["default", "adaptive_q_current_momentum_gelu"])
def test_recomputed_steps_give_the_same_values_and_gradients(opt):
    """recompute_step=True (each chunk step run again in the backward, torch.utils.checkpoint):
    bitwise the same outputs, final state and first-order gradients, the same second-order
    gradient (the outer loop differentiates through the in-context one), and far fewer bytes kept
    for the backward."""
    x, init, W_q = make_inputs(63, seed=3)
    kw = {**BASE, **OPTIONS[opt], "chunk_size": 16}
    inputs = _init_inputs(x, init, W_q, memory_names(kw.get("adaptive_q", False)))
    plain = _grads(chunk_self_modifying_titans, inputs, kw)
    again = _grads(chunk_self_modifying_titans, inputs, {**kw, "recompute_step": True})
    for a, b in zip(again, plain):
        assert (a is None and b is None) or torch.equal(a, b)

    def second_order(recompute):
        leaves = [t.detach().clone().requires_grad_() for t in inputs["tensors"]]
        o, _ = chunk_self_modifying_titans(*inputs["build"](leaves), **kw, recompute_step=recompute)
        gx, = torch.autograd.grad(o.square().sum(), leaves[0], create_graph=True)
        return torch.autograd.grad(gx.square().sum(), leaves[2:])

    for a, b in zip(second_order(True), second_order(False)):
        assert_close(a, b, 1e-12)

    def saved_bytes(recompute):
        seen, total = set(), [0]

        def pack(t):
            if t.untyped_storage().data_ptr() not in seen:
                seen.add(t.untyped_storage().data_ptr())
                total[0] += t.untyped_storage().nbytes()
            return t

        leaves = [t.detach().clone().requires_grad_() for t in inputs["tensors"]]
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            chunk_self_modifying_titans(*inputs["build"](leaves), **kw, recompute_step=recompute)
        return total[0]

    # the steps' intermediates are not kept (what remains: the gates and the chunk inputs)
    assert saved_bytes(True) * 20 < saved_bytes(False)  # measured: 17 KB against 6.3 MB
