"""Self-modifying Titans, chunk-parallel form (Eq. 90); equals `naive.py` exactly.

Derivation. In a chunk of C tokens (local i = 1..C; index 0 = the boundary state xi), everything
that feeds the updates comes from xi: k, v, q, eta, alpha for all C tokens are one batched forward
of the generator memories, and for every memory the targets vhat = M_xi(v) and the gradients
G_i = grad L(M_xi; k_i, vhat_i) are one batched forward/backward with rank-1 factors
G1_i = dy_i a_i^T, G2_i = dz_i k_i^T (as `mlp_l2_grad_factors`). What is left is linear:

  W1 (retention only):  W1_i = alpha_i W1_{i-1} + U1_i
  W2 (DGD, dgd="input"): W2_i = W2_{i-1}(alpha_i I - eta_i k_i k_i^T) + U2_i
                             = alpha_i W2_{i-1} - eta_i u_i k_i^T + U2_i,   u_i := W2_{i-1} k_i
  U_i = -eta_i G_i  (no momentum)  or  U_i = S_i = m_i S_{i-1} - eta_i G_i.

With Ba_ij = prod_{l=j+1..i} alpha_l, b0_i = prod_{l<=i} alpha_l (as `decay_matrix`, likewise Mo, m0
for momentum), summing the scans gives, for both layers,

  W_i = b0_i W_0 + e_i S_0 - sum_j Dg_ij G_j  [ - sum_j E_ij u_j k_j^T  for W2 ]
  no momentum: e = 0, Dg = Ba diag(eta);   momentum: e = Ba m0, Dg = (Ba Mo) diag(eta);
  E = Ba diag(eta).

The u_j are unknown but satisfy a triangular system: u_i = W2_{i-1} k_i, and the state before
token i is the same representation with rows shifted by one (row i <- row i-1; below: the
state-indexed rows :C), so with E' the shifted E:

  u_i = r_i - sum_{j<i} E'_ij (k_j . k_i) u_j,   r_i = [b0' W_0 + e' S_0 - Dg' G] k_i
  =>  (I + E' * K K^T) u = r       (unit lower triangular: the UT transform of DeltaNet).

(I + E' * KK^T) depends only on k, eta, alpha, so its inverse is shared by all memories; no
division by alpha appears, so alpha = 0 is fine. The output reads M_mem at a token-varying state;
its first layer is linear in W2, so W2_{i-1} q_i = b0' W2_0 q_i + e' S2_0 q_i - (Dg' * Q K^T) dZ
- (E' * Q K^T) u is exact (as `lowrank_apply`), the activation acts per token, and the second layer
is again linear in W1. The chunk-end state is row C, materialised once per chunk. Nothing is
approximated, so chunk == naive up to rounding.

Implementation (the loop is launch-bound: what follows keeps the operator count per chunk low
without changing the formulas above).

- All memories are stacked on a leading memory axis, [G, B * H, ...], once per call
  (`_stack_groups`: those with the same W2 shape; the gates' one-row W1 is zero-padded, exact),
  and the state is carried stacked through the chunk loop, split back into
  {name: (W1, W2, S1, S2)} only at the end: each step below runs once per chunk, not once per
  memory. Tensors shared by all
  memories (k, v, q, the coefficient matrices) are [B * H, ...] and broadcast against the stack;
  batch and heads share one axis so that products are single torch.bmm calls (`_mm`).
- State-indexed coefficients: rows s = 0..C are the states after s tokens of the chunk (row 0 the
  chunk start), so "the state before token i" (Eq. 83's read, the u system) is rows :C and the
  chunk end is row C: slices, no shifted copies. The retention products come from one
  unit-triangular solve, A = (I - subdiag(alpha))^-1 with A[s, j'] = prod_{l=j'..s-1} alpha_l:
  column 0 is b0, column j+1 the decay of token j's write (forward substitution multiplies, never
  divides, so alpha = 0 is exact). The momentum gates are inputs: their products for all chunks
  are computed before the loop.
- One first-layer product per chunk gives z for the rows [v; k; q]: the targets vhat = M(v), the
  gradient factors at k (dy/2 = W1 (s(z_k) - s(z_v)) [+ k - v], one second-layer product), and
  M_mem's read; z_k = W2_0 k is reused for u's right side.
- The gradients' factor 2 and sign ride on the coefficients (N = -2 Dg, computed once per chunk;
  scaling by 2 is exact), so dy/2 and dz/2 are carried; with no momentum Dg = E and the two W2
  terms share one coefficient: V = dz/2 + u/2.
"""

