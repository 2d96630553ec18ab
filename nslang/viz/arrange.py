"""The pure layout: boxes into rows and columns of their bands, then sizes and positions of
every band, box and frame; edges are routed by `routing`. No figure is created."""
from __future__ import annotations

import networkx as nx

from ..checks import INPUT, CheckedModel
from .content import (_and, _bands, _bundle, _Item, _items, _links, _self_modifying,
                      freq_text)
from .elements import Band, Box, Group, Layout, Link
from .routing import _route
from .style import (BAND_PAD_BOTTOM, BAND_PAD_TOP, BAND_PT, CELL_GAP, COL_GAP, DETAIL_PT,
                    EDGE_STYLES, GROUP_HEAD, HEAD_PT, LABEL_PAD, MARGIN, ROW_GAP, _box_size,
                    _legend_rows, _lines_size, text_size)


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
