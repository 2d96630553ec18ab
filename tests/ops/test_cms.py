"""CMS op (Eq. 70-74): chunk == naive in float64 (outputs, final state, gradients of every input
through the inner updates), updates only at chunk boundaries, nested resets, stream splitting."""
import pytest
import torch

from runtime.ops.cms import chunk_cms, naive_cms
from ops_common import assert_close, rel_err

DT = torch.float64
B, D, DH = 2, 6, 10




def make_problem(T, chunk_sizes=(4, 16), seed=0):
    """Random init theta_0 per level, input, L2 target, per-token learning rates, agg weights."""
    k = len(chunk_sizes)
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=DT)
    params = [(0.3 * rnd(D, DH), 0.3 * rnd(DH, D)) for _ in range(k)]
    x, target = rnd(B, T, D), rnd(B, T, D)
    # A level's write sums C gradients: scale its rate by 1/C to keep the updates moderate.
    lr = [(0.02 + 0.04 * torch.rand(B, T, generator=g, dtype=DT)) / C for C in chunk_sizes]
    agg = 1.0 / k + 0.1 * rnd(k)
    leaves = [w for level in params for w in level] + [x, target, agg] + lr
    for t in leaves:
        t.requires_grad_()
    return params, x, target, lr, agg, leaves


def l2_loss(target):
    return lambda y, s, e: ((y - target[:, s:e]) ** 2).sum(-1)  # [B, n]


def run(fn, T, chunk_sizes, variant="sequential", signal="exact", seed=0, **kw):
    params, x, target, lr, agg, leaves = make_problem(T, chunk_sizes, seed)
    out = fn(x, l2_loss(target), params, chunk_sizes, lr, variant=variant, signal=signal,
             agg_weights=agg, **kw)
    return out, leaves, target


def outer_loss(y, state, target):
    # Reads the output and every piece of the final state, so all of them are checked.
    w = torch.linspace(-1, 1, y.shape[1], dtype=DT)[None, :, None]
    loss = ((y - target) ** 2).sum() + (w * y).sum()
    for (W1, W2), (G1, G2) in zip(state.weights, state.pending):
        loss = loss + (W1 ** 2).sum() + W2.sum() + (G1 * W1).sum() + G2.sum()
    return loss


def grads(loss, leaves):
    return torch.autograd.grad(loss, leaves, allow_unused=True)  # agg is unused by the chains


def assert_grads_close(g, g_ref, rtol=1e-9):
    for a, b in zip(g, g_ref):
        assert (a is None) == (b is None)
        if a is not None:
            assert_close(a, b, rtol)


CASES = [(T, cs) for T in (1, 63, 100) for cs in ((4, 16), (16, 64))]


@pytest.mark.parametrize("T,chunk_sizes", CASES)
@pytest.mark.parametrize("variant", ["sequential", "independent", "nested"])
def test_chunk_equals_naive_exact(T, chunk_sizes, variant):
    (y_ref, s_ref), leaves_ref, tgt_ref = run(naive_cms, T, chunk_sizes, variant)
    (y, s), leaves, tgt = run(chunk_cms, T, chunk_sizes, variant)
    assert_close(y, y_ref)
    assert s.pos == s_ref.pos == T
    for a, b in zip(s.weights + s.pending, s_ref.weights + s_ref.pending):
        for u, v in zip(a, b):
            assert_close(u, v)
    g_ref = grads(outer_loss(y_ref, s_ref, tgt_ref), leaves_ref)
    g = grads(outer_loss(y, s, tgt), leaves)
    assert_grads_close(g, g_ref)


@pytest.mark.parametrize("variant", ["sequential", "independent", "nested"])
@pytest.mark.parametrize("chunk_sizes", [(3, 8), (2, 4, 8), (1, 5)])
def test_chunk_equals_naive_more_levels_and_odd_sizes(variant, chunk_sizes):
    T = 37
    (y_ref, s_ref), leaves_ref, tgt_ref = run(naive_cms, T, chunk_sizes, variant, seed=1)
    (y, s), leaves, tgt = run(chunk_cms, T, chunk_sizes, variant, seed=1)
    assert_close(y, y_ref)
    g_ref = grads(outer_loss(y_ref, s_ref, tgt_ref), leaves_ref)
    g = grads(outer_loss(y, s, tgt), leaves)
    assert_grads_close(g, g_ref)


