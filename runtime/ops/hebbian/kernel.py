"""Hebbian rule (linear attention with optional retention): Triton kernels, forward and backward.

The kernels are the gated delta rule's (runtime/ops/gated_delta/kernel.py) compiled with the
constexpr DELTA=False: with no delta correction the WY form disappears (no triangular solve, no
W, T), the chunk's corrected values E = U - W S are just V, and beta is absent. Per chunk
(g = in-chunk cumulative log retention, gC its last entry), exactly chunk.py's form:

    O = diag(exp g) Q S + causal(Q K^T * exp(g_t - g_s)) V,
    S' = exp(gC) S + K^T diag(exp(gC - g)) V

(S = M^T). The backward is the gated delta backward without its WY terms: dV = dE comes out of
the reverse state loop, dK and dQ out of `_dqkw`, and d log a (gate only) from the same reverse
in-chunk cumsum. HAS_GATE=False compiles the decay out (plain linear attention, Eq. 16).
"""

from __future__ import annotations

import torch

from ..gated_delta.kernel import chunk_kernel, supports


def chunk_hebbian_kernel(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor | None = None,
    *,
    log_a: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton Hebbian rule; same contract as `chunk_hebbian` (chunk.py).

    Args:
        q, k: [B, T, H, Dk]; v: [B, T, H, Dv].
        a: retention in (0, 1], [B, T, H] (default 1: no decay). Or ``log_a``, not both.
        initial_state: M_0, [B, H, Dv, Dk] (default zeros).
        chunk_size: C in {16, 32, 64}.
    Returns:
        o: [B, T, H, Dv] (dtype of q); final_state: [B, H, Dv, Dk] (dtype of the initial state,
        else of v), accumulated in fp32.
    """
    return chunk_kernel(q, k, v, None, a, log_a=log_a, initial_state=initial_state,
                        chunk_size=chunk_size)


__all__ = ["chunk_hebbian_kernel", "supports"]
