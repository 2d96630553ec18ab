"""docs/language.md is executable: every ```nsam block is a complete spec that checks clean,
every ```nsam-error block yields exactly the code its first line names (`# expect: NSxxx`),
every diagnostic code has a `### NSxxx` section with such an example, and every option of
nslang/schema.py is documented.

Each block is saved as `example.nsam` in an empty folder (so `extends` finds the stock specs).
A block whose comments say `# encoding: NAME` is saved in that encoding instead of UTF-8.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from nslang.diagnostics import CODES
from nslang.frontend import check_file
from nslang.schema import CMS_OPTIONS, MEMORY_OPTIONS, MODEL_SETTINGS, OPTIMIZERS, TRANSFERS

DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"
TEXT = DOC.read_text(encoding="utf-8")
FENCE = re.compile(r"^```(nsam|nsam-error)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
BLOCKS = [(m.group(1), m.group(2), TEXT.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(TEXT)]
GOOD = [(text, line) for kind, text, line in BLOCKS if kind == "nsam"]
BAD = [(text, line) for kind, text, line in BLOCKS if kind == "nsam-error"]


def _check(tmp_path: Path, text: str):
    enc = re.search(r"^# encoding: ([\w-]+)", text, re.M)
    path = tmp_path / "example.nsam"
    path.write_bytes(text.encode(enc.group(1) if enc else "utf-8"))
    return check_file(path)


def test_the_doc_has_examples():
    assert len(GOOD) >= 15 and len(BAD) >= len(CODES)


@pytest.mark.parametrize("text,line", GOOD, ids=[f"line{line}" for _, line in GOOD])
def test_nsam_blocks_check_clean(tmp_path, text, line):
    result = _check(tmp_path, text)
    assert result.ok and result.diagnostics.items == [], \
        f"docs/language.md:{line}\n{result.diagnostics.render()}"


@pytest.mark.parametrize("text,line", BAD, ids=[f"line{line}" for _, line in BAD])
def test_nsam_error_blocks_produce_their_code(tmp_path, text, line):
    first = text.splitlines()[0]
    expect = re.fullmatch(r"# expect: (NS\d{3})\s*", first)
    assert expect, f"docs/language.md:{line}: first line must be `# expect: NSxxx`, got {first!r}"
    result = _check(tmp_path, text)
    codes = [d.code for d in result.diagnostics.items]
    assert codes and set(codes) == {expect.group(1)}, \
        f"docs/language.md:{line}: expected {expect.group(1)}\n{result.diagnostics.render()}"


def _sections() -> dict[str, str]:
    parts = re.split(r"^### (NS\d{3})\b.*$", TEXT, flags=re.M)
    return {code: body.split("\n## ")[0] for code, body in zip(parts[1::2], parts[2::2])}


def test_every_code_has_a_section_with_an_example():
    sections = _sections()
    assert set(sections) == set(CODES), sorted(set(CODES) ^ set(sections))
    for code, body in sections.items():
        assert f"```nsam-error\n# expect: {code}" in body, f"### {code} has no example"


def test_every_option_is_documented():
    documented = set()
    for row in re.findall(r"^\|.*$", TEXT, re.M):   # a name in the first two cells of a table row
        for cell in row.split("|")[1:3]:
            documented.update(re.findall(r"`([a-z_0-9]+)`", cell))
    tables = [MODEL_SETTINGS, MEMORY_OPTIONS, CMS_OPTIONS, TRANSFERS, *OPTIMIZERS.values()]
    missing = sorted({key for table in tables for key in table} - documented)
    assert not missing, f"options without a table row in docs/language.md: {missing}"
