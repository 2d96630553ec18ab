"""bench/ddp_throughput.py on the CPU (gloo) at a tiny size: one process, then torchrun with DDP
and FSDP2; the table's rows come from the runs' metrics."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ddp_bench_smoke(corpus, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, str(ROOT / "bench" / "ddp_throughput.py"), "transformer_pp:32x1", "--device", "cpu",
           "--steps", "4", "--log-every", "2", "--context", "64", "--batch-size", "2", "--data", str(corpus),
           "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=170, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = json.loads((out / "ddp_throughput.json").read_text())
    assert [r["setup"] for r in rows] == ["1 CPU proc", "2 CPU proc DDP", "2 CPU proc FSDP2"]
    assert all(r["tokens_per_s"] > 0 and r["steps"] == 4 for r in rows)
    assert "| transformer_pp-32x1 | 2 CPU proc DDP |" in proc.stdout
