"""Gated delta rule: Triton kernels, forward and backward, for the chunk form of chunk.py.

Same contract as ``chunk_gated_delta`` (y_t = M_t q_t, state [B, H, Dv, Dk]); the delta rule is the
case without a gate (HAS_GATE=False compiles the decay out). Inside the kernels the state is kept
transposed, S = M^T [Dk, Dv], so every product below is a plain row-major matmul.

Per chunk of C tokens (g = in-chunk cumulative log retention, gC its last entry, f = exp(gC - g)):

    A = strict_lower(diag(b) K K^T * exp(g_t - g_s)),   T = (I + A)^-1          [C, C]
    W = T diag(b exp g) K,   U = T diag(b) V                                     (WY / UT form)
    E = U - W S,   O = diag(exp g) Q S + P E,   P = causal(Q K^T * exp(g_t - g_s))
    S' = exp(gC) S + K^T diag(f) E

Kernels (forward): `_wy_fwd` (all chunks in parallel: A, T, W, U; T is kept for the backward),
`_state_fwd` (the only sequential loop: S per chunk and E), `_output_fwd` (all chunks: O).

Backward, with dS' the gradient of the state leaving a chunk:

    dE = P^T dO + diag(f) K dS'                      (P^T dO: `_de_local`, in parallel)
    dS = exp(gC) dS' + Q^T diag(exp g) dO - W^T dE   (`_state_bwd`, reverse sequential loop)
    dQ = diag(exp g) dO S^T + dP K,   dP = causal(dO E^T * exp(g_t - g_s))
    dK = dP^T Q + diag(f) E dS'^T + (WY part),   dW = -dE S^T   (`_dqkw`)
    dT = dE (diag(b) V)^T + dW (diag(b exp g) K)^T,   dA = -T^T dT T^T   (`_wy_bwd`: dK, dV, db)

The gradient of the gate follows from g entering only through exp(+-g): per token, dg_t collects
q_t.dq_t-type terms (see `_dqkw`) plus the WY terms, and d log a = reverse in-chunk cumsum of dg.
The backward recomputes W, U (from the stored T) and the per-chunk states instead of storing them.

T = (I + A)^-1 is computed in registers: the 16 x 16 diagonal blocks by forward substitution (all
blocks at once, as a [C/16, 16, 16] tensor), then merged pairwise, doubling the block size:
for lower block-triangular [[X1, 0], [L21, X2]] the inverse is T - T L T, T = diag(X1^-1, X2^-1).
Specialisation is by tl.constexpr: head widths DK/DV, chunk size C, block widths, HAS_GATE,
HAS_H0, HAS_DHT, DELTA and the fp32 matmul precision, so codegen picks configurations without new
bodies. DELTA=False is the Hebbian rule / linear attention (runtime/ops/hebbian/kernel.py): no
beta and no delta correction, so there is no WY form (`_wy_fwd` is not launched, T, W, U do not
exist), E = V is read straight from v, dE is dV (stored by `_state_bwd`), dK leaves `_dqkw`
final, and `_wy_bwd` only turns dg into d log a (it is not launched without a gate either).
Tokens past T inside the last chunk load as zeros (k = v = q = 0, b = 0, log a = 0), which is
exactly the padding of chunk.py.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

# ----------------------------------------------------------------------------------------------
# helpers (inlined into the kernels)
# ----------------------------------------------------------------------------------------------


@triton.jit
def _gates(la, tok, m_t, C: tl.constexpr):
    """In-chunk cumulative log retention g [C] and its last entry gC (padding has log a = 0)."""
    g = tl.cumsum(tl.load(la + tok, mask=m_t, other=0.0).to(tl.float32), 0)
    gC = tl.sum(tl.where(tl.arange(0, C) == C - 1, g, 0.0), 0)
    return g, gC


@triton.jit
def _inv_unit_lower(a, C: tl.constexpr, PREC: tl.constexpr):
    """(I + a)^-1 for a strictly lower [C, C] fp32 block, C in {16, 32, 64}."""
    NB: tl.constexpr = C // 16
    o = tl.arange(0, C)
    ib = tl.arange(0, NB)
    r = tl.arange(0, 16)
    same = ib[:, None, None, None] == ib[None, None, :, None]  # block row == block column
    ad = tl.sum(tl.where(same, tl.reshape(a, (NB, 16, NB, 16)), 0.0), axis=2)  # [NB, 16, 16]
    # Forward substitution on every diagonal block at once: row i -= sum_s a_is row_s.
    eye = tl.where(r[:, None] == r[None, :], 1.0, 0.0)
    x = tl.zeros([NB, 16, 16], dtype=tl.float32) + eye[None]
    for i in tl.static_range(1, 16):
        a_i = tl.sum(tl.where(r[None, :, None] == i, ad, 0.0), axis=1)  # [NB, 16]: row i of each
        upd = tl.sum(a_i[:, :, None] * x, axis=1)  # [NB, 16]: sum_s a_is row_s
        x = x - tl.where(r[None, :, None] == i, upd[:, None, :], 0.0)
    t = tl.reshape(tl.where(same, x[:, :, None, :], 0.0), (C, C))  # block-diagonal inverse
    # Merge pairs of s-blocks into 2s-blocks: T <- T - T L T, L = a between the two halves.
    for lvl in tl.static_range(2):
        if (16 << lvl) < C:  # s = 16 << lvl: pairs of s-blocks inside each 2s-block
            m = ((o[:, None] // (16 << lvl)) != (o[None, :] // (16 << lvl))) & (
                (o[:, None] // (32 << lvl)) == (o[None, :] // (32 << lvl))
            )
            lm = tl.where(m, a, 0.0)
            t = t - tl.dot(tl.dot(t, lm, input_precision=PREC), t, input_precision=PREC)
    return t


# ----------------------------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------------------------


# Sequence lengths are plain arguments, not specialised: Triton would otherwise compile a variant for
# T == 1, T % 16 == 0 and the rest (and the same for N), and a compile of `_wy_fwd` takes ~45 s
# on the H100 machine. An evaluation calls with every length (a 1-token generation step, a
# prompt's tail), and DeltaNet's NIAH runs spent their whole time limit compiling (bench/RESULTS.md).
_LENGTHS = ["T", "N"]


@triton.jit(do_not_specialize=_LENGTHS)
def _wy_fwd(
    k, v, beta, la, Tm, W, U, T, N,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr,
    HAS_GATE: tl.constexpr, LOAD_T: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """One chunk: T = (I + A)^-1 (computed and stored, or loaded when LOAD_T), W and U."""
    i_n, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_c, o_k, o_v = tl.arange(0, C), tl.arange(0, DK), tl.arange(0, DV)
    t = i_n * C + o_c
    m_t = t < T
    tok = (i_b * T + t).to(tl.int64) * H + i_h  # [C]: flat (b, t, h) index
    rows = (i_bh * N * C + t).to(tl.int64)  # [C]: rows of the internal [B*H, N*C, D] buffers
    b_k = tl.load(k + tok[:, None] * DK + o_k[None, :], mask=m_t[:, None], other=0.0)
    b_v = tl.load(v + tok[:, None] * DV + o_v[None, :], mask=m_t[:, None], other=0.0)
    b_b = tl.load(beta + tok, mask=m_t, other=0.0).to(tl.float32)
    if HAS_GATE:
        g, gC = _gates(la, tok, m_t, C)
        bk = b_b * tl.exp(g)
    else:
        bk = b_b
    p_T = Tm + (i_bh * N + i_n).to(tl.int64) * C * C + o_c[:, None] * C + o_c[None, :]
    if LOAD_T:
        b_T = tl.load(p_T)
    else:
        strict = o_c[:, None] > o_c[None, :]
        b_A = tl.dot(b_k, tl.trans(b_k), input_precision=PREC) * b_b[:, None]
        if HAS_GATE:
            b_A = b_A * tl.exp(tl.where(strict, g[:, None] - g[None, :], 0.0))
        b_T = _inv_unit_lower(tl.where(strict, b_A, 0.0), C, PREC)
        tl.store(p_T, b_T)
    b_w = tl.dot(b_T, b_k.to(tl.float32) * bk[:, None], input_precision=PREC)
    b_u = tl.dot(b_T, b_v.to(tl.float32) * b_b[:, None], input_precision=PREC)
    tl.store(W + rows[:, None] * DK + o_k[None, :], b_w.to(W.dtype.element_ty))
    tl.store(U + rows[:, None] * DV + o_v[None, :], b_u.to(U.dtype.element_ty))


@triton.jit(do_not_specialize=_LENGTHS)
def _state_fwd(
    k, v, W, U, la, h0, Hs, E, ht, T, N,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, BV: tl.constexpr, C: tl.constexpr,
    HAS_GATE: tl.constexpr, HAS_H0: tl.constexpr, DELTA: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """Sequential over chunks for one (b, h, value block): S per chunk, E = U - W S, final S.
    Without DELTA, E = V: it is read from v and not stored (W, U, E are not touched)."""
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_c, o_k = tl.arange(0, C), tl.arange(0, DK)
    o_v = i_v * BV + tl.arange(0, BV)
    p_M = i_bh.to(tl.int64) * DV * DK + o_v[None, :] * DK + o_k[:, None]  # M[v, k] read as S[k, v]
    if HAS_H0:
        b_s = tl.load(h0 + p_M).to(tl.float32)
    else:
        b_s = tl.zeros([DK, BV], dtype=tl.float32)
    for i_n in range(N):
        tl.store(
            Hs + ((i_bh * N + i_n).to(tl.int64) * DK + o_k[:, None]) * DV + o_v[None, :],
            b_s.to(Hs.dtype.element_ty),
        )
        t = i_n * C + o_c
        m_t = t < T
        tok = (i_b * T + t).to(tl.int64) * H + i_h
        if DELTA:
            rows = (i_bh * N * C + t).to(tl.int64)
            b_w = tl.load(W + rows[:, None] * DK + o_k[None, :])
            b_u = tl.load(U + rows[:, None] * DV + o_v[None, :]).to(tl.float32)
            b_e = b_u - tl.dot(b_w, b_s.to(b_w.dtype), input_precision=PREC)  # [C, BV]
            tl.store(E + rows[:, None] * DV + o_v[None, :], b_e.to(E.dtype.element_ty))
        else:
            b_e = tl.load(v + tok[:, None] * DV + o_v[None, :], mask=m_t[:, None], other=0.0)
            b_e = b_e.to(tl.float32)
        b_kt = tl.load(k + tok[None, :] * DK + o_k[:, None], mask=m_t[None, :], other=0.0)
        if HAS_GATE:
            g, gC = _gates(la, tok, m_t, C)
            b_e = b_e * tl.exp(gC - g)[:, None]
            b_s = b_s * tl.exp(gC)
        b_s += tl.dot(b_kt, b_e.to(b_kt.dtype), input_precision=PREC)
    tl.store(ht + p_M, b_s)


@triton.jit(do_not_specialize=_LENGTHS)
def _output_fwd(
    q, k, v, la, Hs, E, o, T, N,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, BV: tl.constexpr, C: tl.constexpr,
    HAS_GATE: tl.constexpr, DELTA: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """One chunk, one value block: O = diag(exp g) Q S + causal(Q K^T * decay) E (E = V
    without DELTA)."""
    i_v, i_n, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_c, o_k = tl.arange(0, C), tl.arange(0, DK)
    o_v = i_v * BV + tl.arange(0, BV)
    t = i_n * C + o_c
    m_t = t < T
    tok = (i_b * T + t).to(tl.int64) * H + i_h
    rows = (i_bh * N * C + t).to(tl.int64)
    b_q = tl.load(q + tok[:, None] * DK + o_k[None, :], mask=m_t[:, None], other=0.0)
    b_k = tl.load(k + tok[:, None] * DK + o_k[None, :], mask=m_t[:, None], other=0.0)
    b_s = tl.load(Hs + ((i_bh * N + i_n).to(tl.int64) * DK + o_k[:, None]) * DV + o_v[None, :])
    if DELTA:
        b_e = tl.load(E + rows[:, None] * DV + o_v[None, :])
    else:
        b_e = tl.load(v + tok[:, None] * DV + o_v[None, :], mask=m_t[:, None], other=0.0)
    b_o = tl.dot(b_q, b_s, input_precision=PREC)
    b_p = tl.dot(b_q, tl.trans(b_k), input_precision=PREC)
    causal = o_c[:, None] >= o_c[None, :]
    if HAS_GATE:
        g, gC = _gates(la, tok, m_t, C)
        b_o = b_o * tl.exp(g)[:, None]
        b_p = b_p * tl.exp(tl.where(causal, g[:, None] - g[None, :], 0.0))
    b_p = tl.where(causal, b_p, 0.0)
    b_o += tl.dot(b_p.to(b_e.dtype), b_e, input_precision=PREC)
    tl.store(o + tok[:, None] * DV + o_v[None, :], b_o.to(o.dtype.element_ty), mask=m_t[:, None])


# ----------------------------------------------------------------------------------------------
# backward
# ----------------------------------------------------------------------------------------------


@triton.jit(do_not_specialize=_LENGTHS)
def _de_local(
    q, k, la, do, dEl, T, N,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, BV: tl.constexpr, C: tl.constexpr,
    HAS_GATE: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """The in-chunk part of dE: P^T dO (all chunks in parallel)."""
    i_v, i_n, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_c, o_k = tl.arange(0, C), tl.arange(0, DK)
    o_v = i_v * BV + tl.arange(0, BV)
    t = i_n * C + o_c
    m_t = t < T
    tok = (i_b * T + t).to(tl.int64) * H + i_h
    rows = (i_bh * N * C + t).to(tl.int64)
    b_q = tl.load(q + tok[:, None] * DK + o_k[None, :], mask=m_t[:, None], other=0.0)
    b_k = tl.load(k + tok[:, None] * DK + o_k[None, :], mask=m_t[:, None], other=0.0)
    b_do = tl.load(do + tok[:, None] * DV + o_v[None, :], mask=m_t[:, None], other=0.0)
    b_pt = tl.dot(b_k, tl.trans(b_q), input_precision=PREC)  # [C(s), C(t)] = P^T
    causal_t = o_c[:, None] <= o_c[None, :]  # s <= t
    if HAS_GATE:
        g, gC = _gates(la, tok, m_t, C)
        b_pt = b_pt * tl.exp(tl.where(causal_t, g[None, :] - g[:, None], 0.0))
    b_pt = tl.where(causal_t, b_pt, 0.0)
    b_de = tl.dot(b_pt.to(b_do.dtype), b_do, input_precision=PREC)
    tl.store(dEl + rows[:, None] * DV + o_v[None, :], b_de)


@triton.jit(do_not_specialize=_LENGTHS)
def _state_bwd(
    q, k, W, la, do, dEl, dht, dHs, dE, dv, dh0, T, N,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, BV: tl.constexpr, C: tl.constexpr,
    HAS_GATE: tl.constexpr, HAS_DHT: tl.constexpr, HAS_H0: tl.constexpr, DELTA: tl.constexpr,
    PREC: tl.constexpr,
):  # fmt: skip
    """Reverse sequential loop: dS' per chunk, the full dE, and the initial state's gradient.
    Without DELTA, E = V, so dE is dV: it goes straight to dv and dS has no -W^T dE term."""
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_c, o_k = tl.arange(0, C), tl.arange(0, DK)
    o_v = i_v * BV + tl.arange(0, BV)
    p_M = i_bh.to(tl.int64) * DV * DK + o_v[None, :] * DK + o_k[:, None]
    if HAS_DHT:
        b_ds = tl.load(dht + p_M).to(tl.float32)
    else:
        b_ds = tl.zeros([DK, BV], dtype=tl.float32)
    for j in range(N):
        i_n = N - 1 - j
        tl.store(
            dHs + ((i_bh * N + i_n).to(tl.int64) * DK + o_k[:, None]) * DV + o_v[None, :],
            b_ds.to(dHs.dtype.element_ty),
        )
        t = i_n * C + o_c
        m_t = t < T
        tok = (i_b * T + t).to(tl.int64) * H + i_h
        rows = (i_bh * N * C + t).to(tl.int64)
        b_q = tl.load(q + tok[:, None] * DK + o_k[None, :], mask=m_t[:, None], other=0.0)
        b_k = tl.load(k + tok[:, None] * DK + o_k[None, :], mask=m_t[:, None], other=0.0)
        b_do = tl.load(do + tok[:, None] * DV + o_v[None, :], mask=m_t[:, None], other=0.0)
        b_de = tl.dot(b_k, b_ds.to(b_k.dtype), input_precision=PREC)  # K dS'
        if HAS_GATE:
            g, gC = _gates(la, tok, m_t, C)
            b_de = b_de * tl.exp(gC - g)[:, None]
            b_q = (b_q * tl.exp(g)[:, None]).to(b_do.dtype)
            b_ds = b_ds * tl.exp(gC)
        b_de += tl.load(dEl + rows[:, None] * DV + o_v[None, :])
        b_ds += tl.dot(tl.trans(b_q), b_do, input_precision=PREC)
        if DELTA:
            tl.store(dE + rows[:, None] * DV + o_v[None, :], b_de)
            b_w = tl.load(W + rows[:, None] * DK + o_k[None, :])
            b_ds -= tl.dot(tl.trans(b_w), b_de.to(b_w.dtype), input_precision=PREC)
        else:
            p_dv = dv + tok[:, None] * DV + o_v[None, :]
            tl.store(p_dv, b_de.to(dv.dtype.element_ty), mask=m_t[:, None])
    if HAS_H0:
        tl.store(dh0 + p_M, b_ds)


@triton.jit(do_not_specialize=_LENGTHS)
def _dqkw(
    q, k, v, la, Hs, dHs, E, dE, do, dq, dKp, dk, dW, dG, T, N,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    C: tl.constexpr, HAS_GATE: tl.constexpr, DELTA: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """One chunk, one key block: dQ (final), dK from the read-out and the state write, dW, dg.
    Without DELTA (E = V, no WY part) dK is final and goes straight to dk; there is no dW."""
    i_kb, i_n, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_c = tl.arange(0, C)
    o_k = i_kb * BK + tl.arange(0, BK)
    t = i_n * C + o_c
    m_t = t < T
    tok = (i_b * T + t).to(tl.int64) * H + i_h
    rows = (i_bh * N * C + t).to(tl.int64)
    p_S = Hs + ((i_bh * N + i_n).to(tl.int64) * DK + o_k[:, None]) * DV
    p_dS = dHs + ((i_bh * N + i_n).to(tl.int64) * DK + o_k[:, None]) * DV
    b_dq = tl.zeros([C, BK], dtype=tl.float32)
    b_dk = tl.zeros([C, BK], dtype=tl.float32)
    b_dw = tl.zeros([C, BK], dtype=tl.float32)
    b_dp = tl.zeros([C, C], dtype=tl.float32)
    b_sds = tl.zeros([BK, BV], dtype=tl.float32)
    for i_v in range(DV // BV):
        o_v = i_v * BV + tl.arange(0, BV)
        b_s = tl.load(p_S + o_v[None, :])  # [BK, BV]
        b_ds = tl.load(p_dS + o_v[None, :])
        if DELTA:
            b_e = tl.load(E + rows[:, None] * DV + o_v[None, :])  # [C, BV]
            b_de = tl.load(dE + rows[:, None] * DV + o_v[None, :]).to(b_s.dtype)
            b_dw += tl.dot(b_de, tl.trans(b_s), input_precision=PREC)
        else:
            b_e = tl.load(v + tok[:, None] * DV + o_v[None, :], mask=m_t[:, None], other=0.0)
        b_do = tl.load(do + tok[:, None] * DV + o_v[None, :], mask=m_t[:, None], other=0.0)
        b_dq += tl.dot(b_do, tl.trans(b_s), input_precision=PREC)
        b_dk += tl.dot(b_e, tl.trans(b_ds), input_precision=PREC)
        b_dp += tl.dot(b_do, tl.trans(b_e), input_precision=PREC)
        if HAS_GATE:
            b_sds += b_s.to(tl.float32) * b_ds.to(tl.float32)
    b_q = tl.load(q + tok[:, None] * DK + o_k[None, :], mask=m_t[:, None], other=0.0)
    b_k = tl.load(k + tok[:, None] * DK + o_k[None, :], mask=m_t[:, None], other=0.0)
    b_qf, b_kf = b_q.to(tl.float32), b_k.to(tl.float32)
    causal = o_c[:, None] >= o_c[None, :]
    if HAS_GATE:
        g, gC = _gates(la, tok, m_t, C)
        b_dq = b_dq * tl.exp(g)[:, None]
        b_dk = b_dk * tl.exp(gC - g)[:, None]
        b_dg = tl.sum(b_qf * b_dq, 1) - tl.sum(b_kf * b_dk, 1)
        # gC also scales S (exp(gC) S) and every write (exp(gC - g_s)): both land on the last token.
        last = tl.sum(b_kf * b_dk) + tl.exp(gC) * tl.sum(b_sds)
        b_dp = b_dp * tl.exp(tl.where(causal, g[:, None] - g[None, :], 0.0))
    b_dp = tl.where(causal, b_dp, 0.0)
    b_dqi = tl.dot(b_dp, b_kf, input_precision=PREC)
    b_dki = tl.dot(tl.trans(b_dp), b_qf, input_precision=PREC)
    b_dq += b_dqi
    b_dk += b_dki
    if HAS_GATE:
        b_dg += tl.sum(b_qf * b_dqi, 1) - tl.sum(b_kf * b_dki, 1)
        b_dg += tl.where(o_c == C - 1, last, 0.0)
        tl.store(dG + (i_kb * tl.num_programs(2) * N * C).to(tl.int64) + rows, b_dg)
    tl.store(dq + tok[:, None] * DK + o_k[None, :], b_dq.to(dq.dtype.element_ty), mask=m_t[:, None])
    if DELTA:
        tl.store(dKp + rows[:, None] * DK + o_k[None, :], b_dk)
        tl.store(dW + rows[:, None] * DK + o_k[None, :], -b_dw)
    else:
        p_dk = dk + tok[:, None] * DK + o_k[None, :]
        tl.store(p_dk, b_dk.to(dk.dtype.element_ty), mask=m_t[:, None])


@triton.jit(do_not_specialize=_LENGTHS)
def _wy_bwd(
    k, v, beta, la, Tm, dW, dE, dKp, dG, dk, dv, db, dla, T, N,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    C: tl.constexpr, HAS_GATE: tl.constexpr, DELTA: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """One chunk: back through U = T diag(b) V, W = T diag(b exp g) K and T = (I + A)^-1, then
    d log a from the per-token dg. Without DELTA only the last part runs (dk, dv are final)."""
    i_n, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_c = tl.arange(0, C)
    t = i_n * C + o_c
    m_t = t < T
    tok = (i_b * T + t).to(tl.int64) * H + i_h
    rows = (i_bh * N * C + t).to(tl.int64)
    b_dg = tl.zeros([C], dtype=tl.float32)
    if DELTA:
        b_T = tl.load(Tm + (i_bh * N + i_n).to(tl.int64) * C * C + o_c[:, None] * C + o_c[None, :])
        b_b = tl.load(beta + tok, mask=m_t, other=0.0).to(tl.float32)
        if HAS_GATE:
            g, gC = _gates(la, tok, m_t, C)
            eg = tl.exp(g)
        else:
            eg = tl.full([C], 1.0, dtype=tl.float32)
        bk = b_b * eg
        b_dT = tl.zeros([C, C], dtype=tl.float32)
        b_db = tl.zeros([C], dtype=tl.float32)
        for i_v in range(DV // BV):
            o_v = i_v * BV + tl.arange(0, BV)
            b_v = tl.load(v + tok[:, None] * DV + o_v[None, :], mask=m_t[:, None], other=0.0)
            b_v = b_v.to(tl.float32)
            b_du = tl.load(dE + rows[:, None] * DV + o_v[None, :])
            b_dT += tl.dot(b_du, tl.trans(b_v * b_b[:, None]), input_precision=PREC)
            b_tdu = tl.dot(tl.trans(b_T), b_du, input_precision=PREC)
            b_db += tl.sum(b_tdu * b_v, 1)
            tl.store(
                dv + tok[:, None] * DV + o_v[None, :],
                (b_tdu * b_b[:, None]).to(dv.dtype.element_ty),
                mask=m_t[:, None],
            )
        b_kk = tl.zeros([C, C], dtype=tl.float32)
        for i_k in range(DK // BK):
            o_k = i_k * BK + tl.arange(0, BK)
            b_k = tl.load(k + tok[:, None] * DK + o_k[None, :], mask=m_t[:, None], other=0.0)
            b_k = b_k.to(tl.float32)
            b_dw = tl.load(dW + rows[:, None] * DK + o_k[None, :])
            b_dT += tl.dot(b_dw, tl.trans(b_k * bk[:, None]), input_precision=PREC)
            b_kk += tl.dot(b_k, tl.trans(b_k), input_precision=PREC)
        b_dA = -tl.dot(
            tl.dot(tl.trans(b_T), b_dT, input_precision=PREC), tl.trans(b_T), input_precision=PREC
        )
        strict = o_c[:, None] > o_c[None, :]
        if HAS_GATE:
            b_dA = b_dA * tl.exp(tl.where(strict, g[:, None] - g[None, :], 0.0))
        b_dA = tl.where(strict, b_dA, 0.0)  # d/d(b_t k_t.k_s), times the decay
        b_db += tl.sum(b_dA * b_kk, 1)
        if HAS_GATE:
            b_z = b_dA * b_kk * b_b[:, None]  # dA * A: d/d(g_t - g_s)
            b_dg += tl.sum(b_z, 1) - tl.sum(b_z, 0)
        b_dkk = b_dA * b_b[:, None]
        for i_k in range(DK // BK):
            o_k = i_k * BK + tl.arange(0, BK)
            b_k = tl.load(k + tok[:, None] * DK + o_k[None, :], mask=m_t[:, None], other=0.0)
            b_k = b_k.to(tl.float32)
            b_dw = tl.load(dW + rows[:, None] * DK + o_k[None, :])
            b_tdw = tl.dot(tl.trans(b_T), b_dw, input_precision=PREC)
            b_kw = tl.sum(b_tdw * b_k, 1)
            b_db += eg * b_kw
            if HAS_GATE:
                b_dg += bk * b_kw
            b_dk = tl.load(dKp + rows[:, None] * DK + o_k[None, :]) + b_tdw * bk[:, None]
            b_dk += tl.dot(b_dkk, b_k, input_precision=PREC)
            b_dk += tl.dot(tl.trans(b_dkk), b_k, input_precision=PREC)
            p_dk = dk + tok[:, None] * DK + o_k[None, :]
            tl.store(p_dk, b_dk.to(dk.dtype.element_ty), mask=m_t[:, None])
        tl.store(db + tok, b_db, mask=m_t)
    if HAS_GATE:
        for i_k in range(DK // BK):
            b_dg += tl.load(dG + (i_k * tl.num_programs(1) * N * C).to(tl.int64) + rows)
        # d log a_t = sum over u >= t in the chunk of dg_u (g is an in-chunk cumsum).
        b_dla = tl.sum(tl.where(o_c[:, None] <= o_c[None, :], b_dg[None, :], 0.0), 1)
        tl.store(dla + tok, b_dla, mask=m_t)


# ----------------------------------------------------------------------------------------------
# launch configuration and autograd
# ----------------------------------------------------------------------------------------------

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"


def _prec(dtype: torch.dtype) -> str:
    # fp32 inputs: exact fp32 products (the reference path); 16-bit inputs: tf32 for the fp32
    # intermediates (T, dT, dA), native bf16/fp16 tensor-core products for the rest.
    return "ieee" if dtype == torch.float32 else "tf32"


def _cfg(B: int, H: int, DK: int, DV: int, C: int, device: torch.device) -> dict:
    """Launch configuration; measured on an H200 at D = 128 (bench/kernels.py --tune).

    The two state loops are latency-bound and get one program per (b, h, value block): BV is
    halved until they fill one wave of SMs (B=8, H=8: BV=32; B=2, H=8: BV=16). Everything else
    is fastest with 4 warps and 64-wide blocks (8 warps cost 30-60% in the chunk kernels).
    """
    n_sm = 132 if _INTERPRET or device.type != "cuda" else torch.cuda.get_device_properties(
        device
    ).multi_processor_count
    bv = min(64, DV)
    while bv > 16 and B * H * (DV // bv) < n_sm:
        bv //= 2
    return dict(
        BV_STATE=bv, BV=min(64, DV), BK=min(64, DK), warps_state=4,
        warps_chunk=4, stages=2,
    )  # fmt: skip


def _forward(q, k, v, b, log_a, h0, C):
    """b = None: the Hebbian rule (DELTA off: no WY form, E = V)."""
    B, T, H, DK = k.shape
    DV = v.shape[-1]
    N = triton.cdiv(T, C)
    cfg = _cfg(B, H, DK, DV, C, q.device)
    prec = _prec(q.dtype)
    delta, has_gate, has_h0 = b is not None, log_a is not None, h0 is not None
    dev, dt = q.device, q.dtype
    ht = torch.empty(B, H, DV, DK, device=dev, dtype=torch.float32)
    la = log_a if has_gate else ht  # placeholder pointer, never read
    Tm = W = U = E = None
    if delta:
        Tm = torch.empty(B * H * N, C, C, device=dev, dtype=torch.float32)
        W = torch.empty(B * H, N * C, DK, device=dev, dtype=dt)
        U = torch.empty(B * H, N * C, DV, device=dev, dtype=dt)
        _wy_fwd[(N, B * H)](
            k, v, b, la, Tm, W, U, T, N, H=H, DK=DK, DV=DV, C=C, HAS_GATE=has_gate,
            LOAD_T=False, PREC=prec, num_warps=cfg["warps_chunk"], num_stages=cfg["stages"],
        )  # fmt: skip
        E = torch.empty(B * H, N * C, DV, device=dev, dtype=dt)
    Hs = torch.empty(B * H, N, DK, DV, device=dev, dtype=dt)
    bvs = cfg["BV_STATE"]
    _state_fwd[(DV // bvs, B * H)](
        k, v, _ptr(W, ht), _ptr(U, ht), la, _ptr(h0, ht), Hs, _ptr(E, ht), ht, T, N, H=H,
        DK=DK, DV=DV, BV=bvs, C=C, HAS_GATE=has_gate, HAS_H0=has_h0, DELTA=delta, PREC=prec,
        num_warps=cfg["warps_state"], num_stages=cfg["stages"],
    )  # fmt: skip
    o = torch.empty(B, T, H, DV, device=dev, dtype=dt)
    bv = cfg["BV"]
    _output_fwd[(DV // bv, N, B * H)](
        q, k, v, la, Hs, _ptr(E, ht), o, T, N, H=H, DK=DK, DV=DV, BV=bv, C=C,
        HAS_GATE=has_gate, DELTA=delta, PREC=prec, num_warps=cfg["warps_chunk"],
        num_stages=cfg["stages"],
    )  # fmt: skip
    return o, ht, Tm


def _ptr(x, placeholder):
    """x, or a placeholder pointer for an argument that a constexpr flag compiles out."""
    return placeholder if x is None else x


def _backward(q, k, v, b, log_a, h0, Tm, do, dht, C):
    B, T, H, DK = k.shape
    DV = v.shape[-1]
    N = triton.cdiv(T, C)
    cfg = _cfg(B, H, DK, DV, C, q.device)
    prec = _prec(q.dtype)
    delta, has_gate = b is not None, log_a is not None
    has_h0, has_dht = h0 is not None, dht is not None
    dev, dt = q.device, q.dtype
    wc, st = cfg["warps_chunk"], cfg["stages"]
    scratch = torch.empty(B, H, DV, DK, device=dev, dtype=torch.float32)
    la = log_a if has_gate else scratch
    # Recompute W, U from the stored T, then the per-chunk states S and E.
    W = U = E = None
    if delta:
        W = torch.empty(B * H, N * C, DK, device=dev, dtype=dt)
        U = torch.empty(B * H, N * C, DV, device=dev, dtype=dt)
        _wy_fwd[(N, B * H)](
            k, v, b, la, Tm, W, U, T, N, H=H, DK=DK, DV=DV, C=C, HAS_GATE=has_gate,
            LOAD_T=True, PREC=prec, num_warps=wc, num_stages=st,
        )  # fmt: skip
        E = torch.empty(B * H, N * C, DV, device=dev, dtype=dt)
    Hs = torch.empty(B * H, N, DK, DV, device=dev, dtype=dt)
    bvs = cfg["BV_STATE"]
    _state_fwd[(DV // bvs, B * H)](
        k, v, _ptr(W, scratch), _ptr(U, scratch), la, _ptr(h0, scratch), Hs, _ptr(E, scratch),
        scratch, T, N, H=H, DK=DK, DV=DV, BV=bvs, C=C, HAS_GATE=has_gate, HAS_H0=has_h0,
        DELTA=delta, PREC=prec, num_warps=cfg["warps_state"], num_stages=st,
    )  # fmt: skip
    bv, bk = cfg["BV"], cfg["BK"]
    dEl = torch.empty(B * H, N * C, DV, device=dev, dtype=torch.float32)
    _de_local[(DV // bv, N, B * H)](
        q, k, la, do, dEl, T, N, H=H, DK=DK, DV=DV, BV=bv, C=C, HAS_GATE=has_gate, PREC=prec,
        num_warps=wc, num_stages=st,
    )  # fmt: skip
    dHs = torch.empty(B * H, N, DK, DV, device=dev, dtype=dt)
    dE = torch.empty(B * H, N * C, DV, device=dev, dtype=torch.float32) if delta else None
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    dh0 = torch.empty(B, H, DV, DK, device=dev, dtype=torch.float32) if has_h0 else None
    _state_bwd[(DV // bvs, B * H)](
        q, k, _ptr(W, scratch), la, do, dEl, _ptr(dht, scratch), dHs, _ptr(dE, scratch), dv,
        _ptr(dh0, scratch), T, N, H=H, DK=DK, DV=DV, BV=bvs, C=C, HAS_GATE=has_gate,
        HAS_DHT=has_dht, HAS_H0=has_h0, DELTA=delta, PREC=prec,
        num_warps=cfg["warps_state"], num_stages=st,
    )  # fmt: skip
    dq = torch.empty_like(q)
    dKp = torch.empty(B * H, N * C, DK, device=dev, dtype=torch.float32) if delta else None
    dW = torch.empty(B * H, N * C, DK, device=dev, dtype=torch.float32) if delta else None
    dG = torch.empty(DK // bk, B * H, N * C, device=dev, dtype=torch.float32) if has_gate else None
    _dqkw[(DK // bk, N, B * H)](
        q, k, v, la, Hs, dHs, _ptr(E, scratch), _ptr(dE, scratch), do, dq, _ptr(dKp, scratch),
        dk, _ptr(dW, scratch), _ptr(dG, scratch), T, N, H=H, DK=DK, DV=DV, BK=bk, BV=bv, C=C,
        HAS_GATE=has_gate, DELTA=delta, PREC=prec, num_warps=wc, num_stages=st,
    )  # fmt: skip
    db = torch.empty(B, T, H, device=dev, dtype=torch.float32) if delta else None
    dla = torch.empty(B, T, H, device=dev, dtype=torch.float32) if has_gate else None
    if delta or has_gate:  # the Hebbian rule without a gate is done: dk, dv came out final
        _wy_bwd[(N, B * H)](
            k, v, _ptr(b, scratch), la, _ptr(Tm, scratch), _ptr(dW, scratch), _ptr(dE, scratch),
            _ptr(dKp, scratch), _ptr(dG, scratch), dk, dv, _ptr(db, scratch), _ptr(dla, scratch),
            T, N, H=H, DK=DK, DV=DV, BK=bk, BV=bv, C=C, HAS_GATE=has_gate, DELTA=delta,
            PREC=prec, num_warps=wc, num_stages=st,
        )  # fmt: skip
    return dq, dk, dv, db, dla, dh0


class ChunkGatedDeltaFunction(torch.autograd.Function):
    """Inputs already padded to kernel-friendly head widths; see `chunk_gated_delta_kernel`.
    b = None gives the Hebbian rule (linear attention with the same gate handling)."""

    @staticmethod
    def forward(ctx, q, k, v, b, log_a, h0, chunk_size):
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None
        o, ht, Tm = _forward(q, k, v, b, log_a, h0, chunk_size)
        ctx.save_for_backward(q, k, v, b, log_a, h0, Tm)
        ctx.chunk_size = chunk_size
        return o, ht

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, b, log_a, h0, Tm = ctx.saved_tensors
        if do is None:
            do = torch.zeros(*q.shape[:3], v.shape[-1], device=q.device, dtype=q.dtype)
        dq, dk, dv, db, dla, dh0 = _backward(
            q, k, v, b, log_a, h0, Tm, do.contiguous(),
            None if dht is None else dht.contiguous(), ctx.chunk_size,
        )  # fmt: skip
        return (
            dq, dk, dv,
            None if db is None else db.to(b.dtype),
            None if dla is None else dla.to(log_a.dtype),
            None if dh0 is None else dh0.to(h0.dtype),
            None,
        )  # fmt: skip


def _width(d: int) -> int:
    """Kernel head width: a power of two, at least 16 (tl.dot's smallest tile)."""
    return max(16, 1 << (d - 1).bit_length())


def supports(k: torch.Tensor, v: torch.Tensor, chunk_size: int) -> bool:
    """Whether the kernel takes these shapes (else use the chunk reference)."""
    c = chunk_size
    return (
        c in (16, 32, 64)
        # wider heads need more shared memory than Hopper's 227 KB in the state backward
        and _width(k.shape[-1]) <= 128 and _width(v.shape[-1]) <= 128
        and k.dtype in (torch.float32, torch.bfloat16, torch.float16)
    )  # fmt: skip


def chunk_gated_delta_kernel(
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
    """Triton gated delta rule; same contract as `chunk_gated_delta` (chunk.py).

    Args:
        q, k: [B, T, H, Dk]; v: [B, T, H, Dv]; b: [B, T, H].
        a: retention in (0, 1], [B, T, H] (default 1: the delta rule). Or ``log_a``, not both.
        initial_state: M_0, [B, H, Dv, Dk] (default zeros).
        chunk_size: C in {16, 32, 64} (larger chunks compile slowly and spill registers).
    Returns:
        o: [B, T, H, Dv] (dtype of q); final_state: [B, H, Dv, Dk] (dtype of the initial state,
        else of v), accumulated in fp32.
    """
    return chunk_kernel(q, k, v, b, a, log_a=log_a, initial_state=initial_state,
                        chunk_size=chunk_size)


def chunk_kernel(q, k, v, b, a=None, *, log_a=None, initial_state=None, chunk_size=64):
    """The shared entry: the gated delta rule, or with b = None the Hebbian rule
    (runtime/ops/hebbian/kernel.py). Checks, pads head widths, and applies the Function."""
    if a is not None and log_a is not None:
        raise ValueError("pass the retention as `a` or as `log_a`, not both")
    if not supports(k, v, chunk_size):
        raise ValueError(
            f"kernel needs chunk_size 16, 32 or 64 and head widths <= 128, "
            f"got chunk_size={chunk_size}, Dk={k.shape[-1]}, Dv={v.shape[-1]}, dtype={k.dtype}"
        )
    if a is not None:
        log_a = torch.log(a)  # autograd carries d/da = d/dlog_a / a
    dk_in, dv_in = k.shape[-1], v.shape[-1]
    DK, DV = _width(dk_in), _width(dv_in)
    dt = q.dtype
    q, k, v = (x.to(dt) for x in (q, k, v))
    if DK != dk_in:  # zero key columns change no dot product
        q, k = F.pad(q, (0, DK - dk_in)), F.pad(k, (0, DK - dk_in))
    if DV != dv_in:  # zero value rows are never read back
        v = F.pad(v, (0, DV - dv_in))
    h0 = initial_state
    if h0 is not None and (DK != dk_in or DV != dv_in):
        h0 = F.pad(h0, (0, DK - dk_in, 0, DV - dv_in))
    o, ht = ChunkGatedDeltaFunction.apply(
        q.contiguous(), k.contiguous(), v.contiguous(),
        None if b is None else b.contiguous(),
        None if log_a is None else log_a.contiguous(),
        None if h0 is None else h0.contiguous(), chunk_size,
    )  # fmt: skip
    out_dtype = initial_state.dtype if initial_state is not None else v.dtype
    return o[..., :dv_in], ht[:, :, :dv_in, :dk_in].to(out_dtype)


__all__ = ["ChunkGatedDeltaFunction", "chunk_gated_delta_kernel", "chunk_kernel", "supports"]
