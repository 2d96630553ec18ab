"""Helpers of the eval/variants/report CLI tests (imported as `eval_cli_common`; no conftest, so
other folders' `from conftest import ...` keep working when everything runs together).

Everything expensive is made once per session and cached here: a tiny prepared byte corpus (the
data layer's own `prepare`, from a local tarball: no network) and a tiny trained run.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _TESTS not in sys.path:  # tiny_corpus lives in tests/
    sys.path.insert(0, _TESTS)

from tiny_corpus import documents, prepare_tiny_corpus  # noqa: E402

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

_CACHE: dict[str, Path] = {}


def corpus(factory) -> Path:
    """A prepared byte-level corpus (runtime.data.prepare from a local source), once per session."""
    if "corpus" not in _CACHE:
        _CACHE["corpus"] = prepare_tiny_corpus(factory.mktemp("eval_cli_corpus"), "eval-cli-corpus", val_fraction=0.2,
                                               docs=documents(n=12, words=300, seed=1))
    return _CACHE["corpus"]


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


