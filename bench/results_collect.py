"""What a bench/results.py job produced, as its record in results.json (training summary from
metrics.jsonl, evaluation JSON, parameter count), and the logs archive (logs.tar.gz)."""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict
from pathlib import Path

from results_plan import Job


def collect(job: Job, out: Path) -> dict:
    """What the job produced: training summary from metrics.jsonl, eval JSON, parameter count."""
    folder = out / "jobs" / job.name
    run = folder / "run"
    rec = {k: v for k, v in asdict(job).items() if k != "commands"}
    rec["commands"] = [{"kind": c.kind, "command": c.shell, "rc": c.rc, "seconds": c.seconds,
                        "timed_out": c.timed_out, "timeout_s": round(c.timeout_s, 1),
                        "log": os.path.relpath(c.log, out) if c.log else None} for c in job.commands]
    rec["run"] = os.path.relpath(run, out)
    train: dict = {"planned_steps": job.steps, "planned_tokens": job.steps * job.batch * job.context}
    curve, val_curve = [], []
    metrics = run / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if r.get("kind") == "train":
                curve.append([r["step"], r["tokens"], r["loss"], r.get("tokens_per_s")])
            elif r.get("kind") == "val":
                val_curve.append([r.get("step"), r.get("tokens"), r.get("val_loss", r.get("loss"))])
            elif r.get("kind") == "event" and r.get("event") == "time_limit":
                train["cut"] = {"reason": "time_limit", "step": r.get("step"), "tokens": r.get("tokens"),
                                "elapsed_s": r.get("elapsed_s")}
    if curve:
        train.update(step=curve[-1][0], tokens=curve[-1][1], final_train_loss=curve[-1][2],
                     tokens_per_s=_median([c[3] for c in curve if c[3]]))
    if val_curve:
        train["val_loss"] = val_curve[-1][2]
        train["val_ppl"] = math.exp(val_curve[-1][2]) if val_curve[-1][2] is not None else None
    if job.commands and job.commands[0].timed_out and "cut" not in train:
        train["cut"] = {"reason": "timeout", "step": train.get("step"), "tokens": train.get("tokens")}
    train["curve"] = curve
    train["val_curve"] = val_curve
    if job.commands and job.commands[0].log and Path(job.commands[0].log).is_file():
        m = re.search(r"([\d.]+)M parameters", Path(job.commands[0].log).read_text())
        if m:
            train["params_m"] = float(m.group(1))
    rec["train"] = train
    rec["eval"] = {}
    for path in sorted(folder.glob("eval_*.json")):
        try:
            rec["eval"].update(json.loads(path.read_text()).get("tasks", {}))
        except (OSError, json.JSONDecodeError):
            pass
    return rec


def pack_logs(work: Path, target: Path) -> None:
    """The jobs' logs, metrics and eval files in one archive (no checkpoints, no packages)."""
    import tarfile

    keep = ("*.log", "eval_*.json", "run/metrics.jsonl", "run/run.json", "run/loss.png", "run/spec/*.nsam")
    with tarfile.open(target, "w:gz") as tar:
        for folder in sorted((work / "jobs").glob("*")):
            for pattern in keep:
                for path in sorted(folder.glob(pattern)):
                    tar.add(path, arcname=str(path.relative_to(work)))
        for extra in sorted((work / "specs").glob("*.nsam")):
            tar.add(extra, arcname=str(extra.relative_to(work)))


def _median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None
