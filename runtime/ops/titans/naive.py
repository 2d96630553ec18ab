"""Titans neural long-term memory, token by token (nested-learning.md sec. 10; Titans Eq. 8-14).

For each token t, with the memory M a 2-layer MLP (see `runtime/ops/mlp_memory.py`):

    l(M; k_t, v_t) = ||M(k_t) - v_t||^2
    S_t = eta_t S_{t-1} - theta_t grad_W l(M_{t'}; k_t, v_t)        (surprise with momentum)
    M_t = (1 - alpha_t) M_{t-1} + S_t                               (retention / forgetting)
    y_t = M_t(q_t)          (read="current", default)
    y_t = M_{t'}(q_t)       (read="chunk_start")

Titans trains the memory with mini-batch gradient descent: the gradient of token t is taken at
M_{t'}, the state at the end of the previous chunk of `chunk_size` tokens (t' = chunk start),
not at M_{t-1}. That choice is part of the definition here (it is what makes the rule chunk-
parallel), so this loop and `chunk.py` agree exactly for every chunk size; chunk_size=1 is the
fully sequential rule. Momentum and retention recur per token. S and M hold both layers (W1, W2).

Options: `memory="mlp"` (W1 s(W2 x), default) or `"residual_mlp"` (x + W1 s(W2 x), needs
D_v == D_k); `activation="silu"` (default) or `"gelu"`; the hidden width is that of the init
weights (W2_init.shape[-2]).
"""

import torch

from ..mlp_memory import broadcast_weights, check_memory_kind, mlp_forward, mlp_l2_grads


def initial_titans_state(W1_init, W2_init, batch, initial_state=None):
    """(W1, W2, S1, S2) with a leading [B, H]: the given state, or the meta-learned init weights
    broadcast over the batch and zero momentum."""
    if initial_state is not None:
        return tuple(initial_state)
    W1 = broadcast_weights(W1_init, batch)
    W2 = broadcast_weights(W2_init, batch)
    return W1, W2, torch.zeros_like(W1), torch.zeros_like(W2)


def naive_titans(q, k, v, eta, theta, alpha, W1_init=None, W2_init=None, chunk_size=16,
                 memory="mlp", activation="silu", read="current", initial_state=None):
    """q, k [B, T, H, D_k], v [B, T, H, D_v]; eta (momentum), theta (learning rate), alpha
    (retention) [B, T, H]; W1_init [H or B,H, D_v, D_hid], W2_init [H or B,H, D_hid, D_k].
    Returns o [B, T, H, D_v] and the final state (W1, W2, S1, S2), each [B, H, ...]."""
    residual = check_memory_kind(memory)
    if read not in ("current", "chunk_start"):
        raise ValueError(f"unknown read {read!r}; expected 'current' or 'chunk_start'")
    B, T = q.shape[:2]
    W1, W2, S1, S2 = initial_titans_state(W1_init, W2_init, B, initial_state)
    outputs = []
    for t in range(T):
        if t % chunk_size == 0:
            W1c, W2c = W1, W2  # M_{t'}: gradients of this chunk are taken here
        q_t, k_t, v_t = (x[:, t].unsqueeze(2) for x in (q, k, v))  # [B, H, 1, D]
        eta_t, theta_t, alpha_t = (g[:, t, :, None, None] for g in (eta, theta, alpha))  # [B,H,1,1]
        G1, G2 = mlp_l2_grads(W1c, W2c, k_t, v_t, activation, residual)
        S1 = eta_t * S1 - theta_t * G1[:, :, 0]
        S2 = eta_t * S2 - theta_t * G2[:, :, 0]
        W1 = (1 - alpha_t) * W1 + S1
        W2 = (1 - alpha_t) * W2 + S2
        Wr1, Wr2 = (W1, W2) if read == "current" else (W1c, W2c)
        outputs.append(mlp_forward(Wr1, Wr2, q_t, activation, residual)[:, :, 0])  # [B, H, D_v]
    o = torch.stack(outputs, dim=1) if T else v.new_zeros(v.shape)  # [B, T, H, D_v]
    return o, (W1, W2, S1, S2)
