"""Deep (MLP) memory, forward + backward: nslang's Titans op against titans-pytorch's NeuralMemory
and against torch.compile of our chunk form, at one shape, in one run (CUDA).

    python bench/deep_memory.py [--B 8 --T 2048 --heads 8 --dim 1024 --chunk 64 --repeat 20]

Variants: our Triton kernel (`titans(impl="kernel")`, fp32 and bf16), the split Triton kernel
(runtime/ops/titans/kernel_split.py: one program per (batch, head, hidden tile), two launches
per chunk; fp32 and bf16; --split-bhid sets its hidden tile, --split-sums its SUMS), our PyTorch
chunk form eager and under torch.compile, titans-pytorch. Variants named "graph" replay the same
forward + backward as one CUDA graph (captured after warm-up; the gradients accumulate into the
same buffers on every replay), which takes the host's launch cost out of the timing: titans-pytorch
is given the same treatment, so its row stays the fair denominator. A variant that fails (not installed, out of memory, a compile
error, a CUDA fault) is reported and the others still run: each variant is timed in its own
process, so its peak memory is its own.

The shape is the kernels issue's: a depth-2 MLP memory (hidden 4x the head width), chunk 64,
width 1024 in 8 heads, B=8, T=2048. titans-pytorch (carried as a wheel, not a dependency) is
timed on the same [B, T, dim] input with its default depth-2 memory of the same widths; ours is
timed on the per-head q, k, v and gates that its projections would produce. Prints a table:
median ms and peak memory per variant, and the ratio to titans-pytorch.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.ops.titans import chunk_titans, titans  # noqa: E402


def timed(fn, repeat: int, reset_peak: bool = True) -> tuple[float, float]:
    """(median ms, peak GiB) of fn() with CUDA events, after warm-up. reset_peak=False: the peak
    since the process started, for a graph's replay, whose memory (the graph's private pool) was
    allocated at capture: a peak reset after it counted 0.13 GiB for a 4 GiB step (seventh
    session)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    if reset_peak:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2], torch.cuda.max_memory_allocated() / 2**30


