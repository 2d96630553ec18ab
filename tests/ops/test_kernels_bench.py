"""bench/kernels.py mechanics, on CPU (--cpu-smoke: Triton's interpreter, fp32, tiny shapes, our
PyTorch form standing in for fla): one process per measurement, a hung measurement becomes a
`timeout after N s` row and a failing one its error row while the others still run, work in
order of importance, a start line on stderr before each measurement, the CMS rows last."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

BENCH = Path(__file__).resolve().parents[2] / "bench" / "kernels.py"


@pytest.mark.slow
def test_bench_survives_hang_and_failure():
    cmd = [
        sys.executable, str(BENCH), "--cpu-smoke", "--iters", "1", "--warmup", "0",
        "--timeout", "40", "--shapes", "1,32,2,16", "--rules", "hebbian,delta",
        "--no-reference", "--smoke-fault", "hebbian:kernel:hang",
        "--smoke-fault", "delta:fla:raise",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("(1, 32, 2, 16)")]
    # delta (first tier) before hebbian (last tier), whatever --rules says; ours, then fla
    assert [r.split()[4:6] for r in rows] == [
        ["delta", "kernel"], ["delta", "fla"], ["hebbian", "kernel"], ["hebbian", "fla"]
    ], proc.stdout
    assert "RuntimeError: injected failure" in rows[1]
    assert "timeout after 40 s (in: fwd: first call" in rows[2]
    # the measurements that ran have numbers; the ratio column is empty without fla's time
    assert len(rows[0].split()) == 8 and len(rows[3].split()) == 8
    # CMS rows come after the table, both cases, both implementations
    cms = proc.stdout.split("# CMS boundary update")[1]
    for case in ("boundary", "accumulate"):
        for impl in ("kernel", "eager"):
            assert any(ln.split()[:2] == [case, impl] for ln in cms.splitlines()), cms
    starts = [ln for ln in proc.stderr.splitlines() if "] start " in ln]
    assert len(starts) == 4 + 4, proc.stderr[-2000:]
    assert starts[0].endswith("start table|1,32,2,16|delta|kernel (timeout 40 s)")
    assert "timeout table|1,32,2,16|hebbian|kernel after 40 s" in proc.stderr
