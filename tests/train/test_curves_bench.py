"""bench/curves.py end to end on the CPU at a tiny size: two time-limited `nslang train` runs in
parallel (one with its own micro-batch x accumulation), then the table, the JSON and the plot drawn
from their metrics.jsonl. The out-of-memory retry is tested in tests/results/test_retry.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_curves_smoke(corpus, tmp_path):
    out, export = tmp_path / "curves", tmp_path / "export"
    cmd = [sys.executable, str(ROOT / "bench" / "curves.py"), "hope:32x1:1x2", "transformer_pp:32x1", "--device", "cpu",
           "--max-minutes", "0.05", "--context", "64", "--batch-size", "2", "--eval-every", "2",
           "--eval-batches", "1", "--warmup", "2", "--log-every", "2", "--data", str(corpus),
           "--out", str(out), "--export", str(export)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "| hope-32x1 |" in proc.stdout and "| transformer_pp-32x1 |" in proc.stdout
    assert "| 1 x 2 |" in proc.stdout and "| 2 x 1 |" in proc.stdout  # per-model micro-batch x accumulation
    rows = json.loads((export / "curves.json").read_text())
    assert [r["label"] for r in rows] == ["hope-32x1", "transformer_pp-32x1"]
    assert [(r["batch_size"], r["accumulation"]) for r in rows] == [(1, 2), (2, 1)]
    for r in rows:
        assert r["stopped"] == "time_limit" and r["val_loss"] and r["params"] > 0 and r["oom_retries"] == 0
        assert (export / r["label"] / "metrics.jsonl").is_file()
    assert (export / "curves.png").stat().st_size > 0
    redraw = subprocess.run([sys.executable, str(ROOT / "bench" / "curves.py"), "--plot-only", str(out)],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert redraw.returncode == 0 and "| hope-32x1 |" in redraw.stdout
