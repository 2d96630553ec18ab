"""Titans deep (MLP) memory: Triton kernels with the hidden width spread over programs.

Same contract, math and coefficients as kernel.py (read its docstring for the chunk form, forward
and backward; the names here are its names); only the schedule differs. kernel.py runs one
program per (batch, head) and walks every chunk inside it: 64 programs at B = H = 8, half an H100.
Here the work of a chunk runs on the grid (B*H, HID // BHID), one program per (batch, head,
hidden tile), and the chunk loop is on the host: two launches per chunk and direction.

Why the split is exact. Within a chunk every term of kernel.py's forward and backward is either
tile-local (it needs only the tile's columns of W1, S1 [Dv, BHID] and rows of W2, S2 [BHID, Dk],
or their gradients, plus token tiles) or a sum over tiles of tile-local terms. Only two such sums
feed the recurrence: Y (forward: dY = 2 (Y - V) drives every tile's state update) and ddY
(backward: dV, and the 2 ddY terms of dW1, dK and dZ~). Every other sum is linear in per-tile
pieces: the forward's O (the -(D*PA) dY term is linear in PA = sum of the tiles' Hq A^T), and the
backward's dQ, dK (including -(D*R1) K, -(D*R1)^T Q), dD (linear in PA and R1 given R2, PK), db0,
de, dbC, deC, daC, ddC, dtC. Each tile writes its partial / piece of every sum into a slot of its
own (two chunk-parity slots); a small launch per chunk (`_fwd_sums`, `_bwd_sums`; grid (B*H, C),
one token row each) adds the slots in tile order, so the results are deterministic. With SUMS =
"atomic" the pieces (not Y, ddY) are instead added atomically into the sums. The per-tile terms
are the same products as kernel.py's loop bodies; only the order of the fp32 sums changes.

Forward, chunk n (its tile's state at the chunk start in slot n of W1s..):

    _fwd_sums:  Y = sum over tiles of the partials of chunk n (+ K), dY = 2 (Y - V) (kept in X);
                O of chunk n - 1 = the sum of its pieces.
    _fwd_step:  kernel.py's per-tile body: Zq, Hq, the tile's piece of O, the chunk-end state
                tile (slot n + 1), and, with that new tile still in registers, the partial of
                the next chunk's Y: s(K' W2'^T) W1'^T (K' the next chunk's keys).

A first launch (`_fwd_y0`) writes chunk 0's partials from the initial state, a last one sums the
last chunk's O. Forward: 2 N + 2 launches.

Backward, chunks in reverse. "Start(n)" is kernel.py's pass B for chunk n on one tile, given the
tile of the chunk-end state gradient (X1, Y1, X2, Y2): every tile-local term, the tile's pieces
of the sums, its partial ddY, its partial dZ~ (a scratch) and the chunk-start state gradient
without its 2 ddY terms. Then `_bwd_sums` forms dV = -2 ddY and the sums of chunk n's complete
pieces (dQ, dD, the coefficients' gradients; dK of chunk n + 1). "Finish(n)" is pass C: add
2 ddY^T A to dW1 and dZ~^T K to dW2 (dZ~ = partial + (2 ddY W1) * s'(Z)), and dZ~ W2 to the
tile's piece of dK. Finish(n) yields the complete gradient of the state at the start of chunk n
for this tile, which is exactly what Start(n-1) needs for the same tile, so one launch
(`_bwd_step`) does Finish(n) then Start(n-1) in the same program, the gradient tile never leaving
registers. Launches: Start(N-1); for n = N-1..0: _bwd_sums(n), Finish(n) (+ Start(n-1) for
n > 0); _bwd_sums for chunk 0's dK. Backward: 2 N + 2 launches.

Hoisted out of the chunk loop (they do not depend on the state): PK = Q K^T of every chunk (one
batched fp32 matmul after the forward's token layout) and R2 = dO dY^T (one after the forward,
once dO is known); the kernels form D*PK and D*R2 from them. So are the residual terms (+Q in O,
+dO in dQ, +2 ddY in dK: PyTorch, after the loop).

Precision: as kernel.py (`_prec`): fp32 state, state gradient and accumulation; bf16 operands on
CUDA, exact fp32 in the interpreter. PK and R2 are fp32 products here (PyTorch). Memory beyond
kernel.py's: PK, R2 (B H T C 4 B each, 34 MB at the bench shape below) and the parity slots of
the partials and pieces (backward: 2 B H (hid/BHID) C (Dv + 2 Dk + C) 4 B, 0.23 GB there; the
forward's: 2 Dv instead of Dv + 2 Dk + C, 0.13 GB).

Status: FAILS ON THE GPU. On an H100 (triton 3.6.0) every GPU test and benchmark run ended in "an
illegal memory access was encountered" (bench/RESULTS.md, fourth session), while the interpreter
runs every CPU test under tests/bounds.py's check (no access leaves its tensor). Nothing
dispatches here (runtime/ops/titans/dispatch.py uses kernel.py); find the fault on a GPU
(compute-sanitizer) before timing it.

Per step launch: B H (hid/BHID) programs (1024 at B = H = 8, D = 128,
hid = 512, BHID = 32); each reads its fp32 state tiles and writes the next ones, so a chunk moves
~4 B H D hid 4 B x 2 (forward) and about twice that (backward) through HBM; each piece and
partial is written once and read once by the sums launch, each sum read once per tile.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .kernel import _act, _chunk_end_state, _mm, run_titans, supports, why_not  # noqa: F401 (shared helpers)

# ----------------------------------------------------------------------------------------------
# helpers, and the sums over tiles that the recurrence needs (Y, ddY)
# ----------------------------------------------------------------------------------------------


@triton.jit
def _opnd(x, PREC: tl.constexpr):
    """A token tile used only as a product operand: bf16 when the products round their operands
    to bf16 anyway (half the registers; the same products), else fp32."""
    if PREC == "bf16":
        return x.to(tl.bfloat16)
    else:
        return x.to(tl.float32)


@triton.jit
def _put(ptr, x, ATOMIC: tl.constexpr):
    """A tile's piece of a sum over tiles: its own slot (ATOMIC=False; PyTorch adds the slots),
    or an fp32 atomic add into the sum itself (ATOMIC=True; see SUMS)."""
    if ATOMIC:
        tl.atomic_add(ptr, x, sem="relaxed")
    else:
        tl.store(ptr, x)


@triton.jit
def _sum_row(ptr, NT: tl.constexpr, STRIDE: tl.constexpr, W: tl.constexpr):
    """The sum over j < NT of the W floats at ptr + j * STRIDE, in tile order (deterministic)."""
    o = tl.arange(0, W)
    acc = tl.load(ptr + o)
    for j in range(1, NT):
        acc += tl.load(ptr + j * STRIDE + o)
    return acc


@triton.jit
def _sum_one(ptr, NT: tl.constexpr, STRIDE: tl.constexpr):
    """The sum over j < NT of the float at ptr + j * STRIDE, in tile order."""
    acc = tl.load(ptr)
    for j in range(1, NT):
        acc += tl.load(ptr + j * STRIDE)
    return acc


@triton.jit(do_not_specialize=["i_n", "i_o"])  # one compilation for every chunk
def _fwd_sums(Yp, Op, k, v, X, O, i_n, i_o, N, NX,
              DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, NT: tl.constexpr,
              RESIDUAL: tl.constexpr, HAS_Y: tl.constexpr, HAS_O: tl.constexpr):  # fmt: skip
    """One (b, h, token row r). HAS_Y: chunk i_n's Y from the tiles' partials (Yp), then dY =
    2 (Y (+ k) - v) into X (slot i_n % NX). HAS_O: chunk i_o's O from the tiles' pieces (Op)."""
    i_bh, r = tl.program_id(0), tl.program_id(1)
    o_v = tl.arange(0, DV)
    if HAS_Y:
        y = _sum_row(Yp + ((i_bh * 2 + i_n % 2) * NT).to(tl.int64) * C * DV + r * DV, NT,
                     C * DV, DV)
        row = (i_bh * N * C + i_n * C + r).to(tl.int64)
        if RESIDUAL:  # Dk == Dv
            y += tl.load(k + row * DK + o_v).to(tl.float32)
        dy = 2 * (y - tl.load(v + row * DV + o_v).to(tl.float32))
        tl.store(X + (i_bh * NX + i_n % NX).to(tl.int64) * C * DV + r * DV + o_v, dy)
    if HAS_O:
        b_o = _sum_row(Op + ((i_bh * 2 + i_o % 2) * NT).to(tl.int64) * C * DV + r * DV, NT,
                       C * DV, DV)
        tl.store(O + (i_bh * N * C + i_o * C + r).to(tl.int64) * DV + o_v, b_o)


@triton.jit(do_not_specialize=["i_n", "i_k"])  # one compilation for every chunk
def _bwd_sums(Yp, dq_p, dk_p, dD_p, db0_p, de_p, dbC_p, deC_p, daC_p, ddC_p, dtC_p,
              dv, dq, dk, dD, db0, de, dbC, deC, daC, ddC, dtC, i_n, i_k, N,
              DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr, NT: tl.constexpr,
              HAS_N: tl.constexpr, PIECES: tl.constexpr, HAS_K: tl.constexpr):  # fmt: skip
    """One (b, h, token row r); sums over the tiles in tile order. HAS_N: chunk i_n's ddY (Yp)
    into dV = -2 ddY, and (PIECES) its pieces of dQ, dD, db0, de, ddC, dtC (row r) and of dbC,
    deC, daC (written by row 0). HAS_K: chunk i_k's pieces of dK (complete after Finish(i_k))."""
    i_bh, r = tl.program_id(0), tl.program_id(1)
    o_v, o_k, o_c = tl.arange(0, DV), tl.arange(0, DK), tl.arange(0, C)
    if HAS_N:
        sl = ((i_bh * 2 + i_n % 2) * NT).to(tl.int64)  # the chunk's first piece slot
        cf = (i_bh * N + i_n).to(tl.int64)
        row = cf * C + r
        tl.store(dv + row * DV + o_v, -2 * _sum_row(Yp + sl * C * DV + r * DV, NT, C * DV, DV))
        if PIECES:
            tl.store(dq + row * DK + o_k, _sum_row(dq_p + sl * C * DK + r * DK, NT, C * DK, DK))
            tl.store(dD + row * C + o_c, _sum_row(dD_p + sl * C * C + r * C, NT, C * C, C))
            tl.store(db0 + row, _sum_one(db0_p + sl * C + r, NT, C))
            tl.store(de + row, _sum_one(de_p + sl * C + r, NT, C))
            tl.store(ddC + row, _sum_one(ddC_p + sl * C + r, NT, C))
            tl.store(dtC + row, _sum_one(dtC_p + sl * C + r, NT, C))
            first = r == 0
            tl.store(dbC + cf, _sum_one(dbC_p + sl, NT, 1), mask=first)
            tl.store(deC + cf, _sum_one(deC_p + sl, NT, 1), mask=first)
            tl.store(daC + cf, _sum_one(daC_p + sl, NT, 1), mask=first)
    if HAS_K:
        sk = ((i_bh * 2 + i_k % 2) * NT).to(tl.int64)
        row_k = (i_bh * N * C + i_k * C + r).to(tl.int64)
        tl.store(dk + row_k * DK + o_k, _sum_row(dk_p + sk * C * DK + r * DK, NT, C * DK, DK))


