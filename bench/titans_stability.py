"""Why Titans diverges on MQAR: catch the first memory call whose output blows up, then replay it
at other chunk sizes (bench/RESULTS.md; docs/results.md's reading).

    python bench/titans_stability.py [--dim 384] [--depth 6] [--steps 8] [--lr 1e-3] [--chunks 1,4,16]
        [--threshold 5] [--device cpu]

1. Trains specs/titans.nsam on `task:mqar` exactly as the results grid does (`nslang train`, in
   this process), with the Titans op wrapped: the first training call whose output exceeds
   --threshold in absolute value (or is not finite) has its inputs kept.
2. Replays those inputs in float64: the chunk-parallel op against its token-by-token definition
   (`naive_titans`, same chunk), and the definition at each of --chunks. Chunk 1 is per-token
   gradient descent; larger chunks take every token's gradient at the chunk start (Titans'
   parallel form).
3. A scalar model of that update (per-token momentum m, a step theta (1 - m) as the layer
   scales it, curvature L, gradients at the chunk start): the largest stable theta x L per chunk.

Prints one table per part. No assertion: this is a diagnostic.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def catch(args, out: Path) -> dict | None:
    """Train until the first exploding memory call; its inputs, or None."""
    import runtime.layers.fast as fast
    from nslang.cli import main

    real, kept = fast.titans, {}

    def watched(q, k, v, eta, theta, alpha, W1, W2, **kw):
        o, state = real(q, k, v, eta, theta, alpha, W1, W2, **kw)
        if torch.is_grad_enabled() and not kept and (not torch.isfinite(o).all() or o.abs().max() > args.threshold):
            kept.update(q=q, k=k, v=v, eta=eta, theta=theta, alpha=alpha, W1=W1, W2=W2, o=o,
                        options={n: kw[n] for n in ("chunk_size", "memory", "activation", "read") if n in kw})
            # copies: W1, W2 are parameters that the optimizer updates in place afterwards
            kept.update({n: t.detach().clone() for n, t in kept.items() if torch.is_tensor(t)})
        return o, state

    fast.titans = watched
    try:
        main(["train", str(ROOT / "specs" / "titans.nsam"), "--set", f"dim={args.dim}", "--set", f"depth={args.depth}",
              "--set", f"heads={args.heads}", "--set", f"context={args.context}",
              "--data", f"task:mqar?num_pairs=2,4,6&seq_len={args.context}", "--context", str(args.context),
              "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--eval-every", "0",
              "--log-every", "1", "--device", args.device, "--seed", "0", "--out", str(out), "--no-progress",
              "--lr", str(args.lr), "--warmup", "4"])
    finally:
        fast.titans = real
    return kept or None


def replay(kept: dict, chunks: list[int]) -> str:
    from runtime.ops.titans.chunk import chunk_titans
    from runtime.ops.titans.naive import naive_titans

    args = [kept[n].double() for n in ("q", "k", "v", "eta", "theta", "alpha", "W1", "W2")]
    opts = dict(kept["options"])
    own = opts.get("chunk_size", 16)
    o_chunk, _ = chunk_titans(*args, **opts)
    o_naive, _ = naive_titans(*args, **opts)
    lines = [f"captured call: q {tuple(kept['q'].shape)}, max |o| {kept['o'].abs().max().item():.3g} "
             f"(chunk {own}); theta max {kept['theta'].max().item():.3g}, momentum max "
             f"{kept['eta'].max().item():.3g}, retention gate alpha min {kept['alpha'].min().item():.3g}",
             f"chunk op vs its definition (float64, chunk {own}): max |difference| "
             f"{(o_chunk - o_naive).abs().max().item():.2e}", "",
             "| chunk | max abs(o) | max abs(o) in the last 16 tokens |", "| ---: | ---: | ---: |"]
    for c in chunks:
        o, _ = naive_titans(*args, **{**opts, "chunk_size": c})
        lines.append(f"| {c} | {o.abs().max().item():.3g} | {o[:, -16:].abs().max().item():.3g} |")
    return "\n".join(lines)


def scalar_limits(chunks: list[int], momenta=(0.0, 0.9, 0.99), steps: int = 2048) -> str:
    """Largest stable theta x L of x <- x + S, S <- m S - theta (1 - m) L x_chunk_start."""
    def grows(thl: float, m: float, c: int) -> bool:
        x, s, g = 1.0, 0.0, 1.0
        for t in range(steps):
            if t % c == 0:
                g = x
            s = m * s - thl * (1 - m) * g
            x += s
            if abs(x) > 1e6:
                return True
        return abs(x) > 10

    lines = ["| chunk | " + " | ".join(f"m = {m:g}" for m in momenta) + " |",
             "| ---: |" + " ---: |" * len(momenta)]
    for c in chunks:
        cells = []
        for m in momenta:
            lo, hi = 1e-5, 10.0
            for _ in range(40):
                mid = (lo * hi) ** 0.5
                lo, hi = (lo, mid) if grows(mid, m, c) else (mid, hi)
            cells.append(f"{lo:.3g}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threshold", type=float, default=5.0, help="|o| above this counts as blown up")
    p.add_argument("--chunks", default="1,4,16", help="chunk sizes to replay at")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    chunks = [int(c) for c in args.chunks.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        kept = catch(args, Path(tmp) / "run")
    print("\n## The first exploding memory call, replayed\n")
    print(replay(kept, chunks) if kept else f"no memory output exceeded {args.threshold:g} in {args.steps} steps")
    print("\n## Scalar model: the largest stable theta x L\n")
    print(scalar_limits(chunks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
