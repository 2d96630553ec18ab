"""Titans neural memory (MLP memory, momentum, retention, mini-batch gradients)."""

from .chunk import chunk_titans
from .dispatch import titans
from .naive import initial_titans_state, naive_titans

__all__ = ["chunk_titans", "naive_titans", "initial_titans_state", "titans"]
