"""Self-modifying Titans: fused Triton kernels, forward and backward, every chunk of a sequence in
one launch each.

Same contract as ``chunk_self_modifying_titans`` (chunk.py), values and gradients (of x, W_q and
every memory's init weights or whole initial state).

Why. The chunk form is exact but launch-bound: one 16-token chunk of one block issues ~400
operators in the forward and ~2,600 with the backward, so a 2,048-token step through 12 blocks is
millions of launches (bench/RESULTS.md, "125M Hope's operator count"). Here one program per
(batch, head) runs all chunks in order, and a chunk is a few dozen small matrix products on tiles
held on chip.

Forward, per chunk (state xi at its start, every memory stacked; the notation of chunk.py, with
token-indexed coefficient matrices [C, C] whose rows are "the state before token i" (prev) or
"after it" (cur)):

1. Generation from xi (`_chunk_inputs`): y_g = s(X W2_g^T) W1_g^T (+ X) for every generator g,
   over hidden tiles; K, V, Q normalised as the options say; eta = eta_scale * map(mean y_eta +
   eta_bias), alpha = map(mean y_alpha + alpha_bias).
2. Coefficients (`_coefficients`; no division: products of the gates along masked loops, so
   alpha = 0 is exact): Tcur[i, j] = prod_{l=j+1..i} alpha_l (j <= i), bcur[i] = prod_{l<=i}
   alpha_l, Tprev, bprev the same one token earlier; with momentum m: Mcur, m0cur likewise,
   e = T m0, Dg = (T Mcur) diag(eta); without: e = 0, Dg = T diag(eta). E = T diag(eta) weighs
   the DGD writes. The chunk end is row L-1 of the cur matrices (L = the chunk's real tokens, so
   the padding of a last, shorter chunk writes nothing: its columns are past the end row).
3. Per memory, pass 1 over hidden tiles: dY/2 = W1 (s(W2 k) - s(W2 v)) (+ k - v).
   Pass 2, tile by tile: dZ/2 = (dY/2 W1) s'(W2 k); u = (I + Eprev * KK^T)^-1 r with
   r = -2 (Dgprev * KK^T) dZ/2 + bprev W2 k + eprev S2 k (the unit-lower-triangular system of
   chunk.py, its inverse built once per chunk by forward substitution); M_mem's read (previous
   or current: z = -2 (Dg * QK^T) dZ/2 + b W2 q + e S2 q - (E * QK^T) u, h = s(z),
   y = -2 (Dg * h A^T) dY/2 + b W1 h + e S1 h + q); and the tile's chunk-end state:
       W1' = bC W1 + eC S1 - 2 dY/2^T (DgC . A)      S1' = mC S1 - 2 dY/2^T (MC . A)
       W2' = bC W2 + eC S2 - (2 DgC . dZ/2 + EC . u)^T K     S2' = mC S2 - 2 (MC . dZ/2)^T K
   written to the next state slot (the forward keeps every chunk's start when a gradient is due).

Backward (`_smt_bwd`), the chunks in reverse from the stored chunk-start states, each the
reverse of the lines above. Per chunk: steps 1 and 2 again; per memory, pass 0 recomputes dY/2,
pass A (tile by tile) takes every term that does not need dY/2's own adjoint (the read, the
chunk-end state, the u system, dZ/2 = (dY/2 W1) s'), accumulating that adjoint and parking the
tile's partial dA, dZ of the keys in a scratch buffer; pass B adds the terms through
dY/2 = (s(Zk) - s(Zv)) W1^T. Every memory adds into the shared adjoints of K, V, Q and of the
coefficient matrices; those go back through step 2 into eta and alpha (the product rule over the
masked products, as d/d log alpha, whose factor for a sigmoid gate is 1 - alpha: no division),
and through step 1 into X, W_q and the generators' chunk-start weights. The state's gradient is
carried between chunks in two slots. (u = L^-1 r gives dr = L^-T du and dL = -dr u^T.)

The state lives in global memory (fp32, stacked [slots, memories, B * H, ...], the gates'
one-row W1 zero-padded to D rows as chunk.py's `_stack_state` does; head and hidden widths that
are not powers of two zero-padded to one, which is exact: see the wrapper); a chunk reads and
writes it
a few times per pass, which stays in L2 at the stock shape (5 memories at D = 64, hidden 128:
0.5 MB per head). Memory: the forward keeps N + 1 chunk-start states for the backward, 4 NM
B H (T/C + 1) D hid fp32 (1 GB per block at B = 1, H = 12, T = 2,048, D = 64, hid 128). Products
accumulate in fp32 with tf32 operands on CUDA and exact fp32 in the interpreter; the coefficient
and key products (KK^T, QK^T, T M) are always full fp32. Parallelism is one program per (batch,
head).
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

from ..titans.kernel import _act, _mm
from .naive import check_options, initial_self_mod_state, is_residual, memory_names, momentum_gate

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
GATE_MAPS = {"softplus": 0, "sigmoid": 1}
READS = {"previous": 0, "current": 1, "chunk_start": 2}
ACTS = {"silu": 0, "gelu": 1}


@triton.jit
def _gate_map(z, MAP: tl.constexpr):
    """softplus (MAP=0, as torch: z above 20 passes through) or sigmoid (MAP=1)."""
    if MAP == 0:
        ez = tl.exp(tl.minimum(z, 20.0))  # (the clamp only keeps the unused branch finite)
        return tl.where(z > 20.0, z, tl.where(z < -15.0, ez, tl.log(1.0 + ez)))
    else:
        return tl.sigmoid(z)


@triton.jit
def _base(slot, m, i_bh, NM: tl.constexpr, BH, D: tl.constexpr, HID: tl.constexpr):
    """Offset of memory m's matrix for (b, h) in state slot `slot` ([slots, NM, B * H, ...])."""
    return ((slot * NM + m) * BH + i_bh).to(tl.int64) * D * HID


@triton.jit
def _dot32(a, b):
    """a @ b in full fp32 (the coefficient and key products: they weigh every write)."""
    return tl.dot(a, b, input_precision="ieee")


