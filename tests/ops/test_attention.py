"""Attention op: SDPA fast path == explicit-loop reference in float64, outputs and gradients;
a stream split into segments (or single generation steps) with the KV cache == the whole stream."""
import pytest
import torch

from runtime.ops.attention import KVCache, attention, attention_step, naive_attention

B, H, DK, DV = 2, 3, 8, 5
WINDOWS = [None, 1, 5, 16, 200]


def make_inputs(T, seed=0, past=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, DK, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(B, T, H, DK, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(B, T, H, DV, generator=g, dtype=torch.float64, requires_grad=True)
    cache = None
    if past:
        cache = KVCache(
            torch.randn(B, past, H, DK, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(B, past, H, DV, generator=g, dtype=torch.float64, requires_grad=True),
        )
    return q, k, v, cache


def leaves(q, k, v, cache):
    return [q, k, v] + ([] if cache is None else [cache.k, cache.v])


def max_rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("T", [1, 63, 100])
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("past", [0, 7])
def test_fast_equals_naive_outputs_and_grads(T, window, past):
    q, k, v, cache = make_inputs(T, seed=T, past=past)
    o_ref, c_ref = naive_attention(q, k, v, window=window, initial_state=cache)
    o, c = attention(q, k, v, window=window, initial_state=cache)
    assert max_rel(o, o_ref) < 1e-12
    assert torch.equal(c.k, c_ref.k) and torch.equal(c.v, c_ref.v)

    # A loss that reads both the output and the returned cache, so the cache's gradient is checked.
    g = torch.Generator().manual_seed(1)
    w_o = torch.randn(o.shape, generator=g, dtype=torch.float64)
    w_c = torch.randn(c.v.shape, generator=g, dtype=torch.float64)
    inputs = leaves(q, k, v, cache)
    grads_ref = torch.autograd.grad((o_ref * w_o).sum() + (c_ref.v * w_c).sum() + c_ref.k.sum(), inputs)
    grads = torch.autograd.grad((o * w_o).sum() + (c.v * w_c).sum() + c.k.sum(), inputs)
    for a, b in zip(grads, grads_ref):
        assert max_rel(a, b) < 1e-12


def test_window_semantics():
    # Token t sees exactly t-w+1..t: changing a value outside that range must not change o_t.
    T, w = 20, 4
    q, k, v, _ = make_inputs(T)
    o, _ = attention(q, k, v, window=w)
    v2 = v.detach().clone()
    v2[:, 10] += 100.0
    o2, _ = attention(q, k, v2, window=w)
    changed = (o2 - o).abs().amax(dim=(0, 2, 3)) > 0  # [T]
    assert changed.nonzero().flatten().tolist() == [10, 11, 12, 13]
    # window=1: each token reads only its own value.
    o1, _ = attention(q, k, v, window=1)
    assert torch.allclose(o1, v, atol=1e-12)
    # A window covering the whole sequence is global attention.
    og, _ = attention(q, k, v)
    ow, _ = attention(q, k, v, window=T)
    assert max_rel(ow, og) < 1e-13


@pytest.mark.parametrize("window", WINDOWS)
def test_segments_with_cache_equal_whole(window):
    T = 100
    q, k, v, _ = make_inputs(T, seed=3)
    o_whole, c_whole = attention(q, k, v, window=window)

    # Segment by segment (awkward cuts, including a 1-token segment), carrying the cache.
    cuts = [0, 37, 38, 63, 100]
    cache, outs = None, []
    for a, b in zip(cuts[:-1], cuts[1:]):
        o_seg, cache = attention(q[:, a:b], k[:, a:b], v[:, a:b], window=window, initial_state=cache)
        outs.append(o_seg)
    o_seg = torch.cat(outs, dim=1)
    assert max_rel(o_seg, o_whole) < 1e-12
    assert torch.equal(cache.k, c_whole.k)

    # Token by token with the generation step.
    cache, outs = None, []
    for t in range(T):
        o_t, cache = attention_step(q[:, t], k[:, t], v[:, t], cache, window=window)
        outs.append(o_t)
    o_step = torch.stack(outs, dim=1)
    assert max_rel(o_step, o_whole) < 1e-12
    expected_len = T if window is None else min(window - 1, T)
    assert cache.k.shape[1] == expected_len

    # Gradients through the cache carried across segments equal those of the whole run.
    w_o = torch.randn(o_whole.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    g_whole = torch.autograd.grad((o_whole * w_o).sum(), [q, k, v])
    g_step = torch.autograd.grad((o_step * w_o).sum(), [q, k, v])
    g_seg = torch.autograd.grad((o_seg * w_o).sum(), [q, k, v])
    for a, b, c in zip(g_step, g_seg, g_whole):
        assert max_rel(a, c) < 1e-12 and max_rel(b, c) < 1e-12


def test_step_trims_a_wider_cache():
    # A global cache handed to a windowed step only contributes its last window-1 tokens.
    q, k, v, _ = make_inputs(30, seed=9)
    _, global_cache = attention(q[:, :29], k[:, :29], v[:, :29])
    o_t, c = attention_step(q[:, 29], k[:, 29], v[:, 29], global_cache, window=6)
    o_ref, _ = naive_attention(q, k, v, window=6)
    assert max_rel(o_t, o_ref[:, 29]) < 1e-12
    assert c.k.shape[1] == 5


def test_bad_window():
    q, k, v, _ = make_inputs(4)
    with pytest.raises(ValueError, match="window"):
        attention(q, k, v, window=0)
