"""Find where a NaN or inf first appeared, and say it in the spec's terms.

When a step's loss or gradient norm is not finite, the trainer reruns that step's forward pass
with a forward hook on every module. Hooks fire as modules finish, inner modules first, so the
first hook that sees a non-finite output names the innermost module where the value went bad. That
module is then placed in the spec: the nearest enclosing generated sublayer class carries its
.nsam line (`nsam_source = "file:line"`, or the "`name` (file:line). schedule." docstring), and
the plan's schedule names its level. When the forward pass is finite, the gradients are searched
instead (the backward produced the first NaN).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

_DOC = re.compile(r"^`(\w+)` \(([^()]+:\d+)\)\.\s*(.*)$", re.S)
_TOP = {"embed": "the token embedding", "norm": "the final norm", "head": "the output head"}


def has_nonfinite(x) -> bool:
    """True when any floating tensor inside x (tensors, tuples, lists, dicts, named tuples) is NaN/inf."""
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point() and not x.is_complex():
            return False
        if hasattr(x, "full_tensor"):
            x = x.full_tensor()
        return not bool(torch.isfinite(x).all())
    if isinstance(x, dict):
        return any(has_nonfinite(v) for v in x.values())
    if isinstance(x, (tuple, list)):
        return any(has_nonfinite(v) for v in x)
    return False


def has_tensor(x) -> bool:
    if isinstance(x, torch.Tensor):
        return True
    if isinstance(x, dict):
        return any(has_tensor(v) for v in x.values())
    if isinstance(x, (tuple, list)):
        return any(has_tensor(v) for v in x)
    return False


@dataclass
class Place:
    """Where a module sits in the spec."""

    module: str                 # qualified module name, e.g. blocks.1.continuum.levels.2
    memory: str | None = None   # the spec's memory / cms name
    source: str | None = None   # file:line of its declaration
    schedule: str | None = None  # its level(s) and frequency, from the plan
    block: int | None = None

    def describe(self) -> str:
        if self.memory is None:
            top = _TOP.get(self.module.split(".")[0])
            return f"{self.module} ({top})" if top else self.module
        where = f"memory `{self.memory}`" + (f" of block {self.block}" if self.block is not None else "")
        text = f"{self.module}, in {where} ({self.source})"
        return text + (f"; level: {self.schedule}" if self.schedule else "")


def locate(model: nn.Module, name: str, sublayers: dict | None = None) -> Place:
    """Place the module called `name` inside its nearest generated sublayer."""
    modules = dict(model.named_modules())
    parts = name.split(".") if name else []
    block = int(parts[1]) if len(parts) > 1 and parts[0] == "blocks" and parts[1].isdigit() else None
    for cut in range(len(parts), 0, -1):
        cls = type(modules.get(".".join(parts[:cut])))
        source = getattr(cls, "nsam_source", None)
        doc = _DOC.match((cls.__doc__ or "").strip())
        if source or doc:
            memory = doc.group(1) if doc else parts[cut - 1]
            source = _tidy(source or doc.group(2))
            plan = (sublayers or {}).get(cls.__name__, {})
            schedule = plan.get("schedule") or (doc.group(3).rstrip(".") if doc else None)
            return Place(name, memory, source, schedule, block)
    return Place(name, block=block)


def _tidy(source: str) -> str:
    """`spec/../../specs/x.nsam:24` -> `../specs/x.nsam:24` (an extends chain joins relative paths)."""
    file, sep, line = source.rpartition(":")
    return os.path.normpath(file) + sep + line if sep and line.isdigit() else source


_CHUNK = re.compile(r"chunk-parallel over (\d+) tokens")


@dataclass
class Finding:
    stage: str                                   # "forward", "backward" or "weights"
    place: Place | None = None
    bad_weights: list[str] = field(default_factory=list)
    bad_grads: list[str] = field(default_factory=list)
    unnormalised_chain: tuple[int, str] | None = None  # (levels, shape) of a CMS chained without level_norm
    # where a self-modifying group's retention starts (1.0: the group has none, `retain = 1`)
    self_modifying_retain: float | None = None

    def describe(self) -> str:
        if self.stage == "weights":
            return f"the weights already hold NaN/inf: {', '.join(self.bad_weights[:4])}"
        if self.stage == "forward":
            text = f"the first non-finite value came out of {self.place.describe()}"
            if self.bad_weights:
                text += f" (weights that already held NaN/inf: {', '.join(self.bad_weights[:3])})"
            return text
        if self.bad_grads:
            return (f"the forward pass is finite; the backward pass gave non-finite gradients to "
                    f"{self.place.describe() if self.place else self.bad_grads[0]}"
                    + (f" (and {len(self.bad_grads) - 1} more parameter(s))" if len(self.bad_grads) > 1 else ""))
        return "it did not recur when the step's forward pass was run again (a non-deterministic overflow?)"

    def hint(self) -> str:
        """Advice that depends on where the value appeared ("" when there is none)."""
        if self.stage == "forward" and self.unnormalised_chain:
            levels, shape = self.unnormalised_chain
            return (f"; the {levels} `{shape}` levels of `{self.place.memory}` read one another's raw output, "
                    f"a polynomial of degree {2 ** levels} in its input: use `shape = residual_mlp` (about "
                    "linear in its input; stock Hope's levels since its SwiGLU chain overflowed at dim 512), or "
                    "set `level_norm = rms` on it (which also bounds it, but with the exact signal the "
                    "gradient norm then grows ~35x per block)")
        if self.stage == "forward" and self.self_modifying_retain is not None:
            start = self.self_modifying_retain
            why = (f"; `{self.place.memory}` is a self-modifying group: its value generator regresses onto "
                   "its own output (Eq. 87), so once its gain passes ~1 each chunk's target outgrows the last "
                   "(at dim 512 its weights went 5 -> 70 -> 4e5 -> inf in four chunks). ")
            if start >= 1.0:  # no retention at all (Table 6's ablation diverged this way on MQAR)
                return why + ("It has no retention (`retain = 1`), so nothing shrinks its state: give it a "
                              "generated retention, as stock Hope's `retain_gen` with `retain_init = 0.95`")
            lower = 0.95 if start > 0.95 + 1e-6 else round(max(0.5, 1 - 2 * (1 - start)), 2)
            return why + (f"Its retention starts at {start:.4g}: start it lower, e.g. `retain_init = {lower:g}` "
                          "on that memory (stock Hope sets 0.95), which shrinks the state every token until the "
                          "outer loss raises alpha")
        chunk = _CHUNK.search(self.place.schedule or "") if self.place else None
        if self.stage != "forward" or not chunk or int(chunk.group(1)) < 2:
            return ""
        # Mini-batch GD takes every token's gradient at the chunk start: its stable learning rate
        # shrinks about as 1 / chunk (a Titans memory that blew up at chunk 16 on MQAR stayed
        # bounded on the same inputs with per-token gradients).
        return (f"; `{self.place.memory}` updates chunk-parallel over {chunk.group(1)} tokens (every gradient "
                "taken at the chunk start), which tolerates a smaller step than per-token updates: a shorter "
                "chunk (its level's `every`) or, for an MLP memory with `lr = data`, a cap on its lr "
                "(`lr_max`, e.g. 0.002 as stock Titans) may also help")


def first_nonfinite_module(model: nn.Module, run: Callable[[], object]) -> str | None:
    """Run `run()` with a forward hook on every submodule of `model`; return the name of the first
    module to finish with a non-finite output, or None."""
    found: list[str] = []
    handles = []

    def hook_for(name):
        def hook(_module, _inputs, output):
            if not found and has_nonfinite(output):
                found.append(name)
        return hook

    for name, module in model.named_modules():
        handles.append(module.register_forward_hook(hook_for(name)))
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


def _enclosing(model: nn.Module, name: str, cls: type) -> nn.Module | None:
    """The innermost module of class `cls` among `name` and the modules that hold it."""
    modules = dict(model.named_modules())
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        m = modules.get(".".join(parts[:cut]))
        if isinstance(m, cls):
            return m
    return None


def _unnormalised_chain(model: nn.Module, name: str) -> tuple[int, str] | None:
    """(levels, shape) when `name` is in a CMS whose SwiGLU levels are chained without `level_norm`
    (each level quadratic in its input, so the chain grows as a power of 2^levels)."""
    from ..layers.continuum import Continuum

    m = _enclosing(model, name, Continuum)
    if m is None:
        return None
    chained = m.variant != "independent" and len(m.levels) > 1 and m.kind == "swiglu"
    return (len(m.levels), m.kind) if chained and m.level_norm == "none" else None


def _self_modifying_retain(model: nn.Module, name: str) -> float | None:
    """Where the retention of the self-modifying group holding `name` starts (sigmoid of its
    offset; 1.0 when the group has no retention), or None when `name` is not inside one."""
    from ..layers.selfmod import SelfModifying

    m = _enclosing(model, name, SelfModifying)
    if m is None:
        return None
    return 1 / (1 + math.exp(-m.alpha_bias)) if m.retention else 1.0


def diagnose(model: nn.Module, rerun: Callable[[], object], sublayers: dict | None = None) -> Finding:
    """Explain a non-finite loss or gradient norm. `rerun()` repeats the step's forward pass(es);
    gradients are read as they are (from the failed step's backward)."""
    bad_grads = [n for n, p in model.named_parameters() if p.grad is not None and has_nonfinite(p.grad)]
    bad_weights = [n for n, p in model.named_parameters() if has_nonfinite(p.detach())]
    with torch.no_grad():
        name = first_nonfinite_module(model, rerun)
    if name is not None:
        return Finding("forward", locate(model, name, sublayers), bad_weights, bad_grads,
                       _unnormalised_chain(model, name), _self_modifying_retain(model, name))
    if bad_weights:
        return Finding("weights", None, bad_weights, bad_grads)
    place = None
    if bad_grads:
        module = bad_grads[0].rsplit(".", 1)[0]
        place = locate(model, module, sublayers)
    return Finding("backward", place, bad_weights, bad_grads)