@triton.jit
def _generate(X, W1s, W2s, base, D: tl.constexpr, HID: tl.constexpr, BHID: tl.constexpr,
              ACT: tl.constexpr, PREC: tl.constexpr):
    """s(X W2^T) W1^T of the memory at `base` (its chunk-start weights), over the hidden tiles."""
    o_d, o_h = tl.arange(0, D), tl.arange(0, BHID)
    y = tl.zeros([X.shape[0], D], dtype=tl.float32)
    for i_t in range(HID // BHID):
        o_t = i_t * BHID + o_h
        w2 = tl.load(W2s + base + o_t[:, None] * D + o_d[None, :])  # [BHID, D]
        w1 = tl.load(W1s + base + o_d[:, None] * HID + o_t[None, :])  # [D, BHID]
        a, _, _ = _act(_mm(X, tl.trans(w2), PREC), ACT)
        y += _mm(a, tl.trans(w1), PREC)
    return y


@triton.jit
def _prediction_gap(K, V, W1s, W2s, base, residual, D: tl.constexpr, HID: tl.constexpr,
                    BHID: tl.constexpr, ACT: tl.constexpr, PREC: tl.constexpr):
    """dY/2 = M(k) - M(v) = W1 (s(W2 k) - s(W2 v)) (+ k - v) of the memory at `base`: a reduction
    over every hidden tile."""
    o_d, o_h = tl.arange(0, D), tl.arange(0, BHID)
    dyh = tl.zeros([K.shape[0], D], dtype=tl.float32)
    for i_t in range(HID // BHID):
        o_t = i_t * BHID + o_h
        w2 = tl.load(W2s + base + o_t[:, None] * D + o_d[None, :])
        w1 = tl.load(W1s + base + o_d[:, None] * HID + o_t[None, :])
        ak, _, _ = _act(_mm(K, tl.trans(w2), PREC), ACT)
        av, _, _ = _act(_mm(V, tl.trans(w2), PREC), ACT)
        dyh += _mm(ak - av, tl.trans(w1), PREC)
    if residual:
        dyh += K - V
    return dyh


@triton.jit
def _l2norm(x):
    """F.normalize along the last axis (eps 1e-12)."""
    return x / tl.maximum(tl.sqrt(tl.sum(x * x, 1)), 1e-12)[:, None]


@triton.jit
def _l2norm_grad(xt, x, dx):
    """The gradient at xt of x = F.normalize(xt), given dx."""
    n = tl.maximum(tl.sqrt(tl.sum(xt * xt, 1)), 1e-12)
    return (dx - x * tl.sum(x * dx, 1)[:, None]) / n[:, None]


@triton.jit
def _inner(a, b):
    """<a, b> of two matrix tiles."""
    return tl.sum(tl.sum(a * b, 1), 0)


@triton.jit
def _row(M, r, o_c):
    """Row r of a [C, C] tile, as a vector over its columns."""
    return tl.sum(tl.where(o_c[:, None] == r, M, 0.0), 0)


@triton.jit
def _at(v, r, o_c):
    """Entry r of a vector."""
    return tl.sum(tl.where(o_c == r, v, 0.0))


@triton.jit
def _decays(g, o_c, C: tl.constexpr):
    """Products of the gates g [C] along the chunk: (Tcur, bcur, Tprev, bprev) with
    Tcur[i, j] = prod_{l=j+1..i} g_l (j <= i), bcur[i] = prod_{l<=i} g_l, and the prev forms the
    same over l <= i-1 (j < i). Multiplications only."""
    i, j = o_c[:, None], o_c[None, :]
    Tc = tl.where(j <= i, 1.0, 0.0)
    Tp = tl.where(j < i, 1.0, 0.0)
    bc = tl.full([C], 1.0, tl.float32)
    bp = tl.full([C], 1.0, tl.float32)
    for l in range(C):
        g_l = _at(g, l, o_c)
        Tc *= tl.where((j < l) & (l <= i), g_l, 1.0)
        Tp *= tl.where((j < l) & (l < i), g_l, 1.0)
        bc *= tl.where(l <= o_c, g_l, 1.0)
        bp *= tl.where(l < o_c, g_l, 1.0)
    return Tc, bc, Tp, bp


@triton.jit
def _gate_pre(y, X, o_d, DG: tl.constexpr, GATE_RES: tl.constexpr, bias):
    """A gate memory's output y [C, D] (zero-padded past DG) -> mean of its DG numbers + bias."""
    if GATE_RES:  # gate memories as wide as the tokens have the residual skip
        y += X
    return tl.sum(tl.where(o_d[None, :] < DG, y, 0.0), 1) / DG + bias


@triton.jit
def _chunk_inputs(x, wq, W1s, W2s, slot, i_bh, i_n, T, BH, H, eta_scale, eta_bias, alpha_bias,
                  D: tl.constexpr, HID: tl.constexpr, C: tl.constexpr, BHID: tl.constexpr,
                  NM: tl.constexpr, IK: tl.constexpr, IV: tl.constexpr, IQ: tl.constexpr,
                  IETA: tl.constexpr, IALPHA: tl.constexpr, DG: tl.constexpr,
                  GATE_RES: tl.constexpr, ACT: tl.constexpr,
                  ETA_MAP: tl.constexpr, ALPHA_MAP: tl.constexpr, QK_NORM: tl.constexpr,
                  V_NORM: tl.constexpr, PREC: tl.constexpr):
    """Step 1 of a chunk: its tokens and everything generated from the chunk-start state.
    Returns the rows, the real-token count L, X, the keys, values and queries before (Kt, Vt,
    Qt) and after their normalisation, and the gates with their pre-activations (ze, za)."""
    o_c, o_d = tl.arange(0, C), tl.arange(0, D)
    L = tl.minimum(C, T - i_n * C)  # the chunk's real tokens
    valid = o_c < L
    rows = (i_bh * T + i_n * C + o_c).to(tl.int64)
    X = tl.load(x + rows[:, None] * D + o_d[None, :], mask=valid[:, None], other=0.0)
    Kt = _generate(X, W1s, W2s, _base(slot, IK, i_bh, NM, BH, D, HID), D, HID, BHID, ACT, PREC) + X
    Vt = _generate(X, W1s, W2s, _base(slot, IV, i_bh, NM, BH, D, HID), D, HID, BHID, ACT, PREC) + X
    if IQ >= 0:
        Qt = _generate(X, W1s, W2s, _base(slot, IQ, i_bh, NM, BH, D, HID), D, HID, BHID, ACT,
                       PREC) + X
    else:
        w_q = tl.load(wq + (i_bh % H).to(tl.int64) * D * D + o_d[:, None] * D + o_d[None, :])
        Qt = _mm(X, w_q, PREC)
    K, Q, V = Kt, Qt, Vt
    if QK_NORM:
        K, Q = _l2norm(Kt), _l2norm(Qt)
    if V_NORM:
        V = _l2norm(Vt)
    ye = _generate(X, W1s, W2s, _base(slot, IETA, i_bh, NM, BH, D, HID), D, HID, BHID, ACT, PREC)
    ze = _gate_pre(ye, X, o_d, DG, GATE_RES, eta_bias)
    eta = tl.where(valid, eta_scale * _gate_map(ze, ETA_MAP), 0.0)
    if IALPHA >= 0:
        ya = _generate(X, W1s, W2s, _base(slot, IALPHA, i_bh, NM, BH, D, HID), D, HID, BHID, ACT,
                       PREC)
        za = _gate_pre(ya, X, o_d, DG, GATE_RES, alpha_bias)
        alpha = tl.where(valid, _gate_map(za, ALPHA_MAP), 1.0)
    else:
        za = tl.zeros([C], dtype=tl.float32)
        alpha = tl.full([C], 1.0, tl.float32)
    return rows, L, X, Kt, K, Vt, V, Qt, Q, ze, eta, za, alpha


@triton.jit
def _coefficients(alpha, eta, mom, rows, L, K, Q, C: tl.constexpr, HAS_MOM: tl.constexpr,
                  READ: tl.constexpr):
    """Step 2: the token-indexed coefficient matrices of the module docstring, shared by every
    memory. Returns the decay products (Tc, bc, Tp, bp), the momentum's (Mc, m0c), the weights of
    S_0 (ec, ep), of the gradients (Dgc, Dgp) and of the DGD writes (Ec, Ep); the chunk-end weights
    (bC, eC, mC, DgC, EC, MC); the read's rows (Dr, br, er, Er: the cur or prev ones); the key
    products KK, QK, the combinations NKK = -2 Dgp * KK, NQK = -2 Dr * QK, EQK = Er * QK, and
    Linv = (I + Ep * KK)^-1 for the u system."""
    o_c = tl.arange(0, C)
    Tc, bc, Tp, bp = _decays(alpha, o_c, C)
    if HAS_MOM:
        mo = tl.load(mom + rows, mask=o_c < L, other=1.0)
        Mc, m0c, _, _ = _decays(mo, o_c, C)
        ec, ep = tl.sum(Tc * m0c[None, :], 1), tl.sum(Tp * m0c[None, :], 1)
        Dgc, Dgp = _dot32(Tc, Mc) * eta[None, :], _dot32(Tp, Mc) * eta[None, :]
    else:
        Mc, m0c = tl.zeros([C, C], dtype=tl.float32), tl.full([C], 1.0, tl.float32)
        ec, ep = tl.zeros([C], dtype=tl.float32), tl.zeros([C], dtype=tl.float32)
        Dgc, Dgp = Tc * eta[None, :], Tp * eta[None, :]
    Ec, Ep = Tc * eta[None, :], Tp * eta[None, :]
    MC = _row(Mc, L - 1, o_c) * eta  # the momentum's weights of the gradients at the end
    mC = _at(m0c, L - 1, o_c)
    bC, eC = _at(bc, L - 1, o_c), _at(ec, L - 1, o_c)
    DgC, EC = _row(Dgc, L - 1, o_c), _row(Ec, L - 1, o_c)
    if READ == 1:  # M_mem after token i
        Dr, br, er, Er = Dgc, bc, ec, Ec
    else:  # before token i (and chunk_start, which reads none of them)
        Dr, br, er, Er = Dgp, bp, ep, Ep
    KK = _dot32(K, tl.trans(K))  # k_i . k_j
    QK = _dot32(Q, tl.trans(K))  # q_i . k_j
    Linv = _unit_lower_inverse(Ep * KK, C)
    return (Tc, bc, Tp, bp, Mc, m0c, ec, ep, Dgc, Dgp, Ec, Ep, bC, eC, mC, DgC, EC, MC,
            Dr, br, er, Er, KK, QK, -2.0 * Dgp * KK, -2.0 * Dr * QK, Er * QK, Linv)


@triton.jit
def _unit_lower_inverse(Lu, C: tl.constexpr):
    """(I + Lu)^-1 for a strictly lower Lu [C, C], by forward substitution (C steps)."""
    o_c = tl.arange(0, C)
    inv = tl.where(o_c[:, None] == o_c[None, :], 1.0, 0.0)
    for r in range(1, C):
        new = tl.where(o_c == r, 1.0, 0.0) - tl.sum(_row(Lu, r, o_c)[:, None] * inv, 0)
        inv = tl.where(o_c[:, None] == r, new[None, :], inv)
    return inv


# Lengths and counts are plain arguments, not specialised (one compile for every length: see the
# gated delta kernel).
@triton.jit(do_not_specialize=["T", "N", "NS", "BH", "H"])
def _smt_fwd(
    x, wq, W1s, W2s, S1s, S2s, mom, o, T, N, NS, BH, H, eta_scale, eta_bias, alpha_bias,
    D: tl.constexpr, HID: tl.constexpr, C: tl.constexpr, BHID: tl.constexpr, NM: tl.constexpr,
    IK: tl.constexpr, IV: tl.constexpr, IQ: tl.constexpr, IETA: tl.constexpr,
    IALPHA: tl.constexpr, IMEM: tl.constexpr, RES_MASK: tl.constexpr, DG: tl.constexpr,
    GATE_RES: tl.constexpr, ACT: tl.constexpr, ETA_MAP: tl.constexpr, ALPHA_MAP: tl.constexpr,
    QK_NORM: tl.constexpr, V_NORM: tl.constexpr, DGD: tl.constexpr, READ: tl.constexpr,
    HAS_MOM: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """One (b, h): every chunk in order; writes the output. W1s..S2s hold NS slots of the
    stacked state, [NS, NM, B * H, ...]: chunk n reads slot n % NS and writes its chunk-end state
    to slot (n + 1) % NS (never over a tile a thread may still read). NS = 2 keeps the latest
    state only; NS = N + 1 keeps every chunk's start for the backward. The initial state is in
    slot 0 on entry. IQ = -1: q = x W_q (a fixed projection); IALPHA = -1: no retention
    (alpha = 1). READ: 0 previous, 1 current, 2 chunk_start."""
    i_bh = tl.program_id(0)
    o_c, o_d, o_h = tl.arange(0, C), tl.arange(0, D), tl.arange(0, BHID)
    for i_n in range(N):
        slot = i_n % NS
        rows, L, X, Kt, K, Vt, V, Qt, Q, ze, eta, za, alpha = _chunk_inputs(
            x, wq, W1s, W2s, slot, i_bh, i_n, T, BH, H, eta_scale, eta_bias, alpha_bias, D, HID,
            C, BHID, NM, IK, IV, IQ, IETA, IALPHA, DG, GATE_RES, ACT, ETA_MAP, ALPHA_MAP, QK_NORM,
            V_NORM, PREC)
        valid = o_c < L
        (_, _, _, bp, _, _, _, ep, _, _, _, _, bC, eC, mC, DgC, EC, MC, Dr, br, er, Er, _, _, NKK,
         NQK, EQK, Linv) = _coefficients(alpha, eta, mom, rows, L, K, Q, C, HAS_MOM, READ)

        # -- 3. every memory: its gradient factors, its writes, M_mem's read --
        for m in range(NM):
            residual = ((RES_MASK >> m) & 1) == 1
            base = _base(slot, m, i_bh, NM, BH, D, HID)
            nxt = _base((i_n + 1) % NS, m, i_bh, NM, BH, D, HID) - base  # to the end's slot
            # pass 1: dY/2 = M(k) - M(v), which needs every hidden column
            dyh = _prediction_gap(K, V, W1s, W2s, base, residual, D, HID, BHID, ACT, PREC)
            # pass 2, tile by tile: dZ/2, u, the read, the chunk-end state
            hA = tl.zeros([C, C], dtype=tl.float32)
            yW = tl.zeros([C, D], dtype=tl.float32)
            yS = tl.zeros([C, D], dtype=tl.float32)
            for i_t in range(HID // BHID):
                o_t = i_t * BHID + o_h
                p2 = base + o_t[:, None] * D + o_d[None, :]  # [BHID, D] tiles of W2, S2
                p1 = base + o_d[:, None] * HID + o_t[None, :]  # [D, BHID] tiles of W1, S1
                w2, w1 = tl.load(W2s + p2), tl.load(W1s + p1)
                s2, s1 = tl.load(S2s + p2), tl.load(S1s + p1)
                zk = _mm(K, tl.trans(w2), PREC)
                ak, dk, _ = _act(zk, ACT)
                dzh = _mm(dyh, w1, PREC) * dk
                u = tl.zeros([C, BHID], dtype=tl.float32)
                if DGD:
                    rhs = _mm(NKK, dzh, PREC) + bp[:, None] * zk
                    if HAS_MOM:
                        rhs += ep[:, None] * _mm(K, tl.trans(s2), PREC)
                    u = _mm(Linv, rhs, PREC)
                if m == IMEM:
                    zq = _mm(Q, tl.trans(w2), PREC)
                    if READ == 2:
                        hq, _, _ = _act(zq, ACT)
                    else:
                        z = _mm(NQK, dzh, PREC) + br[:, None] * zq - _mm(EQK, u, PREC)
                        if HAS_MOM:
                            z += er[:, None] * _mm(Q, tl.trans(s2), PREC)
                        hq, _, _ = _act(z, ACT)
                        hA += _mm(hq, tl.trans(ak), PREC)
                        yS += _mm(hq, tl.trans(s1), PREC)
                    yW += _mm(hq, tl.trans(w1), PREC)
                dyhT = tl.trans(dyh)
                tl.store(W1s + nxt + p1,
                         bC * w1 + eC * s1 + _mm(dyhT, (-2.0 * DgC)[:, None] * ak, PREC))
                tl.store(W2s + nxt + p2, bC * w2 + eC * s2
                         - _mm(tl.trans(2.0 * DgC[:, None] * dzh + EC[:, None] * u), K, PREC))
                if HAS_MOM:
                    s1 = mC * s1 + _mm(dyhT, (-2.0 * MC)[:, None] * ak, PREC)
                    s2 = mC * s2 - _mm(tl.trans(2.0 * MC[:, None] * dzh), K, PREC)
                tl.store(S1s + nxt + p1, s1)  # without momentum S passes through
                tl.store(S2s + nxt + p2, s2)
            if m == IMEM:
                if READ == 2:
                    y = yW + Q
                else:
                    y = _mm(-2.0 * Dr * hA, dyh, PREC) + br[:, None] * yW + er[:, None] * yS + Q
                tl.store(o + rows[:, None] * D + o_d[None, :], y, mask=valid[:, None])
        tl.debug_barrier()


@triton.jit
def _gate_map_grad(z, g, MAP: tl.constexpr):
    """(d map / dz, (d map / dz) / map) at z, map(z) = g: the second is the log-derivative, exact
    for sigmoid as 1 - g (no division by g, which may round to 0)."""
    if MAP == 0:  # softplus: sigmoid(z) / softplus(z)
        sg = tl.sigmoid(z)
        return sg, sg / tl.maximum(g, 1e-30)
    else:
        return g * (1.0 - g), 1.0 - g


@triton.jit
def _log_decay_grad(dTc, Tc, dbc, bc, dTp, Tp, dbp, bp, o_c, C: tl.constexpr):
    """d/d(log g_l) of the products of `_decays`, given their adjoints: for each l the summed
    adjoint * value over the entries whose product contains g_l."""
    i, j = o_c[:, None], o_c[None, :]
    Gc, Gp = dTc * Tc, dTp * Tp
    gc, gp = dbc * bc, dbp * bp
    out = tl.zeros([C], dtype=tl.float32)
    for l in range(C):
        s = tl.sum(tl.sum(tl.where((j < l) & (l <= i), Gc, 0.0)
                          + tl.where((j < l) & (l < i), Gp, 0.0), 1), 0)
        s += tl.sum(tl.where(l <= o_c, gc, 0.0) + tl.where(l < o_c, gp, 0.0))
        out += tl.where(o_c == l, s, 0.0)
    return out


@triton.jit
def _generator_grad(X, dY, W1s, W2s, G1s, G2s, base, gbase, D: tl.constexpr, HID: tl.constexpr,
                    BHID: tl.constexpr, ACT: tl.constexpr, PREC: tl.constexpr):
    """Backward of Y = s(X W2^T) W1^T for one generator at `base`, given dY: adds its weight
    gradients into G1s, G2s at `gbase` and returns its part of dX."""
    o_d, o_h = tl.arange(0, D), tl.arange(0, BHID)
    dX = tl.zeros([X.shape[0], D], dtype=tl.float32)
    for i_t in range(HID // BHID):
        o_t = i_t * BHID + o_h
        p2 = o_t[:, None] * D + o_d[None, :]
        p1 = o_d[:, None] * HID + o_t[None, :]
        w2, w1 = tl.load(W2s + base + p2), tl.load(W1s + base + p1)
        a, a1, _ = _act(_mm(X, tl.trans(w2), PREC), ACT)
        dZ = _mm(dY, w1, PREC) * a1
        tl.store(G1s + gbase + p1, tl.load(G1s + gbase + p1) + _mm(tl.trans(dY), a, PREC))
        tl.store(G2s + gbase + p2, tl.load(G2s + gbase + p2) + _mm(tl.trans(dZ), X, PREC))
        dX += _mm(dZ, w2, PREC)
    return dX


@triton.jit(do_not_specialize=["T", "N", "BH", "H"])
def _smt_bwd(
    x, wq, W1s, W2s, S1s, S2s, mom, do, dx, dwq, G1s, G2s, H1s, H2s, scratch, T, N, BH, H,
    eta_scale, eta_bias, alpha_bias,
    D: tl.constexpr, HID: tl.constexpr, C: tl.constexpr, BHID: tl.constexpr, NM: tl.constexpr,
    IK: tl.constexpr, IV: tl.constexpr, IQ: tl.constexpr, IETA: tl.constexpr,
    IALPHA: tl.constexpr, IMEM: tl.constexpr, RES_MASK: tl.constexpr, DG: tl.constexpr,
    GATE_RES: tl.constexpr, ACT: tl.constexpr, ETA_MAP: tl.constexpr, ALPHA_MAP: tl.constexpr,
    QK_NORM: tl.constexpr, V_NORM: tl.constexpr, DGD: tl.constexpr, READ: tl.constexpr,
    HAS_MOM: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """One (b, h): the chunks in reverse, from the forward's chunk-start states (W1s..S2s, N + 1
    slots). G1s, G2s, H1s, H2s: the gradients of W1, W2, S1, S2 in two slots; slot N % 2 holds
    the final state's on entry, slot 0 the initial state's on exit (chunk n reads slot
    (n + 1) % 2 and writes slot n % 2). scratch: [B * H, 2, C, HID], the per-tile partial dA and
    dZ of the keys that pass B completes. dwq [B * H, D, D] gets this program's dW_q."""
    i_bh = tl.program_id(0)
    o_c, o_d, o_h = tl.arange(0, C), tl.arange(0, D), tl.arange(0, BHID)
    i_c, j_c = o_c[:, None], o_c[None, :]
    p_scr = scratch + i_bh.to(tl.int64) * 2 * C * HID
    dWq = tl.zeros([D, D], dtype=tl.float32)
    for r_n in range(N):
        i_n = N - 1 - r_n
        rows, L, X, Kt, K, Vt, V, Qt, Q, ze, eta, za, alpha = _chunk_inputs(
            x, wq, W1s, W2s, i_n, i_bh, i_n, T, BH, H, eta_scale, eta_bias, alpha_bias, D, HID,
            C, BHID, NM, IK, IV, IQ, IETA, IALPHA, DG, GATE_RES, ACT, ETA_MAP, ALPHA_MAP, QK_NORM,
            V_NORM, PREC)
        valid = o_c < L
        (Tc, bc, Tp, bp, Mc, m0c, ec, ep, Dgc, Dgp, Ec, Ep, bC, eC, mC, DgC, EC, MC, Dr, br, er, Er,
         KK, QK, NKK, NQK, EQK, Linv) = _coefficients(alpha, eta, mom, rows, L, K, Q, C, HAS_MOM,
                                                      READ)
        dO = tl.load(do + rows[:, None] * D + o_d[None, :], mask=valid[:, None], other=0.0)

        # adjoints shared by the memories (keys, values, queries; the coefficients)
        dK = tl.zeros([C, D], dtype=tl.float32)
        dV = tl.zeros([C, D], dtype=tl.float32)
        dQ = tl.zeros([C, D], dtype=tl.float32)
        dNKK = tl.zeros([C, C], dtype=tl.float32)  # of NKK = -2 Dgp * KK
        dLu = tl.zeros([C, C], dtype=tl.float32)  # of Lu = Ep * KK
        dNQK = tl.zeros([C, C], dtype=tl.float32)
        dEQK = tl.zeros([C, C], dtype=tl.float32)
        dDr = tl.zeros([C, C], dtype=tl.float32)
        dbp = tl.zeros([C], dtype=tl.float32)
        dep = tl.zeros([C], dtype=tl.float32)
        dbr = tl.zeros([C], dtype=tl.float32)
        der = tl.zeros([C], dtype=tl.float32)
        dDgC = tl.zeros([C], dtype=tl.float32)
        dEC = tl.zeros([C], dtype=tl.float32)
        dMC = tl.zeros([C], dtype=tl.float32)
        dbC = tl.zeros([C], dtype=tl.float32)  # (summed at the end: scalars as vectors)
        deC = tl.zeros([C], dtype=tl.float32)
        for m in range(NM):
            residual = ((RES_MASK >> m) & 1) == 1
            base = _base(i_n, m, i_bh, NM, BH, D, HID)
            gin = _base((i_n + 1) % 2, m, i_bh, NM, BH, D, HID)
            gout = _base(i_n % 2, m, i_bh, NM, BH, D, HID)
            # pass 0: dY/2 (as the forward)
            dyh = _prediction_gap(K, V, W1s, W2s, base, residual, D, HID, BHID, ACT, PREC)
            is_mem = m == IMEM
            dY = tl.where(is_mem, 1.0, 0.0) * dO  # the read's output gradient (M_mem only)
            dF = _mm(dY, tl.trans(dyh), PREC)  # of F = -2 Dr * hA, in y = F dY/2 + ...
            dhA = -2.0 * Dr * dF
            # pass A, tile by tile: everything but the terms through dY/2's own adjoint
            ddyh = tl.zeros([C, D], dtype=tl.float32)
            hA = tl.zeros([C, C], dtype=tl.float32)
            yW = tl.zeros([C, D], dtype=tl.float32)
            yS = tl.zeros([C, D], dtype=tl.float32)
            for i_t in range(HID // BHID):
                o_t = i_t * BHID + o_h
                p2 = o_t[:, None] * D + o_d[None, :]
                p1 = o_d[:, None] * HID + o_t[None, :]
                w2, w1 = tl.load(W2s + base + p2), tl.load(W1s + base + p1)
                s2, s1 = tl.load(S2s + base + p2), tl.load(S1s + base + p1)
                g2, g1 = tl.load(G2s + gin + p2), tl.load(G1s + gin + p1)
                h2, h1 = tl.load(H2s + gin + p2), tl.load(H1s + gin + p1)
                zk = _mm(K, tl.trans(w2), PREC)
                ak, dk1, dk2 = _act(zk, ACT)
                gk = _mm(dyh, w1, PREC)
                dzh = gk * dk1
                u = tl.zeros([C, BHID], dtype=tl.float32)
                if DGD:
                    ks2 = _mm(K, tl.trans(s2), PREC)
                    rhs = _mm(NKK, dzh, PREC) + bp[:, None] * zk
                    if HAS_MOM:
                        rhs += ep[:, None] * ks2
                    u = _mm(Linv, rhs, PREC)
                dAk = tl.zeros([C, BHID], dtype=tl.float32)
                dZk = tl.zeros([C, BHID], dtype=tl.float32)
                ddzh = tl.zeros([C, BHID], dtype=tl.float32)
                du = tl.zeros([C, BHID], dtype=tl.float32)
                dw1 = tl.zeros([D, BHID], dtype=tl.float32)
                dw2 = tl.zeros([BHID, D], dtype=tl.float32)
                ds1 = tl.zeros([D, BHID], dtype=tl.float32)
                ds2 = tl.zeros([BHID, D], dtype=tl.float32)
                # M_mem's read
                if is_mem:
                    zq = _mm(Q, tl.trans(w2), PREC)
                    if READ == 2:
                        hq, hq1, _ = _act(zq, ACT)
                        dzq = _mm(dY, w1, PREC) * hq1
                        dw1 += _mm(tl.trans(dY), hq, PREC)
                    else:
                        qs2 = _mm(Q, tl.trans(s2), PREC)
                        z = _mm(NQK, dzh, PREC) + br[:, None] * zq - _mm(EQK, u, PREC)
                        if HAS_MOM:
                            z += er[:, None] * qs2
                        hq, hq1, _ = _act(z, ACT)
                        hA += _mm(hq, tl.trans(ak), PREC)
                        yW += _mm(hq, tl.trans(w1), PREC)
                        yS += _mm(hq, tl.trans(s1), PREC)
                        dh = _mm(dhA, ak, PREC) + _mm(br[:, None] * dY, w1, PREC)
                        if HAS_MOM:
                            dh += _mm(er[:, None] * dY, s1, PREC)
                            ds1 += _mm(tl.trans(er[:, None] * dY), hq, PREC)
                        dz = dh * hq1
                        dAk += _mm(tl.trans(dhA), hq, PREC)
                        dw1 += _mm(tl.trans(br[:, None] * dY), hq, PREC)
                        ddzh += _mm(tl.trans(NQK), dz, PREC)
                        dNQK += _mm(dz, tl.trans(dzh), PREC)
                        dbr += tl.sum(dz * zq, 1)
                        dzq = br[:, None] * dz
                        if HAS_MOM:
                            der += tl.sum(dz * qs2, 1)
                            dQ += _mm(er[:, None] * dz, s2, PREC)
                            ds2 += _mm(tl.trans(er[:, None] * dz), Q, PREC)
                        du -= _mm(tl.trans(EQK), dz, PREC)
                        dEQK -= _mm(dz, tl.trans(u), PREC)
                    dQ += _mm(dzq, w2, PREC)
                    dw2 += _mm(tl.trans(dzq), Q, PREC)
                # the chunk-end state: W1' = bC W1 + eC S1 - 2 dY/2^T (DgC . A), and so on
                dw1 += bC * g1
                dw2 += bC * g2
                ds1 += eC * g1 + mC * h1
                ds2 += eC * g2 + mC * h2
                # <G, W> summed over the tile, kept in entry 0 of a vector (summed after the loop)
                dbC += tl.where(o_c == 0, _inner(g1, w1) + _inner(g2, w2), 0.0)
                deC += tl.where(o_c == 0, _inner(g1, s1) + _inner(g2, s2), 0.0)
                ddyh += _mm((-2.0 * DgC)[:, None] * ak, tl.trans(g1), PREC)
                dP = _mm(dyh, g1, PREC)
                dAk += -2.0 * DgC[:, None] * dP
                dDgC += -2.0 * tl.sum(ak * dP, 1)
                Rw = 2.0 * DgC[:, None] * dzh + EC[:, None] * u
                dR = -_mm(K, tl.trans(g2), PREC)
                dK -= _mm(Rw, g2, PREC)
                ddzh += 2.0 * DgC[:, None] * dR
                dDgC += 2.0 * tl.sum(dzh * dR, 1)
                du += EC[:, None] * dR
                dEC += tl.sum(u * dR, 1)
                if HAS_MOM:
                    ddyh += _mm((-2.0 * MC)[:, None] * ak, tl.trans(h1), PREC)
                    dPm = _mm(dyh, h1, PREC)
                    dAk += -2.0 * MC[:, None] * dPm
                    dMC += -2.0 * tl.sum(ak * dPm, 1)
                    dR2 = -_mm(K, tl.trans(h2), PREC)
                    dK -= _mm(2.0 * MC[:, None] * dzh, h2, PREC)
                    ddzh += 2.0 * MC[:, None] * dR2
                    dMC += 2.0 * tl.sum(dzh * dR2, 1)
                # u = (I + Ep * KK^T)^-1 r,  r = NKK dZ/2 + bp . Zk + ep . (K S2^T)
                if DGD:
                    drhs = _mm(tl.trans(Linv), du, PREC)
                    dLu -= _mm(drhs, tl.trans(u), PREC)
                    ddzh += _mm(tl.trans(NKK), drhs, PREC)
                    dNKK += _mm(drhs, tl.trans(dzh), PREC)
                    dbp += tl.sum(drhs * zk, 1)
                    dZk += bp[:, None] * drhs
                    if HAS_MOM:
                        dep += tl.sum(drhs * ks2, 1)
                        dK += _mm(ep[:, None] * drhs, s2, PREC)
                        ds2 += _mm(tl.trans(ep[:, None] * drhs), K, PREC)
                # dZ/2 = (dY/2 W1) . s'(Zk)
                dg = ddzh * dk1
                dZk += ddzh * gk * dk2
                ddyh += _mm(dg, tl.trans(w1), PREC)
                dw1 += _mm(tl.trans(dyh), dg, PREC)
                tl.store(G1s + gout + p1, dw1)
                tl.store(G2s + gout + p2, dw2)
                tl.store(H1s + gout + p1, ds1)
                tl.store(H2s + gout + p2, ds2)
                o_s = o_c[:, None] * HID + o_t[None, :]
                tl.store(p_scr + o_s, dAk)
                tl.store(p_scr + C * HID + o_s, dZk)
            if is_mem:
                if READ == 2:
                    dQ += dY
                else:
                    ddyh += _mm(tl.trans(-2.0 * Dr * hA), dY, PREC)
                    dDr += -2.0 * hA * dF
                    dbr += tl.sum(dY * yW, 1)
                    der += tl.sum(dY * yS, 1)
                    dQ += dY
            if residual:
                dK += ddyh
                dV -= ddyh
            tl.debug_barrier()
            # pass B: the terms through dY/2 = (s(Zk) - s(Zv)) W1^T (+ k - v)
            for i_t in range(HID // BHID):
                o_t = i_t * BHID + o_h
                p2 = o_t[:, None] * D + o_d[None, :]
                p1 = o_d[:, None] * HID + o_t[None, :]
                w2, w1 = tl.load(W2s + base + p2), tl.load(W1s + base + p1)
                ak, dk1, _ = _act(_mm(K, tl.trans(w2), PREC), ACT)
                av, dv1, _ = _act(_mm(V, tl.trans(w2), PREC), ACT)
                o_s = o_c[:, None] * HID + o_t[None, :]
                t = _mm(ddyh, w1, PREC)
                dZk = tl.load(p_scr + C * HID + o_s) + (tl.load(p_scr + o_s) + t) * dk1
                dZv = -t * dv1
                dK += _mm(dZk, w2, PREC)
                dV += _mm(dZv, w2, PREC)
                tl.store(G2s + gout + p2, tl.load(G2s + gout + p2) + _mm(tl.trans(dZk), K, PREC)
                         + _mm(tl.trans(dZv), V, PREC))
                tl.store(G1s + gout + p1, tl.load(G1s + gout + p1)
                         + _mm(tl.trans(ddyh), ak - av, PREC))
            tl.debug_barrier()

        # -- the coefficients' adjoints -> the gates' --
        dbC_s, deC_s = tl.sum(dbC), tl.sum(deC)
        end = i_c == L - 1
        dDgc = tl.where(end, dDgC[None, :], 0.0)
        dEc = tl.where(end, dEC[None, :], 0.0)
        dbc = tl.where(o_c == L - 1, dbC_s, 0.0)
        dec = tl.where(o_c == L - 1, deC_s, 0.0)
        dDgp = -2.0 * KK * dNKK
        dEp = tl.where(j_c < i_c, KK * dLu, 0.0)
        dKK = -2.0 * Dgp * dNKK + tl.where(j_c < i_c, Ep * dLu, 0.0)
        dQK = -2.0 * Dr * dNQK + Er * dEQK
        dDr += -2.0 * QK * dNQK
        dEr = QK * dEQK
        if READ == 1:
            dDgc += dDr
            dEc += dEr
            dbc += dbr
            dec += der
        elif READ == 0:
            dDgp += dDr
            dEp += dEr
            dbp += dbr
            dep += der
        if HAS_MOM:
            TMc, TMp = _dot32(Tc, Mc), _dot32(Tp, Mc)
            deta = tl.sum(dDgc * TMc + dDgp * TMp, 0) + dMC * _row(Mc, L - 1, o_c)
            dTc = _dot32(dDgc * eta[None, :], tl.trans(Mc)) + dec[:, None] * m0c[None, :]
            dTp = _dot32(dDgp * eta[None, :], tl.trans(Mc)) + dep[:, None] * m0c[None, :]
        else:
            deta = tl.sum(dDgc * Tc + dDgp * Tp, 0)
            dTc = dDgc * eta[None, :]
            dTp = dDgp * eta[None, :]
        deta += tl.sum(dEc * Tc + dEp * Tp, 0)
        dTc += dEc * eta[None, :]
        dTp += dEp * eta[None, :]
        d1, _ = _gate_map_grad(ze, _gate_map(ze, ETA_MAP), ETA_MAP)
        de_pre = tl.where(valid, deta * eta_scale * d1, 0.0)  # d(eta's pre-activation)
        # keys and queries through KK = K K^T and QK = Q K^T
        dK += _dot32(dKK + tl.trans(dKK), K) + _dot32(tl.trans(dQK), Q)
        dQ += _dot32(dQK, K)

        # -- generation's backward: into X, W_q and the generators' chunk-start weights --
        dKt, dVt, dQt = dK, dV, dQ
        if QK_NORM:
            dKt, dQt = _l2norm_grad(Kt, K, dK), _l2norm_grad(Qt, Q, dQ)
        if V_NORM:
            dVt = _l2norm_grad(Vt, V, dV)
        dX = dKt + dVt
        gk_ = _base(i_n % 2, IK, i_bh, NM, BH, D, HID)
        dX += _generator_grad(X, dKt, W1s, W2s, G1s, G2s, _base(i_n, IK, i_bh, NM, BH, D, HID),
                              gk_, D, HID, BHID, ACT, PREC)
        dX += _generator_grad(X, dVt, W1s, W2s, G1s, G2s, _base(i_n, IV, i_bh, NM, BH, D, HID),
                              _base(i_n % 2, IV, i_bh, NM, BH, D, HID), D, HID, BHID, ACT, PREC)
        if IQ >= 0:
            dX += dQt + _generator_grad(X, dQt, W1s, W2s, G1s, G2s,
                                        _base(i_n, IQ, i_bh, NM, BH, D, HID),
                                        _base(i_n % 2, IQ, i_bh, NM, BH, D, HID), D, HID, BHID,
                                        ACT, PREC)
        else:
            w_q = tl.load(wq + (i_bh % H).to(tl.int64) * D * D + o_d[:, None] * D + o_d[None, :])
            dX += _mm(dQt, tl.trans(w_q), PREC)
            dWq += _mm(tl.trans(X), dQt, PREC)
        gate_cols = tl.where(o_d[None, :] < DG, 1.0 / DG, 0.0)
        dYe = de_pre[:, None] * gate_cols
        if GATE_RES:
            dX += dYe
        dX += _generator_grad(X, dYe, W1s, W2s, G1s, G2s, _base(i_n, IETA, i_bh, NM, BH, D, HID),
                              _base(i_n % 2, IETA, i_bh, NM, BH, D, HID), D, HID, BHID, ACT, PREC)
        if IALPHA >= 0:
            dla = _log_decay_grad(dTc, Tc, dbc, bc, dTp, Tp, dbp, bp, o_c, C)
            _, ratio = _gate_map_grad(za, alpha, ALPHA_MAP)
            dYa = tl.where(valid, dla * ratio, 0.0)[:, None] * gate_cols
            if GATE_RES:
                dX += dYa
            dX += _generator_grad(X, dYa, W1s, W2s, G1s, G2s,
                                  _base(i_n, IALPHA, i_bh, NM, BH, D, HID),
                                  _base(i_n % 2, IALPHA, i_bh, NM, BH, D, HID), D, HID, BHID, ACT,
                                  PREC)
        tl.store(dx + rows[:, None] * D + o_d[None, :], dX, mask=valid[:, None])
        tl.debug_barrier()
    if IQ < 0:
        tl.store(dwq + i_bh.to(tl.int64) * D * D + o_d[:, None] * D + o_d[None, :], dWq)


class _SelfModifyingFn(torch.autograd.Function):
    """xs [B * H, T, D], wq [H, D, D] (or a placeholder), the stacked state W1, W2, S1, S2
    [NM, B * H, ...] (fp32), mom [B * H, T] or None -> o [B * H, T, D] and the final state."""

    @staticmethod
    def forward(ctx, xs, wq, W1, W2, S1, S2, mom, cfg):
        BH, T, D = xs.shape
        N = -(-T // cfg["C"])
        grad = any(ctx.needs_input_grad[:6])
        NS = N + 1 if grad else 2  # every chunk-start state for the backward, else the latest
        bufs = []
        for t in (W1, W2, S1, S2):
            b = t.new_empty(NS, *t.shape)
            b[0] = t
            bufs.append(b)
        o = torch.empty_like(xs)
        args = _launch_args(cfg)
        if T:
            _smt_fwd[(BH,)](xs, wq, *bufs, xs if mom is None else mom, o, T, N, NS, BH,
                            cfg["H"], *cfg["scalars"], **args)
        last = N % NS if T else 0
        final = tuple(b[last].clone() for b in bufs)
        if grad:
            ctx.save_for_backward(xs, wq, *bufs, mom)
            ctx.cfg, ctx.N = cfg, N
        return (o, *final)

    @staticmethod
    @once_differentiable  # a second-order pass runs the chunk form (layers.common.second_order)
    def backward(ctx, do, gW1, gW2, gS1, gS2):
        xs, wq, W1s, W2s, S1s, S2s, mom = ctx.saved_tensors
        cfg, N = ctx.cfg, ctx.N
        BH, T, D = xs.shape
        grads = []
        for g, ref in zip((gW1, gW2, gS1, gS2), (W1s, W2s, S1s, S2s)):
            b = ref.new_zeros(2, *ref.shape[1:])
            if g is not None:
                b[N % 2] = g
            grads.append(b)
        dx = torch.zeros_like(xs)
        dwq = xs.new_zeros(BH, D, D)
        scratch = xs.new_empty(BH, 2, cfg["C"], W1s.shape[-1])
        if T:
            _smt_bwd[(BH,)](xs, wq, W1s, W2s, S1s, S2s, xs if mom is None else mom,
                            do.contiguous(), dx, dwq, *grads, scratch, T, N, BH, cfg["H"],
                            *cfg["scalars"], **_launch_args(cfg))
        dW_q = None
        if ctx.needs_input_grad[1] and cfg["IQ"] < 0:
            dW_q = dwq.view(-1, cfg["H"], D, D).sum(0)
        return (dx, dW_q, *(g[0] for g in grads), None, None)


def _in_spans(xs, wq, state, mom, cfg, n_chunks):
    """recompute_step: the chunks in spans of ~sqrt(n), each span's forward kept only as its
    start state and run again in the backward (non-reentrant torch.utils.checkpoint), so the
    backward holds ~2 sqrt(n) chunk-start states instead of n + 1 (as chunk.py's spans)."""
    span = max(1, math.isqrt(n_chunks)) * cfg["C"]  # tokens: a whole number of chunks

    def run(xs_span, mom_span, *st):
        return _SelfModifyingFn.apply(xs_span, wq, *st, mom_span, cfg)

    outs = []
    for a in range(0, xs.shape[1], span):
        xs_span = xs[:, a:a + span].contiguous()
        mom_span = None if mom is None else mom[:, a:a + span].contiguous()
        # no random numbers in the kernels, so no RNG state to replay (and reading it is not
        # allowed while a CUDA graph is captured)
        o, *state = checkpoint(run, xs_span, mom_span, *state, use_reentrant=False,
                               preserve_rng_state=False)
        outs.append(o)
    return (torch.cat(outs, dim=1), *state)


def _launch_args(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k.isupper() and k != "H"} | dict(
        num_warps=cfg["warps"], num_stages=1)


# Per chunk size, the widest (padded) head the kernels have run at on a GPU (bench/RESULTS.md,
# ninth session: chunk 16 at widths 16-64; chunk 32 only at 16). Wider heads and longer chunks
# take larger tiles, which may not fit Hopper's shared memory: until a GPU run shows they do,
# "auto" runs the chunk form there ("kernel" still runs them).
VERIFIED_WIDTH = {16: 64}


def why_not(x, init_weights=None, W_q=None, chunk_size=16, adaptive_q=False, eta_bias=0.0,
            alpha_bias=0.0, eta_scale=1.0, momentum=None, retention=True, initial_state=None,
            verified_only=False, **_) -> str | None:
    """None when the kernel takes the call, else the reason (the dispatch then runs chunk.py).
    verified_only: also refuse the tile sizes no GPU run has checked yet (`VERIFIED_WIDTH`)."""
    names = memory_names(adaptive_q, retention)
    if any(torch.is_tensor(b) for b in (eta_bias, alpha_bias, eta_scale)):
        return "per-head gate scales or biases (tensors) are not supported"
    if torch.is_tensor(momentum) and momentum.requires_grad and torch.is_grad_enabled():
        return "a momentum gate that needs a gradient is not supported"
    D = x.shape[-1]
    if D > 128:
        return f"head width {D} (the kernel takes up to 128)"
    if verified_only and _padded(D) > VERIFIED_WIDTH.get(chunk_size, 0):
        return (f"head width {D} (run as {_padded(D)}) at chunk {chunk_size}: no GPU run has "
                f"checked that tile size yet; impl='kernel' runs it")
    if chunk_size not in (16, 32):
        return f"chunk {chunk_size} (the kernel takes 16 or 32)"
    src = initial_state if initial_state is not None else init_weights
    hidden = {src[n][1].shape[-2] for n in names}
    if len(hidden) != 1:
        return f"memories of different hidden widths {sorted(hidden)}"
    gates = {src[n][0].shape[-2] for n in names if n in ("eta", "alpha")}
    if len(gates) != 1 or max(gates) > D:
        return f"gate widths {sorted(gates)} (one width, at most the head width {D})"
    others = {src[n][0].shape[-2] for n in names if n not in ("eta", "alpha")}
    if others != {D}:
        return "a k, v, q or mem memory whose output is not the head width"
    return None


def chunk_self_modifying_titans_kernel(x, init_weights=None, W_q=None, chunk_size=16,
                                       adaptive_q=False, activation="silu", eta_map="softplus",
                                       alpha_map="sigmoid", eta_scale=1.0, eta_bias=0.0,
                                       alpha_bias=0.0, qk_l2norm=True, v_l2norm=False,
                                       dgd="input", momentum=None, read="previous",
                                       retention=True, initial_state=None, compile_step=False,
                                       recompute_step=False, precision=None, block_hidden=None,
                                       num_warps=None):
    """`chunk_self_modifying_titans` on the Triton kernels, values and gradients. compile_step
    concerns the chunk form and is ignored; recompute_step keeps ~2 sqrt(n) chunk-start states
    for the backward instead of n + 1, for one more forward (`_in_spans`). precision: the
    products' operand precision, "ieee" (exact fp32) or "tf32" (the CUDA default); block_hidden
    (the hidden tile) and num_warps: launch configuration (bench/self_modifying.py sweeps them)."""
    check_options(activation, eta_map, alpha_map, dgd, read)
    reason = why_not(x, init_weights, W_q, chunk_size=chunk_size, adaptive_q=adaptive_q,
                     eta_bias=eta_bias, alpha_bias=alpha_bias, eta_scale=eta_scale,
                     momentum=momentum, retention=retention, initial_state=initial_state)
    if reason is not None:
        raise ValueError(f"the self-modifying Titans kernel does not take this call: {reason}")
    B, T, H, D = x.shape
    names = memory_names(adaptive_q, retention)
    state = initial_self_mod_state(init_weights, B, names, initial_state)
    d_gate = state["eta"][0].shape[-2]
    hid = state["mem"][1].shape[-2]
    # Widths that are not powers of two are zero-padded up to one (tl.arange's tiles): exact, as
    # `_stack_state` in chunk.py: zero columns of x and zero rows/columns of the weights give zero
    # keys, values, queries and targets there, every write keeps them zero (a padded hidden unit
    # sees z = 0, s(0) = 0, and its W1 column is 0, so its dZ is 0 too), and they are cut off
    # again below (their gradients with them).
    Dp, hp = _padded(D), _padded(hid)

    def stack(i):  # [NM, B * H, ...] fp32; W1, S1 [.., Dp, hp] (the gates' rows padded too)
        ts = [state[n][i].float() for n in names]
        if i in (0, 2):
            ts = [F.pad(t, (0, hp - hid, 0, Dp - t.shape[-2])) for t in ts]
        else:
            ts = [F.pad(t, (0, Dp - D, 0, hp - hid)) for t in ts]
        return torch.stack(ts).flatten(1, 2).contiguous()

    W1s, W2s, S1s, S2s = (stack(i) for i in range(4))
    mom = momentum_gate(momentum, x)
    mom = None if mom is None else mom.detach().float().flatten(0, 1).contiguous()  # [B * H, T]
    xs = F.pad(x.float().transpose(1, 2), (0, Dp - D)).flatten(0, 1).contiguous()  # [B*H, T, Dp]
    fixed_q = W_q is not None and not adaptive_q
    wq = F.pad(W_q.float(), (0, Dp - D, 0, Dp - D)).contiguous() if fixed_q else xs.new_zeros(1)
    prec = precision or ("ieee" if _INTERPRET or not x.is_cuda else "tf32")
    cfg = dict(
        C=chunk_size, H=H, scalars=(float(eta_scale), float(eta_bias), float(alpha_bias)),
        # 8 warps: 1.3x faster than 4 at the 125M block's shape on the H100 (bench/RESULTS.md)
        warps=num_warps or (8 if x.is_cuda else 4), D=Dp, HID=hp,
        BHID=min(hp, block_hidden or (32 if Dp > 64 else 64)), NM=len(names), IK=names.index("k"),
        IV=names.index("v"), IQ=names.index("q") if adaptive_q else -1, IETA=names.index("eta"),
        IALPHA=names.index("alpha") if retention else -1, IMEM=names.index("mem"),
        RES_MASK=sum(1 << i for i, n in enumerate(names) if is_residual(*state[n][:2])),
        DG=d_gate, GATE_RES=is_residual(*state["eta"][:2]), ACT=ACTS[activation],
        ETA_MAP=GATE_MAPS[eta_map], ALPHA_MAP=GATE_MAPS[alpha_map], QK_NORM=qk_l2norm,
        V_NORM=v_l2norm, DGD=dgd == "input", READ=READS[read], HAS_MOM=mom is not None, PREC=prec,
    )
    n_chunks = -(-T // chunk_size)
    if recompute_step and torch.is_grad_enabled() and n_chunks > 1:
        o, *final = _in_spans(xs, wq, (W1s, W2s, S1s, S2s), mom, cfg, n_chunks)
    else:
        o, *final = _SelfModifyingFn.apply(xs, wq, W1s, W2s, S1s, S2s, mom, cfg)
    out = o.view(B, H, T, Dp)[..., :D].transpose(1, 2).to(x.dtype)  # [B, T, H, D]
    result = {}
    for i, n in enumerate(names):
        d, dtype = state[n][0].shape[-2], state[n][0].dtype
        W1, W2, S1, S2 = (t[i].view(B, H, *t.shape[2:]) for t in final)
        result[n] = tuple(t.to(dtype) for t in (W1[..., :d, :hid], W2[..., :hid, :D],
                                                 S1[..., :d, :hid], S2[..., :hid, :D]))
    return out, result


def _padded(n: int) -> int:
    """The tile width for a width n: the next power of two, at least 16 (tl.dot's smallest)."""
    return max(16, 1 << (n - 1).bit_length())
