"""Delta Gradient Descent (DGD) on a linear memory, token by token: the definition.

Nested Learning section 3, Eq. 56: one proximal step of the L2 regression objective

    M_t = argmin_W  1/2 ||W k_t - v_t||^2 + ||W - a_t M_{t-1}||^2 / (2 eta_t)

(v_t is the target: the model passes u_t = -grad_y L; a_t is an optional retention that decays the
proximal anchor, default 1). Setting the gradient to zero, W (k k^T + I/eta) = v k^T + W_0/eta, and
Sherman-Morrison on (I + eta k k^T)^{-1} = I - eta/(1 + eta ||k||^2) k k^T give the closed form
(Eq. 57)

    M_t = a_t M_{t-1} (I - eta'_t k_t k_t^T) + eta'_t v_t k_t^T,        y_t = M_t q_t,

with eta'_t = eta_t / (1 + eta_t ||k_t||^2)  (step="exact", the argmin for any k). The paper prints
eta'_t = eta_t / (1 + eta_t), which is the argmin only when ||k_t|| = 1 (step="paper").
"""

from __future__ import annotations

import torch

from ..gates import retention


def dgd_step_size(eta: torch.Tensor, k: torch.Tensor, step: str = "exact") -> torch.Tensor:
    """eta' of Eq. 57 from eta [B, T, H] and k [B, T, H, Dk]; returns [B, T, H]."""
    if step == "exact":
        return eta / (1 + eta * (k * k).sum(-1))
    if step == "paper":
        return eta / (1 + eta)
    raise ValueError(f"step must be 'exact' or 'paper', got {step!r}")


def naive_dgd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    eta: torch.Tensor,
    a: torch.Tensor | None = None,
    *,
    log_a: torch.Tensor | None = None,
    step: str = "exact",
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-by-token DGD (Eq. 57) on a linear memory.

    Args:
        q, k: [B, T, H, Dk]; v: targets, [B, T, H, Dv]; eta: learning rate eta_t, [B, T, H].
        a: retention a_t, [B, T, H] (default 1). Or ``log_a``, not both.
        step: "exact" (eta' = eta / (1 + eta ||k||^2)) or "paper" (eta' = eta / (1 + eta)).
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
        eta_p = dgd_step_size(eta[:, t], k_t, step)[..., None, None]  # eta'_t, [B, H, 1, 1]
        if a is not None:
            M = a[:, t, :, None, None] * M  # the decayed proximal anchor a_t M_{t-1}
        kkT = k_t[..., :, None] * k_t[..., None, :]  # [B, H, Dk, Dk]
        vkT = v_t[..., :, None] * k_t[..., None, :]  # [B, H, Dv, Dk]
        M = M @ (eye - eta_p * kkT) + eta_p * vkT
        outputs.append(torch.einsum("bhvk,bhk->bhv", M, q_t))  # y_t = M_t q_t
    return torch.stack(outputs, dim=1), M
