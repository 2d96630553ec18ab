"""DOT text of the level graph, for users who have Graphviz: one cluster per level, slowest
first, the same edge styles as the SVG. Deterministic."""
from __future__ import annotations

from .. import ir
from ..checks import CheckedModel
from .arrange import layout
from .elements import Box, Layout
from .style import BOX_COLOURS, DOT_STYLES, _band_colour


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
