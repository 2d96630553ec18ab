"""Draw a checked model's level graph: levels as frequency bands, memories inside, typed edges.

`layout` is a pure function from a `CheckedModel` to positions (inches, y growing downward, the
slowest band on top); `draw` renders that layout with matplotlib (.svg, .png) or writes DOT text
(.dot) for users who have Graphviz. The picture is built on our own band layout, so no Graphviz
binary is needed.

Layout in brief: levels of equal frequency share one band. The flow graph gives the columns
(longest path from the input; a CMS takes one column across all the bands it spans, framed as a
group). Any other box sits by what it is linked to: a generator below its target in the same
band, a level's parameters or a memory of another band in (or beside) its target's column, where
nothing stands between them. Each edge takes the cheapest of a few shapes (straight, Bezier arcs,
one-corner L, a bracket round the side, an arc over or under a row), scored by the boxes it
would cross, then the edges it would cross, then its length; ports are then spread along each
box side. Routes are our own paths in inches, drawn as they were scored.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import networkx as nx
import numpy as np

from . import ir
from .checks import INPUT, CheckedModel, level_rank

SUFFIXES = (".svg", ".png", ".dot")
FONT = "DejaVu Sans"   # bundled with matplotlib: the sizes measured here are the sizes drawn

# Sizes, in inches unless a name says points.
TITLE_PT, DETAIL_PT, BAND_PT, HEAD_PT, LEGEND_PT, EDGE_PT = 10.0, 8.0, 9.5, 12.0, 8.5, 8.0
PAD_X, PAD_Y, LINE_GAP = 0.12, 0.08, 0.05
COL_GAP, ROW_GAP, CELL_GAP = 0.75, 0.55, 0.3
BAND_PAD_TOP, BAND_PAD_BOTTOM, GROUP_HEAD = 0.4, 0.22, 0.3
MARGIN, LABEL_PAD = 0.25, 0.2

# kind -> (colour, line style, width, legend text). "backprop" is drawn as a double line.
EDGE_STYLES: dict[str, tuple[str, object, float, str]] = {
    "flow": ("#222222", "solid", 1.7, "flow: data within a step"),
    "chain": ("#55705a", "solid", 1.3, "CMS chain: a level's output feeds the next"),
    "aggregate": ("#55705a", (0, (2, 2)), 1.3,
                  "CMS levels side by side: one input, outputs aggregated"),
    "init": ("#1f5fa8", (0, (5, 3)), 1.5, "init: meta-learned initial state"),
    "generate": ("#8a3fa8", (0, (1, 2)), 1.8,
                 "generate(input): a memory's output is another's input"),
    "condition": ("#2e7d32", (0, (7, 2.5, 1.5, 2.5)), 1.5,
                  "condition: a slower level conditions a faster one"),
    "backprop": ("#b03a2e", "solid", 3.4, "backprop: one gradient flow at two frequencies"),
}
# DOT has no dash-dot: `condition` is dashed there too, told apart by colour and an open head.
DOT_STYLES = {
    "flow": 'style=solid, color="#222222", penwidth=1.6',
    "chain": 'style=solid, color="#55705a", penwidth=1.2',
    "aggregate": 'style=dashed, color="#55705a", penwidth=1.2',
    "init": 'style=dashed, color="#1f5fa8", penwidth=1.4',
    "generate": 'style=dotted, color="#8a3fa8", penwidth=1.8',
    "condition": 'style=dashed, color="#2e7d32", penwidth=1.4, arrowhead=empty',
    "backprop": 'style=solid, color="#b03a2e:invis:#b03a2e", penwidth=1.6',
}
GROUP_COLOURS = {"cms": "#3f7a4a", "generators": "#8a3fa8"}
BOX_COLOURS = {  # kind -> (edge, fill)
    "input": ("#444444", "#ffffff"), "memory": ("#2f4b7c", "#ffffff"),
    "cms": ("#3f7a4a", "#f7fbf5"), "optimizer": ("#b5651d", "#fff8ef"),
    "level": ("#6a5a8a", "#f6f3fb"),
}


# ---------------------------------------------------------------------------------------------
# Layout


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


@lru_cache(maxsize=4096)
def text_size(text: str, pt: float, bold: bool = False) -> tuple[float, float]:
    """Width and height in inches of one line of text, measured with matplotlib's font metrics."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    prop = FontProperties(family=FONT, size=pt, weight="bold" if bold else "normal")
    w, h, _ = TextToPath().get_text_width_height_descent(text, prop, ismath=False)
    return w / 72, max(h, pt * 1.0) / 72


def _lines_size(text: str, pt: float = DETAIL_PT, bold: bool = True) -> tuple[float, float]:
    sizes = [text_size(line, pt, bold) for line in text.split("\n")]
    return max(w for w, _ in sizes), sum(h for _, h in sizes) + 0.04 * (len(sizes) - 1)


def freq_text(level: ir.Level, context: int) -> str:
    if level.kind == "every":
        return "every token" if level.period == 1 else f"every {level.period} tokens"
    return {"sequence": f"once per sequence ({context} tokens)", "step": "every outer step",
            "frozen": "frozen after pre-training"}[level.kind]


def _num(v) -> str:
    if isinstance(v, float) and v and not 1e-2 <= abs(v) < 1e5:
        mant, exp = f"{v:.2e}".split("e")
        return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _memory_detail(mem: ir.Memory, level: ir.Level, chunk: int) -> str:
    if mem.shape.kind == "attention":
        w = mem.shape.window
        return f"attention · {'window ' + str(w) if w else 'global'}"
    parts = [mem.shape.kind, mem.rule.kind]
    if mem.rule.window:
        parts[-1] += f"({mem.rule.window})"
    if level.kind == "every":   # elsewhere the chunk is only a speed knob of the slow update
        parts.append(f"chunk {chunk}" if chunk > 1 else "per token")
    return " · ".join(parts)


