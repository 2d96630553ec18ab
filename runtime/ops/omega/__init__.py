"""Omega rule with a sliding window c (Atlas) on a linear memory."""

from .chunk import chunk_omega
from .naive import naive_omega

__all__ = ["chunk_omega", "naive_omega"]
