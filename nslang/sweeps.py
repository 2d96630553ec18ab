"""Sweeps: `sweep NAME { path = [v1, v2] ... }` declares a grid of variants of a model.

`nslang variants` expands the grid; here each axis is checked: the path names a model setting or
a member option, and each value is a list.
"""
from __future__ import annotations

from . import ir
from . import syntax as S
from .diagnostics import Diagnostics, did_you_mean
from .schema import CMS_OPTIONS, MEMORY_OPTIONS, MODEL_SETTINGS, OPTIMIZERS
from .values import evaluate


def lower_sweep(decl: S.SweepDecl, models: list[ir.Model], diags: Diagnostics) -> ir.Sweep | None:
    axes, ok = [], True
    for axis in decl.axes:
        val = evaluate(axis.values, {}, diags)
        if val is None:
            ok = False
            continue
        if not isinstance(val.value, tuple) or not val.value:
            diags.error("NS212", f"sweep axis `{axis.path.text}` needs a list of values",
                        span=axis.values.span, hint=f"`{axis.path.text} = [a, b, c]`")
            ok = False
            continue
        if not _path_ok(axis.path, models, diags):
            ok = False
            continue
        axes.append(ir.SweepAxis(span=axis.span, path=axis.path.text,
                                 values=tuple(v.plain() for v in val.value)))
    if not ok:
        return None
    return ir.Sweep(span=decl.span, name=decl.name.text, axes=tuple(axes))


def _path_ok(path: S.Sym, models: list[ir.Model], diags: Diagnostics) -> bool:
    parts = path.parts
    if len(parts) == 1:
        if parts[0] in MODEL_SETTINGS:
            return True
        diags.error("NS212", f"sweep axis `{path.text}` is not a model setting", span=path.span,
                    hint=did_you_mean(parts[0], MODEL_SETTINGS))
        return False
    if len(parts) != 2:
        diags.error("NS212", f"sweep axis `{path.text}` is `setting` or `member.option`",
                    span=path.span)
        return False
    owner, option = parts
    for m in models:
        member = m.member(owner)
        table = MEMORY_OPTIONS if isinstance(member, ir.Memory) else CMS_OPTIONS
        if member is None and m.optimizer is not None and m.optimizer.name == owner:
            table = OPTIMIZERS[m.optimizer.kind]
        elif member is None:
            continue
        if option in table:
            return True
        diags.error("NS212", f"`{owner}` has no option `{option}`", span=path.span,
                    hint=did_you_mean(option, table))
        return False
    diags.error("NS212", f"no member `{owner}` in this file's models", span=path.span,
                hint=did_you_mean(owner, [n.name for m in models for n in (*m.memories, *m.cms)]))
    return False
