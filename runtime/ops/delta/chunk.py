"""Delta rule (DeltaNet), chunk-parallel form via the WY / UT representation.

Recurrence (see naive.py):  M_t = M_{t-1} (I - b_t k_t k_t^T) + b_t v_t k_t^T,  y_t = M_t q_t.

Derivation. Rewrite one step as a rank-one correction with the vector it writes,

    M_t = M_{t-1} + e_t k_t^T,        e_t = b_t (v_t - M_{t-1} k_t),

so inside a chunk that starts from state M_0, M_t = M_0 + sum_{s<=t} e_s k_s^T. Substituting
this M_{t-1} into the definition of e_t:

    e_t + b_t sum_{s<t} (k_t . k_s) e_s = b_t (v_t - M_0 k_t).

Stacking the chunk's e_t as rows of E [C, Dv] this is the unit lower-triangular system

    A E = diag(b) (V - K M_0^T),        A = I + strict_lower(diag(b) K K^T)   [C, C].

Because the right-hand side is affine in M_0, solve once per chunk for the two parts that do not
depend on M_0 (this is the WY / UT representation; all chunks are solved at once, in parallel):

    U = A^{-1} diag(b) V   [C, Dv],        W = A^{-1} diag(b) K   [C, Dk],        E = U - W M_0^T.

Then, exactly,

    Y   = Q M_0^T + causal(Q K^T) E        (causal keeps s <= t, diagonal included)
    M_C = M_0 + E^T K.

Only the last two lines (and E = U - W M_0^T) run in the sequential loop over chunks.
Padding T up to a multiple of C uses k = v = q = 0 and b = 0, which writes nothing.
"""

from __future__ import annotations

import math

import torch

from ..chunking import _to_chunks


def chunk_delta(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    b: torch.Tensor,
    *,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunk-parallel delta rule; same contract as naive_delta.

    Args:
        q, k: [B, T, H, Dk]; v: [B, T, H, Dv]; b: [B, T, H].
        initial_state: M_0, [B, H, Dv, Dk] (default zeros).
        chunk_size: C, tokens per chunk (cost per chunk O(C^2 D) + a C x C triangular solve).
    Returns:
        o: [B, T, H, Dv]; final_state: [B, H, Dv, Dk].
    """
    B, T, H, Dk = k.shape
    Dv = v.shape[-1]
    C = chunk_size
    N = math.ceil(T / C)
    q_c, k_c, v_c = (_to_chunks(x, N, C) for x in (q, k, v))  # [B, H, N, C, D]
    b_c = _to_chunks(b, N, C)[..., None]  # [B, H, N, C, 1]

    # WY representation, all chunks at once.
    kb = k_c * b_c  # rows b_t k_t
    A = torch.tril(kb @ k_c.transpose(-1, -2), diagonal=-1)  # [B, H, N, C, C]: b_t k_t.k_s, s<t
    A = A + torch.eye(C, dtype=A.dtype, device=A.device)
    U = torch.linalg.solve_triangular(A, v_c * b_c, upper=False, unitriangular=True)  # [.., C, Dv]
    W = torch.linalg.solve_triangular(A, kb, upper=False, unitriangular=True)  # [.., C, Dk]
    # Causal (diagonal included) read-out weights q_t . k_s.
    scores = torch.tril(q_c @ k_c.transpose(-1, -2))  # [B, H, N, C(t), C(s)]

    M = initial_state if initial_state is not None else v.new_zeros(B, H, Dv, Dk)
    outs = []
    for n in range(N):
        E = U[:, :, n] - W[:, :, n] @ M.transpose(-1, -2)  # [B, H, C, Dv]: written vectors e_t
        outs.append(q_c[:, :, n] @ M.transpose(-1, -2) + scores[:, :, n] @ E)
        M = M + E.transpose(-1, -2) @ k_c[:, :, n]
    o = torch.stack(outs, dim=2).reshape(B, H, N * C, Dv)[:, :, :T].transpose(1, 2)
    return o, M