# ----------------------------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------------------------


@triton.jit
def _fwd_y0(k, W1s, W2s, Yp, N, NS,
            DK: tl.constexpr, DV: tl.constexpr, HID: tl.constexpr, C: tl.constexpr,
            BHID: tl.constexpr, ACT: tl.constexpr, PREC: tl.constexpr):  # fmt: skip
    """The tile's partial of chunk 0's Y from the initial state: Yp[0] = s(K W2^T) W1^T."""
    i_bh, i_t = tl.program_id(0), tl.program_id(1)
    NT: tl.constexpr = HID // BHID
    o_c, o_k, o_v = tl.arange(0, C), tl.arange(0, DK), tl.arange(0, DV)
    o_t = i_t * BHID + tl.arange(0, BHID)
    rows = (i_bh * N * C + o_c).to(tl.int64)
    slot = (i_bh * NS).to(tl.int64)
    w1 = tl.load(W1s + slot * DV * HID + o_v[:, None] * HID + o_t[None, :])
    w2 = tl.load(W2s + slot * HID * DK + o_t[:, None] * DK + o_k[None, :])
    b_k = _opnd(tl.load(k + rows[:, None] * DK + o_k[None, :]), PREC)
    a, _, _ = _act(_mm(b_k, tl.trans(w2), PREC), ACT)
    p_y = Yp + ((i_bh * 2) * NT + i_t).to(tl.int64) * C * DV
    tl.store(p_y + o_c[:, None] * DV + o_v[None, :], _mm(a, tl.trans(w1), PREC))


