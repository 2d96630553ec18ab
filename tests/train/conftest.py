"""Fixtures for the trainer tests: tiny specs written into tmp_path and a tiny prepared corpus.

The corpus is prepared once per session by the data layer itself, from a local fake source (no
network), into a private cache; tests pass its folder as `data`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (_HERE, os.path.dirname(_HERE)):  # _train_common here, tiny_corpus in tests/
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _train_common import TINY  # noqa: E402
from tiny_corpus import documents, prepare_tiny_corpus  # noqa: E402


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """A prepared byte-level corpus (about 60k training tokens) made by runtime.data.prepare."""
    return prepare_tiny_corpus(tmp_path_factory.mktemp("corpus"), "tiny-train-corpus", val_fraction=0.1,
                               docs=documents(n=24, words=400, seed=0))


@pytest.fixture
def spec(tmp_path):
    """Write a tiny spec into tmp_path: spec(TEXT, name) -> path."""
    def write(text: str = TINY, name: str = "tiny.nsam") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


@pytest.fixture
def run_config(tmp_path, corpus):
    """A RunConfig for a fast CPU run of `spec_path` into tmp_path/run (keyword overrides)."""
    from runtime.train import RunConfig

    def make(spec_path, **kw) -> "RunConfig":
        values = dict(spec=str(spec_path), out=str(tmp_path / "run"), data=str(corpus), steps=8, batch_size=2,
                      context=64, warmup=2, log_every=1, eval_every=4, eval_batches=2, save_every=4,
                      device="cpu", progress=False)
        values.update(kw)
        return RunConfig(**values)
    return make
