"""Fixtures for the data-layer tests: a private cache folder and a fake corpus that needs no network."""

from __future__ import annotations

import io
import tarfile

import pytest

from runtime.data import Package, Source, register, unregister

# Ten small documents with non-ASCII text, one of them duplicated (the split must keep copies together).
from data_fake_docs import FAKE_DOCS  # a plain module: conftests cannot be imported reliably


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh, empty NSLANG_CACHE for one test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("NSLANG_CACHE", str(root))
    return root


@pytest.fixture(scope="session")
def network_cache(tmp_path_factory):
    """One cache shared by the network tests, so each package is downloaded once per session."""
    return tmp_path_factory.mktemp("network-cache")


def _load_fake(paths):
    tarball = next(p for p in paths[0].iterdir() if p.name.endswith(".tar.gz"))
    with tarfile.open(tarball) as tf:
        members = sorted((m for m in tf.getmembers() if m.isfile()), key=lambda m: m.name)
        return [{"text": tf.extractfile(m).read().decode("utf-8"), "file": m.name} for m in members]


@pytest.fixture
def fake_source(tmp_path, cache):
    """Register a corpus "fake" whose package is a local tarball of FAKE_DOCS."""
    tarball = tmp_path / "fake-corpus-1.0.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        for i, text in enumerate(FAKE_DOCS):
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"fake/doc{i:02d}.txt")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    src = register(Source(name="fake", description="test corpus", licence="CC0", size_note="tiny",
                          packages=(Package("local", "fake-corpus", "1.0", path=str(tarball)),),
                          load=_load_fake), replace=True)
    yield src
    unregister("fake")
