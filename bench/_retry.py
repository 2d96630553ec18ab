"""Out-of-memory retries of `nslang train` commands, shared by bench/results.py and bench/curves.py.

`nslang train` exits with OutOfMemory.exit_code (4, runtime/train/errors.py) when the device runs
out of memory. The retry keeps the tokens per optimizer step: half the micro-batch, twice the
accumulation (`--batch-size B --accumulation A` -> `B/2`, `2A`), down to a micro-batch of 1, within
the time the first attempt had: `--max-minutes` becomes what is left of it. With a checkpoint in the
run folder the retry resumes from it (`--resume latest`); without one, the failed attempt's
metrics.jsonl is moved aside (metrics.oom-N.jsonl) so that the retry's records start clean.
"""
from __future__ import annotations

import json
from pathlib import Path

try:
    from runtime.train.errors import OutOfMemory

    OOM_EXIT = OutOfMemory.exit_code
except ImportError:  # the repository root is not on sys.path
    OOM_EXIT = 4


def opt(argv: list[str], name: str) -> str | None:
    """The value after `name` in argv, or None."""
    return argv[argv.index(name) + 1] if name in argv else None


def set_opt(argv: list[str], name: str, value: str) -> None:
    """Replace the value after `name`, or append `name value`."""
    if name in argv:
        argv[argv.index(name) + 1] = value
    else:
        argv += [name, value]


def has_checkpoint(run: Path) -> bool:
    return any((run / "checkpoints").glob("step_*.pt")) if (run / "checkpoints").is_dir() else False


def micro_batch(argv: list[str]) -> tuple[int, int]:
    """(micro-batch, accumulation) of a train command."""
    return int(opt(argv, "--batch-size") or 1), int(opt(argv, "--accumulation") or 1)


def halve_batch(argv: list[str], run: Path, spent_s: float = 0.0) -> bool:
    """Rewrite a train command in place for an out-of-memory retry: half the micro-batch, twice the
    accumulation (the same tokens per step), `--max-minutes` less `spent_s`, resumed from the last
    checkpoint when there is one. False (argv unchanged) when the micro-batch is 1 or odd (an odd
    micro-batch cannot keep the tokens per step)."""
    batch, accumulation = micro_batch(argv)
    if batch < 2 or batch % 2:
        return False
    set_opt(argv, "--batch-size", str(batch // 2))
    set_opt(argv, "--accumulation", str(accumulation * 2))
    if has_checkpoint(run):
        if "--resume" not in argv:
            argv += ["--resume", "latest"]
    else:  # a fresh start: the failed attempt's records would read as a second run
        metrics = run / "metrics.jsonl"
        if metrics.is_file():
            n = 1
            while (run / f"metrics.oom-{n}.jsonl").exists():
                n += 1
            metrics.rename(run / f"metrics.oom-{n}.jsonl")
    minutes = opt(argv, "--max-minutes")
    if minutes is not None:  # what is left of the training time
        set_opt(argv, "--max-minutes", f"{max(0.1, float(minutes) - spent_s / 60):.3f}")
    return True


def retry_note(argv: list[str]) -> str:
    batch, accumulation = micro_batch(argv)
    return f"out of memory: retried with micro-batch {batch} x accumulation {accumulation} (same tokens per step)"


def record_retry(run: Path, argv: list[str]) -> None:
    """Append the retry to <run>/oom_retries.json (read back by the reports)."""
    path = run / "oom_retries.json"
    try:
        notes = json.loads(path.read_text()) if path.is_file() else []
    except (OSError, json.JSONDecodeError):
        notes = []
    batch, accumulation = micro_batch(argv)
    notes.append({"batch_size": batch, "accumulation": accumulation, "note": retry_note(argv)})
    run.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notes, indent=1) + "\n")


def run_with_retries(argv: list[str], run: Path, attempt, on_retry=None) -> int:
    """Run `attempt(argv) -> (rc, seconds, timed_out)`; while it exits out of memory (and was not
    timed out), halve the micro-batch and run it again. Returns the last exit status; argv ends as
    the last command run. `on_retry(argv)` is told of each retry (after argv was rewritten)."""
    while True:
        rc, seconds, timed_out = attempt(argv)
        # --max-minutes already holds what was left before this attempt: take off this one's time
        if rc != OOM_EXIT or timed_out or not halve_batch(argv, run, seconds or 0.0):
            return rc
        record_retry(run, argv)
        if on_retry is not None:
            on_retry(argv)