import math
from typing import NamedTuple

import torch
from torch.utils.checkpoint import checkpoint

from ..mlp_memory import activation_derivative, apply_activation
from .naive import (
    check_options, generate, initial_self_mod_state, is_residual, memory_names, momentum_gate,
)


class StepOptions(NamedTuple):
    """The options one chunk step depends on (the scales and biases may be tensors, e.g. to
    differentiate through them)."""
    names: tuple
    groups: tuple  # the names of each stack of memories (`_stack_groups`)
    out_dims: tuple  # per group, each memory's D_out (W1's rows; the stack pads to the largest)
    activation: str
    eta_map: str
    alpha_map: str
    eta_scale: float
    eta_bias: float
    alpha_bias: float
    qk_l2norm: bool
    v_l2norm: bool
    dgd: str
    read: str


def chunk_self_modifying_titans(x, init_weights=None, W_q=None, chunk_size=16, adaptive_q=False,
                                activation="silu", eta_map="softplus", alpha_map="sigmoid",
                                eta_scale=1.0, eta_bias=0.0, alpha_bias=0.0, qk_l2norm=True, v_l2norm=False,
                                dgd="input", momentum=None, read="previous", retention=True,
                                initial_state=None, compile_step=False, recompute_step=False):
    """Same arguments and result as `naive_self_modifying_titans`; only the chunk loop is
    sequential. compile_step=True runs each chunk through `torch.compile` of the step (same
    math, fused elementwise work; first-order autograd only, so not under a create_graph pass).
    recompute_step=True runs the chunks in spans of ~sqrt(n) and keeps, for the backward, only the
    memories' state at each span's start; the span runs again in the backward (non-reentrant
    torch.utils.checkpoint, which also serves higher-order gradients). Same values and gradients.
    Measured on the CPU by bench/activation_memory.py (storages alive after the forward, dim 128,
    2 blocks, 1,024 tokens): self_modifying_titans 294 -> 30 MiB, hope_two_pass 517 -> 228 MiB (what
    remains is mostly its CMS levels), Transformer++ 27 MiB; ~1.8x the step time."""
    check_options(activation, eta_map, alpha_map, dgd, read)
    B, T = x.shape[:2]
    names = memory_names(adaptive_q, retention)
    state = initial_self_mod_state(init_weights, B, names, initial_state)
    mom = momentum_gate(momentum, x)  # [B, H, T] or None
    groups = _stack_groups(state, names)
    out_dims = tuple(tuple(state[n][0].shape[-2] for n in group) for group in groups)
    opts = StepOptions(tuple(names), groups, out_dims, activation, eta_map, alpha_map, eta_scale,
                       eta_bias, alpha_bias, qk_l2norm, v_l2norm, dgd, read)
    step = compiled_chunk_step() if compile_step else chunk_step
    # the state stays stacked per group through the loop (one stack here, not one per chunk)
    stacked = tuple(_stack_state(state, group) for group in groups)
    res = tuple(_residual_mask(state, group, x) for group in groups)
    # the momentum gates are inputs, not state: every chunk's decay products at once
    moms = None if mom is None else _chunk_decays(mom.flatten(0, 1), chunk_size)
    # contiguous once, so that each chunk's [B, H, C, D] flattens to [B * H, C, D] as a view
    xs = x.transpose(1, 2).contiguous()  # [B, H, T, D]
    n_chunks = -(-T // chunk_size)

    def run(stacked, first: int, last: int):
        """Chunks first..last-1 from `stacked`: (their outputs along T, the state after them)."""
        outs = []
        for i in range(first, last):
            X = xs[:, :, i * chunk_size:(i + 1) * chunk_size]  # [B, H, C, D]
            out, stacked = step(stacked, X, None if moms is None else moms[i], W_q, res, opts)
            outs.append(out)
        return (outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)), stacked

    recompute = recompute_step and torch.is_grad_enabled()
    # Recomputed in spans of ~sqrt(n) chunks: a span keeps only the state at its start (the
    # per-chunk states are as large as the steps' intermediates), and its backward recomputes
    # its chunks once; sqrt(n) spans of sqrt(n) chunks hold the fewest states at once.
    span = max(1, math.isqrt(n_chunks)) if recompute else 1
    outputs = []
    for first in range(0, n_chunks, span):
        last = min(first + span, n_chunks)
        if recompute:
            # no random numbers in a step: nothing to replay, and reading the CUDA generator's
            # state is not allowed while a CUDA graph is being captured (--cuda-graphs)
            out, stacked = checkpoint(run, stacked, first, last, use_reentrant=False,
                                      preserve_rng_state=False)
        else:
            out, stacked = run(stacked, first, last)
        outputs.append(out)
    o = torch.cat(outputs, dim=2).transpose(1, 2) if T else x.new_zeros(x.shape)
    heads = lambda t: t.unflatten(0, x.shape[0:1] + x.shape[2:3])  # noqa: E731  [B * H] -> [B, H]
    state = {n: (heads(_rows(W1[j], d)), heads(W2[j]), heads(_rows(S1[j], d)), heads(S2[j]))
             for group, dims, (W1, W2, S1, S2) in zip(groups, out_dims, stacked)
             for j, (n, d) in enumerate(zip(group, dims))}
    return o, {n: state[n] for n in names}


