"""CMS chunk-boundary update: one entry point that picks the fused Triton kernel or PyTorch."""

from __future__ import annotations

import importlib.util
import os

import torch

_HAS_TRITON = importlib.util.find_spec("triton") is not None


def cms_update_reference(w, p, g, lr, apply):
    """The definition (Eq. 71), as continuum.py's accumulate + advance write it."""
    p = p + lr * g
    if apply:
        return w - p, torch.zeros_like(p)
    return w, p


def cms_update(
    w: torch.Tensor, p: torch.Tensor, g: torch.Tensor, lr: float, apply: bool,
    impl: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """pending'' = p + lr g; apply: (w - pending'', 0), else (w, pending'').

    impl: "auto" (the fused kernel for CUDA tensors when triton imports, else PyTorch), "kernel"
    (raise if it cannot run: it needs CUDA, or TRITON_INTERPRET=1 for CPU tensors) or
    "reference". The kernel is differentiable to any order (its backward is its transpose, also
    a Triton kernel), so "auto" needs no fallback for create_graph / double backward.
    """
    if impl not in ("auto", "kernel", "reference"):
        raise ValueError(f"impl must be 'auto', 'kernel' or 'reference', got {impl!r}")
    same = w.shape == p.shape == g.shape and w.dtype == p.dtype == g.dtype
    if impl == "reference" or (impl == "auto" and not (w.is_cuda and _HAS_TRITON and same)):
        return cms_update_reference(w, p, g, lr, apply)
    if not _HAS_TRITON:
        raise RuntimeError("impl='kernel' needs triton (pip install 'nslang[kernels]')")
    if not (w.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"):
        raise RuntimeError("impl='kernel' needs CUDA tensors (or TRITON_INTERPRET=1)")
    if not same:
        raise ValueError(f"the CMS kernel needs equal shapes and dtypes, got "
                         f"{tuple(w.shape)}/{w.dtype}, {tuple(p.shape)}/{p.dtype}, "
                         f"{tuple(g.shape)}/{g.dtype}")
    from .kernel import cms_update_kernel

    return cms_update_kernel(w, p, g, lr, apply)


__all__ = ["cms_update", "cms_update_reference"]
