"""The step loop every nslang optimizer shares: closure, then one update per parameter that has
a dense gradient. Subclasses write only `_update_param`, the memory's own rule."""
from __future__ import annotations

import torch


class ParamwiseOptimizer(torch.optim.Optimizer):
    def _update_param(self, group: dict, p: torch.Tensor) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                self._update_param(group, p)
        return loss
