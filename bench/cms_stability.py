"""How large a CMS's outputs get while a model trains: the largest |output| of each CMS block and
each self-modifying Titans layer per step (bench/RESULTS.md, fifth and sixth device sessions: why
Hope diverged at dim 512).

    python bench/cms_stability.py [SPEC] [--dim 128] [--depth 2] [--context 256] [--batch-size 8]
        [--steps 40] [--lr 1e-3] [--set continuum.level_norm=none ...] [--every 4] [--data shakespeare]

Trains SPEC (default hope_two_pass) with AdamW at a constant --lr, no warm-up, gradients clipped
at 1, on random windows of --data (default the packaged Shakespeare, byte tokens), fp32 on the CPU, and prints
each --every'th step's loss, gradient norm and the largest output per block, then the largest
over the run. Every forward of a block counts (both passes of the two_pass signal). No assertion:
this is a diagnostic. At the defaults, over 40 steps, the largest CMS output was 2,060 with `--set
continuum.level_norm=none` (the stock Hope before it set the norm) and 8.66 with the stock spec.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.train_throughput import _find  # noqa: E402
from runtime.data.prepare import open_corpus  # noqa: E402
from runtime.layers.continuum import Continuum  # noqa: E402
from runtime.layers.selfmod import SelfModifying  # noqa: E402
from runtime.train.build import compile_package  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec", nargs="?", default="hope_two_pass")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a spec override")
    p.add_argument("--every", type=int, default=4, help="print every this many steps")
    p.add_argument("--data", default="shakespeare", help="corpus name or prepared folder (byte tokens)")
    args = p.parse_args(argv)
    overrides = {"dim": args.dim, "depth": args.depth, "context": args.context}
    overrides.update(kv.split("=", 1) for kv in args.set)
    with tempfile.TemporaryDirectory() as tmp:
        pkg = compile_package(_find(args.spec), Path(tmp) / "package", overrides=overrides)
        torch.manual_seed(0)
        model = pkg.Model(pkg.Config())
    blocks = [(name, m) for name, m in model.named_modules() if isinstance(m, (Continuum, SelfModifying))]
    if not blocks:
        raise SystemExit(f"error: {args.spec} has no CMS block or self-modifying memory")
    peaks: dict[str, float] = {}

    def watch(name):
        def hook(_module, _inputs, output):
            y = output[0].detach()
            peak = y.abs().max().item() if torch.isfinite(y).all() else float("inf")
            peaks[name] = max(peaks.get(name, 0.0), peak)
        return hook

    for name, m in blocks:
        m.register_forward_hook(watch(name))
    tokens = np.asarray(open_corpus(args.data, progress=False).train)
    rng = np.random.default_rng(0)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    print(f"{args.spec} {overrides}: largest |output| per block ({', '.join(n for n, _ in blocks)})")
    worst = 0.0
    for step in range(1, args.steps + 1):
        starts = rng.integers(0, len(tokens) - args.context - 1, args.batch_size)
        batch = torch.from_numpy(np.stack([tokens[s:s + args.context + 1] for s in starts]).astype(np.int64))
        peaks.clear()
        t0 = time.perf_counter()
        loss = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
        opt.step()
        worst = max([worst, *peaks.values()])
        if step % args.every == 0 or step == 1 or not np.isfinite(loss.item()):
            print(f"step {step:4d}  loss {loss.item():.4f}  grad norm {norm:8.3g}  peak "
                  + " ".join(f"{v:8.3g}" for v in peaks.values()) + f"  ({time.perf_counter() - t0:.1f} s)")
        if not np.isfinite(loss.item()):
            break
    print(f"largest |output| over the run: {worst:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