@triton.jit(do_not_specialize=["i_n"])  # one compilation for every chunk
def _fwd_step(
    q, k, v, W1s, W2s, S1s, S2s, b0, e, Dm, PK, bC, eC, aC, dC, tC, Yp, Op, X, i_n, N, NS, NX,
    DK: tl.constexpr, DV: tl.constexpr, HID: tl.constexpr, C: tl.constexpr, BHID: tl.constexpr,
    RESIDUAL: tl.constexpr, ACT: tl.constexpr, PREC: tl.constexpr, NEXT: tl.constexpr,
    ATOMIC: tl.constexpr,
):  # fmt: skip
    """Chunk i_n on one (b, h, hidden tile), given dY (X, from _fwd_sums): the tile's piece of O
    (Op), the chunk-end state tile (slot i_n + 1), and (NEXT) the tile's partial of the next
    chunk's Y from that new tile."""
    i_bh, i_t = tl.program_id(0), tl.program_id(1)
    NT: tl.constexpr = HID // BHID
    o_c, o_k, o_v = tl.arange(0, C), tl.arange(0, DK), tl.arange(0, DV)
    o_t = i_t * BHID + tl.arange(0, BHID)
    causal = o_c[:, None] >= o_c[None, :]
    cv = o_c[:, None] * DV + o_v[None, :]  # a [C, DV] tile
    cc = o_c[:, None] * C + o_c[None, :]  # a [C, C] tile
    rows = (i_bh * N * C + i_n * C + o_c).to(tl.int64)
    cf = (i_bh * N + i_n).to(tl.int64)
    b_dy = tl.load(X + (i_bh * NX + i_n % NX).to(tl.int64) * C * DV + cv)
    # the tile: state at the chunk start
    slot = (i_bh * NS + i_n % NS).to(tl.int64)
    nxt = (i_bh * NS + (i_n + 1) % NS).to(tl.int64)
    q1 = o_v[:, None] * HID + o_t[None, :]  # [DV, BHID] tile of W1, S1
    q2 = o_t[:, None] * DK + o_k[None, :]  # [BHID, DK] tile of W2, S2
    w1, s1 = tl.load(W1s + slot * DV * HID + q1), tl.load(S1s + slot * DV * HID + q1)
    w2, s2 = tl.load(W2s + slot * HID * DK + q2), tl.load(S2s + slot * HID * DK + q2)
    b_k = _opnd(tl.load(k + rows[:, None] * DK + o_k[None, :]), PREC)
    b_q = _opnd(tl.load(q + rows[:, None] * DK + o_k[None, :]), PREC)
    t_dy = _opnd(b_dy, PREC)
    b_b0 = tl.load(b0 + cf * C + o_c)
    b_e = tl.load(e + cf * C + o_c)
    b_D = tl.load(Dm + cf * C * C + cc)
    m1 = tl.where(causal, b_D * tl.load(PK + cf * C * C + cc), 0.0)  # D * Q K^T
    a, sp, _ = _act(_mm(b_k, tl.trans(w2), PREC), ACT)
    dz = _mm(t_dy, w1, PREC) * sp  # [C, BHID]
    zq = (b_b0[:, None] * _mm(b_q, tl.trans(w2), PREC)
          + b_e[:, None] * _mm(b_q, tl.trans(s2), PREC) - _mm(m1, dz, PREC))
    hq, _, _ = _act(zq, ACT)
    pa = tl.where(causal, b_D * _mm(hq, tl.trans(a), PREC), 0.0)
    b_o = (b_b0[:, None] * _mm(hq, tl.trans(w1), PREC) + b_e[:, None] * _mm(hq, tl.trans(s1), PREC)
           - _mm(pa, t_dy, PREC))
    # the slot of this tile's piece of a sum: chunk-parity slots (or the sum itself: ATOMIC)
    ix = cf if ATOMIC else ((i_bh * 2 + i_n % 2) * NT + i_t).to(tl.int64)
    _put(Op + ix * C * DV + cv, b_o, ATOMIC)
    # the chunk-end state tile
    b_bc, b_ec, b_ac = tl.load(bC + cf), tl.load(eC + cf), tl.load(aC + cf)
    b_dc = tl.load(dC + cf * C + o_c)
    b_tc = tl.load(tC + cf * C + o_c)
    nw1, nw2, ns1, ns2 = _chunk_end_state(w1, w2, s1, s2, a, dz, t_dy, b_k, b_bc, b_ec, b_ac, b_dc, b_tc,
                                          PREC)
    tl.store(W1s + nxt * DV * HID + q1, nw1)
    tl.store(S1s + nxt * DV * HID + q1, ns1)
    tl.store(W2s + nxt * HID * DK + q2, nw2)
    tl.store(S2s + nxt * HID * DK + q2, ns2)
    if NEXT:  # the next chunk's Y partial, from the new tile
        k_n = _opnd(tl.load(k + (rows + C)[:, None] * DK + o_k[None, :]), PREC)
        a_n, _, _ = _act(_mm(k_n, tl.trans(nw2), PREC), ACT)
        p_yn = Yp + ((i_bh * 2 + (i_n + 1) % 2) * NT + i_t).to(tl.int64) * C * DV
        tl.store(p_yn + cv, _mm(a_n, tl.trans(nw1), PREC))


