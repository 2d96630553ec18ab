"""The parts of a drawn level graph: bands, boxes, frames, links and routed edges, and the
`Layout` that holds them (inches, y growing downward)."""
from __future__ import annotations

from dataclasses import dataclass

from .style import _lines_size


@dataclass(frozen=True)
class Band:
    levels: tuple[str, ...]
    freq: str                 # "every 16 tokens", "frozen after pre-training", ...
    y0: float                 # top
    y1: float                 # bottom


@dataclass(frozen=True)
class Box:
    id: str                   # a graph node (memory, "opt:m3", "level:outer", "x") or "cms@level"
    kind: str                 # input | memory | cms | optimizer | level
    title: str
    detail: str
    band: int
    row: int
    col: int
    x: float                  # top-left corner
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass(frozen=True)
class Group:
    """A frame: a CMS's boxes (title on top), or memories that generate one another's inputs
    (Eq. 88; title below, so the edges they send up stay clear of it)."""

    name: str
    kind: str                 # cms | generators
    title: str                # lines separated by "\n"
    x0: float
    y0: float
    x1: float
    y1: float

    def title_rect(self) -> tuple[float, float, float, float]:
        w, h = _lines_size(self.title)
        cx = (self.x0 + self.x1) / 2
        top = self.y0 + 0.08 if self.kind == "cms" else self.y1 - 0.08 - h
        return (cx - w / 2, top, cx + w / 2, top + h)


@dataclass(frozen=True)
class Edge:
    src: str                  # box ids
    dst: str
    kind: str                 # a key of EDGE_STYLES
    label: str | None
    verts: tuple[tuple[float, float], ...]   # a matplotlib Path: lines and Bezier curves
    codes: tuple[int, ...]
    label_at: tuple[float, float] | None
    arrow: bool
    path: tuple[tuple[float, float], ...]   # points along the drawn curve


@dataclass(frozen=True)
class Layout:
    model: str
    subtitle: str
    width: float
    height: float
    label_w: float            # the band label column on the left
    bands: tuple[Band, ...]
    boxes: tuple[Box, ...]
    groups: tuple[Group, ...]
    edges: tuple[Edge, ...]
    legend: tuple[str, ...]   # edge kinds shown in the legend
    legend_y: float
    links: tuple[Link, ...]   # every edge of the model (the drawing bundles some into a frame)
    notes: tuple[str, ...] = ()

    def box(self, id: str) -> Box:
        return next(b for b in self.boxes if b.id == id)


@dataclass(frozen=True)
class Link:
    """An edge between two boxes (or a box and a group frame, "group:NAME"), before routing."""

    src: str
    dst: str
    kind: str
    label: str | None = None
    arrow: bool = True
