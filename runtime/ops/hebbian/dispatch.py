"""Hebbian rule: one entry point that picks the Triton kernel or the PyTorch chunk form."""

from __future__ import annotations

import importlib.util
import os

import torch

from .chunk import chunk_hebbian

_HAS_TRITON = importlib.util.find_spec("triton") is not None


def _kernel_usable(x: torch.Tensor) -> bool:
    # TRITON_INTERPRET=1 runs the kernels on CPU tensors (tests); otherwise they need CUDA.
    return _HAS_TRITON and (x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1")


def hebbian(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor | None = None,
    *,
    log_a: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
    impl: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """M_t = a_t M_{t-1} + v_t k_t^T, y_t = M_t q_t; see chunk.py.

    impl: "auto" (the Triton kernel on CUDA when triton imports and the shapes are supported,
    else the chunk reference), "kernel" (raise if it cannot run) or "reference".
    Returns (o [B, T, H, Dv], final_state [B, H, Dv, Dk]).
    """
    if impl not in ("auto", "kernel", "reference"):
        raise ValueError(f"impl must be 'auto', 'kernel' or 'reference', got {impl!r}")
    kwargs = dict(log_a=log_a, initial_state=initial_state, chunk_size=chunk_size)
    if impl == "reference":
        return chunk_hebbian(q, k, v, a, **kwargs)
    if impl == "kernel":
        if not _HAS_TRITON:
            raise RuntimeError("impl='kernel' needs triton (pip install 'nslang[kernels]')")
        if not _kernel_usable(q):
            raise RuntimeError("impl='kernel' needs CUDA tensors (or TRITON_INTERPRET=1)")
    elif not (q.is_cuda and _HAS_TRITON):
        return chunk_hebbian(q, k, v, a, **kwargs)
    from .kernel import chunk_hebbian_kernel, supports

    if impl == "auto" and not supports(k, v, chunk_size):
        return chunk_hebbian(q, k, v, a, **kwargs)
    return chunk_hebbian_kernel(q, k, v, a, **kwargs)  # raises on unsupported shapes


__all__ = ["hebbian"]
