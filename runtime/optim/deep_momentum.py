"""Deep Momentum Gradient Descent, DMGD (Nested Learning section 4.4, Eq. 50 and 52).

Plain momentum is a *linear* memory over gradients (Eq. 10-13). DMGD makes the memory a small
neural network m(.) that reads the current gradient u_i and is trained by its own GD step:

    W_{i+1} = W_i + m_{i+1}(u_i),
    m_{i+1} = alpha m_i - eta grad L2(m_i; u_i),      u_i = grad L(W_i; x_i)        (Eq. 50)

and optionally passes the output through a non-linearity, W <- W + sigma(m(u)), with sigma = NS
giving a "deep Muon" (Eq. 52; a linear m with NS is Muon).

The paper leaves the memory's shape and objective open. This implementation *[inferred]*:

Memory, per parameter (viewed as rows U [R, d]: [shape[0], -1] for ndim >= 2, one row for
ndim < 2):

    m(U) = B + F(K),     F(K) = tanh(K W2^T) W1^T,     K = U / rms_row(U)  (if normalize_keys)

- B [R, d] is a per-entry linear memory: the ordinary momentum buffer (a constant function of u).
- F is an MLP d -> hidden -> d shared by all rows of the parameter: the "deep" part, which can
  map gradient *directions* to updates (across rows it is one memory, so it generalises from
  the rows it has seen). Keys are RMS-normalised per row so that tanh sees O(1) inputs whatever
  the loss scale; W1 starts at zero so that at step 1 DMGD is exactly momentum.

Inner objective ``objective`` (the L2 of Eq. 50, summed over rows):
- "dot" (default): L2 = <m(U), U>. For B alone its gradient is U, so B <- alpha B - eta U: the
  memory reduces *exactly* to Eq. 10-13's momentum (tested). This is how the implementation
  reads the printed <m(u^T), 1>: the value that the output is compared with is the gradient.
- "ones": L2 = <m(U), 1>, the printed objective taken literally. Its gradient for B is 1, so B
  drifts by -eta per step regardless of the gradient: provided for fidelity and ablation only,
  it does not train models.
- "l2": L2 = 1/2 ||m(U) + U||^2: the memory regresses the descent direction -u (Eq. 37's
  "generalised momentum" with value -grad); B then behaves like an EMA of -eta u.

Inner step: B <- alpha B - lr dL2/dB, theta <- alpha theta - (mlp_lr / R) dL2/dtheta for
theta = (W1, W2). The MLP is shared by the R rows, so its gradient is a sum of R terms; dividing
by R makes it an average, and the default mlp_lr = lr / hidden keeps F's output on the scale of
B's (F sums ``hidden`` features). alpha multiplies the whole memory, as printed.
Stability: for a steady gradient F settles near -(mlp_lr * hidden / (1 - alpha)) times a
row-average of u, i.e. the MLP acts like an extra momentum with learning rate ~ mlp_lr * hidden.
Keep mlp_lr * hidden of the order of lr: on the tiny regression of tests/optim (lr 0.01,
hidden 16, linear output) mlp_lr 0.05 trains and mlp_lr 0.2 diverges. The NS output is immune
(it discards the magnitude).

Output ``output`` ("none" and "newton_schulz" are accepted as aliases): "linear" (default): W <- W + m_{i+1}(u_i), Eq. 50 as printed (lr is inside
the memory, like the paper-form SGD momentum). "ns": W <- W + ns_lr * s * NS(m_{i+1}(u_i)) for
ndim >= 2 parameters (Eq. 52; s = max(1, rows/cols)**0.5 as in Muon; NS removes the magnitude,
so ns_lr sets the step); ndim < 2 parameters keep the linear output.

Weight decay: decoupled, W <- W (1 - lr wd).

Cost, per parameter of R x d entries with hidden h: about 16 h flops per entry per step (two
[R, d] x [d, h] products forward, two for the inner backward, two for the read-out with the
updated memory), against ~6 flops per entry per *token* for the model's own forward+backward:
for h = 16 that is the price of ~40 extra tokens per step, negligible for the small models this
is meant for, noticeable for large ones at small batch. Memory: B (parameter-sized) + 2 d h.
The inner gradient uses autograd on a tiny graph (no kernel).

The memory is created when the optimiser is constructed (seeded, so runs are reproducible):
state ``bias`` (B), ``w1`` [d, h], ``w2`` [h, d] per parameter, all plain tensors.
"""

from __future__ import annotations

import math

import torch

from .base import ParamwiseOptimizer
from .newton_schulz import VARIANTS, dtype_name, newton_schulz

OBJECTIVES = ("dot", "ones", "l2")
OUTPUTS = ("linear", "ns")
# The spec language's names for the outputs (nslang/schema.py: sigma = none | newton_schulz).
OUTPUT_ALIASES = {"none": "linear", "newton_schulz": "ns"}


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.size(0), -1) if t.ndim >= 2 else t.reshape(1, -1)


