"""Every known syntax mistake (nslang.syntax_errors.KNOWN_MISTAKES) fails to parse, is reported
with its own message, and renders as `file:line:col`, the source line and a caret under the span.
"""
from __future__ import annotations

import pytest
from lark import UnexpectedInput

from nslang.frontend import check_file
from nslang.parser import _parser
from nslang.source import SOURCES
from nslang.syntax_errors import KNOWN_MISTAKES, OUTSIDE_MODEL, describe_expected

SNIPPETS = [(label, snippet) for label, snippets in KNOWN_MISTAKES.items() for snippet in snippets]


def check_text(tmp_path, text: str, name: str = "bad.nsam"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path, check_file(path)


def assert_rendered_at(diag, path) -> None:
    """The rendered diagnostic names file:line:col, quotes the line and puts the caret under
    the span."""
    src = SOURCES[str(path)]
    line, col = src.line_col(diag.span.start)
    text = diag.render()
    lines = text.splitlines()
    assert lines[0] == f"error[{diag.code}]: {diag.message}"
    assert f"--> {path}:{line}:{col}" in lines[1]
    quoted = next(i for i, ln in enumerate(lines) if ln.startswith(f"{line} | "))
    assert lines[quoted] == f"{line} | {src.line_text(line)}"
    caret = lines[quoted + 1]
    prefix = " " * len(str(line)) + " | "
    assert caret.startswith(prefix)
    marks = caret[len(prefix):]
    assert marks.index("^") == col - 1
    width = marks.count("^")
    assert set(marks.strip()) == {"^"}
    end_line, _ = src.line_col(max(diag.span.start, diag.span.end - 1))
    if end_line == line:
        assert width == max(1, diag.span.end - diag.span.start)


@pytest.mark.parametrize("label,snippet", SNIPPETS, ids=[s for _, s in SNIPPETS])
def test_snippet_fails_to_parse(label, snippet):
    with pytest.raises(UnexpectedInput):
        _parser().parse(snippet)


@pytest.mark.parametrize("label,snippet", SNIPPETS, ids=[s for _, s in SNIPPETS])
def test_snippet_gets_its_own_message(tmp_path, label, snippet):
    path, result = check_text(tmp_path, snippet + "\n")
    assert [d.code for d in result.diagnostics.items] == ["NS001"], result.diagnostics.render()
    (diag,) = result.diagnostics.items
    assert diag.message == label
    assert diag.hint, "a syntax error always says what was expected"
    assert result.spec is None and not result.ok
    assert_rendered_at(diag, path)


@pytest.mark.parametrize("label,snippet", SNIPPETS[::3], ids=[s for _, s in SNIPPETS[::3]])
def test_snippet_after_comments_and_blank_lines(tmp_path, label, snippet):
    """The same mistake further down a file: same message, line:col moved with it."""
    path, result = check_text(tmp_path, "# a comment\n\n   \n" + snippet + "\n")
    (diag,) = result.diagnostics.items
    assert diag.message == label
    line, _ = SOURCES[str(path)].line_col(diag.span.start)
    assert line >= 4
    assert_rendered_at(diag, path)


def in_context(snippet: str) -> str:
    """The snippet with other items before the mistake: earlier declarations in the file, in
    the model and in the memory block (a mistake is rarely the first thing in a file)."""
    text = snippet.replace("model m { ", "model m { dim = 64; level q token\n  ", 1)
    text = text.replace(" in l { ", " in l { conv = 1; ", 1)
    return "const Z = 1\nmodel p { dim = 1 }\n" + text


@pytest.mark.parametrize("label,snippet", SNIPPETS, ids=[s for _, s in SNIPPETS])
def test_snippet_after_other_items(tmp_path, label, snippet):
    """The same mistake after other declarations (lark's own state match compares the parser
    stack depth too, so it only recognised a mistake in a block's first item)."""
    path, result = check_text(tmp_path, in_context(snippet) + "\n")
    (diag,) = result.diagnostics.items
    assert (diag.code, diag.message) == ("NS001", label), in_context(snippet)
    assert diag.location()[1] >= 3
    assert_rendered_at(diag, path)


@pytest.mark.parametrize("before", [
    "model p { }", "model p extends q { dim = 1 }", "const A = 1", "const A = [1, 2]",
    "optimizer o : sgd { lr = 1 }", "sweep s { dim = [1] }",
])
@pytest.mark.parametrize("stray", ["level fast every 16", "memory a in l { }", "dim = 512",
                                   "flow x -> a", "cms c { }", "remove a"])
def test_declaration_outside_a_model_after_any_top_level_item(tmp_path, before, stray):
    path, result = check_text(tmp_path, f"{before}\n{stray}\n")
    (diag,) = result.diagnostics.items
    assert diag.message == OUTSIDE_MODEL
    assert diag.location()[1:] == (2, 1)
    assert_rendered_at(diag, path)


def test_unknown_mistake_falls_back_to_token(tmp_path):
    path, result = check_text(tmp_path, "model m {\n  dim = 1 ) \n}\n")
    (diag,) = result.diagnostics.items
    assert diag.code == "NS001"
    assert diag.message == "unexpected `)`"
    assert_rendered_at(diag, path)
    assert diag.location()[1:] == (2, 11)


def test_unexpected_character_is_ns002(tmp_path):
    path, result = check_text(tmp_path, "model m {\n  dim = 64 $\n}\n")
    (diag,) = result.diagnostics.items
    assert (diag.code, diag.message) == ("NS002", "unexpected character `$`")
    assert diag.location()[1:] == (2, 12)
    assert_rendered_at(diag, path)


def test_unprintable_character_is_named_by_code_point(tmp_path):
    path, result = check_text(tmp_path, "model m {\n  dim = 64 \u200b\n}\n")
    (diag,) = result.diagnostics.items
    assert diag.code == "NS002" and "U+200B" in diag.message


def test_end_of_file_in_a_declaration(tmp_path):
    path, result = check_text(tmp_path, "model m {\n  level fast token\n")
    (diag,) = result.diagnostics.items
    assert diag.code == "NS001"
    assert "`}` missing" in diag.hint
    assert 0 <= diag.span.start <= diag.span.end <= len(SOURCES[str(path)].text)
    assert_rendered_at(diag, path)


def test_caret_on_a_long_line_stays_under_the_error(tmp_path):
    """Lines over 120 characters are cut around the caret; the caret still marks the token."""
    text = "model m { " + "dim = 1; " * 40 + "dim 2 }\n"
    path, result = check_text(tmp_path, text)
    (diag,) = result.diagnostics.items
    lines = diag.render().splitlines()
    quoted = next(ln for ln in lines if ln.startswith("1 | "))
    caret = lines[lines.index(quoted) + 1]
    at = caret.index("^")
    assert len(quoted) < 140
    assert quoted[at:at + 1] == "2"   # the token after `dim` is where `=` was expected
    assert "..." in quoted


def test_describe_expected_words():
    assert describe_expected({"EQUAL"}) == "expected `=`"
    assert describe_expected({"EQUAL", "COLON"}) == "expected `:` or `=`"
    assert describe_expected(set()) == "check the line against docs/language.md"