# ----------------------------------------------------------------------------------------------
# backward
# ----------------------------------------------------------------------------------------------


@triton.jit
def _bwd_finish(k, W1s, W2s, dk_p, dv, Yp, P, G1, G2, i_n, N,
                DK: tl.constexpr, DV: tl.constexpr, HID: tl.constexpr, C: tl.constexpr,
                BHID: tl.constexpr, ACT: tl.constexpr, PREC: tl.constexpr,
                ATOMIC: tl.constexpr):  # fmt: skip
    """Pass C of chunk i_n on one tile, given dV = -2 ddY (from _bwd_sums): returns the complete
    dW1, dW2 tiles of the chunk-start state (dS1, dS2 were complete already); adds dZ~ W2 to the
    tile's piece of dK."""
    i_bh, i_t = tl.program_id(0), tl.program_id(1)
    NT: tl.constexpr = HID // BHID
    o_c, o_k, o_v = tl.arange(0, C), tl.arange(0, DK), tl.arange(0, DV)
    o_t = i_t * BHID + tl.arange(0, BHID)
    ck = o_c[:, None] * DK + o_k[None, :]
    rows = (i_bh * N * C + i_n * C + o_c).to(tl.int64)
    cf = (i_bh * N + i_n).to(tl.int64)
    dyf = -tl.load(dv + rows[:, None] * DV + o_v[None, :])  # 2 ddY, the gradient of Y
    slot = (i_bh * (N + 1) + i_n).to(tl.int64)
    q1 = o_v[:, None] * HID + o_t[None, :]
    q2 = o_t[:, None] * DK + o_k[None, :]
    w1 = tl.load(W1s + slot * DV * HID + q1)
    w2 = tl.load(W2s + slot * HID * DK + q2)
    b_k = _opnd(tl.load(k + rows[:, None] * DK + o_k[None, :]), PREC)
    a, sp, _ = _act(_mm(b_k, tl.trans(w2), PREC), ACT)
    p_P = P + (i_bh * 2 + i_n % 2).to(tl.int64) * C * HID + o_c[:, None] * HID + o_t[None, :]
    dzp = tl.load(p_P) + _mm(dyf, w1, PREC) * sp  # dZ~
    if ATOMIC:
        tl.atomic_add(dk_p + cf * C * DK + ck, _mm(dzp, w2, PREC), sem="relaxed")
    else:
        p_dk = dk_p + ((i_bh * 2 + i_n % 2) * NT + i_t).to(tl.int64) * C * DK + ck
        tl.store(p_dk, tl.load(p_dk) + _mm(dzp, w2, PREC))
    gb = i_bh.to(tl.int64)
    x1 = tl.load(G1 + gb * DV * HID + q1) + _mm(tl.trans(dyf), a, PREC)
    x2 = tl.load(G2 + gb * HID * DK + q2) + _mm(tl.trans(dzp), b_k, PREC)
    return x1, x2


