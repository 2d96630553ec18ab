"""What every compiled model shares: the forward contract, fast state, and the segment loop that
lets in-context CMS levels learn from the task loss (Eq. 71).

A generated `Model` subclasses `NestedModel` and builds `embed`, `blocks`, `norm` and `head`;
`segment` is the period of its fastest in-context CMS level (0 when it has none).

Why a segment loop: an in-context CMS level updates on the next-token loss of the tokens of its
chunk, through the rest of the network. With `segment` tokens per step, weights are constant
inside a segment, so the model runs the segment, takes the exact gradient of the segment's summed
next-token loss with respect to the weights in force (only this segment's uses count: the partial
derivative of Eq. 71), adds lr * gradient to each level's pending update, and applies it at the
level's boundary. The gradient is asked for as that of the level's products in the segment,
token-sized, and the updates are kept in that form until they are folded into the weights
(runtime/layers/cms_learning.py). Every other memory carries its state
across segments exactly (tested), so the loop computes what one pass would, plus the updates.
The last token of a call has no target yet, so it contributes no gradient.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .layers.common import compiled_ops, recomputed_chunks, second_order
from .layers.continuum import Continuum
from .layers.cms_learning import LevelTracker


class NestedModel(nn.Module):
    segment: int = 0
    cms_signal: str = "exact"   # or "two_pass": see _two_pass_learning
    signal_chunk: int = 0       # two_pass: tokens per first pass (the slowest in-context period)

    # -- state ------------------------------------------------------------------------------
    def init_state(self, batch: int) -> list[dict]:
        """Fresh fast state for `batch` sequences (each sequence owns its memories)."""
        return [{name: m.init_state(batch) for name, m in block.named_children()
                 if isinstance(m, Continuum)} for block in self.blocks]

    def update_periods(self) -> dict[str, int]:
        """{parameter name: tokens between its outer-optimizer steps} for cross-sequence levels;
        the trainer accumulates their gradients and steps them once per period."""
        out = {}
        for b, block in enumerate(self.blocks):
            for name, m in block.named_children():
                if isinstance(m, Continuum):
                    out.update({f"blocks.{b}.{name}.{p}": n for p, n in m.outer_periods().items()})
        return out

    # -- forward ----------------------------------------------------------------------------
    def _pass(self, tokens, state):
        x = self.embed(tokens)  # [B, T, dim]
        new_state = []
        for block, block_state in zip(self.blocks, state):
            x, s = block(x, block_state)
            new_state.append(s)
        return self.head(self.norm(x)), new_state  # [B, T, vocab]

    def forward(self, tokens: torch.Tensor, state: list[dict] | None = None):
        """tokens [B, T] -> logits [B, T, vocab]; with `state=`, (logits, new state)."""
        carry = state is not None
        state = state if carry else self.init_state(tokens.shape[0])
        if self.segment and self.cms_signal == "two_pass":
            logits, state = self._two_pass_learning(tokens, state)
        elif self.segment:
            logits, state = self._learning_pass(tokens, state)
        else:
            logits, state = self._pass(tokens, state)
        return (logits, state) if carry else logits

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy over tokens[:, 1:]."""
        logits = self(tokens[:, :-1])
        return F.cross_entropy(_at_least_fp32(logits).flatten(0, 1), tokens[:, 1:].flatten())

    # -- the segment loop ---------------------------------------------------------------------
    def _cms(self, state):
        for b, block in enumerate(self.blocks):
            for name, m in block.named_children():
                if isinstance(m, Continuum):
                    yield b, name, m

    def _learning_pass(self, tokens, state):
        T = tokens.shape[1]
        # training: keep the graph through the writes, unless the spec says `writes = detached`
        outer_grad = torch.is_grad_enabled()
        meta = outer_grad and not any(m.detach_writes for _, _, m in self._cms(state))
        # each level's gradient is asked for as those of its products, and its updates are read
        # in low-rank form between folds (runtime/layers/cms_learning.py)
        trackers = {(b, name): (m, LevelTracker(m, state[b][name]))
                    for b, name, m in self._cms(state)}
        logits_all = []
        s = 0
        while s < T:  # segments end on the fastest level's boundaries, wherever the call starts
            e = min(T, s + self.segment - state_pos(state, self) % self.segment)
            taps = {}
            for (b, name), (m, tracker) in trackers.items():
                read, low_rank = tracker.read_state(state[b][name], outer_grad)
                state[b] = {**state[b], name: read._replace(pos=tracker.pos)}
                m.segment_tap = (taps.setdefault((b, name), {}), low_rank)
            # The outer gradient goes through the in-context gradient (create_graph), so attention
            # must be twice differentiable: the fused SDPA kernels are not, the math one is.
            twice = sdpa_kernel(SDPBackend.MATH) if meta else contextlib.nullcontext()
            eager = compiled_ops(False) if meta else contextlib.nullcontext()  # no double backward
            kept = recomputed_chunks(False) if meta else contextlib.nullcontext()  # kept either way
            chunked = second_order() if meta else contextlib.nullcontext()  # kernels: first order
            try:
                with torch.enable_grad(), twice, eager, kept, chunked:
                    logits, state = self._pass(tokens[:, s:e], state)
                    n_target = min(e, T - 1) - s  # the call's last token has no target yet
                    products = [t for key, (_, tracker) in trackers.items()
                                for t in tracker.products(taps[key])]
                    if n_target > 0 and products:
                        loss = F.cross_entropy(_at_least_fp32(logits[:, :n_target]).flatten(0, 1),
                                               tokens[:, s + 1:s + 1 + n_target].flatten(),
                                               reduction="sum")
                        grads = torch.autograd.grad(loss, products, create_graph=meta,
                                                    retain_graph=outer_grad, allow_unused=True)
                    else:
                        grads = [None] * len(products)
            finally:
                for m, _ in trackers.values():
                    m.segment_tap = None
            at = 0
            for key, (_, tracker) in trackers.items():
                k = 2 * len(tracker.levels)
                tracker.learn(taps[key], grads[at:at + k], meta, e - s)
                at += k
            if not outer_grad:
                # The segment ran under enable_grad (the levels' gradients), so the state it
                # returns (e.g. a self-modifying memory's weights) carries its graph, and the next
                # segment would chain onto it: without an outer gradient nothing reads that graph,
                # and keeping it grew an evaluation's memory with its length (28 GiB for a
                # 2,048-token NIAH batch on the H100).
                state = _detached(state)
            logits_all.append(logits if outer_grad else logits.detach())
            s = e
        for (b, name), (_, tracker) in trackers.items():
            state[b] = {**state[b], name: tracker.final_state(state[b][name], outer_grad)}
        return torch.cat(logits_all, dim=1), state

    # -- the two_pass signal -------------------------------------------------------------------
    def _two_pass_learning(self, tokens, state):
        """CMS `signal = two_pass` (runtime/ops/cms/naive.py gives the definition): per chunk of
        the slowest in-context level, a first pass with every CMS level frozen at the chunk start
        yields u_t = dL_t/dy_t at each CMS block's output (one backward through the rest of the
        network, instead of one per fastest segment); the second pass reads as usual while each
        CMS block learns from its u, held fixed, segment by segment inside the block. Two passes
        per chunk instead of T / segment, and no second-order graph of the first pass: u is a
        constant for the outer gradient."""
        T = tokens.shape[1]
        outer_grad = torch.is_grad_enabled()
        meta = outer_grad and not any(m.detach_writes for _, _, m in self._cms(state))
        cms = [m for _, _, m in self._cms(state)]
        logits_all = []
        s = 0
        while s < T:  # the first pass starts wherever the call does (as the op's does)
            e = min(T, s + self.signal_chunk - state_pos(state, self) % self.signal_chunk)
            n_target = min(e, T - 1) - s  # the call's last token has no target yet
            try:
                us = iter(self._first_pass_signals(tokens[:, s:e], tokens[:, s + 1:s + 1 + n_target],
                                                   state, cms))
                for m in cms:  # a block runs once per pass, so one output (and signal) each
                    m.two_pass_mode = ("learn", next(us), meta)
                logits, state = self._pass(tokens[:, s:e], state)
            finally:
                for m in cms:
                    m.two_pass_mode = None
            logits_all.append(logits if outer_grad else logits.detach())
            s = e
        return torch.cat(logits_all, dim=1), state

    def _first_pass_signals(self, tokens, targets, state, cms: list) -> list:
        """u = dL/dy (detached) at each CMS block's output, from a pass with the weights in force;
        the loss is the summed cross-entropy of the first len(targets) tokens' logits."""
        n_target = targets.shape[1]
        captured = {id(m): [] for m in cms}
        try:
            for m in cms:
                m.two_pass_mode = ("capture", captured[id(m)])
            with torch.enable_grad():
                first, _ = self._pass(tokens, state)
                ys = [y for m in cms for y in captured[id(m)]]
                if n_target <= 0:
                    return [torch.zeros_like(y) for y in ys]
                loss = F.cross_entropy(_at_least_fp32(first[:, :n_target]).flatten(0, 1),
                                       targets.flatten(), reduction="sum")
                us = torch.autograd.grad(loss, ys, allow_unused=True)
        finally:
            for m in cms:
                m.two_pass_mode = None
        return [torch.zeros_like(y) if u is None else u.detach() for y, u in zip(ys, us)]


def map_state(fn, tree):
    """`fn` applied to every tensor of a fast state (lists, dicts and tuples, NamedTuples
    included); everything else (a position, None) is kept."""
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: map_state(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        items = [map_state(fn, v) for v in tree]
        return type(tree)(*items) if hasattr(tree, "_fields") else type(tree)(items)
    return tree


def _detached(tree):
    """The fast state without autograd history."""
    return map_state(torch.Tensor.detach, tree)


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """Losses in float32 under bf16/fp16 autocast, and in float64 for float64 models."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def state_pos(state, model: NestedModel) -> int:
    for b, name, _ in model._cms(state):
        return state[b][name].pos
    return 0
