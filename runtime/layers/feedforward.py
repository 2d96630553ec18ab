"""Memories on the outer level: ordinary MLP weights, learned by the outer optimizer."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class FeedForward(nn.Module):
    """A memory on the outer level: ordinary weights, learned by the outer optimizer only."""

    def __init__(self, dim: int, hidden: int, kind: str, act: str):
        super().__init__()
        self.kind, self.act = kind, getattr(F, act)
        if kind == "matrix":
            self.w = nn.Linear(dim, dim, bias=False)
            return
        self.up = nn.Linear(dim, hidden * (2 if kind == "swiglu" else 1), bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x, state=None):
        if self.kind == "matrix":
            return self.w(x), None
        h = self.up(x)
        if self.kind == "swiglu":
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = self.act(h)
        y = self.down(h)
        return (x + y if self.kind == "residual_mlp" else y), None
