"""--resume continues exactly: N steps straight equal k steps, a SIGKILL, and a resume to N."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

import torch

from _train_common import TINY, run_cli
from runtime.train import train
from runtime.train.metrics import read

# The child trains with a callback that SIGKILLs it at the end of step KILL_AT: after the
# checkpoint of step 5 and before the next one, so steps 6-7 are lost and must be redone.
CHILD = """
import json, os, signal, sys
from runtime.train import load_run_config, train
cfg = load_run_config(sys.argv[1])
def kill(info):
    if info.step == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
train(cfg, callbacks=[kill])
"""
STEPS, SAVE_EVERY, KILL_AT = 10, 5, 7


def _losses(run_dir) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for r in read(run_dir / "metrics.jsonl"):
        if r["kind"] == "train":
            out.setdefault(r["step"], []).append(r["loss"])
    return out


def test_kill_and_resume_gives_identical_losses(spec, run_config, tmp_path):
    path = spec(TINY)
    straight = train(run_config(path, out=str(tmp_path / "straight"), steps=STEPS, save_every=SAVE_EVERY))
    assert sorted(straight.losses) == list(range(1, STEPS + 1))

    cfg = run_config(path, out=str(tmp_path / "killed"), steps=STEPS, save_every=SAVE_EVERY)
    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps(cfg.to_dict()))
    child = subprocess.run([sys.executable, "-c", CHILD, str(run_file), str(KILL_AT)], capture_output=True,
                           text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    ckpts = sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir())
    assert ckpts == ["step_0000005.pt"]  # nothing half-written beside it

    # The checkpoint holds what an exact resume needs: M3's slow memory mid-window (slow_every = 3)
    # and a cross-sequence level's gradient sum mid-period (period 256 tokens = 2 steps of 128).
    payload = torch.load(tmp_path / "killed" / "checkpoints" / ckpts[0], weights_only=True)
    assert any("window" in s and "slow" in s for s in payload["optimizer"]["state"].values())
    assert payload["periodic"]["every"] and payload["periodic"]["acc"]

    status, out, err = run_cli("train", "--config", str(run_file), "--resume")
    assert status == 0, err
    assert "resumed from" in err and "Traceback" not in err

    expected = straight.losses
    got = _losses(tmp_path / "killed")
    assert sorted(got) == list(range(1, STEPS + 1))
    for step, values in got.items():
        # steps 6 and 7 ran twice (before the kill and after the resume): both times identical
        assert values == [expected[step]] * len(values), step
    assert len(got[6]) == len(got[7]) == 2
