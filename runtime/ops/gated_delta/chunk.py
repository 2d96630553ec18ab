"""Gated delta rule, chunk-parallel form: WY / UT representation with in-chunk log decay.

Recurrence (see naive.py):  M_t = a_t M_{t-1} (I - b_t k_t k_t^T) + b_t v_t k_t^T,  y_t = M_t q_t.

Derivation. One step is a decay followed by a rank-one correction:

    M_t = a_t M_{t-1} + e_t k_t^T,        e_t = b_t (v_t - a_t M_{t-1} k_t).

In a chunk entered with state M_0, let G_t = sum_{r<=t} log a_r (G_0 = 0), so that
a_{s+1}...a_t = exp(G_t - G_s). Unrolling,

    M_t = exp(G_t) M_0 + sum_{s<=t} exp(G_t - G_s) e_s k_s^T,

and a_t M_{t-1} is the same sum with s < t. Substituting that into e_t:

    e_t + b_t sum_{s<t} exp(G_t - G_s) (k_t . k_s) e_s = b_t (v_t - exp(G_t) M_0 k_t).

With the chunk's e_t as rows of E [C, Dv], this is one unit lower-triangular system per chunk

    A E = diag(b) V - diag(b exp(G)) K M_0^T,   A = I + strict_lower(diag(b) (K K^T * Gam)),
    Gam_ts = exp(G_t - G_s),

whose right-hand side is affine in M_0; solving for the M_0-free parts once (all chunks in
parallel) gives the WY / UT representation

    U = A^{-1} diag(b) V,        W = A^{-1} diag(b exp(G)) K,        E = U - W M_0^T.

Then, exactly,

    Y   = diag(exp G) Q M_0^T + (Q K^T * D) E,       D_ts = exp(G_t - G_s) for s <= t, else 0,
    M_C = exp(G_C) M_0 + E^T diag(exp(G_C - G)) K.

Overflow guard: every exponent is exp(G_t) or a difference G_t - G_s with s <= t, i.e. a product
of retentions, never 1 / (product of retentions) as in the naive "divide by the cumulative decay"
trick; with a_t in (0, 1] every factor is in [0, 1]. Entries above the diagonal are masked in the
exponent (-inf -> exp = 0) so the backward pass sees no inf * 0.
Padding T up to a multiple of C uses k = v = q = 0, b = 0 and log a = 0, which changes nothing.
"""

from __future__ import annotations

import math

import torch

from ..chunking import _to_chunks


def chunk_gated_delta(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    b: torch.Tensor,
    a: torch.Tensor | None = None,
    *,
    log_a: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunk-parallel gated delta rule; same contract as naive_gated_delta.

    Args:
        q, k: [B, T, H, Dk]; v: [B, T, H, Dv]; b: [B, T, H].
        a: retention in (0, 1], [B, T, H] (default 1). Or ``log_a``, not both; this form works
           with log a, so a = 0 exactly is not allowed here (pass a finite log_a instead).
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
    b_c = _to_chunks(b, N, C)[..., None]  # [B, H, N, C, 1]
    G = _to_chunks(log_a, N, C).cumsum(-1)  # [B, H, N, C]

    causal = torch.ones(C, C, dtype=torch.bool, device=k.device).tril()  # s <= t
    diff = (G[..., :, None] - G[..., None, :]).masked_fill(~causal, float("-inf"))
    D = torch.exp(diff)  # [B, H, N, C(t), C(s)]: exp(G_t - G_s), 0 above the diagonal

    # WY representation, all chunks at once.
    kb = k_c * b_c  # rows b_t k_t
    A = torch.tril(kb @ k_c.transpose(-1, -2) * D, diagonal=-1)
    A = A + torch.eye(C, dtype=A.dtype, device=A.device)  # [B, H, N, C, C]
    U = torch.linalg.solve_triangular(A, v_c * b_c, upper=False, unitriangular=True)  # [.., C, Dv]
    W = torch.linalg.solve_triangular(
        A, kb * torch.exp(G)[..., None], upper=False, unitriangular=True
    )  # [.., C, Dk]

    scores = q_c @ k_c.transpose(-1, -2) * D  # [B, H, N, C, C], causal with decay
    decay_in = torch.exp(G)[..., None]  # [B, H, N, C, 1]: a_1...a_t applied to M_0
    decay_out = torch.exp(G[..., -1:] - G)[..., None]  # [B, H, N, C, 1]: a_{s+1}...a_C
    decay_all = torch.exp(G[..., -1])[..., None, None]  # [B, H, N, 1, 1]

    M = initial_state if initial_state is not None else v.new_zeros(B, H, Dv, Dk)
    outs = []
    for n in range(N):
        E = U[:, :, n] - W[:, :, n] @ M.transpose(-1, -2)  # [B, H, C, Dv]: written vectors
        inter = (q_c[:, :, n] @ M.transpose(-1, -2)) * decay_in[:, :, n]  # [B, H, C, Dv]
        outs.append(inter + scores[:, :, n] @ E)
        M = decay_all[:, :, n] * M + (E * decay_out[:, :, n]).transpose(-1, -2) @ k_c[:, :, n]
    o = torch.stack(outs, dim=2).reshape(B, H, N * C, Dv)[:, :, :T].transpose(1, 2)
    return o, M
