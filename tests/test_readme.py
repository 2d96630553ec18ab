"""The README's spec compiles and runs, so what a reader copies works."""
from __future__ import annotations

import re
from pathlib import Path

import torch

from nslang.compile import compile_spec
from runtime.package import import_package

ROOT = Path(__file__).resolve().parent.parent


def test_readme_spec_compiles_and_runs(tmp_path):
    blocks = re.findall(r"```nsam\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks, "the README shows a spec"
    spec = tmp_path / "readme.nsam"
    spec.write_text(blocks[0])
    compiled = compile_spec(spec, tmp_path / "pkg")
    assert compiled.plan is not None, compiled.result.diagnostics.render()
    from codegen.emit import write_package

    write_package(compiled.files, tmp_path / "pkg")
    pkg = import_package(tmp_path / "pkg", "readme_pkg")
    cfg = pkg.Config()
    cfg.depth = 1
    loss = pkg.Model(cfg).loss(torch.randint(0, cfg.vocab, (1, 33)))
    assert torch.isfinite(loss)
