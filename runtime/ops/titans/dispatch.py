"""Titans MLP memory: one entry point that picks the Triton kernel or the PyTorch chunk form."""

from __future__ import annotations

import importlib.util
import os

import torch

from .chunk import chunk_titans

_HAS_TRITON = importlib.util.find_spec("triton") is not None


def _kernel_usable(x: torch.Tensor) -> bool:
    # TRITON_INTERPRET=1 runs the kernels on CPU tensors (tests); otherwise they need CUDA.
    return _HAS_TRITON and (x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1")


def titans(q, k, v, eta, theta, alpha, W1_init=None, W2_init=None, chunk_size=16, memory="mlp",
           activation="silu", read="current", initial_state=None, impl="auto"):
    """Same arguments and result as `chunk_titans`, plus impl: "auto" (the Triton kernel on CUDA
    when triton imports and the options are supported, else the chunk reference), "kernel"
    (raise if it cannot run) or "reference"."""
    if impl not in ("auto", "kernel", "reference"):
        raise ValueError(f"impl must be 'auto', 'kernel' or 'reference', got {impl!r}")
    args = (q, k, v, eta, theta, alpha, W1_init, W2_init)
    kwargs = dict(chunk_size=chunk_size, memory=memory, activation=activation, read=read,
                  initial_state=initial_state)
    if impl == "reference":
        return chunk_titans(*args, **kwargs)
    if impl == "kernel":
        if not _HAS_TRITON:
            raise RuntimeError("impl='kernel' needs triton (pip install 'nslang[kernels]')")
        if not _kernel_usable(q):
            raise RuntimeError("impl='kernel' needs CUDA tensors (or TRITON_INTERPRET=1)")
    elif not (q.is_cuda and _HAS_TRITON):
        return chunk_titans(*args, **kwargs)
    from .kernel import chunk_titans_kernel, supports

    if impl == "auto" and not supports(*args, **kwargs):
        return chunk_titans(*args, **kwargs)
    return chunk_titans_kernel(*args, **kwargs)  # raises ValueError on unsupported options


__all__ = ["titans"]
