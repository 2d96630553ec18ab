"""Why a model's training step cannot be captured as a CUDA graph (`nslang train --cuda-graphs`).

    python bench/graph_probe.py [SPEC ...] [--dim 64] [--depth 2] [--context 64] [--batch-size 2]

For each spec (stock name or file; default hope_two_pass, hope), on CUDA, four probes, each in a
fresh model, each reporting `ok` or the first error with the frames of nslang's own code:

1. `sync`: one eager forward and backward under torch.cuda.set_sync_debug_mode("error"), which
   raises at the first operation that waits for the GPU (`.item()`, `nonzero`, a blocking copy);
2. `forward`: the forward alone captured (no_grad);
3. `forward+grad`: the forward captured with autograd recording (inner `autograd.grad` included);
4. `step`: forward and backward captured, as --cuda-graphs does (global capture mode, so that an
   illegal call from any thread fails at once rather than at the end of the capture);
5. `step-relaxed`: the same in relaxed mode (no check of other threads' calls: if only this one
   passes, a call from another thread, such as autograd's device thread, broke the capture);
6. `step-chunk`: the same with the PyTorch chunk forms instead of the Triton kernels.

The first probe that fails narrows the cause; its frames say where. A benchmark-side diagnostic, not
a test: it needs a GPU.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.train_throughput import _find  # noqa: E402
from runtime.layers.common import implementation  # noqa: E402
from runtime.train.build import compile_package  # noqa: E402
from runtime.train.cuda_graph import error_chain  # noqa: E402
from runtime.train.loop import LossModule  # noqa: E402


def probe(spec: Path, kind: str, args, workdir: Path) -> str:
    pkg = compile_package(spec, workdir / f"{spec.stem}_{kind}",
                          overrides={"dim": args.dim, "depth": args.depth, "context": args.context})
    torch.manual_seed(0)
    model = pkg.Model(pkg.Config()).cuda()
    step = LossModule(model)
    tokens = torch.randint(0, pkg.Config().vocab, (args.batch_size, args.context + 1), device="cuda")

    def fwd_bwd():
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            loss = step(tokens)
        loss.backward()

    def forward():
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            return step(tokens)

    with implementation("chunk" if kind == "step-chunk" else "fast"):
        return _probe(kind, fwd_bwd, forward)


def _probe(kind: str, fwd_bwd, forward) -> str:
    try:
        if kind == "sync":
            torch.cuda.set_sync_debug_mode("error")
            try:
                fwd_bwd()
            finally:
                torch.cuda.set_sync_debug_mode("default")
            return "ok"
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fwd_bwd()  # warm-up: compilation, autotuning, cuBLAS handles
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        if kind == "forward":
            with torch.no_grad(), torch.cuda.graph(graph, capture_error_mode="global"):
                forward()
        elif kind == "forward+grad":
            with torch.cuda.graph(graph, capture_error_mode="global"):
                forward()
        else:
            mode = "relaxed" if kind == "step-relaxed" else "global"
            with torch.cuda.graph(graph, capture_error_mode=mode):
                fwd_bwd()
        graph.replay()
        torch.cuda.synchronize()
        return "ok"
    except Exception as err:  # the point of the probe: report it
        return error_chain(err, frames=6)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("specs", nargs="*", default=["hope_two_pass", "hope"])
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--probes", default="sync,forward,forward+grad,step,step-relaxed,step-chunk")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds per probe (its own process)")
    p.add_argument("--only", help="run this one probe (used by the parent process)")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        p.error("needs CUDA (CUDA graphs exist only there)")
    specs = [_find(s) for s in args.specs]
    if args.only:
        with tempfile.TemporaryDirectory() as tmp:
            print(probe(specs[0], args.only, args, Path(tmp)), flush=True)
        return 0
    shape = ["--dim", str(args.dim), "--depth", str(args.depth), "--context", str(args.context),
             "--batch-size", str(args.batch_size)]
    for spec in specs:
        for kind in args.probes.split(","):
            # one process per probe: a failed capture can leave the CUDA context unusable
            try:
                proc = subprocess.run([sys.executable, __file__, str(spec), *shape, "--only", kind],
                                      capture_output=True, text=True, timeout=args.timeout)
                result = proc.stdout.strip() or f"exit {proc.returncode}: {proc.stderr.strip()[-800:]}"
            except subprocess.TimeoutExpired:
                result = f"no result within {args.timeout:.0f} s"
            print(f"{spec.stem} {kind}: {result}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
