"""Spec or package directory -> an imported compiled package (Config, Model), its plan and spec.

Given a spec, the run compiles it into `<out>/package` and writes `plan.json` beside the generated
files: the plan (the optimizer, the levels, the sublayers) and the text of every spec file it was
compiled from, so that a run directory says exactly what was trained. Given a directory made by
`nslang compile`, it is imported as it is.

A package is imported by file location under a name derived from its contents, so two runs in one
process (tests, the benchmark) never see each other's modules.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable

from .config import render_value
from .errors import TrainError

PLAN_FILE = "plan.json"
# A spec without an `optimizer` trains with AdamW and the defaults docs/language.md gives it.
DEFAULT_OPTIMIZER = {"name": "adamw", "kind": "adamw", "lr": 3e-4, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8,
                     "weight_decay": 0.1}


@dataclass
class Package:
    """A compiled model package, imported."""

    path: Path
    module: ModuleType
    spec_hash: str
    model_name: str
    plan: dict | None = None
    spec_files: dict[str, str] = field(default_factory=dict)  # file name -> text, the spec first
    notes: list[str] = field(default_factory=list)

    @property
    def Config(self):
        return self.module.Config

    @property
    def Model(self):
        return self.module.Model

    @property
    def optimizer(self) -> dict:
        """The spec's outer optimizer: {name, kind, options...}; AdamW when the spec names none."""
        opt = (self.plan or {}).get("optimizer")
        return dict(opt) if opt else dict(DEFAULT_OPTIMIZER)

    def sublayers(self) -> dict[str, dict]:
        """Planned sublayers by class name (name, source line, schedule), for messages."""
        return {s["cls"]: s for s in (self.plan or {}).get("sublayers", [])}


