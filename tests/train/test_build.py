"""Spec or package directory -> imported package: `set` overrides, `nslang compile` output, defaults."""
from __future__ import annotations

import shutil

import pytest

from _train_common import TINY_ATTN, TINY_RECURRENT
from nslang.cli import main
from runtime.train import TrainError
from runtime.train.build import DEFAULT_OPTIMIZER, compile_package, load, open_package


def test_overrides_compile_a_derived_spec(spec, tmp_path):
    path = spec(TINY_ATTN)
    pkg = compile_package(path, tmp_path / "run", overrides={"dim": 48, "attn.qk_norm": True})
    derived = (tmp_path / "run" / "spec" / "tiny_run.nsam").read_text()
    assert 'extends "../../tiny.nsam"' in derived and "dim = 48" in derived and "attn.qk_norm = true" in derived
    assert pkg.Config().dim == 48 and pkg.model_name == "tiny_run"
    assert set(pkg.spec_files) == {str(tmp_path / "run" / "spec" / "tiny_run.nsam"), str(path)}
    assert pkg.optimizer["kind"] == "adamw" and pkg.optimizer["lr"] == 3e-3  # from the spec
    with pytest.raises(TrainError, match="does not compile"):
        compile_package(path, tmp_path / "bad", overrides={"attn.nosuch": 1})
    # every override is one `key = value` line: no way to smuggle in a declaration
    with pytest.raises(TrainError):
        from runtime.train import load_run_config
        load_run_config(None, {"spec": str(path), "set": {"dim": "32 }\nmodel x {"}})


def test_a_package_from_nslang_compile(spec, tmp_path, monkeypatch):
    path = spec(TINY_RECURRENT)
    monkeypatch.chdir(tmp_path)
    assert main(["compile", path.name, "-o", "built"]) == 0
    pkg = load(tmp_path / "built", tmp_path / "run")  # the header's spec is found: its plan is recovered
    assert pkg.plan is not None and pkg.spec_hash == pkg.plan["spec_hash"]
    assert pkg.optimizer == DEFAULT_OPTIMIZER  # the spec names no optimizer
    moved = tmp_path / "a" / "b" / "built"
    shutil.copytree(tmp_path / "built", moved)
    monkeypatch.chdir(tmp_path / "a")
    pkg = open_package(moved)  # moved away from its spec: not found, still trainable
    assert pkg.plan is None and pkg.notes and set(pkg.spec_files) == {"config.py", "model.py"}
    with pytest.raises(TrainError, match="need a spec"):
        load(moved, tmp_path / "run", overrides={"dim": 64})
    with pytest.raises(TrainError, match="not a compiled package"):
        open_package(tmp_path)
