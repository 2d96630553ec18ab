"""Titans deep (MLP) memory: Triton kernels, forward and backward, for the chunk form of chunk.py.

Same contract as ``chunk_titans`` with read="current". Split of the work:

* PyTorch (all chunks at once, autograd does their backward): the decay coefficients of each
  chunk, which depend only on its gates (``decay_matrix``): b0, e [N, C], D [N, C, C] for the
  read, and for the chunk-end state bC, eC, aC (scalars) and the rows dC = D[last], tC =
  (A diag theta)[last] [N, C].
* Triton: the sequential recurrence over chunks given those coefficients, one program per
  (batch, head); the hidden width is tiled (BHID columns at a time), so the weights W1 [Dv, hid],
  W2 [hid, Dk] and momenta S1, S2 live in global memory (fp32), never whole in registers.

Per chunk (state W1, W2, S1, S2 at its start; s the activation; rows scaled by b0/e written b0.X):

    Z = K W2^T, A = s(Z), Y = A W1^T (+ K), dY = 2 (Y - V), G = dY W1, dZ = G * s'(Z)
    Zq = b0.(Q W2^T) + e.(Q S2^T) - (D * Q K^T) dZ,      Hq = s(Zq)
    O  = b0.(Hq W1^T) + e.(Hq S1^T) - (D * Hq A^T) dY (+ Q)
    W1' = bC W1 + eC S1 - dY^T dC.A      S1' = aC S1 - dY^T tC.A
    W2' = bC W2 + eC S2 - (dC.dZ)^T K    S2' = aC S2 - (tC.dZ)^T K

Y needs every hidden column, so the forward makes two passes over the hidden tiles per chunk
(Y, then everything else tile by tile). It stores the chunk-start states (fp32) for the backward.

Backward. With dO, and X1, X2, Y1, Y2 the gradients of W1', W2', S1', S2' (the next chunk's
start state), R2 = dO dY^T, R1 = dZq dZ^T, PA = Hq A^T, PK = Q K^T (all [C, C], D-masked):

    dHq = b0.(dO W1) + e.(dO S1) - (D*R2) A,          dZq = dHq * s'(Zq)
    dQ  = b0.(dZq W2) + e.(dZq S2) - (D*R1) K (+ dO)
    ddZ = -(D*PK)^T dZq - dC.(K X2^T) - tC.(K Y2^T)
    ddY = -(D*PA)^T dO - dC.(A X1^T) - tC.(A Y1^T) + (ddZ * s'(Z)) W1^T,    dV = -2 ddY
    dA  = -(D*R2)^T Hq - dC.(dY X1) - tC.(dY Y1) + 2 ddY W1
    dZ~ = dA * s'(Z) + ddZ * G * s''(Z)      (the pre-activation of the keys)
    dK  = dZ~ W2 - (D*R1)^T Q - (dC.dZ) X2 - (tC.dZ) Y2 (+ 2 ddY)
    dW1 = bC X1 + (b0.dO)^T Hq + dY^T (ddZ * s'(Z)) + 2 ddY^T A,   dS1 = eC X1 + aC Y1 + (e.dO)^T Hq
    dW2 = bC X2 + (b0.dZq)^T Q + dZ~^T K,                          dS2 = eC X2 + aC Y2 + (e.dZq)^T Q
    db0 = rowsum(dO * Hq W1^T) + rowsum(dZq * Q W2^T),   de: the same with S1, S2
    dD  = -(PA * R2) - (PK * R1)  (lower triangle),      dbC = <X1, W1> + <X2, W2>,
    deC = <X1, S1> + <X2, S2>,  daC = <Y1, S1> + <Y2, S2>,
    ddC = -rowsum(A * dY X1) - rowsum(dZ * K X2^T),  dtC: the same with Y1, Y2.

The backward kernel runs the chunks in reverse from the stored chunk-start states (and dY, D*QK^T
kept from the forward), in two passes over the hidden tiles: every tile-local term, with the
[C, C] and [C, D] reductions
(PA, R1, ddY, dQ, dK) accumulated, and the tile's partial dZ~ parked in a scratch buffer; then,
with the full ddY, the remaining terms (2 ddY W1 into dZ~, dZ~ W2 into dK, the dW1/dW2 updates).
The state gradient is carried between chunks in a double buffer. The coefficient gradients go
back to PyTorch, whose autograd takes them through ``decay_matrix`` into eta, theta and alpha.

Precision and layout. Products accumulate in fp32; the state, the state gradient and the
coefficients stay fp32. On CUDA the products' operands are bf16 for every input dtype (`_prec`:
fp32 operand tiles would not fit Hopper's shared memory); the interpreter computes exact fp32
products, or emulates the bf16 rounding (precision="bf16"). Inside the hidden-tile loops the token
tiles are reloaded from global memory (computed ones through a small per-program scratch) rather
than kept live across the loop, which keeps shared memory at ~70 KB (forward) and ~86 KB
(backward) for D = 128, hid = 512, C = 64 (ptxas for sm_90a). Memory: the chunk-start states,
4 B H (T/C + 1) D hid fp32 (2.2 GB at B = H = 8, T = 2048, D = 128, hid = 512, C = 64), and
dY, D*QK^T per chunk (0.1 GB there).

Not yet measured on a GPU. Parallelism is one program per (batch, head) (64 programs at B = H = 8,
under half an H100), and at D = 128 both kernels use all 255 registers and spill (ptxas: ~5 KB
forward, ~14 KB backward per thread at BHID = 64; ~7.5 KB backward at BHID = 32). The next step
for speed: one launch per chunk and pass with one program per (batch, head, hidden tile), the
cross-tile sums (Y, O, PA, R1, ddY, dQ, dK) written as per-tile partials that the next pass
sums; only Y and ddY gate the sequential chain.

Tokens past T in the last chunk are padding: q = k = v = 0 and theta = 0, so they write nothing
(D's columns vanish) and their outputs are dropped; the chunk-end coefficients of the last chunk
are taken at its last real token (the padding would keep adding the momentum to the weights).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from ..mlp_memory import check_memory_kind, decay_matrix
from .naive import initial_titans_state

# ----------------------------------------------------------------------------------------------
# helpers (inlined into the kernels)
# ----------------------------------------------------------------------------------------------


@triton.jit
def _act(z, ACT: tl.constexpr):
    """s(z), s'(z), s''(z) for silu (ACT=0) or exact (erf) gelu (ACT=1)."""
    if ACT == 0:
        sig = tl.sigmoid(z)
        s = z * sig
        d1 = sig * (1 + z * (1 - sig))
        d2 = sig * (1 - sig) * (2 + z * (1 - 2 * sig))
    else:
        cdf = 0.5 * (1 + tl.math.erf(z * 0.7071067811865476))
        pdf = tl.exp(-0.5 * z * z) * 0.3989422804014327
        s = z * cdf
        d1 = cdf + z * pdf
        d2 = pdf * (2 - z * z)
    return s, d1, d2


