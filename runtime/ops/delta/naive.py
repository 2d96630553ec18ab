"""Delta rule (DeltaNet), token by token: the definition.

Nested Learning Eq. 65 / section 10: the delta rule is one SGD step with learning rate b_t on the
L2 objective 1/2 ||M k_t - v_t||^2, which gives

    M_t = M_{t-1} (I - b_t k_t k_t^T) + b_t v_t k_t^T,        y_t = M_t q_t.
"""

from __future__ import annotations

import torch


def naive_delta(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    b: torch.Tensor,
    *,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-by-token delta rule.

    Args:
        q, k: [B, T, H, Dk]; v: [B, T, H, Dv]; b: write strength b_t, [B, T, H].
        initial_state: M_0, [B, H, Dv, Dk] (default zeros).
    Returns:
        o: [B, T, H, Dv] with o_t = M_t q_t; final_state: M_T, [B, H, Dv, Dk].
    """
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
        M = M @ (eye - b_t * kkT) + b_t * vkT
        outputs.append(torch.einsum("bhvk,bhk->bhv", M, q_t))  # y_t = M_t q_t
    return torch.stack(outputs, dim=1), M