_COMPILED = []


def compiled_chunk_step():
    """`chunk_step` under torch.compile, built once per process (shapes are static per model)."""
    if not _COMPILED:
        _COMPILED.append(torch.compile(chunk_step, dynamic=False))
    return _COMPILED[0]


def _stack_groups(state: dict, names) -> tuple:
    """Memories whose W2 have the same shape ([D_hid, D_in]), in name order: each group runs as
    one stack of G memories. With the default shapes that is all of them: the eta and alpha gates
    (W1 [d_gate, D_hid]) join the k, v, q and M_mem memories (W1 [D, D_hid]) with their W1 padded
    by zero rows (`_stack_state`), which halves the operators per chunk for a few more flops."""
    groups: dict = {}
    for n in names:
        groups.setdefault(tuple(state[n][1].shape), []).append(n)
    out = []
    for group in groups.values():
        d = max(state[n][0].shape[-2] for n in group)
        if any(is_residual(*state[n][:2]) and state[n][0].shape[-2] != d for n in group):
            # a residual memory cannot be padded (its skip adds x, D_in wide): same shapes only
            by_w1: dict = {}
            for n in group:
                by_w1.setdefault(tuple(state[n][0].shape), []).append(n)
            out += by_w1.values()
        else:
            out.append(group)
    return tuple(tuple(g) for g in out)


def _stack_state(state: dict, group) -> tuple:
    """(W1, W2, S1, S2) of a group's memories, stacked: [G, B * H, ...]; W1 and S1 with zero rows
    up to the group's largest D_out. Exact: a zero row of W1 outputs 0, so (for a memory without
    the residual skip, the only kind padded) its target and its output agree there, the gradient
    dy is 0 in that row, and the row's writes (dy a^T) and retention keep it 0; dz = W1^T dy only
    adds zeros."""
    d = max(state[n][0].shape[-2] for n in group)
    pad = lambda t: t if t.shape[-2] == d else torch.nn.functional.pad(  # noqa: E731
        t, (0, 0, 0, d - t.shape[-2]))
    return tuple(torch.stack([pad(state[n][i]) if i in (0, 2) else state[n][i] for n in group])
                 .flatten(1, 2) for i in range(4))