def _cms_detail(c: ir.Cms) -> str:
    obj = "task loss" if c.objective.kind == "task" else c.objective.kind
    return f"{c.shape.kind} · {c.rule.kind} · {obj}"


def _box_size(title: str, detail: str) -> tuple[float, float]:
    tw, th = text_size(title, TITLE_PT, True)
    dw, dh = text_size(detail, DETAIL_PT)
    return max(tw, dw) + 2 * PAD_X, th + dh + LINE_GAP + 2 * PAD_Y


@dataclass
class _Item:
    id: str
    kind: str
    title: str
    detail: str
    band: int
    row: int = -1
    col: int = -1


@dataclass(frozen=True)
class Link:
    """An edge between two boxes (or a box and a group frame, "group:NAME"), before routing."""

    src: str
    dst: str
    kind: str
    label: str | None = None
    arrow: bool = True


def _and(words: list[str]) -> str:
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0]


def _bands(checked: CheckedModel) -> list[list[ir.Level]]:
    """Levels slowest first; levels of equal frequency share a band."""
    ctx = checked.model.settings.context
    bands: list[list[ir.Level]] = []
    for lv in checked.level_order():
        if bands and level_rank(bands[-1][0], ctx) == level_rank(lv, ctx):
            bands[-1].append(lv)
        else:
            bands.append([lv])
    return bands


def layout(checked: CheckedModel) -> Layout:
    """Positions of every band, box, CMS frame and edge; pure (no figure is created)."""
    m = checked.model
    ctx = m.settings.context
    bands = _bands(checked)
    band_of = {lv.name: i for i, b in enumerate(bands) for lv in b}
    notes = [f"levels {_and([f'`{lv.name}`' for lv in b])} update at the same frequency "
             f"({freq_text(b[0], ctx)}) and share one band" for b in bands if len(b) > 1]
    items, cms_boxes, flow_graph = _items(checked, band_of)
    links = _links(m, items, cms_boxes, band_of)
    gen_groups = _self_modifying(links, items)
    first = {f"group:{ms[0]}": ms[0] for ms, _ in gen_groups}
    drawn = _bundle(links, gen_groups)
    cells, blocked, ncols = _place(
        items, [Link(first.get(ln.src, ln.src), first.get(ln.dst, ln.dst), ln.kind)
                for ln in drawn], flow_graph, cms_boxes,
        [INPUT, *(x.name for x in m.memories), *(c.name for c in m.cms)])
    kept = [(ms, t) for ms, t in gen_groups if _side_by_side(ms, items, cells)]
    if len(kept) < len(gen_groups):      # a group that did not end up side by side: no frame
        gen_groups, drawn = kept, _bundle(links, kept)

    # ---- sizes: columns, rows, bands
    size = {i.id: _box_size(i.title, i.detail) for i in items.values()}
    col_w = [0.0] * ncols
    for (band, row, col), ids in cells.items():
        col_w[col] = max(col_w[col], sum(size[b][0] for b in ids) + CELL_GAP * (len(ids) - 1))
    cms_titles = {c.name: f"{c.name}: CMS, {c.variant}" + (f" ({c.agg})" if c.agg else "")
                  for c in m.cms}
    for c in m.cms:
        col = items[cms_boxes[c.name][0]].col
        col_w[col] = max(col_w[col], _lines_size(cms_titles[c.name])[0] + 0.3)
    below: dict[tuple[int, int], float] = {}     # room under a row for a group's title
    for ms, title in gen_groups:
        it = items[ms[0]]
        col_w[it.col] = max(col_w[it.col], _lines_size(title)[0] + 0.4)
        below[(it.band, it.row)] = _lines_size(title)[1] + 0.2
    label_w = max(max(text_size(" · ".join(lv.name for lv in b), BAND_PT, True)[0],
                      text_size(freq_text(b[0], ctx), DETAIL_PT)[0]) for b in bands) \
        + 2 * LABEL_PAD
    col_x, x = [], MARGIN + label_w + 0.45
    for w in col_w:
        col_x.append(x)
        x += w + COL_GAP
    loops = any(ln.src == ln.dst for ln in drawn)     # a loop and its label stick out right
    width = max(x - COL_GAP + (0.8 if loops else 0.35) + MARGIN, 6.0)

    group_top = {min(items[b].band for b in cms_boxes[c.name]) for c in m.cms}
    y = MARGIN + text_size("Hg", HEAD_PT, True)[1] + 0.45
    band_objs, row_y = [], {}
    for bi, b in enumerate(bands):
        top = y
        y += BAND_PAD_TOP + (GROUP_HEAD if bi in group_top else 0.0)
        nrows = 1 + max((i.row for i in items.values() if i.band == bi), default=0)
        for r in range(nrows):
            h = max((size[i.id][1] for i in items.values() if i.band == bi and i.row == r),
                    default=_box_size("x", "x")[1])
            row_y[(bi, r)] = (y, h)
            y += h + (ROW_GAP if r < nrows - 1 else 0) + below.get((bi, r), 0.0)
        y = max(y + BAND_PAD_BOTTOM, top + 0.95)
        band_objs.append(Band(tuple(lv.name for lv in b), freq_text(b[0], ctx), top, y))

    boxes: dict[str, Box] = {}
    for (band, row, col), ids in sorted(cells.items()):
        total = sum(size[b][0] for b in ids) + CELL_GAP * (len(ids) - 1)
        bx = col_x[col] + (col_w[col] - total) / 2
        ry, rh = row_y[(band, row)]
        for bid in ids:
            it, (w, h) = items[bid], size[bid]
            boxes[bid] = Box(bid, it.kind, it.title, it.detail, band, row, col, bx,
                             ry + (rh - h) / 2, w, h)
            bx += w + CELL_GAP
    groups = []
    for c in m.cms:
        bs = [boxes[b] for b in cms_boxes[c.name]]
        col = bs[0].col
        groups.append(Group(c.name, "cms", cms_titles[c.name], col_x[col] - 0.12,
                            min(b.y for b in bs) - GROUP_HEAD - 0.08,
                            col_x[col] + col_w[col] + 0.12, max(b.y + b.h for b in bs) + 0.1))
    frames = {}                                  # group:NAME -> its frame, an edge end
    for ms, title in gen_groups:
        bs = [boxes[n] for n in ms]
        tw, th = _lines_size(title)
        cx = (min(b.x for b in bs) + max(b.x + b.w for b in bs)) / 2
        half = max(cx - min(b.x for b in bs), tw / 2 + 0.05) + 0.12
        g = Group(ms[0], "generators", title, cx - half, min(b.y for b in bs) - 0.1, cx + half,
                  max(b.y + b.h for b in bs) + th + 0.18)
        groups.append(g)
        frames[f"group:{ms[0]}"] = Box(f"group:{ms[0]}", "group", "", "", bs[0].band,
                                       bs[0].row, bs[0].col, g.x0, g.y0, g.x1 - g.x0,
                                       g.y1 - g.y0)

    obstacles = [(MARGIN, 0.0, MARGIN + label_w, y)] + [g.title_rect() for g in groups]
    area = (MARGIN + label_w, band_objs[0].y0, width - MARGIN, y)
    edges = _route(drawn, boxes, frames, obstacles, area)
    kinds = tuple(k for k in EDGE_STYLES if any(e.kind == k for e in edges))
    legend_y = y + 0.3
    height = legend_y + len(_legend_rows(kinds, width)) * 0.3 + MARGIN
    s = m.settings
    subtitle = f"dim {s.dim} · heads {s.heads} · depth {s.depth} · context {s.context}"
    ordered = tuple(sorted(boxes.values(), key=lambda b: (b.band, b.row, b.col, b.x)))
    return Layout(m.name, subtitle, width, height, label_w, tuple(band_objs), ordered,
                  tuple(groups), tuple(edges), kinds, legend_y, tuple(links), tuple(notes))


