"""Gated delta rule (Gated DeltaNet), token by token: the definition.

Nested Learning section 10 (Gated DeltaNet); the delta rule (Eq. 65) with a retention gate a_t
that decays the whole memory before the delta write:

    M_t = a_t M_{t-1} (I - b_t k_t k_t^T) + b_t v_t k_t^T,        y_t = M_t q_t.
"""

from __future__ import annotations

import torch

from ..gates import retention


def naive_gated_delta(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    b: torch.Tensor,
    a: torch.Tensor | None = None,
    *,
    log_a: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-by-token gated delta rule.

    Args:
        q, k: [B, T, H, Dk]; v: [B, T, H, Dv]; b: write strength b_t, [B, T, H].
        a: retention a_t, [B, T, H] (default 1, which is the plain delta rule). Or ``log_a``
           (its logarithm, e.g. from logsigmoid); give at most one of the two.
        initial_state: M_0, [B, H, Dv, Dk] (default zeros).
    Returns:
        o: [B, T, H, Dv] with o_t = M_t q_t; final_state: M_T, [B, H, Dv, Dk].
    """
    a = retention(a, log_a)
    B, T, H, Dk = k.shape
    Dv = v.shape[-1]
    M = initial_state if initial_state is not None else v.new_zeros(B, H, Dv, Dk)
    eye = torch.eye(Dk, dtype=k.dtype, device=k.device)
    outputs = []
    for t in range(T):
        q_t, k_t, v_t = q[:, t], k[:, t], v[:, t]  # [B, H, D]
        b_t = b[:, t, :, None, None]  # [B, H, 1, 1]
        kkT = k_t[..., :, None] * k_t[..., None, :]  # [B, H, Dk, Dk]
        vkT = v_t[..., :, None] * k_t[..., None, :]  # [B, H, Dv, Dk]
        if a is not None:
            M = a[:, t, :, None, None] * M
        M = M @ (eye - b_t * kkT) + b_t * vkT
        outputs.append(torch.einsum("bhvk,bhk->bhv", M, q_t))  # y_t = M_t q_t
    return torch.stack(outputs, dim=1), M
