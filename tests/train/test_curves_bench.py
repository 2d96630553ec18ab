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
    # the export (no packages) redrawn: parameters from each train.log, no settings from this command
    redraw = subprocess.run([sys.executable, str(ROOT / "bench" / "curves.py"), "--plot-only", str(export)],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert redraw.returncode == 0 and redraw.stdout.startswith("redrawn from the runs' metrics")
    again = json.loads((export / "curves.json").read_text())
    assert [round(r["params"], -4) for r in again] == [round(r["params"], -4) for r in rows]


def test_resume_continues_each_run_and_leaves_the_gap_out(corpus, tmp_path):
    out = tmp_path / "curves"
    cmd = [sys.executable, str(ROOT / "bench" / "curves.py"), "transformer_pp:32x1", "--device", "cpu",
           "--max-minutes", "0.03", "--context", "64", "--batch-size", "2", "--eval-every", "2",
           "--eval-batches", "1", "--warmup", "2", "--log-every", "2", "--data", str(corpus), "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert first.returncode == 0, first.stderr[-3000:]
    steps_first = json.loads((out / "curves.json").read_text())[0]["steps"]
    second = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert second.returncode == 0, second.stderr[-3000:]
    row = json.loads((out / "curves.json").read_text())[0]
    assert row["steps"] > steps_first > 0  # the same run went on
    events = [json.loads(line) for line in (out / "transformer_pp-32x1" / "metrics.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events if e.get("event") in ("start", "resume")] == ["start", "resume"]
    # two sessions of ~0.03 minutes each: the minutes stay near their sum, whatever the gap
    assert row["minutes"] == sorted(row["minutes"]) and row["minutes"][-1] < 0.03 * 2 + 0.5


def test_training_minutes_skip_the_time_between_sessions():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from curves import training_minutes
    finally:
        sys.path.remove(str(ROOT / "bench"))
    records = [{"kind": "event", "event": "start", "time": 0.0}, {"kind": "val", "time": 60.0},
               {"kind": "event", "event": "end", "time": 120.0},
               {"kind": "event", "event": "resume", "time": 1000.0}, {"kind": "val", "time": 1030.0}]
    minutes = training_minutes(records)
    assert [minutes(r) for r in records if r["kind"] == "val"] == [1.0, 2.5]
