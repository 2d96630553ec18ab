"""Gated delta rule: one entry point that picks the Triton kernel or the PyTorch chunk form
(runtime/ops/kernel_dispatch.py says how).

The delta rule is this op with a = None (the kernel compiles the gate out).
"""

from __future__ import annotations

import torch

from ..kernel_dispatch import run
from .chunk import chunk_gated_delta


def gated_delta(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    b: torch.Tensor,
    a: torch.Tensor | None = None,
    *,
    log_a: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
    impl: str = "auto",
    constexprs: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """M_t = a_t M_{t-1}(I - b_t k_t k_t^T) + b_t v_t k_t^T, y_t = M_t q_t; see chunk.py.

    impl: "auto", "kernel" or "reference"; constexprs: the kernel parameters codegen chose.
    Returns (o [B, T, H, Dv], final_state [B, H, Dv, Dk]).
    """
    kwargs = dict(log_a=log_a, initial_state=initial_state, chunk_size=chunk_size)

    def load():
        from .kernel import chunk_gated_delta_kernel, supports

        return (lambda: chunk_gated_delta_kernel(q, k, v, b, a, **kwargs),
                lambda: None if supports(k, v, chunk_size) else
                f"chunk {chunk_size}, head widths {k.shape[-1]}/{v.shape[-1]} or dtype {k.dtype}")

    actual = dict(DELTA=True, GATE=a is not None or log_a is not None, CHUNK=chunk_size,
                  DK=k.shape[-1], DV=v.shape[-1])
    return run(impl, q, lambda: chunk_gated_delta(q, k, v, b, a, **kwargs), load, constexprs,
               actual)


__all__ = ["gated_delta"]
