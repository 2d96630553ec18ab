"""Delta Gradient Descent on a linear memory (Nested Learning Eq. 56-57)."""

from .chunk import chunk_dgd
from .naive import dgd_step_size, naive_dgd

__all__ = ["chunk_dgd", "dgd_step_size", "naive_dgd"]
