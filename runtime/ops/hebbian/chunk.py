"""Hebbian rule (linear attention with optional retention), chunk-parallel form.

Recurrence (see naive.py, Eq. 14-18):  M_t = a_t M_{t-1} + v_t k_t^T,  y_t = M_t q_t.

Derivation. Split the sequence into chunks of C tokens and let M_0 be the state entering a chunk.
Inside the chunk write G_t = sum_{r<=t} log a_r (cumulative log retention, G_0 = 0), so that the
product of retentions between two tokens is a_{s+1}...a_t = exp(G_t - G_s). Unrolling the
recurrence from the start of the chunk gives, exactly,

    M_t = exp(G_t) M_0 + sum_{s<=t} exp(G_t - G_s) v_s k_s^T.

Applying it to q_t:

    y_t = exp(G_t) M_0 q_t + sum_{s<=t} exp(G_t - G_s) (k_s . q_t) v_s,

i.e. in matrix form for the whole chunk (rows = tokens)

    Y = diag(exp G) Q M_0^T + (Q K^T * D) V,   D_ts = exp(G_t - G_s) if s <= t else 0,
    M_C = exp(G_C) M_0 + V^T diag(exp(G_C - G)) K.

Everything except the hand-over of M_0 from one chunk to the next is a matmul over the chunk.
Only differences G_t - G_s with s <= t are exponentiated (never exp(-G_s) alone), so with
retentions in (0, 1] no factor exceeds 1 and nothing overflows; the mask is applied to the
exponent (-inf) rather than to the result so no inf * 0 appears in the backward pass.

The sequence is padded at the end to a multiple of C with k = v = q = 0 and log a = 0 (no write,
no decay), which leaves the final state unchanged; padded outputs are dropped.
"""

from __future__ import annotations

import math

import torch

from ..chunking import _to_chunks


def chunk_hebbian(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor | None = None,
    *,
    log_a: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunk-parallel linear attention with optional retention; same contract as naive_hebbian.

    Args:
        q, k: [B, T, H, Dk]; v: [B, T, H, Dv].
        a: retention a_t in (0, 1], [B, T, H] (default 1). Or ``log_a`` (its log), not both;
           this form works with log a, so a = 0 exactly is not allowed here (use log_a).
        initial_state: M_0, [B, H, Dv, Dk] (default zeros).
        chunk_size: C, tokens per chunk.
    Returns:
        o: [B, T, H, Dv]; final_state: [B, H, Dv, Dk].
    """
    if a is not None and log_a is not None:
        raise ValueError("pass the retention as `a` or as `log_a`, not both")
    B, T, H, Dk = k.shape
    Dv = v.shape[-1]
    C = chunk_size
    N = math.ceil(T / C)
    if log_a is None:
        log_a = torch.log(a) if a is not None else k.new_zeros(B, T, H)

    q_c, k_c, v_c = (_to_chunks(x, N, C) for x in (q, k, v))  # [B, H, N, C, D]
    G = _to_chunks(log_a, N, C).cumsum(-1)  # [B, H, N, C]: cumulative log retention

    # Intra-chunk decay D_ts = exp(G_t - G_s) for s <= t, exactly 0 above the diagonal.
    causal = torch.ones(C, C, dtype=torch.bool, device=k.device).tril()
    diff = (G[..., :, None] - G[..., None, :]).masked_fill(~causal, float("-inf"))
    D = torch.exp(diff)  # [B, H, N, C, C]
    scores = (q_c @ k_c.transpose(-1, -2)) * D  # [B, H, N, C(t), C(s)]
    intra = scores @ v_c  # [B, H, N, C, Dv]: contribution of this chunk's writes
    decay_in = torch.exp(G)  # [B, H, N, C]: a_1...a_t, applied to M_0
    decay_out = torch.exp(G[..., -1:] - G)  # [B, H, N, C]: a_{s+1}...a_C, write s to chunk end
    decay_all = torch.exp(G[..., -1])  # [B, H, N]: whole-chunk retention

    M = initial_state if initial_state is not None else v.new_zeros(B, H, Dv, Dk)
    outs = []
    for n in range(N):
        # y_t = exp(G_t) M_0 q_t + intra-chunk part
        inter = (q_c[:, :, n] @ M.transpose(-1, -2)) * decay_in[:, :, n, :, None]  # [B,H,C,Dv]
        outs.append(inter + intra[:, :, n])
        # M_C = exp(G_C) M_0 + sum_s exp(G_C - G_s) v_s k_s^T
        v_w = v_c[:, :, n] * decay_out[:, :, n, :, None]  # [B, H, C, Dv]
        M = decay_all[:, :, n, None, None] * M + v_w.transpose(-1, -2) @ k_c[:, :, n]
    o = torch.stack(outs, dim=2)  # [B, H, N, C, Dv]
    o = o.reshape(B, H, N * C, Dv)[:, :, :T].transpose(1, 2)  # [B, T, H, Dv]
    return o, M
