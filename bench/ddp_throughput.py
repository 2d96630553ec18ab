"""Multi-GPU training throughput (issue 4): each model trained briefly by `nslang train` on 1 GPU,
then through `torchrun --nproc_per_node N` with DDP and with FSDP2; one table of total tokens/s,
the scaling factor over 1 GPU, and peak memory per GPU.

    python bench/ddp_throughput.py [SPEC:DIMxDEPTH ...] [--nproc 2] [--steps 30] [--context 1024]
        [--batch-size 8] [--log-every 10] [--max-minutes 2] [--device cuda|cpu] [--out runs/ddp]
        [--export DIR]

Default models: hope:512x4 (31.9M parameters) and transformer_pp:768x12 (85.2M). Every run uses
the same per-process batch (weak scaling: N processes train N times the tokens per step), the
carried byte-level corpus (.gpu_data/shakespeare/...) when present, each spec's own optimizer,
bf16 autocast on CUDA, a validation pass only at the end (one batch). Tokens/s is read from the
runs' metrics.jsonl: the mean of the logged training windows after the first (which holds the
warm-up), over all processes (the trainer counts batch x context x accumulation x world per
step). Peak memory is rank 0's `torch.cuda.max_memory_allocated` (ranks hold the same shapes
under DDP; under FSDP2 the shards are even). Each run also has a `max_minutes` guard, so a slow
model is cut (and says so in the table) rather than holding up the others.

The children get NCCL_NVLS_ENABLE=0 (NVLink multicast stays off on the lent machines). With
--device cpu the same mechanics run on gloo: a smoke test of the script, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.curves import CARRIED_CORPUS, parse_model  # noqa: E402

DEFAULT_MODELS = ["hope:512x4", "transformer_pp:768x12"]


def run_one(args, label: str, spec: Path, dim: int, depth: int, nproc: int, strategy: str) -> dict:
    name = f"{label}-{'1gpu' if nproc == 1 else f'{nproc}x-{strategy}'}"
    out = Path(args.out) / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    train = ["-m", "nslang.cli", "train", str(spec), "--set", f"dim={dim}", "--set", f"depth={depth}",
             "--set", f"context={args.context}", "--context", str(args.context),
             "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup", "5",
             "--log-every", str(args.log_every), "--eval-every", "0", "--eval-batches", "1",
             "--save-every", str(args.steps), "--keep", "1", "--data", args.data, "--device", args.device,
             "--out", str(out), "--no-progress", "--max-minutes", f"{args.max_minutes:g}"]
    if args.compile:
        train.append("--compile")
    if nproc == 1:
        cmd = [sys.executable, *train]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               *train, "--parallel", strategy]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if args.device == "cpu":
        env["OMP_NUM_THREADS"] = "1"
    unit = "CPU proc" if args.device == "cpu" else "GPU"
    row = {"model": label, "nproc": nproc,
           "setup": f"1 {unit}" if nproc == 1 else f"{nproc} {unit} {'DDP' if strategy == 'ddp' else 'FSDP2'}"}
    start = time.monotonic()
    with open(out / "train.log", "w") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        try:
            code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=60 * args.max_minutes + 180).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    row["wall_s"] = time.monotonic() - start
    for ckpt in (out / "checkpoints").glob("*.pt"):
        ckpt.unlink()  # only the metrics matter here; checkpoints of big models fill the disk
    from runtime.train.metrics import read

    records = read(out / "metrics.jsonl")
    trains = [r for r in records if r.get("kind") == "train"]
    tput = [r["tokens_per_s"] for r in trains[1:] or trains
            if isinstance(r.get("tokens_per_s"), (int, float)) and math.isfinite(r["tokens_per_s"])]
    peaks = [r["peak_memory_gib"] for r in trains if "peak_memory_gib" in r]
    cut = any(r.get("event") == "time_limit" for r in records)
    if code != 0 or not tput:
        text = (out / "train.log").read_text(errors="replace").strip().splitlines()
        errors = [line for line in text if line.startswith("error:") or "Error" in line]
        row["error"] = f"exit {code}: {(errors or text or ['no output'])[-1][:120]}"
        return row
    row.update(tokens_per_s=sum(tput) / len(tput), steps=trains[-1]["step"], cut=cut,
               peak_gib=max(peaks) if peaks else None)
    return row


def table(rows: list[dict], args) -> str:
    head = (f"context {args.context}, {args.batch_size} sequences per process per step, {args.steps} steps "
            f"(tokens/s: mean of the logged windows after the first), {args.device}, data {args.data}")
    lines = [head, "", "| model | setup | tokens/s (total) | scaling vs 1 GPU | per GPU | peak GiB per GPU | steps |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    base = {r["model"]: r.get("tokens_per_s") for r in rows if r["nproc"] == 1}
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['setup']} | {r['error']} | | | | |")
            continue
        one = base.get(r["model"])
        scale = f"{r['tokens_per_s'] / one:.2f}x" if one else "-"
        per = f"{r['tokens_per_s'] / r['nproc'] / one:.0%}" if one else "-"
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        steps = f"{r['steps']}" + (" (cut by max-minutes)" if r["cut"] else "")
        lines.append(f"| {r['model']} | {r['setup']} | {r['tokens_per_s']:,.0f} | {scale} | {per} | {peak} | {steps} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", default=DEFAULT_MODELS, help="SPEC:DIMxDEPTH, e.g. hope:512x4")
    p.add_argument("--nproc", type=int, default=2, help="processes (GPUs) of the multi-GPU runs")
    p.add_argument("--strategies", default="ddp,fsdp", help="comma-separated: ddp, fsdp")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--context", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=8, help="sequences per process per step")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--max-minutes", type=float, default=2.0, help="time guard of each run")
    p.add_argument("--device", default="cuda", help="cuda or cpu (gloo, a smoke test)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--data", default=None, help="corpus (default: the carried shakespeare bytes when present)")
    p.add_argument("--out", default=str(ROOT / "runs" / "ddp"))
    p.add_argument("--export", default=None, help="copy the table and each run's metrics and log here")
    args = p.parse_args(argv)
    if args.data is None:
        args.data = str(CARRIED_CORPUS) if (CARRIED_CORPUS / "meta.json").is_file() else "shakespeare"
    if args.device != "cpu":
        import torch

        found = torch.cuda.device_count()
        if found < args.nproc:
            print(f"warning: {found} CUDA device(s), fewer than --nproc {args.nproc}", file=sys.stderr)
    models = [parse_model(m) for m in args.models]
    if any(batch for *_, batch in models):
        raise SystemExit("error: ddp_throughput.py sizes every run by --batch-size (per process); "
                         "give models as SPEC:DIMxDEPTH")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    rows = []
    for label, spec, dim, depth, _ in models:
        for nproc, strategy in [(1, "none"), *[(args.nproc, s) for s in strategies]]:
            rows.append(run_one(args, label, spec, dim, depth, nproc, strategy))
            r = rows[-1]
            print(f"{label} {r['setup']}: " + (r["error"] if "error" in r else f"{r['tokens_per_s']:,.0f} tokens/s")
                  + f" ({r['wall_s']:.0f} s)", file=sys.stderr, flush=True)
    text = table(rows, args)
    out = Path(args.out)
    (out / "ddp_throughput.md").write_text(text + "\n")
    (out / "ddp_throughput.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(text)
    if args.export:
        dest = Path(args.export)
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("ddp_throughput.md", "ddp_throughput.json"):
            shutil.copy2(out / name, dest / name)
        for d in out.iterdir():
            if d.is_dir():
                for name in ("metrics.jsonl", "train.log", "run.json"):
                    if (d / name).is_file():
                        (dest / d.name).mkdir(exist_ok=True)
                        shutil.copy2(d / name, dest / d.name / name)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
