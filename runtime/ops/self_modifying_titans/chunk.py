"""Self-modifying Titans, chunk-parallel form (Eq. 90); equals `naive.py` exactly.

Derivation. In a chunk of C tokens (local i = 1..C; index 0 = the boundary state xi), everything
that feeds the updates comes from xi: k, v, q, eta, alpha for all C tokens are one batched forward
of the generator memories, and for every memory the targets vhat = M_xi(v) and the gradients
G_i = grad L(M_xi; k_i, vhat_i) are one batched forward/backward with rank-1 factors
G1_i = dy_i a_i^T, G2_i = dz_i k_i^T (`mlp_l2_grad_factors`). What is left is linear:

  W1 (retention only):  W1_i = alpha_i W1_{i-1} + U1_i
  W2 (DGD, dgd="input"): W2_i = W2_{i-1}(alpha_i I - eta_i k_i k_i^T) + U2_i
                             = alpha_i W2_{i-1} - eta_i u_i k_i^T + U2_i,   u_i := W2_{i-1} k_i
  U_i = -eta_i G_i  (no momentum)  or  U_i = S_i = m_i S_{i-1} - eta_i G_i.

With Ba_ij = prod_{l=j+1..i} alpha_l, b0_i = prod_{l<=i} alpha_l (`decay_matrix`, likewise Mo, m0
for momentum), summing the scans gives, for both layers,

  W_i = b0_i W_0 + e_i S_0 - sum_j Dg_ij G_j  [ - sum_j E_ij u_j k_j^T  for W2 ]
  no momentum: e = 0, Dg = Ba diag(eta);   momentum: e = Ba m0, Dg = (Ba Mo) diag(eta);
  E = Ba diag(eta).

The u_j are unknown but satisfy a triangular system: u_i = W2_{i-1} k_i, and the state before
token i is the same representation with rows shifted by one (row i <- row i-1, `shift_base`,
`shift_term`), so with E' the shifted E:

  u_i = r_i - sum_{j<i} E'_ij (k_j . k_i) u_j,   r_i = [b0' W_0 + e' S_0 - Dg' G] k_i
  =>  (I + E' * K K^T) u = r       (unit lower triangular: the UT transform of DeltaNet).

(I + E' * KK^T) depends only on k, eta, alpha, so its inverse is shared by all memories; no
division by alpha appears, so alpha = 0 is fine. The output reads M_mem at a token-varying state;
its first layer is linear in W2, so W2_{i-1} q_i = b0' W2_0 q_i + e' S2_0 q_i - (Dg' * Q K^T) dZ
- (E' * Q K^T) u is exact (`lowrank_apply`), the activation acts per token, and the second layer
is again linear in W1. The chunk-end state is row C, materialised once per chunk. Nothing is
approximated, so chunk == naive up to rounding.
"""

from typing import NamedTuple

import torch
from torch.utils.checkpoint import checkpoint

from ..mlp_memory import (
    decay_matrix, lowrank_apply, lowrank_row, mlp_forward, mlp_l2_grad_factors, mlp_read_lowrank,
    shift_base, shift_term,
)
from .naive import (
    check_options, generate, initial_self_mod_state, is_residual, memory_names, momentum_gate,
)


def _shifted(rep):
    """Representation of the state before each token: bases (b0 -> 1, e -> 0 at row 0), terms."""
    bases, terms = rep
    first = [1.0] + [0.0] * (len(bases) - 1)  # W_0 enters the chunk-start state with weight 1
    return ([(shift_base(c, f), M) for (c, M), f in zip(bases, first)],
            [(shift_term(Coef), V, K) for Coef, V, K in terms])


