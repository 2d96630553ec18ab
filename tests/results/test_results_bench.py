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
    (tmp_path / "note.md").write_text("Rerun with the new levels.\n\nSecond paragraph.\n")
    (tmp_path / "reading.md").write_text("**Speed is the finding.**\n")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "results_report.py"), str(out), "-o", str(md),
                           "--reading", str(tmp_path / "reading.md"), "--note", str(tmp_path / "note.md")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = md.read_text()
    assert "CPU smoke run" in text and "## Formal languages (Table 5)" in text and "## Reading" in text
    # the hand-written parts survive a regeneration: the note quoted under the title, the reading last
    assert text.startswith("# Results") and "\n> Rerun with the new levels.\n>\n> Second paragraph.\n" in text
    assert text.rstrip().endswith("**Speed is the finding.**") and "--note " in text
    assert (tmp_path / "docs" / "results" / "formal.png").is_file()


def test_speed_options_reach_only_the_matching_models():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from argparse import Namespace

        from results_commands import speed_options
    finally:
        sys.path.remove(str(ROOT / "bench"))
    args = Namespace(cuda_graphs="hope", recompute_chunks="^hope$")
    assert speed_options("hope", args, "cuda") == ["--cuda-graphs", "--recompute-chunks"]
    assert speed_options("hope_attention", args, "cuda") == ["--cuda-graphs"]
    assert speed_options("transformer_pp", args, "cuda") == []
    assert speed_options("hope", args, "cpu") == ["--recompute-chunks"]  # no CUDA graph off CUDA
    assert speed_options("hope", Namespace(cuda_graphs=None, recompute_chunks=None), "cuda") == []


def test_dry_run_writes_the_speed_options_into_the_commands(tmp_path):
    out = tmp_path / "results"
    cmd = [sys.executable, str(ROOT / "bench" / "results.py"), "--device", "cpu", "--slots", "1", "--scale", "tiny",
           "--only", "^(mqar-hope|mqar-transformer_pp)$", "--recompute-chunks", "hope", "--dry-run",
           "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trains = [line for line in (out / "commands.sh").read_text().splitlines() if " train " in line]
    assert any("mqar-hope/" in t and "--recompute-chunks" in t for t in trains), trains
    assert all("--recompute-chunks" not in t for t in trains if "mqar-transformer_pp/" in t)
