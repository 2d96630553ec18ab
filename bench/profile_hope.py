"""Where a training step of Hope goes: launches, GPU busy time, or neither (issue 5's "profile").

    python bench/profile_hope.py [VARIANT ...] [--dim 256] [--depth 2] [--context 256] [--batch-size 4]
        [--budget-s 120] [--device auto]

A VARIANT is a spec name, optionally with `+compile` (per-chunk steps through torch.compile, as
`nslang train --compile`) and `+graph` (forward and backward replayed as a CUDA graph, as
`nslang train --cuda-graphs`): default transformer_pp, self_modifying_titans(+compile),
hope_two_pass(+compile, +graph, +compile+graph), hope(+graph). Each is built and stepped
exactly as bench/train_throughput.py does (fwd, bwd, clipping, outer optimizer, bf16 autocast on
CUDA). Per variant: one untimed step (compilation, autotuning), one timed step with the device
synchronised, then one step under torch.profiler, from which the table counts

- `ops`: PyTorch operator calls on the host (aten::*, each one dispatch from Python/C++),
- `kernels`: GPU kernel launches, and `GPU ms`: their summed device time,
- `busy`: GPU ms / wall ms of the timed step. Near 100%: the arithmetic or the bytes bound the
  step; far below: the host cannot issue work fast enough (launch-bound), and fusing operations
  (fewer, larger kernels) is what would speed it up.

The default shape is small so that the profiler's bookkeeping stays cheap; every cost counted
here grows linearly with depth x context / chunk, so the ratios carry to the 768 x 12 x 2048 run
of bench/model.py. No assertion: this is a benchmark.
"""
from __future__ import annotations

import argparse
import collections
import gc
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.autograd import DeviceType  # noqa: E402

from bench.model import _OutOfTime, alarm  # noqa: E402
from bench.train_throughput import _find, build  # noqa: E402
from runtime.layers.common import use_compiled_ops  # noqa: E402
from runtime.train.distributed import pick_device  # noqa: E402

DEFAULT = ["transformer_pp", "self_modifying_titans", "self_modifying_titans+compile", "hope_two_pass",
           "hope_two_pass+compile", "hope_two_pass+graph", "hope_two_pass+compile+graph", "hope", "hope+graph"]
FLAGS = ("compile", "graph")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_variant(variant: str, args, device: torch.device, workdir: Path) -> dict:
    name, *flags = variant.split("+")
    overrides = {"dim": args.dim, "depth": args.depth, "context": args.context}
    if args.heads:
        overrides["heads"] = args.heads
    row, one_step = build(_find(name), overrides, device, workdir, args.batch_size, args.context,
                          compile="compile" in flags, cuda_graphs="graph" in flags)
    out = {"variant": variant, "params": row["params"]}
    try:
        with alarm(args.budget_s):
            t0 = time.perf_counter()
            one_step(1)
            _sync(device)
            out["first_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            one_step(2)
            _sync(device)
            out["step_s"] = time.perf_counter() - t0
            activities = [torch.profiler.ProfilerActivity.CPU]
            if device.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            with torch.profiler.profile(activities=activities) as prof:
                one_step(3)
                _sync(device)
    except _OutOfTime:
        out["error"] = f"cut by the {args.budget_s:.0f} s budget"
        return out
    finally:
        use_compiled_ops(False)  # the next variant decides for itself
    ops, kernels, gpu_us = collections.Counter(), 0, 0.0
    for evt in prof.events():
        if evt.device_type == DeviceType.CUDA:
            kernels += 1
            gpu_us += getattr(evt, "device_time", None) or getattr(evt, "cuda_time", 0.0)
        elif evt.name.startswith("aten::"):
            ops[evt.name] += 1
    out.update(ops=sum(ops.values()), kernels=kernels, gpu_ms=gpu_us / 1000,
               top=", ".join(f"{k[6:]} {v}" for k, v in ops.most_common(5)))
    return out


def table(rows: list[dict], args, device: torch.device) -> str:
    tokens = args.batch_size * args.context
    head = (f"dim {args.dim}, depth {args.depth}, context {args.context}, batch {args.batch_size}, "
            f"heads {args.heads or 'of each spec'} "
            f"({tokens} tokens/step), {device} "
            f"({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), torch {torch.__version__}")
    lines = [head, "", "| variant | params | first step s | step ms | tokens/s | ops/step | kernels/step | "
             "GPU ms | busy | most called ops |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        if "step_s" not in r:
            lines.append(f"| {r['variant']} | | | {r.get('error', 'failed')} | | | | | | |")
            continue
        busy = f"{100 * r['gpu_ms'] / (1000 * r['step_s']):.0f}%" if device.type == "cuda" else "-"
        lines.append(f"| {r['variant']} | {r['params'] / 1e6:.1f}M | {r['first_s']:.1f} | {1000 * r['step_s']:,.0f} | "
                     f"{tokens / r['step_s']:,.0f} | {r['ops']:,} | {r['kernels']:,} | {r['gpu_ms']:,.1f} | {busy} | "
                     f"{r['top']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("variants", nargs="*", default=DEFAULT, help="spec[+compile][+graph], e.g. hope_two_pass+compile+graph")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--heads", type=int, default=None,
                   help="default: each spec's own (the self-modifying kernels need a head width "
                        "up to 64 by default: 12 heads at dim 768)")
    p.add_argument("--budget-s", type=float, default=120.0, help="seconds per variant before it is cut")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    for variant in args.variants:  # every name and flag checked before anything is timed
        name, *flags = variant.split("+")
        _find(name)
        if unknown := [f for f in flags if f not in FLAGS]:
            p.error(f"{variant}: unknown flag +{unknown[0]} (flags: {', '.join('+' + f for f in FLAGS)})")
    device = pick_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            try:
                rows.append(profile_variant(variant, args, device, Path(tmp)))
            except Exception as err:  # one failing variant must not hide the others' numbers
                rows.append({"variant": variant, "error": f"{type(err).__name__}: {str(err)[:80]}"})
            r = rows[-1]
            print(f"{variant}: " + (r["error"] if "error" in r else f"{1000 * r['step_s']:.0f} ms/step"),
                  file=sys.stderr, flush=True)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print(table(rows, args, device))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
