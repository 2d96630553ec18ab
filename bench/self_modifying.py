"""Self-modifying Titans (the memory of Hope), forward + backward: the fused Triton kernels against
the PyTorch chunk form, eager and with its chunk step under torch.compile, at one shape, in one run.

    python bench/self_modifying.py [--B 1 --T 2048 --heads 12 --head-dim 64 --hidden 128]

The default shape is one block of the ~125M Hope (dim 768 in 12 heads, hidden 2x, chunk 16,
momentum 0.9, the layer's gate offsets: runtime/layers/selfmod.py). Each variant runs in its own
process with its own time limit (a first call compiles), so a fault or a slow compile costs only
its row, and its peak memory is its own. Prints one table: median ms of a forward + backward (or a
forward alone, rows marked "forward"), tokens/s and peak GiB, and the ratio to the eager chunk
form. A kernel variant takes launch options after colons (`kernel_tf32:bhid=32:warps=8`).
`--device cpu` runs a small smoke check (kernels in Triton's interpreter).
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
VARIANTS = ("chunk", "chunk_compiled", "kernel_tf32", "kernel_ieee", "chunk_forward",
            "kernel_forward")


def _inputs(args, device):
    import torch
    import torch.nn.functional as F

    from runtime.ops.self_modifying_titans import memory_names

    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    B, T, H, D, hid = args.B, args.T, args.heads, args.head_dim, args.hidden
    x = F.normalize(r(B, T, H, D), dim=-1)
    init = {n: (r(H, 1 if n in ("eta", "alpha") else D, hid) / hid**0.5, r(H, hid, D) / D**0.5)
            for n in memory_names(False)}
    W_q = torch.eye(D).repeat(H, 1, 1)
    to = lambda t: t.to(device).requires_grad_()  # noqa: E731
    kw = dict(chunk_size=args.chunk, momentum=0.9, eta_scale=0.1, eta_bias=-2.6,
              alpha_bias=math.log(0.95 / 0.05), v_l2norm=True)
    return to(x), {n: (to(a), to(b)) for n, (a, b) in init.items()}, to(W_q), kw


def _measure(args) -> dict:
    import torch

    from runtime.ops.self_modifying_titans import chunk_self_modifying_titans
    from runtime.ops.self_modifying_titans.kernel import chunk_self_modifying_titans_kernel

    device = args.device
    x, init, W_q, kw = _inputs(args, device)
    name, *opts = args.only.split(":")  # kernel options: kernel_tf32:bhid=32:warps=8
    opts = dict(o.split("=") for o in opts)
    backward = not name.endswith("forward")
    if name.startswith("kernel"):
        prec = "ieee" if name == "kernel_ieee" or device == "cpu" else "tf32"
        cfg = dict(precision=prec, num_warps=int(opts["warps"]) if "warps" in opts else None,
                   block_hidden=int(opts["bhid"]) if "bhid" in opts else None)
        fn = lambda: chunk_self_modifying_titans_kernel(x, init, W_q, **cfg, **kw)  # noqa: E731
    else:
        fn = lambda: chunk_self_modifying_titans(x, init, W_q,  # noqa: E731
                                                 compile_step=name == "chunk_compiled", **kw)
    leaves = [x, W_q, *(t for ws in init.values() for t in ws)]

    def step():
        if not backward:
            with torch.no_grad():
                return fn()
        o, state = fn()
        loss = o.float().square().mean() + sum(t.float().square().mean() for ws in state.values()
                                               for t in ws[:2])
        grads = torch.autograd.grad(loss, leaves)
        return grads

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    step()  # compiles
    sync()
    first = time.perf_counter() - t0
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    deadline = time.perf_counter() + args.budget_s
    while len(times) < args.repeat and (not times or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    ms = sorted(times)[len(times) // 2] * 1e3
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return dict(variant=args.only, ms=ms, first_s=first, runs=len(times), peak_gib=peak,
                tokens_per_s=args.B * args.T / (ms / 1e3))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--B", type=int, default=1)
    p.add_argument("--T", type=int, default=2048)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--chunk", type=int, default=16)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--budget-s", type=float, default=30.0, help="timed seconds per variant at most")
    p.add_argument("--timeout", type=float, default=240.0, help="seconds per variant, compile included")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--device", default="cuda")
    p.add_argument("--only", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.only:
        print("RESULT " + json.dumps(_measure(args)), flush=True)
        return
    env = dict(os.environ)
    if args.device == "cpu":
        env["TRITON_INTERPRET"] = "1"
    shape = f"B={args.B} T={args.T} H={args.heads} D={args.head_dim} hidden={args.hidden} chunk={args.chunk}"
    print(f"self-modifying Titans, {shape}, momentum 0.9, fp32 inputs")
    rows = []
    for name in args.variants.split(","):
        cmd = [sys.executable, __file__, "--only", name, "--device", args.device] + [
            f"--{k.replace('_', '-')}={getattr(args, k)}" for k in
            ("B", "T", "heads", "head_dim", "hidden", "chunk", "repeat", "budget_s")]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env,
                                 cwd=ROOT)
        except subprocess.TimeoutExpired:
            rows.append(dict(variant=name, error=f"no result within {args.timeout:.0f} s"))
            continue
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if lines:
            rows.append(json.loads(lines[-1][7:]))
        else:
            tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
            rows.append(dict(variant=name, error=tail[0][:200]))
    base = {r["variant"]: r["ms"] for r in rows if "ms" in r}
    print("| variant | ms | tokens/s | peak GiB | vs chunk (same pass) | first call s | runs |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        if "error" in r:
            print(f"| {r['variant']} | {r['error']} | | | | | |")
            continue
        ref = base.get("chunk_forward" if r["variant"].split(":")[0].endswith("forward") else "chunk")
        ratio = f"{ref / r['ms']:.1f}x" if ref else ""
        print(f"| {r['variant']} | {r['ms']:.1f} | {r['tokens_per_s']:,.0f} | {r['peak_gib']:.2f} "
              f"| {ratio} | {r['first_s']:.1f} | {r['runs']} |")


if __name__ == "__main__":
    main()
