"""bench/results.py's runner: each job's commands as subprocesses (a process group each, a hard
timeout each, an out-of-memory retry of training through bench/_retry.py), and the parallel run of
the grid on its slots: time caps handed out as jobs start, at most heavy_per_gpu heavy jobs per GPU,
results.json and commands.sh written as jobs end, everything still running ended once the budget
is spent."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from _retry import has_checkpoint, micro_batch, retry_note, run_with_retries
from results_collect import collect, pack_logs
from results_commands import LIGHT_WEIGHT, SLOW_WEIGHT, set_commands
from results_plan import Command, Job

ROOT = Path(__file__).resolve().parent.parent

# when the budget started: set again by results.main, read by the calibration as results_run.T0
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


def run_all(jobs: list[Job], skipped: list[Job], header: dict, args, out: Path, work: Path, slots: list,
            threads: int, heavy_limit: int, heavy_slots: int, has_max_minutes: bool, notes: dict) -> int:
    """Write commands.sh and results.json, then (unless a dry run) run the jobs on the slots within
    the budget, which counts from T0 (set by main), writing results.json as each job ends."""
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
