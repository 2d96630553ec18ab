"""Specs and helpers shared by the trainer tests (importable as `_train_common`)."""
from __future__ import annotations

import os
import sys

# Attention + a CMS level slower than the context (period 256 > context 64: a cross-sequence level
# that the trainer steps once per period) + M3 with a short slow period: every piece of training
# state that a resume must restore is exercised.
TINY = """\
model tiny {
  vocab = 257; dim = 32; heads = 2; depth = 2; context = 64
  level fast token
  level slow every 256
  level outer frozen
  memory attn in fast { shape = attention; qk_norm = false }
  cms mlp { levels = [slow]; shape = swiglu }
  flow x -> attn -> mlp
  optimizer m3 in outer { lr = 0.01; slow_every = 3 }
}
"""

# Plain attention + SwiGLU MLP with AdamW: the cheapest model.
TINY_ATTN = """\
model tiny_attn {
  vocab = 257; dim = 32; heads = 2; depth = 2; context = 64
  level fast token
  level outer frozen
  memory attn in fast { shape = attention; qk_norm = false }
  memory mlp in outer { shape = swiglu; heads = shared; objective = task }
  flow x -> attn -> mlp
  optimizer adamw in outer { lr = 3e-3; weight_decay = 0.1 }
}
"""

# A recurrent memory (delta rule, short conv) + an in-context CMS level (segment loop).
TINY_RECURRENT = """\
model tiny_recurrent {
  vocab = 257; dim = 32; heads = 2; depth = 2; context = 64
  level fast token
  level chunk every 16
  level outer frozen
  memory delta in fast {
    shape = matrix; rule = delta; objective = l2; lr = data; lr_gate = sigmoid; retain = 1; conv = 4
  }
  cms mlp { levels = [chunk]; shape = swiglu }
  flow x -> delta -> mlp
}
"""


def run_cli(*args: str, cwd=None, timeout: int = 120):
    """`python -m nslang.cli ARGS` in a subprocess: (exit status, stdout, stderr)."""
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "nslang.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc.returncode, proc.stdout, proc.stderr
