"""Mutation fuzzing of the front end: every mutant of a stock spec either checks or yields
diagnostics with valid spans, and never raises.

The stock specs (specs/**/*.nsam) are mutated by deleting, duplicating and swapping tokens and
lines and by inserting random characters. A small run (derandomized, so CI is reproducible) runs
by default; set NSLANG_FUZZ_EXAMPLES=5000 for a long run (it is then randomized as well, so each
long run explores new mutants).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nslang.frontend import check_file
from nslang.source import SOURCES

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

# Used when no stock spec exists yet: a Hope-like model exercising most constructs.
HOPE_LIKE = """\
# Hope-like: attention, a self-modifying Titans memory and a continuum memory system
const D = 512
const H = 8

optimizer m3_paper : m3 { lr = 3e-4; slow_every = 64 }

model hope {
  dim = D; heads = H; depth = 4; context = 1024
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
    retain = data
    keys = generated
    conv = 4
  }
  memory keygen in chunk { shape = matrix; rule = delta; dim = D / 1 }
  cms continuum { variant = sequential; levels = [cms1, cms2]; lr = 1e-3 }

  flow x -> attn -> titans -> continuum
  flow x -> keygen
  transfer keygen -> titans : generate(keys)
  transfer outer -> titans : init
  optimizer m3 in outer { lr = 3e-4 }
}

sweep widths { dim = [256, 512]; titans.conv = [0, 4] }
"""

_ODD_VALUES = ["0", "-1", "3", "7", "1e400", "2x", "0.5", "true", "x", "outer", "generated",
               "data", "self", "class", "print", "attention", "none", "init", "backprop",
               "generate", "condition", "999999999999", "mlp", "task", "local", "shared"]
_KEYWORDS_OF_GRAMMAR = {"model", "level", "memory", "cms", "flow", "transfer", "optimizer",
                        "remove", "sweep", "const", "extends", "every", "tokens", "token",
                        "sequence", "step", "frozen", "in", "true", "false"}
_COMMENT = re.compile(r"#.*")  # no stock spec has a `#` inside a string
_TOKEN = re.compile(r'\s+|"[^"\n]*"|->|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?x?|\w+|.', re.S)
# Characters that matter to the grammar, plus a few that should never reach a traceback.
_ALPHABET = st.one_of(
    st.sampled_from(list('{}[]()=,;:.-+*/>"#xe0123456789 \n\t\r\ufeff')),
    st.characters(blacklist_categories=("Cs",)),
)
_KEYWORDS = ["->", "model", "level", "memory", "cms", "flow", "transfer", "optimizer", "remove",
             "sweep", "const", "extends", "every", "token", "in", "true", "1e400", "0", "-1",
             "4x", "x", "class", "dim", "generate(keys)", "init", "frozen"]
_INSERT = st.one_of(st.text(_ALPHABET, min_size=1, max_size=6),
                    st.sampled_from(_KEYWORDS).map(lambda w: f" {w} "))


def _stock() -> list[tuple[str, str]]:
    files = sorted(SPECS.glob("**/*.nsam")) if SPECS.is_dir() else []
    out = [(str(p.relative_to(SPECS)), p.read_text(encoding="utf-8")) for p in files]
    return out or [("hope_like.nsam", HOPE_LIKE)]


STOCK = _stock()


def _mutate(text: str, ops: list[tuple[str, int, int, str]]) -> str:
    for op, i, j, ins in ops:
        op_j_odd = lambda j: j % 3 == 0  # noqa: E731
        if op.endswith("line"):
            units = text.splitlines(keepends=True)
        else:
            units = _TOKEN.findall(text)
        if not units:
            units = [""]
        i, j = i % len(units), j % len(units)
        if op.startswith("delete"):
            del units[i]
        elif op.startswith("dup"):
            units.insert(i, units[i])
        elif op.startswith("swap"):
            units[i], units[j] = units[j], units[i]
        elif op == "replace_token":
            # a word or number for another one of the spec's, or for an odd value: the syntax
            # mostly survives, so these exercise name resolution, lowering and the graph checks
            words = [k for k, u in enumerate(units)
                     if (u[:1].isalnum() or u[:1] == "_") and u not in _KEYWORDS_OF_GRAMMAR] or [i]
            i, j = words[i % len(words)], words[j % len(words)]
            units[i] = _ODD_VALUES[j % len(_ODD_VALUES)] if op_j_odd(j) else units[j]
        elif op == "insert":
            units.insert(i, ins)
        text = "".join(units)
    return text


_OPS = st.tuples(
    st.sampled_from(["delete_token", "dup_token", "swap_token", "replace_token", "delete_line",
                     "dup_line", "swap_line", "insert"]),
    st.integers(0, 10_000), st.integers(0, 10_000),
    _INSERT,
)

_N = int(os.environ.get("NSLANG_FUZZ_EXAMPLES", "0"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of specs/, so a mutant sits where its original did and `extends` still resolves."""
    root = tmp_path_factory.mktemp("fuzz")
    if SPECS.is_dir():
        shutil.copytree(SPECS, root / "specs")
    else:
        (root / "specs").mkdir()
    return root / "specs"


