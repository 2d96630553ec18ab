"""The small-scale reproduction behind docs/results.md, in one command (issue 6).

    python bench/results.py --gpus 0,1,2,3 --slots-per-gpu 6 --scale small --budget-minutes 8 --out OUT
    python bench/results.py --device cpu --slots 2 --scale tiny --out /tmp/results      # the CPU smoke run
    python bench/results_report.py OUT -o docs/results.md                               # tables and plots

The job list (model x experiment), every job a chain of `nslang train` then `nslang eval` subprocesses:

    lm        Hope, Transformer++, Titans, DeltaNet, Hope-Attention and the four Table 6 ablations:
              pretraining on the packaged corpus (validation loss), then NIAH (niah_single_1/2,
              niah_multikey_1 at short lengths); the five main models also run the continual
              class-incremental stream (wiki topics) starting from the pretrained weights
    mqar      the same models and the ablations trained on MQAR (`--data task:mqar?...`), evaluated
              on held-out sequences by number of pairs and sequence length (also 2x longer than trained)
    formal    the five main models x six formal languages (Table 5): trained on the training-length
              bin (`--data task:formal_X`), evaluated on bin0 (training lengths) and bin1 (longer)
    optim     one model (transformer_pp by default) on the LM with AdamW, Muon and M3, each with
              its own optimizer spec's learning rate (specs/optim/)

Within an experiment every model gets the same steps, batch and context (the same tokens). The
jobs run in parallel on `slots` (GPU x slot, CUDA_VISIBLE_DEVICES set per process); the whole run
is planned to fit `--budget-minutes`: each job gets a share of what is left of the budget when it
starts, training is stopped by `nslang train --max-minutes` at a share of that (it saves a
checkpoint, records a `time_limit` event, and the job records the steps and tokens it saw), and
every command also has a hard `timeout`. A failed or cut job is recorded as such; the others go on.

Calibration (on GPUs): at most 15% of the budget, before the grid, one probe per GPU at a time,
each with its own timeout: 1 warm-up + 2 timed steps of Hope, then Titans, on each experiment's
data. Each experiment's steps become what its slowest model fits in its time cap (a step in the
grid taken as `--contention` times slower than alone). When that is under MIN_STEPS (20), the LM
or MQAR context is halved for every model alike (MQAR: the pairs that fit the shorter sequences,
evaluation at that length and twice it) down to the preset's min_context; when even that is too
slow, the slow family (Hope, its ablations and Hope-Attention) is skipped in that experiment, its
jobs recorded as `skipped: too slow for the budget (measured X s/step ...)`. results.json keeps the
scale used (`preset`, and `calibration.scale`) next to the planned one (`preset_planned`).

Out of memory: a training command that exits with nslang train's out-of-memory status is run again
with half the micro-batch and twice the accumulation (the same tokens per step), down to 1, within
its time (bench/_retry.py, shared with bench/curves.py); the job records the micro-batch used.

Output folder: results.json (the plan, every job's commands, return codes, times, training and
evaluation results), commands.sh (the exact commands), jobs/<job>/ (runs, logs, eval JSON).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _retry import has_checkpoint, micro_batch, retry_note, run_with_retries  # noqa: E402
CARRIED_CORPUS = ROOT / ".gpu_data" / "shakespeare" / "byte-val0.01-seed0"
CARRIED_RECORDS = ROOT / ".gpu_data" / "continual_wiki.jsonl"

MAIN_MODELS = ("hope", "transformer_pp", "titans", "deltanet", "hope_attention")
ABLATIONS = ("hope_no_dgd", "hope_no_momentum", "hope_no_retention", "hope_no_cms")
LANGUAGES = ("parity", "aa_star", "abab_star", "anbn", "anbncn", "shuffle2")
OPTIMIZERS = ("adamw", "muon", "m3")
NIAH_TASKS = "niah_single_1,niah_single_2,niah_multikey_1"
# Models whose step costs far more than attention's (chunk loops): started first, spread over GPUs.
# `nslang` without needing the console script (the GPU machine runs from a plain checkout on PYTHONPATH).
NSLANG = ["-m", "nslang.cli"]
HEAVY = {"hope", "hope_attention", "titans", "hope_no_dgd", "hope_no_momentum", "hope_no_retention", "hope_no_cms"}

PRESETS = {
    # The CPU smoke run: the whole grid on two cores in about a quarter of an hour.
    "tiny": {
        "model": {"dim": 32, "depth": 1, "heads": 2},
        "lr": 3e-3,
        "lm": {"steps": 12, "batch": 4, "context": 64, "min_context": 32},
        "mqar": {"steps": 20, "batch": 8, "num_pairs": (2, 4), "seq_len": 128, "eval_seq_len": (128, 256),
                 "min_context": 64},
        "formal": {"steps": 12, "batch": 8, "context": 64},
        "niah": {"lengths": (512, 1024), "n": 2},
        "continual": {"classes_per_task": 4, "test_per_class": 2, "train_per_class": 4, "max_chars": 160,
                      "train_steps": 2, "train_batch": 2, "train_seq_len": 64},
        "eval_n": 8, "eval_batch": 8, "eval_mode": "ll", "val_batches": 4,  # greedy generation is token by token: slow on a CPU
    },
    # The GPU run: 10.7M (Transformer++) to 26.9M (Hope) parameters at dim 384, depth 6, byte vocab.
    # Contexts are powers of two: Hope's CMS levels (every 16, 128, 2048 tokens) must divide the
    # context or be multiples of it (NS202).
    # Why the contexts are short: on 2 H100s (torch 2.11; `--scale small --budget-minutes 4.8`, the
    # six calibration probes running at once, so inflated by contention) Hope measured 111.4 s/step on
    # the LM at context 512 x batch 8, 54.3 s/step on MQAR at length 256 x 16, 1.79 s/step on the
    # formal languages at context 64 x 32; Titans 1.8, 0.98 and 0.30 s/step. Hope is launch-bound
    # (its chunk loops: ~400-800 tokens/s on one H100 even alone; the exact CMS signal keeps a
    # second-order graph per 16-token segment, and Hope 512x4 at context 512 x 16 ran out of 80 GB),
    # so its step time grows with the context far more than with the batch. An 8-minute budget on
    # 4 GPUs fits Hope only at short contexts: LM 128 (was 512) and MQAR 128 with 2-6 pairs (was
    # 256 with 4-12); the formal languages keep context 64. The calibration (on GPUs) shrinks the
    # LM and MQAR contexts further, for every model alike, when the slowest model cannot fit
    # MIN_STEPS steps in its time cap (down to `min_context`), and only then skips the slow family.
    "small": {
        "model": {"dim": 384, "depth": 6, "heads": 4},
        "lr": 1e-3,
        "lm": {"steps": 240, "batch": 16, "context": 128, "min_context": 64},
        "mqar": {"steps": 300, "batch": 16, "num_pairs": (2, 4, 6), "seq_len": 128, "eval_seq_len": (128, 256),
                 "min_context": 64},
        "formal": {"steps": 200, "batch": 32, "context": 64},
        # NIAH and the continual stream also run Hope (forward passes; the stream trains it between
        # tasks: 6 tasks of 2 wiki topics x train_steps steps), so they are sized to its speed too
        "niah": {"lengths": (512, 1024, 2048), "n": 15},
        "continual": {"classes_per_task": 2, "test_per_class": 10, "train_per_class": 40, "max_chars": 600,
                      "train_steps": 5, "train_batch": 8, "train_seq_len": 128},
        # auto: log-likelihood and greedy generation. val_batches: the final validation comes on top of
        # --max-minutes (inside the train command's timeout), and Hope's forward is slow too
        "eval_n": 96, "eval_batch": 16, "eval_mode": "auto", "val_batches": 4,
    },
}


@dataclass
class Command:
    kind: str  # "train" or "eval:<what>"
    argv: list[str]
    timeout_s: float
    rc: int | None = None
    seconds: float | None = None
    timed_out: bool = False
    log: str = ""

    @property
    def shell(self) -> str:
        """The command as one would type it: `nslang train ...` (argv runs the same via python -c)."""
        if self.argv[1:3] == NSLANG:
            return "nslang " + shlex.join(self.argv[3:])
        return shlex.join(self.argv)


@dataclass
class Job:
    name: str
    experiment: str
    model: str
    spec: str
    data: str
    steps: int
    batch: int
    context: int
    lr: float | None
    heavy: bool  # a slow model on long sequences: limited per GPU (memory), the largest time share
    slow: bool = False  # a slow model (Hope, Titans ...) on any data: a larger time share than a fast one
    # `batch` sequences per optimizer step, as `accumulation` micro-batches of batch // accumulation
    # (raised by an out-of-memory retry, or from the start when the calibration probe needed it)
    accumulation: int = 1
    commands: list[Command] = field(default_factory=list)
    status: str = "pending"
    slot: str = ""
    seconds: float | None = None
    minutes: float | None = None  # the job's time cap, set when it starts
    notes: list[str] = field(default_factory=list)


# -- data the jobs read --------------------------------------------------------------------------

def corpus_path(arg: str | None) -> str:
    if arg:
        return arg
    return str(CARRIED_CORPUS) if (CARRIED_CORPUS / "meta.json").is_file() else "shakespeare"


def write_haystack(corpus: str, out: Path) -> Path | None:
    """The validation split of the (byte-level) corpus as one text file, the NIAH prose haystack."""
    try:
        sys.path.insert(0, str(ROOT))
        import numpy as np

        from runtime.data import open_corpus

        c = open_corpus(corpus) if Path(corpus, "meta.json").is_file() else open_corpus(corpus, progress=False)
        if c.meta["tokenizer"].get("kind") != "byte":
            return None
        tokens = np.asarray(c.tokens("val"))
        text = bytes(int(t) for t in tokens if t < 256).decode("utf-8", "replace")
        path = out / "haystack.txt"
        path.write_text(text)
        return path
    except Exception as err:  # noqa: BLE001 - the NIAH prose variants are then skipped
        print(f"note: no haystack from {corpus}: {err}", file=sys.stderr)
        return None


def continual_records(arg: str | None, out: Path, p: dict) -> tuple[Path | None, str]:
    """A labelled .jsonl (text, topic) for class_incremental: given, carried, or made from `wiki`."""
    if arg:
        return Path(arg), "given"
    if CARRIED_RECORDS.is_file():
        return CARRIED_RECORDS, "carried"
    try:
        sys.path.insert(0, str(ROOT))
        from runtime.data import is_cached, get_source, records

        if not all(is_cached(pkg) for pkg in get_source("wiki").all_packages()):
            return None, "the wiki corpus is not cached (nslang data fetch wiki) and no records were carried"
        by_topic: dict[str, list] = {}
        for r in records("wiki", progress=False):
            by_topic.setdefault(r["topic"], []).append({"text": r["text"][:2000], "topic": r["topic"]})
        rows = [r for topic in sorted(by_topic) for r in by_topic[topic][:200]]
        CARRIED_RECORDS.parent.mkdir(parents=True, exist_ok=True)
        CARRIED_RECORDS.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return CARRIED_RECORDS, "made from wiki"
    except Exception as err:  # noqa: BLE001
        return None, f"no records: {err}"


# -- the plan --------------------------------------------------------------------------------------

def optimizer_spec(kind: str, base: str, folder: Path) -> Path:
    """`model <base>_<kind> extends <base>` with the outer optimizer of specs/optim/<kind>.nsam."""
    text = (ROOT / "specs" / "optim" / f"{kind}.nsam").read_text()
    body = re.search(r"optimizer\s+\w+\s*:\s*\w+\s*\{(.*?)\}", text, re.S).group(1)
    options = [line.split("#")[0].strip() for line in body.splitlines()]
    options = [o for o in options if o]
    base_text = (ROOT / "specs" / f"{base}.nsam").read_text()
    existing = re.findall(r"^\s*optimizer\s+(\w+)\s+in\s+(\w+)", base_text, re.M)
    level = existing[0][1] if existing else "outer"
    lines = [f"# Written by bench/results.py: {base} trained with specs/optim/{kind}.nsam's options.",
             f'model {base}_{kind} extends "{(ROOT / "specs" / f"{base}.nsam").as_posix()}" {{']
    lines += [f"  remove {name}" for name, _ in existing if name != kind]
    lines.append(f"  optimizer {kind} in {level} {{ " + "; ".join(options) + " }")
    lines.append("}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{base}_{kind}.nsam"
    path.write_text("\n".join(lines) + "\n")
    return path


def plan(args, out: Path) -> tuple[list[Job], dict]:
    p = args.preset
    scale = args.steps_scale
    corpus = corpus_path(args.corpus)
    haystack = write_haystack(corpus, out)
    records, records_note = continual_records(args.records, out, p)
    notes = {"corpus": _rel(corpus) if Path(corpus).exists() else corpus, "haystack": str(haystack) if haystack else None,
             "continual_records": str(records) if records else None, "continual_note": records_note}
    jobs: list[Job] = []

    def steps(n: int) -> int:
        return max(1, int(round(n * scale)))

    def add(name, experiment, model, spec, data, cfg, lr):
        jobs.append(Job(name, experiment, model, _rel(spec), _rel(data) if Path(data).exists() else data, steps(cfg["steps"]), cfg["batch"],
                        cfg["context"], lr, model.split("@")[0] in HEAVY and experiment in ("lm", "mqar"),
                        model.split("@")[0] in HEAVY))

    lm = p["lm"]
    mq = p["mqar"]
    mq_data = f"task:mqar?num_pairs={','.join(map(str, mq['num_pairs']))}&seq_len={mq['seq_len']}"
    mq_cfg = {"steps": mq["steps"], "batch": mq["batch"], "context": mq["seq_len"]}
    for model in MAIN_MODELS + ABLATIONS:
        spec = ROOT / "specs" / f"{model}.nsam"
        add(f"lm-{model}", "lm", model, spec, corpus, lm, p["lr"])
        add(f"mqar-{model}", "mqar", model, spec, mq_data, mq_cfg, p["lr"])
    for model in MAIN_MODELS:
        for lang in LANGUAGES:
            add(f"formal_{lang}-{model}", f"formal_{lang}", model, ROOT / "specs" / f"{model}.nsam",
                f"task:formal_{lang}", p["formal"], p["lr"])
    for kind in OPTIMIZERS:
        spec = optimizer_spec(kind, args.optim_model, out / "specs")
        add(f"optim-{args.optim_model}-{kind}", "optim", f"{args.optim_model}@{kind}", spec, corpus, lm, None)
    if args.only:
        pattern = re.compile(args.only)
        jobs = [j for j in jobs if pattern.search(j.name)]
    return jobs, notes


# A job's share of time, relative to a heavy one's, when time caps are handed out: a slow model on
# short sequences (formal languages) and a fast model (attention, DeltaNet) on anything.
SLOW_WEIGHT = 0.6
LIGHT_WEIGHT = 0.3
def train_share(experiment: str) -> float:
    """The share of a job's minutes for training; its evaluations share the rest. The LM jobs run
    several (NIAH at 1-4K characters, the continual stream), the others one short one."""
    return {"lm": 0.5, "optim": 0.95}.get(experiment, 0.75)


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


# -- running ----------------------------------------------------------------------------------------

T0 = time.monotonic()
RUNNING: set = set()  # process ids of the commands running now (each leads its own process group)
STOPPED = threading.Event()  # set when the budget is spent or the run is interrupted: start nothing more


def stop_all() -> None:
    """End the running commands (their process groups), e.g. when the orchestrator is interrupted."""
    STOPPED.set()
    for pid in list(RUNNING):
        try:
            os.killpg(pid, 15)
        except ProcessLookupError:
            pass


def run_job(job: Job, slot: tuple[str, int], out: Path, threads: int) -> None:
    gpu, k = slot
    job.slot = f"{gpu}:{k}"
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if gpu != "cpu":
        env["CUDA_VISIBLE_DEVICES"] = gpu
    folder = out / "jobs" / job.name
    folder.mkdir(parents=True, exist_ok=True)
    job.status = "running"
    t_job = time.monotonic()
    for i, cmd in enumerate(job.commands):
        cmd.log = str(folder / f"{i}_{cmd.kind.replace(':', '_')}.log")
        if STOPPED.is_set() or (cmd.kind != "train" and job.commands[0].rc not in (0,)
                                and not _has_checkpoint(folder / "run")):
            cmd.rc, cmd.seconds = None, 0.0
            continue
        if cmd.kind != "train" and job.minutes:
            # the evaluations share what the job has left (training may have ended early)
            left = t_job + job.minutes * 60 - time.monotonic()
            cmd.timeout_s = max(cmd.timeout_s, left / (len(job.commands) - i))
        if cmd.kind != "train":
            _run_command(cmd, env, "w")
            continue
        # Out of memory (exit 4): the same tokens per step in smaller micro-batches, down to 1, within
        # the command's time (bench/_retry.py). The job records the retry and the micro-batch used.
        deadline = time.monotonic() + cmd.timeout_s
        attempts = [0]

        def attempt(argv, cmd=cmd, deadline=deadline, attempts=attempts):
            before = cmd.seconds or 0.0
            if attempts[0]:
                cmd.timeout_s = max(30.0, deadline - time.monotonic())
            _run_command(cmd, env, "a" if attempts[0] else "w")
            attempts[0] += 1
            return cmd.rc, (cmd.seconds or 0.0) - before, cmd.timed_out

        run_with_retries(cmd.argv, folder / "run", attempt, on_retry=lambda argv: job.notes.append(retry_note(argv)))
        micro, job.accumulation = micro_batch(cmd.argv)
    job.seconds = round(time.monotonic() - t_job, 2)
    train = job.commands[0]
    if train.rc == 0 and all(c.rc == 0 for c in job.commands):
        job.status = "ok"
    elif _has_checkpoint(folder / "run"):
        job.status = "partial"
    else:
        job.status = "failed"


def _run_command(cmd: Command, env: dict, mode: str) -> None:
    t0 = time.monotonic()
    with open(cmd.log, mode) as log:
        log.write("$ " + cmd.shell + "\n")
        log.flush()
        proc = subprocess.Popen(cmd.argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        RUNNING.add(proc.pid)
        try:
            cmd.rc = proc.wait(timeout=cmd.timeout_s)
        except subprocess.TimeoutExpired:
            cmd.timed_out = True
            try:
                os.killpg(proc.pid, 15)
                cmd.rc = proc.wait(timeout=20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(proc.pid, 9)
                except ProcessLookupError:
                    pass
                cmd.rc = proc.wait()
        finally:
            RUNNING.discard(proc.pid)
    cmd.seconds = round((cmd.seconds or 0.0) + time.monotonic() - t0, 2)


_has_checkpoint = has_checkpoint


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


PROBE_STEPS = 3  # one warm-up step (compiles, allocates), then two timed ones
CALIBRATION_SHARE = 0.15  # the calibration's hard cap, of the budget; the jobs get what is left
MIN_STEPS = 20  # an experiment whose slowest model cannot train this many steps in its cap is shrunk
SAFETY = 0.8  # of a job's training minutes (final validation and checkpoint come on top)
# Models timed by the calibration, slowest first, and the models each one stands for.
FAMILIES = {"hope": ("hope", "hope_attention") + ABLATIONS, "titans": ("titans",)}


def kind_of(job: Job) -> str:
    return "formal" if job.experiment.startswith("formal_") else job.experiment


def family_of(model: str) -> str | None:
    base = model.split("@")[0]
    return next((f for f, members in FAMILIES.items() if base in members), None)


def mqar_pairs(pairs, seq_len: int) -> tuple[int, ...]:
    """The numbers of pairs that fit a sequence of seq_len (all of them, or the largest that fits)."""
    sys.path.insert(0, str(ROOT))
    from runtime.eval.mqar import MQAR

    fits = lambda p: MQAR().min_length(p, p) <= seq_len  # noqa: E731
    kept = tuple(p for p in pairs if fits(p))
    if kept:
        return kept
    largest = max((p for p in range(1, min(pairs) + 1) if fits(p)), default=None)
    return (largest,) if largest else ()


def scale_ladder(preset: dict, kind: str) -> list[int]:
    """The contexts an experiment may shrink to, largest first: halving down to its min_context (the
    formal languages keep theirs: their length bins are fixed)."""
    if kind == "lm":
        ctx, floor = preset["lm"]["context"], preset["lm"].get("min_context", preset["lm"]["context"])
    elif kind == "mqar":
        ctx, floor = preset["mqar"]["seq_len"], preset["mqar"].get("min_context", preset["mqar"]["seq_len"])
    else:
        return [preset["formal"]["context"]]
    out = [ctx]
    while out[-1] // 2 >= floor and out[-1] % 2 == 0:
        if kind == "mqar" and len(mqar_pairs(preset["mqar"]["num_pairs"], out[-1] // 2)) == 0:
            break
        out.append(out[-1] // 2)
    return out


def apply_scale(preset: dict, jobs: list[Job], kind: str, context: int) -> dict:
    """Set an experiment's context (LM: also the optimizer jobs; MQAR: the sequence length, the
    pairs that fit, evaluation at that length and twice it) in the run's preset and its jobs."""
    if kind == "lm":
        before = preset["lm"]["context"]
        preset["lm"]["context"] = context
        for j in jobs:
            if j.experiment in ("lm", "optim"):
                j.context = context
        return {"context": [before, context]}
    mq = preset["mqar"]
    before = {"seq_len": mq["seq_len"], "num_pairs": list(mq["num_pairs"]), "eval_seq_len": list(mq["eval_seq_len"])}
    mq["num_pairs"] = mqar_pairs(mq["num_pairs"], context)
    mq["eval_seq_len"] = (context, 2 * context)
    mq["seq_len"] = context
    data = f"task:mqar?num_pairs={','.join(map(str, mq['num_pairs']))}&seq_len={context}"
    for j in jobs:
        if j.experiment == "mqar":
            j.context, j.data = context, data
    return {"context": [before["seq_len"], context], "num_pairs": [before["num_pairs"], list(mq["num_pairs"])],
            "eval_seq_len": [before["eval_seq_len"], list(mq["eval_seq_len"])]}


