"""Self-modifying Titans: a fused Triton forward, every chunk of a sequence in one launch.

Same contract as ``chunk_self_modifying_titans`` (chunk.py), for calls that need no gradient:
evaluation, generation and the no-grad passes. Training keeps the PyTorch chunk form; the backward
kernel is the next step (the module docstring of chunk.py has the algebra both follow).

Why. The chunk form is exact but launch-bound: one 16-token chunk of one block issues ~400
operators in the forward, so a 2,048-token sequence through 12 blocks is ~600,000 launches
(bench/RESULTS.md, "125M Hope's operator count"). Here one program per (batch, head) runs all
chunks in order, and a chunk is ~20 small matrix products on tiles held on chip.

Per chunk (state xi at its start, all memories stacked; the notation of chunk.py, token-indexed
coefficient matrices [C, C] with rows "the state before token i" (prev) or "after it" (cur)):

1. Generation from xi: y_g = s(X W2_g^T) W1_g^T (+ X) for every generator g, over hidden tiles;
   K, V, Q normalised as the options say; eta = eta_scale * map(mean y_eta + eta_bias),
   alpha = map(mean y_alpha + alpha_bias).
2. Coefficients (no division: products of the gates along masked loops, so alpha = 0 is exact):
   Tcur[i, j] = prod_{l=j+1..i} alpha_l (j <= i), bcur[i] = prod_{l<=i} alpha_l, Tprev, bprev the
   same one token earlier; with momentum m: Mcur, m0cur likewise, e = T m0,
   Dg = (T Mcur) diag(eta); without: e = 0, Dg = T diag(eta). E = T diag(eta) weighs the DGD
   writes. The chunk end is row L-1 of the cur matrices (L = the chunk's real tokens, so the
   padding of a last, shorter chunk writes nothing: its columns are past the end row).
3. Per memory, pass 1 over hidden tiles: dY/2 = W1 (s(W2 k) - s(W2 v)) (+ k - v).
   Pass 2, tile by tile: dZ/2 = (dY/2 W1) s'(W2 k); u = (I + Eprev * KK^T)^-1 r with
   r = -2 (Dgprev * KK^T) dZ/2 + bprev W2 k + eprev S2 k (the unit-lower-triangular system of
   chunk.py, its inverse built once per chunk by forward substitution); M_mem's read (previous
   or current: z = -2 (Dg * QK^T) dZ/2 + b W2 q + e S2 q - (E * QK^T) u, h = s(z),
   y = -2 (Dg * h A^T) dY/2 + b W1 h + e S1 h + q); and the tile's chunk-end state:
       W1' = bC W1 + eC S1 - 2 dY/2^T (DgC . A)      S1' = mC S1 - 2 dY/2^T (MC . A)
       W2' = bC W2 + eC S2 - (2 DgC . dZ/2 + EC . u)^T K     S2' = mC S2 - 2 (MC . dZ/2)^T K
   written to the other of two state slots.

The state lives in global memory (fp32, stacked [memories, B * H, ...], the gates' one-row W1
zero-padded to D rows as chunk.py's `_stack_state` does); a chunk reads and writes it once per
pass, which stays in L2 at the shapes used (5 memories at D = 64, hidden 128: 0.5 MB per head).
Products accumulate in fp32 with tf32 operands on CUDA (the tiles are small enough for fp32 in
shared memory) and exact fp32 in the interpreter.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

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
def _generate(X, W1s, W2s, m, i_bh, BH, NM: tl.constexpr, slot, D: tl.constexpr,
              HID: tl.constexpr, BHID: tl.constexpr, ACT: tl.constexpr, PREC: tl.constexpr):
    """s(X W2^T) W1^T of memory m at the chunk start (state slot `slot`), summed over the hidden
    tiles: [C, D]."""
    o_d, o_h = tl.arange(0, D), tl.arange(0, BHID)
    base = ((slot * NM + m) * BH + i_bh).to(tl.int64) * D * HID
    y = tl.zeros([X.shape[0], D], dtype=tl.float32)
    for i_t in range(HID // BHID):
        o_t = i_t * BHID + o_h
        w2 = tl.load(W2s + base + o_t[:, None] * D + o_d[None, :])  # [BHID, D]
        w1 = tl.load(W1s + base + o_d[:, None] * HID + o_t[None, :])  # [D, BHID]
        a, _, _ = _act(_mm(X, tl.trans(w2), PREC), ACT)
        y += _mm(a, tl.trans(w1), PREC)
    return y


@triton.jit
def _l2norm(x):
    """F.normalize along the last axis (eps 1e-12)."""
    return x / tl.maximum(tl.sqrt(tl.sum(x * x, 1)), 1e-12)[:, None]


@triton.jit
def _row(M, r, o_c):
    """Row r of a [C, C] tile, as a vector over its columns."""
    return tl.sum(tl.where(o_c[:, None] == r, M, 0.0), 0)


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
        g_l = tl.sum(tl.where(o_c == l, g, 0.0))
        Tc *= tl.where((j < l) & (l <= i), g_l, 1.0)
        Tp *= tl.where((j < l) & (l < i), g_l, 1.0)
        bc *= tl.where(l <= o_c, g_l, 1.0)
        bp *= tl.where(l < o_c, g_l, 1.0)
    return Tc, bc, Tp, bp


@triton.jit
def _matmul_cc(A, B):
    """A @ B for two [C, C] coefficient tiles, exactly in fp32 (a broadcast sum, not tl.dot:
    these products weigh every write and deserve full precision)."""
    return tl.sum(A[:, :, None] * B[None, :, :], 1)


@triton.jit(do_not_specialize=["T", "N", "BH", "H"])
def _smt_fwd(
    x, wq, W1s, W2s, S1s, S2s, mom, o, T, N, BH, H, eta_scale, eta_bias, alpha_bias,
    D: tl.constexpr, HID: tl.constexpr, C: tl.constexpr, BHID: tl.constexpr, NM: tl.constexpr,
    IK: tl.constexpr, IV: tl.constexpr, IQ: tl.constexpr, IETA: tl.constexpr,
    IALPHA: tl.constexpr, IMEM: tl.constexpr, RES_MASK: tl.constexpr, DG: tl.constexpr,
    ACT: tl.constexpr, ETA_MAP: tl.constexpr, ALPHA_MAP: tl.constexpr, QK_NORM: tl.constexpr,
    V_NORM: tl.constexpr, DGD: tl.constexpr, READ: tl.constexpr, HAS_MOM: tl.constexpr,
    PREC: tl.constexpr,
):  # fmt: skip
    """One (b, h): every chunk in order; writes the output. W1s..S2s hold two slots of the
    stacked state, [2, NM, B * H, ...]: chunk n reads slot n % 2 and writes its chunk-end state
    to the other (so no tile is overwritten while a thread may still read it); the initial
    state is in slot 0 on entry, the final one in slot N % 2 on exit. IQ = -1: q = x W_q (a fixed projection);
    IALPHA = -1: no retention (alpha = 1). READ: 0 previous, 1 current, 2 chunk_start."""
    i_bh = tl.program_id(0)
    o_c, o_d, o_h = tl.arange(0, C), tl.arange(0, D), tl.arange(0, BHID)
    i_c, j_c = o_c[:, None], o_c[None, :]
    for i_n in range(N):
        slot = i_n % 2  # the chunk-start state; its end goes to the other slot
        L = tl.minimum(C, T - i_n * C)  # the chunk's real tokens
        valid = o_c < L
        rows = (i_bh * T + i_n * C + o_c).to(tl.int64)
        X = tl.load(x + rows[:, None] * D + o_d[None, :], mask=valid[:, None], other=0.0)

        # -- 1. generation, all from the chunk-start state --
        K = _generate(X, W1s, W2s, IK, i_bh, BH, NM, slot, D, HID, BHID, ACT, PREC) + X
        V = _generate(X, W1s, W2s, IV, i_bh, BH, NM, slot, D, HID, BHID, ACT, PREC) + X
        if IQ >= 0:
            Q = _generate(X, W1s, W2s, IQ, i_bh, BH, NM, slot, D, HID, BHID, ACT, PREC) + X
        else:
            w_q = tl.load(wq + (i_bh % H).to(tl.int64) * D * D + o_d[:, None] * D + o_d[None, :])
            Q = _mm(X, w_q, PREC)
        if QK_NORM:
            K, Q = _l2norm(K), _l2norm(Q)
        if V_NORM:
            V = _l2norm(V)
        ye = _generate(X, W1s, W2s, IETA, i_bh, BH, NM, slot, D, HID, BHID, ACT, PREC)
        if DG == D:  # gate memories as wide as the tokens have the residual skip
            ye += X
        ye = tl.sum(tl.where(o_d[None, :] < DG, ye, 0.0), 1) / DG
        eta = tl.where(valid, eta_scale * _gate_map(ye + eta_bias, ETA_MAP), 0.0)
        if IALPHA >= 0:
            ya = _generate(X, W1s, W2s, IALPHA, i_bh, BH, NM, slot, D, HID, BHID, ACT, PREC)
            if DG == D:
                ya += X
            ya = tl.sum(tl.where(o_d[None, :] < DG, ya, 0.0), 1) / DG
            alpha = tl.where(valid, _gate_map(ya + alpha_bias, ALPHA_MAP), 1.0)
        else:
            alpha = tl.full([C], 1.0, tl.float32)

        # -- 2. coefficients, shared by every memory --
        Tc, bc, Tp, bp = _decays(alpha, o_c, C)
        if HAS_MOM:
            mo = tl.load(mom + rows, mask=valid, other=1.0)
            Mc, m0c, _, _ = _decays(mo, o_c, C)
            ec, ep = tl.sum(Tc * m0c[None, :], 1), tl.sum(Tp * m0c[None, :], 1)
            Dgc, Dgp = _matmul_cc(Tc, Mc) * eta[None, :], _matmul_cc(Tp, Mc) * eta[None, :]
            MC = _row(Mc, L - 1, o_c) * eta  # the momentum's weights of the gradients at the end
            mC = tl.sum(tl.where(o_c == L - 1, m0c, 0.0))
        else:
            ec, ep = tl.zeros([C], dtype=tl.float32), tl.zeros([C], dtype=tl.float32)
            Dgc, Dgp = Tc * eta[None, :], Tp * eta[None, :]
            MC = tl.zeros([C], dtype=tl.float32)
            mC = 1.0
        Ec, Ep = Tc * eta[None, :], Tp * eta[None, :]
        bC = tl.sum(tl.where(o_c == L - 1, bc, 0.0))
        eC = tl.sum(tl.where(o_c == L - 1, ec, 0.0))
        DgC, EC = _row(Dgc, L - 1, o_c), _row(Ec, L - 1, o_c)
        if READ == 1:  # M_mem after token i
            Dr, br, er, Er = Dgc, bc, ec, Ec
        else:  # before token i
            Dr, br, er, Er = Dgp, bp, ep, Ep
        KK = tl.sum(K[:, None, :] * K[None, :, :], 2)  # k_i . k_j, exact fp32
        QK = tl.sum(Q[:, None, :] * K[None, :, :], 2)  # q_i . k_j
        NKK = -2.0 * Dgp * KK
        NQK = -2.0 * Dr * QK
        EQK = Er * QK
        # (I + Eprev * KK^T)^-1 by forward substitution (unit lower triangular, C steps)
        Lu = Ep * KK
        Linv = tl.where(i_c == j_c, 1.0, 0.0)
        if DGD:
            for r in range(1, C):
                new = tl.where(o_c == r, 1.0, 0.0) - tl.sum(_row(Lu, r, o_c)[:, None] * Linv, 0)
                Linv = tl.where(i_c == r, new[None, :], Linv)

        # -- 3. every memory: its gradient factors, its writes, M_mem's read --
        for m in range(NM):
            residual = ((RES_MASK >> m) & 1) == 1
            base = ((slot * NM + m) * BH + i_bh).to(tl.int64) * D * HID
            nxt = ((1 - 2 * slot) * NM * BH).to(tl.int64) * D * HID  # to the other slot
            # pass 1: dY/2 = M(k) - M(v), which needs every hidden column
            dyh = tl.zeros([C, D], dtype=tl.float32)
            for i_t in range(HID // BHID):
                o_t = i_t * BHID + o_h
                w2 = tl.load(W2s + base + o_t[:, None] * D + o_d[None, :])
                w1 = tl.load(W1s + base + o_d[:, None] * HID + o_t[None, :])
                ak, _, _ = _act(_mm(K, tl.trans(w2), PREC), ACT)
                av, _, _ = _act(_mm(V, tl.trans(w2), PREC), ACT)
                dyh += _mm(ak - av, tl.trans(w1), PREC)
            if residual:
                dyh += K - V
            tl.debug_barrier()
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
                tl.store(W1s + nxt + p1, bC * w1 + eC * s1 + _mm(dyhT, (-2.0 * DgC)[:, None] * ak, PREC))
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


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def why_not(x, init_weights=None, W_q=None, chunk_size=16, adaptive_q=False, eta_bias=0.0,
            alpha_bias=0.0, retention=True, initial_state=None, **_) -> str | None:
    """None when the kernel takes the call, else the reason (the dispatch then runs chunk.py)."""
    names = memory_names(adaptive_q, retention)
    inputs = [x, W_q, *(t for ws in (initial_state or init_weights or {}).values() for t in ws)]
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
        return "the kernel is forward-only: a gradient is due (training runs chunk.py)"
    if torch.is_tensor(eta_bias) or torch.is_tensor(alpha_bias):
        return "per-head gate biases (tensors) are not supported"
    D = x.shape[-1]
    if not _pow2(D) or D < 16 or D > 128:
        return f"head width {D} (the kernel takes a power of two from 16 to 128)"
    if not _pow2(chunk_size) or not 16 <= chunk_size <= 64:
        return f"chunk {chunk_size} (the kernel takes 16, 32 or 64)"
    src = initial_state if initial_state is not None else init_weights
    hidden = {src[n][1].shape[-2] for n in names}
    if len(hidden) != 1:
        return f"memories of different hidden widths {sorted(hidden)}"
    (hid,) = hidden
    if not _pow2(hid) or hid < 16:
        return f"hidden width {hid} (the kernel takes a power of two from 16)"
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
                                       recompute_step=False, precision=None):
    """`chunk_self_modifying_titans` for calls without a gradient (compile_step and
    recompute_step have nothing to do here and are ignored). precision: the products' operand
    precision, "ieee" (exact fp32) or "tf32" (the CUDA default)."""
    check_options(activation, eta_map, alpha_map, dgd, read)
    kw = dict(init_weights=init_weights, W_q=W_q, chunk_size=chunk_size, adaptive_q=adaptive_q,
              eta_bias=eta_bias, alpha_bias=alpha_bias, retention=retention,
              initial_state=initial_state)
    reason = why_not(x, **kw)
    if reason is not None:
        raise ValueError(f"the self-modifying Titans kernel does not take this call: {reason}")
    B, T, H, D = x.shape
    names = memory_names(adaptive_q, retention)
    state = initial_self_mod_state(init_weights, B, names, initial_state)
    d_gate = state["eta"][0].shape[-2]

    def stack(i):  # [2 slots, NM, B * H, ...] fp32, the gates' W1 / S1 zero-padded to D rows
        ts = [state[n][i].float() for n in names]
        if i in (0, 2):
            ts = [torch.nn.functional.pad(t, (0, 0, 0, D - t.shape[-2])) for t in ts]
        s0 = torch.stack(ts).flatten(1, 2)
        return torch.stack([s0, torch.empty_like(s0)]).contiguous()

    W1s, W2s, S1s, S2s = (stack(i) for i in range(4))
    hid = W2s.shape[-2]
    mom = momentum_gate(momentum, x)
    mom = None if mom is None else mom.float().flatten(0, 1).contiguous()  # [B * H, T]
    xs = x.float().transpose(1, 2).contiguous()  # [B, H, T, D]
    o = torch.empty_like(xs)
    wq = W_q.float().contiguous() if W_q is not None and not adaptive_q else xs
    res = sum(1 << i for i, n in enumerate(names) if is_residual(*state[n][:2]))
    prec = precision or ("ieee" if _INTERPRET or not x.is_cuda else "tf32")
    C = chunk_size
    N = -(-T // C)
    bhid = min(hid, 32 if D > 64 else 64)
    if T:
        _smt_fwd[(B * H,)](
            xs, wq, W1s, W2s, S1s, S2s, mom if mom is not None else xs, o, T, N, B * H, H,
            float(eta_scale), float(eta_bias), float(alpha_bias),
            D=D, HID=hid, C=C, BHID=bhid, NM=len(names), IK=names.index("k"),
            IV=names.index("v"), IQ=names.index("q") if adaptive_q else -1,
            IETA=names.index("eta"), IALPHA=names.index("alpha") if retention else -1,
            IMEM=names.index("mem"), RES_MASK=res, DG=d_gate, ACT=ACTS[activation],
            ETA_MAP=GATE_MAPS[eta_map], ALPHA_MAP=GATE_MAPS[alpha_map], QK_NORM=qk_l2norm,
            V_NORM=v_l2norm, DGD=dgd == "input", READ=READS[read], HAS_MOM=mom is not None,
            PREC=prec, num_warps=4, num_stages=1,
        )
    out = o.transpose(1, 2).to(x.dtype)  # [B, T, H, D]
    heads = lambda t: t.view(B, H, *t.shape[1:])  # noqa: E731
    last = N % 2 if T else 0
    W1s, W2s, S1s, S2s = (t[last] for t in (W1s, W2s, S1s, S2s))
    final = {}
    for i, n in enumerate(names):
        d = state[n][0].shape[-2]
        dtype = state[n][0].dtype
        final[n] = tuple(heads(t[i][..., :d, :] if j in (0, 2) else t[i]).to(dtype)
                         for j, t in enumerate((W1s, W2s, S1s, S2s)))
    return out, final