def _items(checked: CheckedModel, band_of: dict[str, int]):
    """One box per memory, per CMS level, for the optimizer, for each level that a transfer
    names, and for the block input."""
    m = checked.model
    items: dict[str, _Item] = {}
    for mem in m.memories:
        detail = _memory_detail(mem, m.level(mem.level), checked.chunks[mem.name])
        items[mem.name] = _Item(mem.name, "memory", mem.name, detail, band_of[mem.level])
    cms_boxes: dict[str, list[str]] = {}
    for c in m.cms:
        cms_boxes[c.name] = [f"{c.name}@{lv}" for lv in c.levels]
        for lv, bid in zip(c.levels, cms_boxes[c.name]):
            items[bid] = _Item(bid, "cms", f"{c.name} · {lv}", _cms_detail(c), band_of[lv])
    if m.optimizer is not None and m.optimizer.level:
        o = m.optimizer
        detail = "optimizer" + (f" {o.kind}" if o.kind != o.name else "")
        if o.options.get("lr") is not None:
            detail += f" · lr {_num(o.options['lr'])}"
        items[f"opt:{o.name}"] = _Item(f"opt:{o.name}", "optimizer", o.name, detail,
                                       band_of[o.level])
    named = {e for t in m.transfers for e in (t.source, t.target)}
    for lv in m.levels:
        if lv.name in named and lv.name not in items:
            items[f"level:{lv.name}"] = _Item(f"level:{lv.name}", "level", lv.name,
                                              "level parameters", band_of[lv.name])
    flow_graph = nx.DiGraph()
    for f in m.flows:
        nx.add_path(flow_graph, f.path)
    if INPUT in flow_graph:
        first = next(iter(flow_graph.successors(INPUT)))
        band = items[cms_boxes[first][0] if first in cms_boxes else first].band
        items[INPUT] = _Item(INPUT, "input", "x", "block input", band)
    return items, cms_boxes, flow_graph


def _links(m: ir.Model, items, cms_boxes, band_of) -> list[Link]:
    """Edges between boxes. Data enters a CMS at its fastest level and leaves at its slowest
    (Eq. 70; an independent CMS aggregates, so data leaves where it entered); a transfer
    attaches to the CMS level nearest the other end."""

    def box(node: str, role: str, other: str | None = None) -> str:
        if node in cms_boxes:
            bs = cms_boxes[node]
            if role == "in":
                return bs[0]
            if role == "out":
                return bs[0] if m.member(node).variant == "independent" else bs[-1]
            ob = items[box(other, "in")].band
            return min(bs, key=lambda b: (abs(items[b].band - ob), bs.index(b)))
        return f"level:{node}" if node in band_of else node

    links = []
    for f in m.flows:
        for a, b in zip(f.path, f.path[1:]):
            links.append(Link(box(a, "out"), box(b, "in"), "flow"))
    for c in m.cms:
        bs = cms_boxes[c.name]
        for fast, slow in zip(bs, bs[1:]):
            if c.variant == "independent":
                links.append(Link(fast, slow, "aggregate", arrow=False))
            else:
                links.append(Link(fast, slow, "chain"))
            if c.variant == "nested":
                links.append(Link(slow, fast, "init", "re-init"))
    for t in m.transfers:
        links.append(Link(box(t.source, "t", t.target), box(t.target, "t", t.source), t.kind,
                           t.arg))
    return list(dict.fromkeys(links))


