"""Tokenizer round trips: exact for bytes, GPT-2's real ids, a BPE trained here."""

import pytest

from runtime.data import ByteTokenizer, gpt2_tokenizer, train_bpe

TEXT = "Zoë's naïve café — “quoted” ⟨angle⟩ 日本語 🙂\n\ttabs and  spaces"


def test_byte_round_trip_is_exact_on_non_ascii():
    tok = ByteTokenizer()
    ids = tok.encode(TEXT)
    assert ids == list(TEXT.encode("utf-8"))
    assert tok.decode(ids) == TEXT
    assert (tok.vocab_size, tok.eod_id) == (257, 256)
    # EOD is not text: it decodes to nothing, so documents joined by EOD decode to their concatenation.
    assert tok.decode(tok.encode("ab") + [tok.eod_id] + tok.encode("ü")) == "abü"


def test_trained_bpe_round_trips_and_is_deterministic():
    pytest.importorskip("tokenizers")
    corpus = ["the quick brown fox jumps over the lazy dog. " * 20, "a stitch in time saves nine. " * 20] * 5
    a = train_bpe(corpus, vocab_size=300, progress=False)
    b = train_bpe(corpus, vocab_size=300, progress=False)
    assert a.vocab_size == 300 and a.eod_id == 299
    ids = a.encode("the quick dog")
    assert ids == b.encode("the quick dog")
    assert len(ids) < len("the quick dog")  # merges were learned
    # Characters never seen in training still encode (byte-level alphabet) and come back exactly.
    assert a.decode(a.encode(TEXT)) == TEXT
    assert a.eod_id not in a.encode("<|endoftext|> is ordinary text")


@pytest.mark.network
def test_gpt2_gives_the_reference_ids(network_cache, monkeypatch):
    pytest.importorskip("tokenizers")
    monkeypatch.setenv("NSLANG_CACHE", str(network_cache))
    tok = gpt2_tokenizer(progress=False)
    assert tok.encode("Hello world, the quick brown fox.") == [15496, 995, 11, 262, 2068, 7586, 21831, 13]
    assert (tok.vocab_size, tok.eod_id) == (50257, 50256)
    assert tok.eod_id not in tok.encode("<|endoftext|>")  # only prepare() writes EOD
    assert tok.decode(tok.encode(TEXT)) == TEXT
