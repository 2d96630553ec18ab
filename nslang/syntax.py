"""The syntax tree: what the file says, with spans, before names are resolved.

The parser builds these from lark's tree; `lower.py` turns them into the IR. Keeping them as
plain frozen dataclasses (not lark trees) means no later stage depends on lark.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .source import Span


@dataclass(frozen=True)
class Name:
    text: str
    span: Span


# ---- values -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Num:
    value: float | int
    span: Span


@dataclass(frozen=True)
class Multiple:  # 4x: a width relative to the model width
    factor: float
    span: Span


@dataclass(frozen=True)
class Str:
    value: str
    span: Span


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span


@dataclass(frozen=True)
class Sym:  # an enum word, a constant, or a reference: dgd, D, titans.momentum
    parts: tuple[str, ...]
    span: Span

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Call:  # residual_mlp(hidden = 2x), newton_schulz(5)
    name: Sym
    args: tuple["Value", ...]
    kwargs: tuple[tuple[Name, "Value"], ...]
    span: Span


@dataclass(frozen=True)
class ListV:
    items: tuple["Value", ...]
    span: Span


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * /
    left: "Value"
    right: "Value"
    span: Span


@dataclass(frozen=True)
class Neg:
    operand: "Value"
    span: Span


Value = Union[Num, Multiple, Str, Bool, Sym, Call, ListV, BinOp, Neg]


# ---- declarations -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    name: Name
    value: Value
    span: Span


@dataclass(frozen=True)
class ConstDecl:
    name: Name
    value: Value
    span: Span


@dataclass(frozen=True)
class Setting:  # dim = 512, or titans.momentum = 0 (an override of an inherited option)
    path: Sym
    value: Value
    span: Span


@dataclass(frozen=True)
class LevelDecl:
    name: Name
    kind: str  # every | token | sequence | step | frozen
    period: Value | None
    span: Span


@dataclass(frozen=True)
class MemoryDecl:
    names: tuple[Name, ...]
    level: Name
    options: tuple[Option, ...]
    span: Span


@dataclass(frozen=True)
class CmsDecl:
    name: Name
    options: tuple[Option, ...]
    span: Span


@dataclass(frozen=True)
class FlowDecl:
    path: tuple[Name, ...]
    span: Span


@dataclass(frozen=True)
class TransferDecl:
    source: Name
    target: Name
    kind: Name
    args: tuple[Value, ...]
    kwargs: tuple[tuple[Name, Value], ...]
    span: Span


@dataclass(frozen=True)
class OptimizerDecl:
    name: Name
    level: Name | None
    kind: Name | None
    options: tuple[Option, ...]
    span: Span


@dataclass(frozen=True)
class RemoveDecl:
    name: Name
    span: Span


ModelItem = Union[Setting, LevelDecl, MemoryDecl, CmsDecl, FlowDecl, TransferDecl, OptimizerDecl,
                  RemoveDecl]


@dataclass(frozen=True)
class ModelDecl:
    name: Name
    extends: Str | Name | None
    items: tuple[ModelItem, ...]
    span: Span


@dataclass(frozen=True)
class SweepAxis:
    path: Sym
    values: Value
    span: Span


@dataclass(frozen=True)
class SweepDecl:
    name: Name
    axes: tuple[SweepAxis, ...]
    span: Span


@dataclass(frozen=True)
class File:
    path: str
    consts: tuple[ConstDecl, ...]
    models: tuple[ModelDecl, ...]
    optimizers: tuple[OptimizerDecl, ...]
    sweeps: tuple[SweepDecl, ...]
