"""Delta momentum (Nested Learning section 4.4, Eq. 49).

Momentum is a memory over gradients. Plain momentum writes with a dot-product objective
(Eq. 10-13); giving the memory an L2 (regression) objective ||m g^T - P||^2 instead turns its
update into a delta rule:

    m_{i+1} = m_i (alpha I - g_i g_i^T) - eta P_i g_i,        W_{i+1} = W_i + m_{i+1}.   (Eq. 49)

Before writing the new gradient, the memory erases what it stored along the gradient's direction
(the g g^T term), so old, now-irrelevant gradient directions do not keep pushing the weights.
Here P_i = I (no preconditioner); the preconditioned variant of Eq. 46-47 is not implemented.

Choices (named options):

``mode`` = "row" (default) | "flatten": what a "gradient vector" is for a matrix parameter.
    "row": each row of W [out, in] has its own memory row m_r, erased along its own gradient row:
        m_r <- alpha m_r - erase <m_r, k_r> k_r - eta g_r.
    For a linear layer, g_r = u_r x^T, so every row erases along the layer input x (weighted by
    u_r^2 when unnormalised): the same input-direction erasure as Delta Gradient Descent (Eq. 57).
    "flatten": the whole parameter is one vector and one scalar <m, k> is erased. Cheaper to reason
    about, but one large row can dominate the erase of every other row.
    Parameters with ndim < 2 are always treated as one vector ("row" mode on a bias would erase
    each scalar separately, which wipes the whole memory each step when normalised). ndim > 2
    parameters become [shape[0], -1].

``normalize`` (default True): the erase key is k = g / ||g|| (per row or whole) instead of g.
    With raw g, the factor along g is alpha - ||g||^2, which is negative when ||g||^2 > alpha and
    amplifies the memory (diverges) when ||g||^2 > 1 + alpha: the update depends on the scale of
    the loss. With unit keys the factor along k is alpha - erase, so for erase in [0, 1 + alpha]
    the memory map is a contraction-or-isometry for every gradient. The write term (-eta g)
    always uses the raw gradient, so the learning rate keeps its usual meaning.

``erase`` (default 1.0): strength of the g g^T term. 1.0 is Eq. 49 as printed (with unit keys:
    the component along k becomes (alpha - 1) times its old value); 0 gives plain momentum in
    the paper's form (m <- alpha m - eta g, W <- W + m).

``weight_decay``: decoupled, W <- W (1 - lr wd) before adding m.

State per parameter: ``momentum`` (shaped like the parameter). Cost: one extra row-wise dot
product and a rank-1 (per row) correction per step, O(numel).
"""

from __future__ import annotations

import torch

from .base import ParamwiseOptimizer

MODES = ("row", "flatten")


class DeltaMomentum(ParamwiseOptimizer):
    """Momentum with delta-rule erasure, Eq. 49. See the module docstring for the options.

    Args (all may be overridden per param group):
        lr: eta, the write step (1e-2).
        alpha: momentum decay (0.9).
        erase: strength of the g g^T erase term (1.0).
        normalize: erase along the unit gradient instead of the raw one (True).
        mode: "row" (default) or "flatten".
        eps: floor of ||g|| when normalising (1e-12).
        weight_decay: decoupled weight decay (0).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        alpha: float = 0.9,
        erase: float = 1.0,
        normalize: bool = True,
        mode: str = "row",
        eps: float = 1e-12,
        weight_decay: float = 0.0,
    ):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        defaults = dict(
            lr=lr,
            alpha=alpha,
            erase=erase,
            normalize=bool(normalize),
            mode=mode,
            eps=eps,
            weight_decay=weight_decay,
        )
        super().__init__(params, defaults)

    @staticmethod
    def _rows(t: torch.Tensor, mode: str) -> torch.Tensor:
        """The [rows, width] view in which each row is one gradient vector / memory row."""
        if mode == "row" and t.ndim >= 2:
            return t.reshape(t.size(0), -1)
        return t.reshape(1, -1)

    def _update_param(self, group: dict, p: torch.Tensor) -> None:
        state = self.state[p]
        if "momentum" not in state:
            state["momentum"] = torch.zeros_like(p)
        m = self._rows(state["momentum"], group["mode"])
        g = self._rows(p.grad, group["mode"])

        key = g
        if group["normalize"]:
            key = g / g.norm(dim=1, keepdim=True).clamp_min(group["eps"])
        # m (alpha I - erase k k^T) = alpha m - erase <m, k> k^T, row by row; the dot
        # uses the *old* memory, as in Eq. 49.
        recalled = (m * key).sum(dim=1, keepdim=True)
        m = group["alpha"] * m - group["erase"] * recalled * key - group["lr"] * g
        state["momentum"] = m.reshape(p.shape)

        if group["weight_decay"] != 0:
            p.mul_(1.0 - group["lr"] * group["weight_decay"])
        p.add_(state["momentum"])
