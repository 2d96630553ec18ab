"""Source text and spans.

A span is (file, start, end) in character offsets; line and column are computed on demand, so
every node can carry one cheaply and diagnostics can point at any file of an `extends` chain.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Span(BaseModel):
    """A half-open character range [start, end) in one source file."""

    model_config = ConfigDict(frozen=True)
    file: str
    start: int
    end: int

    def __str__(self) -> str:
        src = SOURCES.get(self.file)
        if src is None:
            return f"{self.file}:{self.start}"
        line, col = src.line_col(self.start)
        return f"{self.file}:{line}:{col}"


@dataclass
class Source:
    """The text of one file plus an index of line starts (for offset -> line:col)."""

    name: str
    text: str
    _line_starts: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._line_starts = [0] + [i + 1 for i, ch in enumerate(self.text) if ch == "\n"]
        SOURCES[self.name] = self

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def line_text(self, line: int) -> str:
        start = self._line_starts[line - 1]
        end = self.text.find("\n", start)
        line = self.text[start:] if end < 0 else self.text[start:end]
        return line[:-1] if line.endswith("\r") else line  # CRLF files

    def span(self, start: int, end: int) -> Span:
        return Span(file=self.name, start=start, end=max(start, end))

    @classmethod
    def from_path(cls, path: Path, text: str) -> "Source":
        return cls(str(path), text)


# Every source read in this process, by name, so a span can be rendered without threading the
# text through every stage. Files are small and few (a spec and its `extends` chain).
SOURCES: dict[str, Source] = {}
