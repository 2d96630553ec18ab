"""`nslang viz`: levels drawn as frequency bands, slowest on top, boxes that never overlap, edges
styled by kind, in .svg/.png (matplotlib) and deterministic .dot.

Five models: a Hope-like one (CMS over three levels, generators, an init edge, an optimizer), a
wide one (ten memories on one level), a tall one (eight levels, every transfer kind, nested and
independent CMS), a CMS alone whose initial state comes from above (an empty level between), and
self-modifying generators (each generates for all, Eq. 88) beside a memory that feeds itself.
"""
from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nslang import viz
from nslang.checks import level_rank
from nslang.cli import main
from nslang.frontend import check_file

HOPE = """\
model hope {
  dim = 256; heads = 4; depth = 2; context = 512
  level chunk every 16
  level cms1 every 16
  level cms2 every 256
  level cms3 every 1024
  level outer frozen
  memory titans in chunk {
    shape = residual_mlp(hidden = 2x); objective = l2; rule = dgd; momentum = 0.9
    lr = generated; retain = generated; keys = generated; values = self
  }
  memory k_gen, lr_gen, retain_gen in chunk { shape = residual_mlp; rule = dgd; values = self }
  cms continuum { variant = sequential; levels = [cms1, cms2, cms3] }
  flow x -> titans -> continuum
  transfer outer -> titans : init
  transfer k_gen -> titans : generate(keys)
  transfer lr_gen -> titans : generate(lr)
  transfer retain_gen -> titans : generate(retain)
  optimizer m3 in outer { lr = 3e-4; slow_every = 64 }
}
"""

WIDE = """\
model wide {
  dim = 256; heads = 4; depth = 2; context = 512
  level fast every 16
  level outer frozen
  memory a0, a1, a2, a3, a4, a5, a6, a7, a8, a9 in fast { shape = matrix; rule = delta }
  flow x -> a0
  flow x -> a1
  flow x -> a2 -> a3 -> a4 -> a5 -> a6 -> a7 -> a8 -> a9
  transfer outer -> a0 : init
  transfer outer -> a5 : init
  transfer a1 -> a7 : condition
  transfer a3 -> a9 : backprop
}
"""

TALL = """\
model tall {
  dim = 256; heads = 4; depth = 2; context = 1024
  level tok token
  level l4 every 4
  level l16 every 16
  level l64 every 64
  level l256 every 256
  level seq sequence
  level st step
  level outer frozen
  memory attn in tok { shape = attention }
  memory delta in l4 { shape = matrix; rule = delta }
  memory titans in l16 { shape = mlp; rule = gd; momentum = 0.9 }
  memory slow in l64 { shape = matrix; rule = hebbian }
  memory ctx in seq { shape = matrix; rule = delta }
  cms deep { variant = nested; levels = [l16, l64, l256, seq] }
  cms par { variant = independent; levels = [l4, l64] }
  flow x -> attn -> delta -> titans -> deep -> par
  flow delta -> slow
  transfer ctx -> titans : condition
  transfer outer -> titans : init
  transfer st -> delta : init
  transfer attn -> titans : backprop
  optimizer adamw in st { lr = 1e-3 }
}
"""

CMS_INIT = """\
model cms_init {
  dim = 64; heads = 4; context = 256
  level c1 every 16
  level c2 every 64
  level unused every 128
  level outer frozen
  cms cont { variant = nested; levels = [c1, c2] }
  flow x -> cont
  transfer outer -> cont : init
}
"""