def run_probes(probes: list, args, work: Path, threads: int, gpus: list[str], cap_s: float) -> None:
    """The probes one per GPU at a time (a queue), each with its own timeout, all within cap_s."""
    t_end = time.monotonic() + cap_s
    queue = list(probes)
    lock = threading.Lock()

    def worker(gpu):
        while True:
            with lock:
                if not queue:
                    return
                probe = queue.pop(0)
            left = t_end - time.monotonic()
            if left < 10 or STOPPED.is_set():
                probe.status = "not run (calibration time spent)"
                continue
            train = probe.commands[0]
            train.timeout_s = min(left, 0.75 * cap_s)
            try:
                run_job(probe, (gpu, 0), work, threads)
            except Exception as err:  # noqa: BLE001
                probe.status = f"failed: {type(err).__name__}: {err}"
            probe.ended = time.time()  # read by probe_seconds

    ts = [threading.Thread(target=worker, args=(g,), daemon=True) for g in gpus]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def probe_seconds(probe: Job, work: Path) -> tuple[float | None, str]:
    """Seconds per step of a probe: the median of its timed steps (after the warm-up); else the
    warm-up step (an over-estimate: it compiles and allocates); else, when the run started (its
    `start` event) but no step ended before it was stopped, the time from that start to the stop (a
    lower bound of the warm-up step); else None: no measure (still starting up when the calibration's
    time ran out: such a probe constrains nothing). Returns (seconds, how)."""
    rec = collect(probe, work)
    curve = rec["train"]["curve"]
    per_step = lambda c: probe.batch * probe.context / c[3] if c[3] else None  # noqa: E731
    timed = [x for x in (per_step(c) for c in curve[1:]) if x]
    if timed:
        return sorted(timed)[len(timed) // 2], "timed"
    if curve and per_step(curve[0]):
        return per_step(curve[0]), "warm-up step only"
    started = None
    metrics = work / "jobs" / probe.name / "run" / "metrics.jsonl"
    for line in (metrics.read_text().splitlines() if metrics.is_file() else []):
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if r.get("kind") == "event" and r.get("event") == "start":
            started = r.get("time")
    ended = getattr(probe, "ended", None)
    if started and ended and ended > started:
        return ended - started, "lower bound: no step ended after the start"
    return None, probe.status


def calibrate(jobs: list[Job], args, work: Path, notes: dict, slots: list, threads: int,
              has_max_minutes: bool, heavy_slots: int) -> dict:
    """Time a few steps of the slowest models (Hope, Titans) on each experiment's data, one probe per
    GPU at a time, within CALIBRATION_SHARE of the budget. Then, per experiment: the steps its slowest
    model can finish in its time cap (every model alike, so all see the same tokens); when that is
    under MIN_STEPS, a shorter context for every model alike (scale_ladder); when no context is short
    enough, the slow family is skipped in that experiment (its jobs marked `skipped: ...`).
    Returns the record (results.json's `calibration`)."""
    import copy

    t0 = time.monotonic()
    budget_s = args.budget_minutes * 60
    cap_s = CALIBRATION_SHARE * budget_s
    probes = []
    for model in FAMILIES:  # Hope's probes first: they matter most
        for kind in ("lm", "mqar", "formal"):
            j = next((x for x in jobs if kind_of(x) == kind and x.model == model), None)
            if j is not None:
                probe = copy.deepcopy(j)
                probe.name, probe.experiment, probe.steps = f"probe-{kind}-{model}", "probe", PROBE_STEPS
                probes.append((kind, model, probe))
    if not probes:
        return {}
    for _, _, probe in probes:
        set_commands(probe, args, work, notes, cap_s / 60, has_max_minutes)
        argv = probe.commands[0].argv
        for name, value in (("--eval-batches", "1"), ("--save-every", str(PROBE_STEPS)), ("--log-every", "1"),
                            ("--warmup", "1")):
            argv[argv.index(name) + 1] = value
        if "--max-minutes" in argv:
            argv[argv.index("--max-minutes") + 1] = f"{0.75 * cap_s / 60:.3f}"
    gpus = sorted({g for g, _ in slots}, key=lambda g: [g2 for g2, _ in slots].index(g))
    run_probes([p for _, _, p in probes], args, work, threads, gpus, cap_s)
    measured, seconds = {}, {}  # probe name -> shown value; (kind, family) -> seconds per step
    for kind, model, probe in probes:
        sec, how = probe_seconds(probe, work)
        measured[probe.name] = round(sec, 3) if sec is not None and how == "timed" else \
            (f"{sec:.3f} ({how})" if sec is not None else f"no timing ({how})")
        if sec is not None:
            seconds[(kind, model)] = sec
        if probe.accumulation > 1:  # it ran out of memory at the full batch: start its family's jobs smaller
            for j in jobs:
                if kind_of(j) == kind and family_of(j.model) == model:
                    j.accumulation = probe.accumulation
    spent = time.monotonic() - t0
    left = max(60.0, budget_s * 0.95 - (time.monotonic() - T0))
    gpus_n = max(1, len(gpus))
    contention = args.contention or max(1.0, min(len(slots) / gpus_n, math.ceil(len(jobs) / gpus_n)))
    weight = lambda j: 1.0 if j.heavy else SLOW_WEIGHT if j.slow else LIGHT_WEIGHT  # noqa: E731
    heavy = [j for j in jobs if j.heavy]
    rest = [j for j in jobs if not j.heavy]
    record = {"probe_seconds": round(spent, 1), "cap_seconds": round(cap_s, 1), "seconds_per_step": measured,
              "contention": contention, "min_steps": MIN_STEPS, "safety": SAFETY, "steps": {}, "scale": {},
              "skipped": {}}
    for kind in ("lm", "mqar", "formal"):
        js = [j for j in jobs if kind_of(j) == kind]
        if not js:
            continue
        if kind in ("lm", "mqar"):
            cap = left / max(1, math.ceil(len(heavy) / heavy_slots))
        else:
            free = max(1, len(slots) - min(heavy_slots, len(heavy)))
            cap = min(left, left * free * SLOW_WEIGHT / max(1e-9, sum(weight(j) for j in rest)))
        train_s = cap * train_share(kind) * SAFETY
        planned = js[0].steps
        ctx0 = js[0].context
        # the timed families of this experiment, slowest first (a probe that never ran constrains nothing)
        families = sorted((f for f in FAMILIES if (kind, f) in seconds and any(family_of(j.model) == f for j in js)),
                          key=lambda f: -seconds[(kind, f)])
        ladder = scale_ladder(args.preset, kind)
        chosen, fit = ctx0, None
        while families:
            sec = seconds[(kind, families[0])]
            # launch-bound: the step time grows with the context (the chunk loops), hardly with the batch
            fits = [(ctx, int(train_s / (sec * contention * ctx / ctx0))) for ctx in ladder]
            ok = next(((ctx, n) for ctx, n in fits if n >= MIN_STEPS), None)
            if ok:
                chosen, fit = ok
                break
            why = (f"skipped: too slow for the budget (measured {sec:.2f} s/step at context {ctx0}; fewer than "
                   f"{MIN_STEPS} steps fit its {cap / 60:.1f}-minute cap even at context {ladder[-1]})")
            for j in js:
                if family_of(j.model) == families[0]:
                    j.status = why
            record["skipped"].setdefault(kind, {})[families[0]] = why
            families.pop(0)
        if chosen != ctx0:
            record["scale"][kind] = apply_scale(args.preset, jobs, kind, chosen)
        steps = planned if fit is None else max(1, min(planned, fit))
        for j in js:
            j.steps = steps
        record["steps"][kind] = {"planned": planned, "fit": fit, "steps": steps, "cap_minutes": round(cap / 60, 2),
                                 "context": chosen}
    if "lm" in record["steps"]:  # the optimizer jobs train a fast model on the LM data: the LM's tokens
        for j in jobs:
            if j.experiment == "optim":
                j.steps = record["steps"]["lm"]["steps"]
    return record


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


def _rel(path) -> str:
    """A path under the repository as a relative one (the commands run in the repository root)."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(path)


def _median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", default=None, help="GPU ids, e.g. 0,1,2,3 (default: all visible, else the CPU)")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--slots-per-gpu", type=int, default=6, help="processes sharing one GPU")
    ap.add_argument("--slots", type=int, default=None, help="parallel processes on the CPU (default: cores // 2)")
    ap.add_argument("--budget-minutes", type=float, default=8.0,
                    help="wall-clock budget of the whole run; every job gets budget / waves minutes")
    ap.add_argument("--scale", default="small", choices=tuple(PRESETS))
    ap.add_argument("--heavy-per-gpu", type=int, default=4,
                    help="at most this many jobs of the slow, memory-hungry models (Hope, Titans ...) on one GPU "
                    "at a time (0: no limit; the CPU ignores it)")
    ap.add_argument("--grace-s", type=float, default=45.0,
                    help="after budget + this many seconds, every command still running is ended")
    ap.add_argument("--min-job-minutes", type=float, default=0.5,
                    help="the smallest time cap a job gets, even when the budget is spent")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply every experiment's steps")
    ap.add_argument("--only", default=None, help="a regular expression: run only the jobs whose name matches")
    ap.add_argument("--optim-model", default="transformer_pp", help="the model of the optimizer comparison")
    ap.add_argument("--corpus", default=None, help="the LM corpus (default: .gpu_data/shakespeare/... or shakespeare)")
    ap.add_argument("--records", default=None, help="labelled .jsonl for the continual stream (text, topic)")
    ap.add_argument("--out", default="out/results",
                    help="results.json, commands.sh and logs.tar.gz (the few files to bring back)")
    ap.add_argument("--work", default=None,
                    help="where the runs, checkpoints and logs go (default: the --out folder)")
    ap.add_argument("--keep-checkpoints", action="store_true",
                    help="keep every run's checkpoints (default: delete them once the job's results are in)")
    ap.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=None,
                    help="first time a few steps of Hope and Titans on each experiment's data, and lower each "
                    "experiment's steps (for every model alike) to what the slowest can finish in its time cap "
                    "(default: on for GPUs, off on the CPU)")
    ap.add_argument("--contention", type=float, default=None,
                    help="how many times slower a step runs in the full grid than in its calibration probe "
                    "(default: the processes sharing one GPU, slots per GPU or jobs per GPU if fewer; "
                    "launch-bound models share a GPU about linearly)")
    ap.add_argument("--dry-run", action="store_true", help="write the plan and commands, run nothing")
    args = ap.parse_args(argv)

    global T0
    T0 = time.monotonic()  # the budget counts from here (calibration included)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work).resolve() if args.work else out  # runs, checkpoints, logs
    work.mkdir(parents=True, exist_ok=True)
    if args.device == "cpu" or (args.device == "auto" and not args.gpus and not _cuda_count()):
        slots = [("cpu", k) for k in range(args.slots or max(1, (os.cpu_count() or 2) // 2))]
        threads = max(1, (os.cpu_count() or 2) // len(slots))
        args.device = "cpu"
    else:
        gpus = args.gpus.split(",") if args.gpus else [str(i) for i in range(_cuda_count())]
        slots = [(g, k) for k in range(args.slots_per_gpu) for g in gpus]  # slot k of every GPU, then k+1
        threads = max(1, (os.cpu_count() or 16) // len(slots))
        args.device = "cuda"
    import copy

    args.preset = copy.deepcopy(PRESETS[args.scale])  # the calibration may shorten contexts in it
    jobs, notes = plan(args, work)
    jobs.sort(key=lambda j: (not j.heavy, not j.slow, j.experiment != "lm", j.name))  # slowest first
    waves = max(1, math.ceil(len(jobs) / len(slots)))
    job_minutes = args.budget_minutes * 0.92 / waves  # a margin for start-up and the report
    sys.path.insert(0, str(ROOT))
    from runtime.train.config import FIELDS

    has_max_minutes = "max_minutes" in FIELDS
    heavy_limit = args.heavy_per_gpu if args.heavy_per_gpu and args.device != "cpu" else len(slots)
    heavy_slots = min(len(slots), heavy_limit * len({g for g, _ in slots}))
    calibration = {}
    if args.calibrate is None:
        args.calibrate = args.device != "cpu"
    if args.calibrate and not args.dry_run:
        print(f"calibrating: {PROBE_STEPS} steps of the slowest models on each experiment's data, one per GPU, "
              f"at most {CALIBRATION_SHARE * args.budget_minutes * 60:.0f} s", file=sys.stderr)
        calibration = calibrate(jobs, args, work, notes, slots, threads, has_max_minutes, heavy_slots)
        print(f"calibration: {json.dumps(calibration)}", file=sys.stderr)
    attach_commands(jobs, args, work, notes, job_minutes, has_max_minutes)
    skipped = [j for j in jobs if j.status.startswith("skipped")]
    for j in skipped:
        j.commands, j.minutes = [], None
    header = {"format": "nslang-results", "scale": args.scale, "preset": args.preset,
              "preset_planned": PRESETS[args.scale],
              "steps_scale": args.steps_scale, "budget_minutes": args.budget_minutes, "slots": len(slots),
              "waves": waves, "job_minutes": round(job_minutes, 3), "device": args.device,
              "gpus": sorted({s[0] for s in slots}), "threads_per_job": threads, "optim_model": args.optim_model,
              "argv": [sys.executable, *sys.argv], "started": time.time(), "notes": notes, "work": str(work),
              "train_time_limit": "max_minutes" if has_max_minutes else "timeout", "host": _host(),
              "calibration": calibration, "heavy_per_gpu": heavy_limit}
    def write_commands() -> None:
        (out / "commands.sh").write_text(
            "#!/usr/bin/env bash\n# The commands of every job (bench/results.py wrote this; the time limits are\n"
            "# those each job got when it started). Run from the repository root.\n" + "".join(
                f"\n# {j.name}\n" + "".join(c.shell + "\n" for c in j.commands) for j in jobs))

    write_commands()
    n_heavy = sum(j.heavy for j in jobs)
    print(f"{len(jobs)} jobs on {len(slots)} slots; {n_heavy} heavy (at most {heavy_slots} at once, "
          f"about {args.budget_minutes * 0.95 / max(1, math.ceil(n_heavy / heavy_slots)):.1f} min each), the others "
          f"share the other slots; time caps are set as jobs start; out {out}", file=sys.stderr)
    lock = threading.Lock()
    results: dict[str, dict] = {}

    def write() -> None:
        doc = {**header, "finished": time.time(),
               "jobs": [results.get(j.name) or {"name": j.name, "experiment": j.experiment, "model": j.model,
                                                "status": j.status} for j in jobs]}
        tmp = out / ".results.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n")
        os.replace(tmp, out / "results.json")

    write()
    if args.dry_run:
        print(f"wrote {out / 'commands.sh'} and {out / 'results.json'} (dry run)")
        return 0
    todo: list[Job] = [j for j in jobs if not j.status.startswith("skipped")]
    for j in skipped:  # recorded with their reason, never run
        results[j.name] = collect(j, work)
    write()
    t_start = T0
    deadline = t_start + args.budget_minutes * 60 * 0.95
    weight = lambda j: 1.0 if j.heavy else SLOW_WEIGHT if j.slow else LIGHT_WEIGHT  # noqa: E731
    heavy_running = {g: 0 for g, _ in slots}

    def time_cap(job: Job) -> float:
        """Minutes for a job starting now: a fair share of what is left of the budget. Heavy jobs share
        the slots they may use (heavy_slots); the others share the remaining slots by weight."""
        left = max(0.0, deadline - time.monotonic())
        heavy_left = [j for j in todo if j.heavy] + ([job] if job.heavy else [])
        if job.heavy:  # the heavy jobs left run in rounds of heavy_slots
            share = left / math.ceil(len(heavy_left) / heavy_slots)
        else:
            free = max(1, len(slots) - min(heavy_slots, len(heavy_left)))
            others = [j for j in todo if not j.heavy] + [job]
            share = left * free * weight(job) / sum(weight(j) for j in others)
        return max(min(share, left) / 60, args.min_job_minutes)

    def take(gpu: str) -> Job | None:
        """The next job this slot may start: a heavy one only while its GPU runs fewer than the limit."""
        for i, j in enumerate(todo):
            if not j.heavy or heavy_running[gpu] < heavy_limit:
                return todo.pop(i)
        return None

    def worker(slot):
        gpu = slot[0]
        while True:
            with lock:
                if not todo:
                    return
                job = take(gpu)
                if job is not None:
                    set_commands(job, args, work, notes, time_cap(job), has_max_minutes)
                    heavy_running[gpu] += job.heavy
            if job is None:  # only heavy jobs left and this GPU is full of them: wait for one to end
                time.sleep(1.0)
                continue
            try:
                run_job(job, slot, work, threads)
            except Exception as err:  # noqa: BLE001 - one job's failure never stops the others
                job.status = f"failed: {type(err).__name__}: {err}"
            rec = collect(job, work)
            if not args.keep_checkpoints:  # results.json holds what the report needs
                for ckpt in (work / "jobs" / job.name / "run" / "checkpoints").glob("*.pt"):
                    ckpt.unlink(missing_ok=True)
            with lock:
                heavy_running[gpu] -= job.heavy
                results[job.name] = rec
                write()
                done = len(results)
            cut = " (cut)" if rec["train"].get("cut") else ""
            print(f"[{done}/{len(jobs)} {time.monotonic() - t_start:6.0f}s] {job.name}: {job.status}{cut}, "
                  f"step {rec['train'].get('step')}/{job.steps}, {job.seconds}s on {job.slot}", file=sys.stderr)

    threads_ = [threading.Thread(target=worker, args=(s,), daemon=True) for s in slots]
    import signal

    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(143)))
    for t in threads_:
        t.start()
    hard_stop = t_start + args.budget_minutes * 60 + args.grace_s
    try:
        while any(t.is_alive() for t in threads_):
            for t in threads_:
                t.join(timeout=0.5)
            if time.monotonic() > hard_stop and (todo or RUNNING):  # the budget is spent: end everything
                with lock:
                    for j in todo:
                        j.status = "not started (budget spent)"
                    todo.clear()
                header["stopped"] = "budget spent: the commands still running were ended"
                stop_all()
    except KeyboardInterrupt:
        with lock:
            todo.clear()
        stop_all()
        write()
        raise
    header["wall_s"] = round(time.monotonic() - t_start, 1)
    write()
    write_commands()
    pack_logs(work, out / "logs.tar.gz")
    bad = [j.name for j in jobs if j.status != "ok"]
    print(f"done in {header['wall_s']:.0f}s: {len(jobs) - len(bad)} ok, {len(bad)} not ok"
          + (f" ({', '.join(bad)})" if bad else "") + f"; {out / 'results.json'}")
    return 0


def _cuda_count() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
    except (OSError, subprocess.TimeoutExpired):
        return 0


def _host() -> dict:
    info = {"cpus": os.cpu_count()}
    try:
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=20)
        info["gpus"] = [line.strip() for line in q.stdout.splitlines() if line.strip()]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


if __name__ == "__main__":
    sys.exit(main())
