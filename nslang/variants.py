"""Variants: a grid of overrides of one spec, written as small child specs, checked and compiled.

    nslang variants hope.nsam --set dim=128,256 --set continuum.lr=0.01,0.1 -o variants/hope

Each grid point becomes `<out>/<model>_vNN.nsam`:

    # nslang variants: point 3 of 4 (dim=256 continuum.lr=0.01)
    model hope_v03 extends "../../specs/hope.nsam" {
      dim = 256
      continuum.lr = 0.01
    }

which is checked and compiled into `<out>/build/<model>_vNN/package/` (with its plan.json, as
`nslang train` builds a run's package).
The spec's own `sweep NAME { path = [v1, v2] }` blocks are grids too: every sweep of the file is
expanded (or those named with `--sweep`), each crossed with the `--set` axes (a `--set` axis
replaces a sweep axis of the same path). `<out>/index.json` lists the points:

    {"spec", "model", "axes": {path: [values]}, "variants": [{"name", "spec", "package",
     "overrides": {path: value text}, "sweep", "ok", "errors", "spec_hash"}]}

`nslang sweep <out>` trains every point that compiled; `nslang report` compares the runs.
"""
from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from runtime.train.errors import TrainError

INDEX = "index.json"
VARIANT_FILE = "variant.json"  # written into each run of `nslang sweep`


class VariantError(TrainError):
    """Bad input to `nslang variants` / `nslang sweep`: a message and a hint; exit status 1."""


@dataclass
class Point:
    overrides: dict[str, str]          # path -> value as .nsam text, in axis order
    sweep: str | None = None           # the sweep block it comes from
    name: str = ""
    spec: str = ""
    package: str = ""
    ok: bool = False
    errors: str = ""
    spec_hash: str = ""
    extra: dict = field(default_factory=dict)

    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.overrides.items())

    def to_dict(self) -> dict:
        return {"name": self.name, "spec": self.spec, "package": self.package, "overrides": self.overrides,
                "label": self.label(), "sweep": self.sweep, "ok": self.ok, "errors": self.errors,
                "spec_hash": self.spec_hash}


def split_values(text: str) -> list[str]:
    """`v1,v2,[a, b],f(x=1, y=2)` -> the values, split at commas outside brackets and parentheses."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
            if depth < 0:
                raise VariantError(f"unbalanced brackets in {text!r}")
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if depth:
        raise VariantError(f"unbalanced brackets in {text!r}")
    out.append(cur.strip())
    if any(not v for v in out):
        raise VariantError(f"an empty value in {text!r}")
    return out


_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)?$")


def parse_sets(items: list[str]) -> dict[str, list[str]]:
    """`--set KEY=V1,V2` items -> {key: [value texts]} (a repeated key is an error)."""
    axes: dict[str, list[str]] = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise VariantError(f"--set {item!r} is not KEY=V1,V2,...", "for example --set dim=128,256")
        if not _PATH.match(key):
            raise VariantError(f"--set {key!r} is not a setting or member.option name",
                               "for example --set dim=128,256 or --set continuum.lr=0.01,0.1")
        if key in axes:
            raise VariantError(f"--set {key} is given twice", "list all its values in one --set: KEY=V1,V2")
        vals = split_values(values)
        for v in vals:
            if any(c in v for c in "\n;{}#\""):
                raise VariantError(f"--set {key}: the value {v!r} holds a newline, ';', '{{', '}}', '#' or a quote")
        axes[key] = vals
    return axes


def render(value) -> str:
    """A sweep value from the IR (plain JSON-like form) as .nsam text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def expand(spec: str | Path, sets: dict[str, list[str]] | None = None, sweeps: list[str] | None = None,
           model: str | None = None):
    """(checked model name, [Point]) of the grid: the `--set` axes crossed with each selected
    sweep of the file (or alone when the file has none, or when `sweeps == []`)."""
    from .frontend import check_file

    spec = Path(spec)
    if not spec.is_file():
        raise VariantError(f"spec {spec} does not exist")
    result = check_file(str(spec))
    if not result.ok or not result.checked:
        text = result.diagnostics.render() if result.diagnostics.items else "declares no model"
        raise VariantError(f"{spec} does not check:\n{text}", "fix the spec first (`nslang check`)")
    names = [c.model.name for c in result.checked]
    if model is None:
        model = names[0]
    elif model not in names:
        raise VariantError(f"no model `{model}` in {spec}; it has {', '.join(names)}")
    # `extends "path"` takes the model named like the file, or the file's only model
    own = [m for m in result.spec.models] if result.spec is not None else []
    if len(own) > 1 and model != spec.stem:
        raise VariantError(f"{spec} declares {len(own)} models, and a child spec extending it by path gets "
                           f"the one named `{spec.stem}` (none, or not `{model}`)",
                           f"put `{model}` in a file of its own, {model}.nsam")
    sets = dict(sets or {})
    file_sweeps = list(result.spec.sweeps) if result.spec is not None else []
    if sweeps is not None:
        known = {s.name for s in file_sweeps}
        missing = [s for s in sweeps if s not in known]
        if missing:
            raise VariantError(f"no sweep {', '.join(missing)} in {spec}",
                               f"its sweeps: {', '.join(sorted(known)) or 'none'}")
        file_sweeps = [s for s in file_sweeps if s.name in sweeps]
    grids: list[tuple[str | None, dict[str, list[str]]]] = []
    for sw in file_sweeps:
        axes = {a.path: [render(v) for v in a.values] for a in sw.axes if a.path not in sets}
        grids.append((sw.name, {**axes, **sets}))
    if not grids:
        if not sets:
            raise VariantError(f"nothing to vary: give --set KEY=V1,V2 (and {spec} has no sweep block)")
        grids.append((None, sets))
    points: list[Point] = []
    seen: set[tuple] = set()
    for sweep, axes in grids:
        keys = list(axes)
        for combo in itertools.product(*(axes[k] for k in keys)):
            overrides = dict(zip(keys, combo))
            key = tuple(sorted(overrides.items()))
            if key in seen:  # the same point from two sweeps: once
                continue
            seen.add(key)
            points.append(Point(overrides, sweep))
    return model, points


