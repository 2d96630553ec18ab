"""metrics.jsonl and loss.png after a run; a resumed run's repeated steps read as the later record."""
from __future__ import annotations

import json

from _train_common import TINY_ATTN
from runtime.train import train
from runtime.train.metrics import plot, read, series


def test_metrics_file_and_plot(spec, run_config):
    cfg = run_config(spec(TINY_ATTN), steps=6, eval_every=3, log_every=2)
    result = train(cfg)
    out = cfg.resolved_out()
    records = read(out / "metrics.jsonl")
    train_steps, losses = series(records, "train", "loss")
    assert train_steps == [2, 4, 6] and all(l > 0 for l in losses)
    assert series(records, "val", "val_loss")[0] == [3, 6]
    first = next(r for r in records if r["kind"] == "train")
    assert set(first) >= {"step", "tokens", "loss", "lr", "grad_norm", "tokens_per_s", "time"}
    assert [r["event"] for r in records if r["kind"] == "event"] == ["start", "end"]
    assert result.plot == out / "loss.png" and (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["steps"] == 6 and run["model"] == "tiny_attn" and run["spec_hash"]


def test_repeated_steps_keep_the_later_record(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [{"kind": "train", "step": s, "loss": 5.0 - s, "tokens_per_s": 100.0} for s in (1, 2, 3)]
    lines += [{"kind": "event", "step": 2, "event": "resume"}, {"kind": "train", "step": 3, "loss": 1.5,
                                                                "tokens_per_s": 90.0}]
    path.write_text("\n".join(json.dumps(l) for l in lines) + '\n{"kind": "train", "st')  # torn last line
    assert series(read(path), "train", "loss") == ([1, 2, 3], [4.0, 3.0, 1.5])
    assert plot(path, tmp_path / "loss.png", "t").is_file()
