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

Rerunning some jobs (those a run skipped or cut): `--preset-from OLD/results.json --only REGEX`
trains them at OLD's calibrated contexts and steps, without calibrating, and
`bench/results_report.py OLD NEW -o docs/results.md` lets NEW's records replace OLD's.

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
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
# The parts, one concept each (bench/ is on sys.path: they import each other by plain name):
#   results_data       the data the jobs read (corpus, haystack, continual records)
#   results_plan       the presets, the job list, the Command and Job records
#   results_commands   each job's train and eval commands and time shares
#   results_calibrate  the calibration of the slow models
#   results_run        the parallel runner (time caps, timeouts, out-of-memory retries)
#   results_collect    a job's record in results.json, logs.tar.gz
# Their names stay importable from here.
import results_run  # noqa: E402
from results_calibrate import (CALIBRATION_SHARE, FAMILIES, MIN_STEPS, PROBE_STEPS, SAFETY,  # noqa: E402,F401
                               apply_scale, calibrate, family_of, kind_of, mqar_pairs, probe_seconds, run_probes,
                               scale_ladder)
from results_collect import _median, collect, pack_logs  # noqa: E402,F401
from results_commands import (LIGHT_WEIGHT, SLOW_WEIGHT, attach_commands, eval_commands,  # noqa: E402,F401
                              set_commands, train_share)
from results_data import CARRIED_CORPUS, CARRIED_RECORDS, continual_records, corpus_path, write_haystack  # noqa: E402,F401
from results_plan import (ABLATIONS, HEAVY, LANGUAGES, MAIN_MODELS, NIAH_TASKS, NSLANG, OPTIMIZERS,  # noqa: E402,F401
                          PRESETS, Command, Job, _rel, optimizer_spec, plan)
from results_run import (RUNNING, STOPPED, _has_checkpoint, _run_command, run_all, run_job,  # noqa: E402,F401
                         stop_all)


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
                    "(default: 0.5 x the processes sharing one GPU, slots per GPU or jobs per GPU if fewer, "
                    "as measured on 4x H100)")
    ap.add_argument("--preset-from", default=None, metavar="RESULTS_JSON",
                    help="train at the scale of an earlier run (its calibrated contexts and steps) without "
                         "calibrating: to rerun some of its jobs (--only) comparably; bench/results_report.py "
                         "merges the two folders")
    ap.add_argument("--dry-run", action="store_true", help="write the plan and commands, run nothing")
    ap.add_argument("--cuda-graphs", default=None, metavar="REGEX",
                    help="train the models whose name matches with --cuda-graphs (e.g. 'hope': 7.7-8.5x "
                    "faster steps on an H100; the calibration probes use it too)")
    ap.add_argument("--recompute-chunks", default=None, metavar="REGEX",
                    help="train the models whose name matches with --recompute-chunks (less memory)")
    args = ap.parse_args(argv)

    results_run.T0 = time.monotonic()  # the budget counts from here (calibration included)
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
    if args.preset_from:
        args.preset, args.calibrate = preset_of(Path(args.preset_from)), False
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
    return run_all(jobs, skipped, header, args, out, work, slots, threads, heavy_limit, heavy_slots,
                   has_max_minutes, notes)


def preset_of(results_json: Path) -> dict:
    """The preset an earlier run trained with: its contexts after calibration, and the steps the
    calibration gave each experiment (the preset keeps the planned ones)."""
    try:
        prev = json.loads(results_json.read_text())
        preset = prev["preset"]
    except (OSError, ValueError, KeyError) as err:
        raise SystemExit(f"error: --preset-from {results_json}: not a bench/results.py results.json ({err})")
    for kind, fit in prev.get("calibration", {}).get("steps", {}).items():
        preset[kind]["steps"] = fit["steps"]
    for kind in ("mqar",):  # JSON lists back to the tuples the plan expects
        for key in ("num_pairs", "eval_seq_len"):
            preset[kind][key] = tuple(preset[kind][key])
    preset["niah"]["lengths"] = tuple(preset["niah"]["lengths"])
    return preset


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
