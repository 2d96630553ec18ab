"""Gated delta rule: M_t = a_t M_{t-1}(I - b_t k_t k_t^T) + b_t v_t k_t^T, y_t = M_t q_t."""

from .chunk import chunk_gated_delta
from .naive import naive_gated_delta

__all__ = ["chunk_gated_delta", "naive_gated_delta"]
