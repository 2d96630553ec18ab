"""Hebbian rule / linear attention (Nested Learning Eq. 14-18), with optional retention."""

from .chunk import chunk_hebbian
from .dispatch import hebbian
from .naive import naive_hebbian

__all__ = ["chunk_hebbian", "hebbian", "naive_hebbian"]