class StepOptions(NamedTuple):
    """The options one chunk step depends on (the scales and biases may be tensors, e.g. to
    differentiate through them)."""
    names: tuple
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
    recompute_step=True keeps only each chunk step's inputs for the backward (the memories' state
    at the chunk start, the chunk's inputs) and runs the step again there (non-reentrant
    torch.utils.checkpoint, which also serves higher-order gradients). Same values and gradients;
    the step's intermediates, [C, hidden] and [C, C] per memory, head and chunk, are most of a Hope
    block's activation memory. On the CPU, hope_two_pass at dim 128, 2 blocks and 256 tokens kept
    234 MiB for the backward, 177 MiB of it in the self-modifying layers (Transformer++: 8 MiB);
    with recomputed steps 60 MiB, plus at most 31 MiB of step inputs, for ~1.7x the step time."""
    check_options(activation, eta_map, alpha_map, dgd, read)
    B, T = x.shape[:2]
    names = memory_names(adaptive_q, retention)
    state = initial_self_mod_state(init_weights, B, names, initial_state)
    mom = momentum_gate(momentum, x)  # [B, H, T] or None
    opts = StepOptions(tuple(names), activation, eta_map, alpha_map, eta_scale, eta_bias,
                       alpha_bias, qk_l2norm, v_l2norm, dgd, read)
    step = compiled_chunk_step() if compile_step else chunk_step
    xs = x.transpose(1, 2)  # [B, H, T, D]
    outputs = []
    for s in range(0, T, chunk_size):
        X = xs[:, :, s:s + chunk_size]  # [B, H, C, D]
        mom_c = None if mom is None else mom[:, :, s:s + chunk_size]
        if recompute_step and torch.is_grad_enabled():
            # no random numbers in a step: nothing to replay, and reading the CUDA generator's
            # state is not allowed while a CUDA graph is being captured (--cuda-graphs)
            out, state = checkpoint(step, state, X, mom_c, W_q, opts, use_reentrant=False,
                                    preserve_rng_state=False)
        else:
            out, state = step(state, X, mom_c, W_q, opts)
        outputs.append(out)
    o = torch.cat(outputs, dim=2).transpose(1, 2) if T else x.new_zeros(x.shape)
    return o, state


_COMPILED = []


def compiled_chunk_step():
    """`chunk_step` under torch.compile, built once per process (shapes are static per model)."""
    if not _COMPILED:
        _COMPILED.append(torch.compile(chunk_step, dynamic=False))
    return _COMPILED[0]


def _same_shape_groups(state: dict, names) -> list:
    """Memories whose weights have the same shapes, in name order: each group runs as one batch
    of G * H heads (the k, v, q and M_mem memories; the eta and alpha gates)."""
    groups: dict = {}
    for n in names:
        W1, W2 = state[n][:2]
        groups.setdefault((tuple(W1.shape), tuple(W2.shape)), []).append(n)
    return list(groups.values())


def _stack(ts):
    """Memories side by side on the head axis: G tensors [B, H, ...] -> [B, G * H, ...]."""
    return ts[0] if len(ts) == 1 else torch.cat(ts, dim=1)


def _tile(t, g: int):
    """A per-head tensor [B, H, ...] shared by a group of g memories -> [B, g * H, ...]."""
    return t if g == 1 or t is None else t.repeat(1, g, *([1] * (t.dim() - 2)))


def _part(t, j: int, H: int):
    """Memory j's heads of a stacked tensor."""
    return t[:, j * H:(j + 1) * H]


