"""Titans neural memory, chunk-parallel form (equals `naive.py` exactly).

Derivation. Take one chunk of C tokens (local index i = 1..C; index 0 = the chunk start). Every
gradient of the chunk is taken at the chunk-start weights W_0, so all of them come from one
batched forward/backward of the MLP (`mlp_l2_grad_factors`): for each layer G_j = P_j R_j^T
(W1: dy_j a_j^T, W2: dz_j k_j^T). The two recurrences are then linear in the G_j:

    S_i = eta_i S_{i-1} - theta_i G_i        =>  S_i = a0_i S_0 - sum_j A_ij theta_j G_j
    W_i = beta_i W_{i-1} + S_i (beta=1-alpha) =>  W_i = b0_i W_0 + sum_m Bm_im S_m

with A_ij = prod_{l=j+1..i} eta_l, a0_i = prod_{l<=i} eta_l (and Bm, b0 from beta; see
`decay_matrix`). Substituting S into W:

    W_i = b0_i W_0 + e_i S_0 - sum_j D_ij G_j,    e = Bm a0,  D = (Bm A) diag(theta)

(lower-triangular matrices, so D_ij = 0 for j > i: token i only sees writes j <= i).

Read with the token's own state, y_i = W1_i s(W2_i q_i) (+ q_i): the first layer is linear in W2,

    W2_i q_i = b0_i W2_0 q_i + e_i S2_0 q_i - sum_j D_ij (k_j . q_i) dz_j
             = b0 * (Q W2_0^T) + e * (Q S2_0^T) - (D * Q K^T) dZ          (masked matmul)

then h_i = s(W2_i q_i) per token, and the second layer again: W1_i h_i = b0 * (H W1_0^T) +
e * (H S1_0^T) - (D * H A^T) dY. The chunk-end state is row C of the same representation
(materialised once per chunk). Nothing is approximated, so chunk == naive up to rounding.
"""

import torch

from ..mlp_memory import (
    check_memory_kind, decay_matrix, lowrank_row, mlp_forward, mlp_l2_grad_factors,
    mlp_read_lowrank,
)
from .naive import initial_titans_state


def chunk_titans(q, k, v, eta, theta, alpha, W1_init=None, W2_init=None, chunk_size=16,
                 memory="mlp", activation="silu", read="current", initial_state=None):
    """Same arguments and result as `naive_titans`; only the chunk loop is sequential."""
    residual = check_memory_kind(memory)
    if read not in ("current", "chunk_start"):
        raise ValueError(f"unknown read {read!r}; expected 'current' or 'chunk_start'")
    B, T = q.shape[:2]
    out_shape = v.shape  # [B, T, H, D_v]
    W1, W2, S1, S2 = initial_titans_state(W1_init, W2_init, B, initial_state)
    # heads before time, so each chunk is a batch of [C, D] matrices per (b, h)
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # [B, H, T, D]
    eta, theta, alpha = (g.transpose(1, 2) for g in (eta, theta, alpha))  # [B, H, T]
    outputs = []
    for s in range(0, T, chunk_size):
        Q, K, V = (x[:, :, s:s + chunk_size] for x in (q, k, v))  # [B, H, C, D]
        et, th, al = (g[:, :, s:s + chunk_size] for g in (eta, theta, alpha))  # [B, H, C]
        dY, Act, dZ = mlp_l2_grad_factors(W1, W2, K, V, activation, residual)  # all at W_0

        A, a0 = decay_matrix(et)  # momentum scan   [B, H, C, C], [B, H, C]
        Bm, b0 = decay_matrix(1 - al)  # retention scan
        e = (Bm @ a0.unsqueeze(-1)).squeeze(-1)  # weight of S_0 in W_i: [B, H, C]
        D = (Bm @ A) * th.unsqueeze(-2)  # weight of G_j in W_i: [B, H, C, C]

        w1_rep = ([(b0, W1), (e, S1)], [(-D, dY, Act)])
        w2_rep = ([(b0, W2), (e, S2)], [(-D, dZ, K)])
        if read == "current":
            outputs.append(mlp_read_lowrank(Q, w1_rep, w2_rep, activation, residual))
        else:
            outputs.append(mlp_forward(W1, W2, Q, activation, residual))

        # chunk-end state: row C of the representations; momentum from its own scan
        Ath = A * th.unsqueeze(-2)
        W1, W2, S1, S2 = (lowrank_row(*w1_rep, -1), lowrank_row(*w2_rep, -1),
                          lowrank_row([(a0, S1)], [(-Ath, dY, Act)], -1),
                          lowrank_row([(a0, S2)], [(-Ath, dZ, K)], -1))
    o = torch.cat(outputs, dim=2).transpose(1, 2) if T else v.new_zeros(out_shape)
    return o, (W1, W2, S1, S2)
