"""Training throughput and peak memory of compiled specs: one table comparing several specs.

    python bench/train_throughput.py [SPEC ...] [--dim 1024] [--depth 12] [--context 2048]
        [--batch-size 8] [--steps 10] [--warmup-steps 3] [--device auto] [--precision auto] [--compile]

Each spec is compiled with `dim`, `depth` and `context` overridden (a derived spec that
`extends` it, as `nslang train --set` does), built with its own outer optimizer, and trained on
random tokens for `warmup-steps` untimed and `steps` timed optimizer steps, each step exactly
as `nslang train` runs it: bf16 autocast on CUDA, gradient clipping, the per-step read-back of
loss and gradient norm, cross-sequence levels gated, then the optimizer. Tokens/s counts
training tokens (batch x context) per second of wall time with the device synchronised; peak
memory is `torch.cuda.max_memory_allocated` over the timed steps. A spec that runs out of
memory or fails to compile gets a row saying so, and the run goes on with the next.

No assertion: this is a benchmark. Default specs: the stock baselines and Hope.
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from runtime.layers.common import use_recomputed_chunks  # noqa: E402
from runtime.train.offload import offloaded  # noqa: E402
from runtime.train.build import compile_package  # noqa: E402
from runtime.train.compiling import compile_for_training  # noqa: E402
from runtime.train.cuda_graph import GraphedStep  # noqa: E402
from runtime.train.distributed import pick_device  # noqa: E402
from runtime.train.errors import TrainError  # noqa: E402
from runtime.train.loop import LossModule, _autocast, make_optimizer  # noqa: E402
from runtime.train.periodic import PeriodicGrads  # noqa: E402

DEFAULT_SPECS = ["transformer_pp", "gated_deltanet", "titans", "hope_attention", "hope"]


def build(spec: Path, overrides: dict, device: torch.device, workdir: Path, batch_size: int, context: int,
          precision: str = "auto", compile: bool = False, activation_checkpointing: bool = False,
          cuda_graphs: bool = False, recompute_chunks: bool = False, offload_saved: float = 0.0):
    """Compile `spec` with `overrides`, build its model and outer optimizer on `device`, and return
    (row, one_step): row = {"spec", "params", "optimizer"}; one_step(step) runs one optimizer step on
    a fixed random batch exactly as `nslang train` does and returns the loss. cuda_graphs: the forward
    and backward captured at the first step and replayed (`nslang train --cuda-graphs`);
    recompute_chunks: as `nslang train --recompute-chunks`; offload_saved: as `--offload-saved`."""
    pkg = compile_package(spec, workdir / spec.stem, overrides=overrides)
    use_recomputed_chunks(recompute_chunks)
    torch.manual_seed(0)
    model = pkg.Model(pkg.Config()).to(device)
    if activation_checkpointing:
        checkpoint_blocks(model)
    optimizer, _ = make_optimizer(pkg.optimizer, model, None)
    periodic = PeriodicGrads(model, batch_size * context)
    step_fn = LossModule(model)
    if compile:
        step_fn = compile_for_training(step_fn, model)  # per-chunk steps for looping models
    autocast = _autocast(device, precision)
    vocab = pkg.Config().vocab
    tokens = torch.randint(0, vocab, (batch_size, context + 1), device=device)
    row = {"spec": spec.stem, "params": sum(p.numel() for p in model.parameters()),
           "optimizer": pkg.optimizer.get("kind")}

    graphed = []

    def one_step(step: int) -> float:
        if cuda_graphs:
            if not graphed:
                graphed.append(GraphedStep(step_fn, list(model.parameters()), tokens, 1, autocast))
            loss = graphed[0]([tokens])
        else:
            with autocast(), offloaded(offload_saved):
                loss = step_fn(tokens)
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], 1.0)
        value, _ = torch.stack([loss.detach().float(), norm.float()]).tolist()  # the trainer's one sync
        periodic.gate(step)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return value

    return row, one_step


def checkpoint_blocks(model: torch.nn.Module) -> None:
    """Activation checkpointing of a compiled model: each block's forward recomputed in the backward
    (torch.utils.checkpoint, non-reentrant, which also serves the in-context levels' inner
    `torch.autograd.grad`). Raises TrainError for a model without `blocks`."""
    from torch.utils.checkpoint import checkpoint

    blocks = getattr(model, "blocks", None)
    if not blocks:
        raise TrainError("this model has no `blocks` to checkpoint")
    for block in blocks:
        inner = block.forward

        def forward(*a, _inner=inner, **kw):
            return checkpoint(_inner, *a, use_reentrant=False, **kw)

        block.forward = forward


def time_steps(one_step, warmup_steps: int, steps: int, device: torch.device, budget_s: float | None = None,
               warm: list | None = None, reserved: bool = False) -> dict:
    """`warmup_steps` untimed steps, then up to `steps` timed ones with the device synchronised; with
    `budget_s`, the timed steps stop early once another step would pass the budget (at least one is
    timed). Returns {"timed_steps", "elapsed", "step_ms", "loss", "peak_gib"}. `warm`, when given,
    receives the seconds of each warm-up step as it ends (an estimate for a caller whose time runs
    out before the first timed step). reserved: peak_gib counts reserved bytes, not allocated ones
    (for CUDA graphs, see _peak)."""
    step = 0
    for step in range(1, warmup_steps + 1):
        t0 = time.perf_counter()
        one_step(step)
        if warm is not None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            warm.append(time.perf_counter() - t0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    timed, loss = 0, float("nan")
    while timed < steps:
        step += 1
        loss = one_step(step)
        timed += 1
        if budget_s is not None and timed < steps:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            spent = time.perf_counter() - start
            if spent * (timed + 1) / timed > budget_s:
                break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    return {"timed_steps": timed, "elapsed": elapsed, "step_ms": 1000 * elapsed / timed, "loss": loss,
            "peak_gib": _peak(device, reserved) if device.type == "cuda" else None}


def _peak(device: torch.device, reserved: bool) -> float:
    # A CUDA graph's activations live in its private pool, reserved at the capture and no longer
    # counted as allocated once the capture ends: under --cuda-graphs only the reserved bytes
    # (the pool, weights, optimizer state) say what the step holds.
    return (torch.cuda.max_memory_reserved(device) if reserved else torch.cuda.max_memory_allocated(device)) / 2**30


def measure(spec: Path, args, device: torch.device, workdir: Path) -> dict:
    overrides = {"dim": args.dim, "depth": args.depth, "context": args.context}
    if args.heads:
        overrides["heads"] = args.heads
    row, one_step = build(spec, overrides, device, workdir, args.batch_size, args.context, args.precision,
                          args.compile)
    timing = time_steps(one_step, args.warmup_steps, args.steps, device)
    row.update(tokens_per_s=timing["timed_steps"] * args.batch_size * args.context / timing["elapsed"],
               step_ms=timing["step_ms"], loss=timing["loss"], peak_gib=timing["peak_gib"])
    return row


def _find(name: str) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    stock = ROOT / "specs" / f"{name}.nsam"
    if stock.is_file():
        return stock
    raise SystemExit(f"error: no spec {name} (neither a file nor specs/{name}.nsam)")


def _table(rows: list[dict], args, device: torch.device) -> str:
    head = (f"dim {args.dim}, depth {args.depth}, context {args.context}, batch {args.batch_size}, "
            f"{args.steps} timed steps after {args.warmup_steps}, {device} "
            f"({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), precision "
            f"{args.precision}{', torch.compile' if args.compile else ''}, torch {torch.__version__}")
    lines = [head, "", "| spec | params | optimizer | tokens/s | ms/step | peak GiB | loss |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['spec']} | | | {r['error']} | | | |")
            continue
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        lines.append(f"| {r['spec']} | {r['params'] / 1e6:.1f}M | {r['optimizer']} | {r['tokens_per_s']:,.0f} | "
                     f"{r['step_ms']:.1f} | {peak} | {r['loss']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("specs", nargs="*", default=DEFAULT_SPECS, help="spec files or stock spec names")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--heads", type=int, default=None, help="default: the spec's")
    p.add_argument("--context", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup-steps", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--compile", action="store_true")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.specs:
            spec = _find(name)
            try:
                rows.append(measure(spec, args, device, Path(tmp)))
            except TrainError as err:
                rows.append({"spec": spec.stem, "error": f"does not compile: {err.message.splitlines()[0]}"})
            except torch.OutOfMemoryError:
                rows.append({"spec": spec.stem, "error": "out of memory"})
            except Exception as err:  # one failing spec must not hide the others' numbers
                rows.append({"spec": spec.stem, "error": f"{type(err).__name__}: {str(err)[:80]}"})
            print(f"{rows[-1]['spec']}: done", file=sys.stderr, flush=True)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print(_table(rows, args, device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
