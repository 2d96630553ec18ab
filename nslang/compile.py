"""Spec -> generated package: check, plan, render, write."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .frontend import Result, check_file
from .plan import Plan, plan_model, spec_hash
from .source import SOURCES


@dataclass
class Compiled:
    result: Result
    plan: Plan | None = None
    files: dict[str, str] | None = None


def compile_spec(spec: str | Path, out: str | Path, model: str | None = None) -> Compiled:
    """Check and plan `spec`, render its package (not written: see `codegen.emit.write_package`)."""
    from codegen.emit import render

    result = check_file(spec)
    if not result.ok or not result.checked:
        if result.spec is not None and not result.checked and not result.diagnostics.errors:
            result.diagnostics.error("NS108", f"`{spec}` declares no model to compile")
        return Compiled(result)
    checked = next((c for c in result.checked if model in (None, c.model.name)), None)
    if checked is None:
        result.diagnostics.error("NS101", f"no model `{model}` in `{spec}`")
        return Compiled(result)
    files = [checked.model.span.file, *checked.model.extends]
    digest = spec_hash([(Path(f).name, SOURCES[f].text) for f in files if f in SOURCES])
    plan = plan_model(checked, digest, result.diagnostics)
    if plan is None:
        return Compiled(result)
    return Compiled(result, plan, render(plan, str(spec), str(out)))
