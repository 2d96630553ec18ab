"""bench/model.py and bench/train_throughput.py's shared pieces on the CPU at a tiny size: the table,
activation checkpointing (same losses), and an error row that does not stop the others."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.train_throughput import build, time_steps  # noqa: E402


def test_activation_checkpointing_keeps_the_losses(tmp_path):
    spec = ROOT / "specs" / "transformer_pp.nsam"
    runs = []
    for ckpt in (False, True):
        _, one_step = build(spec, {"dim": 32, "depth": 1, "context": 32}, torch.device("cpu"), tmp_path / str(ckpt),
                            2, 32, activation_checkpointing=ckpt)
        runs.append([one_step(s) for s in (1, 2, 3)])
    assert runs[0] == runs[1]


def test_time_steps_budget_stops_early():
    calls = []

    def slow(step):
        calls.append(step)
        import time
        time.sleep(0.05)
        return 1.0

    out = time_steps(slow, 1, 100, torch.device("cpu"), budget_s=0.2)
    assert 1 <= out["timed_steps"] < 10 and calls[0] == 1


def test_model_bench_smoke(tmp_path):
    bad = tmp_path / "bad.nsam"
    bad.write_text("model bad { dim = 32; flow x -> nowhere }\n")
    cmd = [sys.executable, str(ROOT / "bench" / "model.py"), "--device", "cpu", "--dim", "32", "--depth", "1",
           "--context", "32", "--batch-size", "2", "--steps", "2", "--specs", f"{bad},transformer_pp",
           "--nl-modes", "", "--activation-checkpointing"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| nslang bad | ? | 2 |  | does not compile" in proc.stdout  # its own row; the others still run
    assert "| nslang transformer_pp (act. ckpt) |" in proc.stdout and "1.000x" in proc.stdout


def test_profile_hope_counts_operators():
    # CPU: no kernel column, but host operators are counted and ranked, one row per variant
    cmd = [sys.executable, str(ROOT / "bench" / "profile_hope.py"), "transformer_pp", "self_modifying_titans",
           "--dim", "32", "--depth", "1", "--context", "32", "--batch-size", "2", "--device", "cpu"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line.split("|") for line in proc.stdout.splitlines()
            if line.startswith("| ") and not line.startswith(("| variant", "| ---"))}
    assert set(rows) == {"transformer_pp", "self_modifying_titans"}
    ops = lambda row: int(row[6].strip().replace(",", ""))  # noqa: E731
    # the chunk loop: two 16-token chunks of self-modifying Titans cost more operators than the
    # whole Transformer++ step
    assert ops(rows["self_modifying_titans"]) > ops(rows["transformer_pp"]) > 0
    assert rows["self_modifying_titans"][10].split()[0] and rows["transformer_pp"][7].strip() == "0"  # no GPU


def test_profile_hope_rejects_an_unknown_spec_before_timing():
    cmd = [sys.executable, str(ROOT / "bench" / "profile_hope.py"), "transformer_pp", "nosuchspec", "--device", "cpu"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no spec nosuchspec" in proc.stderr and "ms/step" not in proc.stderr


def test_activation_memory_census_sees_recomputation():
    # bench/activation_memory.py: live storages after the forward, by line; recomputing the
    # self-modifying chunk steps must leave far fewer of them (the steps' intermediates go)
    def total(*flags):
        cmd = [sys.executable, str(ROOT / "bench" / "activation_memory.py"), "self_modifying_titans", "--dim", "32",
               "--depth", "1", "--context", "256", "--top", "3", *flags]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("self_modifying_titans:"))
        assert "runtime/" in proc.stdout  # lines are attributed to nslang's code
        return float(line.split()[1])

    kept, recomputed = total(), total("--recompute-chunks")
    assert recomputed * 3 < kept, (kept, recomputed)


def test_op_census_charges_operators_to_nslang_and_the_backward():
    # bench/op_census.py: operators per file; the kernel estimate leaves out views, so it is smaller
    def run(*flags):
        cmd = [sys.executable, str(ROOT / "bench" / "op_census.py"), "hope_two_pass", "--dim", "32", "--depth", "1",
               "--context", "32", "--batch-size", "1", "--by", "file", *flags]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows = {ln.split("|")[3].strip(): int(ln.split("|")[2].replace(",", "")) for ln in proc.stdout.splitlines()
                if ln.startswith("| ") and "%" in ln}
        total = int(next(ln for ln in proc.stdout.splitlines() if ln.startswith("hope_two_pass:")).split()[1]
                    .replace(",", ""))
        return rows, total

    rows, ops = run()
    assert rows["(backward)"] > 0 and rows["runtime/ops/self_modifying_titans/chunk.py"] > 0
    assert sum(rows.values()) <= ops
    _, kernels = run("--kernels")
    assert 0 < kernels < ops


def test_cms_stability_reports_the_largest_cms_output(corpus):
    # bench/cms_stability.py on a tiny Hope: one peak per CMS block and self-modifying memory (two
    # of each at depth 2) per printed step, and the largest over the run; a spec with neither is refused
    cmd = [sys.executable, str(ROOT / "bench" / "cms_stability.py"), "hope_two_pass", "--dim", "32", "--depth", "2",
           "--context", "32", "--batch-size", "2", "--steps", "2", "--every", "1", "--data", str(corpus)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    steps = [ln for ln in proc.stdout.splitlines() if ln.startswith("step")]
    assert len(steps) == 2 and all(len(ln.split("peak")[1].split("(")[0].split()) == 4 for ln in steps)
    largest = float(proc.stdout.strip().splitlines()[-1].split(":")[1])
    assert 0 < largest < float("inf")
    proc = subprocess.run(cmd[:2] + ["transformer_pp"] + cmd[3:], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "has no CMS block or self-modifying memory" in proc.stderr
