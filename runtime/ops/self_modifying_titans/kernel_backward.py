"""Self-modifying Titans, the backward kernel: the chunks in reverse, each line of the forward
(kernel_forward.py) by its adjoint. kernel.py's docstring has the algebra."""

from __future__ import annotations

import triton
import triton.language as tl

from ..titans.kernel import _act, _mm
from .kernel_forward import (
    _base, _chunk_inputs, _coefficients, _dot32, _gate_map, _inner, _prediction_gap, _row,
)


@triton.jit
def _l2norm_grad(xt, x, dx):
    """The gradient at xt of x = F.normalize(xt), given dx."""
    n = tl.maximum(tl.sqrt(tl.sum(xt * xt, 1)), 1e-12)
    return (dx - x * tl.sum(x * dx, 1)[:, None]) / n[:, None]


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
