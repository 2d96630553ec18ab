"""Validation-loss curves of models trained for a fixed wall-clock budget, side by side (issue 4):
by default a ~30M Hope against the same-size Transformer++ on the packaged corpus, each on its own
GPU at the same time, then one plot (validation loss against wall-clock minutes and against
training tokens) and a markdown table.

    python bench/curves.py [SPEC:DIMxDEPTH[:BATCHxACCUM] ...] [--gpus 0,1] [--max-minutes 9] [--context 512]
        [--batch-size 16] [--accumulation 1] [--lr 1e-3] [--warmup 50] [--eval-every 3,200] [--data DIR_OR_NAME]
        [--out runs/curves] [--export DIR] [--device cuda|cpu]
    python bench/curves.py --plot-only runs/curves      # redraw from the runs' metrics.jsonl

Default models: hope:512x4 (31.9M parameters) and transformer_pp:512x10 (31.6M), byte tokenizer,
context 512, 16 sequences per step (8,192 tokens; Hope's as 2 micro-batches of 8, which fit an
80 GB H100: its 16 ran out of memory at step 1, 77.7 of 79.2 GiB), AdamW from each spec with the same peak lr,
warmup, then a constant learning rate: the runs stop on time (`max_minutes`), not on a step count,
so a decaying schedule would be cut at an arbitrary point (give --steps N for a cosine schedule
over N steps instead). Validation (4 batches of the held-out split) runs every 3 Hope steps and
every 200 Transformer++ steps by default, so that both curves get points at similar times (on an
H100, Transformer++ 512x10 ran ~24 steps/s, 208,838 tokens/s; Hope 512x4 ~400-800 tokens/s, i.e.
10-20 s per 8,192-token step); its
time counts in the wall-clock axis of both. Each model is trained by `nslang train` in its own process (one per GPU of
--gpus, through CUDA_VISIBLE_DEVICES); everything this script reports comes from the runs'
metrics.jsonl (runtime/train/metrics.py), never from their console output.

Out of memory: a run that exits with nslang train's out-of-memory status (4) is started again with
half the micro-batch and twice the accumulation (the same tokens per step), down to a micro-batch of
1, within the same time (bench/_retry.py, shared with bench/results.py): on the H100s, Hope 512x4 at
context 512 x 16 died at step 1 (77.7 of 79.2 GiB: the exact CMS signal keeps a second-order graph
per 16-token segment). A model may also be given its own micro-batch and accumulation from the
start, `hope:512x4:4x4` (4 sequences x 4 micro-batches per step); the others take --batch-size and
--accumulation. The table shows the micro-batch x accumulation each run ended with.

`max_minutes` counts from each run's first step; compiling, loading the corpus and the final
validation come on top (about half a minute), so the default 9 keeps one call under 10 minutes.

The table: parameters (of the compiled package), steps, training tokens seen, final validation
loss (nats/token and bits/byte), training tokens/s (the mean of the logged windows, evaluation
excluded) and peak GPU memory. --export DIR copies the plot, the table and each run's metrics,
run.json and console log (not the checkpoints) into DIR, e.g. $OUT on the device machine.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_MODELS = ["hope:512x4:8x2", "transformer_pp:512x10"]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _retry import retry_note, run_with_retries  # noqa: E402
CARRIED_CORPUS = ROOT / ".gpu_data" / "shakespeare" / "byte-val0.01-seed0"
BIG = 10_000_000  # the step count of a run that stops on time


def parse_model(text: str) -> tuple[str, Path, int, int, tuple[int, int] | None]:
    """`hope:512x4`, `hope:512x4:4x4` or `path/to/x.nsam:256x2` -> (label, spec path, dim, depth,
    (micro-batch, accumulation) or None for the command line's)."""
    m = re.fullmatch(r"(.+?):(\d+)x(\d+)(?::(\d+)x(\d+))?", text.strip(), re.I)
    if not m or min(int(v) for v in m.groups()[1:] if v is not None) < 1:
        raise SystemExit(f"error: model {text!r} is not SPEC:DIMxDEPTH[:BATCHxACCUM] "
                         f"(e.g. hope:512x4 or hope:512x4:4x4)") from None
    spec, dim, depth = m.group(1), int(m.group(2)), int(m.group(3))
    batch = (int(m.group(4)), int(m.group(5))) if m.group(4) else None
    path = Path(spec)
    if not path.is_file():
        path = ROOT / "specs" / f"{spec}.nsam"
        if not path.is_file():
            raise SystemExit(f"error: no spec {spec} (neither a file nor specs/{spec}.nsam)")
    return f"{path.stem}-{dim}x{depth}", path, dim, depth, batch


def count_params(package_dir: Path) -> int | None:
    """Parameters of a compiled package, built on the meta device (no memory, no GPU)."""
    try:
        import torch

        from runtime.train.build import open_package

        pkg = open_package(package_dir)
        with torch.device("meta"):
            model = pkg.Model(pkg.Config())
        return sum(p.numel() for p in model.parameters())
    except Exception as err:  # a missing count must not lose the curves
        print(f"warning: cannot count the parameters of {package_dir}: {err}", file=sys.stderr)
        return None


def train_command(args, spec: Path, dim: int, depth: int, out: Path, eval_every: int,
                  batch: tuple[int, int] | None = None) -> list[str]:
    micro, accumulation = batch or (args.batch_size, args.accumulation)
    cmd = [sys.executable, "-m", "nslang.cli", "train", str(spec),
           "--set", f"dim={dim}", "--set", f"depth={depth}", "--set", f"context={args.context}",
           "--context", str(args.context), "--batch-size", str(micro), "--accumulation", str(accumulation),
           "--data", args.data,
           "--tokenizer", "byte", "--device", args.device, "--out", str(out), "--no-progress",
           "--warmup", str(args.warmup), "--eval-every", str(eval_every),
           "--eval-batches", str(args.eval_batches), "--log-every", str(args.log_every),
           "--max-minutes", f"{args.max_minutes:g}", "--seed", str(args.seed)]
    if args.lr:
        cmd += ["--lr", f"{args.lr:g}"]
    if args.steps:
        cmd += ["--steps", str(args.steps), "--schedule", "cosine", "--save-every", str(args.steps)]
    else:
        cmd += ["--steps", str(BIG), "--schedule", "constant", "--save-every", str(BIG)]
    if args.precision:
        cmd += ["--precision", args.precision]
    if args.compile:
        cmd += ["--compile"]
    if args.cuda_graphs and re.search(args.cuda_graphs, spec.stem):
        cmd += ["--cuda-graphs"]
    if args.recompute_chunks and re.search(args.recompute_chunks, spec.stem):
        cmd += ["--recompute-chunks"]
    return cmd


def launch(args, models) -> dict[str, int]:
    """Start every run at once (one per GPU), wait for all; return label -> exit status. A run that
    runs out of memory is started again with half the micro-batch and twice the accumulation (the
    same tokens per step) within the same time limit (bench/_retry.py)."""
    import threading

    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else []
    if args.device != "cpu" and gpus and len(gpus) < len(models):
        raise SystemExit(f"error: {len(models)} models need {len(models)} GPUs in --gpus, got {args.gpus!r}")
    limit = 60 * args.max_minutes + args.grace
    start = time.monotonic()
    codes: dict[str, int] = {}

    def one(i, label, spec, dim, depth, batch):
        out = Path(args.out) / label
        resume = args.resume and any((out / "checkpoints").glob("*.pt"))
        if out.exists() and not resume:
            shutil.rmtree(out)  # a benchmark starts fresh
        out.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NCCL_NVLS_ENABLE": "0",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        if args.device == "cpu":
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // len(models)))
        elif gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i]
        cmd = train_command(args, spec, dim, depth, out, args.eval_every[i], batch) + (["--resume"] if resume else [])
        print(f"{label}: started on {'GPU ' + gpus[i] if gpus and args.device != 'cpu' else args.device}"
              f" -> {out}", file=sys.stderr, flush=True)

        def attempt(argv):
            t0 = time.monotonic()
            with open(out / "train.log", "a") as log:
                log.write(" ".join(argv) + "\n")
                log.flush()
                proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
                try:
                    return proc.wait(timeout=max(1.0, limit - (time.monotonic() - start))), \
                        time.monotonic() - t0, False
                except subprocess.TimeoutExpired:
                    proc.terminate()  # SIGTERM: only our own child
                    try:
                        rc = proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        rc = proc.wait()
                    print(f"{label}: still running {limit:.0f} s after the start: stopped", file=sys.stderr)
                    return rc, time.monotonic() - t0, True

        def on_retry(argv):
            print(f"{label}: {retry_note(argv)}", file=sys.stderr, flush=True)

        codes[label] = run_with_retries(cmd, out, attempt, on_retry)
        status = "done" if codes[label] == 0 else f"exit {codes[label]}"
        print(f"{label}: {status} ({time.monotonic() - start:.0f} s)", file=sys.stderr, flush=True)
        if codes[label] != 0:
            tail = (out / "train.log").read_text(errors="replace").splitlines()[-15:]
            print("\n".join("    " + line for line in tail), file=sys.stderr)

    threads = [threading.Thread(target=one, args=(i, *m), daemon=True) for i, m in enumerate(models)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for label, *_ in models:  # a run whose thread failed before its process ended
        codes.setdefault(label, -1)
    return codes


def training_minutes(records: list[dict]):
    """record -> wall-clock minutes of training before it, from the first start: the gap between
    one session's last record and a `--resume` in a later call is left out."""
    offset, begin, last = 0.0, None, None
    at: dict[int, float] = {}
    for r in records:
        t = r.get("time")
        if t is None:
            continue
        if r.get("kind") == "event" and r.get("event") in ("start", "resume"):
            if begin is not None and last is not None:
                offset += last - begin
            begin = t
        if begin is not None:
            at[id(r)] = offset + t - begin
        last = t
    return lambda r: at[id(r)] / 60 if id(r) in at else float("nan")


def summarize(run: Path) -> dict:
    """One run's curve and numbers from its metrics.jsonl."""
    from runtime.train.metrics import read, series

    records = read(run / "metrics.jsonl")
    minutes = training_minutes(records)
    vals = {}
    for r in records:
        if r.get("kind") == "val":
            vals[r["step"]] = r
    vals = [vals[s] for s in sorted(vals)]
    trains = [r for r in records if r.get("kind") == "train"]
    _, tput = series(records, "train", "tokens_per_s")
    tput = [t for t in tput[1:] or tput if isinstance(t, (int, float)) and math.isfinite(t)]  # first window: warm-up
    peaks = [r["peak_memory_gib"] for r in trains if "peak_memory_gib" in r]
    ends = [r for r in records if r.get("kind") == "event" and r.get("event") == "end"]
    info = {}
    if (run / "run.json").is_file():
        info = json.loads((run / "run.json").read_text())
    config = info.get("config") or {}
    retries = []
    if (run / "oom_retries.json").is_file():
        try:
            retries = json.loads((run / "oom_retries.json").read_text())
        except json.JSONDecodeError:
            pass
    return {
        "label": run.name,
        "model": info.get("model", run.name),
        "params": count_params(run / "package") if (run / "package").is_dir() else logged_params(run),
        "minutes": [minutes(v) for v in vals],
        "tokens": [v["tokens"] for v in vals],
        "val_loss": [v["val_loss"] for v in vals],
        "steps": trains[-1]["step"] if trains else 0,
        "tokens_seen": trains[-1]["tokens"] if trains else 0,
        "tokens_per_s": sum(tput) / len(tput) if tput else float("nan"),
        "peak_gib": max(peaks) if peaks else None,
        "stopped": ends[-1].get("reason", "steps") if ends else "unfinished",
        "device": info.get("device", "?"),
        "batch_size": config.get("batch_size"),  # the micro-batch of the last attempt
        "accumulation": config.get("accumulation"),
        "oom_retries": len(retries),
    }


def logged_params(run: Path) -> float | None:
    """The parameter count `nslang train` printed (train.log), for an exported run without its package."""
    log = run / "train.log"
    found = re.search(r"([\d.]+)M parameters", log.read_text(errors="replace")) if log.is_file() else None
    return float(found.group(1)) * 1e6 if found else None


def table(rows: list[dict], args) -> str:
    settings = (f"context {args.context}, batch {args.batch_size} x accumulation {args.accumulation} (unless a "
                f"model's own), byte tokenizer, data {args.data}, "
                f"max {args.max_minutes:g} min per run, lr {args.lr or 'spec'}, warmup {args.warmup}, "
                f"{'cosine over ' + str(args.steps) + ' steps' if args.steps else 'constant lr'}")
    if getattr(args, "plot_only", None):  # the settings are the runs' own (run.json), not this command's
        settings = "redrawn from the runs' metrics; each run's settings are in its run.json"
    lines = [settings, "",
             "| model | params | micro-batch x accum | steps | tokens seen | final val loss | bits/byte | tokens/s "
             "| peak GiB | stopped by |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        final = r["val_loss"][-1] if r["val_loss"] else float("nan")
        params = f"{r['params'] / 1e6:.1f}M" if r["params"] else "?"
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        mb = f"{r.get('batch_size')} x {r.get('accumulation')}" if r.get("batch_size") else "?"
        if r.get("oom_retries"):
            mb += f" ({r['oom_retries']} OOM {'retry' if r['oom_retries'] == 1 else 'retries'})"
        lines.append(f"| {r['label']} | {params} | {mb} | {r['steps']:,} | {r['tokens_seen'] / 1e6:.2f}M | {final:.4f} | "
                     f"{final / math.log(2):.3f} | {r['tokens_per_s']:,.0f} | {peak} | {r['stopped']} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"warning: no matplotlib here: {path} not drawn; redraw elsewhere with "
              f"`python bench/curves.py --plot-only {path.parent}`", file=sys.stderr)
        return None
    fig, (ax_t, ax_n) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for r in rows:
        ax_t.plot(r["minutes"], r["val_loss"], "o-", markersize=3, label=r["label"])
        ax_n.plot([t / 1e6 for t in r["tokens"]], r["val_loss"], "o-", markersize=3, label=r["label"])
    ax_t.set_xlabel("wall-clock minutes (from the first step)")
    ax_n.set_xlabel("training tokens (millions)")
    ends = [max(r["tokens"]) for r in rows if r["tokens"]]
    if len(ends) > 1 and max(ends) > 20 * min(ends):  # one run saw far fewer tokens: keep it readable
        ax_n.set_xscale("log")
        ax_n.set_xlabel("training tokens (millions, log scale)")
    ax_t.set_ylabel("validation loss (nats / token)")
    for ax in (ax_t, ax_n):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(run_dirs: list[Path], args, out: Path) -> str:
    rows = [summarize(d) for d in run_dirs if (d / "metrics.jsonl").is_file()]
    text = table(rows, args)
    (out / "curves.md").write_text(text + "\n")
    (out / "curves.json").write_text(json.dumps(rows, indent=1) + "\n")
    devices = sorted({r["device"] for r in rows})
    plot(rows, out / "curves.png", f"validation loss, {' vs '.join(r['label'] for r in rows)} ({', '.join(devices)})")
    return text


def export(run_dirs: list[Path], out: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("curves.md", "curves.json", "curves.png"):
        if (out / name).is_file():
            shutil.copy2(out / name, dest / name)
    for d in run_dirs:
        for name in ("metrics.jsonl", "run.json", "train.log", "loss.png", "oom_retries.json"):
            if (d / name).is_file():
                (dest / d.name).mkdir(exist_ok=True)
                shutil.copy2(d / name, dest / d.name / name)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", default=DEFAULT_MODELS, help="SPEC:DIMxDEPTH[:BATCHxACCUM], e.g. hope:512x4 or hope:512x4:8x2")
    p.add_argument("--gpus", default="0,1", help="one GPU per model, comma-separated (default 0,1)")
    p.add_argument("--device", default="cuda", help="cuda (one process per GPU of --gpus) or cpu")
    p.add_argument("--max-minutes", type=float, default=9.0)
    p.add_argument("--grace", type=float, default=120.0, help="seconds past max-minutes before a run is stopped")
    p.add_argument("--context", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=16, help="micro-batch (sequences) of every model "
                   "without its own SPEC:DIMxDEPTH:BATCHxACCUM")
    p.add_argument("--accumulation", type=int, default=1, help="micro-batches per step (gradient accumulation)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak lr for every model (0: each spec's own)")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--steps", type=int, default=0, help="a cosine schedule over this many steps (0: constant lr)")
    p.add_argument("--eval-every", default=None,
                   help="steps between validation passes: one number, or one per model, comma-separated "
                   "(default: 3,200 for the default Hope and Transformer++, whose steps differ ~200x in speed on an H100; "
                   "else 50)")
    p.add_argument("--eval-batches", type=int, default=4)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default=None, choices=["auto", "bf16", "fp32"])
    p.add_argument("--compile", action="store_true", help="torch.compile each model")
    p.add_argument("--cuda-graphs", default=None, metavar="REGEX",
                   help="nslang train --cuda-graphs for the models whose spec name matches (e.g. 'hope')")
    p.add_argument("--recompute-chunks", default=None, metavar="REGEX",
                   help="nslang train --recompute-chunks for the models whose spec name matches")
    p.add_argument("--data", default=None, help="corpus name or prepared folder (default: the carried "
                   ".gpu_data/shakespeare/byte-val0.01-seed0 when present, else shakespeare)")
    p.add_argument("--out", default=str(ROOT / "runs" / "curves"))
    p.add_argument("--export", default=None, help="copy the plot, table and each run's metrics here")
    p.add_argument("--plot-only", default=None, metavar="DIR", help="only redraw from the runs in DIR")
    p.add_argument("--resume", action="store_true",
                   help="continue each run in --out that has a checkpoint, for another --max-minutes (a "
                   "longer curve over several device calls on a machine that stays up); the plot's "
                   "minutes leave out the time between the calls")
    args = p.parse_args(argv)
    if args.data is None:
        args.data = str(CARRIED_CORPUS) if (CARRIED_CORPUS / "meta.json").is_file() else "shakespeare"
    if args.plot_only:
        out = Path(args.plot_only)
        runs = sorted(d for d in out.iterdir() if (d / "metrics.jsonl").is_file())
        print(report(runs, args, out))
        return 0
    models = [parse_model(m) for m in args.models]
    if args.eval_every is None:
        args.eval_every = "3,200" if args.models == DEFAULT_MODELS else "50"
    every = [int(v) for v in str(args.eval_every).split(",") if v.strip()]
    if len(every) == 1:
        every *= len(models)
    if len(every) != len(models):
        raise SystemExit(f"error: --eval-every gives {len(every)} values for {len(models)} models")
    args.eval_every = every
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    per_step = {label: (b or (args.batch_size, args.accumulation)) for label, _, _, _, b in models}
    if len({m * a for m, a in per_step.values()}) > 1:
        print("warning: the models see different tokens per step: "
              + ", ".join(f"{k} {m} x {a}" for k, (m, a) in per_step.items()), file=sys.stderr)
    codes = launch(args, models)
    runs = [out / label for label, *_ in models]
    print(report(runs, args, out))
    if args.export:
        export(runs, out, Path(args.export))
    return 0 if all(c == 0 for c in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
