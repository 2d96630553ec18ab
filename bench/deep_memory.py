"""Deep (MLP) memory, forward + backward: nslang's Titans op against titans-pytorch's NeuralMemory
and against torch.compile of our chunk form, at one shape, in one run (CUDA).

    python bench/deep_memory.py [--B 8 --T 2048 --heads 8 --dim 1024 --chunk 64 --repeat 20]

The shape is the kernels issue's: a depth-2 MLP memory (hidden 4x the head width), chunk 64,
width 1024 in 8 heads, B=8, T=2048. titans-pytorch (carried as a wheel, not a dependency) is
timed on the same [B, T, dim] input with its default depth-2 memory of the same widths; ours is
timed on the per-head q, k, v and gates that its projections would produce. Prints a table:
median ms and peak memory per variant, and the ratio to titans-pytorch.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.ops.titans import chunk_titans  # noqa: E402


def timed(fn, repeat: int) -> tuple[float, float]:
    """(median ms, peak GiB) of fn() with CUDA events, after warm-up."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
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


def ours(args, dtype, compiled=False):
    B, T, H, D = args.B, args.T, args.heads, args.dim // args.heads
    hid = 4 * D
    dev = "cuda"
    mk = lambda *s, scale=1.0: (torch.randn(*s, device=dev, dtype=dtype) * scale).requires_grad_()  # noqa: E731
    q, k, v = (mk(B, T, H, D, scale=D ** -0.5) for _ in range(3))
    eta = torch.full((B, T, H), 0.9, device=dev, dtype=dtype, requires_grad=True)
    theta = torch.full((B, T, H), 0.01, device=dev, dtype=dtype, requires_grad=True)
    alpha = torch.full((B, T, H), 0.01, device=dev, dtype=dtype, requires_grad=True)
    W1, W2 = mk(H, D, hid, scale=hid ** -0.5), mk(H, hid, D, scale=D ** -0.5)
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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--B", type=int, default=8)
    p.add_argument("--T", type=int, default=2048)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()
    print(f"{torch.cuda.get_device_name()} · torch {torch.__version__} · B={args.B} T={args.T} "
          f"heads={args.heads} dim={args.dim} chunk={args.chunk} (fwd+bwd)")
    variants = [("nslang chunk_titans fp32", lambda: ours(args, torch.float32)),
                ("nslang chunk_titans bf16", lambda: ours(args, torch.bfloat16)),
                ("nslang torch.compile bf16", lambda: ours(args, torch.bfloat16, compiled=True)),
                ("titans-pytorch NeuralMemory fp32", lambda: titans_pytorch(args, torch.float32)),
                ("titans-pytorch NeuralMemory bf16", lambda: titans_pytorch(args, torch.bfloat16))]
    rows = []
    for name, build in variants:
        torch.cuda.empty_cache()
        try:
            ms, gib = timed(build(), args.repeat)
            rows.append((name, ms, gib))
        except Exception as err:  # report and go on: one failing side must not hide the others
            rows.append((name, None, None))
            print(f"{name}: failed: {type(err).__name__}: {str(err)[:200]}")
    refs = {name.split()[-1]: ms for name, ms, _ in rows if name.startswith("titans-pytorch")}
    print(f"\n{'variant':<36} {'ms':>9} {'peak GiB':>9} {'vs titans-pytorch, same dtype':>30}")
    for name, ms, gib in rows:
        if ms is None:
            print(f"{name:<36} {'failed':>9}")
            continue
        ref = refs.get(name.split()[-1])
        ratio = f"{ref / ms:.2f}x" if ref else "-"
        print(f"{name:<36} {ms:>9.2f} {gib:>9.2f} {ratio:>30}")


if __name__ == "__main__":
    main()