def _self_modifying(links: list[Link], items) -> list[tuple[tuple[str, ...], str]]:
    """Sets of memories in which each generates inputs of every other (Eq. 88), with a frame
    title saying so. Drawn as one frame rather than n^2 edges."""
    g = nx.DiGraph()
    for ln in links:
        if ln.kind == "generate" and items[ln.src].kind == items[ln.dst].kind == "memory":
            g.add_edge(ln.src, ln.dst)
    out = []
    for comp in nx.strongly_connected_components(g):
        ms = tuple(n for n in items if n in comp)           # in declaration order
        if len(ms) < 2 or not all(g.has_edge(a, b) for a in ms for b in ms if a != b):
            continue
        selves = all(g.has_edge(a, a) for a in ms)
        args = {a: sorted({ln.label for ln in links if ln.kind == "generate" and ln.src == a
                           and ln.dst in comp}) for a in ms}
        title = ("self-modifying: each generates for every member"
                 + (", itself included" if selves else "") + "\n"
                 + " · ".join(f"{a} → {', '.join(args[a])}" for a in ms))
        out.append((ms, title))
    return sorted(out)


def _bundle(links: list[Link], groups) -> list[Link]:
    """The edges to draw: none inside a self-modifying group (its frame says it), and one edge
    to the frame for an edge that reaches every member alike."""
    gid = {m: f"group:{ms[0]}" for ms, _ in groups for m in ms}
    inside = {f"group:{ms[0]}": set(ms) for ms, _ in groups}
    kept = [ln for ln in links if not (ln.kind == "generate" and ln.src in gid
                                       and gid[ln.src] == gid.get(ln.dst))]
    out = []
    for ln in kept:
        g = gid.get(ln.dst)
        if g and ln.src not in inside[g] and inside[g] <= {
                o.dst for o in kept if (o.src, o.kind, o.label) == (ln.src, ln.kind, ln.label)}:
            out.append(Link(ln.src, g, ln.kind, ln.label, ln.arrow))
        else:
            out.append(ln)
    return list(dict.fromkeys(out))


def _side_by_side(members, items, cells) -> bool:
    """Whether the members fill a run of one cell, so one frame holds them and nothing else."""
    it = items[members[0]]
    cell = cells.get((it.band, it.row, it.col), [])
    idx = sorted(cell.index(n) for n in members if n in cell)
    return len(idx) == len(members) and idx == list(range(idx[0], idx[0] + len(idx)))


def _place(items, links, flow_graph, cms_boxes, decl_order):
    """Give every box a (row, col) in its band. Flow nodes get columns by longest path from the
    input (nodes of one column and band stack in rows); a CMS reserves its column across every
    band it spans. Other boxes sit by the box they are linked to."""
    cells: dict[tuple[int, int, int], list[str]] = {}
    blocked: set[tuple[int, int]] = set()
    satellite_of: dict[str, str] = {}
    decl = {n: i for i, n in enumerate(decl_order)}

    def put(it: _Item, row: int, col: int) -> None:
        it.row, it.col = row, col
        cells.setdefault((it.band, row, col), []).append(it.id)

    def here(band: int, col: int) -> list[str]:
        return [b for k, ids in cells.items() if k[0] == band and k[2] == col for b in ids]

    def used(band: int, col: int) -> bool:
        return (band, col) in blocked or bool(here(band, col))

    layer: dict[str, int] = {}
    for node in nx.lexicographical_topological_sort(flow_graph, key=lambda n: decl.get(n, 0)):
        col = max((layer[p] + 1 for p in flow_graph.predecessors(node)), default=0)
        if node in cms_boxes:
            bs = [items[b] for b in cms_boxes[node]]
            span = range(min(b.band for b in bs), max(b.band for b in bs) + 1)
            while any(used(band, col) for band in span):
                col += 1
            for b in bs:
                put(b, 0, col)
            blocked.update((band, col) for band in span)
        else:
            it = items[node]
            while (it.band, col) in blocked:
                col += 1
            put(it, len({k[1] for k in cells if k[0] == it.band and k[2] == col}), col)
        layer[node] = col
    ncols = 1 + max((k[2] for k in cells), default=-1)

    def clear(a: int, b: int, col: int, ok=()) -> bool:
        """Whether edges between bands a and b can run down `col` (past boxes in `ok` only)."""
        return not any((band, col) in blocked or any(o not in ok for o in here(band, col))
                       for band in range(min(a, b) + 1, max(a, b)))

    def free_col(band: int, want: int, to_band: int | None = None, ok=(), avoid=-1) -> int:
        nonlocal ncols
        near = range(max(0, want - 1), min(ncols, want + 2)) if to_band is not None \
            else range(ncols)
        for c in sorted((c for c in near if c != avoid), key=lambda c: (abs(c - want), c)):
            if not used(band, c) and (to_band is None or clear(band, to_band, c, ok)):
                return c
        if to_band is None:
            ncols += 1
            return ncols - 1
        for key in sorted(cells, key=lambda k: -k[2]):   # open a column right of `want`
            if key[2] > want:
                for bid in cells[key]:
                    items[bid].col += 1
                cells[(key[0], key[1], key[2] + 1)] = cells.pop(key)
        for key in sorted(blocked, key=lambda k: -k[1]):
            if key[1] > want:
                blocked.remove(key)
                blocked.add((key[0], key[1] + 1))
        ncols += 1
        return want + 1

    neighbours: dict[str, list[str]] = {}
    for ln in links:
        neighbours.setdefault(ln.src, []).append(ln.dst)
        neighbours.setdefault(ln.dst, []).append(ln.src)
    pending = [i for i in items.values() if i.col < 0]
    while pending:
        found = next(((i, n) for i in pending for n in neighbours.get(i.id, ())
                      if items[n].col >= 0), None)
        if found is None:           # linked to nothing placed: the first free column
            i = pending[0]
            put(i, 0, free_col(i.band, 0))
        else:
            i, n = found
            t = items[n]
            if t.band == i.band and (i.band, t.col) not in blocked:   # below what it feeds
                row = t.row + 1
                while any(satellite_of.get(o) != t.id
                          for o in cells.get((i.band, row, t.col), ())):
                    row += 1
                satellite_of[i.id] = t.id
                put(i, row, t.col)
            else:                   # in its own band, in (or near) the column of what it feeds
                ok = set(neighbours[i.id])
                # not straight above a CMS: the edge would cut through the frame's title
                if t.kind != "cms" and (i.band, t.col) not in blocked and \
                        clear(i.band, t.band, t.col, ok) and \
                        all(satellite_of.get(o) == t.id for o in here(i.band, t.col)):
                    satellite_of[i.id] = t.id
                    put(i, 0, t.col)
                else:
                    avoid = t.col if t.kind == "cms" else -1
                    put(i, 0, free_col(i.band, t.col, t.band, ok, avoid))
        pending.remove(i)
    return cells, blocked, ncols


