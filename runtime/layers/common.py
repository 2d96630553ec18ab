"""Pieces shared by the layers: norms, rotary positions, head splitting."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

# Which implementation of each rule the layers call: "fast" (the chunk-parallel form; kernels
# where they exist) or "reference" (the token-by-token definition). `nslang compile --check`
# and tests compare the two; users force either with `implementation(...)`.
_MODE = ["fast"]


@contextlib.contextmanager
def implementation(mode: str):
    if mode not in ("fast", "reference"):
        raise ValueError(f"implementation is 'fast' or 'reference', not {mode!r}")
    _MODE.append(mode)
    try:
        yield
    finally:
        _MODE.pop()


def op(fast, reference, chunk_is_semantic: bool = False):
    """One rule with two implementations. For exact rules the chunk size is only a speed knob
    and the token-by-token form takes none; for mini-batch rules (Titans, Eq. 90) it is part of
    the definition and both forms take it."""
    def call(*args, **kwargs):
        if _MODE[-1] == "reference":
            if not chunk_is_semantic:
                kwargs.pop("chunk_size", None)
            return reference(*args, **kwargs)
        return fast(*args, **kwargs)
    call.__name__ = fast.__name__
    return call

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(kind: str, dim: int) -> nn.Module:
    return RMSNorm(dim) if kind == "rmsnorm" else nn.LayerNorm(dim)


def rotary(x: torch.Tensor, offset: int = 0, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding on [B, T, H, D] (D even), positions offset..offset+T-1."""
    d = x.shape[-1]
    # Angles in float32 at least (float64 when the model runs in float64, for exact tests).
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    inv = base ** (-torch.arange(0, d, 2, device=x.device, dtype=dtype) / d)
    pos = torch.arange(offset, offset + x.shape[1], device=x.device, dtype=dtype)
    ang = torch.outer(pos, inv)[None, :, None, :]  # [1, T, 1, D/2]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.unflatten(-1, (heads, x.shape[-1] // heads))  # [B, T, D] -> [B, T, H, D/H]


class CausalConv(nn.Module):
    """Depthwise causal convolution (window w) followed by SiLU. It carries the last w - 1
    inputs as state, so a sequence split into segments sees the same convolution."""

    def __init__(self, channels: int, window: int):
        super().__init__()
        self.window = window
        self.conv = nn.Conv1d(channels, channels, window, groups=channels)

    def forward(self, h, tail=None):  # h [B, T, C]
        if tail is None:
            tail = h.new_zeros(h.shape[0], self.window - 1, h.shape[2])
        padded = torch.cat([tail, h], dim=1)  # [B, w-1+T, C]
        tail = padded[:, padded.shape[1] - (self.window - 1):]
        return F.silu(self.conv(padded.transpose(1, 2)).transpose(1, 2)), tail
