"""Data parallel under torchrun (2 CPU processes, gloo): DDP and FSDP2 reproduce the one-process
losses with every feature on (M3, a cross-sequence level, a delta-rule memory, an in-context CMS
level learning inside the forward pass), and their checkpoints resume on one process. The same
code runs NCCL on GPUs."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from _train_common import TINY, TINY_RECURRENT
from runtime.train import train
from runtime.train.metrics import read, series


@pytest.mark.parametrize("strategy, text", [("ddp", TINY_RECURRENT), ("fsdp", TINY), ("fsdp", TINY_RECURRENT)],
                         ids=["ddp-segment-loop", "fsdp-per-block", "fsdp-one-unit"])
def test_two_processes_match_one(spec, run_config, tmp_path, strategy, text):
    path = spec(text)
    one = train(run_config(path, out=str(tmp_path / "one"), steps=4, batch_size=4, save_every=4))
    out = tmp_path / strategy
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "nslang.cli",
           "train", str(path), "--out", str(out), "--data", one_data(tmp_path), "--steps", "4", "--batch-size", "2",
           "--context", "64", "--warmup", "2", "--log-every", "1", "--eval-every", "4", "--eval-batches", "2",
           "--save-every", "4", "--device", "cpu", "--no-progress", "--parallel", strategy]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps, losses = series(read(out / "metrics.jsonl"), "train", "loss")
    assert steps == [1, 2, 3, 4]
    assert losses == pytest.approx([one.losses[s] for s in steps], abs=1e-4)
    resumed = train(run_config(path, out=str(out), steps=5, batch_size=4, resume="latest"))
    assert resumed.step == 5  # a checkpoint of 2 processes resumes on one


def one_data(tmp_path) -> str:
    return json.loads((tmp_path / "one" / "run.json").read_text())["corpus"]
