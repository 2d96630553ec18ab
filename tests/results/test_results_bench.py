"""bench/results.py end to end on the CPU: two tiny jobs, results.json's structure, and the report."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_results_two_jobs(tmp_path):
    out = tmp_path / "results"
    cmd = [sys.executable, str(ROOT / "bench" / "results.py"), "--device", "cpu", "--slots", "2", "--scale", "tiny",
           "--only", "^(formal_parity-transformer_pp|mqar-deltanet)$", "--steps-scale", "0.5",
           "--budget-minutes", "1", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    assert doc["format"] == "nslang-results" and doc["scale"] == "tiny" and doc["device"] == "cpu"
    assert {"preset", "slots", "waves", "notes", "wall_s", "argv"} <= set(doc)
    jobs = {j["name"]: j for j in doc["jobs"]}
    assert set(jobs) == {"formal_parity-transformer_pp", "mqar-deltanet"}
    for name, j in jobs.items():
        assert j["status"] == "ok", (name, j["commands"])
        assert [c["kind"] for c in j["commands"]][0] == "train"
        assert all(c["rc"] == 0 and c["command"].startswith("nslang ") for c in j["commands"])
        t = j["train"]
        assert t["step"] == t["planned_steps"] and t["tokens"] > 0 and t["val_loss"] > 0 and t["curve"]
        assert t["params_m"] > 0
    formal = jobs["formal_parity-transformer_pp"]["eval"]["formal_parity"]
    assert set(formal["bins"]["bin"]) == {"bin0", "bin1"}  # the training bin and the longer one
    assert "--data task:formal_parity" in jobs["formal_parity-transformer_pp"]["commands"][0]["command"]
    mqar = jobs["mqar-deltanet"]["eval"]["mqar"]
    assert set(mqar["bins"]["seq_len"]) == {"128", "256"} and 0.0 <= mqar["acc"] <= 1.0
    assert "nslang train" in (out / "commands.sh").read_text()

    md = tmp_path / "docs" / "results.md"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "results_report.py"), str(out), "-o", str(md)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = md.read_text()
    assert "CPU smoke run" in text and "## Formal languages (Table 5)" in text and "## Reading" in text
    assert (tmp_path / "docs" / "results" / "formal.png").is_file()
