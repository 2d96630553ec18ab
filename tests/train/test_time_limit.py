"""The wall-clock limit (`max_minutes`): the run stops early after a whole step, writes a checkpoint,
records why, exits 0, and `--resume` continues it exactly; under torchrun all ranks stop together."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from _train_common import TINY, TINY_ATTN, run_cli
from runtime.train import RunConfig, train
from runtime.train.errors import TrainError
from runtime.train.metrics import read


def _slow(info):  # makes every step take at least 0.25 s of wall time
    time.sleep(0.25)


def test_time_limit_stops_saves_and_resumes_exactly(spec, run_config, tmp_path):
    path = spec(TINY)
    straight = train(run_config(path, out=str(tmp_path / "straight"), steps=10))
    # 0.01 min = 0.6 s: with 0.25 s per step the limit is crossed within the first few steps.
    cut = train(run_config(path, out=str(tmp_path / "cut"), steps=10, max_minutes=0.01), callbacks=[_slow])
    assert cut.stopped == "time_limit"
    assert 1 <= cut.step < 10
    assert cut.checkpoint is not None and cut.checkpoint.name == f"step_{cut.step:07d}.pt"
    assert cut.checkpoint.is_file()
    records = read(tmp_path / "cut" / "metrics.jsonl")
    events = [r for r in records if r["kind"] == "event"]
    limit = [r for r in events if r["event"] == "time_limit"]
    assert len(limit) == 1 and limit[0]["step"] == cut.step and limit[0]["max_minutes"] == 0.01
    assert limit[0]["elapsed_s"] >= 0.6
    assert events[-1]["event"] == "end" and events[-1]["reason"] == "time_limit"
    trains = [r for r in records if r["kind"] == "train"]
    assert trains[-1]["step"] == cut.step and trains[-1]["tokens_per_s"] > 0  # the last window is logged
    assert any(r["kind"] == "val" and r["step"] == cut.step for r in records)  # the final validation ran
    assert cut.losses == pytest.approx({s: straight.losses[s] for s in cut.losses}, abs=0)

    resumed = train(run_config(path, out=str(tmp_path / "cut"), steps=10, resume="latest"))
    assert resumed.stopped is None and resumed.step == 10
    assert resumed.losses == pytest.approx({s: straight.losses[s] for s in resumed.losses}, abs=1e-6)


def test_no_limit_and_a_generous_limit_change_nothing(spec, run_config, tmp_path):
    path = spec(TINY_ATTN)
    result = train(run_config(path, out=str(tmp_path / "r"), steps=4, max_minutes=30))
    assert result.stopped is None and result.step == 4
    assert not [r for r in read(tmp_path / "r" / "metrics.jsonl") if r.get("event") == "time_limit"]


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan")])
def test_bad_max_minutes_is_refused(bad):
    with pytest.raises(TrainError, match="max_minutes"):
        RunConfig(spec="x.nsam", max_minutes=bad).validate()


def test_cli_max_minutes_exits_zero(spec, corpus, tmp_path):
    path = spec(TINY_ATTN)
    out = tmp_path / "cli"
    code, stdout, stderr = run_cli("train", str(path), "--out", str(out), "--data", str(corpus), "--steps", "100000",
                                   "--batch-size", "2", "--context", "64", "--device", "cpu", "--no-progress",
                                   "--eval-batches", "1", "--max-minutes", "0.002")
    assert code == 0, stderr[-2000:]
    assert "time limit" in stderr
    records = read(out / "metrics.jsonl")
    step = [r for r in records if r.get("event") == "time_limit"][0]["step"]
    assert step < 100000 and (out / "checkpoints" / f"step_{step:07d}.pt").is_file()


def test_torchrun_ranks_stop_on_the_same_step(spec, run_config, tmp_path):
    path = spec(TINY_ATTN)
    one = train(run_config(path, out=str(tmp_path / "one"), steps=1))
    data = json.loads((tmp_path / "one" / "run.json").read_text())["corpus"]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "nslang.cli",
           "train", str(path), "--out", str(out), "--data", data, "--steps", "100000", "--batch-size", "2",
           "--context", "64", "--log-every", "5", "--eval-batches", "1", "--device", "cpu", "--no-progress",
           "--max-minutes", "0.05"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read(out / "metrics.jsonl")
    step = [r for r in records if r.get("event") == "time_limit"][0]["step"]
    assert (out / "checkpoints" / f"step_{step:07d}.pt").is_file()
    assert one.step == 1
