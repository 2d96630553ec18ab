"""Continuum Memory System, chunk-parallel form: one batched forward and backward per segment.

Same definition and options as naive.py (read its docstring for the equations and the choices).

Why this is exact. Cut the call at every boundary of every level (and of the nested resets,
which fall on boundaries too): inside such a segment no level changes, so every token of the
segment is read with the same weights, and the sum over the segment of the per-token gradients
eta_t * grad_theta L_t is one backward of sum_t eta_t L_t through the segment at those weights.
Summing over the segment changes nothing else: L_t depends on y_t only, and sequence b's loss
only reads sequence b's weights, so the batch sum still yields each sequence's own gradient.
Only the segment loop is sequential (segments are as long as the fastest level's chunk).

The backward through the residual MLP chain is written out, with g = dL/dy at the chain output
and, per level (input h, z = W2 h, a = s(z)):

    dL/dW1 = sum_t eta_t g_t a_t^T                       [B, D, D_hid]
    dL/dz  = (W1^T g) * s'(z)                            [B, n, D_hid]
    dL/dW2 = sum_t eta_t dz_t h_t^T                      [B, D_hid, D]
    dL/dh  = g + W2^T dz                                 (the residual passes g through)

(Eq. 29-31: each layer maps its input to its error signal.) eta_t scales a token's contribution to
the weight gradient of its own level only, so per-token, per-level learning rates cost nothing.
These are ordinary differentiable torch ops, so with stop_grad_updates=False autograd
differentiates through them (s'' included) and the outer gradient reaches theta_0 through every
write. Only dL/dy comes from autograd, because the task loss is the caller's function.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ..mlp_memory import activation_and_derivative
from .naive import (CMSState, TokenLoss, apply_boundaries, check_cms_args, cms_read, default_agg,
                    initial_cms_state, level_lrs, reset_periods)


def segment_cuts(pos: int, T: int, chunk_sizes: Sequence[int]) -> list:
    """Call-relative cut points 0 = c_0 < ... < c_m = T: every e with (pos + e) % C == 0."""
    cuts = {0, T}
    for C in chunk_sizes:
        first = (-pos) % C or C  # first e > 0 with pos + e on a boundary of C
        cuts.update(range(first, T, C))
    return sorted(cuts)


def forward_levels(weights, x: Tensor, variant: str, agg: Tensor, activation: str):
    """CMS forward at fixed weights, keeping what the backward needs.

    x [B, n, D] -> y [B, n, D], per level (h_in [B, n, D], a [B, n, D_hid], s'(z) [B, n, D_hid]).
    """
    saved, h, y = [], x, 0
    for l, (W1, W2) in enumerate(weights):
        inp = x if variant == "independent" else h
        a, da = activation_and_derivative(inp @ W2.transpose(1, 2), activation)  # z = W2 h
        out = inp + a @ W1.transpose(1, 2)  # [B, n, D]
        saved.append((inp, a, da))
        if variant == "independent":
            y = y + agg[l] * out
        else:
            h = out
    return (y if variant == "independent" else h), saved


def level_backward(W1: Tensor, W2: Tensor, saved, g: Tensor, eta: Tensor, need_input_grad: bool):
    """Weight gradients of one residual MLP level (eta-weighted sums over the segment's tokens)
    and, if asked, the error signal at its input. g [B, n, D], eta [B, n]."""
    h, a, da = saved
    dz = (g @ W1) * da  # [B, n, D_hid]
    ge, dze = g * eta[..., None], dz * eta[..., None]
    G1 = ge.transpose(1, 2) @ a  # [B, D, D_hid]
    G2 = dze.transpose(1, 2) @ h  # [B, D_hid, D]
    g_in = g + dz @ W2 if need_input_grad else None  # [B, n, D]
    return (G1, G2), g_in


def chain_backward(weights, saved, g: Tensor, etas, variant: str, agg: Tensor) -> list:
    """Per level (G1, G2): the eta-weighted gradient sums of the segment, from g = dL/dy."""
    k = len(weights)
    grads = [None] * k
    if variant == "independent":  # every level reads x; its output is scaled by agg_l
        for l in range(k):
            grads[l], _ = level_backward(*weights[l], saved[l], agg[l] * g, etas[l], False)
        return grads
    for l in reversed(range(k)):  # chain: back through level l+1 before level l
        grads[l], g = level_backward(*weights[l], saved[l], g, etas[l], l > 0)
    return grads


def output_error(y: Tensor, token_loss: TokenLoss, start: int, end: int, create_graph: bool):
    """dL_t/dy_t for the tokens start..end-1 of the call, y [B, n, D] -> [B, n, D]."""
    if not (create_graph and y.requires_grad):
        y = y.detach().requires_grad_()  # the write is a constant for the outer gradient anyway
    with torch.enable_grad():
        (g,) = torch.autograd.grad(token_loss(y, start, end).sum(), y, create_graph=create_graph)
    return g


def chunk_cms(
    x: Tensor,  # [B, T, D]
    token_loss: TokenLoss,
    params: Sequence,  # per level (W1_0 [(B,) D, D_hid], W2_0 [(B,) D_hid, D])
    chunk_sizes: Sequence[int],
    lr: Sequence,  # per level: float or tensor broadcastable to [B, T]
    variant: str = "sequential",
    signal: str = "exact",
    agg_weights: Optional[Tensor] = None,
    activation: str = "silu",
    initial_state: Optional[CMSState] = None,
    stop_grad_updates: bool = False,
    debug: bool = False,
):
    """Segment loop with batched forward/backward; same signature and results as `naive_cms`."""
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

    cuts = segment_cuts(state.pos, T, chunk_sizes)
    outputs, trajectory = [], []
    u, u_start = None, 0
    for s, e in zip(cuts[:-1], cuts[1:]):
        if signal == "two_pass" and (s == 0 or (state.pos + s) % slowest == 0):
            # First pass over the rest of this slowest chunk, all weights frozen at its start.
            end = min(T, s + slowest - (state.pos + s) % slowest)
            y_first = cms_read(weights, x[:, s:end], variant, agg, activation)
            u, u_start = output_error(y_first, token_loss, s, end, create_graph), s

        y, saved = forward_levels(weights, x[:, s:e], variant, agg, activation)  # [B, n, D]
        if signal == "exact":
            g = output_error(y, token_loss, s, e, create_graph)
        else:
            g = u[:, s - u_start:e - u_start]
        with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
            grads = chain_backward(weights, saved, g, [eta[:, s:e] for eta in lrs], variant, agg)
        for l, level in enumerate(grads):
            for i, G in enumerate(level):
                pending[l][i] = pending[l][i] + (G.detach() if stop_grad_updates else G)

        outputs.append(y)
        if debug:
            trajectory.append([[w.detach()[:, None].expand(-1, e - s, *w.shape[1:]) for w in lv]
                               for lv in weights])
        weights, pending = apply_boundaries(weights, pending, params, state.pos + e, chunk_sizes,
                                            resets)

    y = torch.cat(outputs, dim=1)  # [B, T, D]
    final = CMSState(tuple(map(tuple, weights)), tuple(map(tuple, pending)), state.pos + T)
    if not debug:
        return y, final
    traj = tuple(tuple(torch.cat([seg[l][i] for seg in trajectory], dim=1) for i in range(2))
                 for l in range(len(params)))
    return y, final, traj