@triton.jit
def _bwd_start(
    q, k, do, W1s, W2s, S1s, S2s, b0, e, Dm, PK, R2, bC, eC, aC, dC, tC, X,
    dq_p, dk_p, dD_p, db0_p, de_p, dbC_p, deC_p, daC_p, ddC_p, dtC_p, Yp, P, G1, G2, H1, H2,
    x1, x2, y1, y2, i_n, N,
    DK: tl.constexpr, DV: tl.constexpr, HID: tl.constexpr, C: tl.constexpr,
    BHID: tl.constexpr, ACT: tl.constexpr, PREC: tl.constexpr, ATOMIC: tl.constexpr,
):  # fmt: skip
    """Pass B of chunk i_n on one tile, given the tile (x1, x2, y1, y2) of the gradient of the
    chunk-end state: the tile's pieces of every sum (dQ, dK, dD, db0, de, dbC, deC, daC, ddC, dtC:
    slot [chunk, tile]; partial ddY: Yp), its partial dZ~ (P) and the chunk-start state gradient
    (G1, G2: dW1, dW2 without their 2 ddY terms; H1, H2: dS1, dS2, complete)."""
    i_bh, i_t = tl.program_id(0), tl.program_id(1)
    NT: tl.constexpr = HID // BHID
    o_c, o_k, o_v = tl.arange(0, C), tl.arange(0, DK), tl.arange(0, DV)
    o_t = i_t * BHID + tl.arange(0, BHID)
    causal = o_c[:, None] >= o_c[None, :]
    cv = o_c[:, None] * DV + o_v[None, :]
    ck = o_c[:, None] * DK + o_k[None, :]
    cc = o_c[:, None] * C + o_c[None, :]
    rows = (i_bh * N * C + i_n * C + o_c).to(tl.int64)
    cf = (i_bh * N + i_n).to(tl.int64)
    # the slot of this tile's piece of a sum: chunk-parity slots (or the sum itself: ATOMIC)
    pt = cf if ATOMIC else ((i_bh * 2 + i_n % 2) * NT + i_t).to(tl.int64)
    slot = (i_bh * (N + 1) + i_n).to(tl.int64)
    q1 = o_v[:, None] * HID + o_t[None, :]
    q2 = o_t[:, None] * DK + o_k[None, :]
    # (ordered so that each tile dies early: the state gradient's and the token tiles' lifetimes
    # decide the registers; the token tiles that are only product operands are kept as such)
    gb = i_bh.to(tl.int64)
    p_c = pt * C + o_c
    w1, s1 = tl.load(W1s + slot * DV * HID + q1), tl.load(S1s + slot * DV * HID + q1)
    w2, s2 = tl.load(W2s + slot * HID * DK + q2), tl.load(S2s + slot * HID * DK + q2)
    _put(dbC_p + pt, tl.sum(tl.sum(x1 * w1, 0), 0) + tl.sum(tl.sum(x2 * w2, 1), 0), ATOMIC)
    _put(deC_p + pt, tl.sum(tl.sum(x1 * s1, 0), 0) + tl.sum(tl.sum(x2 * s2, 1), 0), ATOMIC)
    _put(daC_p + pt, tl.sum(tl.sum(y1 * s1, 0), 0) + tl.sum(tl.sum(y2 * s2, 1), 0), ATOMIC)
    b_b0 = tl.load(b0 + cf * C + o_c)
    b_e = tl.load(e + cf * C + o_c)
    b_bc, b_ec, b_ac = tl.load(bC + cf), tl.load(eC + cf), tl.load(aC + cf)
    b_dc = tl.load(dC + cf * C + o_c)
    b_tc = tl.load(tC + cf * C + o_c)
    b_D = tl.load(Dm + cf * C * C + cc)
    # the read, as the forward: Z, A, G = dY W1, dZ, Zq, Hq; and dZq
    b_k = _opnd(tl.load(k + rows[:, None] * DK + o_k[None, :]), PREC)
    a, sp, spp = _act(_mm(b_k, tl.trans(w2), PREC), ACT)
    b_dy = _opnd(tl.load(X + cf * C * DV + cv), PREC)
    g = _mm(b_dy, w1, PREC)
    dz = g * sp
    b_q = _opnd(tl.load(q + rows[:, None] * DK + o_k[None, :]), PREC)
    qw = _mm(b_q, tl.trans(w2), PREC)
    qs = _mm(b_q, tl.trans(s2), PREC)
    m1 = tl.where(causal, b_D * tl.load(PK + cf * C * C + cc), 0.0)  # D * Q K^T
    hq, spq, _ = _act(b_b0[:, None] * qw + b_e[:, None] * qs - _mm(m1, dz, PREC), ACT)
    b_do = _opnd(tl.load(do + rows[:, None] * DV + o_v[None, :]), PREC)
    dow = _mm(b_do, w1, PREC)
    dos = _mm(b_do, s1, PREC)
    r2 = tl.where(causal, b_D * tl.load(R2 + cf * C * C + cc), 0.0)  # D * dO dY^T
    dzq = (b_b0[:, None] * dow + b_e[:, None] * dos - _mm(r2, a, PREC)) * spq
    _put(db0_p + p_c, tl.sum(hq * dow, 1) + tl.sum(dzq * qw, 1), ATOMIC)
    _put(de_p + p_c, tl.sum(hq * dos, 1) + tl.sum(dzq * qs, 1), ATOMIC)
    # the momenta's gradients are complete here; (b.X)^T Y = X^T (b.Y)
    nds1 = b_ec * x1 + b_ac * y1 + _mm(tl.trans(b_do), hq * b_e[:, None], PREC)
    tl.store(H1 + gb * DV * HID + q1, nds1)
    nds2 = b_ec * x2 + b_ac * y2 + _mm(tl.trans(dzq * b_e[:, None]), b_q, PREC)
    tl.store(H2 + gb * HID * DK + q2, nds2)
    # this tile's piece of R1 = dZq dZ^T; dQ
    r1 = _mm(dzq, tl.trans(dz), PREC)
    dr1 = tl.where(causal, b_D * r1, 0.0)
    b_dq = (b_b0[:, None] * _mm(dzq, w2, PREC) + b_e[:, None] * _mm(dzq, s2, PREC)
            - _mm(dr1, b_k, PREC))
    _put(dq_p + pt * C * DK + ck, b_dq, ATOMIC)
    # the keys' side through W2, S2: ddZ, dK (dZ~ W2 is added by the finish), dW2
    kx2 = _mm(b_k, tl.trans(x2), PREC)
    ky2 = _mm(b_k, tl.trans(y2), PREC)
    ddz = -_mm(tl.trans(m1), dzq, PREC) - b_dc[:, None] * kx2 - b_tc[:, None] * ky2
    b_ddc = -tl.sum(dz * kx2, 1)
    b_dtc = -tl.sum(dz * ky2, 1)
    b_dk = (-_mm(dz * b_dc[:, None], x2, PREC) - _mm(dz * b_tc[:, None], y2, PREC)
            - _mm(tl.trans(dr1), b_q, PREC))
    _put(dk_p + pt * C * DK + ck, b_dk, ATOMIC)
    ndw2 = b_bc * x2 + _mm(tl.trans(dzq * b_b0[:, None]), b_q, PREC)
    tl.store(G2 + gb * HID * DK + q2, ndw2)
    # the values' side through W1, S1: dA, ddY's piece, dZ~'s piece, dW1
    dg = ddz * sp
    dyx1 = _mm(b_dy, x1, PREC)
    dyy1 = _mm(b_dy, y1, PREC)
    _put(ddC_p + p_c, b_ddc - tl.sum(a * dyx1, 1), ATOMIC)
    _put(dtC_p + p_c, b_dtc - tl.sum(a * dyy1, 1), ATOMIC)
    da = -_mm(tl.trans(r2), hq, PREC) - b_dc[:, None] * dyx1 - b_tc[:, None] * dyy1
    tl.store(P + (i_bh * 2 + i_n % 2).to(tl.int64) * C * HID + o_c[:, None] * HID + o_t[None, :],
             da * sp + ddz * g * spp)  # dZ~ without (2 ddY W1) * s'(Z)
    pa = _mm(hq, tl.trans(a), PREC)  # this tile's piece of PA = Hq A^T
    b_ddy = (_mm(dg, tl.trans(w1), PREC) - _mm(a * b_dc[:, None], tl.trans(x1), PREC)
             - _mm(a * b_tc[:, None], tl.trans(y1), PREC)
             - _mm(tl.trans(tl.where(causal, b_D * pa, 0.0)), b_do, PREC))
    tl.store(Yp + ((i_bh * 2 + i_n % 2) * NT + i_t).to(tl.int64) * C * DV + cv, b_ddy)
    ndw1 = (b_bc * x1 + _mm(tl.trans(b_dy), dg, PREC)
            + _mm(tl.trans(b_do), hq * b_b0[:, None], PREC))
    tl.store(G1 + gb * DV * HID + q1, ndw1)
    # dD = -(PA * R2) - (PK * R1), linear in this tile's PA and R1 (R2, PK unmasked)
    b_dD = -(pa * tl.load(R2 + cf * C * C + cc)) - tl.load(PK + cf * C * C + cc) * r1
    _put(dD_p + pt * C * C + cc, tl.where(causal, b_dD, 0.0), ATOMIC)


