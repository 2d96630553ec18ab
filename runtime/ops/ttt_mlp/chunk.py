"""TTT-MLP, chunk-parallel (dual) form; equals `naive.py` exactly.

Derivation. In a mini-batch of C tokens (local i = 1..C, W_0 = weights at its start) all
gradients are taken at W_0, so they come from one batched forward/backward of the MLP with
rank-1 factors G1_j = dy_j a_j^T, G2_j = dz_j k_j^T (`mlp_l2_grad_factors`). Without momentum or
retention the recurrence W_i = W_{i-1} - eta_i G_i sums to

    W_i = W_0 - sum_{j<=i} eta_j G_j = W_0 - sum_j D_ij G_j,   D = tril(1) diag(eta).

The read y_i = f(q_i; W_i) is exact with masked matmuls: the first layer is linear in W2,

    W2_i q_i = Q W2_0^T - (D * Q K^T) dZ        (row i),

the activation acts per token (h_i), and W1_i h_i = H W1_0^T - (D * H A^T) dY. The end-of-batch
weights are row C: W_0 - sum_j eta_j G_j, materialised once per mini-batch.
"""

import torch

from ..mlp_memory import check_memory_kind, lowrank_row, mlp_l2_grad_factors, mlp_read_lowrank
from .naive import initial_ttt_state


def chunk_ttt_mlp(q, k, v, eta, W1_init=None, W2_init=None, chunk_size=16,
                  memory="residual_mlp", activation="gelu", initial_state=None):
    """Same arguments and result as `naive_ttt_mlp`; only the mini-batch loop is sequential."""
    residual = check_memory_kind(memory)
    B, T = q.shape[:2]
    out_shape = v.shape  # [B, T, H, D_v]
    W1, W2 = initial_ttt_state(W1_init, W2_init, B, initial_state)
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # [B, H, T, D]
    eta = eta.transpose(1, 2)  # [B, H, T]
    outputs = []
    for s in range(0, T, chunk_size):
        Q, K, V = (x[:, :, s:s + chunk_size] for x in (q, k, v))  # [B, H, C, D]
        et = eta[:, :, s:s + chunk_size]  # [B, H, C]
        C = et.shape[-1]
        dY, Act, dZ = mlp_l2_grad_factors(W1, W2, K, V, activation, residual)  # at W_0
        D = torch.ones(C, C, dtype=et.dtype, device=et.device).tril() * et.unsqueeze(-2)
        ones = torch.ones_like(et)  # W_0 enters every W_i with weight 1
        w1_rep = ([(ones, W1)], [(-D, dY, Act)])
        w2_rep = ([(ones, W2)], [(-D, dZ, K)])
        outputs.append(mlp_read_lowrank(Q, w1_rep, w2_rep, activation, residual))
        W1, W2 = lowrank_row(*w1_rep, -1), lowrank_row(*w2_rep, -1)
    o = torch.cat(outputs, dim=2).transpose(1, 2) if T else v.new_zeros(out_shape)
    return o, (W1, W2)