SELF_MOD = """\
model selfmod {
  dim = 64; heads = 4; context = 256
  level c every 16
  level outer frozen
  memory titans, k_gen, v_gen, lr_gen in c {
    shape = mlp; rule = dgd; keys = generated; values = generated; lr = generated
  }
  memory solo in c { shape = mlp; rule = gd; keys = generated }
  flow x -> titans -> solo
  transfer solo -> solo : generate(keys)
  transfer k_gen -> titans : generate(keys)
  transfer v_gen -> titans : generate(values)
  transfer lr_gen -> titans : generate(lr)
  transfer k_gen -> k_gen : generate(keys)
  transfer k_gen -> v_gen : generate(keys)
  transfer k_gen -> lr_gen : generate(keys)
  transfer v_gen -> k_gen : generate(values)
  transfer v_gen -> v_gen : generate(values)
  transfer v_gen -> lr_gen : generate(values)
  transfer lr_gen -> k_gen : generate(lr)
  transfer lr_gen -> v_gen : generate(lr)
  transfer lr_gen -> lr_gen : generate(lr)
  transfer outer -> titans : init
  transfer outer -> k_gen : init
  transfer outer -> v_gen : init
  transfer outer -> lr_gen : init
}
"""

SPECS = {"hope": HOPE, "wide": WIDE, "tall": TALL, "cms_init": CMS_INIT, "selfmod": SELF_MOD}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = {}
    for name, text in SPECS.items():
        path = tmp_path_factory.mktemp("specs") / f"{name}.nsam"
        path.write_text(text)
        result = check_file(path)
        assert result.ok, result.diagnostics.render()
        out[name] = result.checked[0]
    return out


@pytest.fixture(scope="module")
def layouts(models):
    return {name: viz.layout(cm) for name, cm in models.items()}


@pytest.fixture(scope="module")
def hope_svg(models, tmp_path_factory):
    path = tmp_path_factory.mktemp("svg") / "hope.svg"
    viz.draw(models["hope"], path)
    return path.read_text()


def _rect(b):
    return (b.x, b.y, b.x + b.w, b.y + b.h)


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# ---- files


@pytest.mark.parametrize("suffix", [".svg", ".png", ".dot"])
def test_writes_each_format(models, tmp_path, suffix):
    out = tmp_path / "sub" / f"hope{suffix}"
    notes = viz.draw(models["hope"], out)
    data = out.read_bytes()
    assert len(data) > 500
    head = {".svg": b"<?xml", ".png": b"\x89PNG", ".dot": b"// nslang"}[suffix]
    assert data.startswith(head)
    assert notes == ["levels `chunk` and `cms1` update at the same frequency (every 16 tokens) "
                     "and share one band"]


def test_unknown_suffix_is_a_clear_error(models, tmp_path):
    out = tmp_path / "hope.jpg"
    with pytest.raises(ValueError, match=r"unknown suffix `\.jpg`.*\.svg, \.png, \.dot"):
        viz.draw(models["hope"], out)
    assert not out.exists()


def test_cli_turns_a_bad_suffix_into_a_message(tmp_path, capsys):
    spec = tmp_path / "hope.nsam"
    spec.write_text(HOPE)
    assert main(["viz", str(spec), "-o", str(tmp_path / "hope.gif")]) == 2
    err = capsys.readouterr().err
    assert "error: cannot draw" in err and "unknown suffix `.gif`" in err
    assert "Traceback" not in err
    assert main(["viz", str(spec), "-o", str(tmp_path / "hope.svg")]) == 0
    assert (tmp_path / "hope.svg").stat().st_size > 0


def test_svg_is_deterministic(models, tmp_path, hope_svg):
    viz.draw(models["hope"], tmp_path / "again.svg")
    assert (tmp_path / "again.svg").read_text() == hope_svg


