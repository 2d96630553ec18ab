"""The front end as one function: a .nsam path -> IR, checked models, diagnostics."""
from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path

from . import ir
from .checks import CheckedModel, check_model
from .diagnostics import Diagnostics, NslangError
from .lower import check_name, lower_model, lower_optimizer
from .merge import Decl, Loader
from .sweeps import lower_sweep


@dataclass
class Result:
    spec: ir.Spec | None
    checked: list[CheckedModel] = field(default_factory=list)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.diagnostics.errors


def check_file(path: str | Path) -> Result:
    """Parse, merge `extends`, lower and check every model of a file; never raises on bad input."""
    # The parse tree and the IR are many small acyclic objects: the cyclic collector finds
    # nothing in them but, run every few hundred allocations, took 40% of a big spec's check.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _check_file(path)
    finally:
        if enabled:
            gc.enable()


def _check_file(path: str | Path) -> Result:
    diags = Diagnostics()
    path = Path(path)
    loader = Loader(diags)
    loaded = loader.load_file(path)
    if loaded is None:
        return Result(None, [], diags)
    tree = loaded.syntax
    models, checked, seen = [], [], {}
    for decl in tree.models:
        if decl.name.text in seen:
            diags.error("NS102", f"model `{decl.name.text}` is declared twice", span=decl.name.span,
                        notes=[("first declared", seen[decl.name.text])])
            continue
        seen[decl.name.text] = decl.name.span
        merged = loader.merge(path, decl)
        if merged is None:
            continue
        n_before = len(diags.errors)
        model, failed = lower_model(merged, diags)
        if model is None:
            continue
        ok = check_model(model, diags, failed)
        if ok is not None and len(diags.errors) == n_before:
            models.append(model)
            checked.append(ok)
    optimizers = []
    for o in tree.optimizers:
        check_name(o.name, "optimizer", diags)
        lowered = lower_optimizer(Decl("optimizer", o.name, o.span, _opts(o, loaded, diags),
                                       opt_kind=o.kind), diags)
        if lowered is not None:
            optimizers.append(lowered)
    if not tree.models and not tree.optimizers:
        from .source import SOURCES
        src = SOURCES[str(path)]
        diags.error("NS108", f"`{path}` declares no model or optimizer", span=src.span(0, 0),
                    hint="a spec declares `model NAME { ... }` or `optimizer NAME : KIND { ... }`")
    sweeps = [s for s in (lower_sweep(s, models, diags) for s in tree.sweeps) if s]
    consts = {k: v.plain() for k, v in loaded.consts.items()
              if v is not None and not isinstance(v.plain(), tuple)}
    spec = ir.Spec(file=str(path), models=tuple(models), optimizers=tuple(optimizers),
                   sweeps=tuple(sweeps), consts=consts)
    return Result(spec, checked, diags)


def _opts(o, loaded, diags):
    from .values import evaluate
    out = {}
    for opt in o.options:
        val = evaluate(opt.value, loaded.consts, diags)
        if val is not None:
            out[opt.name.text] = (opt.name, val)
    return out


def load_checked(path: str | Path) -> list[CheckedModel]:
    """For library users: the checked models of a file, or NslangError with every diagnostic."""
    result = check_file(path)
    if not result.ok:
        raise NslangError(result.diagnostics)
    return result.checked
