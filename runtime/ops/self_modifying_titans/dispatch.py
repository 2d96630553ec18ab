"""Self-modifying Titans: one entry point that picks the fused Triton kernels or the PyTorch chunk
form (runtime/ops/kernel_dispatch.py says how)."""

from __future__ import annotations

from ..kernel_dispatch import run
from .chunk import chunk_self_modifying_titans
from .naive import memory_names


def self_modifying_titans(x, init_weights=None, W_q=None, impl="auto", constexprs=None, **kwargs):
    """Same arguments and result as `chunk_self_modifying_titans`, plus impl ("auto", "kernel"
    or "reference") and constexprs (the kernel parameters codegen chose)."""
    def load():
        from .kernel import chunk_self_modifying_titans_kernel, why_not

        return (lambda: chunk_self_modifying_titans_kernel(x, init_weights, W_q, **kwargs),
                lambda: why_not(x, init_weights, W_q, verified_only=impl == "auto", **kwargs))

    names = memory_names(kwargs.get("adaptive_q", False), kwargs.get("retention", True))
    src = kwargs.get("initial_state") or init_weights or {}
    hidden = {src[n][1].shape[-2] for n in names if n in src}
    actual = dict(CHUNK=kwargs.get("chunk_size", 16), ACT=kwargs.get("activation", "silu"),
                  READ=kwargs.get("read", "previous"), DGD=kwargs.get("dgd", "input"),
                  HIDDEN=hidden.pop() if len(hidden) == 1 else None)
    return run(impl, x, lambda: chunk_self_modifying_titans(x, init_weights, W_q, **kwargs), load,
               constexprs, actual)


__all__ = ["self_modifying_titans"]