def test_no_torch_needed(tmp_path):
    spec = tmp_path / "hope.nsam"
    spec.write_text(HOPE)
    code = ("import sys; from pathlib import Path; from nslang.frontend import check_file; "
            "from nslang.viz import draw; "
            f"draw(check_file({str(spec)!r}).checked[0], Path({str(tmp_path / 'h.svg')!r})); "
            "assert 'torch' not in sys.modules, 'viz imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- SVG content


def test_svg_names_every_level_and_frequency(hope_svg):
    for text in ("every 16 tokens", "every 256 tokens", "every 1024 tokens",
                 "frozen after pre-training", "chunk · cms1", "cms2", "cms3", "outer"):
        assert f">{text}<" in hope_svg, text


def test_svg_labels_boxes_and_legend(hope_svg):
    for text in ("titans", "residual_mlp · dgd · chunk 16", "continuum · cms2",
                 "continuum: CMS, sequential", "m3", "optimizer · lr 3e-4", ">x<", "keys", "lr",
                 "retain", "flow: data within a step", "init: meta-learned initial state",
                 "generate(input): a memory's output is another's input",
                 "CMS chain: a level's output feeds the next"):
        assert text in hope_svg, text


def test_svg_draws_slowest_band_on_top(hope_svg):
    import re

    ys = {}
    for text in ("frozen after pre-training", "every 1024 tokens", "every 256 tokens",
                 "every 16 tokens"):
        m = re.search(r'y="([\d.]+)"[^>]*>' + re.escape(text) + "<", hope_svg)
        ys[text] = float(m.group(1))
    assert list(ys.values()) == sorted(ys.values())   # SVG y grows downward


# ---- layout


@pytest.mark.parametrize("name", list(SPECS))
def test_bands_ordered_by_frequency(models, layouts, name):
    cm, lay = models[name], layouts[name]
    ctx = cm.model.settings.context
    levels = {lv.name: lv for lv in cm.model.levels}
    assert sorted(n for b in lay.bands for n in b.levels) == sorted(levels)
    for upper, lower in zip(lay.bands, lay.bands[1:]):
        assert upper.y1 <= lower.y0
        assert level_rank(levels[upper.levels[0]], ctx) > level_rank(levels[lower.levels[0]], ctx)


def test_tall_band_order(layouts):
    order = [b.levels[0] for b in layouts["tall"].bands]
    assert order == ["outer", "st", "seq", "l256", "l64", "l16", "l4", "tok"]
    assert [b.freq for b in layouts["tall"].bands] == [
        "frozen after pre-training", "every outer step", "once per sequence (1024 tokens)",
        "every 256 tokens", "every 64 tokens", "every 16 tokens", "every 4 tokens",
        "every token"]


@pytest.mark.parametrize("name", list(SPECS))
def test_boxes_never_overlap_and_sit_in_their_band(layouts, name):
    lay = layouts[name]
    for a, b in itertools.combinations(lay.boxes, 2):
        assert not _overlap(_rect(a), _rect(b)), (a.id, b.id)
    for b in lay.boxes:
        band = lay.bands[b.band]
        assert band.y0 < b.y and b.y + b.h < band.y1, b.id
        assert b.x > viz.MARGIN + lay.label_w and b.x + b.w < lay.width, b.id


@pytest.mark.parametrize("name", list(SPECS))
def test_text_fits_its_box(layouts, name):
    for b in layouts[name].boxes:
        tw, th = viz.text_size(b.title, viz.TITLE_PT, True)
        dw, dh = viz.text_size(b.detail, viz.DETAIL_PT)
        assert max(tw, dw) < b.w - 0.15 and th + dh < b.h - 0.1, b.id


@pytest.mark.parametrize("name", list(SPECS))
def test_edges_avoid_boxes_and_titles_and_stay_in_the_bands(layouts, name):
    lay = layouts[name]
    titles = {g.title: g.title_rect() for g in lay.groups}
    for e in lay.edges:
        pts = np.asarray(e.path)
        for b in lay.boxes:
            if b.id not in (e.src, e.dst) and not e.dst.startswith("group:"):
                assert not viz._inside(pts, [_rect(b)])[0], f"{e.src} -> {e.dst} crosses {b.id}"
        for title, r in titles.items():
            assert not viz._inside(pts, [r])[0], f"{e.src} -> {e.dst} crosses `{title}`"
        assert pts[:, 0].min() > viz.MARGIN + lay.label_w and pts[:, 0].max() < lay.width
        assert pts[:, 1].min() > lay.bands[0].y0 and pts[:, 1].max() < lay.bands[-1].y1


def test_every_level_memory_and_edge_is_placed(models, layouts):
    lay = layouts["hope"]
    ids = {b.id for b in lay.boxes}
    assert ids == {"x", "titans", "k_gen", "lr_gen", "retain_gen", "continuum@cms1",
                   "continuum@cms2", "continuum@cms3", "opt:m3", "level:outer"}
    band = {n: i for i, b in enumerate(lay.bands) for n in b.levels}
    assert lay.box("titans").band == band["chunk"]
    assert lay.box("opt:m3").band == band["outer"]
    for lv in ("cms1", "cms2", "cms3"):
        assert lay.box(f"continuum@{lv}").band == band[lv]
    # the CMS is one column, framed and titled with its name and variant
    assert len({lay.box(f"continuum@{lv}").x for lv in ("cms1", "cms2", "cms3")}) == 1
    (group,) = lay.groups
    assert group.title == "continuum: CMS, sequential"
    for lv in ("cms1", "cms2", "cms3"):
        b = lay.box(f"continuum@{lv}")
        assert group.x0 < b.x and b.x + b.w < group.x1 and group.y0 < b.y < group.y1
    # the block input sits at the left of its band
    x = lay.box("x")
    assert all(x.x < b.x for b in lay.boxes if b.band == x.band and b.id != "x")
    kinds = sorted((e.src, e.dst, e.kind, e.label) for e in lay.edges)
    assert kinds == sorted([
        ("x", "titans", "flow", None), ("titans", "continuum@cms1", "flow", None),
        ("continuum@cms1", "continuum@cms2", "chain", None),
        ("continuum@cms2", "continuum@cms3", "chain", None),
        ("level:outer", "titans", "init", None), ("k_gen", "titans", "generate", "keys"),
        ("lr_gen", "titans", "generate", "lr"), ("retain_gen", "titans", "generate", "retain")])
    assert lay.legend == ("flow", "chain", "init", "generate")


def test_labels_do_not_cover_boxes(layouts):
    for lay in layouts.values():
        for e in lay.edges:
            if e.label:
                w, h = viz.text_size(e.label, viz.EDGE_PT)
                x, y = e.label_at
                r = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
                assert not any(_overlap(r, _rect(b)) for b in lay.boxes), e.label


def test_figure_grows_with_content(layouts):
    hope, wide, tall = layouts["hope"], layouts["wide"], layouts["tall"]
    assert wide.width > hope.width
    assert tall.height > hope.height
    assert len(tall.bands) == 8 and all(b.y1 - b.y0 >= 0.9 for b in tall.bands)
    assert sum(b.kind == "memory" for b in wide.boxes) == 10


def test_cms_variants_and_transfer_kinds(layouts):
    lay = layouts["tall"]
    kinds = {(e.src, e.dst): (e.kind, e.arrow) for e in lay.edges}
    assert kinds[("deep@l16", "deep@l64")] == ("chain", True)
    assert kinds[("deep@l64", "deep@l16")] == ("init", True)        # nested: re-initialised
    assert kinds[("par@l4", "par@l64")] == ("aggregate", False)    # independent: no order
    assert kinds[("ctx", "titans")][0] == "condition"
    assert kinds[("attn", "titans")][0] == "backprop"
    assert kinds[("level:st", "delta")][0] == "init"
    assert set(lay.legend) == set(viz.EDGE_STYLES) - {"generate"}


# ---- DOT


def test_dot_is_deterministic_and_complete(models, tmp_path):
    cm = models["tall"]
    text = viz.to_dot(cm)
    viz.draw(cm, tmp_path / "a.dot")
    viz.draw(cm, tmp_path / "b.dot")
    assert (tmp_path / "a.dot").read_text() == (tmp_path / "b.dot").read_text() == text
    assert text.count("{") == text.count("}")
    for lv in cm.model.levels:
        assert f'subgraph "cluster_{lv.name}"' in text
    for mem in cm.model.memories:
        assert f'"{mem.name}" [label="{mem.name}\\n' in text
    assert '"rank:outer" -> "rank:st" -> "rank:seq" -> "rank:l256" -> "rank:l64" -> ' \
           '"rank:l16" -> "rank:l4" -> "rank:tok" [style=invis' in text
    lines = text.splitlines()

    def edge(src, dst):
        (line,) = [ln for ln in lines if ln.strip().startswith(f'"{src}" -> "{dst}" [')]
        return line

    assert "style=dashed" in edge("level:outer", "titans") and "// init" in edge(
        "level:outer", "titans")
    assert "arrowhead=empty" in edge("ctx", "titans")                       # condition
    assert "#b03a2e:invis:#b03a2e" in edge("attn", "titans")                 # backprop: double
    assert "style=solid" in edge("x", "attn") and "// flow" in edge("x", "attn")
    assert "arrowhead=none" in edge("par@l4", "par@l64")
    for t in cm.model.transfers:
        src = t.source if cm.model.member(t.source) else f"level:{t.source}"
        dst = t.target if cm.model.member(t.target) else f"level:{t.target}"
        assert f"// {t.kind}" in edge(src, dst)


def test_dot_generate_edges_carry_their_input(models):
    text = viz.to_dot(models["hope"])
    for gen, arg in (("k_gen", "keys"), ("lr_gen", "lr"), ("retain_gen", "retain")):
        assert f'"{gen}" -> "titans" [style=dotted, color="#8a3fa8", penwidth=1.8, ' \
               f'label="{arg}"' in text
    assert '{rank=same; "rank:chunk" "rank:cms1"}' in text   # one frequency, one rank


# ---- self-modification


def test_generators_that_generate_one_another_share_a_frame(models, layouts):
    lay = layouts["selfmod"]
    (group,) = [g for g in lay.groups if g.kind == "generators"]
    assert group.title.splitlines() == [
        "self-modifying: each generates for every member, itself included",
        "k_gen → keys · v_gen → values · lr_gen → lr"]
    members = [lay.box(n) for n in ("k_gen", "v_gen", "lr_gen")]
    assert all(group.x0 < b.x and b.x + b.w < group.x1 and group.y0 < b.y < group.y1
               for b in members)
    outside = [b for b in lay.boxes if b.id not in ("k_gen", "v_gen", "lr_gen")]
    assert not any(_overlap(_rect(b), (group.x0, group.y0, group.x1, group.y1)) for b in outside)
    drawn = {(e.src, e.dst, e.kind, e.label) for e in lay.edges}
    # the nine edges inside the group are the frame; the three inits become one to the frame
    assert not any(s in {"k_gen", "v_gen", "lr_gen"} and d in {"k_gen", "v_gen", "lr_gen"}
                   for s, d, _, _ in drawn)
    assert ("level:outer", "group:k_gen", "init", None) in drawn
    assert ("level:outer", "titans", "init", None) in drawn
    assert {("k_gen", "titans", "generate", "keys"), ("v_gen", "titans", "generate", "values"),
            ("lr_gen", "titans", "generate", "lr")} <= drawn
    # the DOT keeps every edge
    text = viz.to_dot(models["selfmod"])
    for a in ("k_gen", "v_gen", "lr_gen"):
        assert f'"level:outer" -> "{a}" [style=dashed' in text
        for b in ("k_gen", "v_gen", "lr_gen"):
            assert f'"{a}" -> "{b}" [style=dotted' in text


def test_a_memory_generating_its_own_input_gets_a_loop(layouts, models, tmp_path):
    lay = layouts["selfmod"]
    (loop,) = [e for e in lay.edges if e.src == e.dst]
    assert (loop.src, loop.kind, loop.label) == ("solo", "generate", "keys")
    b = lay.box("solo")
    pts = np.asarray(loop.path)[3:-3]
    assert not viz._inside(pts, [_rect(b)])[0]            # drawn outside its box
    lx, ly = loop.label_at
    assert not (b.x < lx < b.x + b.w and b.y < ly < b.y + b.h)
    viz.draw(models["selfmod"], tmp_path / "s.svg")
    assert ">keys<" in (tmp_path / "s.svg").read_text()