def _residual_mask(state: dict, group, x):
    """Whether the memories of a group have the residual skip (x + W1 s(W2 x), D_out == D_in):
    a bool when all or none do, else a 0/1 factor [G, 1, 1, 1] (made with fills, not from
    host data: nothing to copy to the device)."""
    flags = [is_residual(*state[n][:2]) for n in group]
    if all(flags) or not any(flags):
        return flags[0]
    return torch.stack([x.new_full((), float(f)) for f in flags]).view(-1, 1, 1, 1)


def _rows(t, d: int):
    """The first d rows of a (padded) W1 or S1."""
    return t if t.shape[-2] == d else t[..., :d, :]


def _chunk_decays(g, C: int) -> list:
    """`_decay_ext` of each chunk of gates g [..., T]: full chunks in one batched solve."""
    T = g.shape[-1]
    n = T // C
    out = list(_decay_ext(g[..., :n * C].unflatten(-1, (n, C))).unbind(-3)) if n else []
    return out + ([_decay_ext(g[..., n * C:])] if T % C else [])


def _mm(a, b):
    """a @ b for 3-d operands ([B * H, n, k], shared by the memories) and 4-d ones
    ([G, B * H, n, k], a stack), as one torch.bmm: torch.matmul on >3-d operands adds its own
    expand/reshape/view operators per call (about 16 host operators against 5 to 11 here). A
    shared operand against a stack is expanded and copied, as matmul does."""
    if a.dim() == b.dim() == 3:
        return torch.bmm(a, b)
    G = a.shape[0] if a.dim() == 4 else b.shape[0]
    # a stack's [G, B * H] merge as a view (`view`: one operator, where flatten is three);
    # a shared operand is expanded over G and copied
    a, b = (t.view(-1, *t.shape[-2:]) if t.dim() == 4
            else t.expand(G, *t.shape).reshape(-1, *t.shape[-2:]) for t in (a, b))
    out = torch.bmm(a, b)
    return out.view(G, -1, *out.shape[-2:])


def _with_skip(y, x, res):
    """y + x for the memories with the residual skip (`_residual_mask`)."""
    if isinstance(res, bool):
        return y + x if res else y
    return y + res * x


def _decay_ext(g):
    """State-indexed decay products of a chunk's gates g [..., C] -> A [..., C+1, C+1] with
    A[s, j'] = prod_{l=j'..s-1} g_l for j' <= s (1 on the diagonal), 0 above: column 0 is the
    weight of the chunk-start value in state s, column j+1 that of token j's write. A is
    (I - S)^-1 for S holding g on the subdiagonal; the unit-triangular forward substitution only
    multiplies (no division, g = 0 is exact), and it is one operator instead of a scan."""
    n = g.shape[-1] + 1
    eye = torch.eye(n, dtype=g.dtype, device=g.device)
    sub = torch.diag_embed(-g, offset=-1)  # the strictly lower part of I - S
    return torch.linalg.solve_triangular(sub, eye.expand_as(sub), upper=False, unitriangular=True)


