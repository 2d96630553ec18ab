"""Cross-sequence levels: parameters the outer optimizer steps once per period of tokens.

A generated model may say, through `update_periods()`, that some parameters belong to a level
slower than the training context ("every 2048 tokens" with 512-token sequences). The optimizer
then steps them once per period: their gradients are summed over the steps in between and the
mean is applied at the period's last step (the gradient of the mean loss over the period's
tokens, the same scale as an ordinary step's gradient). On the other steps their gradient is
withheld (None), so the optimizer leaves them, their moments and their weight decay alone.

A period is counted in training tokens of all processes together: tokens per step = batch *
context * accumulation * world size, and a level of period P is stepped every round(P / that)
steps (at least every step). Each step's gradient is clipped with the rest before it is summed.
"""
from __future__ import annotations

import torch
from torch import nn

from .errors import TrainError


class PeriodicGrads:
    def __init__(self, model: nn.Module, tokens_per_step: int):
        fn = getattr(model, "update_periods", None)
        periods = dict(fn()) if callable(fn) else {}
        params = dict(model.named_parameters())
        self.every: dict[str, int] = {}
        self.notes: list[str] = []
        for name, period in periods.items():
            if name not in params:
                raise TrainError(f"the model's update_periods() names {name!r}, which is not one of its parameters",
                                 "recompile the spec; if it persists, report it as a compiler bug")
            k = max(1, round(int(period) / tokens_per_step))
            if k * tokens_per_step != int(period):
                self.notes.append(f"{name}: period {period} tokens is not a multiple of the {tokens_per_step} "
                                  f"tokens of a step; stepped every {k} step(s) = {k * tokens_per_step} tokens")
            if k > 1:
                self.every[name] = k
        self.params = {n: params[n] for n in self.every}
        self.acc: dict[str, torch.Tensor] = {}

    def summary(self) -> str:
        if not self.every:
            return ""
        ks = sorted(set(self.every.values()))
        return (f"{len(self.every)} parameter(s) of cross-sequence levels stepped every "
                f"{', '.join(map(str, ks))} optimizer steps")

    def gate(self, step: int) -> None:
        """Between backward (and clipping) and `optimizer.step()` of step `step` (1-based)."""
        for name, k in self.every.items():
            p = self.params[name]
            if p.grad is None:
                continue
            if name in self.acc:
                self.acc[name].add_(p.grad)
            else:
                self.acc[name] = p.grad.detach().clone()
            if step % k == 0:
                p.grad = self.acc.pop(name).div_(k)
            else:
                p.grad = None

    def state_dict(self) -> dict:
        from .distributed import local

        return {"every": dict(self.every), "acc": {n: local(t).detach().cpu().clone() for n, t in self.acc.items()}}

    def load_state_dict(self, state: dict) -> None:
        if dict(state.get("every", {})) != self.every and state.get("acc"):
            raise TrainError(
                "the checkpoint's cross-sequence schedule differs from this run's "
                f"(saved {state.get('every')}, now {self.every})",
                "resume with the batch size, context, accumulation and world size the run was saved with, "
                "or change them at a step where no period is half-way")
        self.acc = {}
        for name, t in state.get("acc", {}).items():
            p = self.params[name]
            if hasattr(p, "device_mesh"):  # FSDP2: shard the full tensor like its parameter
                from torch.distributed.tensor import distribute_tensor

                self.acc[name] = distribute_tensor(t.to(p.device_mesh.device_type), p.device_mesh, p.placements)
            else:
                self.acc[name] = t.to(p.device, p.dtype)
