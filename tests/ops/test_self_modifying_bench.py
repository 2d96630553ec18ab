"""bench/self_modifying.py mechanics, on CPU (kernels in Triton's interpreter, tiny shapes): each
variant in its own process, a row per variant with its numbers, the ratio to the chunk form of the
same pass, a launch option parsed from the variant's name, and an error row (not a crash) for a
variant that fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

BENCH = Path(__file__).resolve().parents[2] / "bench" / "self_modifying.py"


def test_bench_rows():
    cmd = [sys.executable, str(BENCH), "--device", "cpu", "--B", "1", "--T", "20", "--heads", "1",
           "--head-dim", "16", "--hidden", "16", "--repeat", "1",
           "--variants", "chunk,kernel_tf32:bhid=16:warps=2,kernel_tf32:bhid=3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]]
            for ln in proc.stdout.splitlines() if ln.startswith("| ") and "---" not in ln}
    assert float(rows["chunk"][0]) > 0 and rows["chunk"][3] == "1.0x"
    kernel = rows["kernel_tf32:bhid=16:warps=2"]
    assert float(kernel[0]) > 0 and kernel[3].endswith("x")
    # a hidden tile that is not a power of two fails to compile: its row says why
    assert not rows["kernel_tf32:bhid=3"][1], rows["kernel_tf32:bhid=3"]