def write(spec: str | Path, points: list[Point], out: str | Path, model: str) -> dict:
    """Write, check and compile every point; write the index; return it."""
    from runtime.train.build import compile_package

    spec, out = Path(spec), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    width = max(2, len(str(len(points) - 1)))
    parent = os.path.relpath(spec.resolve(), out.resolve()).replace(os.sep, "/")
    axes: dict[str, list[str]] = {}
    for i, p in enumerate(points):
        for k, v in p.overrides.items():
            if v not in axes.setdefault(k, []):
                axes[k].append(v)
        p.name = f"{model}_v{i:0{width}d}"
        path = out / f"{p.name}.nsam"
        lines = [f"# nslang variants: point {i + 1} of {len(points)}"
                 + (f" of sweep `{p.sweep}`" if p.sweep else "") + f" ({p.label()})",
                 f'model {p.name} extends "{parent}" {{']
        lines += [f"  {k} = {v}" for k, v in p.overrides.items()]
        lines.append("}")
        path.write_text("\n".join(lines) + "\n")
        p.spec = path.name
        try:
            pkg = compile_package(path, out / "build" / p.name)
        except TrainError as err:
            p.ok, p.errors = False, err.message
            continue
        p.ok, p.spec_hash = True, pkg.spec_hash
        p.package = os.path.relpath(pkg.path, out).replace(os.sep, "/")
    index = {"spec": parent, "model": model, "axes": axes, "variants": [p.to_dict() for p in points]}
    tmp = out / f".{INDEX}.tmp"
    tmp.write_text(json.dumps(index, indent=1) + "\n")
    os.replace(tmp, out / INDEX)
    return index


def read_index(path: str | Path) -> tuple[Path, dict]:
    """(folder, index) from a variants folder or its index.json."""
    path = Path(path)
    index_path = path / INDEX if path.is_dir() else path
    if not index_path.is_file():
        raise VariantError(f"no {INDEX} in {path}", "make one with `nslang variants SPEC --set KEY=V1,V2 -o DIR`")
    try:
        index = json.loads(index_path.read_text())
    except json.JSONDecodeError as err:
        raise VariantError(f"{index_path} is not valid JSON ({err.msg})") from None
    if not isinstance(index, dict) or not isinstance(index.get("variants"), list):
        raise VariantError(f"{index_path} is not a variants index (no `variants` list)")
    return index_path.parent, index