@pytest.mark.parametrize("variant", ["sequential", "independent", "nested"])
@pytest.mark.parametrize("T", [63, 100])
def test_two_pass_chunk_equals_naive(variant, T):
    chunk_sizes = (4, 16)
    (y_ref, s_ref), leaves_ref, tgt_ref = run(naive_cms, T, chunk_sizes, variant, "two_pass")
    (y, s), leaves, tgt = run(chunk_cms, T, chunk_sizes, variant, "two_pass")
    assert_close(y, y_ref)
    g_ref = grads(outer_loss(y_ref, s_ref, tgt_ref), leaves_ref)
    g = grads(outer_loss(y, s, tgt), leaves)
    assert_grads_close(g, g_ref)
    # It is an approximation: with two levels it differs from the exact signal...
    (y_exact, _), _, _ = run(chunk_cms, T, chunk_sizes, variant, "exact")
    assert rel_err(y, y_exact) > 1e-6
    # ...and with one level it is the exact signal.
    (y1, _), _, _ = run(chunk_cms, T, (16,), variant, "two_pass")
    (y1_exact, _), _, _ = run(chunk_cms, T, (16,), variant, "exact")
    assert_close(y1, y1_exact, 1e-12)


@pytest.mark.parametrize("fn", [naive_cms, chunk_cms])
def test_update_is_the_partial_gradient_at_the_read_weights(fn):
    # Eq. 71 by hand: after a fast update at token 4, the slow level's pending sum is
    # sum_t eta_t dL_t/dW_slow with every level frozen at the weights read at token t. (Not the
    # total derivative: under create_graph the fast weights also depend on W_slow.)
    T, cs = 6, (4, 16)
    params, x, target, lr, agg, _ = make_problem(T, cs)
    _, state = fn(x, l2_loss(target), params, cs, lr)

    def level_grads(weights, t):
        W = [[w.detach().clone().requires_grad_() for w in lv] for lv in weights]
        h = x[:, t:t + 1].detach()
        for W1, W2 in W:
            h = h + torch.nn.functional.silu(h @ W2.transpose(1, 2)) @ W1.transpose(1, 2)
        L = ((h - target[:, t:t + 1].detach()) ** 2).sum()
        g = torch.autograd.grad(L, [w for lv in W for w in lv])
        return [g[0:2], g[2:4]]

    weights = [[w.detach().expand(B, -1, -1) for w in lv] for lv in params]
    pend = [[0, 0], [0, 0]]
    for t in range(T):
        for l, gl in enumerate(level_grads(weights, t)):
            pend[l] = [p + lr[l][:, t, None, None].detach() * g for p, g in zip(pend[l], gl)]
        if t == 3:  # fast boundary after token 4
            weights[0] = [w - p for w, p in zip(weights[0], pend[0])]
            pend[0] = [0, 0]
    for l in range(2):
        for a, b in zip(state.pending[l], pend[l]):
            assert_close(a, b, 1e-12)
    for a, b in zip(state.weights[0], weights[0]):
        assert_close(a, b, 1e-12)


def test_stop_grad_updates():
    T, cs = 63, (4, 16)
    (y_ref, s_ref), leaves_ref, tgt_ref = run(naive_cms, T, cs, stop_grad_updates=True)
    (y, s), leaves, tgt = run(chunk_cms, T, cs, stop_grad_updates=True)
    assert_close(y, y_ref)
    g_ref = grads(outer_loss(y_ref, s_ref, tgt_ref), leaves_ref)
    g = grads(outer_loss(y, s, tgt), leaves)
    assert_grads_close(g, g_ref)
    # The learning rates only act through the writes, so they get no gradient when writes are
    # constants; theta_0 still learns through the reads, but not as with full meta-gradients.
    assert all(gr is None for gr in g[-2:])
    (y_full, s_full), leaves_full, tgt_full = run(chunk_cms, T, cs)
    assert_close(y_full, y, 1e-12)  # same forward
    g_full = grads(outer_loss(y_full, s_full, tgt_full), leaves_full)
    assert rel_err(g[0], g_full[0]) > 1e-6


def changes(W):
    """[T-1] bool: does the weight used at token t differ from the one at token t-1 (any b)?"""
    return (W[:, 1:] != W[:, :-1]).flatten(2).any(-1).any(0)


