"""TTT-linear: a linear memory trained by mini-batch GD on ||W k - v||^2 (Sun et al. 2024)."""

from .chunk import chunk_ttt_linear
from .naive import naive_ttt_linear

__all__ = ["chunk_ttt_linear", "naive_ttt_linear"]
