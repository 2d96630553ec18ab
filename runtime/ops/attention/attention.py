"""Causal softmax attention, fast path: torch's scaled_dot_product_attention.

Same definition as naive.py (o_t = softmax over the visible keys of <q_t, k_j> * scale, times v).
Why this is exact: SDPA computes softmax(Q K^T * scale + mask) V for all queries at once, and a
boolean mask that is True exactly on the visible pairs (j <= p and, for a window w, j > p - w,
with p the query's position after the S cached tokens) makes each row's softmax run over the same
set of keys as the loop in naive.py. Every row sees at least its own key, so no row is all-masked.

Global attention without a cache uses is_causal=True, which lets torch pick its fused kernels;
any other case passes the explicit mask.

`attention_step` is the generation form: one new token against the KV cache. The cache only
ever holds tokens the next query can see (naive.trim_cache), so the step needs no mask.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .naive import KVCache, check_window, empty_cache, trim_cache


def visible_mask(n_query: int, n_past: int, window: Optional[int], device) -> Tensor:
    """Boolean [T, S+T]: query i (at position S+i) may read key j."""
    pos = torch.arange(n_query, device=device)[:, None] + n_past  # [T, 1]
    j = torch.arange(n_past + n_query, device=device)[None, :]  # [1, S+T]
    mask = j <= pos
    if window is not None:
        mask = mask & (j > pos - window)
    return mask


def attention(
    q: Tensor,  # [B, T, H, Dk]
    k: Tensor,  # [B, T, H, Dk]
    v: Tensor,  # [B, T, H, Dv]
    window: Optional[int] = None,
    scale: Optional[float] = None,
    initial_state: Optional[KVCache] = None,
) -> tuple[Tensor, KVCache]:
    """Causal (global or sliding-window) attention over a segment, continuing from a KV cache.

    Returns (o [B, T, H, Dv], cache for the next segment).
    """
    check_window(window)
    past = empty_cache(k, v) if initial_state is None else initial_state
    n_past = past.k.shape[1]
    keys = torch.cat([past.k, k], dim=1) if n_past else k  # [B, S+T, H, Dk]
    values = torch.cat([past.v, v], dim=1) if n_past else v  # [B, S+T, H, Dv]

    # SDPA wants heads before time: [B, H, T, D].
    qh, kh, vh = q.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2)
    if n_past == 0 and window is None:
        o = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=scale)
    else:
        mask = visible_mask(q.shape[1], n_past, window, q.device)  # [T, S+T], broadcast over B, H
        o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=scale)
    return o.transpose(1, 2), trim_cache(KVCache(keys, values), window)  # o: [B, T, H, Dv]


def attention_step(
    q_t: Tensor,  # [B, H, Dk]  one new token
    k_t: Tensor,  # [B, H, Dk]
    v_t: Tensor,  # [B, H, Dv]
    cache: Optional[KVCache] = None,
    window: Optional[int] = None,
    scale: Optional[float] = None,
) -> tuple[Tensor, KVCache]:
    """One generation step: append (k_t, v_t), attend over the cache, return (o_t [B, H, Dv], cache)."""
    check_window(window)
    k_new, v_new = k_t[:, None], v_t[:, None]  # [B, 1, H, D]
    if cache is not None:
        # A cache may come from a wider (or global) run; drop what this window cannot see.
        cache = trim_cache(cache, window)
        k_new = torch.cat([cache.k, k_new], dim=1)  # [B, S+1, H, Dk]
        v_new = torch.cat([cache.v, v_new], dim=1)
    # Every cached token is visible to the new query, so no mask: [B, H, 1, D] x [B, H, S+1, D].
    o = F.scaled_dot_product_attention(
        q_t[:, :, None], k_new.transpose(1, 2), v_new.transpose(1, 2), scale=scale
    )
    return o[:, :, 0], trim_cache(KVCache(k_new, v_new), window)