@triton.jit
def _round_bf16(x):
    """fp32 -> the nearest bf16 (ties to even), kept in fp32: what a.to(bf16) does on a GPU."""
    u = x.to(tl.uint32, bitcast=True)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.to(tl.float32, bitcast=True)


@triton.jit
def _mm(a, b, PREC: tl.constexpr):
    """a @ b with fp32 accumulation; PREC="bf16" rounds both operands to bf16 (tensor cores at
    full rate, half the shared memory), else fp32 operands at that input precision."""
    if PREC == "bf16":
        return tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16))
    elif PREC == "bf16_rounded":  # the interpreter (its bf16 dot is wrong): the same rounding
        return tl.dot(_round_bf16(a), _round_bf16(b))
    else:
        return tl.dot(a, b, input_precision=PREC)


@triton.jit
def _chunk_end_state(w1, w2, s1, s2, a, dz, t_dy, t_k, b_bc, b_ec, b_ac, b_dc, b_tc, PREC: tl.constexpr):
    """One hidden tile of the chunk-end state (the module docstring's W1', S1', W2', S2'):
    retention and momentum of the chunk-start tile, minus the chunk's gradients weighted by the
    rows dC (weights) and tC (momentum). Shared with kernel_split.py."""
    dyt = tl.trans(t_dy)
    nw1 = b_bc * w1 + b_ec * s1 - _mm(dyt, a * b_dc[:, None], PREC)
    ns1 = b_ac * s1 - _mm(dyt, a * b_tc[:, None], PREC)
    nw2 = b_bc * w2 + b_ec * s2 - _mm(tl.trans(dz * b_dc[:, None]), t_k, PREC)
    ns2 = b_ac * s2 - _mm(tl.trans(dz * b_tc[:, None]), t_k, PREC)
    return nw1, nw2, ns1, ns2


# ----------------------------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------------------------


