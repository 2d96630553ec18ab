"""Checkpoints: atomic, pruned, weights_only; damaged files and other specs give clear refusals."""
from __future__ import annotations

import pytest
import torch

from _train_common import TINY_ATTN
from nslang.cli import main
from runtime.train import TrainError, train
from runtime.train import checkpoint


class NotPlainData:
    """Stands for anything a checkpoint must never make us unpickle."""


@pytest.fixture
def trained(spec, run_config):
    """A 4-step run of the tiny attention model with checkpoints at steps 2 and 4."""
    path = spec(TINY_ATTN)
    cfg = run_config(path, steps=4, save_every=2)
    train(cfg)
    return path, cfg


def test_checkpoints_are_atomic_pruned_and_plain(trained, run_config):
    path, cfg = trained
    folder = cfg.resolved_out() / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step_0000002.pt", "step_0000004.pt"]  # keep = 2
    payload = checkpoint.load(folder / "step_0000004.pt")  # weights_only=True inside
    assert payload["step"] == 4 and payload["tokens"] == 4 * 2 * 64
    assert payload["spec"]["model"] == "tiny_attn" and "memory mlp" in next(iter(payload["spec"]["files"].values()))
    assert set(payload["rng"]) >= {"torch", "numpy", "python"} and payload["data"]["cursor"] > 0
    train(run_config(path, steps=6, save_every=2, keep=1, resume="latest"))
    assert sorted(p.name for p in folder.iterdir()) == ["step_0000006.pt"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_checkpoint_is_named_with_an_earlier_one(trained, run_config, damage, capsys):
    path, cfg = trained
    newest = cfg.resolved_out() / "checkpoints" / "step_0000004.pt"
    data = newest.read_bytes()
    newest.write_bytes({"truncate": data[:len(data) // 2], "garbage": b"\x00not a checkpoint" * 50,
                        "empty": b""}[damage])
    with pytest.raises(TrainError) as err:
        train(run_config(path, steps=6, resume="latest"))
    assert "truncated or corrupt" in err.value.message and "step_0000004.pt" in err.value.message
    assert "--resume" in err.value.hint and "step_0000002.pt" in err.value.hint
    # the CLI: exit status 1, the message and the hint, no traceback
    status = main(["train", str(path), "--out", str(cfg.out), "--data", cfg.data, "--resume", "--device", "cpu",
                   "--no-progress"])
    stderr = capsys.readouterr().err
    assert status == 1 and "error: checkpoint" in stderr and "hint:" in stderr and "Traceback" not in stderr


def test_checkpoint_with_python_objects_is_refused(tmp_path):
    bad = tmp_path / "step_0000001.pt"
    torch.save({"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "x": NotPlainData()}, bad)
    with pytest.raises(TrainError, match="refusing to unpickle"):
        checkpoint.load(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(TrainError, match="not an nslang checkpoint"):
        checkpoint.load(other)


def test_checkpoint_of_another_spec_is_refused_and_nothing_is_overwritten(trained, run_config, spec):
    path, cfg = trained
    package = cfg.resolved_out() / "package" / "model.py"
    before = package.read_bytes()
    wider = spec(TINY_ATTN.replace("dim = 32", "dim = 48"), name="tiny.nsam")
    assert wider == path  # the same file, edited: the spec hash changes
    with pytest.raises(TrainError) as err:
        train(run_config(path, steps=6, resume="latest"))
    assert "spec hash" in err.value.message and "tiny_attn" in err.value.message
    assert package.read_bytes() == before
    # overrides are part of the spec: a resume with other `set` values is another spec too
    with pytest.raises(TrainError, match="spec hash"):
        train(run_config(path, steps=6, resume="latest", set={"depth": 3}))


def test_fresh_run_refuses_to_overwrite_a_run(trained, run_config):
    path, cfg = trained
    with pytest.raises(TrainError, match="already holds a run") as err:
        train(run_config(path, steps=6))
    assert "--resume" in err.value.hint