def chunk_step(stacked: tuple, X, Am, W_q, res: tuple, opts: StepOptions):
    """One chunk of Eq. 90. stacked: per group of `opts.groups`, (W1, W2, S1, S2) at the chunk
    start, each [G, B * H, ...]; X [B, H, C, D]; Am the decay products of the chunk's momentum
    gates (`_decay_ext`, [B * H, C+1, C+1]: [m0 | Mo] in rows 1..C) or None;
    res per group, which memories have the residual skip (`_residual_mask`)
    -> (M_mem's output [B, H, C, D], the stacked state at the chunk end).

    Shared tensors ([B * H, ...]: keys, coefficients) broadcast against the memory axis, so every
    step below runs once per group, not once per memory; heads and batch share one axis so that
    the products are plain torch.bmm calls. Notation of the module docstring; coefficient
    matrices are state-indexed, [.., C+1 states, C tokens]."""
    C = X.shape[2]
    act = opts.activation
    bh = X.shape[:2]  # (B, H): `generate` takes [B, H, ...] (per-head W_q and biases)
    X3 = X.view(-1, *X.shape[2:])  # [B * H, C, D] (X is a slice of contiguous rows: a view)

    # -- generation: every generator's output at the chunk start, one forward per group --
    raw = {}
    for group, dims, r, (W1, W2, _, _) in zip(opts.groups, opts.out_dims, res, stacked):
        if group == ("mem",):
            continue
        # (a group holding M_mem also runs it on X, unused: cheaper than slicing it out)
        y = _with_skip(_mm(apply_activation(_mm(X3, W2.mT), act), W1.mT), X3, r)
        y = y.view(y.shape[0], *bh, *y.shape[2:])  # [G, B, H, C, D_out]
        # unbind: one operator (and one in the backward) for all the memories' outputs
        raw.update({n: y_n if d == y.shape[-1] else y_n[..., :d]  # without the padding
                    for y_n, n, d in zip(y.unbind(0), group, dims) if n != "mem"})
    xi = dict.fromkeys(opts.names)  # `generate` only asks which memories exist
    K, V, Q, eta, alpha = generate(xi, X, W_q, act, opts.eta_map, opts.alpha_map, opts.eta_scale,
                                   opts.eta_bias, opts.alpha_bias, opts.qk_l2norm, opts.v_l2norm,
                                   raw=raw)  # [B, H, C, D], [B, H, C]
    K, V, Q, eta, alpha = (t.reshape(-1, *t.shape[2:]) for t in (K, V, Q, eta, alpha))  # [B*H, ..]

    # -- coefficients, shared by all memories --
    # Columns: the base (W_0; S_0 with momentum) then the C tokens' writes. Rows: the state before
    # token i (rows :C: u's system and the "previous" read), after it (rows 1:, "current" read),
    # the chunk end (row C). Pieces that tile a matrix come from one split (one operator, and one
    # in the backward, against one per slice).
    A = _decay_ext(alpha)
    b, Ta = A.split([1, C], dim=-1)  # retention weights of W_0 ([.., C+1, 1]), of token j's write
    if Am is None:  # Dg = E
        N, E, e = Ta * (-2 * eta).unsqueeze(-2), None, None
    else:
        e, BaMo = _mm(Ta, Am[..., 1:, :]).split([1, C], dim=-1)  # weights of S_0 and S_t
        N, E = BaMo * (-2 * eta).unsqueeze(-2), Ta * eta.unsqueeze(-2)
    # N = -2 Dg: the coefficient of the half-gradient factors dy/2, dz/2 (below); E: the weight
    # of the DGD write -eta_j u_j k_j^T
    KQ = torch.cat([V, K, Q], dim=-2)  # rows of the first-layer forward: [v; k; q]
    KK, QK = _mm(KQ[..., C:, :], K.mT).split(C, dim=-2)  # k_i . k_j, q_i . k_j: [B*H, C, C]
    bp, b_end = b.split([C, 1], dim=-2)  # [.., C, 1], [.., 1, 1]
    ep, e_end = (None, None) if e is None else e.split([C, 1], dim=-2)
    Np, N_end = N.split([C, 1], dim=-2)
    N_end = N_end.mT  # as a column over the tokens: [B * H, C, 1]
    NKK = Np * KK
    if opts.read == "current":
        N_r, b_r = N[..., 1:, :], b[..., 1:, :]
        e_r = None if e is None else e[..., 1:, :]
    else:  # the "previous" read shares the rows of u's system
        N_r, b_r, e_r = Np, bp, ep
    NQK = N_r * QK
    if Am is not None:
        Ep, E_end = E.split([C, 1], dim=-2)
    if opts.dgd == "input":
        if Am is None:
            Lu = -0.5 * NKK  # E' * KK^T: strictly lower, (I + Lu) u = r
        else:
            Lu = Ep * KK
            EQK = (Ep if opts.read != "current" else E[..., 1:, :]) * QK
    # chunk-end weights of the writes, on the keys: [B * H, C, D]
    NK_end = N_end * K
    EK_end = None if Am is None else E_end.mT * K
    if Am is not None:
        m_end = Am[..., C:, :1]  # momentum weight of S_0 at the chunk end
        M_end = (Am[..., C, 1:] * (-2 * eta)).unsqueeze(-1)  # of the half-gradients
        MK_end = M_end * K

    out, new = None, []
    for group, r, (W1, W2, S1, S2) in zip(opts.groups, res, stacked):
        # one first layer for rows [v; k; q] at xi: targets vhat = M(v), gradient factors at k,
        # and (for M_mem) z = W2_0 q for its read
        Z = _mm(KQ, W2.mT)  # [G, B * H, 3C, D_hid]
        Av, Act, Aq = apply_activation(Z, act).split(C, dim=-2)
        _, Zk, Zq = Z.split(C, dim=-2)
        # dy/2 = M(k) - vhat = W1 (s(W2 k) - s(W2 v)) [+ k - v]: one second-layer product
        dyh = _with_skip(_mm(Act - Av, W1.mT), K - V, r)
        dzh = _mm(dyh, W1) * activation_derivative(Zk, act)  # dz/2 (s' at k's rows only)
        if opts.dgd == "input":  # u_i = W2_{i-1} k_i; rhs: W2_{i-1} k_i without the u terms
            rhs = _mm(NKK, dzh) + bp * Zk
            if Am is not None:
                rhs = rhs + _mm(ep * K, S2.mT)
            u = torch.linalg.solve_triangular(Lu, rhs, upper=False, unitriangular=True)
        if Am is None:
            # Dg = E: both W2 writes have the coefficient N = -2E, on dz/2 + u/2
            V2 = dzh if opts.dgd != "input" else torch.add(dzh, u, alpha=0.5)
            W2n = _mm(V2.mT, NK_end) + b_end * W2
        else:
            dzhT = dzh.mT  # (used twice)
            W2n = _mm(dzhT, NK_end) + b_end * W2
            W2n = W2n + e_end * S2
            if opts.dgd == "input":
                W2n = W2n - _mm(u.mT, EK_end)
        if "mem" in group:  # the read, from the chunk-start state (S1, S2 not yet replaced)
            j = group.index("mem")
            if opts.read == "chunk_start":
                out = _mm(Aq[j], W1[j].mT) + Q
            else:  # M_mem at the state before (previous) or after (current) token i
                # M_mem's part of each stacked operand: views (the stack's leading axis), which
                # costs a few operators but not the read of every memory of the group
                z = _mm(NQK, (V2 if Am is None else dzh)[j]) + b_r * Zq[j]  # W2(i) q_i
                if Am is not None:
                    z = z + _mm(e_r * Q, S2[j].mT)
                    if opts.dgd == "input":
                        z = z - _mm(EQK, u[j])
                h = apply_activation(z, act)
                y = _mm(N_r * _mm(h, Act[j].mT), dyh[j]) + b_r * _mm(h, W1[j].mT)
                if Am is not None:
                    y = y + e_r * _mm(h, S1[j].mT)
                out = y + Q  # M_mem is residual
        dyhT = dyh.mT
        W1n = _mm(dyhT, N_end * Act) + b_end * W1
        if Am is not None:
            W1n = W1n + e_end * S1
            S1 = _mm(dyhT, M_end * Act) + m_end * S1
            S2 = _mm(dzhT, MK_end) + m_end * S2
        new.append((W1n, W2n, S1, S2))
    return out.view(*bh, *out.shape[1:]), tuple(new)
