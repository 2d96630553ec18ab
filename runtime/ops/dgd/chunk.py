"""Delta Gradient Descent (DGD) on a linear memory, chunk-parallel form.

DGD's closed form (Eq. 57, see naive.py) is

    M_t = a_t M_{t-1} (I - eta'_t k_t k_t^T) + eta'_t v_t k_t^T,

which is the gated delta rule with write strength b_t = eta'_t (a per-token function of eta_t and
||k_t||, computed up front for all tokens). So this form only computes eta'_t and calls the gated
delta op's chunk form (WY representation with in-chunk log decay; its derivation is in
runtime/ops/gated_delta/chunk.py). Exactness and gradients carry over: eta'_t is an ordinary
differentiable function of eta_t and k_t, and autograd adds its contribution to the gradient of k.
"""

from __future__ import annotations

import torch

from ..gated_delta import chunk_gated_delta
from .naive import dgd_step_size


def chunk_dgd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    eta: torch.Tensor,
    a: torch.Tensor | None = None,
    *,
    log_a: torch.Tensor | None = None,
    step: str = "exact",
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunk-parallel DGD; same contract as naive_dgd (plus chunk_size).

    Args:
        q, k: [B, T, H, Dk]; v: targets, [B, T, H, Dv]; eta: [B, T, H].
        a / log_a: retention in (0, 1] or its log, [B, T, H] (default 1; not both).
        step: "exact" or "paper" (see naive_dgd).
        initial_state: M_0, [B, H, Dv, Dk] (default zeros).
        chunk_size: C, tokens per chunk.
    Returns:
        o: [B, T, H, Dv]; final_state: [B, H, Dv, Dk].
    """
    b = dgd_step_size(eta, k, step)  # [B, T, H]: eta'_t is the gated delta rule's b_t
    return chunk_gated_delta(
        q, k, v, b, a, log_a=log_a, initial_state=initial_state, chunk_size=chunk_size
    )
