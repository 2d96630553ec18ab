"""How the level graph looks: sizes, fonts, colours, edge styles, and the legend's rows.

Text is measured with matplotlib's font metrics (imported lazily), so the sizes laid out here are
the sizes drawn.
"""
from __future__ import annotations

from functools import lru_cache

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


def _box_size(title: str, detail: str) -> tuple[float, float]:
    tw, th = text_size(title, TITLE_PT, True)
    dw, dh = text_size(detail, DETAIL_PT)
    return max(tw, dw) + 2 * PAD_X, th + dh + LINE_GAP + 2 * PAD_Y


def _band_colour(i: int, n: int) -> str:
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    r, g, b, _ = colormaps["viridis"](0.15 + 0.75 * (i / max(n - 1, 1)))
    k = 0.86
    return to_hex((r + (1 - r) * k, g + (1 - g) * k, b + (1 - b) * k))


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