def assert_valid_result(path: Path):
    result = check_file(path)  # must not raise
    for d in result.diagnostics.items:
        spans = [d.span] + [s for _, s in d.notes]
        for span in spans:
            if span is None:
                continue
            assert span.file in SOURCES, (d, span)
            n = len(SOURCES[span.file].text)
            assert 0 <= span.start <= span.end <= n, (d, span, n)
        assert d.code.startswith("NS") and d.message
    result.diagnostics.render()  # rendering every snippet must not raise either
    if result.diagnostics.errors:
        assert not result.ok
    return result


def _outcome(result) -> str:
    """For --hypothesis-show-statistics: how far into the front end a mutant got."""
    codes = {d.code for d in result.diagnostics.errors}
    if not codes:
        return "checks clean"
    if codes & {"NS001", "NS002", "NS003", "NS004"}:
        return "syntax error"
    return "semantic error(s)"


_SETTINGS = settings(max_examples=_N or 120, derandomize=not _N, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                            HealthCheck.function_scoped_fixture])


def _strip_comments(text: str) -> str:
    """Without comments, every mutation hits the spec itself."""
    lines = (_COMMENT.sub("", ln).rstrip() for ln in text.splitlines())
    return "\n".join(ln for ln in lines if ln) + "\n"


def _check_mutant(workdir: Path, rel: str, mutant: str) -> None:
    target = workdir / Path(rel).parent / "_mutant.nsam"
    target.write_bytes(mutant.encode("utf-8"))
    event(_outcome(assert_valid_result(target)))


@_SETTINGS
@given(spec=st.sampled_from(STOCK), ops=st.lists(_OPS, min_size=1, max_size=4),
       strip=st.booleans())
def test_mutants_check_or_report(workdir, spec, ops, strip):
    rel, text = spec
    _check_mutant(workdir, rel, _mutate(_strip_comments(text) if strip else text, ops))


_SEMANTIC_OPS = st.tuples(st.sampled_from(["replace_token", "replace_token", "delete_line",
                                           "dup_line"]),
                          st.integers(0, 10_000), st.integers(0, 10_000), st.just(""))


@_SETTINGS
@given(spec=st.sampled_from(STOCK), ops=st.lists(_SEMANTIC_OPS, min_size=1, max_size=3))
def test_semantic_mutants_check_or_report(workdir, spec, ops):
    """Mutations that mostly keep the syntax (a word for another, a statement dropped or
    repeated), so the mutants reach lowering and the graph checks."""
    rel, text = spec
    _check_mutant(workdir, rel, _mutate(_strip_comments(text), ops))


# A few specs get every single-token deletion (the rest are covered by the random mutants).
DELETION = [s for s in STOCK if Path(s[0]).stem in ("hope", "titans", "m3", "hope_like")] or STOCK[:1]


@pytest.mark.parametrize("rel,text", DELETION, ids=[r for r, _ in DELETION])
def test_every_single_token_deletion(workdir, rel, text):
    """Deleting any one token of a spec never crashes the front end."""
    tokens = _TOKEN.findall(text)
    target = workdir / Path(rel).parent / "_deleted.nsam"
    step = max(1, len(tokens) // 200)  # bound the time on long specs
    for i in range(0, len(tokens), step):
        if tokens[i].isspace():
            continue
        target.write_text("".join(tokens[:i] + tokens[i + 1:]), encoding="utf-8")
        assert_valid_result(target)
