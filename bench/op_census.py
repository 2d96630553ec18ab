"""Where a training step's operators come from: one forward and backward, each ATen operator charged
to the deepest nslang line (or file) on the stack.

    python bench/op_census.py [SPEC ...] [--dim 256] [--depth 2] [--context 256] [--batch-size 4]
        [--by line|file] [--kernels] [--top 15]

Operators that the autograd engine runs for the backward have no nslang frame: they are counted as
"(backward)". With --kernels, views and metadata operators (view, expand, transpose, empty, ...)
are left out, which estimates the GPU kernels of the step: 29,867 for hope_two_pass at the
defaults, against 35,031 that the H100 profile counted (bench/RESULTS.md, fifth device session).
Under a CUDA graph the host operators cost nothing and the kernels are what remains.
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

from bench.train_throughput import _find  # noqa: E402
from runtime.train.build import compile_package  # noqa: E402
from runtime.train.loop import LossModule  # noqa: E402

# Operators that only make views or read metadata: no kernel on a GPU.
NO_KERNEL = {"view", "expand", "as_strided", "_reshape_alias", "t", "transpose", "permute", "unsqueeze",
             "squeeze", "slice", "select", "detach", "alias", "unbind", "split", "split_with_sizes", "chunk",
             "narrow", "_unsafe_view", "view_as", "diagonal", "unfold", "empty", "empty_strided", "empty_like",
             "lift_fresh", "sym_size", "sym_stride", "resolve_conj", "resolve_neg", "movedim"}


class _Census(TorchDispatchMode):
    def __init__(self, by: str, kernels_only: bool):
        super().__init__()
        self.by, self.kernels_only = by, kernels_only
        self.sites: collections.Counter = collections.Counter()
        self.ops: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if self.kernels_only and (name in NO_KERNEL or _aliases(name, args, out)):
            return out
        ours = [f for f in traceback.extract_stack() if str(ROOT) in f.filename
                and "site-packages" not in f.filename and f.filename != __file__]
        if not ours:
            site = "(backward)"
        elif self.by == "file":
            site = str(Path(ours[-1].filename).relative_to(ROOT))
        else:
            site = f"{Path(ours[-1].filename).relative_to(ROOT)}:{ours[-1].lineno}"
        self.sites[site] += 1
        self.ops[name] += 1
        return out


def _aliases(name: str, args, out) -> bool:
    """reshape / contiguous / to that returned their input's storage: no copy, no kernel."""
    return (name in ("reshape", "contiguous", "to", "_to_copy") and isinstance(out, torch.Tensor)
            and bool(args) and isinstance(args[0], torch.Tensor) and out.data_ptr() == args[0].data_ptr())


def census(spec: Path, args, workdir: Path) -> _Census:
    pkg = compile_package(spec, workdir / spec.stem,
                          overrides={"dim": args.dim, "depth": args.depth, "context": args.context})
    torch.manual_seed(0)
    model = pkg.Model(pkg.Config())
    tokens = torch.randint(0, pkg.Config().vocab, (args.batch_size, args.context + 1))
    mode = _Census(args.by, args.kernels)
    with mode:
        LossModule(model)(tokens).backward()
    return mode


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("specs", nargs="*", default=["hope_two_pass"])
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--by", choices=("line", "file"), default="line")
    p.add_argument("--kernels", action="store_true", help="leave out views and metadata (GPU kernels)")
    p.add_argument("--top", type=int, default=15, help="sites shown per spec")
    args = p.parse_args(argv)
    what = "estimated kernels" if args.kernels else "operators"
    print(f"{what} of one step: dim {args.dim}, depth {args.depth}, context {args.context}, "
          f"batch {args.batch_size}, CPU")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in (_find(s) for s in args.specs):
            mode = census(spec, args, Path(tmp))
            total = sum(mode.sites.values())
            print(f"\n{spec.stem}: {total:,} {what}")
            print("| share | count | where |\n| ---: | ---: | --- |")
            for site, n in mode.sites.most_common(args.top):
                print(f"| {100 * n / total:.1f}% | {n:,} | {site} |")
            print("most frequent: " + ", ".join(f"{op} {n:,}" for op, n in mode.ops.most_common(10)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
