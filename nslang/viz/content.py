"""What a checked model shows: its bands, a box per memory, CMS level, optimizer and
transferred level, the links between them, and the self-modifying groups drawn as one frame."""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from .. import ir
from ..checks import INPUT, CheckedModel, level_rank
from .elements import Link


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


@dataclass
class _Item:
    id: str
    kind: str
    title: str
    detail: str
    band: int
    row: int = -1
    col: int = -1


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
