"""Packing and splitting: EOD after every document, offsets, a deterministic disjoint split, caching."""

import json

import numpy as np
import pytest
from data_fake_docs import FAKE_DOCS

from runtime.data import DataError, documents, open_corpus, prepare
from runtime.data.prepare import content_hash, dtype_for, split_documents


def test_packing_puts_eod_between_documents(fake_source):
    corpus = prepare("fake", val_fraction=0.2, progress=False)
    tok = corpus.tokenizer()
    assert corpus.dtype == np.uint16 and corpus.vocab_size == 257 and corpus.eod_id == 256
    texts = documents("fake", progress=False)
    val_idx = set(corpus.meta["val_documents"])
    for split, expected in (("train", [t for i, t in enumerate(texts) if i not in val_idx]),
                            ("val", [t for i, t in enumerate(texts) if i in val_idx])):
        tokens, off = corpus.tokens(split), corpus.offsets(split)
        assert len(off) == len(expected) + 1 and off[0] == 0 and off[-1] == len(tokens)
        # Exactly one EOD per document, at its end; each document decodes back to its text.
        assert np.flatnonzero(np.asarray(tokens) == corpus.eod_id).tolist() == (off[1:] - 1).tolist()
        for i, text in enumerate(expected):
            assert tok.decode(corpus.document(split, i)) == text
        info = corpus.meta["splits"][split]
        assert (info["documents"], info["tokens"]) == (len(expected), len(tokens))
    assert corpus.meta["content_sha256"] == content_hash(texts)


def test_split_is_deterministic_disjoint_and_keeps_duplicates_together():
    texts = [f"doc {i} " * (i % 7 + 1) for i in range(200)] + ["copy"] * 3
    a = split_documents(texts, 0.1, seed=0)
    assert (a == split_documents(texts, 0.1, seed=0)).all()
    assert not (a == split_documents(texts, 0.1, seed=1)).all()
    val_bytes = sum(len(t) for t, v in zip(texts, a) if v)
    assert 0.1 * sum(map(len, texts)) <= val_bytes < 0.2 * sum(map(len, texts))
    copies = a[-3:]
    assert copies.all() or not copies.any()
    # Tiny corpora still get one validation document, and never lose all their training data.
    assert split_documents(["a", "b"], 0.01, 0).sum() == 1
    assert split_documents(["a", "b"], 0.99, 0).sum() == 1
    assert split_documents(["a"], 0.5, 0).sum() == 0
    assert split_documents(texts, 0.0, 0).sum() == 0


def test_prepared_split_is_deterministic_and_disjoint(fake_source):
    a = prepare("fake", val_fraction=0.2, seed=3, progress=False)
    val = set(a.meta["val_documents"])
    assert 0 < len(val) < len(FAKE_DOCS)
    dup_a, dup_b = 3, 10  # FAKE_DOCS[10] is a copy of FAKE_DOCS[3]
    assert (dup_a in val) == (dup_b in val)
    assert a.meta["splits"]["train"]["documents"] + len(val) == len(FAKE_DOCS)
    # Another tokenizer holds out the same documents; the same arguments give the same bytes.
    pytest.importorskip("tokenizers")
    b = prepare("fake", tokenizer="bpe", vocab_size=300, val_fraction=0.2, seed=3, progress=False)
    assert b.meta["val_documents"] == a.meta["val_documents"]
    assert b.dtype == np.uint16 and (b.tokenizer().decode(b.document("val", 0))
                                     == a.tokenizer().decode(a.document("val", 0)))


def test_prepare_is_cached_and_open_corpus_finds_it(fake_source):
    a = prepare("fake", progress=False)
    stamp = (a.path / "meta.json").stat().st_mtime_ns
    b = prepare("fake", progress=False)
    assert b.path == a.path and (b.path / "meta.json").stat().st_mtime_ns == stamp
    assert open_corpus(a.path).meta == a.meta
    assert open_corpus(str(a.path)).path == a.path
    assert open_corpus("fake").path == a.path
    assert json.loads((a.path / "meta.json").read_text())["tokenizer"]["kind"] == "byte"
    assert not [p for p in a.path.parent.iterdir() if p.name.startswith(".tmp")]


def test_truncated_corpus_is_detected(fake_source):
    a = prepare("fake", progress=False)
    with open(a.bin_path("train"), "r+b") as f:
        f.truncate(10)
    with pytest.raises(DataError, match="wrong size"):
        open_corpus(a.path)


def test_clear_errors(fake_source, tmp_path):
    with pytest.raises(DataError) as err:
        prepare("shakespear", progress=False)
    assert "did you mean 'shakespeare'" in str(err.value)
    with pytest.raises(DataError, match="did you mean 'gpt2'"):
        prepare("fake", tokenizer="gpt-2", progress=False)
    with pytest.raises(DataError, match="val_fraction"):
        prepare("fake", val_fraction=1.0, progress=False)
    with pytest.raises(DataError, match="fixed vocab"):
        prepare("fake", tokenizer="byte", vocab_size=1000, progress=False)
    with pytest.raises(DataError, match="not a prepared corpus"):
        open_corpus(tmp_path)


def test_dtype_for():
    assert dtype_for(256) == np.uint8
    assert dtype_for(257) == np.uint16
    assert dtype_for(50257) == np.uint16
    assert dtype_for(65537) == np.uint32
