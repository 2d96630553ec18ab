"""bench/gpu_session.sh, the script every device call runs: its header names every stage it has,
and on a machine without a GPU its `sleep` self-test runs chains side by side, packs each chain's
logs and outputs, and reports an unknown stage instead of failing the others."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu_session.sh"


def test_the_header_names_every_stage():
    text = SCRIPT.read_text()
    cases = text[text.index("  case $name in"):text.index('    *) echo "unknown stage')]
    stages = re.findall(r"^    ([a-z0-9_]+)\)", cases, re.M)
    header = text[text.index("# Stages"):text.index("# Wheels")]
    assert len(stages) > 30 and len(set(stages)) == len(stages)
    assert [s for s in stages if not re.search(rf"\b{s}\b", header)] == []


def test_chains_run_side_by_side_and_pack_their_logs(tmp_path):
    # a copy in an empty checkout: no .gpu_deps to install, nothing but the `sleep` stage runs
    (tmp_path / "bench").mkdir()
    shutil.copy(SCRIPT, tmp_path / "bench" / SCRIPT.name)
    out, work = tmp_path / "out", tmp_path / "work"
    # DEADLINE far above the run's few seconds: its watchdog packs partial.tgz at DEADLINE - 10 s,
    # and with 40 it fired in CI, where the script's torch import alone took most of 30 s
    env = {**os.environ, "OUT": str(out), "WORK": str(work), "DEADLINE": "150"}
    proc = subprocess.run(["bash", "bench/gpu_session.sh", "sleep@0", "sleep+bogus@1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["sleep.tgz", "sleep_bogus.tgz"]
    assert "== bogus done (2)" in proc.stdout and "== sleep done (0)" in proc.stdout
    with tarfile.open(out / "sleep_bogus.tgz") as tar:
        names = set(tar.getnames())
    assert {"sleep.log", "bogus.log", "versions.txt"} <= names
    assert (work / "sleep.log").read_text().strip() == "slept"
    assert "unknown stage bogus" in (work / "bogus.log").read_text()
