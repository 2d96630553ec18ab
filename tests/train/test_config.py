"""RunConfig: defaults < run file (TOML or JSON) < command line; every bad value is a TrainError."""
from __future__ import annotations

import json

import pytest

from nslang.cli import build_parser, main
from runtime.train import RunConfig, TrainError, load_run_config
from runtime.train.config import FIELDS, parse_set


def test_every_field_is_documented_and_has_a_flag():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    flags = {opt for action in train._actions for opt in action.option_strings}
    for name, f in FIELDS.items():
        assert f.metadata.get("help"), name
        assert name == "spec" or f"--{name.replace('_', '-')}" in flags, name


def test_run_file_then_command_line(tmp_path):
    toml = tmp_path / "run.toml"
    (tmp_path / "my.nsam").write_text("")
    toml.write_text('spec = "my.nsam"\nsteps = 50\nlr = 1e-3\ncompile = true\n[set]\ndim = 64\n')
    cfg = load_run_config(toml, {"steps": "7", "device": "cpu", "set": {"depth": "3"}})
    assert cfg.spec == str(tmp_path / "my.nsam")  # relative to the run file
    assert (cfg.steps, cfg.lr, cfg.compile, cfg.device) == (7, 1e-3, True, "cpu")
    assert cfg.set == {"dim": 64, "depth": "3"} and cfg.batch_size == RunConfig.batch_size
    as_json = tmp_path / "run.json"
    as_json.write_text(json.dumps(cfg.to_dict()))
    assert load_run_config(as_json) == cfg  # a RunConfig round-trips through a JSON run file
    assert cfg.resolved_out().as_posix() == "runs/my"


@pytest.mark.parametrize("text, match", [
    ("stpes = 5\n", "did you mean 'steps'"),
    ("steps = 'many'\n", "not a valid int"),
    ("steps = 0\n", "at least 1"),
    ("steps = 1.5\n", "not a valid int"),
    ("precision = 'fp8'\n", "one of auto, bf16, fp32"),
    ("steps = \n", "not valid TOML"),
    ("[set]\ndim = '64; depth = 2'\n", "holds a newline"),
])
def test_bad_run_files(tmp_path, text, match):
    path = tmp_path / "run.toml"
    path.write_text('spec = "x.nsam"\n' + text)
    with pytest.raises(TrainError, match=match):
        load_run_config(path)


def test_overrides_and_set_parsing():
    assert parse_set(["dim=64", "continuum.lr = 0.01"]) == {"dim": "64", "continuum.lr": "0.01"}
    with pytest.raises(TrainError, match="KEY=VALUE"):
        parse_set(["dim"])
    with pytest.raises(TrainError, match="no spec"):
        load_run_config(None, {"steps": 3})
    cfg = load_run_config(None, {"spec": "a.nsam", "resume": "latest", "context": "none", "vocab_size": "512"})
    assert cfg.resume == "latest" and cfg.context is None and cfg.vocab_size == 512


def test_cli_bad_values_exit_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "x.nsam", "--steps", "many"])
    assert exit_.value.code == 2 and "not a valid int" in capsys.readouterr().err
    bad = tmp_path / "run.toml"
    bad.write_text("stepz = 3\n")
    assert main(["train", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "unknown run setting 'stepz'" in err and "did you mean 'steps'" in err and "Traceback" not in err
