"""Hebbian rule (linear attention), token by token: the definition.

Nested Learning Eq. 14-18: linear attention is one gradient step (eta = 1) per token on the
dot-product objective -<M k_t, v_t>, i.e. a Hebbian write of v_t k_t^T. With an optional
per-token retention (decay) a_t:

    M_t = a_t M_{t-1} + v_t k_t^T,        y_t = M_t q_t

(a_t = 1 for every t gives Eq. 16 exactly).
"""

from __future__ import annotations

import torch

from ..gates import retention


def naive_hebbian(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor | None = None,
    *,
    log_a: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-by-token linear attention with optional retention.

    Args:
        q, k: [B, T, H, Dk]; v: [B, T, H, Dv].
        a: retention a_t, [B, T, H] (default 1: no decay). Alternatively pass its logarithm as
           ``log_a`` (e.g. from ``logsigmoid``); give at most one of the two.
        initial_state: M_0, [B, H, Dv, Dk] (default zeros).
    Returns:
        o: [B, T, H, Dv] with o_t = M_t q_t; final_state: M_T, [B, H, Dv, Dk].
    """
    a = retention(a, log_a)
    B, T, H, Dk = k.shape
    Dv = v.shape[-1]
    M = initial_state if initial_state is not None else v.new_zeros(B, H, Dv, Dk)
    outputs = []
    for t in range(T):
        q_t, k_t, v_t = q[:, t], k[:, t], v[:, t]  # [B, H, D]
        if a is not None:
            M = a[:, t, :, None, None] * M  # a_t M_{t-1}
        M = M + v_t[..., :, None] * k_t[..., None, :]  # + v_t k_t^T, [B, H, Dv, Dk]
        outputs.append(torch.einsum("bhvk,bhk->bhv", M, q_t))  # y_t = M_t q_t
    o = torch.stack(outputs, dim=1)  # [B, T, H, Dv]
    return o, M
