"""Hostile input: whatever the file is, the front end answers with diagnostics, never a
traceback, and `nslang check` exits non-zero (or zero, for the inputs that are odd but valid:
a BOM, CRLF line endings, tabs).

Each case is built once in a temporary folder; the CLI runs on all of them, a few processes at a
time (each process pays the interpreter and import start-up, ~0.3 s).
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nslang.frontend import check_file
from nslang.source import SOURCES

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
model m {
  dim = 64
  heads = 4
  context = 256
  level fast token
  level chunk every 16
  level outer frozen
  memory a in chunk { rule = delta }
  memory b in fast { shape = attention }
  flow x -> b -> a
  transfer outer -> a : init
}
"""


def _stock_text() -> str:
    hope = ROOT / "specs" / "hope.nsam"
    if hope.is_file():
        return hope.read_text(encoding="utf-8")
    return GOOD


def _truncations(text: str) -> list[str]:
    """Cuts inside the first model (after its `{`, before its last `}`), some mid-token."""
    start = text.index("{", text.index("model")) + 1
    end = text.rindex("}")
    return [text[:start + (end - start) * k // 7] for k in range(1, 7)]


def _cases() -> dict[str, object]:
    """name -> file content (str: UTF-8 text, bytes: raw), a callable(dir) -> path, or None for
    "no such file". The expected exit status is in VALID (0) or 1 otherwise."""
    rng = random.Random(1234)
    cases: dict[str, object] = {
        "garbage_bytes": bytes(rng.randrange(256) for _ in range(4096)),
        "garbage_text": "".join(rng.choice("{}[]()=,;:.->x \n\tmodel level 0123456789#\"")
                                for _ in range(4000)),
        "binary_nul": b"model m {\x00\x01\x02 dim = 64 }\n",
        "missing": None,
        "empty": "",
        "whitespace_only": " \n\t\r\n   \n\x0b\x0c\n",
        "comment_only": "# nothing but a comment\n",
        "ten_megabytes": ("# " + "x" * 98 + "\n") * 100_000,
        "deep_braces": "model m " + "{" * 10_000 + "}" * 10_000 + "\n",
        "deep_brackets": "const A = " + "[" * 10_000 + "]" * 10_000 + "\n",
        "deep_parens": "const A = " + "(" * 10_000 + "1" + ")" * 10_000 + "\n",
        "deep_calls": "model m { memory a in l { shape = " + "mlp(" * 10_000 + ")" * 10_000 + " } }\n",
        "deep_negation": "const A = " + "- " * 10_000 + "1\n",
        "long_sum": "const A = " + "1 + " * 10_000 + "1\n",
        "non_ascii_model": GOOD.replace("model m", "model modèle"),
        "non_ascii_memory": GOOD.replace(" a ", " 记忆 ").replace("-> a", "-> 记忆"),
        "non_ascii_emoji": GOOD.replace("model m", "model m\U0001F600"),
        "keyword_names": GOOD.replace("model m", "model class").replace(" a ", " def ")
                             .replace("-> a", "-> def").replace("level fast", "level None")
                             .replace("in fast", "in None"),
        "builtin_names": GOOD.replace("model m", "model list").replace(" b ", " print ")
                             .replace("-> b", "-> print").replace("level chunk", "level self")
                             .replace("in chunk", "in self"),
        "extends_cycle": lambda d: _write(d, {"a.nsam": 'model a extends "b.nsam" { }\n',
                                              "b.nsam": 'model b extends "a.nsam" { }\n'}, "a.nsam"),
        "extends_self_by_name": lambda d: _write(d, {"me.nsam": "model me extends me { }\n"},
                                                 "me.nsam"),
        "extends_self_by_path": lambda d: _write(d, {"self.nsam": 'model s extends "self.nsam" '
                                                     "{ }\n"}, "self.nsam"),
        "extends_chain_200": lambda d: _write(d, {
            **{f"e{i}.nsam": f"model e{i} extends e{i + 1} {{ }}\n" for i in range(200)},
            "e200.nsam": "model e200 { dim = 64 }\n"}, "e0.nsam"),
        "extends_missing_file": 'model m extends "no/such/parent.nsam" { dim = 64 }\n',
        "extends_missing_name": "model m extends no_such_stock_spec { dim = 64 }\n",
        "extends_directory": lambda d: (d / "pdir.nsam").mkdir(exist_ok=True) or
                             _write(d, {"ext_dir.nsam": 'model m extends "pdir.nsam" { }\n'},
                                    "ext_dir.nsam"),
        "directory": lambda d: (d / "a_directory.nsam").mkdir(exist_ok=True) or
                     d / "a_directory.nsam",
        "invalid_utf8": b"model m {\n  dim = 64 # \xff\xfe\xc3\x28\n}\n",
        "bom_with_error": "\ufeffmodel m { dim 64 }\n",
        "crlf_with_error": GOOD.replace("rule = delta", "rule = deltaa").replace("\n", "\r\n"),
        "tabs_with_error": GOOD.replace("  ", "\t").replace("rule = delta", "rule =\tdeltaa"),
        "very_long_line": 'const S = "' + "x" * 300_000 + '" model m { dim 64 }\n',
        "many_statements_one_line": "model m { " + "; " * 20_000 + "dim 64 }\n",
        "huge_float": GOOD.replace("dim = 64", "dim = 1e400"),
        "huge_int": GOOD.replace("dim = 64", "dim = " + "9" * 5000),
        "huge_product": "const A = 1" + "0" * 200 + "\nconst B = A * A / 3\n" + GOOD,
        "division_by_zero": "const H = 0\nconst W = 64 / H\n" + GOOD.replace("dim = 64", "dim = W"),
        "nan_like": GOOD.replace("dim = 64", "dim = 1e400 - 1e400"),
        "null_in_name": "model m\x00n { }\n",
        "lone_cr": GOOD.replace("\n", "\r").replace("rule = delta", "rule = 3"),
        "unicode_whitespace": GOOD.replace("dim = 64", "dim\u00a0=\u200964"),
        "many_models": "".join(GOOD.replace("model m", f"model m{i}").replace(
            "rule = delta", "rule = nope") for i in range(300)),
    }
    for i, cut in enumerate(_truncations(_stock_text())):
        cases[f"truncated_{i}"] = cut
    return cases


# Odd but valid: they must check cleanly, with exit status 0.
VALID = {
    "bom_good": "\ufeff" + GOOD,
    "crlf_good": GOOD.replace("\n", "\r\n"),
    "tabs_good": GOOD.replace("  ", "\t").replace(" = ", "\t=\t"),
    "no_final_newline": GOOD.rstrip("\n"),
    "brackets_in_comment": "# " + "(" * 100 + " )))\n" + GOOD,
    "brackets_in_string": 'const S = "' + "[" * 100 + '"\n' + GOOD,
}

CASES = _cases() | VALID


def _write(d: Path, files: dict[str, str], main: str) -> Path:
    for name, text in files.items():
        (d / name).write_text(text, encoding="utf-8")
    return d / main


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for name, content in CASES.items():
        d = tmp_path_factory.mktemp(name)
        if content is None:
            out[name] = d / "does_not_exist.nsam"
        elif callable(content):
            out[name] = content(d)
        else:
            p = d / f"{name}.nsam"
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_bytes(content.encode("utf-8"))  # no newline translation: CRLF stays
            out[name] = p
    return out


@pytest.fixture(scope="module")
def cli(paths) -> dict[str, tuple[int, str, str]]:
    """`python -m nslang.cli check PATH` for every case, run concurrently."""
    def run(path: Path) -> tuple[int, str, str]:
        proc = subprocess.run([sys.executable, "-m", "nslang.cli", "check", str(path)], cwd=ROOT,
                              capture_output=True, timeout=120)
        return proc.returncode, proc.stdout.decode("utf-8", "replace"), \
            proc.stderr.decode("utf-8", "replace")

    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
        futures = {name: pool.submit(run, p) for name, p in paths.items()}
        return {name: f.result() for name, f in futures.items()}


def assert_valid_spans(result) -> None:
    for d in result.diagnostics.items:
        for span in [d.span, *(s for _, s in d.notes)]:
            if span is None:
                continue
            assert span.file in SOURCES
            assert 0 <= span.start <= span.end <= len(SOURCES[span.file].text), (d, span)


@pytest.mark.parametrize("name", sorted(set(CASES) - set(VALID)))
def test_hostile_gives_diagnostics(paths, name):
    result = check_file(paths[name])  # must not raise
    assert result.diagnostics.errors, f"{name}: no error reported"
    assert not result.ok
    assert_valid_spans(result)
    text = result.diagnostics.render()
    assert "error[NS" in text and "Traceback" not in text


@pytest.mark.parametrize("name", sorted(VALID))
def test_odd_but_valid_checks_clean(paths, name):
    result = check_file(paths[name])
    assert result.diagnostics.items == [], result.diagnostics.render()
    assert result.ok


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_exit_status_and_no_traceback(cli, name):
    code, stdout, stderr = cli[name]
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr[-3000:]
    if name in VALID:
        assert code == 0, stderr
        assert ": ok (m)" in stdout
    else:
        assert code == 1, (code, stderr[-2000:])
        assert "error[NS" in stderr


# ---- what the diagnostics say, for the cases where that is the point ------------------------
def _codes(paths, name) -> list[str]:
    return [d.code for d in check_file(paths[name]).diagnostics.items]


@pytest.mark.parametrize("name,code", [
    ("garbage_bytes", "NS003"), ("binary_nul", "NS003"), ("missing", "NS003"),
    ("directory", "NS003"), ("invalid_utf8", "NS003"), ("null_in_name", "NS003"),
    ("empty", "NS001"), ("whitespace_only", "NS001"), ("comment_only", "NS108"),
    ("ten_megabytes", "NS004"), ("deep_braces", "NS004"), ("deep_brackets", "NS004"),
    ("deep_parens", "NS004"), ("deep_calls", "NS004"), ("deep_negation", "NS004"),
    ("long_sum", "NS004"),
    ("extends_cycle", "NS109"), ("extends_self_by_name", "NS109"),
    ("extends_self_by_path", "NS109"), ("extends_chain_200", "NS004"), ("extends_missing_file", "NS110"),
    ("extends_missing_name", "NS110"), ("extends_directory", "NS110"),
    ("huge_float", "NS105"), ("huge_int", "NS105"), ("huge_product", "NS105"),
    ("division_by_zero", "NS105"), ("nan_like", "NS105"),
    ("non_ascii_model", "NS107"), ("non_ascii_memory", "NS107"), ("non_ascii_emoji", "NS001"),
    ("many_statements_one_line", "NS001"), ("very_long_line", "NS001"),
])
def test_hostile_code(paths, name, code):
    assert set(_codes(paths, name)) == {code}, check_file(paths[name]).diagnostics.render()


def test_keyword_and_builtin_names(paths):
    diags = check_file(paths["keyword_names"]).diagnostics.items
    assert sorted(d.message.split("`")[1] for d in diags if d.code == "NS106") == \
        ["None", "class", "def"]
    diags = check_file(paths["builtin_names"]).diagnostics.items
    assert sorted(d.message.split("`")[1] for d in diags if d.code == "NS106") == \
        ["list", "print", "self"]


def test_missing_file_message(paths):
    (d,) = check_file(paths["missing"]).diagnostics.items
    assert "no such file" in d.message and d.span is None


def test_bom_does_not_shift_columns(paths):
    (d,) = check_file(paths["bom_with_error"]).diagnostics.items
    assert d.code == "NS001" and d.location()[1:] == (1, 15)


def test_crlf_positions_and_rendering(paths):
    (d,) = check_file(paths["crlf_with_error"]).diagnostics.items
    assert d.code == "NS105" and d.location()[1:] == (8, 30)
    assert "\r" not in d.render()


def test_tabs_count_as_one_column(paths):
    (d,) = check_file(paths["tabs_with_error"]).diagnostics.items
    assert d.code == "NS105" and d.location()[1:] == (8, 29)
    lines = d.render().splitlines()
    quoted = next(ln for ln in lines if ln.startswith("8 | "))
    caret = lines[lines.index(quoted) + 1]
    assert quoted[caret.index("^"):caret.index("^") + 6] == "deltaa"


def test_very_long_line_is_cut_in_the_report(paths):
    result = check_file(paths["very_long_line"])
    (d,) = result.diagnostics.items
    assert d.code == "NS001" and d.message.startswith("missing `=`")
    assert max(len(line) for line in d.render().splitlines()) < 200


def test_extends_cycle_names_the_chain(paths):
    (d,) = check_file(paths["extends_cycle"]).diagnostics.items
    assert "a.nsam:a -> b.nsam:b -> a" in d.message


def test_truncated_stock_specs_point_inside_the_file(paths):
    for name in (n for n in CASES if n.startswith("truncated_")):
        result = check_file(paths[name])
        errors = result.diagnostics.errors
        assert errors
        assert any(d.span is not None and d.span.file == str(paths[name]) for d in errors), name


def test_many_models_report_every_one(paths):
    diags = check_file(paths["many_models"]).diagnostics.items
    assert [d.code for d in diags] == ["NS105"] * 300