# ---- routing


MOVE, LINE, CURVE3, CURVE4 = 1, 2, 3, 4   # matplotlib's Path codes


def _shape(family: str, param: float, p, q):
    """The vertices and Path codes of a route from p to q (y-down inches). `arc` bends by
    `param` times the chord; `over`/`under` bulge `param` inches above/below the higher/lower
    end; `hv`/`vh` turn one corner; `left`/`right` go out `param` inches beside both ends."""
    (px, py), (qx, qy) = p, q
    if family == "arc":
        c = ((px + qx) / 2 - param * (qy - py), (py + qy) / 2 + param * (qx - px))
        return (p, c, q), (MOVE, CURVE3, CURVE3)
    if family in ("over", "under"):
        y = min(py, qy) - 2 * param if family == "over" else max(py, qy) + 2 * param
        return (p, ((px + qx) / 2, y), q), (MOVE, CURVE3, CURVE3)
    if family == "loop":         # p on the top, q on the right side of the same box
        return (p, (px, py - 0.4), (qx + 0.4, qy), q), (MOVE, CURVE4, CURVE4, CURVE4)
    x = min(px, qx) - param if family == "left" else max(px, qx) + param
    corners = {"hv": [(qx, py)], "vh": [(px, qy)]}.get(family, [(x, py), (x, qy)])
    return _rounded([p, *corners, q])


def _rounded(points, r: float = 0.1):
    """A polyline with its corners rounded."""
    verts, codes = [points[0]], [MOVE]
    for a, v, b in zip(points, points[1:], points[2:]):
        a, v, b = np.asarray(a, float), np.asarray(v, float), np.asarray(b, float)
        d1, d2 = np.hypot(*(v - a)), np.hypot(*(b - v))
        k = min(r, d1 / 2, d2 / 2)
        if k < 1e-6:
            verts.append(tuple(v))
            codes.append(LINE)
            continue
        verts += [tuple(v - k * (v - a) / d1), tuple(v), tuple(v + k * (b - v) / d2)]
        codes += [LINE, CURVE3, CURVE3]
    verts.append(points[-1])
    codes.append(LINE)
    return tuple((float(x), float(y)) for x, y in verts), tuple(codes)


