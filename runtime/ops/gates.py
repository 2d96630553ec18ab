"""Argument handling shared by the ops' token-by-token forms."""
from __future__ import annotations

import torch


def retention(a: torch.Tensor | None, log_a: torch.Tensor | None) -> torch.Tensor | None:
    """The retention a_t [B, T, H], given as itself or as its logarithm (at most one of the two);
    None means a_t = 1 (no decay)."""
    if a is not None and log_a is not None:
        raise ValueError("pass the retention as `a` or as `log_a`, not both")
    return torch.exp(log_a) if log_a is not None else a