def chunk_step(state: dict, X, mom, W_q, opts: StepOptions):
    """One chunk of Eq. 90: state {memory: (W1, W2, S1, S2)} at the boundary, X [B, H, C, D], mom
    the chunk's momentum gates [B, H, C] or None -> (M_mem's output [B, H, C, D], next state).

    Memories of the same shapes run stacked on the head axis (one batched matmul per step for
    all of them instead of one each: the rule is the same, only the weights differ), which
    divides the kernel launches of this launch-bound loop by about the group size."""
    C, H = X.shape[2], X.shape[1]
    state = dict(state)
    groups = _same_shape_groups(state, opts.names)

    raw = {}
    for group in groups:
        gens = [n for n in group if n != "mem"]
        if not gens:
            continue
        W1 = _stack([state[n][0] for n in gens])
        W2 = _stack([state[n][1] for n in gens])
        out = mlp_forward(W1, W2, _tile(X, len(gens)), opts.activation, is_residual(W1, W2))
        raw.update({n: _part(out, j, H) for j, n in enumerate(gens)})
    xi = {n: state[n][:2] for n in opts.names}
    K, V, Q, eta, alpha = generate(xi, X, W_q, opts.activation, opts.eta_map, opts.alpha_map,
                                   opts.eta_scale, opts.eta_bias, opts.alpha_bias, opts.qk_l2norm,
                                   opts.v_l2norm, raw=raw)  # [B,H,C,D], [B,H,C]

    Ba, b0 = decay_matrix(alpha)  # retention scan: [B, H, C, C], [B, H, C]
    E = Ba * eta.unsqueeze(-2)  # weight of the write -eta_j (.) k_j^T in W_i
    e = m0 = Mo_eta = None
    if mom is None:
        Dg = E
    else:
        Mo, m0 = decay_matrix(mom)  # momentum scan
        Dg = (Ba @ Mo) * eta.unsqueeze(-2)  # weight of G_j in W_i through the momentum
        e = (Ba @ m0.unsqueeze(-1)).squeeze(-1)  # weight of S_0 in W_i
        Mo_eta = Mo * eta.unsqueeze(-2)  # weight of G_j in S_i
    solve_u = None
    if opts.dgd == "input":
        eye = torch.eye(C, dtype=X.dtype, device=X.device)
        L = shift_term(E) * (K @ K.transpose(-1, -2))  # strictly lower: [B, H, C, C]
        solve_u = torch.linalg.solve_triangular(eye + L, eye.expand_as(L), upper=False,
                                                unitriangular=True)  # (I + L)^-1

    out = None
    for group in groups:
        g = len(group)
        W1, W2, S1, S2 = (_stack([state[n][i] for n in group]) for i in range(4))
        Kg, Vg, b0g, Dgg, Eg, eg, m0g, Mo_etag, solve_g = (
            _tile(t, g) for t in (K, V, b0, Dg, E, e, m0, Mo_eta, solve_u))
        res = is_residual(W1, W2)
        vhat = mlp_forward(W1, W2, Vg, opts.activation, res)  # self-generated targets at xi
        dY, Act, dZ = mlp_l2_grad_factors(W1, W2, Kg, vhat, opts.activation, res)
        b1, b2 = [(b0g, W1)], [(b0g, W2)]
        if mom is not None:
            b1, b2 = b1 + [(eg, S1)], b2 + [(eg, S2)]
        w1_rep = (b1, [(-Dgg, dY, Act)])
        w2_rep = (b2, [(-Dgg, dZ, Kg)])
        if opts.dgd == "input":
            u = solve_g @ lowrank_apply(Kg, *_shifted(w2_rep))  # u_i = W2_{i-1} k_i
            w2_rep = (b2, w2_rep[1] + [(-Eg, u, Kg)])
        if "mem" in group:
            out = _read_mem(group.index("mem"), H, Q, w1_rep, w2_rep, opts)
        if mom is not None:
            S1 = lowrank_row([(m0g, S1)], [(-Mo_etag, dY, Act)], -1)
            S2 = lowrank_row([(m0g, S2)], [(-Mo_etag, dZ, Kg)], -1)
        new = (lowrank_row(*w1_rep, -1), lowrank_row(*w2_rep, -1), S1, S2)
        for j, n in enumerate(group):
            state[n] = tuple(t if g == 1 else _part(t, j, H) for t in new)
    return out, state


def _read_mem(j: int, H: int, Q, w1_rep, w2_rep, opts: StepOptions):
    """M_mem's output for the chunk's queries; M_mem is memory j of its stacked group."""
    pick = lambda rep: ([(_part(c, j, H), _part(M, j, H)) for c, M in rep[0]],  # noqa: E731
                        [(_part(c, j, H), _part(V, j, H), _part(K, j, H)) for c, V, K in rep[1]])
    w1_rep, w2_rep = pick(w1_rep), pick(w2_rep)
    if opts.read == "chunk_start":
        W1, W2 = w1_rep[0][0][1], w2_rep[0][0][1]  # the first base's matrix: the chunk start
        return mlp_forward(W1, W2, Q, opts.activation, True)
    reps = (w1_rep, w2_rep) if opts.read == "current" else (_shifted(w1_rep), _shifted(w2_rep))
    return mlp_read_lowrank(Q, *reps, opts.activation, True)
