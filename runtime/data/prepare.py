"""Documents -> token ids, packed into flat memory-mapped arrays with a held-out validation split.

A prepared corpus is a folder `<cache>/corpora/<name>/<tokenizer>-val<fraction>-seed<seed>/`:

    train.bin, val.bin                 every document's tokens followed by one EOD token, back to
                                       back, as raw uint8/uint16/uint32 (the smallest that holds
                                       the vocab), read with np.memmap
    train_offsets.npy, val_offsets.npy where each document starts: n_docs + 1 int64s, the last
                                       being the length of the .bin; document i is
                                       tokens[off[i]:off[i+1]] and ends with EOD
    meta.json                          vocab size, EOD id, tokenizer, dtype, counts, hashes
    tokenizer.json                     only for a BPE trained here

The validation split is chosen by document, from a hash of (seed, document text), so it is
deterministic, disjoint from training, the same for every tokenizer (bits-per-byte numbers stay
comparable across tokenizers), and stable when a corpus gains documents. The folder is built under a
temporary name and renamed when complete, so a prepared corpus is always whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._common import DataError, cache_dir, log, progress as progress_bar
from .fetch import MANIFEST, is_cached, package_dir
from .sources import SOURCES, get_source, records
from .tokenizers import (DEFAULT_BPE_VOCAB, ByteTokenizer, HFTokenizer, Tokenizer, _import_tokenizers, check_name,
                         gpt2_tokenizer, load_tokenizer, train_bpe)

FORMAT_VERSION = 1
SPLITS = ("train", "val")


@dataclass
class PreparedCorpus:
    """A prepared corpus on disk: its folder and meta.json, with accessors for the arrays."""

    name: str
    path: Path
    meta: dict

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def eod_id(self) -> int:
        return int(self.meta["eod_id"])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.meta["dtype"])

    def bin_path(self, split: str) -> Path:
        return self.path / self.meta["splits"][split]["file"]

    def offsets_path(self, split: str) -> Path:
        return self.path / self.meta["splits"][split]["offsets"]

    def tokens(self, split: str = "train") -> np.ndarray:
        """The split's token ids as a read-only memmap (nothing is read until it is indexed)."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}", "use 'train' or 'val'")
        if self.meta["splits"][split]["tokens"] == 0:
            return np.zeros(0, dtype=self.dtype)  # np.memmap refuses empty files
        return np.memmap(self.bin_path(split), dtype=self.dtype, mode="r")

    def offsets(self, split: str = "train") -> np.ndarray:
        return np.load(self.offsets_path(split))

    @property
    def train(self) -> np.ndarray:
        return self.tokens("train")

    @property
    def val(self) -> np.ndarray:
        return self.tokens("val")

    def document(self, split: str, i: int) -> np.ndarray:
        off = self.offsets(split)
        return np.asarray(self.tokens(split)[off[i]:off[i + 1]])

    def tokenizer(self) -> Tokenizer:
        return load_tokenizer(self.meta["tokenizer"], self.path)


