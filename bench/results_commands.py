"""Each bench/results.py job's commands: `nslang train` then its `nslang eval`s, with the time limits
of the job's time cap (its share of the budget, set when the job starts)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from results_plan import MAIN_MODELS, NIAH_TASKS, NSLANG, Command, Job


# A job's share of time, relative to a heavy one's, when time caps are handed out: a slow model on
# short sequences (formal languages) and a fast model (attention, DeltaNet) on anything.
SLOW_WEIGHT = 0.6
LIGHT_WEIGHT = 0.3
def train_share(experiment: str) -> float:
    """The share of a job's minutes for training; its evaluations share the rest. The LM jobs run
    several (NIAH at 1-4K characters, the continual stream), the others one short one."""
    return {"lm": 0.5, "optim": 0.95}.get(experiment, 0.75)


def speed_options(model: str, args, device: str) -> list[str]:
    """`nslang train` options that change a model's speed or memory, not its results: --cuda-graphs
    (CUDA only) and --recompute-chunks for the models whose name matches the given expressions."""
    options = []
    if device == "cuda" and getattr(args, "cuda_graphs", None) and re.search(args.cuda_graphs, model):
        options.append("--cuda-graphs")
    if getattr(args, "recompute_chunks", None) and re.search(args.recompute_chunks, model):
        options.append("--recompute-chunks")
    return options


def attach_commands(jobs: list[Job], args, out: Path, notes: dict, job_minutes: float, has_max_minutes: bool):
    """Each job's commands, with time limits for `job_minutes` (set again when the job starts)."""
    for job in jobs:
        set_commands(job, args, out, notes, job_minutes, has_max_minutes)


def set_commands(job: Job, args, out: Path, notes: dict, job_minutes: float, has_max_minutes: bool) -> None:
    p = args.preset
    nslang = [sys.executable, *NSLANG]
    device = "cpu" if args.device == "cpu" else "cuda"
    job.commands = []
    job.minutes = round(job_minutes, 3)
    run = out / "jobs" / job.name / "run"
    model_sets = {**p["model"], "context": job.context}
    argv = [*nslang, "train", job.spec]
    for k, v in model_sets.items():
        argv += ["--set", f"{k}={v}"]
    argv += ["--data", job.data, "--context", str(job.context), "--steps", str(job.steps),
             "--batch-size", str(max(1, job.batch // job.accumulation)), "--accumulation", str(job.accumulation),
             "--eval-every", "0", "--eval-batches", str(p.get("val_batches", 4)),
             "--save-every", str(max(1, job.steps // 4)), "--log-every", str(max(1, job.steps // 20)),
             "--device", device, "--seed", "0", "--out", str(run), "--no-progress"]
    if job.lr is not None:
        argv += ["--lr", str(job.lr)]
    argv += speed_options(job.model, args, device)
    warmup = min(20, max(1, job.steps // 10))
    argv += ["--warmup", str(warmup)]
    train_minutes = job_minutes * train_share(job.experiment)
    if has_max_minutes:
        argv += ["--max-minutes", f"{train_minutes:.3f}"]
    # the hard cap leaves time to start (compile, load data) and, after --max-minutes, for the
    # final checkpoint and validation
    job.commands.append(Command("train", argv, timeout_s=train_minutes * 60 + 60))
    left = job_minutes * 60 - train_minutes * 60
    evals = eval_commands(job, run, out, p, notes, device)
    for cmd in evals:
        cmd.timeout_s = max(20.0, left / max(1, len(evals)))
    job.commands += evals


def eval_commands(job: Job, run: Path, out: Path, p: dict, notes: dict, device: str) -> list[Command]:
    base = [sys.executable, *NSLANG, "eval", str(run), "--device", device, "--no-plot", "-q",
            "--batch-size", str(p["eval_batch"]), "--mode", p.get("eval_mode", "auto")]
    folder = out / "jobs" / job.name
    cmds = []
    if job.experiment in ("lm", "optim"):
        if job.experiment == "lm":
            tasks = NIAH_TASKS.split(",") if notes.get("haystack") else ["niah_single_1"]
            for task in tasks:  # one command each: a task cut by its time limit loses only itself
                argv = base + ["--task", task, "--n", str(p["niah"]["n"]),
                               "--param", "lengths=" + ",".join(map(str, p["niah"]["lengths"])),
                               "-o", str(folder / f"eval_{task}.json")]
                if task != "niah_single_1":
                    argv += ["--param", f"haystack=@{notes['haystack']}"]
                cmds.append(Command(f"eval:{task}", argv, 0))
            if job.model in MAIN_MODELS and notes.get("continual_records"):
                c = p["continual"]
                argv = base + ["--task", "class_incremental", "--param", f"source=@{notes['continual_records']}",
                               "--param", "label_key=topic", "-o", str(folder / "eval_continual.json")]
                argv += [x for k, v in c.items() for x in ("--param", f"{k}={v}")]
                cmds.append(Command("eval:continual", argv, 0))
    elif job.experiment == "mqar":
        mq = p["mqar"]
        argv = base + ["--task", "mqar", "--n", str(p["eval_n"]),
                       "--param", "num_pairs=" + ",".join(map(str, mq["num_pairs"])),
                       "--param", "seq_len=" + ",".join(map(str, mq["eval_seq_len"])),
                       "-o", str(folder / "eval_mqar.json")]
        cmds.append(Command("eval:mqar", argv, 0))
    elif job.experiment.startswith("formal_"):
        argv = base + ["--task", job.experiment, "--n", str(p["eval_n"]), "-o", str(folder / "eval_formal.json")]
        cmds.append(Command("eval:formal", argv, 0))
    return cmds
