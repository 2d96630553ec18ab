"""Fixtures for the trainer tests: tiny specs written into tmp_path and a tiny prepared corpus.

The corpus is prepared once per session by the data layer itself, from a local fake source (no
network), into a private cache; tests pass its folder as `data`.
"""
from __future__ import annotations

import io
import os
import sys
import tarfile
from pathlib import Path

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from _train_common import TINY, documents  # noqa: E402


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """A prepared byte-level corpus (about 60k training tokens) made by runtime.data.prepare."""
    from runtime.data import Package, Source, prepare, register, unregister

    root = tmp_path_factory.mktemp("corpus")
    tarball = root / "tiny-corpus-1.0.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        for i, text in enumerate(documents()):
            data = text.encode()
            info = tarfile.TarInfo(f"tiny/doc{i:02d}.txt")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))

    def load(paths):
        tar = next(p for p in paths[0].iterdir() if p.name.endswith(".tar.gz"))
        with tarfile.open(tar) as tf:
            members = sorted((m for m in tf.getmembers() if m.isfile()), key=lambda m: m.name)
            return [{"text": tf.extractfile(m).read().decode()} for m in members]

    old = os.environ.get("NSLANG_CACHE")
    os.environ["NSLANG_CACHE"] = str(root / "cache")
    try:
        register(Source(name="tiny-train-corpus", description="test", licence="CC0", size_note="tiny",
                        packages=(Package("local", "tiny-corpus", "1.0", path=str(tarball)),), load=load),
                 replace=True)
        prepared = prepare("tiny-train-corpus", val_fraction=0.1, progress=False)
    finally:
        unregister("tiny-train-corpus")
        if old is None:
            os.environ.pop("NSLANG_CACHE", None)
        else:
            os.environ["NSLANG_CACHE"] = old
    return prepared.path


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