def dtype_for(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every id below vocab_size."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise DataError(f"vocab size {vocab_size} does not fit in 32 bits", "use a smaller vocabulary")


def split_documents(texts: list[str], val_fraction: float, seed: int) -> np.ndarray:
    """Return a boolean mask, True for validation documents.

    Documents are ranked by a hash of (seed, text) and taken in that order until they hold
    `val_fraction` of the corpus's bytes: at least one document (when there are two or more), never
    all of them. Identical documents hash alike, so the boundary is extended to keep duplicates on
    one side; otherwise a copy in training would leak the validation text.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}", "the default is 0.01")
    n = len(texts)
    is_val = np.zeros(n, dtype=bool)
    if val_fraction == 0.0 or n < 2:
        return is_val
    sizes = [len(t.encode("utf-8")) for t in texts]
    keys = [hashlib.sha256(f"{seed}\0{t}".encode("utf-8")).digest()[:8] for t in texts]
    order = sorted(range(n), key=lambda i: (keys[i], i))
    target = val_fraction * sum(sizes)
    taken = 0
    for rank, i in enumerate(order):
        if rank == n - 1:
            break  # keep at least one training document
        if rank > 0 and taken >= target and keys[i] != keys[order[rank - 1]]:
            break
        is_val[i] = True
        taken += sizes[i]
    return is_val


def content_hash(texts: list[str]) -> str:
    """sha256 over the documents in order; length-prefixed so document boundaries count too."""
    h = hashlib.sha256()
    for t in texts:
        data = t.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def corpus_dir(name: str, tokenizer_name: str, val_fraction: float, seed: int) -> Path:
    return cache_dir() / "corpora" / name / f"{tokenizer_name}-val{val_fraction:g}-seed{seed}"


def prepare(name: str, tokenizer: str = "byte", vocab_size: int | None = None, val_fraction: float = 0.01,
            seed: int = 0, progress: bool = True) -> PreparedCorpus:
    """Fetch, tokenize and pack a named corpus; return the prepared corpus (cached after the first call)."""
    src = get_source(name)
    check_name(tokenizer)
    tok_name = _tokenizer_name(tokenizer, vocab_size)
    folder = corpus_dir(name, tok_name, val_fraction, seed)
    if (folder / "meta.json").is_file():
        return open_corpus(folder)

    start = time.monotonic()
    if tokenizer != "byte":
        _import_tokenizers()  # fail before the slow steps, not after them
    recs = records(name, progress=progress)
    texts = [r["text"] for r in recs]
    if not texts:
        raise DataError(f"the {name!r} corpus has no documents", "check the source's loader")
    is_val = split_documents(texts, val_fraction, seed)
    split_texts = {"train": [t for t, v in zip(texts, is_val) if not v],
                   "val": [t for t, v in zip(texts, is_val) if v]}

    if tokenizer == "byte":
        tok: Tokenizer = ByteTokenizer()
    elif tokenizer == "gpt2":
        tok = gpt2_tokenizer(progress=progress)
    else:
        log(f"training a {vocab_size or DEFAULT_BPE_VOCAB}-token BPE on the training split of {name} ...", progress)
        # Trained on the training split only, so the validation text does not shape the vocabulary.
        tok = train_bpe(split_texts["train"], vocab_size or DEFAULT_BPE_VOCAB, progress=progress)

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        dtype = dtype_for(tok.vocab_size)
        tok_spec = {**tok.spec(), "name": tok.name}
        if isinstance(tok, HFTokenizer) and tok.kind == "bpe":
            tok.save(tmp / "tokenizer.json")
            tok_spec["file"] = "tokenizer.json"
        data_hash = hashlib.sha256()
        splits = {}
        for split in SPLITS:
            splits[split] = _pack(split_texts[split], tok, dtype, tmp, split, data_hash, progress, name)
        meta = {
            "format": FORMAT_VERSION,
            "corpus": name,
            "description": src.description,
            "packages": [_package_record(p) for p in src.all_packages()],
            "tokenizer": tok_spec,
            "vocab_size": tok.vocab_size,
            "eod_id": tok.eod_id,
            "dtype": dtype.name,
            "val_fraction": val_fraction,
            "seed": seed,
            "splits": splits,
            "documents": len(texts),
            "val_documents": [int(i) for i in np.flatnonzero(is_val)],
            "content_sha256": content_hash(texts),
            "data_sha256": data_hash.hexdigest(),
            "created_at": time.time(),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "meta.json").is_file():  # not a lost race with a concurrent prepare
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    counts = ", ".join(f"{s} {splits[s]['documents']} docs / {splits[s]['tokens']:,} tokens" for s in SPLITS)
    log(f"prepared {name} with {tok.name} in {time.monotonic() - start:.1f} s: {counts}", progress)
    return open_corpus(folder)


def open_corpus(name_or_path: str | os.PathLike, **prepare_args) -> PreparedCorpus:
    """Open a prepared corpus from its folder, or by corpus name (preparing it first if needed).

    For a name, `prepare_args` (tokenizer, vocab_size, val_fraction, seed) pick the variant; the
    defaults are prepare()'s.
    """
    from .tasks import is_task, open_task

    if is_task(name_or_path):  # `task:mqar?...`: examples generated by an evaluation task (tasks.py)
        return open_task(str(name_or_path), **prepare_args)
    path = Path(name_or_path)
    if (path / "meta.json").is_file():
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise DataError(f"{path} was prepared by another version of nslang (format {meta.get('format')})",
                            f"delete {path} and prepare the corpus again")
        corpus = PreparedCorpus(meta["corpus"], path, meta)
        _check_sizes(corpus)
        return corpus
    name = str(name_or_path)
    if name not in SOURCES and (os.sep in name or path.exists()):
        raise DataError(f"{path} is not a prepared corpus (no meta.json)",
                        "give a corpus name, or the folder of a prepared corpus")
    return prepare(name, **prepare_args)  # an unknown name fails here, with a did-you-mean


def _tokenizer_name(tokenizer: str, vocab_size: int | None) -> str:
    fixed = {"byte": ByteTokenizer.vocab_size, "gpt2": 50257}
    if tokenizer in fixed:
        if vocab_size not in (None, fixed[tokenizer]):
            raise DataError(f"the {tokenizer} tokenizer has a fixed vocab of {fixed[tokenizer]}, not {vocab_size}",
                            "pass vocab_size only with tokenizer='bpe'")
        return tokenizer
    return f"bpe{vocab_size or DEFAULT_BPE_VOCAB}"


def _pack(texts: list[str], tok: Tokenizer, dtype: np.dtype, folder: Path, split: str, data_hash, progress: bool,
          name: str) -> dict:
    """Encode documents in order and append them, each followed by EOD, to <split>.bin."""
    offsets = [0]
    n_bytes = 0
    eod = np.array([tok.eod_id], dtype=dtype)
    batches = _batches(texts, max_chars=1 << 20, max_docs=256)
    with open(folder / f"{split}.bin", "wb") as f:
        for chunk in progress_bar(batches, total=len(batches), desc=f"tokenizing {name} {split}", enabled=progress,
                                  unit="batch"):
            for text, ids in zip(chunk, tok.encode_batch(chunk)):
                if ids.size and (ids.min() < 0 or ids.max() >= tok.vocab_size):
                    raise DataError(f"tokenizer {tok.name} produced an id outside its vocab", "report this as a bug")
                data = np.concatenate([ids.astype(dtype), eod]).tobytes()
                f.write(data)
                data_hash.update(data)
                offsets.append(offsets[-1] + ids.size + 1)
                n_bytes += len(text.encode("utf-8"))
    np.save(folder / f"{split}_offsets.npy", np.asarray(offsets, dtype=np.int64))
    return {"file": f"{split}.bin", "offsets": f"{split}_offsets.npy", "documents": len(texts),
            "tokens": offsets[-1], "bytes": n_bytes}


def _batches(texts: list[str], max_chars: int, max_docs: int) -> list[list[str]]:
    """Group documents for encode_batch: large enough to keep the Rust tokenizer's threads busy,
    small enough (about 1 MB of text) for the progress bar to move."""
    out, current, size = [], [], 0
    for text in texts:
        if current and (size + len(text) > max_chars or len(current) >= max_docs):
            out.append(current)
            current, size = [], 0
        current.append(text)
        size += len(text)
    if current:
        out.append(current)
    return out


def _package_record(pkg) -> dict:
    # The manifest says which version really came (Debian packages are fetched by name).
    rec = {"registry": pkg.registry, "name": pkg.name, "version": pkg.version}
    if is_cached(pkg):
        manifest = json.loads((package_dir(pkg) / MANIFEST).read_text())
        rec["version"] = manifest.get("version") or pkg.version
    return rec


def _check_sizes(corpus: PreparedCorpus) -> None:
    for split in SPLITS:
        info = corpus.meta["splits"][split]
        path = corpus.bin_path(split)
        expected = info["tokens"] * corpus.dtype.itemsize
        if not path.is_file() or path.stat().st_size != expected:
            raise DataError(f"{path} is missing or has the wrong size (expected {expected} bytes)",
                            f"delete {corpus.path} and prepare the corpus again")
