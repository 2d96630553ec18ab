"""TTT-linear with mini-batch gradient descent, token by token: the definition.

Nested Learning section 10 ("TTT", Sun et al. 2024): the memory is a linear map W trained at test
time on l(W; k, v) = ||W k - v||^2. TTT uses mini-batch GD of size b: within a mini-batch every
gradient is taken at W_{b0}, the state at the start of the mini-batch (the end of the previous
one), and the state after token t is

    W_t = W_{b0} - sum_{s in batch, s <= t} eta_s grad_W l(W_{b0}; k_s, v_s)
        = W_{b0} - 2 sum_{s in batch, s <= t} eta_s (W_{b0} k_s - v_s) k_s^T,

    y_t = W_t q_t.

Mini-batches are [0, b), [b, 2b), ... from the first token. eta_s is the per-token learning rate
(TTT's eta(x) = eta_base sigmoid(theta x)); any 1/b averaging belongs in eta. TTT's LayerNorm and
residual (f(x) = x + LN(W x)) are left to the model. With b = 1 this is plain per-token SGD, i.e.
the delta rule with b_t = 2 eta_t.
"""

from __future__ import annotations

import torch


def naive_ttt_linear(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    eta: torch.Tensor,
    *,
    mini_batch_size: int = 16,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-by-token TTT-linear with mini-batch GD.

    Args:
        q, k: [B, T, H, Dk]; v: [B, T, H, Dv]; eta: per-token learning rate, [B, T, H].
        mini_batch_size: b, tokens whose gradients share one evaluation point W_{b0}.
        initial_state: W_0, [B, H, Dv, Dk] (default zeros; meta-learned by the model).
    Returns:
        o: [B, T, H, Dv] with o_t = W_t q_t; final_state: W_T, [B, H, Dv, Dk].
    """
    if mini_batch_size < 1:
        raise ValueError(f"mini_batch_size must be >= 1, got {mini_batch_size}")
    B, T, H, Dk = k.shape
    Dv = v.shape[-1]
    W = initial_state if initial_state is not None else v.new_zeros(B, H, Dv, Dk)
    outputs = []
    for t in range(T):
        if t % mini_batch_size == 0:
            W_b0 = W  # gradients of this mini-batch are all taken here
            grad_sum = torch.zeros_like(W)  # sum_{s <= t in batch} eta_s grad l(W_b0; x_s)
        k_t, v_t = k[:, t], v[:, t]  # [B, H, D]
        err = torch.einsum("bhvk,bhk->bhv", W_b0, k_t) - v_t  # W_b0 k_t - v_t, [B, H, Dv]
        grad = 2 * err[..., :, None] * k_t[..., None, :]  # [B, H, Dv, Dk]
        grad_sum = grad_sum + eta[:, t, :, None, None] * grad
        W = W_b0 - grad_sum
        outputs.append(torch.einsum("bhvk,bhk->bhv", W, q[:, t]))  # y_t = W_t q_t
    return torch.stack(outputs, dim=1), W