def as_graph(step):
    """step() captured as one CUDA graph, after warm-up on a side stream (as torch.cuda.graphs
    asks): returns its replay. The backward inside the capture accumulates into the .grad
    buffers that the warm-up allocated."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def ours(args, dtype, compiled=False, kernel=False, split=False):
    B, T, H, D = args.B, args.T, args.heads, args.dim // args.heads
    hid = 4 * D
    dev = "cuda"
    mk = lambda *s, scale=1.0: (torch.randn(*s, device=dev, dtype=dtype) * scale).requires_grad_()  # noqa: E731
    q, k, v = (mk(B, T, H, D, scale=D ** -0.5) for _ in range(3))
    eta = torch.full((B, T, H), 0.9, device=dev, dtype=dtype, requires_grad=True)
    theta = torch.full((B, T, H), 0.01, device=dev, dtype=dtype, requires_grad=True)
    alpha = torch.full((B, T, H), 0.01, device=dev, dtype=dtype, requires_grad=True)
    W1, W2 = mk(H, D, hid, scale=hid ** -0.5), mk(H, hid, D, scale=D ** -0.5)
    if kernel:  # the Triton kernel (runtime/ops/titans/kernel.py); raises if it cannot run
        op = partial(titans, impl="kernel")
    elif split:  # the split Triton kernel (runtime/ops/titans/kernel_split.py), not dispatched
        from runtime.ops.titans import kernel_split
        from runtime.ops.titans.kernel_split import chunk_titans_split_kernel

        kernel_split.SUMS = args.split_sums
        op = partial(chunk_titans_split_kernel, block_hidden=args.split_bhid)
    else:
        op = torch.compile(chunk_titans) if compiled else chunk_titans

    def step():
        o, _ = op(q, k, v, eta, theta, alpha, W1, W2, chunk_size=args.chunk, memory="mlp")
        o.float().square().mean().backward()
    return step


def titans_pytorch(args, dtype):
    from titans_pytorch import NeuralMemory

    mem = NeuralMemory(dim=args.dim, chunk_size=args.chunk, heads=args.heads,
                       dim_head=args.dim // args.heads).cuda().to(dtype)
    x = torch.randn(args.B, args.T, args.dim, device="cuda", dtype=dtype, requires_grad=True)

    def step():
        out, _ = mem(x)
        out.float().square().mean().backward()
    return step


def variants(args):
    # the reference first: a run cut by its time limit still has the ratio's denominator
    return {
        "titans-pytorch NeuralMemory bf16": lambda: titans_pytorch(args, torch.bfloat16),
        "titans-pytorch NeuralMemory graph bf16": lambda: as_graph(titans_pytorch(args, torch.bfloat16)),
        "nslang titans kernel graph bf16": lambda: as_graph(ours(args, torch.bfloat16, kernel=True)),
        "nslang chunk_titans graph bf16": lambda: as_graph(ours(args, torch.bfloat16)),
        "nslang titans kernel bf16": lambda: ours(args, torch.bfloat16, kernel=True),
        "nslang titans split kernel bf16": lambda: ours(args, torch.bfloat16, split=True),
        "nslang torch.compile bf16": lambda: ours(args, torch.bfloat16, compiled=True),
        "nslang chunk_titans bf16": lambda: ours(args, torch.bfloat16),
        "titans-pytorch NeuralMemory fp32": lambda: titans_pytorch(args, torch.float32),
        "nslang titans kernel fp32": lambda: ours(args, torch.float32, kernel=True),
        "nslang titans split kernel fp32": lambda: ours(args, torch.float32, split=True),
        "nslang chunk_titans fp32": lambda: ours(args, torch.float32),
    }


def run_one(args) -> None:
    """Child process: time one variant, print one JSON line (a CUDA fault or an out-of-memory
    here cannot take the other variants down)."""
    try:
        ms, gib = timed(variants(args)[args.only](), args.repeat, reset_peak=" graph " not in args.only)
        print(json.dumps({"ms": ms, "gib": gib}))
    except Exception as err:
        print(json.dumps({"error": f"{type(err).__name__}: {str(err)[:300]}"}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--B", type=int, default=8)
    p.add_argument("--T", type=int, default=2048)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per variant (its own process)")
    p.add_argument("--compile-timeout", type=float, default=300.0,
                   help="seconds for the torch.compile variant (its compilation took over 90 s on an H100)")
    p.add_argument("--split-bhid", type=int, default=None,
                   help="hidden tile of the split kernel (default: kernel_split.py's, 32)")
    p.add_argument("--split-sums", choices=("tiles", "atomic"), default="tiles",
                   help="how the split kernel forms its sums over hidden tiles (kernel_split.SUMS)")
    p.add_argument("--select", default=None, metavar="REGEX",
                   help="time only the variants whose name matches (e.g. 'titans-pytorch|kernel'); the "
                   "ratio column needs the titans-pytorch row of the same dtype")
    p.add_argument("--only", help="time this one variant (used by the parent process)")
    args = p.parse_args()
    if args.only:
        return run_one(args)
    print(f"{torch.cuda.get_device_name()} · torch {torch.__version__} · B={args.B} T={args.T} "
          f"heads={args.heads} dim={args.dim} chunk={args.chunk} (fwd+bwd)", flush=True)
    refs = {}
    # ratios to titans-pytorch in the same dtype, eager and (where it captures) as a CUDA graph
    print(f"\n{'variant':<40} {'ms':>9} {'peak GiB':>9} {'vs titans-pytorch':>22} {'vs its graph':>16}",
          flush=True)
    for name in variants(args):
        if args.select and not re.search(args.select, name):
            continue
        # one process per variant, each with its own time limit: failures and hangs are reported,
        # never fatal, peaks are separate, and each row is printed as soon as it is measured
        cmd = [sys.executable, __file__, *sys.argv[1:], "--only", name]
        try:
            limit = args.compile_timeout if "torch.compile" in name else args.timeout
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            res = json.loads(lines[-1]) if lines else {
                "error": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
        except subprocess.TimeoutExpired:
            res = {"error": f"no result within {limit:.0f} s"}
        if "error" in res:
            print(f"{name:<40} {'failed':>9}  {res['error']}", flush=True)
            continue
        dtype = name.split()[-1]
        if name.startswith("titans-pytorch"):
            refs[("graph" in name, dtype)] = res["ms"]
        ratios = [f"{refs[(g, dtype)] / res['ms']:.2f}x" if (g, dtype) in refs else "-" for g in (False, True)]
        print(f"{name:<40} {res['ms']:>9.2f} {res['gib']:>9.2f} {ratios[0]:>22} {ratios[1]:>16}", flush=True)


if __name__ == "__main__":
    main()
