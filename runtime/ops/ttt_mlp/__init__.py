"""TTT-MLP: residual MLP fast weights trained by mini-batch GD on an L2 reconstruction loss."""

from .chunk import chunk_ttt_mlp
from .naive import initial_ttt_state, naive_ttt_mlp

__all__ = ["chunk_ttt_mlp", "naive_ttt_mlp", "initial_ttt_state"]
