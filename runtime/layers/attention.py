"""Softmax attention as a layer: a non-parametric memory whose state is the KV cache."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..ops.attention import attention as sdpa_attention
from ..ops.attention import naive_attention
from .common import _heads, op, rotary

attention = op(sdpa_attention, naive_attention)


class Attention(nn.Module):
    """Softmax attention, a non-parametric memory: its state is the KV cache."""

    def __init__(self, dim: int, heads: int, window: int | None, rope: bool, qk_norm: bool):
        super().__init__()
        self.heads, self.window, self.rope, self.qk_norm = heads, window, rope, qk_norm
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x, state=None):
        q, k, v = (_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))  # [B, T, H, Dh]
        if self.qk_norm:
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        cache, position = state if state is not None else (None, 0)
        if self.rope:  # positions continue across segments
            q, k = rotary(q, position), rotary(k, position)
        o, cache = attention(q, k, v, window=self.window, initial_state=cache)
        return self.out(o.flatten(-2)), (cache, position + x.shape[1])
