"""Delta rule / DeltaNet: M_t = M_{t-1}(I - b_t k_t k_t^T) + b_t v_t k_t^T, y_t = M_t q_t."""

from .chunk import chunk_delta
from .naive import naive_delta

__all__ = ["chunk_delta", "naive_delta"]
