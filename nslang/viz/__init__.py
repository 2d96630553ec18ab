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

Modules: `style` (sizes, colours, edge styles, legend rows), `elements` (the Layout's parts),
`content` (the boxes and links a model shows), `arrange` (`layout`: rows, columns, positions),
`routing` (edge paths, scoring, ports, labels), `render` (matplotlib), `dot` (DOT text).
"""
from __future__ import annotations

from pathlib import Path

from ..checks import CheckedModel
from .arrange import layout
from .dot import to_dot
from .elements import Band, Box, Edge, Group, Layout, Link
from .render import _render
from .routing import _inside
from .style import DETAIL_PT, EDGE_PT, EDGE_STYLES, MARGIN, SUFFIXES, TITLE_PT, text_size

__all__ = ["Band", "Box", "Edge", "Group", "Layout", "Link", "draw", "layout", "to_dot",
           "text_size", "DETAIL_PT", "EDGE_PT", "EDGE_STYLES", "MARGIN", "SUFFIXES", "TITLE_PT",
           "_inside"]   # sizes and `_inside` for tests


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
