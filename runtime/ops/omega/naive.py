"""Omega rule with a sliding window (Atlas), token by token: the definition.

Nested Learning section 10 (Atlas / Omega rule): the memory is fitted to the last c key-value
pairs instead of only the current one. With retention a_t, learning rate eta_t and per-token
weights g_i (Atlas' gamma; default 1), one gradient step evaluated at M_{t-1}:

    M_t = a_t M_{t-1} - eta_t grad_M sum_{i=t-c+1}^{t} g_i ||M k_i - v_i||^2 |_{M = M_{t-1}}
        = a_t M_{t-1} - 2 eta_t sum_{i=t-c+1}^{t} g_i (M_{t-1} k_i - v_i) k_i^T
        = M_{t-1} (a_t I - 2 eta_t sum_i g_i k_i k_i^T) + 2 eta_t sum_i g_i v_i k_i^T,

    y_t = M_t q_t.

The window holds only tokens of the sequence: for t < c it is tokens 1..t. With c = 1 this is
M_t = a_t M_{t-1} + 2 eta_t g_t (v_t - M_{t-1} k_t) k_t^T, a delta-like rule
(the gated delta rule with b_t = 2 eta_t g_t / a_t and values a_t v_t; the delta rule if a = 1).
"""

from __future__ import annotations

import torch

from ..gates import retention


def naive_omega(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    eta: torch.Tensor,
    a: torch.Tensor | None = None,
    *,
    window: int,
    g: torch.Tensor | None = None,
    log_a: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-by-token Omega rule on a linear memory.

    Args:
        q, k: [B, T, H, Dk]; v: [B, T, H, Dv]; eta: learning rate eta_t, [B, T, H].
        a: retention a_t, [B, T, H] (default 1). Or ``log_a``, not both.
        window: c >= 1, number of most recent tokens in the objective (current one included).
        g: weight g_i of token i's loss wherever it appears in a window, [B, T, H] (default 1).
        initial_state: M_0, [B, H, Dv, Dk] (default zeros).
    Returns:
        o: [B, T, H, Dv] with o_t = M_t q_t; final_state: M_T, [B, H, Dv, Dk].
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    a = retention(a, log_a)
    if g is None:
        g = torch.ones_like(eta)
    B, T, H, Dk = k.shape
    Dv = v.shape[-1]
    M = initial_state if initial_state is not None else v.new_zeros(B, H, Dv, Dk)
    outputs = []
    for t in range(T):
        lo = max(0, t - window + 1)
        k_w = k[:, lo : t + 1].transpose(1, 2)  # [B, H, w, Dk]: keys in the window
        v_w = v[:, lo : t + 1].transpose(1, 2)  # [B, H, w, Dv]
        g_w = g[:, lo : t + 1].transpose(1, 2)  # [B, H, w]
        err = k_w @ M.transpose(-1, -2) - v_w  # [B, H, w, Dv]: rows M_{t-1} k_i - v_i
        grad = 2 * (err * g_w[..., None]).transpose(-1, -2) @ k_w  # [B, H, Dv, Dk]
        a_t = a[:, t, :, None, None] if a is not None else 1.0
        M = a_t * M - eta[:, t, :, None, None] * grad
        outputs.append(torch.einsum("bhvk,bhk->bhv", M, q[:, t]))  # y_t = M_t q_t
    return torch.stack(outputs, dim=1), M
