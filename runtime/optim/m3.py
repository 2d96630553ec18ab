"""M3, Multi-scale Momentum Muon (Nested Learning section 7.2, Algorithm 1).

M3 is a continuum memory system applied to Adam's memories: two momentum levels, a fast one
written every step and a slow one written every ``f`` steps, plus a second-moment memory V.
Each momentum is orthogonalised by Newton-Schulz before the two are mixed. Algorithm 1 as
printed (un-decayed sums, no normalisation; "sum" mode below):

    every f steps (k = 0, 1, ...):
        M2 <- M2 + beta3 * sum of the gradients of the previous window
        O2 <- NS_T(M2)                         # held fixed for the next f steps
    every step:
        M1 <- M1 + beta1 g
        V  <- V  + beta2 g^2
        O1 <- NS_T(M1)
        Theta <- Theta - eta (O1 + alpha O2) / (sqrt(V) + eps)

Ambiguities, each a named option with the default and why:

``accumulate`` = "ema" (default) | "sum".
    "sum" is Algorithm 1 verbatim. Then M1 never forgets (NS(M1) is the direction of the sum of
    *all* gradients so far, an FTRL direction rather than a momentum) and V only grows, so the
    step shrinks like 1/sqrt(t): an AdaGrad schedule the paper never mentions. The prose calls
    M1 the *fast* momentum and M3 "Adam + Muon + CMS", and the reproductions use EMAs, so the
    default is "ema":
        M1 <- beta1 M1 + (1 - beta1) g,      V <- beta2 V + (1 - beta2) g^2,
        M2 <- beta3 M2 + (1 - beta3) mean(window gradients)   (at each window boundary).
    In "ema" mode beta3 is the decay *per window*: the slow memory's horizon is about
    f / (1 - beta3) steps. In "sum" mode the betas are write scales; since NS(c M) = NS(M), only
    beta2 matters for matrices (it rescales the step by 1 / sqrt(beta2)).

``bias_correction`` (default True, "ema" mode only): divide V by (1 - beta2^t). The momenta need
    no correction: NS is scale invariant, so a bias correction of M1 or M2 is a no-op. (The
    AdamW fallback below does correct its first moment.) Ignored in "sum" mode, where the
    accumulators are not averages.

``slow_every`` = f (default 64). The slow memory is written at the end of steps f, 2f, 3f, ...
    from the gradients of steps (k-1)f+1 .. kf, and its NS output is used from the next step on;
    for the first f steps M2 = 0 and O2 = NS(0) = 0, exactly as in Algorithm 1 (whose first
    window is empty). The paper gives no value; 64 (with beta3 = 0.95, a horizon of ~1300 steps)
    follows the stock spec (specs/optim/m3.nsam) and M3's point of a long gradient context.

``alpha`` (default 0.5): weight of O2. No value in the paper; below 1 so that the fast momentum
    leads. Unvalidated.

``rms_normalize`` (default True), ``rms_target`` (0.2): rescale U = (O1 + alpha O2) /
    (sqrt(V) + eps) so its RMS is rms_target. Algorithm 1 does not normalise; then the update
    size is ~ 1 / (sqrt(n) |g|) per element and blows up when gradients get small, so the
    learning rate cannot be shared with AdamW. With normalisation (AdaMuon / Moonlight practice;
    0.2 is the typical RMS of an AdamW update) V only reshapes the update element-wise and an
    AdamW-scale lr (the default 1e-3) works for matrices and the AdamW fallback alike.

``ns_steps`` (5), ``ns_variant`` ("quintic"), ``ns_dtype`` ("float32"): the NS of each momentum.

``M3.algorithm1(params, ...)`` builds the printed form: accumulate="sum", bias_correction=False,
rms_normalize=False.

Parameters with ndim < 2 (and groups tagged ``use_muon=False``) cannot be orthogonalised; they get
an AdamW update from the same M1 and V (with bias correction in "ema" mode, with the raw sums in
"sum" mode: AdaGrad with momentum). ndim > 2 parameters are flattened to [shape[0], -1].
Weight decay is decoupled: Theta <- Theta (1 - lr wd).

State per matrix parameter (all in optimizer.state, so checkpoints carry them): ``step`` (int),
``fast`` (M1), ``second_moment`` (V), ``slow`` (M2), ``window`` (sum of the gradients of the
current window), ``slow_ortho`` (O2, cached because it only changes every f steps),
``slow_updates`` (int, number of slow writes). Memory: 5 parameter-sized buffers. Compute: one
NS per step plus one every f steps.
"""

from __future__ import annotations

import torch

from .base import ParamwiseOptimizer
from .newton_schulz import VARIANTS, as_matrix, dtype_name, newton_schulz

ACCUMULATE = ("ema", "sum")


