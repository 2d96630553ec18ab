"""bench/results.py's plan: the scales (PRESETS), the job list (model x experiment) and the
Command and Job records that the calibration, the runner and results.json share."""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from results_data import continual_records, corpus_path, write_haystack

ROOT = Path(__file__).resolve().parent.parent

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


def _rel(path) -> str:
    """A path under the repository as a relative one (the commands run in the repository root)."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(path)
