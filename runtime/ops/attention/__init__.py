"""Causal softmax attention (global and sliding-window): naive reference, SDPA fast path, KV-cache step."""
from .attention import attention, attention_step
from .naive import KVCache, naive_attention

__all__ = ["KVCache", "attention", "attention_step", "naive_attention"]
