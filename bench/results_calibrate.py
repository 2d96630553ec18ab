"""bench/results.py's calibration (on GPUs, before the grid): a few timed steps of the slowest models
(Hope, Titans) on each experiment's data; then each experiment's steps, a shorter context for every
model alike, or the slow family skipped, so that the grid fits the budget."""
from __future__ import annotations

import json
import math
import sys
import threading
import time
from pathlib import Path

import results_run
from results_collect import collect
from results_commands import LIGHT_WEIGHT, SLOW_WEIGHT, set_commands, train_share
from results_plan import ABLATIONS, Job
from results_run import STOPPED, run_job

ROOT = Path(__file__).resolve().parent.parent

PROBE_STEPS = 3  # one warm-up step (compiles, allocates), then two timed ones
CALIBRATION_SHARE = 0.15  # the calibration's hard cap, of the budget; the jobs get what is left
MIN_STEPS = 20  # an experiment whose slowest model cannot train this many steps in its cap is shrunk
SAFETY = 0.8  # of a job's training minutes (final validation and checkpoint come on top)
# A step in the full grid against its probe alone, per process sharing the GPU. Measured on 4x H100
# (bench/RESULTS.md, third device session, steps against the probes' s/step at the same context):
# Titans 2.4x with 6 processes per GPU, Hope 1.35x with 4, so 0.5 per process (3x at 6, 2x at 4)
# errs on the slow side. The first guess, 1 per process, skipped the whole Hope family.
CONTENTION_PER_PROCESS = 0.5
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
    left = max(60.0, budget_s * 0.95 - (time.monotonic() - results_run.T0))
    gpus_n = max(1, len(gpus))
    sharing = min(len(slots) / gpus_n, math.ceil(len(jobs) / gpus_n))  # processes per GPU
    contention = args.contention or max(1.0, CONTENTION_PER_PROCESS * sharing)
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
