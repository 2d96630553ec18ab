"""Shared helpers for the chunk-parallel forms in `runtime/ops/<rule>/chunk.py`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _to_chunks(x: torch.Tensor, n_chunks: int, chunk_size: int) -> torch.Tensor:
    """[B, T, H, *rest] -> [B, H, N, C, *rest], zero-padding T at the end to N * C."""
    pad = n_chunks * chunk_size - x.shape[1]
    if pad:
        # F.pad pads from the last dim backwards; move T last, pad, move it back.
        x = F.pad(x.movedim(1, -1), (0, pad)).movedim(-1, 1)
    B, _, H = x.shape[:3]
    x = x.reshape(B, n_chunks, chunk_size, H, *x.shape[3:])
    return x.movedim(3, 1)  # [B, H, N, C, *rest]
