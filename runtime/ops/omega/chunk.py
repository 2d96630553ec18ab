"""Omega rule with a sliding window, exact chunk-parallel form (a block WY representation).

Recurrence (see naive.py), with c the window and W(t) = {t-c+1, ..., t} (tokens >= 1 only):

    M_t = a_t M_{t-1} + sum_{i in W(t)} e_{t,i} k_i^T,   e_{t,i} = 2 eta_t g_i (v_i - M_{t-1} k_i),

a rank-c correction per token. Treat every (step t, window slot i) pair as a "virtual token" with
key k_i, value v_i and write strength beta_{t,i} = 2 eta_t g_i; a chunk of C tokens then holds C*c
virtual tokens, and the derivation of the gated delta rule's WY form goes through with one change:
all c virtual tokens of step t read the same state M_{t-1} (taken before the decay a_t).

In a chunk entered with M_0, let G_t = sum_{r<=t} log a_r (G_0 = 0). Unrolling,

    M_t = exp(G_t) M_0 + sum_{s<=t} exp(G_t - G_s) sum_{i in W(s)} e_{s,i} k_i^T,        (*)

so M_{t-1} = exp(G_{t-1}) M_0 + sum_{s<t} exp(G_{t-1} - G_s) sum_i e_{s,i} k_i^T, and

    e_{t,i} + beta_{t,i} sum_{s<t} exp(G_{t-1} - G_s) sum_{j in W(s)} (k_i . k_j) e_{s,j}
          = beta_{t,i} (v_i - exp(G_{t-1}) M_0 k_i).

Ordering the virtual tokens step-major, the coupling is only to strictly earlier *steps*, so the
matrix A = I + (that coupling) is unit lower triangular (its c x c diagonal blocks are I). As for
the gated delta rule the right-hand side is affine in M_0, so with virtual-token matrices
Kv [Cc, Dk], Vv [Cc, Dv], beta [Cc]:

    U = A^{-1} diag(beta) Vv,   W = A^{-1} diag(beta exp(G_{t-1})) Kv,   E = U - W M_0^T,

and from (*), exactly,

    y_t = exp(G_t) M_0 q_t + sum_{s<=t} exp(G_t - G_s) sum_i (k_i . q_t) e_{s,i},
    M_C = exp(G_C) M_0 + E^T diag(exp(G_C - G_s)) Kv.

Windows reach back across chunk boundaries simply because the virtual keys of step t are taken
from the whole sequence (the sequence is left-padded with c-1 tokens of weight g = 0, k = v = 0,
so slots before the first token write nothing). Only differences G_t - G_s (s <= t) or
G_{t-1} - G_s (s < t) are exponentiated, so nothing overflows. Padding T up to a multiple of C
uses eta = 0 and log a = 0 (no write, no decay). Cost: the triangular system is (C c) x (C c)
per chunk, so take chunk_size around 64 / c for wide windows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _chunk_time(x: torch.Tensor, n_chunks: int, chunk_size: int) -> torch.Tensor:
    """[B, H, T, *rest] -> [B, H, N, C, *rest], zero-padding T (dim 2) at the end to N * C."""
    pad = n_chunks * chunk_size - x.shape[2]
    if pad:
        x = F.pad(x.movedim(2, -1), (0, pad)).movedim(-1, 2)
    return x.reshape(*x.shape[:2], n_chunks, chunk_size, *x.shape[3:])


def _windows(x: torch.Tensor, c: int) -> torch.Tensor:
    """[B, H, T, *rest] -> [B, H, T, c, *rest]: slot j of step t is token t - c + 1 + j.

    The sequence is left-padded with c - 1 zeros, so slots before the first token are zero.
    """
    x = F.pad(x.movedim(2, -1), (c - 1, 0))  # [B, H, *rest, T + c - 1]
    x = x.unfold(-1, c, 1)  # [B, H, *rest, T, c]
    return x.movedim(-2, 2).movedim(-1, 3)  # [B, H, T, c, *rest]


def chunk_omega(
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
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunk-parallel Omega rule; same contract as naive_omega (plus chunk_size).

    Args:
        q, k: [B, T, H, Dk]; v: [B, T, H, Dv]; eta: [B, T, H].
        a / log_a: retention in (0, 1] or its log, [B, T, H] (default 1; not both).
        window: c >= 1. g: per-token loss weights, [B, T, H] (default 1).
        initial_state: M_0, [B, H, Dv, Dk] (default zeros).
        chunk_size: C, tokens per chunk; the per-chunk solve is (C * window)^2.
    Returns:
        o: [B, T, H, Dv]; final_state: [B, H, Dv, Dk].
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if a is not None and log_a is not None:
        raise ValueError("pass the retention as `a` or as `log_a`, not both")
    B, T, H, Dk = k.shape
    Dv = v.shape[-1]
    C, c = chunk_size, window
    N = math.ceil(T / C)
    if log_a is None:
        log_a = torch.log(a) if a is not None else k.new_zeros(B, T, H)
    if g is None:
        g = torch.ones_like(eta)

    # Time-major per head: [B, H, T, ...].
    q_h, k_h, v_h = (x.transpose(1, 2) for x in (q, k, v))
    eta_h, g_h, log_a_h = (x.transpose(1, 2) for x in (eta, g, log_a))

    # Virtual tokens: slot j of step t carries token t-c+1+j with strength 2 eta_t g_{t-c+1+j}.
    k_v = _windows(k_h, c)  # [B, H, T, c, Dk]
    v_v = _windows(v_h, c)  # [B, H, T, c, Dv]
    beta = 2 * eta_h[..., None] * _windows(g_h, c)  # [B, H, T, c]

    q_c = _chunk_time(q_h, N, C)  # [B, H, N, C, Dk]
    k_v = _chunk_time(k_v, N, C).flatten(3, 4)  # [B, H, N, C*c, Dk] (step-major)
    v_v = _chunk_time(v_v, N, C).flatten(3, 4)  # [B, H, N, C*c, Dv]
    beta = _chunk_time(beta, N, C).flatten(3, 4)[..., None]  # [B, H, N, C*c, 1]
    la = _chunk_time(log_a_h, N, C)  # [B, H, N, C]
    G = la.cumsum(-1)  # G_t (inclusive)
    G_prev = G - la  # G_{t-1}: the decay already applied to the state that step t reads

    steps = torch.arange(C, device=k.device)
    # Read decay between steps: exp(G_{t-1} - G_s) for s < t (strictly earlier steps only).
    earlier = steps[None, :] < steps[:, None]  # [C(t), C(s)]
    read_decay = torch.exp(
        (G_prev[..., :, None] - G[..., None, :]).masked_fill(~earlier, float("-inf"))
    )  # [B, H, N, C, C]
    read_decay = read_decay.repeat_interleave(c, dim=-1).repeat_interleave(c, dim=-2)

    # Block WY representation, all chunks at once.
    A = (beta * (k_v @ k_v.transpose(-1, -2))) * read_decay  # [B, H, N, Cc, Cc], strictly
    A = A + torch.eye(C * c, dtype=A.dtype, device=A.device)  # block lower + identity
    decay_read_M0 = torch.exp(G_prev).repeat_interleave(c, dim=-1)[..., None]  # [B,H,N,Cc,1]
    U = torch.linalg.solve_triangular(A, beta * v_v, upper=False, unitriangular=True)
    W = torch.linalg.solve_triangular(
        A, beta * decay_read_M0 * k_v, upper=False, unitriangular=True
    )  # U: [B, H, N, Cc, Dv], W: [B, H, N, Cc, Dk]

    # Output decay: exp(G_t - G_s) for s <= t, per step, expanded over the c slots of step s.
    causal = steps[None, :] <= steps[:, None]
    out_decay = torch.exp(
        (G[..., :, None] - G[..., None, :]).masked_fill(~causal, float("-inf"))
    ).repeat_interleave(c, dim=-1)  # [B, H, N, C, Cc]
    scores = (q_c @ k_v.transpose(-1, -2)) * out_decay  # [B, H, N, C, Cc]
    decay_in = torch.exp(G)[..., None]  # [B, H, N, C, 1]
    decay_out = torch.exp(G[..., -1:] - G).repeat_interleave(c, dim=-1)[..., None]  # [.., Cc, 1]
    decay_all = torch.exp(G[..., -1])[..., None, None]  # [B, H, N, 1, 1]

    M = initial_state if initial_state is not None else v.new_zeros(B, H, Dv, Dk)
    outs = []
    for n in range(N):
        E = U[:, :, n] - W[:, :, n] @ M.transpose(-1, -2)  # [B, H, Cc, Dv]: e_{t,i}
        inter = (q_c[:, :, n] @ M.transpose(-1, -2)) * decay_in[:, :, n]  # [B, H, C, Dv]
        outs.append(inter + scores[:, :, n] @ E)
        M = decay_all[:, :, n] * M + (E * decay_out[:, :, n]).transpose(-1, -2) @ k_v[:, :, n]
    o = torch.stack(outs, dim=2).reshape(B, H, N * C, Dv)[:, :, :T].transpose(1, 2)
    return o, M
