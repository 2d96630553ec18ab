"""bench/results.py's calibration decisions, with the probes' timings given (no probe runs): an
experiment whose slowest model cannot fit MIN_STEPS steps gets a shorter context for every model
alike; when no context is short enough, the slow family is skipped with its reason."""
import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_results", ROOT / "bench" / "results.py")
R = importlib.util.module_from_spec(_spec)
sys.modules["bench_results"] = R  # dataclasses look their module up
_spec.loader.exec_module(R)
# its parts (bench/ is on sys.path now): the names the calibration looks up live there
import results_calibrate as C  # noqa: E402
import results_plan as P  # noqa: E402
import results_run as Run  # noqa: E402


def _setup(tmp_path, monkeypatch, seconds: dict, budget=8.0):
    import copy

    args = argparse.Namespace(scale="small", steps_scale=1.0, corpus=str(tmp_path / "none"), records=str(tmp_path / "r"),
                              only=None, optim_model="transformer_pp", budget_minutes=budget, contention=None,
                              device="cuda")
    args.preset = copy.deepcopy(R.PRESETS["small"])
    monkeypatch.setattr(P, "write_haystack", lambda corpus, out: None)
    jobs, notes = R.plan(args, tmp_path)
    monkeypatch.setattr(C, "run_probes", lambda *a, **k: None)
    monkeypatch.setattr(C, "probe_seconds",
                        lambda probe, work: (seconds.get(probe.name), "timed") if probe.name in seconds else (None, "x"))
    Run.T0 = __import__("time").monotonic()
    slots = [(str(g), k) for k in range(6) for g in range(4)]
    record = R.calibrate(jobs, args, tmp_path, notes, slots, 1, True, heavy_slots=16)
    return args, {j.name: j for j in jobs}, record


def test_enough_time_keeps_the_scale(tmp_path, monkeypatch):
    args, jobs, rec = _setup(tmp_path, monkeypatch, {"probe-lm-hope": 0.1, "probe-mqar-hope": 0.1,
                                                     "probe-formal-hope": 0.1})
    assert rec["scale"] == {} and rec["skipped"] == {} and rec["contention"] == 3  # 0.5 x 6 processes per GPU
    assert jobs["lm-hope"].context == 128 and jobs["lm-hope"].steps == 240
    assert all(not j.status.startswith("skipped") for j in jobs.values())


def test_slow_model_shrinks_the_context_for_all(tmp_path, monkeypatch):
    # LM: 456 s cap x 0.5 x 0.8 = 182 s; x3 contention: 4 s/step fits 15 steps at 128, 30 at 64;
    # MQAR: 456 x 0.75 x 0.8 = 274 s: 5 s/step fits 18 at 128, 36 at 64
    args, jobs, rec = _setup(tmp_path, monkeypatch, {"probe-lm-hope": 4.0, "probe-mqar-hope": 5.0})
    assert rec["scale"]["lm"]["context"] == [128, 64] and args.preset["lm"]["context"] == 64
    for name in ("lm-hope", "lm-transformer_pp", "lm-deltanet", "optim-transformer_pp-adamw"):
        assert jobs[name].context == 64 and jobs[name].steps == rec["steps"]["lm"]["steps"] >= R.MIN_STEPS
    mq = rec["scale"]["mqar"]
    assert mq["context"] == [128, 64] and mq["num_pairs"][1] == [2] and args.preset["mqar"]["eval_seq_len"] == (64, 128)
    assert jobs["mqar-transformer_pp"].data == "task:mqar?num_pairs=2&seq_len=64"
    assert jobs["mqar-titans"].context == 64
    cmd = R.set_commands(jobs["mqar-hope"], args, tmp_path, {}, 2.0, True) or jobs["mqar-hope"].commands
    assert "seq_len=64,128" in " ".join(cmd[1].argv) and "--context" in cmd[0].argv


def test_too_slow_everywhere_skips_the_family(tmp_path, monkeypatch):
    args, jobs, rec = _setup(tmp_path, monkeypatch, {"probe-formal-hope": 60.0, "probe-formal-titans": 0.2})
    assert set(rec["skipped"]["formal"]) == {"hope"}
    for name in ("formal_parity-hope", "formal_anbn-hope_attention"):
        assert jobs[name].status.startswith("skipped: too slow for the budget (measured 60.00 s/step")
    assert not jobs["formal_parity-titans"].status.startswith("skipped")
    assert jobs["formal_parity-titans"].context == 64 and rec["steps"]["formal"]["steps"] >= R.MIN_STEPS


@pytest.mark.parametrize("pairs,n,expect", [((2, 4, 6), 128, (2, 4, 6)), ((2, 4, 6), 64, (2,)), ((4, 8), 64, (3,))])
def test_mqar_pairs(pairs, n, expect):
    assert R.mqar_pairs(pairs, n) == expect


def test_probe_seconds(tmp_path):
    import json

    probe = R.Job("probe-lm-hope", "probe", "hope", "specs/hope.nsam", "x", 3, 16, 128, 1e-3, True)
    run = tmp_path / "jobs" / probe.name / "run"
    run.mkdir(parents=True)
    assert R.probe_seconds(probe, tmp_path)[0] is None  # never started: no measure
    records = [{"kind": "event", "event": "start", "time": 100.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    probe.ended = 130.0
    assert R.probe_seconds(probe, tmp_path) == (30.0, "lower bound: no step ended after the start")
    records += [{"kind": "train", "step": s, "tokens": s * 2048, "loss": 5.0, "tokens_per_s": tps}
                for s, tps in ((1, 100.0), (2, 1024.0), (3, 2048.0))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert R.probe_seconds(probe, tmp_path) == (2.0, "timed")  # the median of steps 2 and 3 (the later)
