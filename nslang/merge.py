"""Files and `extends`: read each file once, follow the chain, apply overrides.

A child model starts from its parent's merged declarations, then:
- a `level`, `memory`, `cms` or `optimizer` with an inherited name replaces the inherited one;
- `remove NAME` drops a declaration and every flow and transfer that names it;
- `name.option = value` overrides one option of an inherited memory, CMS or optimizer;
- if the child writes any `flow`, its flows replace the inherited ones (a flow is a wiring, not
  an addition); transfers accumulate (an identical transfer is kept once).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import syntax as S
from .diagnostics import Diagnostics, did_you_mean
from .parser import parse_source, read_source
from .source import Span
from .values import Val, evaluate

STOCK_DIR = Path(__file__).resolve().parent.parent / "specs"
MAX_EXTENDS_DEPTH = 64


@dataclass
class Decl:
    """A level, memory, CMS or optimizer after evaluation: options are evaluated values."""

    kind: str                      # level | memory | cms | optimizer
    name: S.Name
    span: Span
    options: dict[str, tuple[S.Name, Val]] = field(default_factory=dict)
    level: S.Name | None = None    # memory/optimizer: the level it lives on
    freq: tuple[str, Val | None] | None = None  # level: (kind, period)
    opt_kind: S.Name | None = None  # optimizer: sgd | adamw | ...


@dataclass
class Merged:
    """One model with its `extends` chain applied."""

    name: S.Name
    span: Span
    chain: list[str] = field(default_factory=list)
    settings: dict[str, tuple[S.Sym, Val]] = field(default_factory=dict)
    decls: dict[str, Decl] = field(default_factory=dict)
    flows: list[S.FlowDecl] = field(default_factory=list)
    transfers: list[S.TransferDecl] = field(default_factory=list)
    overrides: list[tuple[S.Sym, Val]] = field(default_factory=list)


@dataclass
class LoadedFile:
    syntax: S.File
    consts: dict[str, Val | None]  # None: the constant's value is wrong (already reported)


class Loader:
    """Reads files (each once) and merges models along their `extends` chains."""

    def __init__(self, diags: Diagnostics):
        self.diags = diags
        self.files: dict[Path, LoadedFile | None] = {}
        self._merging: list[tuple[Path, str]] = []

    def load_file(self, path: Path) -> LoadedFile | None:
        key = path.resolve() if path.exists() else path
        if key not in self.files:
            self.files[key] = None  # guard re-entry while parsing
            src = read_source(path, self.diags)
            tree = parse_source(src, self.diags) if src is not None else None
            self.files[key] = LoadedFile(tree, self._consts(tree)) if tree is not None else None
        return self.files[key]

    def _consts(self, tree: S.File) -> dict[str, Val | None]:
        consts: dict[str, Val | None] = {}
        declared: dict[str, Span] = {}
        for c in tree.consts:
            if c.name.text in declared:
                self.diags.error("NS102", f"constant `{c.name.text}` is declared twice",
                                 span=c.name.span, notes=[("first declared", declared[c.name.text])])
                continue
            declared[c.name.text] = c.name.span
            # kept even when None, so its uses fail quietly instead of reading it as a bare word
            consts[c.name.text] = evaluate(c.value, consts, self.diags)
        return consts

    # -- models ---------------------------------------------------------------------------------
    def merge(self, path: Path, model: S.ModelDecl) -> Merged | None:
        key = (path.resolve(), model.name.text)
        if key in self._merging:
            cycle = " -> ".join(f"{p.name}:{m}" for p, m in self._merging[self._merging.index(key):])
            self.diags.error("NS109", f"`extends` cycle: {cycle} -> {model.name.text}",
                             span=model.extends.span if model.extends else model.name.span,
                             hint="a model cannot inherit from itself, directly or indirectly")
            return None
        if len(self._merging) >= MAX_EXTENDS_DEPTH:  # each step recurses (and parses a file)
            self.diags.error("NS004", f"`extends` chain longer than {MAX_EXTENDS_DEPTH} models",
                             span=model.extends.span if model.extends else model.name.span,
                             hint="a spec inherits through a few models at most; is the chain "
                             "machine-generated?")
            return None
        self._merging.append(key)
        try:
            return self._merge(path, model)
        finally:
            self._merging.pop()

    def _merge(self, path: Path, model: S.ModelDecl) -> Merged | None:
        loaded = self.load_file(path)
        consts = loaded.consts if loaded else {}
        if model.extends is not None:
            parent = self._parent(path, model)
            if parent is None:
                return None
            merged = parent
            merged.name, merged.span = model.name, model.span
        else:
            merged = Merged(model.name, model.span)
        self._apply(merged, model, consts)
        return merged

    def _parent(self, path: Path, model: S.ModelDecl) -> Merged | None:
        ext = model.extends
        target = resolve_extends(path, ext)
        if target is None:
            where = "next to this file or among the stock specs" if isinstance(ext, S.Name) else \
                f"at {path.parent / ext.value}"
            stock = sorted(p.stem for p in STOCK_DIR.rglob("*.nsam")) if STOCK_DIR.is_dir() else []
            name = ext.text if isinstance(ext, S.Name) else ext.value
            self.diags.error("NS110", f"cannot find the spec `{name}` that `{model.name.text}` "
                             f"extends ({where})", span=ext.span,
                             hint=did_you_mean(Path(name).stem, stock) if stock else None)
            return None
        loaded = self.load_file(target)
        if loaded is None:
            self.diags.error("NS110", f"the spec `{target}` that `{model.name.text}` extends has "
                             "errors (reported above)", span=ext.span)
            return None
        models = loaded.syntax.models
        wanted = ext.text if isinstance(ext, S.Name) else target.stem
        pick = [m for m in models if m.name.text == wanted] or (models if len(models) == 1 else [])
        if not pick:
            self.diags.error("NS110", f"`{target}` has no model to extend", span=ext.span,
                             hint=did_you_mean(wanted, [m.name.text for m in models]))
            return None
        parent = self.merge(target, pick[0])
        if parent is not None:
            parent.chain = [str(target)] + parent.chain
        return parent

    def _apply(self, merged: Merged, model: S.ModelDecl, consts: dict[str, Val]) -> None:
        own: dict[str, Span] = {}      # names declared by this model (duplicates are errors)
        own_settings: dict[str, Span] = {}
        child_flows: list[S.FlowDecl] = []
        for item in model.items:
            if isinstance(item, S.Setting):
                val = evaluate(item.value, consts, self.diags)
                if val is None:
                    continue
                if len(item.path.parts) == 1:
                    key = item.path.text
                    if key in own_settings:
                        self.diags.error("NS102", f"setting `{key}` is set twice in model "
                                         f"`{model.name.text}`", span=item.path.span,
                                         notes=[("first set", own_settings[key])])
                        continue
                    own_settings[key] = item.path.span
                    merged.settings[key] = (item.path, val)
                else:
                    merged.overrides.append((item.path, val))
            elif isinstance(item, S.RemoveDecl):
                self._remove(merged, item)
            elif isinstance(item, S.FlowDecl):
                child_flows.append(item)
            elif isinstance(item, S.TransferDecl):
                merged.transfers.append(item)
            else:
                for decl in self._decls(item, consts):
                    name = decl.name.text
                    if name in own:
                        self.diags.error("NS102", f"`{name}` is declared twice in model "
                                         f"`{model.name.text}`", span=decl.name.span,
                                         notes=[("first declared", own[name])],
                                         hint="rename one of them; to change an inherited "
                                         "declaration, redeclare it once")
                        continue
                    own[name] = decl.name.span
                    merged.decls[name] = decl
        if child_flows:
            merged.flows = child_flows
        _apply_overrides(merged, self.diags)
        seen, unique = set(), []
        for t in merged.transfers:
            key = (t.source.text, t.target.text, t.kind.text, tuple(map(repr, t.args)))
            if key not in seen:
                seen.add(key)
                unique.append(t)
        merged.transfers = unique

    def _decls(self, item, consts) -> list[Decl]:
        def options(opts) -> dict[str, tuple[S.Name, Val]]:
            out = {}
            for o in opts:
                val = evaluate(o.value, consts, self.diags)
                if val is None:
                    continue
                if o.name.text in out:
                    self.diags.error("NS102", f"option `{o.name.text}` is set twice",
                                     span=o.name.span, notes=[("first set", out[o.name.text][0].span)])
                    continue
                out[o.name.text] = (o.name, val)
            return out

        if isinstance(item, S.LevelDecl):
            period = evaluate(item.period, consts, self.diags) if item.period is not None else None
            return [Decl("level", item.name, item.span, freq=(item.kind, period))]
        if isinstance(item, S.MemoryDecl):
            opts = options(item.options)
            return [Decl("memory", n, item.span, dict(opts), level=item.level) for n in item.names]
        if isinstance(item, S.CmsDecl):
            return [Decl("cms", item.name, item.span, options(item.options))]
        if isinstance(item, S.OptimizerDecl):
            return [Decl("optimizer", item.name, item.span, options(item.options),
                         level=item.level, opt_kind=item.kind)]
        raise TypeError(item)

    def _remove(self, merged: Merged, item: S.RemoveDecl) -> None:
        name = item.name.text
        if name not in merged.decls:
            self.diags.error("NS101", f"cannot remove `{name}`: nothing of that name is inherited",
                             span=item.name.span, hint=did_you_mean(name, merged.decls))
            return
        del merged.decls[name]
        merged.flows = [f for f in merged.flows if name not in {n.text for n in f.path}]
        merged.transfers = [t for t in merged.transfers if name not in (t.source.text, t.target.text)]


def resolve_extends(path: Path, ext: S.Str | S.Name) -> Path | None:
    """`extends "file.nsam"` is relative to the extending file; `extends name` looks next to the
    file, then in $NSLANG_SPEC_PATH, then among the stock specs."""
    if isinstance(ext, S.Str):
        target = path.parent / ext.value
        return target if target.is_file() else None
    roots = [path.parent] + [Path(p) for p in os.environ.get("NSLANG_SPEC_PATH", "").split(os.pathsep) if p]
    for root in roots:
        cand = root / f"{ext.text}.nsam"
        if cand.is_file():
            return cand
    if STOCK_DIR.is_dir():
        found = sorted(STOCK_DIR.rglob(f"{ext.text}.nsam"))
        if found:
            return found[0]
    return None


def _apply_overrides(m: Merged, diags: Diagnostics) -> None:
    """Apply one model's `member.option = value` lines to the declarations it has so far
    (its own and inherited), so a later child that removes or redeclares the member is not
    affected."""
    for path, val in m.overrides:
        if len(path.parts) != 2:
            diags.error("NS101", f"`{path.text}`: an override is `member.option = value`",
                        span=path.span)
            continue
        owner, option = path.parts
        decl = m.decls.get(owner)
        if decl is None or decl.kind == "level":
            diags.error("NS101", f"cannot override `{path.text}`: no memory, CMS or optimizer "
                        f"`{owner}`", span=path.span,
                        hint=did_you_mean(owner, [k for k, d in m.decls.items() if d.kind != "level"]))
            continue
        decl.options[option] = (S.Name(option, path.span), val)
    m.overrides = []