# Chunk counts are plain arguments, not specialised (one compile for every length: see the gated
# delta kernel).
@triton.jit(do_not_specialize=["N", "NS", "NX"])
def _titans_fwd(
    q, k, v, W1s, W2s, S1s, S2s, b0, e, Dm, bC, eC, aC, dC, tC, o, X, N, NS, NX,
    DK: tl.constexpr, DV: tl.constexpr, HID: tl.constexpr, C: tl.constexpr,
    BHID: tl.constexpr, RESIDUAL: tl.constexpr, ACT: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """One (b, h): all chunks in order; stores O and the state at every chunk end (slot n % NS of
    W1s..: NS = N + 1 keeps all for the backward, NS = 2 only the latest when no gradient is due).

    Token tiles used inside the hidden-tile loop are (re)loaded there from global memory (dY and
    D*QK^T from X, which keeps them per chunk for the backward): loop-invariant tiles would be
    hoisted with their shared-memory copies live across the loop.
    """
    i_bh = tl.program_id(0)
    o_c, o_k, o_v, o_h = tl.arange(0, C), tl.arange(0, DK), tl.arange(0, DV), tl.arange(0, BHID)
    causal = o_c[:, None] >= o_c[None, :]
    for i_n in range(N):
        rows = (i_bh * N * C + i_n * C + o_c).to(tl.int64)
        x0 = X + (i_bh * NX + i_n % NX).to(tl.int64) * (C * DV + C * C)  # kept for the backward
        p_xdy = x0 + o_c[:, None] * DV + o_v[None, :]  # dY
        p_xm1 = x0 + C * DV + o_c[:, None] * C + o_c[None, :]  # D * Q K^T
        p_q = q + rows[:, None] * DK + o_k[None, :]
        p_k = k + rows[:, None] * DK + o_k[None, :]
        cf = (i_bh * N + i_n).to(tl.int64)
        b_b0 = tl.load(b0 + cf * C + o_c)
        b_e = tl.load(e + cf * C + o_c)
        b_bc, b_ec, b_ac = tl.load(bC + cf), tl.load(eC + cf), tl.load(aC + cf)
        b_dc = tl.load(dC + cf * C + o_c)
        b_tc = tl.load(tC + cf * C + o_c)
        slot = (i_bh * NS + i_n % NS).to(tl.int64)
        p_w1 = W1s + slot * DV * HID
        p_s1 = S1s + slot * DV * HID
        p_w2 = W2s + slot * HID * DK
        p_s2 = S2s + slot * HID * DK
        nxt = (i_bh * NS + (i_n + 1) % NS).to(tl.int64) - slot  # the chunk-end state's slot
        # pass 1: the keys' prediction Y (a reduction over the hidden width)
        b_k = tl.load(p_k).to(tl.float32)
        b_y = tl.zeros([C, DV], dtype=tl.float32)
        for i_t in range(HID // BHID):
            o_t = i_t * BHID + o_h
            w1 = tl.load(p_w1 + o_v[:, None] * HID + o_t[None, :])  # [DV, BHID]
            w2 = tl.load(p_w2 + o_t[:, None] * DK + o_k[None, :])  # [BHID, DK]
            a, _, _ = _act(_mm(tl.load(p_k).to(tl.float32), tl.trans(w2), PREC), ACT)
            b_y += _mm(a, tl.trans(w1), PREC)
        if RESIDUAL:
            b_y += b_k
        b_v = tl.load(v + rows[:, None] * DV + o_v[None, :]).to(tl.float32)
        tl.store(p_xdy, 2 * (b_y - b_v))  # dY
        b_q = tl.load(p_q).to(tl.float32)
        b_D = tl.load(Dm + cf * C * C + o_c[:, None] * C + o_c[None, :])
        tl.store(p_xm1, tl.where(causal, b_D * _mm(b_q, tl.trans(b_k), PREC), 0.0))
        tl.debug_barrier()
        # pass 2: per hidden tile, the read and the chunk-end state
        b_o = tl.zeros([C, DV], dtype=tl.float32)
        b_pa = tl.zeros([C, C], dtype=tl.float32)
        for i_t in range(HID // BHID):
            o_t = i_t * BHID + o_h
            q1 = o_v[:, None] * HID + o_t[None, :]
            q2 = o_t[:, None] * DK + o_k[None, :]
            w1, s1 = tl.load(p_w1 + q1), tl.load(p_s1 + q1)
            w2, s2 = tl.load(p_w2 + q2), tl.load(p_s2 + q2)
            t_q, t_k = tl.load(p_q).to(tl.float32), tl.load(p_k).to(tl.float32)
            t_dy = tl.load(p_xdy)
            a, sp, _ = _act(_mm(t_k, tl.trans(w2), PREC), ACT)
            dz = _mm(t_dy, w1, PREC) * sp  # [C, BHID]
            zq = (b_b0[:, None] * _mm(t_q, tl.trans(w2), PREC)
                  + b_e[:, None] * _mm(t_q, tl.trans(s2), PREC) - _mm(tl.load(p_xm1), dz, PREC))
            hq, _, _ = _act(zq, ACT)
            b_o += (b_b0[:, None] * _mm(hq, tl.trans(w1), PREC)
                    + b_e[:, None] * _mm(hq, tl.trans(s1), PREC))
            b_pa += _mm(hq, tl.trans(a), PREC)
            nw1, nw2, ns1, ns2 = _chunk_end_state(w1, w2, s1, s2, a, dz, t_dy, t_k, b_bc, b_ec, b_ac,
                                                  b_dc, b_tc, PREC)
            tl.store(p_w1 + nxt * DV * HID + q1, nw1)
            tl.store(p_s1 + nxt * DV * HID + q1, ns1)
            tl.store(p_w2 + nxt * HID * DK + q2, nw2)
            tl.store(p_s2 + nxt * HID * DK + q2, ns2)
        b_D = tl.load(Dm + cf * C * C + o_c[:, None] * C + o_c[None, :])
        b_o -= _mm(tl.where(causal, b_D * b_pa, 0.0), tl.load(p_xdy), PREC)
        if RESIDUAL:
            b_o += tl.load(p_q).to(tl.float32)
        tl.store(o + rows[:, None] * DV + o_v[None, :], b_o.to(o.dtype.element_ty))
        tl.debug_barrier()  # the next chunk reads the state (and scratch) other threads wrote


# ----------------------------------------------------------------------------------------------
# backward
# ----------------------------------------------------------------------------------------------


@triton.jit(do_not_specialize=["N"])
def _titans_bwd(
    q, k, v, W1s, W2s, S1s, S2s, b0, e, Dm, bC, eC, aC, dC, tC, do,
    dq, dk, dv, db0, de, dDm, dbC, deC, daC, ddC, dtC, dW1b, dW2b, dS1b, dS2b, P, XF, X, N,
    DK: tl.constexpr, DV: tl.constexpr, HID: tl.constexpr, C: tl.constexpr,
    BHID: tl.constexpr, RESIDUAL: tl.constexpr, ACT: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """One (b, h): chunks in reverse; the state gradient is carried in dW1b.. (two slots).

    dY and D*QK^T come from the forward (XF). As there, token tiles are (re)loaded inside the
    hidden-tile loops (D*R2 and 2 ddY through the per-program scratch X).
    """
    i_bh = tl.program_id(0)
    o_c, o_k, o_v, o_h = tl.arange(0, C), tl.arange(0, DK), tl.arange(0, DV), tl.arange(0, BHID)
    causal = o_c[:, None] >= o_c[None, :]
    p_P = P + i_bh.to(tl.int64) * C * HID + o_c[:, None] * HID
    x0 = X + i_bh.to(tl.int64) * (C * DV + C * C)
    p_xyf = x0 + o_c[:, None] * DV + o_v[None, :]  # 2 ddY (the gradient of Y)
    p_xr2 = x0 + C * DV + o_c[:, None] * C + o_c[None, :]  # D * dO dY^T
    for j in range(N):
        i_n = N - 1 - j
        xf = XF + (i_bh * N + i_n).to(tl.int64) * (C * DV + C * C)  # from the forward
        p_xdy = xf + o_c[:, None] * DV + o_v[None, :]  # dY
        p_xm1 = xf + C * DV + o_c[:, None] * C + o_c[None, :]  # D * Q K^T
        rows = (i_bh * N * C + i_n * C + o_c).to(tl.int64)
        p_q = q + rows[:, None] * DK + o_k[None, :]
        p_k = k + rows[:, None] * DK + o_k[None, :]
        p_do = do + rows[:, None] * DV + o_v[None, :]
        cf = (i_bh * N + i_n).to(tl.int64)
        b_b0 = tl.load(b0 + cf * C + o_c)
        b_e = tl.load(e + cf * C + o_c)
        p_D = Dm + cf * C * C + o_c[:, None] * C + o_c[None, :]
        b_bc, b_ec, b_ac = tl.load(bC + cf), tl.load(eC + cf), tl.load(aC + cf)
        b_dc = tl.load(dC + cf * C + o_c)
        b_tc = tl.load(tC + cf * C + o_c)
        slot = (i_bh * (N + 1) + i_n).to(tl.int64)
        p_w1 = W1s + slot * DV * HID
        p_s1 = S1s + slot * DV * HID
        p_w2 = W2s + slot * HID * DK
        p_s2 = S2s + slot * HID * DK
        rd = (i_bh * 2 + j % 2).to(tl.int64)  # slot holding the gradient of the chunk-end state
        wr = (i_bh * 2 + 1 - j % 2).to(tl.int64)  # slot for the chunk-start state's gradient
        b_dy = tl.load(p_xdy)
        b_D = tl.load(p_D)
        r2 = _mm(tl.load(p_do).to(tl.float32), tl.trans(b_dy), PREC)
        tl.store(p_xr2, tl.where(causal, b_D * r2, 0.0))
        tl.debug_barrier()
        # pass B: every tile-local term; reductions over the hidden width accumulate
        b_pa = tl.zeros([C, C], dtype=tl.float32)
        b_r1 = tl.zeros([C, C], dtype=tl.float32)
        b_ddy = tl.zeros([C, DV], dtype=tl.float32)
        b_dq = tl.zeros([C, DK], dtype=tl.float32)
        b_dk = tl.zeros([C, DK], dtype=tl.float32)
        b_db0 = tl.zeros([C], dtype=tl.float32)
        b_de = tl.zeros([C], dtype=tl.float32)
        b_ddc = tl.zeros([C], dtype=tl.float32)
        b_dtc = tl.zeros([C], dtype=tl.float32)
        acc_bc = tl.zeros([BHID], dtype=tl.float32)
        acc_ec = tl.zeros([BHID], dtype=tl.float32)
        acc_ac = tl.zeros([BHID], dtype=tl.float32)
        for i_t in range(HID // BHID):
            o_t = i_t * BHID + o_h
            q1 = o_v[:, None] * HID + o_t[None, :]  # [DV, BHID] tile of a first-layer matrix
            q2 = o_t[:, None] * DK + o_k[None, :]  # [BHID, DK] tile of a second-layer matrix
            w1, s1 = tl.load(p_w1 + q1), tl.load(p_s1 + q1)
            w2, s2 = tl.load(p_w2 + q2), tl.load(p_s2 + q2)
            x1 = tl.load(dW1b + rd * DV * HID + q1)
            y1 = tl.load(dS1b + rd * DV * HID + q1)
            x2 = tl.load(dW2b + rd * HID * DK + q2)
            y2 = tl.load(dS2b + rd * HID * DK + q2)
            t_q, t_k = tl.load(p_q).to(tl.float32), tl.load(p_k).to(tl.float32)
            t_do, t_dy = tl.load(p_do).to(tl.float32), tl.load(p_xdy)
            t_m1, t_r2 = tl.load(p_xm1), tl.load(p_xr2)
            a, sp, spp = _act(_mm(t_k, tl.trans(w2), PREC), ACT)
            g = _mm(t_dy, w1, PREC)
            dz = g * sp
            qw = _mm(t_q, tl.trans(w2), PREC)
            qs = _mm(t_q, tl.trans(s2), PREC)
            hq, spq, _ = _act(b_b0[:, None] * qw + b_e[:, None] * qs - _mm(t_m1, dz, PREC), ACT)
            dow = _mm(t_do, w1, PREC)
            dos = _mm(t_do, s1, PREC)
            dzq = (b_b0[:, None] * dow + b_e[:, None] * dos - _mm(t_r2, a, PREC)) * spq
            b_pa += _mm(hq, tl.trans(a), PREC)
            b_r1 += _mm(dzq, tl.trans(dz), PREC)
            b_db0 += tl.sum(hq * dow, 1) + tl.sum(dzq * qw, 1)
            b_de += tl.sum(hq * dos, 1) + tl.sum(dzq * qs, 1)
            b_dq += b_b0[:, None] * _mm(dzq, w2, PREC) + b_e[:, None] * _mm(dzq, s2, PREC)
            kx2 = _mm(t_k, tl.trans(x2), PREC)
            ky2 = _mm(t_k, tl.trans(y2), PREC)
            ddz = -_mm(tl.trans(t_m1), dzq, PREC) - b_dc[:, None] * kx2 - b_tc[:, None] * ky2
            b_ddc -= tl.sum(dz * kx2, 1)
            b_dtc -= tl.sum(dz * ky2, 1)
            b_dk -= _mm(dz * b_dc[:, None], x2, PREC) + _mm(dz * b_tc[:, None], y2, PREC)
            dg = ddz * sp
            dyx1 = _mm(t_dy, x1, PREC)
            dyy1 = _mm(t_dy, y1, PREC)
            b_ddc -= tl.sum(a * dyx1, 1)
            b_dtc -= tl.sum(a * dyy1, 1)
            da = -_mm(tl.trans(t_r2), hq, PREC) - b_dc[:, None] * dyx1 - b_tc[:, None] * dyy1
            b_ddy += _mm(dg, tl.trans(w1), PREC) - _mm(a * b_dc[:, None], tl.trans(x1), PREC)
            b_ddy -= _mm(a * b_tc[:, None], tl.trans(y1), PREC)
            tl.store(p_P + o_t[None, :], da * sp + ddz * g * spp)
            acc_bc += tl.sum(x1 * w1, 0) + tl.sum(x2 * w2, 1)
            acc_ec += tl.sum(x1 * s1, 0) + tl.sum(x2 * s2, 1)
            acc_ac += tl.sum(y1 * s1, 0) + tl.sum(y2 * s2, 1)
            ndw1 = (b_bc * x1 + _mm(tl.trans(t_dy), dg, PREC)
                    + _mm(tl.trans(t_do * b_b0[:, None]), hq, PREC))
            nds1 = b_ec * x1 + b_ac * y1 + _mm(tl.trans(t_do * b_e[:, None]), hq, PREC)
            ndw2 = b_bc * x2 + _mm(tl.trans(dzq * b_b0[:, None]), t_q, PREC)
            nds2 = b_ec * x2 + b_ac * y2 + _mm(tl.trans(dzq * b_e[:, None]), t_q, PREC)
            tl.store(dW1b + wr * DV * HID + q1, ndw1)
            tl.store(dS1b + wr * DV * HID + q1, nds1)
            tl.store(dW2b + wr * HID * DK + q2, ndw2)
            tl.store(dS2b + wr * HID * DK + q2, nds2)
        b_D = tl.load(p_D)
        b_do = tl.load(p_do).to(tl.float32)
        b_ddy -= _mm(tl.trans(tl.where(causal, b_D * b_pa, 0.0)), b_do, PREC)
        dyf = 2 * b_ddy  # gradient of the keys' prediction Y
        tl.store(p_xyf, dyf)
        tl.store(dv + rows[:, None] * DV + o_v[None, :], -dyf)
        dr1 = tl.where(causal, b_D * b_r1, 0.0)
        b_q, b_k = tl.load(p_q).to(tl.float32), tl.load(p_k).to(tl.float32)
        b_dq -= _mm(dr1, b_k, PREC)
        b_dk -= _mm(tl.trans(dr1), b_q, PREC)
        if RESIDUAL:
            b_dq += b_do
            b_dk += dyf
        tl.store(dq + rows[:, None] * DK + o_k[None, :], b_dq)
        # dD = -(PA * R2) - (PK * R1), with R2 = dO dY^T and PK = Q K^T recomputed (unmasked)
        b_dD = -b_pa * _mm(b_do, tl.trans(tl.load(p_xdy)), PREC)
        b_dD -= b_r1 * _mm(b_q, tl.trans(b_k), PREC)
        tl.store(dDm + cf * C * C + o_c[:, None] * C + o_c[None, :], tl.where(causal, b_dD, 0.0))
        tl.debug_barrier()  # pass C reads what pass B wrote (scratch, state-gradient tiles)
        # pass C: terms that need the complete ddY
        for i_t in range(HID // BHID):
            o_t = i_t * BHID + o_h
            q1 = o_v[:, None] * HID + o_t[None, :]
            q2 = o_t[:, None] * DK + o_k[None, :]
            w1 = tl.load(p_w1 + q1)
            w2 = tl.load(p_w2 + q2)
            t_k, t_yf = tl.load(p_k).to(tl.float32), tl.load(p_xyf)
            a, sp, _ = _act(_mm(t_k, tl.trans(w2), PREC), ACT)
            dzp = tl.load(p_P + o_t[None, :]) + _mm(t_yf, w1, PREC) * sp
            b_dk += _mm(dzp, w2, PREC)
            p1 = dW1b + wr * DV * HID + q1
            p2 = dW2b + wr * HID * DK + q2
            tl.store(p1, tl.load(p1) + _mm(tl.trans(t_yf), a, PREC))
            tl.store(p2, tl.load(p2) + _mm(tl.trans(dzp), t_k, PREC))
        tl.store(dk + rows[:, None] * DK + o_k[None, :], b_dk)
        tl.store(db0 + cf * C + o_c, b_db0)
        tl.store(de + cf * C + o_c, b_de)
        tl.store(dbC + cf, tl.sum(acc_bc, 0))
        tl.store(deC + cf, tl.sum(acc_ec, 0))
        tl.store(daC + cf, tl.sum(acc_ac, 0))
        tl.store(ddC + cf * C + o_c, b_ddc)
        tl.store(dtC + cf * C + o_c, b_dtc)
        tl.debug_barrier()  # the next (earlier) chunk reads the state gradient and scratch


# ----------------------------------------------------------------------------------------------
# launch configuration and autograd
# ----------------------------------------------------------------------------------------------

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
_ACTS = {"silu": 0, "gelu": 1}


PRECISIONS = ("ieee", "tf32", "bf16")  # tf32 / ieee on CUDA: small shapes only (shared memory)


def _prec(dtype: torch.dtype, device: torch.device) -> str:
    """Operand precision of the products (always accumulated in fp32; the state stays fp32).

    On CUDA: bf16 operands for every input dtype (tensor cores at full rate). fp32 operands
    (exact or tf32) do not fit: this fused kernel keeps a dozen operand tiles in shared memory at
    once, and in fp32 the backward needs 270 to 750 KB at D = 64..128, C = 64 (ptxas, sm_90a),
    above Hopper's 227 KB; in bf16 it needs 86 KB (forward 70 KB) at D = 128, hid = 512.
    Exact fp32 products off CUDA (the interpreter), which the CPU tests compare at 1e-5.
    """
    if _INTERPRET or device.type != "cuda":
        return "ieee" if dtype == torch.float32 else "bf16"
    return "bf16"


def _cfg(DK: int, DV: int, HID: int, bhid: int | None = None) -> dict:
    """Launch configuration: one program per (batch, head), hidden tiles of 64 columns (wide
    enough for tensor cores, small enough that each tile's weights fit in registers)."""
    bh = bhid or min(64, HID)
    warps = 8 if max(DK, DV) >= 128 else 4
    return dict(BHID=bh, num_warps=warps, num_stages=1)


class ChunkTitansFunction(torch.autograd.Function):
    """Inputs already laid out for the kernels: q, k [B, H, N*C, Dk], v [B, H, N*C, Dv] (padded),
    the chunk-start state W1, S1 [B, H, Dv, hid], W2, S2 [B, H, hid, Dk] (fp32) and the fp32
    coefficients b0, e [B, H, N, C], D [B, H, N, C, C], bC, eC, aC [B, H, N], dC, tC [B, H, N, C].
    Returns o [B, H, N*C, Dv] and the final (W1, W2, S1, S2)."""

    @staticmethod
    def forward(ctx, q, k, v, W1, W2, S1, S2, b0, e, Dm, bC, eC, aC, dC, tC, C, residual, act,
                bhid, prec):
        ctx.set_materialize_grads(False)
        B, H, TP, DK = q.shape
        DV, HID = v.shape[-1], W1.shape[-1]
        N = TP // C
        cfg = _cfg(DK, DV, HID, bhid)
        dev = q.device
        # all chunk-start states and dY, D*QK^T per chunk for the backward; without one, the latest
        keep = any(ctx.needs_input_grad[:15])
        NS, NX = (N + 1, N) if keep else (2, 1)
        states = [torch.empty(B, H, NS, *w.shape[2:], device=dev, dtype=torch.float32)
                  for w in (W1, W2, S1, S2)]
        for buf, w in zip(states, (W1, W2, S1, S2)):
            buf[:, :, 0] = w
        o = torch.empty(B, H, TP, DV, device=dev, dtype=q.dtype)
        fwd_tiles = torch.empty(B * H, NX, C * DV + C * C, device=dev, dtype=torch.float32)
        _titans_fwd[(B * H,)](
            q, k, v, *states, b0, e, Dm, bC, eC, aC, dC, tC, o, fwd_tiles, N, NS, NX, DK=DK,
            DV=DV, HID=HID, C=C, BHID=cfg["BHID"], RESIDUAL=residual, ACT=act, PREC=prec,
            num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
        )  # fmt: skip
        if keep:
            ctx.save_for_backward(q, k, v, *states, b0, e, Dm, bC, eC, aC, dC, tC, fwd_tiles)
        ctx.meta = (C, residual, act, bhid, prec)
        return (o, *(s[:, :, N % NS].clone() for s in states))

    @staticmethod
    def backward(ctx, do, dW1f, dW2f, dS1f, dS2f):
        q, k, v, W1s, W2s, S1s, S2s, b0, e, Dm, bC, eC, aC, dC, tC, fwd_tiles = ctx.saved_tensors
        C, residual, act, bhid, prec = ctx.meta
        B, H, TP, DK = q.shape
        DV, HID = v.shape[-1], W1s.shape[-1]
        N = TP // C
        cfg = _cfg(DK, DV, HID, bhid)
        dev, f32 = q.device, torch.float32
        do = torch.zeros(B, H, TP, DV, device=dev, dtype=q.dtype) if do is None else do
        dbufs = []
        for s, dfin in zip((W1s, W2s, S1s, S2s), (dW1f, dW2f, dS1f, dS2f)):
            buf = torch.empty(B, H, 2, *s.shape[3:], device=dev, dtype=f32)
            if dfin is None:
                buf[:, :, 0].zero_()
            else:
                buf[:, :, 0] = dfin
            dbufs.append(buf)
        dq = torch.empty(B, H, TP, DK, device=dev, dtype=f32)
        dk = torch.empty_like(dq)
        dv = torch.empty(B, H, TP, DV, device=dev, dtype=f32)
        grads_c = [torch.empty_like(t) for t in (b0, e, Dm, bC, eC, aC, dC, tC)]
        scratch = torch.empty(B * H, C, HID, device=dev, dtype=f32)
        tiles = torch.empty(B * H, C * DV + C * C, device=dev, dtype=f32)
        _titans_bwd[(B * H,)](
            q, k, v, W1s, W2s, S1s, S2s, b0, e, Dm, bC, eC, aC, dC, tC, do.contiguous(),
            dq, dk, dv, *grads_c, *dbufs, scratch, fwd_tiles, tiles, N, DK=DK, DV=DV, HID=HID, C=C,
            BHID=cfg["BHID"], RESIDUAL=residual, ACT=act, PREC=prec,
            num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
        )  # fmt: skip
        dstate = [buf[:, :, N % 2] for buf in dbufs]
        return (dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), *dstate, *grads_c,
                None, None, None, None, None)


def _pow2(n: int) -> bool:
    return n >= 16 and n & (n - 1) == 0


def supports(*args, **kwargs) -> bool:
    """Whether the kernel takes these arguments (those of `chunk_titans`), else use chunk_titans."""
    return why_not(*args, **kwargs) is None


def why_not(q, k, v, eta=None, theta=None, alpha=None, W1_init=None, W2_init=None,
            chunk_size=16, memory="mlp", activation="silu", read="current",
            initial_state=None) -> str | None:
    """None when the kernel runs these arguments (those of `chunk_titans`), else the reason."""
    if memory not in ("mlp", "residual_mlp"):
        return f"memory={memory!r} (kernel: 'mlp', 'residual_mlp')"
    if activation not in _ACTS:
        return f"activation={activation!r} (kernel: 'silu', 'gelu')"
    if read != "current":
        return f"read={read!r} (kernel: 'current')"
    if chunk_size not in (16, 32, 64):
        return f"chunk_size={chunk_size} (kernel: 16, 32 or 64)"
    dk, dv = k.shape[-1], v.shape[-1]
    w1 = initial_state[0] if initial_state is not None else W1_init
    if w1 is None:
        return "no initial weights"
    hid = w1.shape[-1]
    if not (_pow2(dk) and _pow2(dv) and dk <= 128 and dv <= 128):
        return f"head widths Dk={dk}, Dv={dv} (kernel: powers of two, 16 to 128)"
    if memory == "residual_mlp" and dk != dv:
        return f"residual_mlp with Dk={dk} != Dv={dv}"
    if not (_pow2(hid) and hid <= 4096):
        return f"hidden width {hid} (kernel: a power of two, 16 to 4096)"
    if q.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        return f"dtype {q.dtype}"
    return None


def chunk_titans_kernel(q, k, v, eta, theta, alpha, W1_init=None, W2_init=None, chunk_size=16,
                        memory="mlp", activation="silu", read="current", initial_state=None,
                        block_hidden=None, precision=None):
    """Triton Titans memory; same arguments and result as `chunk_titans` (read="current").

    q, k [B, T, H, Dk], v [B, T, H, Dv]; eta, theta, alpha [B, T, H]; W1_init [H or B,H, Dv, hid],
    W2_init [H or B,H, hid, Dk]; or initial_state (W1, W2, S1, S2). Returns o [B, T, H, Dv] (dtype
    of q) and the final state (W1, W2, S1, S2) [B, H, ...] (dtype of the initial weights), carried
    in fp32. block_hidden: the hidden tile (default min(64, hid); tests use smaller ones).
    precision: the products' operand precision, "ieee" | "tf32" | "bf16" (default: see `_prec`;
    the tests pass "bf16" to emulate the GPU's bf16 products in the interpreter).
    """
    return run_titans(ChunkTitansFunction, q, k, v, eta, theta, alpha, W1_init, W2_init,
                      chunk_size, memory, activation, read, initial_state, block_hidden, precision)


def run_titans(function, q, k, v, eta, theta, alpha, W1_init, W2_init, chunk_size, memory,
               activation, read, initial_state, block_hidden, precision):
    """Checks the arguments, prepares the layout and the coefficients of every chunk, and calls
    function.apply (an autograd Function with ChunkTitansFunction's contract): shared by this
    kernel and kernel_split.py."""
    reason = why_not(q, k, v, eta, theta, alpha, W1_init, W2_init, chunk_size, memory,
                     activation, read, initial_state)
    if reason is not None:
        raise ValueError(f"the Titans kernel does not support {reason}")
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision is one of {PRECISIONS}, not {precision!r}")
    residual = check_memory_kind(memory)
    B, T, H, _ = q.shape
    C = chunk_size
    N = triton.cdiv(T, C)
    pad = N * C - T
    W1, W2, S1, S2 = initial_titans_state(W1_init, W2_init, B, initial_state)
    if T == 0:  # nothing to write or read (as chunk_titans)
        return v.new_zeros(v.shape), (W1, W2, S1, S2)
    state_dtype = W1.dtype
    W1, W2, S1, S2 = (w.to(torch.float32).contiguous() for w in (W1, W2, S1, S2))

    # coefficients of every chunk at once (padding: eta = 1, theta = 0, alpha = 0)
    def gates(g, fill):
        g = F.pad(g.transpose(1, 2).to(torch.float32), (0, pad), value=fill)
        return g.reshape(B, H, N, C)

    et, th, al = gates(eta, 1.0), gates(theta, 0.0), gates(alpha, 0.0)
    A, a0 = decay_matrix(et)
    Bm, b0 = decay_matrix(1 - al)
    e = (Bm @ a0.unsqueeze(-1)).squeeze(-1)
    Dm = (Bm @ A) * th.unsqueeze(-2)
    Ath = A * th.unsqueeze(-2)
    last = (T - 1) % C  # the last chunk ends at its last real token

    def end(x):  # x [B, H, N, C, ...] -> the chunk-end entry of each chunk
        if last == C - 1:
            return x[:, :, :, -1]
        return torch.cat([x[:, :, :-1, -1], x[:, :, -1:, last]], dim=2)

    bC, eC, aC = end(b0), end(e), end(a0)
    dC, tC = end(Dm).contiguous(), end(Ath).contiguous()  # rows of D, A diag(theta)

    def tokens(x):
        return F.pad(x.transpose(1, 2), (0, 0, 0, pad)).contiguous()

    qd = q.dtype
    prec = precision or _prec(qd, q.device)
    if prec == "bf16" and _INTERPRET:
        prec = "bf16_rounded"
    o, W1f, W2f, S1f, S2f = function.apply(
        tokens(q), tokens(k.to(qd)), tokens(v.to(qd)), W1, W2, S1, S2, b0.contiguous(),
        e.contiguous(), Dm.contiguous(), bC.contiguous(), eC.contiguous(), aC.contiguous(),
        dC, tC, C, residual, _ACTS[activation], block_hidden,
        prec,
    )  # fmt: skip
    o = o[:, :, :T].transpose(1, 2)
    return o, tuple(w.to(state_dtype) for w in (W1f, W2f, S1f, S2f))


__all__ = ["ChunkTitansFunction", "chunk_titans_kernel", "run_titans", "supports", "why_not"]