@pytest.mark.parametrize("fn", [naive_cms, chunk_cms])
@pytest.mark.parametrize("variant", ["sequential", "independent"])
def test_updates_only_at_chunk_boundaries(fn, variant):
    T, cs = 100, (4, 16)
    (y, s, traj), _, _ = run(fn, T, cs, variant, debug=True)
    for (W1, W2), C in zip(traj, cs):
        expected = torch.tensor([t % C == 0 for t in range(1, T)])
        assert torch.equal(changes(W1), expected) and torch.equal(changes(W2), expected)
    # The chunk form's trajectory is the naive one.
    if fn is chunk_cms:
        (_, _, traj_ref), _, _ = run(naive_cms, T, cs, variant, debug=True)
        for a, b in zip(traj, traj_ref):
            for u, v in zip(a, b):
                assert_close(u, v)


@pytest.mark.parametrize("fn", [naive_cms, chunk_cms])
def test_nested_resets_faster_level(fn):
    T, cs = 100, (4, 16)
    (y, s, traj), _, _ = run(fn, T, cs, "nested", debug=True)
    params, *_ = make_problem(T, cs)
    (F1, F2), (S1, S2) = traj
    # The fast level is back at theta_0 at the start of every slow chunk (and at t = 0)...
    for t in range(0, T, 16):
        assert torch.equal(F1[:, t], params[0][0].detach().expand(B, -1, -1))
        assert torch.equal(F2[:, t], params[0][1].detach().expand(B, -1, -1))
    # ...moves at its own boundaries in between, and the slow level is never reset.
    expected = torch.tensor([t % 4 == 0 for t in range(1, T)])
    assert torch.equal(changes(F1), expected)
    assert torch.equal(changes(S1), torch.tensor([t % 16 == 0 for t in range(1, T)]))
    assert not torch.equal(S1[:, 32], params[1][0].detach().expand(B, -1, -1))
    # Before the first slow boundary nested and sequential agree; after it they differ.
    (y_seq, _), _, _ = run(fn, T, cs, "sequential")
    assert_close(y[:, :16], y_seq[:, :16], 1e-14)
    assert rel_err(y[:, 16:], y_seq[:, 16:]) > 1e-6


@pytest.mark.parametrize("variant", ["sequential", "nested"])
@pytest.mark.parametrize("signal", ["exact", "two_pass"])
def test_stream_split_equals_whole(variant, signal):
    # The state carries the position and the pending partial-chunk gradients across calls.
    T, cs = 100, (4, 16)
    params, x, target, lr, agg, _ = make_problem(T, cs, seed=4)
    loss = l2_loss(target)
    y_whole, s_whole = chunk_cms(x, loss, params, cs, lr, variant, signal)
    # two_pass's first pass starts at the call start, so its calls must start on the slowest
    # level's grid (documented in naive.py); exact takes any cut.
    cuts = [0, 16, 48, 64, 100] if signal == "two_pass" else [0, 7, 35, 36, 90, 100]
    state, ys = None, []
    for a, b in zip(cuts[:-1], cuts[1:]):
        seg_loss = lambda y, s, e, a=a: loss(y, a + s, a + e)
        seg_lr = [e[:, a:b] for e in lr]
        y_seg, state = chunk_cms(x[:, a:b], seg_loss, params, cs, seg_lr, variant, signal,
                                 initial_state=state)
        ys.append(y_seg)
    assert_close(torch.cat(ys, dim=1), y_whole, 1e-12)
    assert state.pos == T
    for a, b in zip(state.weights + state.pending, s_whole.weights + s_whole.pending):
        for u, v in zip(a, b):
            assert_close(u, v, 1e-12)


def test_runs_without_grad_and_bad_options():
    T, cs = 20, (4, 16)
    params, x, target, lr, agg, _ = make_problem(T, cs)
    with torch.no_grad():
        y_ng, _ = chunk_cms(x, l2_loss(target), params, cs, lr)
        y_ng_ref, _ = naive_cms(x, l2_loss(target), params, cs, lr)
    y, _ = chunk_cms(x, l2_loss(target), params, cs, lr)
    assert_close(y_ng, y, 1e-13)
    assert_close(y_ng_ref, y, 1e-12)
    with pytest.raises(NotImplementedError, match="local"):
        chunk_cms(x, l2_loss(target), params, cs, lr, signal="local")
    with pytest.raises(ValueError, match="variant"):
        chunk_cms(x, l2_loss(target), params, cs, lr, variant="parallel")
    with pytest.raises(ValueError, match="chunk sizes"):
        chunk_cms(x, l2_loss(target), params, (4,), lr)
    with pytest.raises(ValueError, match="learning rates"):
        chunk_cms(x, l2_loss(target), params, cs, lr[:1])
