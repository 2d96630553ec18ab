"""Every diagnostic code, triggered by a small bad spec, at the right line:col with its hint.

Each case is a spec written inline; the test asserts the exact list of diagnostics (code, line,
column) it yields, so a check that stops firing, fires twice, or moves its caret fails here.
`test_every_code_has_a_case` keeps this table in step with nslang.diagnostics.CODES.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nslang.diagnostics import CODES
from nslang.frontend import check_file

BASE = """\
model m {{
  dim = 64
  heads = 4
  context = 256
  level fast token
  level chunk every 16
  level outer frozen
{body}
}}
"""


def base(body: str) -> str:
    """A valid model skeleton (lines 1-7) with `body` from line 8 on, indented by 2."""
    return BASE.format(body=textwrap.indent(textwrap.dedent(body).strip("\n"), "  "))


GOOD = base("""
    memory a in chunk { }
    memory b in fast { shape = attention }
    flow x -> b -> a
""")

HOPE_LIKE = """\
const D = 512
optimizer m3_paper : m3 { lr = 3e-4; slow_every = 64 }
model hope {
  dim = D; heads = 8; depth = 4; context = 1024
  level fast token
  level chunk every 16
  level cms1 every 16
  level cms2 every 256
  level outer frozen
  memory attn in fast { shape = attention(window = 256) }
  memory titans in chunk {
    shape = residual_mlp(hidden = 2x, act = silu)
    rule = dgd(step = exact)
    momentum = 0.9
    lr = data
    keys = generated
    conv = 4
  }
  memory keygen in chunk { shape = matrix; rule = delta; dim = D / 1 }
  cms continuum { variant = sequential; levels = [cms1, cms2] }
  flow x -> attn -> titans -> continuum
  flow x -> keygen
  transfer keygen -> titans : generate(keys)
  transfer outer -> titans : init
  optimizer m3 in outer { lr = 3e-4 }
}
sweep widths { dim = [256, 512]; titans.conv = [0, 4] }
"""

# id -> (files, expected). files: name -> text (str) or bytes; "spec.nsam" is the one checked.
# expected: (code, line, col, hint substring) per diagnostic, in report order; line/col None for
# diagnostics about a whole file (no span); hint None where the check gives none.
CASES: dict[str, tuple[dict[str, str | bytes], list[tuple]]] = {
    # ---- input and syntax ----
    "NS001-missing-equals": (
        {"spec.nsam": "model m {\n  dim 512\n}\n"},
        [("NS001", 2, 7, "expected")]),
    "NS001-unclosed-brace": (
        {"spec.nsam": base("memory a in chunk { }\nflow x -> a").rstrip().rstrip("}")},
        [("NS001", 9, 13, "is a `}` missing?")]),
    "NS001-empty": (
        {"spec.nsam": ""},
        [("NS001", 1, 1, "model NAME")]),
    "NS002-unexpected-character": (
        {"spec.nsam": "model m {\n  dim = 64 @\n}\n"},
        [("NS002", 2, 12, "expected")]),
    "NS003-missing-file": (
        {},
        [("NS003", None, None, "check the path")]),
    "NS003-binary": (
        {"spec.nsam": b"model m {\x00}"},
        [("NS003", None, None, "UTF-8")]),
    "NS003-not-utf8": (
        {"spec.nsam": b"model m { dim = 1 } # caf\xe9\n"},
        [("NS003", None, None, "UTF-8")]),
    "NS004-too-large": (
        {"spec.nsam": "# padding\n" * 110_000},
        [("NS004", None, None, "right file")]),
    "NS004-too-deep": (
        {"spec.nsam": "const A = " + "[" * 100 + "]" * 100 + "\n"},
        [("NS004", 1, 75, "machine-generated")]),
    # ---- names and options ----
    "NS101-unknown-in-flow": (
        {"spec.nsam": base("memory a in chunk { }\nflow x -> a -> b")},
        [("NS101", 9, 18, "known: a")]),
    "NS101-unknown-in-transfer": (
        {"spec.nsam": base("memory a in chunk { }\nflow x -> a\ntransfer outer -> titan : init")},
        [("NS101", 10, 21, None)]),
    "NS101-level-in-flow": (
        {"spec.nsam": base("memory a in chunk { }\nflow x -> a -> chunk")},
        [("NS101", 9, 18, "is a level")]),
    "NS101-remove-unknown": (
        {"spec.nsam": base("memory a in chunk { }\nflow x -> a\nremove b")},
        [("NS101", 10, 10, "known: a, chunk")]),
    "NS102-duplicate-memory": (
        {"spec.nsam": base("memory a in chunk { }\nmemory a in fast { }\nflow x -> a")},
        [("NS102", 9, 10, "rename one")]),
    "NS102-duplicate-setting": (
        {"spec.nsam": base("dim = 128\nmemory a in chunk { }\nflow x -> a")},
        [("NS102", 8, 3, None)]),
    "NS102-duplicate-option": (
        {"spec.nsam": base("memory a in chunk { conv = 4; conv = 2 }\nflow x -> a")},
        [("NS102", 8, 33, None)]),
    "NS102-duplicate-const": (
        {"spec.nsam": "const A = 1\nconst A = 2\n" + GOOD},
        [("NS102", 2, 7, None)]),
    "NS102-duplicate-model": (
        {"spec.nsam": GOOD + GOOD},
        [("NS102", 12, 7, None)]),
    "NS103-memory-level": (
        {"spec.nsam": base("memory a in slow { }\nflow x -> a")},
        [("NS103", 8, 15, "known: chunk, fast, outer")]),
    "NS103-cms-level": (
        {"spec.nsam": base("cms c { levels = [chunk, slow] }\nflow x -> c")},
        [("NS103", 8, 28, "known: chunk, fast, outer")]),
    "NS104-memory-option": (
        {"spec.nsam": base("memory a in chunk { rulez = dgd }\nflow x -> a")},
        [("NS104", 8, 23, "did you mean `rule`?")]),
    "NS104-model-setting": (
        {"spec.nsam": base("dimm = 32\nmemory a in chunk { }\nflow x -> a")},
        [("NS104", 8, 3, "did you mean `dim`?")]),
    "NS104-call-parameter": (
        {"spec.nsam": base("memory a in chunk { shape = mlp(hiden = 2x) }\nflow x -> a")},
        [("NS104", 8, 43, "did you mean `hidden`?")]),
    "NS105-enum": (
        {"spec.nsam": base("memory a in chunk { rule = dgdd }\nflow x -> a")},
        [("NS105", 8, 30, "did you mean `dgd`?")]),
    "NS105-range": (
        {"spec.nsam": base("memory a in chunk { momentum = 1.5 }\nflow x -> a")},
        [("NS105", 8, 34, "Titans")]),
    "NS105-division-by-zero": (
        {"spec.nsam": "const A = 4 / 0\n" + GOOD},
        [("NS105", 1, 11, None)]),
    "NS105-bad-const-reported-once": (  # not again as "`dim` needs a number, got `A`"
        {"spec.nsam": "const A = 4 / 0\n" + GOOD.replace("dim = 64", "dim = A")},
        [("NS105", 1, 11, None)]),
    "NS105-number-too-large": (
        {"spec.nsam": base("memory a in chunk { lr = 1e400 }\nflow x -> a")},
        [("NS105", 8, 28, None)]),
    "NS105-call-word-param": (
        {"spec.nsam": base("memory a in chunk { rule = dgd(step = exakt) }\nflow x -> a")},
        [("NS105", 8, 41, "did you mean `exact`?")]),
    "NS106-keyword": (
        {"spec.nsam": base("memory lambda in chunk { }\nflow x -> lambda")},
        [("NS106", 8, 10, "lambda_")]),
    "NS106-builtin": (
        {"spec.nsam": base("level print every 16\nmemory a in chunk { }\nflow x -> a")},
        [("NS106", 8, 9, "print_mem")]),
    "NS107-non-ascii": (
        {"spec.nsam": base("memory mémoire in chunk { }\nflow x -> mémoire")},
        [("NS107", 8, 10, "ASCII")]),
    "NS108-no-flow": (
        {"spec.nsam": base("memory a in chunk { }")},
        [("NS108", 1, 1, "flow x ->")]),
    "NS108-cms-levels": (
        {"spec.nsam": base("cms c { lr = 0.01 }\nflow x -> c")},
        [("NS108", 8, 7, "levels = [")]),
    "NS108-no-model": (
        {"spec.nsam": "const A = 1\n"},
        [("NS108", 1, 1, "model NAME")]),
    "NS109-cycle": (
        {"spec.nsam": 'model a extends "b.nsam" { }\n', "b.nsam": 'model b extends "spec.nsam" { }\n'},
        [("NS109", 1, 17, "inherit from itself")]),
    "NS109-self": (
        {"spec.nsam": "model spec extends spec { }\n"},
        [("NS109", 1, 20, "inherit from itself")]),
    "NS110-missing": (
        {"spec.nsam": 'model m extends "nowhere.nsam" { }\n'},
        [("NS110", 1, 17, None)]),
    "NS110-parent-has-errors": (
        {"spec.nsam": 'model m extends "p.nsam" { }\n', "p.nsam": "model p { dim 3 }\n"},
        [("NS001", 1, 15, "expected"), ("NS110", 1, 17, None)]),
    "NS110-no-such-model": (
        {"spec.nsam": "model m extends p { }\n", "p.nsam": "const A = 1\n"},
        [("NS110", 1, 17, None)]),
    "NS111-zero": (
        {"spec.nsam": base("level bad every 0\nmemory a in chunk { }\nflow x -> a")},
        [("NS111", 8, 19, "every 16")]),
    "NS111-fraction": (
        {"spec.nsam": base("level bad every 2.5\nmemory a in chunk { }\nflow x -> a")},
        [("NS111", 8, 19, "every 16")]),
    "NS111-reported-once": (  # its memory, CMS and optimizer are not "on an undeclared level"
        {"spec.nsam": base("level bad every 0\nmemory a in bad { }\ncms c { levels = [bad] }\n"
                           "flow x -> a -> c\noptimizer sgd in bad { }")},
        [("NS111", 8, 19, "every 16")]),
    # ---- graph checks ----
    "NS201-level-multiple": (
        {"spec.nsam": base("context = 240\nlevel slow every 24\nmemory a in chunk { }\nflow x -> a")
         .replace("  context = 256\n", "")},
        [("NS201", 8, 3, "use every 16 or 32")]),
    "NS201-cms-order": (
        {"spec.nsam": base("level slow every 64\ncms c { levels = [slow, chunk] }\nflow x -> c")},
        [("NS201", 9, 27, "fastest first")]),
    "NS202-level-context": (
        {"spec.nsam": base("level slow every 48\nmemory a in chunk { }\nflow x -> a")},
        [("NS202", 8, 3, "e.g. 32")]),
    "NS202-chunk": (
        {"spec.nsam": base("memory a in chunk { chunk = 24 }\nflow x -> a")},
        [("NS202", 8, 23, "use 16"), ("NS202", 8, 23, "divisor of 256")]),
    "NS203-init-direction": (
        {"spec.nsam": base("memory a in chunk { }\nmemory b in fast { }\nflow x -> a -> b\n"
                           "transfer b -> a : init")},
        [("NS203", 11, 3, "transfer a -> b : init")]),
    "NS203-optimizer-level": (
        {"spec.nsam": base("memory a in chunk { }\nflow x -> a\noptimizer adamw in chunk { }")},
        [("NS203", 10, 3, "level outer frozen")]),
    "NS204-backprop-unrelated": (
        {"spec.nsam": base("memory a in chunk { }\nmemory b in fast { }\nflow x -> a\nflow x -> b\n"
                           "transfer a -> b : backprop")},
        [("NS204", 12, 3, "use `condition`")]),
    "NS205-cycle": (
        {"spec.nsam": base("memory a in chunk { }\nmemory b in fast { }\nflow x -> a -> b -> a")},
        [("NS205", 10, 23, "transfer")]),
    "NS205-into-input": (
        {"spec.nsam": base("memory a in chunk { }\nflow x -> a -> x")},
        [("NS205", 9, 18, "block input")]),
    "NS205-self-loop": (
        {"spec.nsam": base("memory a in chunk { }\nflow x -> a -> a")},
        [("NS205", 9, 18, "remove the repeat")]),
    "NS206-heads": (
        {"spec.nsam": base("memory a in chunk { }\nflow x -> a").replace("heads = 4", "heads = 5")},
        [("NS206", 2, 3, "pick heads among 1, 2, 4, 8, 16, 32, 64")]),
    "NS206-flow-width": (
        {"spec.nsam": base("memory a in chunk { }\nmemory b in fast { dim = 32 }\n"
                           "flow x -> a\nflow a -> b")},
        [("NS206", 11, 13, "same width")]),
    "NS206-per-head": (
        {"spec.nsam": base("memory a in chunk { dim = 66 }\n"
                           "memory b in fast { dim = 66; heads = shared }\nflow b -> a")},
        [("NS206", 8, 23, None)]),
    "NS207-attention-lr": (
        {"spec.nsam": base("memory a in chunk { shape = attention; lr = 0.1 }\nflow x -> a")},
        [("NS207", 8, 42, "remove `lr`")]),
    "NS207-hebbian-mlp": (
        {"spec.nsam": base("memory a in chunk { shape = mlp; rule = hebbian }\nflow x -> a")},
        [("NS207", 8, 43, "use `gd` or `dgd`")]),
    "NS207-cms-objective": (
        {"spec.nsam": base("cms c { levels = [chunk]; objective = l2 }\nflow x -> c")},
        [("NS207", 8, 29, "objective = task")]),
    "NS208-generated": (
        {"spec.nsam": base("memory a in chunk { keys = generated }\nflow x -> a")},
        [("NS208", 8, 23, "generate(keys)")]),
    "NS209-not-generated": (
        {"spec.nsam": base("memory a in chunk { }\nmemory g in fast { }\nflow x -> g -> a\n"
                           "transfer g -> a : generate(keys)")},
        [("NS209", 11, 3, "keys = generated")]),
    "NS210-unread-memory": (
        {"spec.nsam": base("memory a in chunk { }\nmemory b in fast { }\nflow x -> a")},
        [("NS210", 9, 3, "flow x -> b")]),
    "NS211-unknown-kind": (
        {"spec.nsam": base("memory a in chunk { }\nmemory b in fast { }\nflow x -> b -> a\n"
                           "transfer a -> b : teleport")},
        [("NS211", 11, 21, "known: backprop, condition, generate, init")]),
    "NS211-generate-needs-arg": (
        {"spec.nsam": base("memory a in chunk { }\nmemory b in fast { }\nflow x -> b -> a\n"
                           "transfer a -> b : generate")},
        [("NS211", 11, 21, "`keys`")]),
    "NS211-self-transfer": (
        {"spec.nsam": base("memory a in chunk { }\nflow x -> a\ntransfer a -> a : condition")},
        [("NS211", 10, 3, None)]),
    "NS212-axis-not-setting": (
        {"spec.nsam": GOOD + "sweep s { depht = [1, 2] }\n"},
        [("NS212", 12, 11, "did you mean `depth`?")]),
    "NS212-axis-not-list": (
        {"spec.nsam": GOOD + "sweep s { depth = 2 }\n"},
        [("NS212", 12, 19, "depth = [a, b, c]")]),
    "NS212-member-option": (
        {"spec.nsam": GOOD + "sweep s { a.rulez = [gd, dgd] }\n"},
        [("NS212", 12, 11, "did you mean `rule`?")]),
}


def run(tmp_path: Path, files: dict[str, str | bytes], name: str = "spec.nsam"):
    for fname, text in files.items():
        p = tmp_path / fname
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(text, encoding="utf-8")
    return check_file(tmp_path / name)


def summary(result) -> list[tuple]:
    out = []
    for d in result.diagnostics.items:
        loc = d.location()
        out.append((d.code, loc[1] if loc else None, loc[2] if loc else None))
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_code(tmp_path, case):
    files, expected = CASES[case]
    result = run(tmp_path, files)
    assert summary(result) == [(c, line, col) for c, line, col, _ in expected], \
        result.diagnostics.render()
    for d, (code, line, _, hint) in zip(result.diagnostics.items, expected):
        if hint is not None:
            assert d.hint and hint in d.hint, (d.hint, hint)
        if line is not None:  # the location is in the file that was checked (or its parent)
            assert d.span is not None and d.span.file.endswith(".nsam")
        assert d.message and d.severity == ("warning" if code == "NS210" else "error")
    assert result.ok == (not any(d.severity == "error" for d in result.diagnostics.items))


def test_every_code_has_a_case():
    covered = {c for _, exp in CASES.values() for c, *_ in exp}
    assert covered == set(CODES), sorted(set(CODES) - covered)


@pytest.mark.parametrize("name,text", [("base", GOOD), ("hope_like", HOPE_LIKE)])
def test_good_specs_have_no_diagnostics(tmp_path, name, text):
    result = run(tmp_path, {"spec.nsam": text})
    assert result.diagnostics.items == [], result.diagnostics.render()
    assert result.ok and result.spec is not None
    assert [c.model.name for c in result.checked] == [m.name for m in result.spec.models]


def test_good_extends_chain(tmp_path):
    """A child that overrides, removes and adds, on top of a parent in another file."""
    parent = base("""
        memory a in chunk { rule = delta }
        memory b in fast { shape = attention }
        memory c in chunk { }
        flow x -> b -> a
        flow x -> c
    """).replace("model m", "model parent")
    child = """\
