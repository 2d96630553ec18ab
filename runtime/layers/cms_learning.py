"""How a Continuum layer's in-context levels learn inside a segment loop: the second pass of the
CMS `signal = two_pass` (`learn_from_signal`; runtime/model_base.py runs the first pass) and,
through the same `LevelTracker`, the exact signal's loop in runtime/model_base.py.

In the second pass a Continuum layer reads segment by segment while each in-context level learns
from the signal u = dL/dy of the first pass, held fixed.

The definition (runtime/ops/cms/naive.py; tests/test_continuum_two_pass.py writes it out per
segment): segments end on every in-context level's boundary; per segment each level adds
lr * d(sum_t y_t . u_t)/dtheta, at the weights in force, to its pending update, and at its
boundary theta <- theta - pending. u is a constant for the outer gradient, so no second-order
graph of the first pass is kept; under `meta` the writes stay differentiable in theta.

How it is computed. A level's gradient over a segment is h^T dz for `up` and a^T dm for `down`,
with z = h up and m = a down its two products there (`Continuum._mlp`), so a segment asks autograd
only for dz and dm, which are token-sized, and keeps the terms (h, dz, a, dm):

- a level's terms since its last boundary are its pending update, not yet in force;
- at the boundary they are applied: theta = base - lr sum(h^T dz, a^T dm) over the applied terms,
  which the next segments read without forming it, h (up - lr H^T DZ) = h up - lr (h H^T) DZ
  (`_mlp`'s low_rank);
- every FOLD_TOKENS applied tokens, and at the call's end, the applied terms are added into base.

So the fastest level, which applies every segment, forms its weight-sized weights once per
FOLD_TOKENS tokens instead of every segment, and a training step's backward keeps one version of
them per fold instead of one per segment; a slower level forms its weight-sized gradient once per
period. The same sums in another order: exact (float64 tests against the per-segment
definition).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..ops.cms.chunk import segment_cuts
from .common import alias_weight

# Applied tokens a level reads in low-rank form before they are added into its weights. The
# low-rank read costs n (dim + hidden) / (dim hidden) of the level's own products per token: at
# dim 768, hidden 3,072 and n = 128, a fifth; folding writes and keeps one weight-sized version.
FOLD_TOKENS = 128


@dataclass
class _Level:
    """One in-context level during a call: its weights are base - lr sum(applied terms)."""
    base: list                       # [up, down], per sequence
    carried: tuple | None            # the pending update carried in from an earlier call
    applied: list = field(default_factory=list)    # (h, dz, a, dm) per segment, in force
    collected: list = field(default_factory=list)  # since the last boundary: pending
    applied_tokens: int = 0

    def low_rank(self, lr: float):
        if not self.applied:
            return None
        h, dz, a, dm = (torch.cat(t, dim=1) for t in zip(*self.applied))
        return lr, h, dz, a, dm

    def fold(self, lr: float) -> None:
        """Add the applied terms into base (one product per weight over their tokens)."""
        if self.applied:
            self.base = _plus_gradient(self.base, self.applied, -lr)
            self.applied, self.applied_tokens = [], 0


def _plus_gradient(weights, terms, c: float) -> list:
    """[up + c H^T DZ, down + c A^T DM]: c times the terms' gradient added to a pair of
    weight-sized tensors, in their dtype (under autocast the products are bf16, as autograd's
    weight gradients would be)."""
    h, dz, a, dm = (torch.cat(t, dim=1) for t in zip(*terms))
    up, down = weights
    return [up + c * torch.bmm(h.transpose(1, 2), dz).to(up.dtype),
            down + c * torch.bmm(a.transpose(1, 2), dm).to(down.dtype)]


class LevelTracker:
    """One Continuum layer's in-context levels through a call of a segment loop (this module's
    second pass, and the exact signal's loop in runtime/model_base.py): what each segment reads
    (`read_state`, with the applied terms as `low_rank`), what it asks autograd for
    (`products`), what it learns (`learn`), and the state the call ends with (`final_state`)."""

    def __init__(self, layer, state):
        self.layer, self.pos = layer, state.pos
        self.levels = [_Level(list(ws), ps) for ws, ps in zip(state.weights, state.pending)]

    def read_state(self, state, outer_grad: bool):
        """(the state to read the next segment with, the low-rank terms for `_read`). Fresh
        aliases: outside training they are leaves that require a gradient, so the segment's
        products are in a graph either way."""
        weights = tuple(tuple(alias_weight(w, outer_grad) for w in lv.base) for lv in self.levels)
        low_rank = {i: lv.low_rank(self.layer.lr)
                    for i, lv in zip(self.layer.in_context, self.levels)}
        return state._replace(weights=weights), low_rank

    def products(self, taps: dict) -> list:
        """The tensors whose gradients the segment needs: z and m of every in-context level."""
        return [t for i in self.layer.in_context for t in (taps[i][1], taps[i][3])]

    def learn(self, taps: dict, grads, meta: bool, n: int) -> None:
        """Keep the segment's terms (grads: those of `products`, None where unused), then apply
        the boundaries and resets at the new position, n tokens on."""
        layer, lr = self.layer, self.layer.lr
        self.pos += n
        for slot, (i, lv) in enumerate(zip(layer.in_context, self.levels)):
            h, z, act, m = taps[i]
            dz, dm = grads[2 * slot], grads[2 * slot + 1]
            terms = (h, torch.zeros_like(z) if dz is None else dz, act,
                     torch.zeros_like(m) if dm is None else dm)
            if not meta:  # the writes are constants for the outer gradient
                terms = tuple(t.detach() for t in terms)
            lv.collected.append(terms)
            if self.pos % layer.periods[i] == 0:  # the level's boundary: its update applies
                if lv.carried is not None:
                    lv.base = [w - p for w, p in zip(lv.base, lv.carried)]
                    lv.carried = None
                lv.applied += lv.collected
                lv.applied_tokens += sum(t[0].shape[1] for t in lv.collected)
                lv.collected = []
                if lv.applied_tokens >= FOLD_TOKENS:
                    lv.fold(lr)
            reset = layer.resets.get(i)
            if reset is not None and self.pos % reset == 0:  # nested: theta_0, nothing pending
                lv.base, lv.carried = list(layer._theta0(i, h.shape[0])), None
                lv.applied, lv.collected, lv.applied_tokens = [], [], 0

    def final_state(self, state, outer_grad: bool):
        """The call's end: applied terms folded into the weights, collected ones into the
        pending updates (weight-sized, as the state carries them to the next call)."""
        weights, pending = [], []
        for lv in self.levels:
            lv.fold(self.layer.lr)
            carried = lv.carried if lv.carried is not None else tuple(torch.zeros_like(w)
                                                                      for w in lv.base)
            owed = (_plus_gradient(carried, lv.collected, self.layer.lr) if lv.collected
                    else list(carried))
            weights.append(tuple(lv.base if outer_grad else [w.detach() for w in lv.base]))
            pending.append(tuple(owed))
        return state._replace(weights=tuple(weights), pending=tuple(pending), pos=self.pos)


def learn_from_signal(layer, x, state, u, meta: bool):
    """x [B, T, dim] -> (y [B, T, dim], the state after the call) for a Continuum `layer` whose
    in-context levels learn from u [B, T, dim] (see the module docstring)."""
    outer_grad = torch.is_grad_enabled()
    tracker = LevelTracker(layer, state)
    cuts = segment_cuts(state.pos, x.shape[1], [layer.periods[i] for i in layer.in_context])
    outputs = []
    for a, b in zip(cuts, cuts[1:]):
        read, low_rank = tracker.read_state(state, outer_grad)
        with torch.enable_grad():
            taps = {}
            y, _ = layer._read(x[:, a:b], read, taps, low_rank)
            grads = torch.autograd.grad((y * u[:, a:b].to(y.dtype)).sum(), tracker.products(taps),
                                        create_graph=meta, retain_graph=outer_grad,
                                        allow_unused=True)
        tracker.learn(taps, grads, meta, b - a)
        outputs.append(y if outer_grad else y.detach())
    return torch.cat(outputs, dim=1), tracker.final_state(state, outer_grad)
