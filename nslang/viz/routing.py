"""Edge routes: candidate shapes between two boxes (arcs, L-shapes, brackets, arcs over or
under a row), scored by boxes hit, then crossings, then length; ports spread along each box
side; labels placed where they cover nothing. Routes are paths in inches, drawn as scored."""
from __future__ import annotations

import numpy as np

from .elements import Box, Edge, Link
from .style import EDGE_PT, EDGE_STYLES, text_size


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
