"""Rerunning some jobs of a results run: `bench/results.py --preset-from` trains at the earlier run's
calibrated scale, and bench/results_report.py merges the rerun's records over the first run's."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module(name: str, file: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / file)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "bench"))
    spec.loader.exec_module(module)
    return module


def _write(folder: Path, doc: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(doc))
    return folder


def test_preset_from_takes_the_calibrated_contexts_and_steps(tmp_path):
    results = _module("bench_results_rerun", "results.py")
    preset = json.loads(json.dumps(results.PRESETS["small"]))  # as JSON gives it back: lists
    preset["lm"]["context"] = 64
    doc = {"preset": preset, "calibration": {"steps": {"lm": {"planned": 240, "steps": 36},
                                                       "mqar": {"planned": 300, "steps": 45}}}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    got = results.preset_of(path)
    assert got["lm"]["context"] == 64 and got["lm"]["steps"] == 36 and got["mqar"]["steps"] == 45
    assert got["formal"]["steps"] == results.PRESETS["small"]["formal"]["steps"]  # not calibrated: as planned
    assert got["mqar"]["num_pairs"] == tuple(results.PRESETS["small"]["mqar"]["num_pairs"])
    path.write_text("{}")
    with pytest.raises(SystemExit, match="not a bench/results.py results.json"):
        results.preset_of(path)


def test_report_merges_a_rerun_over_the_first_run(tmp_path):
    report = _module("bench_results_report_rerun", "results_report.py")
    first = _write(tmp_path / "first", {"work": "/w1", "jobs": [
        {"name": "lm-hope", "status": "skipped: too slow for the budget"},
        {"name": "lm-transformer_pp", "status": "ok", "commands": [{"command": "nslang train --out /w1/jobs/a"}]}]})
    rerun = _write(tmp_path / "rerun", {"work": "/w2", "argv": ["python", "bench/results.py", "--only", "hope"],
                                        "wall_s": 417, "slots": 16, "jobs": [
        {"name": "lm-hope", "status": "ok", "commands": [{"command": "nslang train --out /w2/jobs/lm-hope/run"}]},
        {"name": "lm-transformer_pp", "status": "skipped: too slow for the budget"},
        {"name": "lm-new", "status": "ok"}]})
    doc = report.load(first, rerun)
    jobs = doc["by_name"]
    assert jobs["lm-hope"]["status"] == "ok"  # the rerun's record replaces the skipped one
    assert jobs["lm-hope"]["commands"][0]["command"] == "nslang train --out /w1/jobs/lm-hope/run"  # one $WORK
    assert jobs["lm-transformer_pp"]["status"] == "ok"  # a job the rerun skipped keeps the first record
    assert [j["name"] for j in doc["jobs"]] == ["lm-hope", "lm-transformer_pp", "lm-new"]
    assert doc["reruns"] == [{"argv": ["python", "bench/results.py", "--only", "hope"], "jobs": ["lm-hope", "lm-new"],
                              "wall_s": 417, "slots": 16}]
