"""What every compiled model shares: the forward contract, fast state, and the segment loop that
lets in-context CMS levels learn from the task loss (Eq. 71).

A generated `Model` subclasses `NestedModel` and builds `embed`, `blocks`, `norm` and `head`;
`segment` is the period of its fastest in-context CMS level (0 when it has none).

Why a segment loop: an in-context CMS level updates on the next-token loss of the tokens of its
chunk, through the rest of the network. With `segment` tokens per step, weights are constant
inside a segment, so the model runs the segment, takes the exact gradient of the segment's summed
next-token loss with respect to the weights in force (read through fresh aliases, so only this
segment's uses count: the partial derivative of Eq. 71), adds lr * gradient to each level's
pending update, and applies it at the level's boundary. Every other memory carries its state
across segments exactly (tested), so the loop computes what one pass would, plus the updates.
The last token of a call has no target yet, so it contributes no gradient.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .layers.continuum import Continuum, ContinuumState


class NestedModel(nn.Module):
    segment: int = 0

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
        if self.segment:
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
        logits_all = []
        s = 0
        while s < T:  # segments end on the fastest level's boundaries, wherever the call starts
            e = min(T, s + self.segment - state_pos(state, self) % self.segment)
            aliases = {}
            for b, name, m in self._cms(state):
                st: ContinuumState = state[b][name]
                ws = tuple(tuple(_alias(w, outer_grad) for w in lv) for lv in st.weights)
                state[b] = {**state[b], name: st._replace(weights=ws)}
                aliases[(b, name)] = ws
            # The outer gradient goes through the in-context gradient (create_graph), so attention
            # must be twice differentiable: the fused SDPA kernels are not, the math one is.
            twice = sdpa_kernel(SDPBackend.MATH) if meta else contextlib.nullcontext()
            with torch.enable_grad(), twice:
                logits, state = self._pass(tokens[:, s:e], state)
                n_target = min(e, T - 1) - s  # the call's last token has no target yet
                flat = [w for ws in aliases.values() for lv in ws for w in lv]
                if n_target > 0 and flat:
                    loss = F.cross_entropy(_at_least_fp32(logits[:, :n_target]).flatten(0, 1),
                                           tokens[:, s + 1:s + 1 + n_target].flatten(),
                                           reduction="sum")
                    grads = torch.autograd.grad(loss, flat, create_graph=meta,
                                                retain_graph=outer_grad, allow_unused=True)
                else:
                    grads = [None] * len(flat)
            grads = [torch.zeros_like(w) if g is None else g for w, g in zip(flat, grads)]
            it = iter(grads)
            for (b, name), ws in aliases.items():
                m = dict(self.blocks[b].named_children())[name]
                level_grads = tuple(tuple(next(it) for _ in lv) for lv in ws)
                st = m.accumulate(state[b][name], level_grads)
                state[b] = {**state[b], name: m.advance(st, e - s)}
            logits_all.append(logits if outer_grad else logits.detach())
            s = e
        return torch.cat(logits_all, dim=1), state


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """Losses in float32 under bf16/fp16 autocast, and in float64 for float64 models."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _alias(w: torch.Tensor, outer_grad: bool) -> torch.Tensor:
    """A fresh autograd node for w: gradients taken w.r.t. it count only later uses. Outside
    training it is a detached leaf, so the in-context update still runs under no_grad."""
    if outer_grad:
        return w.view_as(w)
    return w.detach().requires_grad_(True)


def state_pos(state, model: NestedModel) -> int:
    for b, name, _ in model._cms(state):
        return state[b][name].pos
    return 0