@triton.jit(do_not_specialize=["i_n"])  # one compilation for every chunk
def _bwd_step(
    q, k, do, W1s, W2s, S1s, S2s, b0, e, Dm, PK, R2, bC, eC, aC, dC, tC, X,
    dq_p, dk_p, dD_p, db0_p, de_p, dbC_p, deC_p, daC_p, ddC_p, dtC_p, dv, Yp, P, G1, G2, H1, H2,
    i_n, N,
    DK: tl.constexpr, DV: tl.constexpr, HID: tl.constexpr, C: tl.constexpr, BHID: tl.constexpr,
    ACT: tl.constexpr, PREC: tl.constexpr, FIN: tl.constexpr, START: tl.constexpr,
    ATOMIC: tl.constexpr,
):  # fmt: skip
    """One (b, h, hidden tile): FIN finishes chunk i_n (pass C), START runs pass B of chunk
    i_n - 1 (of i_n itself without FIN) with the gradient tile FIN produced. The state gradient
    tiles live in G1, G2 (dW1, dW2) and H1, H2 (dS1, dS2): one slot per (b, h), each tile read
    and written only by its own program; the last launch (FIN only) leaves the complete gradient
    of the initial state there."""
    i_bh, i_t = tl.program_id(0), tl.program_id(1)
    o_k, o_v = tl.arange(0, DK), tl.arange(0, DV)
    o_t = i_t * BHID + tl.arange(0, BHID)
    q1 = o_v[:, None] * HID + o_t[None, :]
    q2 = o_t[:, None] * DK + o_k[None, :]
    gb = i_bh.to(tl.int64)
    y1 = tl.load(H1 + gb * DV * HID + q1)
    y2 = tl.load(H2 + gb * HID * DK + q2)
    if FIN:
        x1, x2 = _bwd_finish(k, W1s, W2s, dk_p, dv, Yp, P, G1, G2, i_n, N, DK, DV, HID, C, BHID,
                             ACT, PREC, ATOMIC)
        i_s = i_n - 1
    else:
        x1 = tl.load(G1 + gb * DV * HID + q1)
        x2 = tl.load(G2 + gb * HID * DK + q2)
        i_s = i_n
    if START:
        tl.debug_barrier()  # G1.. are overwritten below: every thread has read its elements
        _bwd_start(q, k, do, W1s, W2s, S1s, S2s, b0, e, Dm, PK, R2, bC, eC, aC, dC, tC, X,
                   dq_p, dk_p, dD_p, db0_p, de_p, dbC_p, deC_p, daC_p, ddC_p, dtC_p, Yp, P,
                   G1, G2, H1, H2, x1, x2, y1, y2, i_s, N, DK, DV, HID, C, BHID, ACT, PREC,
                   ATOMIC)
    else:
        tl.debug_barrier()
        tl.store(G1 + gb * DV * HID + q1, x1)
        tl.store(G2 + gb * HID * DK + q2, x2)


