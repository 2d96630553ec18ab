"""What a training step's forward leaves alive for the backward, by the line that made it.

    python bench/activation_memory.py [SPEC ...] [--dim 128] [--depth 2] [--context 1024] [--batch-size 1]
        [--recompute-chunks] [--top 10] [--device cpu]

For each spec (stock name or file; default self_modifying_titans, hope_two_pass, transformer_pp):
one forward with gradients, under a dispatch mode that notes every storage an operator creates
(with the nslang line that called it); after the forward, the storages still alive (weak
references, so nothing is kept by the census itself) are what the backward holds: saved
activations, recomputation inputs, outputs. Storages of 4 KB and less are not counted.

Why not the process's memory: freed memory stays with the allocator (on the CPU the process's
resident size at 1,024 tokens read 200 MiB for self_modifying_titans with --recompute-chunks,
while its live activations were 30 MiB). On a GPU, `torch.cuda.max_memory_allocated` is the number
to read; this census runs anywhere and says where the bytes come from.
"""
from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_leaves  # noqa: E402

from bench.train_throughput import _find  # noqa: E402
from runtime.layers.common import use_recomputed_chunks  # noqa: E402
from runtime.train.build import compile_package  # noqa: E402
from runtime.train.loop import LossModule  # noqa: E402

MIN_BYTES = 4096


class _Census(TorchDispatchMode):
    """Every storage an operator creates: (weak reference, bytes, operator, nslang line)."""

    def __init__(self):
        super().__init__()
        self.made: dict[int, tuple] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            if storage.nbytes() <= MIN_BYTES:
                continue
            seen = self.made.get(storage.data_ptr())
            if seen is not None and not torch.UntypedStorage._expired(seen[0]):
                continue  # a view of a storage already noted (a freed one's address may be reused)
            ours = [f for f in traceback.extract_stack() if str(ROOT) in f.filename
                    and "site-packages" not in f.filename and f.filename != __file__]
            site = f"{Path(ours[-1].filename).relative_to(ROOT)}:{ours[-1].lineno}" if ours else "?"
            self.made[storage.data_ptr()] = (storage._weak_ref(), storage.nbytes(),
                                             func.overloadpacket.__name__, site)
        return out

    def alive(self) -> collections.Counter:
        by_site: collections.Counter = collections.Counter()
        for ref, nbytes, op, site in self.made.values():
            if not torch.UntypedStorage._expired(ref):
                by_site[f"{site} ({op})"] += nbytes
        return by_site


def census(spec: Path, args, workdir: Path) -> collections.Counter:
    pkg = compile_package(spec, workdir / spec.stem,
                          overrides={"dim": args.dim, "depth": args.depth, "context": args.context})
    use_recomputed_chunks(args.recompute_chunks)
    torch.manual_seed(0)
    model = pkg.Model(pkg.Config()).to(args.device)
    tokens = torch.randint(0, pkg.Config().vocab, (args.batch_size, args.context + 1), device=args.device)
    mode = _Census()
    with mode:
        loss = LossModule(model)(tokens)
    by_site = mode.alive()
    del loss
    return by_site


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("specs", nargs="*", default=["self_modifying_titans", "hope_two_pass", "transformer_pp"])
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--context", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--recompute-chunks", action="store_true", help="as nslang train --recompute-chunks")
    p.add_argument("--top", type=int, default=8, help="lines shown per spec")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    specs = [_find(s) for s in args.specs]
    tokens = args.batch_size * args.context
    print(f"live after the forward: dim {args.dim}, depth {args.depth}, {tokens} tokens, "
          f"recompute_chunks={args.recompute_chunks}, {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            by_site = census(spec, args, Path(tmp))
            total = sum(by_site.values())
            print(f"\n{spec.stem}: {total / 2**20:.1f} MiB ({total / tokens / 1024:.1f} KiB per token)")
            for site, nbytes in by_site.most_common(args.top):
                print(f"  {nbytes / 2**20:8.1f} MiB  {site}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
