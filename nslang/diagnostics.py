"""Diagnostics: a code, a message, a span, a caret and a hint (rustc / Triton style).

Stages never raise on bad input; they append to a `Diagnostics` collector, so every error of a
file is reported at once. `NslangError` carries the collected list out of the front end.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable

from .source import SOURCES, Span

# code -> one-line title. docs/language.md has an entry per code (a test keeps them in sync).
CODES: dict[str, str] = {
    # input and syntax
    "NS001": "syntax error",
    "NS002": "unexpected character",
    "NS003": "unreadable input file",
    "NS004": "input too large or too deeply nested",
    # names and options
    "NS101": "unknown name",
    "NS102": "duplicate name",
    "NS103": "memory on an undeclared level",
    "NS104": "unknown option",
    "NS105": "invalid option value",
    "NS106": "name is reserved in Python",
    "NS107": "non-ASCII name",
    "NS108": "missing required setting",
    "NS109": "`extends` cycle",
    "NS110": "`extends` target not found",
    "NS111": "invalid frequency",
    # graph checks
    "NS201": "frequency is not a multiple of a faster level",
    "NS202": "chunk size does not divide the context",
    "NS203": "transfer points the wrong way",
    "NS204": "backprop transfer between unrelated flows",
    "NS205": "cycle in the per-step data flow",
    "NS206": "dimension mismatch",
    "NS207": "option makes no sense for this shape",
    "NS208": "generated input without a generator",
    "NS209": "generate transfer into an input that is not generated",
    "NS210": "memory is not in any flow",
    "NS211": "invalid transfer",
    "NS212": "invalid sweep",
}


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None = None
    hint: str | None = None
    severity: str = "error"  # or "warning"
    notes: tuple[tuple[str, Span], ...] = ()  # secondary spans ("first declared here")

    def render(self) -> str:
        head = f"{self.severity}[{self.code}]: {self.message}"
        lines = [head]
        if self.span is not None:
            lines += _snippet(self.span)
        for text, span in self.notes:
            lines.append(f"   = note: {text} at {span}")
        if self.hint:
            lines.append(f"   = hint: {self.hint}")
        return "\n".join(lines)

    def location(self) -> tuple[str, int, int] | None:
        if self.span is None or self.span.file not in SOURCES:
            return None
        line, col = SOURCES[self.span.file].line_col(self.span.start)
        return self.span.file, line, col


def _snippet(span: Span) -> list[str]:
    src = SOURCES.get(span.file)
    if src is None:
        return [f"  --> {span.file}"]
    line, col = src.line_col(span.start)
    text = src.line_text(line)
    # Long lines (minified or generated input) are cut around the caret so output stays readable.
    shown, shift = text, 0
    if len(text) > 120:
        shift = max(0, col - 60)
        shown = ("..." if shift else "") + text[shift : shift + 117]
        shift -= 3 if shift else 0
    end_line, _ = src.line_col(max(span.start, span.end - 1))
    width = max(1, (span.end - span.start) if end_line == line else len(text) - col + 1)
    caret_col = col - 1 - shift
    width = max(1, min(width, len(shown) - caret_col))
    gutter = " " * len(str(line))
    return [
        f"{gutter}--> {span.file}:{line}:{col}",
        f"{gutter} |",
        f"{line} | {shown.expandtabs(1)}",
        f"{gutter} | {' ' * caret_col}{'^' * width}",
    ]


@dataclass
class Diagnostics:
    """Collects diagnostics across stages; `errors` decides whether a stage may go on."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, span: Span | None = None, hint: str | None = None,
              notes: Iterable[tuple[str, Span]] = ()) -> None:
        assert code in CODES, code
        self.items.append(Diagnostic(code, message, span, hint, "error", tuple(notes)))

    def warning(self, code: str, message: str, span: Span | None = None, hint: str | None = None) -> None:
        assert code in CODES, code
        self.items.append(Diagnostic(code, message, span, hint, "warning"))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    def render(self) -> str:
        ordered = sorted(self.items, key=lambda d: (d.location() or ("", 0, 0), d.code))
        body = "\n\n".join(d.render() for d in ordered)
        n_err, n_warn = len(self.errors), len(self.items) - len(self.errors)
        summary = f"{n_err} error{'s' * (n_err != 1)}"
        if n_warn:
            summary += f", {n_warn} warning{'s' * (n_warn != 1)}"
        return f"{body}\n\n{summary}" if body else summary


class NslangError(Exception):
    """Raised when a stage cannot go on; carries every diagnostic found so far."""

    def __init__(self, diagnostics: Diagnostics):
        self.diagnostics = diagnostics
        super().__init__(diagnostics.render())


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A hint naming the closest candidate, or listing what exists."""
    candidates = sorted(set(candidates))
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    if not candidates:
        return "nothing of that kind is declared"
    shown = ", ".join(candidates[:12]) + (", ..." if len(candidates) > 12 else "")
    return f"known: {shown}"
