"""Render a `Layout` with matplotlib to .svg or .png (deterministic SVG: no date, fixed hash
salt, text kept as text)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .elements import Layout
from .routing import LINE, MOVE, _sample
from .style import (BAND_PT, BOX_COLOURS, DETAIL_PT, EDGE_PT, EDGE_STYLES, FONT, GROUP_COLOURS,
                    HEAD_PT, LABEL_PAD, LEGEND_PT, MARGIN, PAD_Y, TITLE_PT, _band_colour,
                    _legend_entry_w, _legend_rows, text_size)


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
