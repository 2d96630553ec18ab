"""Muon: momentum whose read-out is orthogonalised by Newton-Schulz (Nested Learning Eq. 42-44).

In the paper's reading (section 4), Muon is momentum (a memory over gradients, Eq. 10-13) whose
output passes through an inner optimiser, NS_k, that maps the memory to the nearest
(approximately) orthogonal matrix:

    m <- beta m + g                      (momentum; Nesterov reads g + beta m instead)
    W <- W (1 - lr wd) - lr * s * NS_k(m),     s = max(1, rows / cols) ** 0.5.

The momentum is kept as an un-normalised sum (m <- beta m + g). Jordan et al.'s code keeps an EMA
(m <- beta m + (1 - beta) g); the two differ by a constant factor, which NS removes, so the
updates are the same. The scale s (from Jordan et al.) keeps the per-element size of the update
comparable between wide and tall matrices: NS output has unit singular values, so a tall matrix
(rows > cols) would otherwise get a smaller RMS update.

NS only makes sense for matrices. Every parameter with ndim >= 2 in a Muon group is flattened to
[shape[0], -1] (conv kernels: one row per output channel) and orthogonalised. Parameters with
ndim < 2 (biases, norm gains), and every parameter of a group tagged ``use_muon=False`` (put the
embedding and the output head there: their rows are token vectors, not a linear map to
orthogonalise), are updated by AdamW instead.

Learning rates: Muon-routed parameters use the group's ``lr``. AdamW-routed parameters use the
group's ``lr`` in a ``use_muon=False`` group (that group *is* an AdamW group), and the group's
``adamw_lr`` for the 1-D parameters that sit inside a Muon group. Note that an LR scheduler only
scales ``lr``; ``adamw_lr`` stays fixed unless you schedule it yourself.
"""

from __future__ import annotations

import torch

from .base import ParamwiseOptimizer
from .newton_schulz import VARIANTS, as_matrix, dtype_name, newton_schulz


def muon_scale(rows: int, cols: int) -> float:
    """Jordan et al.'s shape factor max(1, rows / cols) ** 0.5."""
    return max(1.0, rows / cols) ** 0.5


class Muon(ParamwiseOptimizer):
    """Muon for matrices, AdamW for the rest.

    Args (all may be overridden per param group):
        lr: Muon learning rate (0.02, Jordan et al.'s default).
        momentum: beta of the momentum sum (0.95).
        nesterov: read g + beta m instead of m (True, as in Jordan et al.).
        weight_decay: decoupled weight decay for Muon params: W <- W (1 - lr wd) (0).
        ns_steps: Newton-Schulz steps (5). ns_variant: "quintic" or "cubic".
        ns_dtype: NS compute dtype name, "float32" (default) or "bfloat16" (Jordan et al. use
            bfloat16 on GPUs); a torch.dtype is accepted and stored by name.
        use_muon: False routes every parameter of the group to AdamW (default True; ndim < 2
            parameters always go to AdamW).
        adamw_lr: AdamW lr for ndim < 2 parameters inside a Muon group (3e-4).
        adamw_betas, adamw_eps, adamw_weight_decay: AdamW hyper-parameters for all AdamW-routed
            parameters ((0.9, 0.95), 1e-8, 0).

    State per Muon parameter: ``momentum`` (shaped like the parameter). Per AdamW parameter:
    ``step`` (int), ``exp_avg``, ``exp_avg_sq``.
    """

    def __init__(
        self,
        params,
        lr: float = 0.02,
        momentum: float = 0.95,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        ns_steps: int = 5,
        ns_variant: str = "quintic",
        ns_dtype: str | torch.dtype = "float32",
        use_muon: bool = True,
        adamw_lr: float = 3e-4,
        adamw_betas=(0.9, 0.95),
        adamw_eps: float = 1e-8,
        adamw_weight_decay: float = 0.0,
    ):
        if ns_variant not in VARIANTS:
            raise ValueError(f"unknown ns_variant {ns_variant!r}; expected one of {VARIANTS}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            nesterov=bool(nesterov),
            weight_decay=weight_decay,
            ns_steps=int(ns_steps),
            ns_variant=ns_variant,
            ns_dtype=dtype_name(ns_dtype),
            use_muon=bool(use_muon),
            adamw_lr=adamw_lr,
            adamw_betas=list(adamw_betas),
            adamw_eps=adamw_eps,
            adamw_weight_decay=adamw_weight_decay,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            # Users may pass a dtype or a tuple in a param group; store plain data only.
            group["ns_dtype"] = dtype_name(group["ns_dtype"])
            group["adamw_betas"] = list(group["adamw_betas"])

    @staticmethod
    def routes_to_muon(group: dict, p: torch.Tensor) -> bool:
        """True when ``p`` gets the Muon update, False when it gets AdamW."""
        return bool(group["use_muon"]) and p.ndim >= 2

    def _update_param(self, group: dict, p: torch.Tensor) -> None:
        if self.routes_to_muon(group, p):
            self._muon_update(group, p)
        else:
            lr = group["adamw_lr"] if group["use_muon"] else group["lr"]
            self._adamw_update(group, p, lr)

    def _muon_update(self, group: dict, p: torch.Tensor) -> None:
        g = p.grad
        state = self.state[p]
        if "momentum" not in state:
            state["momentum"] = torch.zeros_like(p)
        m = state["momentum"]
        beta = group["momentum"]
        m.mul_(beta).add_(g)
        # Nesterov: look one momentum step ahead, g + beta * m_{t+1}.
        read = g + beta * m if group["nesterov"] else m
        mat = as_matrix(read)
        ortho = newton_schulz(
            mat, group["ns_steps"], variant=group["ns_variant"], dtype=group["ns_dtype"]
        )
        update = ortho.reshape(p.shape) * muon_scale(mat.size(0), mat.size(1))
        if group["weight_decay"] != 0:
            p.mul_(1.0 - group["lr"] * group["weight_decay"])
        p.add_(update, alpha=-group["lr"])

    def _adamw_update(self, group: dict, p: torch.Tensor, lr: float) -> None:
        g = p.grad
        beta1, beta2 = group["adamw_betas"]
        state = self.state[p]
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(g, 1.0 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        # Bias correction folded into the step size and the denominator, as AdamW does.
        bc1 = 1.0 - beta1**t
        bc2 = 1.0 - beta2**t
        denom = (exp_avg_sq / bc2).sqrt_().add_(group["adamw_eps"])
        if group["adamw_weight_decay"] != 0:
            p.mul_(1.0 - lr * group["adamw_weight_decay"])
        p.addcdiv_(exp_avg, denom, value=-lr / bc1)
