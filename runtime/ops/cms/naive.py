"""Continuum Memory System (CMS), token by token: the definition (nested-learning.md section 5).

A CMS is k MLP levels; level l has a chunk size C_l (its update period in tokens). Each level is
the residual MLP of Eq. 89/91 with per-sequence fast weights (every sequence of the batch owns
its copy, leading [B]):

    MLP_l(x) = x + W1_l s(W2_l x)            W1_l: [B, D, D_hid]   W2_l: [B, D_hid, D]

Variants (the transfer choice of section 5):

    sequential   y_t = MLP_k(... MLP_1(x_t))                                  (Eq. 70, 73)
    independent  y_t = sum_l agg_l MLP_l(x_t), agg a learnable weight vector   (Eq. 74)
    nested       the chain of Eq. 70, and every level is reset to its meta-learned init theta_0
                 at each chunk boundary of the next slower level               (Eq. 72)

Update (Eq. 71): theta_l is constant inside its chunk and changes only at its boundaries,

    theta_l <- theta_l - sum_{t in chunk} eta_t^(l) grad_{theta_l} L_t,

where L_t is the caller's per-token TASK loss (not an associative loss), evaluated with every
level's weights as they are at token t (faster levels may have changed inside a slow chunk).
The caller passes it as `token_loss(y_chunk [B, n, D], start, end) -> [B, n]`, with start/end
the token indices of y_chunk inside this call's x; L_t must depend on y_t only.

Named options (the paper is ambiguous here, nested-learning.md section 11; defaults first):

- signal = "exact" | "two_pass" | "local": where the error signal grad_y L comes from.
  "exact": the gradient of L_t through the rest of the CMS chain at the weights in force at
  token t: what Eq. 71 defines. "two_pass": an approximation that saves calls of the (expensive)
  loss: for each chunk of the slowest level, a first pass with all weights frozen at the chunk
  start gives u_t = dL_t/dy_t; the second pass then backpropagates u_t (held fixed) through the
  chain at the current weights. Equal to "exact" for a single level. A call that starts inside
  a slowest chunk starts its first pass there, so a stream cut into calls equals one call only
  when the cuts fall on the slowest level's boundaries. "local": a level-local
  associative objective (each level regresses its own targets, no backprop through the chain);
  not implemented by this op, since its targets come from outside the CMS (see the Titans op).
- stop_grad_updates = False: the outer (meta) gradient flows through the writes (create-graph
  semantics, the meta-learning of Eq. 72-73 and DESIGN.md). True makes every write a constant
  for the outer gradient (lr included): theta_0 is then learned through the reads only.
- variant = "sequential" (see above). For "nested", the forward is the chain of Eq. 70 (Eq. 72
  fixes only the transfer), "next slower level" means the smallest strictly larger chunk size,
  and at a shared boundary the reset wins over the faster level's own pending update. theta_0 is
  the op's `params` (meta-learned by the outer optimizer); Eq. 72's other reading, where the
  slower level itself learns the faster level's init in context, is not implemented.
- chunk boundaries are absolute stream positions: a level updates after token p (counted from
  the stream start, 1-based) when p % C_l == 0. The state carries the position and the pending
  (partial-chunk) gradient sums, so a stream cut into calls equals one call.
- chunk sizes are in tokens (the paper's C^(l) = max_i C^(i) / f_l: the caller converts
  frequencies). Sizes that are not multiples of each other are allowed here; the spec checker
  rejects them.
- lr eta^(l): a float or a tensor broadcastable to [B, T] per level (Eq. 71's eta_t).
- the error term f of Eq. 71 is the plain gradient (no momentum or preconditioner); norms around
  the MLPs are omitted, as in Eq. 70; activation s = "silu" | "gelu".
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from ..mlp_memory import activation_and_derivative

VARIANTS = ("sequential", "independent", "nested")
SIGNALS = ("exact", "two_pass", "local")

TokenLoss = Callable[[Tensor, int, int], Tensor]  # (y [B, n, D], start, end) -> [B, n]


class CMSState(NamedTuple):
    weights: tuple  # per level (W1 [B, D, D_hid], W2 [B, D_hid, D]): weights in force now
    pending: tuple  # per level (G1, G2): sum of eta_t * grad since the level's last boundary
    pos: int  # tokens of the stream seen so far


def check_cms_args(params, chunk_sizes, lr, variant, signal) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown CMS variant {variant!r}; expected one of {VARIANTS}")
    if signal == "local":
        raise NotImplementedError(
            "signal='local' (a level-local associative objective) needs targets from outside the "
            "CMS; use 'exact' (the paper's definition) or 'two_pass'"
        )
    if signal not in SIGNALS:
        raise ValueError(f"unknown CMS signal {signal!r}; expected one of {SIGNALS}")
    if not len(params) == len(chunk_sizes) == len(lr):
        raise ValueError(f"{len(params)} levels of params, {len(chunk_sizes)} chunk sizes and "
                         f"{len(lr)} learning rates: need one of each per level")
    if any(int(c) < 1 for c in chunk_sizes):
        raise ValueError(f"chunk sizes must be >= 1 token, got {tuple(chunk_sizes)}")


def initial_cms_state(params, batch: int, initial_state: Optional[CMSState] = None) -> CMSState:
    """The given state, or the meta-learned init theta_0 broadcast to every sequence, with nothing
    pending at position 0. `expand` keeps the graph to the shared init (its gradient sums over B)."""
    if initial_state is not None:
        return initial_state
    weights = tuple(tuple(per_sequence(w, batch) for w in level) for level in params)
    pending = tuple(tuple(torch.zeros_like(w) for w in level) for level in weights)
    return CMSState(weights, pending, 0)


def per_sequence(w: Tensor, batch: int) -> Tensor:
    """[D_out, D_in] (shared init) or [B, D_out, D_in] -> [B, D_out, D_in]."""
    return w.expand(batch, *w.shape[-2:])


def level_lrs(lr, batch: int, T: int, like: Tensor) -> list:
    """One [B, T] learning-rate tensor per level from floats or broadcastable tensors."""
    # floats become fills, not tensors made from host data (no host-to-device copy: capturable)
    return [e.to(like.device, like.dtype).expand(batch, T) if torch.is_tensor(e) else like.new_full((batch, T), float(e))
            for e in lr]


def default_agg(k: int, like: Tensor) -> Tensor:
    return torch.full((k,), 1.0 / k, dtype=like.dtype, device=like.device)


def reset_periods(chunk_sizes: Sequence[int], variant: str) -> list:
    """For "nested": the chunk size of each level's next slower level (None for the slowest, and
    for every level of the other variants)."""
    if variant != "nested":
        return [None] * len(chunk_sizes)
    return [min((c for c in chunk_sizes if c > mine), default=None) for mine in chunk_sizes]


def apply_boundaries(weights, pending, params, p: int, chunk_sizes, resets):
    """Schedule after stream token p (1-based count): apply each level's pending update at its
    boundary (Eq. 71), then, for "nested", reset levels at their slower level's boundary (Eq. 72).
    weights, pending: lists of [W1, W2] per level, replaced (never modified in place)."""
    for l, C in enumerate(chunk_sizes):
        if p % C == 0:
            weights[l] = [w - g for w, g in zip(weights[l], pending[l])]
            pending[l] = [torch.zeros_like(g) for g in pending[l]]
    for l, period in enumerate(resets):
        if period is not None and p % period == 0:
            B = weights[l][0].shape[0]
            weights[l] = [per_sequence(w0, B) for w0 in params[l]]
            pending[l] = [torch.zeros_like(g) for g in pending[l]]
    return weights, pending


def mlp_level(W1: Tensor, W2: Tensor, h: Tensor, activation: str) -> Tensor:
    """x + W1 s(W2 x) for h [B, n, D] with per-sequence weights -> [B, n, D]."""
    a, _ = activation_and_derivative(h @ W2.transpose(1, 2), activation)  # [B, n, D_hid]
    return h + a @ W1.transpose(1, 2)


def cms_read(weights, x: Tensor, variant: str, agg: Tensor, activation: str) -> Tensor:
    """The CMS output at fixed weights, x [B, n, D] -> [B, n, D]."""
    if variant == "independent":
        return sum(agg[l] * mlp_level(W1, W2, x, activation) for l, (W1, W2) in enumerate(weights))
    h = x
    for W1, W2 in weights:
        h = mlp_level(W1, W2, h, activation)
    return h


def naive_cms(
    x: Tensor,  # [B, T, D]
    token_loss: TokenLoss,
    params: Sequence,  # per level (W1_0 [(B,) D, D_hid], W2_0 [(B,) D_hid, D]): meta-learned init
    chunk_sizes: Sequence[int],
    lr: Sequence,  # per level: float or tensor broadcastable to [B, T]
    variant: str = "sequential",
    signal: str = "exact",
    agg_weights: Optional[Tensor] = None,  # [k], "independent" only; default uniform 1/k
    activation: str = "silu",
    initial_state: Optional[CMSState] = None,
    stop_grad_updates: bool = False,
    debug: bool = False,
):
    """Token loop: forward token t with the current weights, take grad_theta L_t with autograd,
    add eta_t times it to each level's pending sum, apply the schedule after the token.

    Returns (y [B, T, D], final CMSState), plus, with debug=True, the weights in force at every
    token: per level (W1 [B, T, D, D_hid], W2 [B, T, D_hid, D]).
    """
    check_cms_args(params, chunk_sizes, lr, variant, signal)
    B, T, _ = x.shape
    state = initial_cms_state(params, B, initial_state)
    weights = [list(level) for level in state.weights]
    pending = [list(level) for level in state.pending]
    lrs = level_lrs(lr, B, T, x)
    agg = default_agg(len(params), x) if agg_weights is None else agg_weights
    resets = reset_periods(chunk_sizes, variant)
    slowest = max(chunk_sizes)
    create_graph = not stop_grad_updates

    outputs, trajectory, u = [], [], {}
    with torch.enable_grad():  # the inner update needs gradients even under the caller's no_grad
        for t in range(T):
            p = state.pos + t  # stream position of token t (0-based)
            # Autograd needs the weights in a graph; without outer gradients they are plain leaves.
            weights = [[w if w.requires_grad else w.detach().requires_grad_() for w in level]
                       for level in weights]
            if signal == "two_pass" and (t == 0 or p % slowest == 0):
                # First pass over the rest of this slowest chunk with the weights frozen here.
                end = min(T, t + slowest - p % slowest)
                u = {}
                for j in range(t, end):
                    y_j = cms_read(weights, x[:, j:j + 1], variant, agg, activation)  # [B, 1, D]
                    (u[j],) = torch.autograd.grad(token_loss(y_j, j, j + 1).sum(), y_j,
                                                  create_graph=create_graph)

            # Read through fresh aliases: Eq. 71 wants the partial gradient of L_t at the weights
            # read at token t. A slower level's weights also reach L_t through a faster level's
            # earlier writes (those depend on them under create_graph); the aliases leave that
            # path (the meta-gradient) to the outer backward.
            reads = [[w.view_as(w) for w in level] for level in weights]
            y_t = cms_read(reads, x[:, t:t + 1], variant, agg, activation)  # [B, 1, D]
            if signal == "exact":
                inner = token_loss(y_t, t, t + 1).sum()
            else:  # two_pass: the first pass's error signal, held fixed, through today's weights
                inner = (y_t * u[t]).sum()
            flat = [w for level in reads for w in level]
            # Summing over the batch is harmless: sequence b's loss only reads its own weights.
            grads = torch.autograd.grad(inner, flat, create_graph=create_graph, retain_graph=True)
            for l in range(len(weights)):
                eta = lrs[l][:, t, None, None]  # [B, 1, 1]
                for i in range(2):
                    step = eta * grads[2 * l + i]
                    pending[l][i] = pending[l][i] + (step.detach() if stop_grad_updates else step)

            outputs.append(y_t)
            if debug:
                trajectory.append([[w.detach() for w in level] for level in weights])
            weights, pending = apply_boundaries(weights, pending, params, p + 1, chunk_sizes, resets)

    y = torch.cat(outputs, dim=1) if outputs else x.new_zeros(x.shape)  # [B, T, D]
    final = CMSState(tuple(map(tuple, weights)), tuple(map(tuple, pending)), state.pos + T)
    if not debug:
        return y, final
    traj = tuple(tuple(torch.stack([step[l][i] for step in trajectory], dim=1) for i in range(2))
                 for l in range(len(params)))
    return y, final, traj
