"""The continuum memory system (CMS, Eqs. 70-74) as a layer of a compiled model.

A CMS is a chain (or a weighted sum) of MLP levels, each with its own update period. Levels fall
in one of three regimes (DESIGN.md "How a level's frequency becomes execution"):

- in-context (period <= context): per-sequence fast weights theta, constant inside their chunk and
  updated at its boundary on the task loss (Eq. 71): theta <- theta - lr * sum_t grad L_t. The
  gradient is the exact one (the next-token loss through the rest of the network); the model's
  segment loop (runtime/model_base.py) computes it, since only the whole model knows the loss.
  The initial state theta_0 is a parameter: gradients reach it through every write (Eq. 73).
- cross-sequence (period > context): ordinary parameters that the outer optimizer steps once per
  period (`outer_periods()` tells the trainer which, and how often).
- outer (a frozen level): ordinary parameters, stepped every outer step.

This layer only reads: `forward(x, state)` applies the levels with the weights in force. The
state is a `ContinuumState`; the model loop updates it between segments (`accumulate`, `advance`).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.cms.dispatch import cms_update
from . import common
from .cms_learning import learn_from_signal


class ContinuumState(NamedTuple):
    weights: tuple   # per in-context level: tuple of per-sequence weight tensors [B, ...]
    pending: tuple   # per in-context level: tuple of summed lr * gradients since its boundary
    pos: int         # tokens of the stream seen


class Continuum(nn.Module):
    def __init__(self, dim, hidden, kind, act, variant, periods, regimes, lr, signal, context,
                 detach_writes=False, level_norm="none"):
        super().__init__()
        # "rms": every level after the first reads its input divided by its root mean square.
        # Why: a chain of SwiGLU levels is a polynomial of degree 2^levels in its input, so an
        # input of max 3.4 gave an output of 314 at dim 128 and overflow at dim 512 within a few
        # outer steps (bench/RESULTS.md, fifth device session); the first level reads the
        # block's normalised input already.
        self.level_norm = level_norm
        # detached: the in-context updates are constants for the outer gradient (theta_0 learns
        # through the reads only), so no second-order graph is kept
        self.detach_writes = detach_writes
        self.kind, self.act, self.variant, self.lr = kind, act, variant, lr
        self.periods, self.regimes = list(periods), list(regimes)
        self.in_context = [i for i, r in enumerate(regimes) if r == "in_context"]
        n_up = 2 if kind == "swiglu" else 1
        self.levels = nn.ModuleList()
        for _ in periods:
            level = nn.ParameterDict({
                # theta_0 (in-context) or the weights themselves (other regimes); row-vector
                # convention: h @ up -> [.., hidden], a @ down -> [.., dim]
                "up": nn.Parameter(torch.randn(dim, n_up * hidden) / math.sqrt(dim)),
                "down": nn.Parameter(torch.zeros(hidden, dim) if kind == "residual_mlp"
                                     else torch.randn(hidden, dim) / math.sqrt(hidden))})
            self.levels.append(level)
        self.agg = nn.Parameter(torch.full((len(periods),), 1.0 / len(periods))) \
            if variant == "independent" else None
        # nested (Eq. 72): a level restarts from theta_0 at each boundary of the next slower one
        self.resets = {i: min((self.periods[j] for j in self.in_context
                               if self.periods[j] > self.periods[i]), default=None)
                       for i in self.in_context} if variant == "nested" else {}

    # -- state ------------------------------------------------------------------------------
    def init_state(self, batch: int) -> ContinuumState:
        weights = tuple(self._theta0(i, batch) for i in self.in_context)
        pending = tuple(tuple(torch.zeros_like(w) for w in ws) for ws in weights)
        return ContinuumState(weights, pending, 0)

    def _theta0(self, i: int, batch: int) -> tuple:
        lv = self.levels[i]
        return tuple(lv[name].expand(batch, *lv[name].shape) for name in ("up", "down"))

    def outer_periods(self) -> dict[str, int]:
        """Parameters the outer optimizer steps once per `period` tokens (cross-sequence levels)."""
        return {f"levels.{i}.{name}": self.periods[i] for i, r in enumerate(self.regimes)
                if r == "cross_sequence" for name in ("up", "down")}

    # -- read -------------------------------------------------------------------------------
    def _mlp(self, h, up, down, tap: list | None = None, low_rank=None):
        """[h +] s(h up) down (SwiGLU: silu(gate) * val). For the two_pass pass
        (runtime/layers/cms_learning.py): `tap` receives (h, z, a, m) with z = h up and m = a down,
        the products whose gradients give the weights'; `low_rank` = (c, H, DZ, A, DM) are
        updates applied but not yet added into up and down, up - c H^T DZ and down - c A^T DM,
        read without forming them: h (up - c H^T DZ) = h up - c (h H^T) DZ."""
        z = h @ up if up.dim() == 2 else torch.bmm(h, up)
        if low_rank is not None:
            c, H, DZ, A, DM = low_rank
            z = torch.baddbmm(z, torch.bmm(h, H.transpose(1, 2)), DZ, alpha=-c)
        if self.kind == "swiglu":
            gate, val = z.chunk(2, dim=-1)
            a = F.silu(gate) * val
        else:
            a = getattr(F, self.act)(z)
        m = a @ down if down.dim() == 2 else torch.bmm(a, down)
        if low_rank is not None:
            m = torch.baddbmm(m, torch.bmm(a, A.transpose(1, 2)), DM, alpha=-c)
        if tap is not None:
            tap.extend((h, z, a, m))
        return h + m if self.kind == "residual_mlp" else m

    # Set by the model's two_pass loop (runtime/model_base.py) for one pass: ("capture", list)
    # records each output so the first pass can take dL/dy; ("learn", u, meta) makes this layer
    # learn from the fixed signal u while it reads. None: read only.
    two_pass_mode = None
    # Set by the exact signal's segment loop (runtime/model_base.py) for one segment: (taps,
    # low_rank) as `_read` takes them.
    segment_tap = None
    # The generated class sets the kernel codegen chose (nslang/kernels.py); "auto": dispatch's.
    kernel = "auto"

    def forward(self, x, state: ContinuumState | None = None):
        if state is None:
            state = self.init_state(x.shape[0])
        mode = self.two_pass_mode
        if mode is not None and mode[0] == "learn":
            return self._learn_from_signal(x, state, mode[1], mode[2])
        y, state = self._read(x, state, *(self.segment_tap or ()))
        if mode is not None:
            mode[1].append(y)
        return y, state

    def _read(self, x, state: ContinuumState, taps: dict | None = None,
              low_rank: dict | None = None):
        """The levels applied with the weights in force; `taps` and `low_rank` (per in-context
        level) as `_mlp`'s, for the two_pass pass."""
        fast = dict(zip(self.in_context, state.weights))
        low_rank = low_rank or {}
        out, h = 0, x
        for i, lv in enumerate(self.levels):
            up, down = fast.get(i, (lv["up"], lv["down"]))
            inp = x if self.variant == "independent" else h
            if i and self.level_norm == "rms" and self.variant != "independent":
                inp = inp * torch.rsqrt(inp.float().square().mean(-1, keepdim=True) + 1e-6).to(inp.dtype)
            y = self._mlp(inp, up, down, None if taps is None or i not in fast
                          else taps.setdefault(i, []), low_rank.get(i))
            if self.variant == "independent":
                out = out + self.agg[i] * y
            else:
                h = y
        return (out if self.variant == "independent" else h), state

    def _learn_from_signal(self, x, state: ContinuumState, u, meta: bool):
        """The second pass of the two_pass signal (runtime/layers/cms_learning.py)."""
        return learn_from_signal(self, x, state, u, meta)

    # -- update (called by the model's segment loop) ----------------------------------------
    def accumulate(self, state: ContinuumState, grads) -> ContinuumState:
        """Add lr * grad (Eq. 71's sum) to each in-context level's pending update."""
        pending = tuple(tuple(p + self.lr * g for p, g in zip(ps, gs))
                        for ps, gs in zip(state.pending, grads))
        return state._replace(pending=pending)

    def advance(self, state: ContinuumState, n: int) -> ContinuumState:
        """Move the stream position by n tokens (a segment never crosses a boundary) and apply
        the updates and resets that fall on the new position."""
        pos = state.pos + n
        weights, pending = list(state.weights), list(state.pending)
        for slot, i in enumerate(self.in_context):
            if pos % self.periods[i] == 0:
                weights[slot] = tuple(w - p for w, p in zip(weights[slot], pending[slot]))
                pending[slot] = tuple(torch.zeros_like(p) for p in pending[slot])
        return self._resets(weights, pending, pos)

    def update(self, state: ContinuumState, grads, n: int) -> ContinuumState:
        """`advance(accumulate(state, grads), n)` in one step: per weight tensor one fused kernel
        (runtime/ops/cms/kernel.py) on CUDA instead of 3-4 elementwise ops, the PyTorch ops
        elsewhere and under implementation("chunk" / "reference"). The kernel is differentiable
        to any order, so it also serves the meta-learned (create_graph) writes."""
        mode = common._MODE[-1]
        impl = {"fast": "auto", "kernel": "kernel"}.get(mode, "reference")
        if isinstance(self.kernel, dict) and self.kernel.get("op") is None:
            impl = "reference"  # codegen chose no kernel (nslang/kernels.py)
        pos = state.pos + n
        weights, pending = [], []
        for slot, i in enumerate(self.in_context):
            apply = pos % self.periods[i] == 0
            new = [cms_update(w, p, g, self.lr, apply, impl) for w, p, g in
                   zip(state.weights[slot], state.pending[slot], grads[slot])]
            weights.append(tuple(w for w, _ in new))
            pending.append(tuple(p for _, p in new))
        return self._resets(weights, pending, pos)

    def _resets(self, weights: list, pending: list, pos: int) -> ContinuumState:
        """Nested variant: a level restarts from theta_0 at each boundary of the next slower."""
        for slot, i in enumerate(self.in_context):
            period = self.resets.get(i)
            if period is not None and pos % period == 0:
                weights[slot] = self._theta0(i, weights[slot][0].shape[0])
                pending[slot] = tuple(torch.zeros_like(p) for p in pending[slot])
        return ContinuumState(tuple(weights), tuple(pending), pos)