class M3(ParamwiseOptimizer):
    """Multi-scale Momentum Muon (Algorithm 1). See the module docstring for every option.

    Args (all may be overridden per param group):
        lr: eta (1e-3).
        betas: (beta1, beta2, beta3) = fast momentum, second moment, slow momentum
            ((0.95, 0.999, 0.95)).
        alpha: weight of the slow momentum's NS output (0.5).
        eps: added to sqrt(V) (1e-8).
        weight_decay: decoupled weight decay (0).
        slow_every: f, the slow memory's period in steps (64).
        accumulate: "ema" (default) or "sum" (Algorithm 1 verbatim).
        bias_correction: correct V for its zero init ("ema" mode only) (True).
        rms_normalize, rms_target: rescale the matrix update to this RMS (True, 0.2).
        ns_steps, ns_variant, ns_dtype: Newton-Schulz settings (5, "quintic", "float32").
        use_muon: False sends the whole group to the AdamW fallback (True).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.95, 0.999, 0.95),
        alpha: float = 0.5,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        slow_every: int = 64,
        accumulate: str = "ema",
        bias_correction: bool = True,
        rms_normalize: bool = True,
        rms_target: float = 0.2,
        ns_steps: int = 5,
        ns_variant: str = "quintic",
        ns_dtype: str | torch.dtype = "float32",
        use_muon: bool = True,
    ):
        if accumulate not in ACCUMULATE:
            raise ValueError(f"unknown accumulate {accumulate!r}; expected one of {ACCUMULATE}")
        if ns_variant not in VARIANTS:
            raise ValueError(f"unknown ns_variant {ns_variant!r}; expected one of {VARIANTS}")
        if int(slow_every) < 1:
            raise ValueError(f"slow_every must be >= 1, got {slow_every}")
        if len(betas) != 3:
            raise ValueError("betas must be (beta1, beta2, beta3)")
        defaults = dict(
            lr=lr,
            betas=list(betas),
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            slow_every=int(slow_every),
            accumulate=accumulate,
            bias_correction=bool(bias_correction),
            rms_normalize=bool(rms_normalize),
            rms_target=rms_target,
            ns_steps=int(ns_steps),
            ns_variant=ns_variant,
            ns_dtype=dtype_name(ns_dtype),
            use_muon=bool(use_muon),
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            group["ns_dtype"] = dtype_name(group["ns_dtype"])
            group["betas"] = list(group["betas"])

    @classmethod
    def algorithm1(cls, params, **options) -> "M3":
        """Algorithm 1 as printed: un-decayed sums, no bias correction, no RMS normalisation."""
        options.setdefault("accumulate", "sum")
        options.setdefault("bias_correction", False)
        options.setdefault("rms_normalize", False)
        return cls(params, **options)

    def _update_param(self, group: dict, p: torch.Tensor) -> None:
        if group["use_muon"] and p.ndim >= 2:
            self._matrix_update(group, p)
        else:
            self._fallback_update(group, p)

    # -- shared pieces --------------------------------------------------------------------

    @staticmethod
    def _write_fast_memories(group: dict, state: dict, g: torch.Tensor) -> None:
        """M1 and V: written every step (the fast level and the variance memory)."""
        beta1, beta2, _ = group["betas"]
        if group["accumulate"] == "ema":
            state["fast"].lerp_(g, 1.0 - beta1)
            state["second_moment"].mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        else:
            state["fast"].add_(g, alpha=beta1)
            state["second_moment"].addcmul_(g, g, value=beta2)

    @staticmethod
    def _denominator(group: dict, state: dict) -> torch.Tensor:
        """sqrt(V) + eps, with V bias-corrected in "ema" mode when asked."""
        v = state["second_moment"]
        if group["accumulate"] == "ema" and group["bias_correction"]:
            v = v / (1.0 - group["betas"][1] ** state["step"])
        return v.sqrt().add_(group["eps"])

    def _ns(self, group: dict, m: torch.Tensor) -> torch.Tensor:
        mat = as_matrix(m)
        out = newton_schulz(mat, group["ns_steps"], variant=group["ns_variant"], dtype=group["ns_dtype"])
        return out.reshape(m.shape)

    # -- matrices: Algorithm 1 ----------------------------------------------------------

    def _matrix_update(self, group: dict, p: torch.Tensor) -> None:
        g = p.grad
        state = self.state[p]
        if "step" not in state:
            state["step"] = 0
            state["slow_updates"] = 0
            state["fast"] = torch.zeros_like(p)
            state["second_moment"] = torch.zeros_like(p)
            state["slow"] = torch.zeros_like(p)
            state["window"] = torch.zeros_like(p)
            state["slow_ortho"] = torch.zeros_like(p)
        state["step"] += 1

        state["window"].add_(g)
        self._write_fast_memories(group, state, g)

        fast_ortho = self._ns(group, state["fast"])
        update = (fast_ortho + group["alpha"] * state["slow_ortho"]) / self._denominator(group, state)
        if group["rms_normalize"]:
            rms = update.square().mean().sqrt()
            update = update * (group["rms_target"] / (rms + 1e-12))

        if group["weight_decay"] != 0:
            p.mul_(1.0 - group["lr"] * group["weight_decay"])
        p.add_(update, alpha=-group["lr"])

        # End of a window: write the slow memory from this window's gradients, and fix its NS
        # output for the next f steps (Algorithm 1's outer loop).
        f = group["slow_every"]
        if state["step"] % f == 0:
            _, _, beta3 = group["betas"]
            if group["accumulate"] == "ema":
                state["slow"].mul_(beta3).add_(state["window"], alpha=(1.0 - beta3) / f)
            else:
                state["slow"].add_(state["window"], alpha=beta3)
            state["slow_ortho"] = self._ns(group, state["slow"])
            state["window"].zero_()
            state["slow_updates"] += 1

    # -- everything else: AdamW from the same M1 and V ----------------------------------

    def _fallback_update(self, group: dict, p: torch.Tensor) -> None:
        g = p.grad
        state = self.state[p]
        if "step" not in state:
            state["step"] = 0
            state["fast"] = torch.zeros_like(p)
            state["second_moment"] = torch.zeros_like(p)
        state["step"] += 1
        self._write_fast_memories(group, state, g)

        first = state["fast"]
        if group["accumulate"] == "ema" and group["bias_correction"]:
            first = first / (1.0 - group["betas"][0] ** state["step"])
        if group["weight_decay"] != 0:
            p.mul_(1.0 - group["lr"] * group["weight_decay"])
        p.addcdiv_(first, self._denominator(group, state), value=-group["lr"])
