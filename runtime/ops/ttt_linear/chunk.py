"""TTT-linear with mini-batch GD, dual form (one mini-batch per chunk, all matmuls).

Definition (see naive.py): in a mini-batch entered with W_0 (= W_{b0}),

    W_t = W_0 - 2 sum_{s <= t} eta_s (W_0 k_s - v_s) k_s^T,        y_t = W_t q_t.

Derivation. Because every gradient of the mini-batch is evaluated at the same W_0, the written
vectors e_s = 2 eta_s (v_s - W_0 k_s) do not depend on each other: with the mini-batch's tokens as
rows, E = diag(2 eta) (V - K W_0^T) [b, Dv] in one matmul, and W_t = W_0 + sum_{s<=t} e_s k_s^T.
Applying W_t to q_t for all t at once (TTT's "dual form": the W_t are never materialised):

    Y   = Q W_0^T + causal(Q K^T) E        (causal keeps s <= t, diagonal included)
    W_b = W_0 + E^T K.

No triangular solve is needed (unlike the delta rule) since the update inside a mini-batch is not
recurrent; only the hand-over of W_0 between mini-batches is sequential. The chunk is the
mini-batch, so the chunk size is not a free performance knob here: it is the rule's b.
Padding T up to a multiple of b uses eta = 0 and k = v = q = 0 (no write).
"""

from __future__ import annotations

import math

import torch

from ..chunking import _to_chunks


def chunk_ttt_linear(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    eta: torch.Tensor,
    *,
    mini_batch_size: int = 16,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dual-form TTT-linear; same contract as naive_ttt_linear.

    Args:
        q, k: [B, T, H, Dk]; v: [B, T, H, Dv]; eta: [B, T, H].
        mini_batch_size: b (also the chunk of the dual form).
        initial_state: W_0, [B, H, Dv, Dk] (default zeros).
    Returns:
        o: [B, T, H, Dv]; final_state: [B, H, Dv, Dk].
    """
    if mini_batch_size < 1:
        raise ValueError(f"mini_batch_size must be >= 1, got {mini_batch_size}")
    B, T, H, Dk = k.shape
    Dv = v.shape[-1]
    C = mini_batch_size
    N = math.ceil(T / C)
    q_c, k_c, v_c = (_to_chunks(x, N, C) for x in (q, k, v))  # [B, H, N, C, D]
    two_eta = 2 * _to_chunks(eta, N, C)[..., None]  # [B, H, N, C, 1]
    scores = torch.tril(q_c @ k_c.transpose(-1, -2))  # [B, H, N, C(t), C(s)], s <= t

    W = initial_state if initial_state is not None else v.new_zeros(B, H, Dv, Dk)
    outs = []
    for n in range(N):
        # Written vectors e_s = 2 eta_s (v_s - W_0 k_s), all at the mini-batch's start state.
        E = two_eta[:, :, n] * (v_c[:, :, n] - k_c[:, :, n] @ W.transpose(-1, -2))  # [B,H,C,Dv]
        outs.append(q_c[:, :, n] @ W.transpose(-1, -2) + scores[:, :, n] @ E)
        W = W + E.transpose(-1, -2) @ k_c[:, :, n]
    o = torch.stack(outs, dim=2).reshape(B, H, N * C, Dv)[:, :, :T].transpose(1, 2)
    return o, W
