"""Helpers of the eval/variants/report CLI tests (imported as `eval_cli_common`; no conftest, so
other folders' `from conftest import ...` keep working when everything runs together).

Everything expensive is made once per session and cached here: a tiny prepared byte corpus (the
data layer's own `prepare`, from a local tarball: no network) and a tiny trained run.
"""
from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

# The cheapest model: one block of attention + a SwiGLU MLP, AdamW.
TINY = """\
model tiny_eval {
  vocab = 257; dim = 32; heads = 2; depth = 1; context = 64
  level fast token
  level outer frozen
  memory attn in fast { shape = attention; qk_norm = false }
  memory mlp in outer { shape = swiglu; heads = shared; objective = task }
  flow x -> attn -> mlp
  optimizer adamw in outer { lr = 3e-3 }
}
"""

# A recurrent memory (delta rule with a short convolution) instead of attention.
TINY_DELTA = """\
model tiny_delta {
  vocab = 257; dim = 32; heads = 2; depth = 1; context = 64
  level fast token
  level outer frozen
  memory delta in fast { shape = matrix; rule = delta; objective = l2; lr = data; lr_gate = sigmoid; retain = 1; conv = 4 }
  memory mlp in outer { shape = swiglu; heads = shared; objective = task }
  flow x -> delta -> mlp
}
"""

WORDS = ("the king queen night day love death sword crown speak hear heart blood fair lord lady "
         "thou thee thy art hath doth come go stay fly time world").split()

_CACHE: dict[str, Path] = {}


def documents(n: int = 12, words: int = 300) -> list[str]:
    rng = random.Random(1)
    return [" ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "." for _ in range(n)]


def corpus(factory) -> Path:
    """A prepared byte-level corpus (runtime.data.prepare from a local source), once per session."""
    if "corpus" in _CACHE:
        return _CACHE["corpus"]
    from runtime.data import Package, Source, prepare, register, unregister

    root = factory.mktemp("eval_cli_corpus")
    tarball = root / "eval-cli-corpus-1.0.tar.gz"
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
        register(Source(name="eval-cli-corpus", description="test", licence="CC0", size_note="tiny",
                        packages=(Package("local", "eval-cli-corpus", "1.0", path=str(tarball)),), load=load),
                 replace=True)
        prepared = prepare("eval-cli-corpus", val_fraction=0.2, progress=False)
    finally:
        unregister("eval-cli-corpus")
        if old is None:
            os.environ.pop("NSLANG_CACHE", None)
        else:
            os.environ["NSLANG_CACHE"] = old
    _CACHE["corpus"] = prepared.path
    return prepared.path


def run_config(spec_path: Path, out: Path, data: Path, **kw):
    from runtime.train import RunConfig

    values = dict(spec=str(spec_path), out=str(out), data=str(data), steps=3, batch_size=2, context=64,
                  warmup=1, log_every=1, eval_every=0, eval_batches=1, save_every=3, device="cpu", progress=False)
    values.update(kw)
    return RunConfig(**values)


def trained_run(factory, text: str = TINY, name: str = "tiny_eval", steps: int = 3) -> Path:
    """A run directory of `text` trained for a few steps, once per session per (name, steps)."""
    key = f"run:{name}:{steps}"
    if key in _CACHE:
        return _CACHE[key]
    from runtime.train import train

    root = factory.mktemp(f"run_{name}")
    spec = root / f"{name}.nsam"
    spec.write_text(text)
    train(run_config(spec, root / "run", corpus(factory), steps=steps, save_every=steps))
    _CACHE[key] = root / "run"
    return root / "run"


def run_cli(*args: str, cwd=None, timeout: int = 120):
    """`python -m nslang.cli ARGS` in a subprocess: (exit status, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "nslang.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and stay fast when the machine is shared (two OpenMP
    threads that wait for a busy core make some ops hundreds of times slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