# ----------------------------------------------------------------------------------------------
# launch configuration and autograd
# ----------------------------------------------------------------------------------------------


def _cfg(DK: int, DV: int, HID: int, bhid: int | None = None) -> dict:
    """Hidden tiles of 32 columns by default (1024 programs at B = H = 8, hid = 512), 8 warps from
    D = 64. ptxas (sm_90a, bf16 products) at D = 128, hid = 512: BHID = 32 spills 0.4 KB per
    thread in the forward, ~3 KB in the backward (BHID = 64: 2.5 KB, 8 KB; kernel.py: 14 KB); at
    D = 64, BHID = 32: 0, ~2.7 KB. Shared memory <= 100 KB. Not timed: it fails on the GPU (module
    docstring)."""
    bh = bhid or min(32, HID)
    if HID % bh or bh < 16 or bh & (bh - 1):
        raise ValueError(f"block_hidden={bh}: a power of two >= 16 that divides hid={HID}")
    warps = WARPS or (8 if max(DK, DV) >= 64 else 4)
    return dict(BHID=bh, num_warps=warps, num_stages=1)


# Warps per program: None is `_cfg`'s rule; a number forces it. The GPU fault appears at the real
# shapes (8 warps) and not at the small ones (4 warps, clean under memcheck: bench/RESULTS.md,
# sixth device session), so the `sanitize_split_real` stage of bench/gpu_session.sh runs both.
WARPS = None


# How the sums over hidden tiles that the recurrence does not need (O; dQ, dK, dD and the
# coefficients' gradients) are formed: "tiles" (default): each tile writes its piece to a slot of
# its own and the next sums launch adds the slots in tile order (deterministic); "atomic": fp32
# atomic adds into the sums (fewer writes and reads, no slots; the order of the additions, so
# the last bits, vary from run to run). Y and ddY, which the recurrence needs, are summed in
# tile order either way. Read at each forward; its backward uses the same.
SUMS = "tiles"


def _per_chunk(x, N, C):
    """[B, H, N*C, D] -> [B, H, N, C, D] fp32."""
    return x.float().unflatten(2, (N, C))


