"""bench/_retry.py: the out-of-memory retry shared by bench/results.py and bench/curves.py."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import _retry  # noqa: E402

# Exits like `nslang train` out of memory (4) while the micro-batch is above 2; records its argv.
FAKE = ("import sys, pathlib; a = sys.argv; b = int(a[a.index('--batch-size') + 1]); "
        "pathlib.Path(a[a.index('--out') + 1], 'metrics.jsonl').open('a').write(str(b) + '\\n'); "
        "sys.exit(4 if b > 2 else 0)")


def test_halve_batch_keeps_tokens(tmp_path):
    argv = ["train", "--batch-size", "16", "--max-minutes", "5.000"]
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    assert _retry.halve_batch(argv, tmp_path, spent_s=60)
    assert _retry.micro_batch(argv) == (8, 2)
    assert _retry.opt(argv, "--max-minutes") == "4.000" and "--resume" not in argv
    assert not (tmp_path / "metrics.jsonl").exists() and (tmp_path / "metrics.oom-1.jsonl").is_file()
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "step_3.pt").write_bytes(b"")
    assert _retry.halve_batch(argv, tmp_path)
    assert _retry.micro_batch(argv) == (4, 4) and _retry.opt(argv, "--resume") == "latest"
    for start in ("1", "3"):  # micro-batch 1, or odd: the tokens per step cannot be kept
        argv = ["train", "--batch-size", start]
        assert not _retry.halve_batch(argv, tmp_path) and argv == ["train", "--batch-size", start]


def test_run_with_retries_down_to_fit(tmp_path):
    argv = [sys.executable, "-c", FAKE, "--batch-size", "16", "--accumulation", "1", "--out", str(tmp_path),
            "--max-minutes", "2"]
    seen = []

    def attempt(a):
        rc = subprocess.run(a, timeout=60).returncode
        return rc, 1.0, False

    rc = _retry.run_with_retries(argv, tmp_path, attempt, on_retry=lambda a: seen.append(_retry.micro_batch(a)))
    assert rc == 0 and seen == [(8, 2), (4, 4), (2, 8)] and _retry.micro_batch(argv) == (2, 8)
    notes = json.loads((tmp_path / "oom_retries.json").read_text())
    assert [(n["batch_size"], n["accumulation"]) for n in notes] == seen
    assert (tmp_path / "metrics.jsonl").read_text() == "2\n"  # each fresh attempt starts its records clean
    assert float(_retry.opt(argv, "--max-minutes")) < 2


def test_run_with_retries_gives_up_at_one(tmp_path):
    argv = [sys.executable, "-c", FAKE.replace("b > 2", "True"), "--batch-size", "2", "--out", str(tmp_path)]
    rc = _retry.run_with_retries(argv, tmp_path, lambda a: (subprocess.run(a, timeout=60).returncode, 0.1, False))
    assert rc == _retry.OOM_EXIT == 4 and _retry.micro_batch(argv) == (1, 2)
