"""Self-modifying Titans (Nested Learning Eq. 83-93): six residual-MLP memories that generate
their own keys, values, gates and targets, updated by delta gradient descent."""

from .chunk import chunk_self_modifying_titans
from .naive import initial_self_mod_state, memory_names, naive_self_modifying_titans

__all__ = ["chunk_self_modifying_titans", "naive_self_modifying_titans", "initial_self_mod_state",
           "memory_names"]
