"""TTT-MLP (Sun et al. 2024; nested-learning.md sec. 10), token by token.

The memory is f(x) = x + W1 s(W2 x) (the TTT paper's x + LN(MLP(x)) with the LayerNorm left to the
model; `memory="mlp"` drops the skip). With l(W; k, v) = ||f(k; W) - v||^2:

    W_t = W_{t-1} - eta_t grad_W l(W_{t'}; k_t, v_t)        (mini-batch GD, t' = mini-batch start)
    y_t = f(q_t; W_t)

Mini-batches of b = `chunk_size` tokens: every gradient of a mini-batch is taken at the weights
reached at the end of the previous mini-batch (TTT's dual form), while the read uses the weights
after token t's own write. This is Titans without momentum or retention. Any 1/b averaging or
per-position scaling of the TTT paper belongs in eta [B, T, H] (here eta multiplies each token's
gradient as given). The weights in the state are the fast weights only; the init is meta-learned.
"""

import torch

from ..mlp_memory import broadcast_weights, check_memory_kind, mlp_forward, mlp_l2_grads


def initial_ttt_state(W1_init, W2_init, batch, initial_state=None):
    """(W1, W2) with a leading [B, H]: the given state or the init broadcast over the batch."""
    if initial_state is not None:
        return tuple(initial_state)
    return broadcast_weights(W1_init, batch), broadcast_weights(W2_init, batch)


def naive_ttt_mlp(q, k, v, eta, W1_init=None, W2_init=None, chunk_size=16,
                  memory="residual_mlp", activation="gelu", initial_state=None):
    """q, k [B, T, H, D_k], v [B, T, H, D_v]; eta [B, T, H]; W1_init [(B,) H, D_v, D_hid],
    W2_init [(B,) H, D_hid, D_k]. Returns o [B, T, H, D_v] and the final state (W1, W2)."""
    residual = check_memory_kind(memory)
    B, T = q.shape[:2]
    W1, W2 = initial_ttt_state(W1_init, W2_init, B, initial_state)
    outputs = []
    for t in range(T):
        if t % chunk_size == 0:
            W1c, W2c = W1, W2  # W_{t'}: where this mini-batch's gradients are taken
        q_t, k_t, v_t = (x[:, t].unsqueeze(2) for x in (q, k, v))  # [B, H, 1, D]
        eta_t = eta[:, t, :, None, None]  # [B, H, 1, 1]
        G1, G2 = mlp_l2_grads(W1c, W2c, k_t, v_t, activation, residual)
        W1 = W1 - eta_t * G1[:, :, 0]
        W2 = W2 - eta_t * G2[:, :, 0]
        outputs.append(mlp_forward(W1, W2, q_t, activation, residual)[:, :, 0])  # [B, H, D_v]
    o = torch.stack(outputs, dim=1) if T else v.new_zeros(v.shape)  # [B, T, H, D_v]
    return o, (W1, W2)
