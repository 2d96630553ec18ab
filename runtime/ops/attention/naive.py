"""Causal softmax attention, token by token: the definition the fast path is tested against.

Non-parametric level (nested-learning.md section 1, "direct non-parametric transfer", Eq. 27):
the "memory" is the context itself, and reading it is

    o_t = sum_{j in S(t)} softmax_j(<q_t, k_j> * scale) v_j,

with S(t) = {0..t} (global causal attention) or S(t) = {t-w+1..t} (sliding window of w tokens,
as in Hope-Attention / SWA baselines, section 7). Token tensors are [B, T, H, D] (CONVENTIONS.md);
heads are independent (no grouped-query sharing).

State across segments: a KV cache holding the keys and values the *next* token can still see:
all past tokens for global attention, the last w-1 for a window of w. Passing the cache of one
segment as `initial_state` of the next makes a split stream equal the whole stream.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor


class KVCache(NamedTuple):
    k: Tensor  # [B, S, H, Dk]  keys of the last S tokens (S <= window-1 for a window)
    v: Tensor  # [B, S, H, Dv]


def empty_cache(k: Tensor, v: Tensor) -> KVCache:
    """A cache with no tokens, shaped like the token tensors k [B, T, H, Dk], v [B, T, H, Dv]."""
    return KVCache(k[:, :0], v[:, :0])


def trim_cache(cache: KVCache, window: Optional[int]) -> KVCache:
    """Keep only what the next token can see: everything (global) or the last window-1 tokens."""
    if window is None:
        return cache
    keep = window - 1
    s = cache.k.shape[1]
    return KVCache(cache.k[:, max(s - keep, 0):], cache.v[:, max(s - keep, 0):])


def check_window(window: Optional[int]) -> None:
    if window is not None and window < 1:
        raise ValueError(f"attention window must be >= 1 token (or None for global), got {window}")


def naive_attention(
    q: Tensor,  # [B, T, H, Dk]
    k: Tensor,  # [B, T, H, Dk]
    v: Tensor,  # [B, T, H, Dv]
    window: Optional[int] = None,
    scale: Optional[float] = None,
    initial_state: Optional[KVCache] = None,
) -> tuple[Tensor, KVCache]:
    """Loop over query tokens; token t attends to the visible keys with an explicit softmax.

    Returns (o [B, T, H, Dv], cache for the next segment).
    """
    check_window(window)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    past = empty_cache(k, v) if initial_state is None else initial_state
    n_past = past.k.shape[1]
    keys = torch.cat([past.k, k], dim=1)  # [B, S+T, H, Dk]  absolute index j = position in this list
    values = torch.cat([past.v, v], dim=1)  # [B, S+T, H, Dv]

    outs = []
    for i in range(q.shape[1]):
        p = n_past + i  # position of query token i in `keys`
        lo = 0 if window is None else max(p - window + 1, 0)
        kk, vv = keys[:, lo:p + 1], values[:, lo:p + 1]  # [B, n, H, D]: exactly the visible tokens
        scores = torch.einsum("bhd,bnhd->bhn", q[:, i], kk) * scale  # [B, H, n]
        weights = torch.softmax(scores, dim=-1)
        outs.append(torch.einsum("bhn,bnhd->bhd", weights, vv))  # [B, H, Dv]
    o = torch.stack(outs, dim=1) if outs else v[:, :0]  # [B, T, H, Dv]
    return o, trim_cache(KVCache(keys, values), window)
