"""Evaluating syntax values: constants substituted, arithmetic folded, spans kept.

A `Val` is a Python value plus the span it came from, so a later check can point at the exact
number or word that is wrong.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from . import syntax as S
from .diagnostics import Diagnostics, did_you_mean
from .source import Span


class Mult(float):
    """A width written as a multiple of the model width: `4x`."""

    def __repr__(self) -> str:
        return f"{float(self):g}x"


@dataclass(frozen=True)
class CallV:
    name: str
    args: tuple["Val", ...]
    kwargs: dict[str, "Val"]


@dataclass(frozen=True)
class Word:
    """A bare word (an enum value or a reference to a declared name)."""

    text: str


Py = Union[bool, int, float, str, Mult, Word, CallV, tuple]


@dataclass(frozen=True)
class Val:
    value: Py
    span: Span

    def plain(self):
        """JSON-friendly form, for dumps and sweeps."""
        v = self.value
        if isinstance(v, Word):
            return v.text
        if isinstance(v, CallV):
            args = ", ".join([str(a.plain()) for a in v.args]
                             + [f"{k}={a.plain()}" for k, a in v.kwargs.items()])
            return f"{v.name}({args})"
        if isinstance(v, tuple):
            return tuple(x.plain() for x in v)
        if isinstance(v, Mult):
            return repr(v)
        return v


def evaluate(node: S.Value, consts: dict[str, Val | None], diags: Diagnostics) -> Val | None:
    """Fold a syntax value; report (and return None for) what cannot be evaluated."""
    if isinstance(node, S.Num):
        if abs(node.value) > 1e300:  # 1e400 reads as inf; no option means a number this size
            diags.error("NS105", "number too large", span=node.span)
            return None
        return Val(node.value, node.span)
    if isinstance(node, S.Multiple):
        return Val(Mult(node.factor), node.span)
    if isinstance(node, S.Str):
        return Val(node.value, node.span)
    if isinstance(node, S.Bool):
        return Val(node.value, node.span)
    if isinstance(node, S.Sym):
        if len(node.parts) == 1 and node.parts[0] in consts:
            const = consts[node.parts[0]]
            if const is None:  # its declaration is wrong, and that is already reported
                return None
            return Val(const.value, node.span)
        if len(node.parts) > 1:
            diags.error("NS101", f"`{node.text}` is not a value", span=node.span,
                        hint="dotted names are only used on the left of `=` (overrides, sweeps)")
            return None
        return Val(Word(node.parts[0]), node.span)
    if isinstance(node, S.Call):
        args = tuple(evaluate(a, consts, diags) for a in node.args)
        kwargs = {k.text: evaluate(v, consts, diags) for k, v in node.kwargs}
        if any(a is None for a in args) or any(v is None for v in kwargs.values()):
            return None
        return Val(CallV(node.name.text, args, kwargs), node.span)
    if isinstance(node, S.ListV):
        items = tuple(evaluate(v, consts, diags) for v in node.items)
        if any(i is None for i in items):
            return None
        return Val(items, node.span)
    if isinstance(node, S.Neg):
        inner = evaluate(node.operand, consts, diags)
        if inner is None:
            return None
        if not _is_number(inner.value):
            diags.error("NS105", "only numbers can be negated", span=node.span)
            return None
        return Val(-inner.value, node.span)
    if isinstance(node, S.BinOp):
        return _binop(node, consts, diags)
    raise TypeError(f"unknown syntax value {node!r}")  # a parser bug, not bad input


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _binop(node: S.BinOp, consts: dict[str, Val], diags: Diagnostics) -> Val | None:
    left, right = evaluate(node.left, consts, diags), evaluate(node.right, consts, diags)
    if left is None or right is None:
        return None
    a, b = left.value, right.value
    if not (_is_number(a) and _is_number(b)):
        bad = left if not _is_number(a) else right
        hint = None
        if isinstance(bad.value, Word):
            hint = did_you_mean(bad.value.text, consts) if consts else \
                f"`{bad.value.text}` is not a declared constant (`const NAME = value`)"
        diags.error("NS105", f"arithmetic needs numbers, got `{bad.plain()}`", span=bad.span,
                    hint=hint)
        return None
    if node.op == "/" and b == 0:
        diags.error("NS105", "division by zero", span=node.span)
        return None
    result = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
              "/": lambda: a / b}[node.op]()
    if isinstance(a, Mult) or isinstance(b, Mult):
        result = Mult(result)
    elif node.op == "/" and isinstance(a, int) and isinstance(b, int) and a % b == 0:
        result = a // b  # keep widths integral: `dim / heads`
    if abs(result) > 1e300:  # ints too: a product of big ints would overflow float() later
        diags.error("NS105", "number too large", span=node.span)
        return None
    return Val(result, node.span)