model child extends "parent.nsam" {
  a.rule = dgd
  remove c
  memory d in chunk { shape = mlp; rule = gd }
  flow x -> b -> a -> d
}
"""
    result = run(tmp_path, {"parent.nsam": parent, "spec.nsam": child})
    assert result.diagnostics.items == [], result.diagnostics.render()
    (model,) = result.spec.models
    assert {m.name for m in model.memories} == {"a", "b", "d"}
    assert model.member("a").rule.kind == "dgd"   # overridden
    assert model.member("d").shape.kind == "mlp"  # added
    assert model.member("c") is None              # removed
    assert [f.path for f in model.flows] == [("x", "b", "a", "d")]  # the child's flows replace
    assert model.extends == (str(tmp_path / "parent.nsam"),)


STOCK = sorted((Path(__file__).resolve().parent.parent / "specs").glob("**/*.nsam"))


@pytest.mark.parametrize("path", STOCK, ids=[p.name for p in STOCK])
def test_stock_specs_have_no_diagnostics(path):
    result = check_file(path)
    assert result.diagnostics.items == [], result.diagnostics.render()
    assert result.ok


def test_optimizer_only_spec(tmp_path):
    result = run(tmp_path, {"spec.nsam": "optimizer m3_paper : m3 { lr = 3e-4 }\n"})
    assert result.diagnostics.items == []
    assert [o.kind for o in result.spec.optimizers] == ["m3"]


def test_all_errors_at_once(tmp_path):
    """Five independent mistakes in one file: each is reported, none hides another."""
    text = base("""
        level bad every 0
        memory a in chunk { rulez = dgd }
        memory c in slow { }
        memory lambda in fast { }
        flow x -> a -> c -> lambda
    """) + "sweep s { depht = [1, 2] }\n"
    result = run(tmp_path, {"spec.nsam": text})
    assert sorted(summary(result)) == [
        ("NS103", 10, 15),   # memory c in slow
        ("NS104", 9, 23),    # rulez
        ("NS106", 11, 10),   # lambda
        ("NS111", 8, 19),    # every 0
        ("NS212", 14, 11),   # depht
    ], result.diagnostics.render()
    rendered = result.diagnostics.render()
    assert rendered.endswith("5 errors")
    for code in ("NS103", "NS104", "NS106", "NS111", "NS212"):
        assert f"error[{code}]" in rendered


def test_render_is_sorted_and_points_at_the_file(tmp_path):
    result = run(tmp_path, CASES["NS104-memory-option"][0])
    text = result.diagnostics.render()
    assert f"--> {tmp_path / 'spec.nsam'}:8:23" in text
    assert "8 |   memory a in chunk { rulez = dgd }" in text
    assert "  |" + " " * 23 + "^^^^^" in text