class DeepMomentum(ParamwiseOptimizer):
    """DMGD: momentum as an MLP memory over gradients (Eq. 50, 52). See the module docstring.

    Args (all may be overridden per param group):
        lr: eta, inner step of the linear part B (1e-2); with output="linear" it is the
            learning rate in the paper-form momentum sense.
        alpha: decay of the whole memory (0.9).
        hidden: MLP width h (16).
        mlp_lr: inner step of the MLP, averaged over rows (None -> lr / hidden).
        objective: "dot" (default), "ones" or "l2".
        normalize_keys: RMS-normalise each gradient row before the MLP (True).
        output: "linear" (default) or "ns".
        ns_lr, ns_steps, ns_variant, ns_dtype: used with output="ns" (0.02, 5, "quintic",
            "float32").
        weight_decay: decoupled (0).
        seed: seed for the MLP's initial W2 (0); parameter i uses seed + i.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        alpha: float = 0.9,
        hidden: int = 16,
        mlp_lr: float | None = None,
        objective: str = "dot",
        normalize_keys: bool = True,
        output: str = "linear",
        ns_lr: float = 0.02,
        ns_steps: int = 5,
        ns_variant: str = "quintic",
        ns_dtype: str | torch.dtype = "float32",
        weight_decay: float = 0.0,
        seed: int = 0,
    ):
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; expected one of {OBJECTIVES}")
        output = OUTPUT_ALIASES.get(output, output)
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; expected one of {OUTPUTS}")
        if ns_variant not in VARIANTS:
            raise ValueError(f"unknown ns_variant {ns_variant!r}; expected one of {VARIANTS}")
        if int(hidden) < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        defaults = dict(
            lr=lr,
            alpha=alpha,
            hidden=int(hidden),
            # -1.0 stands for "lr / hidden" so that param groups hold numbers only (no None).
            mlp_lr=-1.0 if mlp_lr is None else float(mlp_lr),
            objective=objective,
            normalize_keys=bool(normalize_keys),
            output=output,
            ns_lr=ns_lr,
            ns_steps=int(ns_steps),
            ns_variant=ns_variant,
            ns_dtype=dtype_name(ns_dtype),
            weight_decay=weight_decay,
            seed=int(seed),
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group and create its parameters' memories (seeded by their position)."""
        first_index = sum(len(g["params"]) for g in self.param_groups)
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if group["mlp_lr"] is None:
            group["mlp_lr"] = -1.0
        group["ns_dtype"] = dtype_name(group["ns_dtype"])
        for i, p in enumerate(group["params"]):
            self.state[p] = self._new_memory(p, group["hidden"], group["seed"] + first_index + i)

    @staticmethod
    def _new_memory(p: torch.Tensor, hidden: int, seed: int) -> dict:
        d = _rows(p).size(1)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        # W2 ~ N(0, 1/d): with RMS-normalised keys (entries ~ 1), K W2^T has entries ~ N(0, 1),
        # the useful range of tanh. W1 = 0 makes F = 0 at the start (DMGD == momentum at step 1).
        w2 = torch.randn(hidden, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
        return {
            "bias": torch.zeros_like(p),
            "w1": torch.zeros(d, hidden, dtype=p.dtype, device=p.device),
            "w2": w2.to(dtype=p.dtype, device=p.device),
        }

    @staticmethod
    def _read(bias: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """m(U) = B + tanh(K W2^T) W1^T, on the [R, d] row view."""
        return bias + torch.tanh(keys @ w2.mT) @ w1.mT

    @staticmethod
    def _objective(name: str, out: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        if name == "dot":
            return (out * u).sum()
        if name == "ones":
            return out.sum()
        return 0.5 * (out + u).square().sum()


    def _update_param(self, group: dict, p: torch.Tensor) -> None:
        state = self.state[p]
        u = _rows(p.grad)
        rows = u.size(0)
        keys = u
        if group["normalize_keys"]:
            rms = u.square().mean(dim=1, keepdim=True).sqrt()
            keys = u / (rms + 1e-12)

        # Inner GD step on the memory's own objective (Eq. 50): gradients by autograd on a graph
        # that only contains the memory, not the model.
        bias = _rows(state["bias"]).detach().requires_grad_(True)
        w1 = state["w1"].detach().requires_grad_(True)
        w2 = state["w2"].detach().requires_grad_(True)
        with torch.enable_grad():
            inner_loss = self._objective(group["objective"], self._read(bias, w1, w2, keys), u)
            g_bias, g_w1, g_w2 = torch.autograd.grad(inner_loss, (bias, w1, w2))

        alpha, lr = group["alpha"], group["lr"]
        mlp_lr = group["mlp_lr"] if group["mlp_lr"] >= 0 else lr / group["hidden"]
        mlp_step = mlp_lr / rows  # the MLP is shared by the rows: average their gradients
        new_bias = alpha * bias.detach() - lr * g_bias
        new_w1 = alpha * w1.detach() - mlp_step * g_w1
        new_w2 = alpha * w2.detach() - mlp_step * g_w2
        state["bias"] = new_bias.reshape(p.shape)
        state["w1"] = new_w1
        state["w2"] = new_w2

        # Read the *updated* memory at the current gradient: W_{i+1} = W_i + m_{i+1}(u_i).
        out = self._read(new_bias, new_w1, new_w2, keys)
        if group["weight_decay"] != 0:
            p.mul_(1.0 - lr * group["weight_decay"])
        if group["output"] == "ns" and p.ndim >= 2:
            ortho = newton_schulz(out, group["ns_steps"], variant=group["ns_variant"], dtype=group["ns_dtype"])
            scale = max(1.0, out.size(0) / out.size(1)) ** 0.5
            p.add_(ortho.reshape(p.shape), alpha=group["ns_lr"] * scale)
        else:
            p.add_(out.reshape(p.shape))