class ChunkTitansSplitFunction(torch.autograd.Function):
    """ChunkTitansFunction's contract (kernel.py): same inputs, outputs and gradients."""

    @staticmethod
    def forward(ctx, q, k, v, W1, W2, S1, S2, b0, e, Dm, bC, eC, aC, dC, tC, C, residual, act,
                bhid, prec):
        ctx.set_materialize_grads(False)
        B, H, TP, DK = q.shape
        DV, HID = v.shape[-1], W1.shape[-1]
        N = TP // C
        cfg = _cfg(DK, DV, HID, bhid)
        NT = HID // cfg["BHID"]
        dev, f32 = q.device, torch.float32
        if SUMS not in ("tiles", "atomic"):
            raise ValueError(f"kernel_split.SUMS is 'tiles' or 'atomic', not {SUMS!r}")
        atomic = SUMS == "atomic"
        keep = any(ctx.needs_input_grad[:15])
        NS, NX = (N + 1, N) if keep else (2, 1)
        states = [torch.empty(B, H, NS, *w.shape[2:], device=dev, dtype=f32)
                  for w in (W1, W2, S1, S2)]
        for buf, w in zip(states, (W1, W2, S1, S2)):
            buf[:, :, 0] = w
        qc, kc = _per_chunk(q, N, C), _per_chunk(k, N, C)
        PK = (qc @ kc.transpose(-1, -2)).contiguous()  # Q K^T of every chunk (state-free)
        Yp = torch.empty(B * H, 2, NT, C, DV, device=dev, dtype=f32)  # Y partials (parity)
        X = torch.empty(B, H, NX, C, DV, device=dev, dtype=f32)  # dY per chunk
        O = (torch.zeros if atomic else torch.empty)(B, H, TP, DV, device=dev, dtype=f32)
        Op = O if atomic else torch.empty(B * H, 2, NT, C, DV, device=dev, dtype=f32)  # pieces
        grid, rows = (B * H, NT), (B * H, C)
        meta = dict(DK=DK, DV=DV, HID=HID, C=C, BHID=cfg["BHID"], ACT=act, PREC=prec,
                    num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
        sums = dict(DK=DK, DV=DV, C=C, NT=NT, RESIDUAL=residual, num_warps=1)
        _fwd_y0[grid](k, states[0], states[1], Yp, N, NS, **meta)
        for i_n in range(N):
            # Y of chunk i_n; O of chunk i_n - 1 (its pieces are complete)
            _fwd_sums[rows](Yp, Op, k, v, X, O, i_n, max(i_n - 1, 0), N, NX, HAS_Y=True,
                            HAS_O=not atomic and i_n > 0, **sums)
            _fwd_step[grid](q, k, v, *states, b0, e, Dm, PK, bC, eC, aC, dC, tC, Yp, Op, X, i_n,
                            N, NS, NX, RESIDUAL=residual, NEXT=i_n + 1 < N, ATOMIC=atomic,
                            **meta)
        if not atomic:  # O of the last chunk
            _fwd_sums[rows](Yp, Op, k, v, X, O, 0, N - 1, N, NX, HAS_Y=False, HAS_O=True, **sums)
        if residual:
            O += q
        if keep:
            ctx.save_for_backward(q, k, v, *states, b0, e, Dm, bC, eC, aC, dC, tC, PK, X)
        ctx.meta = (C, residual, act, bhid, prec, atomic)
        return (O.to(q.dtype), *(s[:, :, N % NS].clone() for s in states))

    @staticmethod
    def backward(ctx, do, dW1f, dW2f, dS1f, dS2f):
        q, k, v, W1s, W2s, S1s, S2s, b0, e, Dm, bC, eC, aC, dC, tC, PK, X = ctx.saved_tensors
        C, residual, act, bhid, prec, atomic = ctx.meta
        B, H, TP, DK = q.shape
        DV, HID = v.shape[-1], W1s.shape[-1]
        N = TP // C
        cfg = _cfg(DK, DV, HID, bhid)
        NT = HID // cfg["BHID"]
        dev, f32 = q.device, torch.float32
        do = torch.zeros(B, H, TP, DV, device=dev, dtype=q.dtype) if do is None else do
        do = do.contiguous()
        # the state gradient: G1, G2 (dW1, dW2), H1, H2 (dS1, dS2), one slot per (b, h)
        gbufs = []
        for s, dfin in zip((W1s, W2s, S1s, S2s), (dW1f, dW2f, dS1f, dS2f)):
            buf = torch.empty(B, H, *s.shape[3:], device=dev, dtype=f32)
            if dfin is None:
                buf.zero_()
            else:
                buf.copy_(dfin)
            gbufs.append(buf)
        G1, G2, H1, H2 = gbufs
        R2 = (_per_chunk(do, N, C) @ X.transpose(-1, -2)).contiguous()  # dO dY^T (state-free)
        # the sums (zeros where the kernels add into them) and, unless atomic, the tiles' pieces
        # of each in two chunk-parity slots
        new = torch.zeros if atomic else torch.empty
        dv = torch.empty(B, H, TP, DV, device=dev, dtype=f32)
        dq, dk = (new(B, H, TP, DK, device=dev, dtype=f32) for _ in range(2))
        dD = new(B, H, N, C, C, device=dev, dtype=f32)
        db0, de, ddC, dtC = (new(B, H, N, C, device=dev, dtype=f32) for _ in range(4))
        dbC, deC, daC = (new(B, H, N, device=dev, dtype=f32) for _ in range(3))
        finals = (dq, dk, dD, db0, de, dbC, deC, daC, ddC, dtC)
        if atomic:
            pieces = finals
        else:
            shapes = [(C, DK), (C, DK), (C, C)] + [(C,)] * 2 + [()] * 3 + [(C,)] * 2
            pieces = tuple(torch.empty(B * H, 2, NT, *sh, device=dev, dtype=f32) for sh in shapes)
        Yp = torch.empty(B * H, 2, NT, C, DV, device=dev, dtype=f32)  # partial ddY (parity)
        P = torch.empty(B * H, 2, C, HID, device=dev, dtype=f32)  # partial dZ~ (parity)
        grid, rows = (B * H, NT), (B * H, C)
        args = (q, k, do, W1s, W2s, S1s, S2s, b0, e, Dm, PK, R2, bC, eC, aC, dC, tC, X, *pieces,
                dv, Yp, P, G1, G2, H1, H2)
        meta = dict(DK=DK, DV=DV, HID=HID, C=C, BHID=cfg["BHID"], ACT=act, PREC=prec,
                    ATOMIC=atomic, num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
        sums = dict(DK=DK, DV=DV, C=C, NT=NT, PIECES=not atomic, num_warps=1)
        s_args = (Yp, *pieces, dv, *finals)
        _bwd_step[grid](*args, N - 1, N, FIN=False, START=True, **meta)
        for i_n in range(N - 1, -1, -1):
            # chunk i_n: ddY and its complete pieces; dK of chunk i_n + 1 (finished last launch)
            _bwd_sums[rows](*s_args, i_n, min(i_n + 1, N - 1), N, HAS_N=True,
                            HAS_K=not atomic and i_n + 1 < N, **sums)
            _bwd_step[grid](*args, i_n, N, FIN=True, START=i_n > 0, **meta)
        if not atomic:  # dK of chunk 0
            _bwd_sums[rows](*s_args, 0, 0, N, HAS_N=False, HAS_K=True, **sums)
        if residual:
            dq += do
            dk -= dv
        grads_c = [db0, de, dD, dbC, deC, daC, ddC, dtC]
        return (dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), G1, G2, H1, H2, *grads_c,
                None, None, None, None, None)


def chunk_titans_split_kernel(q, k, v, eta, theta, alpha, W1_init=None, W2_init=None,
                              chunk_size=16, memory="mlp", activation="silu", read="current",
                              initial_state=None, block_hidden=None, precision=None):
    """Triton Titans memory, one program per (batch, head, hidden tile) and two launches per chunk;
    the arguments and result of `chunk_titans_kernel` (kernel.py), hence of `chunk_titans`
    (read="current"). block_hidden: the hidden tile (default min(32, hid)), a power of two >= 16
    dividing hid; precision: as kernel.py."""
    return run_titans(ChunkTitansSplitFunction, q, k, v, eta, theta, alpha, W1_init, W2_init,
                      chunk_size, memory, activation, read, initial_state, block_hidden, precision)


__all__ = ["ChunkTitansSplitFunction", "chunk_titans_split_kernel", "supports", "why_not"]