def _sample(verts, codes, step: float = 0.06):
    """Points every `step` inches along a path of lines and Bezier curves."""
    v = np.asarray(verts, float)
    pts, i, t = [v[:1]], 1, np.linspace(0, 1, 13)[1:, None]
    while i < len(v):
        a = v[i - 1]
        if codes[i] == LINE:
            pts.append(v[i:i + 1])
            i += 1
        elif codes[i] == CURVE3:
            c, b = v[i], v[i + 1]
            pts.append((1 - t) ** 2 * a + 2 * (1 - t) * t * c + t ** 2 * b)
            i += 2
        else:
            c1, c2, b = v[i], v[i + 1], v[i + 2]
            pts.append((1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t ** 2 * c2
                       + t ** 3 * b)
            i += 3
    pts = np.concatenate(pts)
    s = np.concatenate([[0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    n = max(2, int(s[-1] / step) + 1)
    u = np.linspace(0, s[-1], n)
    return np.stack([np.interp(u, s, pts[:, 0]), np.interp(u, s, pts[:, 1])], axis=1)


def _coarse(pts, step: float = 0.1, most: int = 60):
    """Every k-th point, so that crossing tests stay cheap on long edges."""
    if len(pts) < 3:
        return pts
    k = max(1, round(step / 0.06), -(-len(pts) // most))
    return pts[::k] if (len(pts) - 1) % k == 0 else np.concatenate([pts[::k], pts[-1:]])


def _crossings(P, Q) -> int:
    """How many segments of polyline P properly cross polyline Q."""
    if len(P) < 2 or len(Q) < 2:
        return 0
    a, b = P[:-1, None], P[1:, None]
    c, d = Q[None, :-1], Q[None, 1:]

    def orient(p, q, r):
        return (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - \
            (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])

    hit = (orient(a, b, c) * orient(a, b, d) < 0) & (orient(c, d, a) * orient(c, d, b) < 0)
    return int(hit.any(axis=1).sum())


def _inside(pts, rects, inflate: float = 0.0):
    """For each rect (x0, y0, x1, y1), whether any point lies inside it."""
    if not len(rects):
        return np.zeros(0, bool)
    r = np.asarray(rects, float)
    x, y = pts[:, 0:1], pts[:, 1:2]
    return ((x > r[:, 0] - inflate) & (x < r[:, 2] + inflate) &
            (y > r[:, 1] - inflate) & (y < r[:, 3] + inflate)).any(axis=0)


def _port(b: Box, side: str, f: float = 0.5) -> tuple[float, float]:
    return {"top": (b.x + b.w * f, b.y), "bottom": (b.x + b.w * f, b.y + b.h),
            "left": (b.x, b.y + b.h * f), "right": (b.x + b.w, b.y + b.h * f)}[side]


def _candidates(A: Box, B: Box):
    """(side of A, side of B, family, parameter, penalty) for each route worth trying."""
    out = []
    right = A.cx < B.cx
    h = ("right", "left") if right else ("left", "right")
    hgap = B.x - (A.x + A.w) if right else A.x - (B.x + B.w)
    down = A.cy < B.cy
    v = ("bottom", "top") if down else ("top", "bottom")
    vgap = B.y - (A.y + A.h) if down else A.y - (B.y + B.h)
    same_row = A.band == B.band and A.row == B.row
    for rad in (0.0, 0.12, -0.12, 0.25, -0.25, 0.5, -0.5):
        # a row's skip edges arc over or under it; between rows, prefer top and bottom ports
        if hgap > 0.15 and not (same_row and rad):
            out.append((*h, "arc", rad, 1.5 * abs(rad) + (1.0 if vgap > 0.15 else 0.0)))
        if vgap > 0.15:
            out.append((*v, "arc", rad, 1.5 * abs(rad)))
    if hgap > 0.15 and vgap > 0.15:
        out.append((h[0], v[1], "hv", 0.0, 0.35))
        out.append((v[0], h[1], "vh", 0.0, 0.35))
    for side in ("left", "right"):   # around whatever stands between them
        for off in (0.3, 0.6):
            out.append((side, side, side, off, 0.8 + off))
    if A.band == B.band and abs(A.cx - B.cx) > 0.3:
        for peak in (0.22, 0.34, 0.46):
            out.append(("top", "top", "over", peak, 0.4 + peak))
            out.append(("bottom", "bottom", "under", peak, 0.6 + peak))
    if not out:
        out.append((*v, "arc", 0.0, 0.0))
    return out


def _route(links: list[Link], boxes: dict[str, Box], frames: dict[str, Box], obstacles,
           area) -> list[Edge]:
    """Choose a route per edge (fewest boxes hit, then fewest crossings, then shortest), spread
    the ports on each side of a box, then place each label where it covers nothing. Routes stay
    inside `area` (x0, y0, x1, y1), the bands right of their labels. `frames` are group frames
    that edges may end at; they are not obstacles."""
    ends = {**boxes, **frames}
    rects = {b.id: (b.x, b.y, b.x + b.w, b.y + b.h) for b in ends.values()}
    ids = list(boxes)
    area = np.asarray(area)
    all_rects = [rects[i] for i in ids] + list(obstacles)

    def cost(ln, cand, p, q, routed):
        pts = _sample(*_shape(cand[2], cand[3], p, q))
        hits = _inside(pts, all_rects, 0.05)
        hits[[k for k, i in enumerate(ids) if i in (ln.src, ln.dst)]] = False
        inner = pts[3:-3] if len(pts) > 6 else pts[:0]   # not back through its own boxes
        back = _inside(inner, [rects[ln.src], rects[ln.dst]], -0.02).sum()
        out = not ((pts >= area[:2]).all() and (pts <= area[2:]).all())
        trimmed = _coarse(pts[2:-2])
        lo, hi = trimmed.min(axis=0) - 0.05, trimmed.max(axis=0) + 0.05
        others = [r for pair, r, rlo, rhi in routed if pair != {ln.src, ln.dst}
                  and (lo <= rhi).all() and (rlo <= hi).all()]
        cross = sum(_crossings(trimmed, r) for r in others)
        # running along another edge (edges between the same boxes get their own ports later)
        along = sum(int((np.hypot(*(trimmed[:, None] - r[None]).T) < 0.04).any(axis=0).sum())
                    for r in others)
        length = float(np.hypot(*np.diff(pts, axis=0).T).sum())
        return 60 * (hits.sum() + back + out) + 3 * cross + 0.3 * along + 0.5 * length + cand[4]

    loops = {i for i, ln in enumerate(links) if ln.src == ln.dst}
    order = sorted((i for i in range(len(links)) if i not in loops),
                   key=lambda i: (list(EDGE_STYLES).index(links[i].kind), i))
    chosen: dict[int, tuple] = {}
    routed = []
    for i in order:
        ln = links[i]
        A, B = ends[ln.src], ends[ln.dst]
        best = min(_candidates(A, B),
                   key=lambda c: cost(ln, c, _port(A, c[0]), _port(B, c[1]), routed))
        chosen[i] = best
        p, q = _port(A, best[0]), _port(B, best[1])
        r = _coarse(_sample(*_shape(best[2], best[3], p, q))[2:-2])
        if len(r) > 1:
            routed.append(({ln.src, ln.dst}, r, r.min(axis=0), r.max(axis=0)))

    # spread the ports of each side, ordered by where the other end lies
    ports: dict[tuple[str, str], list[tuple[float, int, int]]] = {}
    for i in order:
        ln = links[i]
        for end, (bid, side, other) in enumerate(((ln.src, chosen[i][0], ln.dst),
                                                  (ln.dst, chosen[i][1], ln.src))):
            o, b = ends[other], ends[bid]
            if side in ("top", "bottom"):   # by direction, so edges leaving a side do not cross
                key = (o.cx - b.cx) / max(abs(o.cy - b.cy), 0.1)
            else:
                key = (o.cy - b.cy) / max(abs(o.cx - b.cx), 0.1)
            ports.setdefault((bid, side), []).append((key, i, end))
    at: dict[tuple[int, int], tuple[float, float]] = {}
    for (bid, side), lst in ports.items():
        b = ends[bid]
        lst.sort()
        n = len(lst)
        length = b.w if side in ("top", "bottom") else b.h
        spread = min(length * 0.7, (0.3 if side in ("top", "bottom") else 0.12) * (n - 1))
        for k, (_, i, end) in enumerate(lst):
            off = (-spread / 2 + spread * k / (n - 1)) if n > 1 else 0.0
            at[(i, end)] = _port(b, side, 0.5 + off / length)

    edges, label_rects = [], []
    taken = [rects[i] for i in ids] + list(obstacles)
    for i, ln in enumerate(links):
        if i in loops:    # a memory generating its own input: a loop on its top-right corner
            b = ends[ln.src]
            p, q = (b.x + b.w - 0.3, b.y), (b.x + b.w, b.y + 0.35 * b.h)
            verts, codes = _shape("loop", 0.0, p, q)
        else:
            p, q = at[(i, 0)], at[(i, 1)]
            verts, codes = _shape(chosen[i][2], chosen[i][3], p, q)
        pts = _sample(verts, codes)
        label_at = None
        if ln.label:
            w, h = text_size(ln.label, EDGE_PT)
            w, h = w + 0.1, h + 0.08
            best = None
            for f in (0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74, 0.2, 0.8):
                x, y = pts[min(len(pts) - 1, int(f * (len(pts) - 1)))]
                if i in loops:   # beside the loop's apex, outside the box
                    x, y = x + w / 2 + 0.04, y - 0.02
                r = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
                clash = sum(_overlap(r, o) for o in taken + label_rects)
                if best is None or clash < best[0]:
                    best = (clash, (float(x), float(y)), r)
                if not clash or i in loops:
                    break
            label_at = best[1]
            label_rects.append(best[2])
        edges.append(Edge(ln.src, ln.dst, ln.kind, ln.label, verts, codes, label_at, ln.arrow,
                          tuple((float(x), float(y)) for x, y in pts)))
    return edges


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _legend_rows(kinds, width) -> list[list[str]]:
    rows, cur, used = [], [], 0.0
    for k in kinds:
        w = _legend_entry_w(k)
        if cur and used + w > width - 2 * MARGIN:
            rows.append(cur)
            cur, used = [], 0.0
        cur.append(k)
        used += w
    if cur:
        rows.append(cur)
    return rows


def _legend_entry_w(kind: str) -> float:
    return 0.75 + text_size(EDGE_STYLES[kind][3], LEGEND_PT)[0] + 0.35


# ---------------------------------------------------------------------------------------------
# Rendering


def draw(checked: CheckedModel, out: Path) -> list[str]:
    """Write the level graph to `out` (.svg, .png or .dot); returns notes to print."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"cannot draw to `{out}`: unknown suffix `{out.suffix or '(none)'}`; "
                         f"use one of {', '.join(SUFFIXES)}")
    lay = layout(checked)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".dot":
        out.write_text(to_dot(checked, lay))
    else:
        _render(lay, out)
    return list(lay.notes)


def _band_colour(i: int, n: int) -> str:
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    r, g, b, _ = colormaps["viridis"](0.15 + 0.75 * (i / max(n - 1, 1)))
    k = 0.86
    return to_hex((r + (1 - r) * k, g + (1 - g) * k, b + (1 - b) * k))


def _render(lay: Layout, out: Path) -> None:
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch, Rectangle

    rc = {"svg.fonttype": "none", "svg.hashsalt": "nslang", "font.family": [FONT, "sans-serif"]}
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=(lay.width, lay.height))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, lay.width)
        ax.set_ylim(lay.height, 0)
        ax.axis("off")
        ax.text(MARGIN, MARGIN, lay.model, fontsize=HEAD_PT, fontweight="bold", va="top")
        ax.text(MARGIN + text_size(lay.model, HEAD_PT, True)[0] + 0.2, MARGIN + 0.03,
                f"{lay.subtitle}   ·   levels slowest on top", fontsize=DETAIL_PT,
                color="#555555", va="top")
        x0, x1 = MARGIN, lay.width - MARGIN
        for i, b in enumerate(lay.bands):
            ax.add_patch(Rectangle((x0, b.y0), x1 - x0, b.y1 - b.y0, facecolor=_band_colour(
                i, len(lay.bands)), edgecolor="white", linewidth=2.0, zorder=0))
            ax.add_patch(Rectangle((x0, b.y0), lay.label_w, b.y1 - b.y0, facecolor="#ffffff",
                                   alpha=0.45, edgecolor="none", zorder=0.5))
            cy = (b.y0 + b.y1) / 2
            ax.text(x0 + LABEL_PAD, cy - 0.03, " · ".join(b.levels), fontsize=BAND_PT,
                    fontweight="bold", va="bottom", color="#222222")
            ax.text(x0 + LABEL_PAD, cy + 0.03, b.freq, fontsize=DETAIL_PT, va="top",
                    color="#444444")
        for g in lay.groups:
            colour = GROUP_COLOURS[g.kind]
            ax.add_patch(FancyBboxPatch((g.x0, g.y0), g.x1 - g.x0, g.y1 - g.y0,
                                        boxstyle="round,pad=0,rounding_size=0.1",
                                        facecolor="#ffffff", alpha=0.5, edgecolor=colour,
                                        linewidth=1.1, linestyle=(0, (4, 2)), zorder=1))
            x, top, _, _ = g.title_rect()
            ax.text((g.x0 + g.x1) / 2, top, g.title, fontsize=DETAIL_PT, fontweight="bold",
                    color=colour, ha="center", va="top", linespacing=1.35, zorder=2)
        for bx in lay.boxes:
            edge, fill = BOX_COLOURS[bx.kind]
            style = "round,pad=0,rounding_size=0.08"
            ax.add_patch(FancyBboxPatch((bx.x, bx.y), bx.w, bx.h, boxstyle=style,
                                        facecolor=fill, edgecolor=edge, zorder=3,
                                        linewidth=1.6 if bx.kind != "level" else 1.2,
                                        linestyle="solid" if bx.kind != "level" else (0, (3, 2))))
            ax.text(bx.cx, bx.y + PAD_Y, bx.title, fontsize=TITLE_PT, fontweight="bold",
                    ha="center", va="top", color=edge, zorder=4)
            ax.text(bx.cx, bx.y + bx.h - PAD_Y, bx.detail, fontsize=DETAIL_PT, ha="center",
                    va="bottom", color="#333333", zorder=4)
        for e in lay.edges:
            _draw_edge(ax, e.verts, e.codes, e.kind, e.arrow)
            if e.label:
                ax.text(*e.label_at, e.label, fontsize=EDGE_PT, ha="center", va="center",
                        color=EDGE_STYLES[e.kind][0], zorder=6,
                        bbox=dict(boxstyle="round,pad=0.15", facecolor="white",
                                  edgecolor="none", alpha=0.9))
        y = lay.legend_y
        ax.text(MARGIN, y - 0.05, "edges", fontsize=LEGEND_PT, fontweight="bold", va="bottom",
                color="#333333")
        for row in _legend_rows(lay.legend, lay.width):
            x = MARGIN
            for k in row:
                _draw_edge(ax, ((x, y + 0.12), (x + 0.6, y + 0.12)), (MOVE, LINE), k,
                           k != "aggregate")
                ax.text(x + 0.72, y + 0.12, EDGE_STYLES[k][3], fontsize=LEGEND_PT, va="center",
                        color="#222222")
                x += _legend_entry_w(k)
            y += 0.3
        meta = {"Date": None} if out.suffix.lower() == ".svg" else {}
        dpi = min(150, 30000 / max(lay.width, lay.height))   # Agg's limit is 2^16 pixels
        fig.savefig(out, dpi=dpi, metadata=meta, facecolor="white")


def _draw_edge(ax, verts, codes, kind: str, arrow: bool) -> None:
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path as MplPath

    colour, ls, lw, _ = EDGE_STYLES[kind]
    ax.add_patch(FancyArrowPatch(path=MplPath(verts, codes), arrowstyle="-|>" if arrow else "-",
                                 mutation_scale=12, color=colour, linewidth=lw, linestyle=ls,
                                 zorder=5))
    if kind == "backprop":   # a white core, stopping short of the head, makes a double line
        pts = _sample(verts, codes, 0.02)
        keep = np.concatenate([[0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
        core = pts[keep <= keep[-1] - 0.12]
        ax.plot(core[:, 0], core[:, 1], color="white", linewidth=lw / 3,
                solid_capstyle="butt", zorder=5.1)


# ---------------------------------------------------------------------------------------------
# DOT


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(checked: CheckedModel, lay: Layout | None = None) -> str:
    """Deterministic DOT: one cluster per level, slowest first, the same edge styles as the SVG."""
    lay = lay or layout(checked)
    m = checked.model
    by_band: dict[int, list[Box]] = {}
    for b in lay.boxes:
        by_band.setdefault(b.band, []).append(b)
    lines = [f"// nslang level graph of model `{m.name}`: levels slowest first, top to bottom",
             f"digraph {_q(m.name)} {{",
             '  graph [rankdir=TB, newrank=true, compound=true, nodesep=0.35, ranksep=0.55, '
             f'fontname="Helvetica", labelloc=t, label={_q(m.name + "  (" + lay.subtitle + ")")}];',
             '  node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica", '
             'fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=9];']
    ranks = []   # one invisible node per band; levels of one band share its rank
    for bi, band in enumerate(lay.bands):
        ranks.append(f"rank:{band.levels[0]}")
        for name in band.levels:
            lines.append(f"  subgraph {_q('cluster_' + name)} {{")
            lines.append(f'    label={_q(name + ": " + band.freq)}; style="filled,rounded"; '
                         f'fillcolor="{_band_colour(bi, len(lay.bands))}"; color="#bbbbbb";')
            members = [f"rank:{name}"]
            lines.append(f'    {_q(members[0])} [label="", shape=point, style=invis, width=0];')
            for b in by_band.get(bi, []):
                if _box_level(b, checked) != name:
                    continue
                edge, fill = BOX_COLOURS[b.kind]
                extra = ', style="rounded,dashed,filled"' if b.kind == "level" else ""
                lines.append(f"    {_q(b.id)} [label={_q(b.title + chr(10) + b.detail)}, "
                             f'color="{edge}", fillcolor="{fill}"{extra}];')
                members.append(b.id)
            lines.append("    {rank=same; " + " ".join(_q(n) for n in members) + "}")
            lines.append("  }")
        if len(band.levels) > 1:
            lines.append("  {rank=same; " + " ".join(_q(f"rank:{n}") for n in band.levels) + "}")
    inp = next((b for b in lay.boxes if b.kind == "input"), None)
    if inp is not None:
        edge, fill = BOX_COLOURS["input"]
        lines.append(f'  {_q(inp.id)} [label="x\\nblock input", shape=ellipse, color="{edge}", '
                     f'fillcolor="{fill}"];')
        lines.append(f"  {{rank=same; {_q(inp.id)} {_q(ranks[inp.band])}}}")
    if len(ranks) > 1:
        lines.append("  " + " -> ".join(_q(n) for n in ranks) + " [style=invis, weight=100];")
    # only the band chain ranks nodes: an edge may point up (a CMS chain, a flow into a
    # slower level) without pulling its end below its band. Every edge, none bundled.
    for e in lay.links:
        label = f", label={_q(e.label)}" if e.label else ""
        head = "" if e.arrow else ", arrowhead=none"
        lines.append(f"  {_q(e.src)} -> {_q(e.dst)} [{DOT_STYLES[e.kind]}{label}{head}, "
                     f"constraint=false]; // {e.kind}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _box_level(b: Box, checked: CheckedModel) -> str | None:
    m = checked.model
    if b.kind == "cms":
        return b.id.split("@", 1)[1]
    if b.kind == "level":
        return b.id.split(":", 1)[1]
    if b.kind == "optimizer":
        return m.optimizer.level
    mem = m.member(b.id)
    return mem.level if isinstance(mem, ir.Memory) else None