def derive_spec(spec: Path, overrides: dict, folder: Path) -> Path:
    """Write `model <stem>_run extends "<spec>" { key = value ... }` into `folder`; return its path.

    The extends path is relative to the derived file, so a run directory moved together with the
    spec keeps its spec hash.
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = derived_name(spec)[:-len(".nsam")]
    parent = os.path.relpath(spec.resolve(), folder.resolve()).replace(os.sep, "/")
    lines = ["# Written by `nslang train` from the run's `set` overrides.",
             f'model {name} extends "{parent}" {{']
    lines += [f"  {key} = {render_value(value)}" for key, value in overrides.items()]
    lines.append("}")
    path = folder / f"{name}.nsam"
    _write_text(path, "\n".join(lines) + "\n")
    return path


def derived_name(spec: Path) -> str:
    stem = re.sub(r"\W", "_", spec.stem)
    return (f"{stem}_run" if stem[:1].isalpha() else f"m_{stem}_run") + ".nsam"


def _read_or_none(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def _restore(path: Path, text: str | None) -> None:
    """Put back the derived spec a refused compile replaced (or remove the one it created)."""
    if text is None:
        path.unlink(missing_ok=True)
    else:
        _write_text(path, text)


def compile_package(spec: str | Path, out: Path, model: str | None = None, overrides: dict | None = None,
                    before_write: Callable[[str], None] | None = None) -> Package:
    """Compile `spec` (with `overrides`, if any) into `out/package` and import it.

    `before_write(spec_hash)` runs after a successful compile and before any file is written, so a
    caller can refuse (raise) without touching what is on disk.
    """
    from nslang.compile import compile_spec
    from nslang.source import SOURCES

    spec = Path(spec)
    if not spec.is_file():
        raise TrainError(f"spec {spec} does not exist", "give a .nsam file or a compiled package directory")
    target = spec
    if overrides:
        if model is not None:
            raise TrainError("`model` and `set` cannot be combined: a derived spec extends one model",
                             "put the overrides in a spec that extends the model you want")
        previous = _read_or_none(out / "spec" / derived_name(spec))
        target = derive_spec(spec, overrides, out / "spec")
    pkg_dir = out / "package"
    try:
        compiled = compile_spec(target, pkg_dir, model)
        if compiled.plan is None:
            text = compiled.result.diagnostics.render() if compiled.result.diagnostics.items else ""
            raise TrainError(f"{target} does not compile:\n{text}".rstrip(),
                             "fix the errors above (`nslang check` shows them too)")
        plan = compiled.plan
        if before_write is not None:
            before_write(plan.spec_hash)
    except BaseException:
        if overrides:
            _restore(target, previous)
        raise
    checked = next(c for c in compiled.result.checked if c.model.name == plan.model)
    names = [checked.model.span.file, *checked.model.extends]
    spec_files = {os.path.normpath(f): SOURCES[f].text for f in names if f in SOURCES}

    from codegen.emit import write_package

    write_package(compiled.files, pkg_dir)
    record = {"plan": plan.to_dict(), "spec_files": spec_files}
    _write_text(pkg_dir / PLAN_FILE, json.dumps(record, indent=1) + "\n")
    return open_package(pkg_dir)


def open_package(path: str | Path) -> Package:
    """Import a compiled package directory (one with `__init__.py`, `config.py`, `model.py`)."""
    path = Path(path)
    missing = [f for f in ("__init__.py", "config.py", "model.py") if not (path / f).is_file()]
    if missing:
        raise TrainError(f"{path} is not a compiled package (missing {', '.join(missing)})",
                         "give a .nsam spec, or a directory made by `nslang compile SPEC -o DIR`")
    module = import_package(path)
    plan, spec_files, notes = None, {}, []
    if (path / PLAN_FILE).is_file():
        record = json.loads((path / PLAN_FILE).read_text())
        plan, spec_files = record.get("plan"), record.get("spec_files", {})
    else:
        plan, spec_files = _recover_plan(path, getattr(module, "SPEC_HASH", ""))
        if plan is None:
            notes.append(f"{path} has no {PLAN_FILE} and its spec could not be found: the optimizer "
                         "defaults to AdamW and checkpoints keep the generated files instead of the spec")
            spec_files = {name: (path / name).read_text() for name in ("config.py", "model.py")}
    spec_hash = getattr(module, "SPEC_HASH", None) or (plan or {}).get("spec_hash", "")
    model_name = (plan or {}).get("model") or _header_field(path, r"model `(\w+)`") or path.name
    return Package(path, module, spec_hash, model_name, plan, spec_files, notes)


def load(source: str | Path, out: Path, model: str | None = None, overrides: dict | None = None,
         before_write: Callable[[str], None] | None = None) -> Package:
    """A spec file is compiled into `out/package`; a directory is opened as a compiled package."""
    source = Path(source)
    if source.is_dir():
        if overrides:
            raise TrainError(f"`set` overrides need a spec, and {source} is a compiled package",
                             "train the .nsam spec instead, or compile the overridden spec yourself")
        pkg = open_package(source)
        if before_write is not None:
            before_write(pkg.spec_hash)
        return pkg
    return compile_package(source, out, model, overrides, before_write)


def import_package(path: Path) -> ModuleType:
    digest = hashlib.sha256()
    for name in ("__init__.py", "config.py", "model.py"):
        digest.update((path / name).read_bytes())
    name = f"nslang_package_{digest.hexdigest()[:16]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path / "__init__.py",
                                                  submodule_search_locations=[str(path)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        raise TrainError(f"cannot import the compiled package {path}: {type(err).__name__}: {err}",
                         "recompile it with this version of nslang") from None
    for attr in ("Config", "Model"):
        if not hasattr(module, attr):
            raise TrainError(f"the package {path} exports no `{attr}`", "recompile it with `nslang compile`")
    return module


def _header_field(path: Path, pattern: str) -> str | None:
    first = (path / "model.py").read_text().split("\n", 2)[0]
    m = re.search(pattern, first)
    return m.group(1) if m else None


def _recover_plan(path: Path, spec_hash: str) -> tuple[dict | None, dict]:
    """For a package from `nslang compile` (no plan.json): recompile the spec its header names, and
    use that plan if it has the same hash."""
    from nslang.compile import compile_spec
    from nslang.source import SOURCES

    spec = _header_field(path, r"Generated by nslang from (.+?) \(model")
    if not spec:
        return None, {}
    for candidate in (Path(spec), path.parent / spec, path.parent.parent / spec):
        if candidate.is_file():
            compiled = compile_spec(candidate, path)
            if compiled.plan is not None and compiled.plan.spec_hash == spec_hash:
                checked = next(c for c in compiled.result.checked if c.model.name == compiled.plan.model)
                names = [checked.model.span.file, *checked.model.extends]
                return compiled.plan.to_dict(), {os.path.normpath(f): SOURCES[f].text for f in names if f in SOURCES}
    return None, {}


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
