"""Continuum Memory System (Eq. 70-74): k residual-MLP levels updated at their own chunk
boundaries by the task loss; token-by-token reference and chunk-parallel form."""
from .chunk import chunk_cms
from .naive import CMSState, initial_cms_state, naive_cms

__all__ = ["CMSState", "chunk_cms", "initial_cms_state", "naive_cms"]
