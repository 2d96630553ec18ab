"""Self-modifying Titans, the forward kernel and the per-chunk pieces it shares with the backward
(kernel_backward.py): generation, coefficients, the prediction gap. kernel.py's docstring has the
algebra; kernel.py launches both kernels."""

from __future__ import annotations

import triton
import triton.language as tl

from ..titans.kernel import _act, _mm


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
        # (the unused ones are `u_`, not `_`: the loops below rebind `_` to tiles of other
        # shapes, which Triton 3.7 refuses for a name bound before a loop)
        (u_, u_, u_, bp, u_, u_, u_, ep, u_, u_, u_, u_, bC, eC, mC, DgC, EC, MC, Dr, br, er, Er,
         u_, u_, NKK, NQK, EQK, Linv) = _coefficients(alpha, eta, mom, rows, L, K, Q, C, HAS_MOM,
                                                      READ)

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
