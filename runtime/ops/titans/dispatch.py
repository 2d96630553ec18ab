"""Titans MLP memory: one entry point that picks the Triton kernel or the PyTorch chunk form
(runtime/ops/kernel_dispatch.py says how)."""

from __future__ import annotations

from ..kernel_dispatch import run
from .chunk import chunk_titans


def titans(q, k, v, eta, theta, alpha, W1_init=None, W2_init=None, chunk_size=16, memory="mlp",
           activation="silu", read="current", initial_state=None, impl="auto", constexprs=None):
    """Same arguments and result as `chunk_titans`, plus impl ("auto", "kernel" or "reference")
    and constexprs (the kernel parameters codegen chose)."""
    args = (q, k, v, eta, theta, alpha, W1_init, W2_init)
    kwargs = dict(chunk_size=chunk_size, memory=memory, activation=activation, read=read,
                  initial_state=initial_state)

    def load():
        from .kernel import chunk_titans_kernel, why_not

        return lambda: chunk_titans_kernel(*args, **kwargs), lambda: why_not(*args, **kwargs)

    w1 = initial_state[0] if initial_state is not None else W1_init
    actual = dict(RESIDUAL=memory == "residual_mlp", ACT=activation, CHUNK=chunk_size,
                  DK=k.shape[-1], DV=v.shape[-1], HIDDEN=None if w1 is None else w1.shape[-1])
    return run(impl, q, lambda: chunk_titans(*args, **kwargs), load, constexprs, actual)


__all__ = ["titans"]
