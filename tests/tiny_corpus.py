"""The tiny prepared byte-level corpus shared by the trainer and eval-CLI tests (importable as
`tiny_corpus` once tests/ is on sys.path; the callers put it there).

The corpus is made by the data layer itself (`runtime.data.prepare`) from a local tarball of fake
documents registered as a temporary source: no network, and a private cache under `root`.
"""
from __future__ import annotations

import io
import os
import random
import tarfile
from pathlib import Path
from typing import Sequence

WORDS = ("the king queen night day love death sword crown speak hear heart blood fair lord lady "
         "thou thee thy art hath doth come go stay fly time world").split()


def documents(n: int = 24, words: int = 400, seed: int = 0) -> list[str]:
    """`n` fake documents of `words` words each, drawn from WORDS with a fixed seed."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "." for _ in range(n)]


def _load(paths):
    tar = next(p for p in paths[0].iterdir() if p.name.endswith(".tar.gz"))
    with tarfile.open(tar) as tf:
        members = sorted((m for m in tf.getmembers() if m.isfile()), key=lambda m: m.name)
        return [{"text": tf.extractfile(m).read().decode()} for m in members]


def prepare_tiny_corpus(root: Path, name: str, val_fraction: float, *, docs: Sequence[str] | None = None) -> Path:
    """Prepare `docs` (default: documents()) as corpus `name` under `root`; return the prepared folder.

    The source is registered only for the call, and NSLANG_CACHE points at root/cache only for the call.
    """
    from runtime.data import Package, Source, prepare, register, unregister

    root = Path(root)
    tarball = root / f"{name}-1.0.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        for i, text in enumerate(documents() if docs is None else docs):
            data = text.encode()
            info = tarfile.TarInfo(f"tiny/doc{i:02d}.txt")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))

    old = os.environ.get("NSLANG_CACHE")
    os.environ["NSLANG_CACHE"] = str(root / "cache")
    try:
        register(Source(name=name, description="test", licence="CC0", size_note="tiny",
                        packages=(Package("local", name, "1.0", path=str(tarball)),), load=_load),
                 replace=True)
        prepared = prepare(name, val_fraction=val_fraction, progress=False)
    finally:
        unregister(name)
        if old is None:
            os.environ.pop("NSLANG_CACHE", None)
        else:
            os.environ["NSLANG_CACHE"] = old
    return prepared.path
