"""Whole-model training throughput (issue 5): nslang's Hope next to an nslang Transformer++ of the
same width, depth and context on the same card, and beside the PyPI `nested-learning` package's
Hope (0.2.0) at its nearest configuration. One table: model, params, batch, tokens/s, peak GiB,
ratio to Transformer++.

    python bench/model.py [--dim 768] [--depth 12] [--context 2048] [--batch-size 8] [--hope-batch-size 2] [--fit]
        [--specs transformer_pp,hope] [--activation-checkpointing] [--steps 5] [--warmup-steps 1]
        [--budget-s 120] [--nl-modes offline,online] [--nl-path DIR] [--device auto] [--precision auto]
        [--compile] [--cuda-graphs] [--recompute-chunks]

nslang side: each spec is compiled at --dim/--depth/--context (a derived spec, as `nslang train
--set` does) and timed by bench/train_throughput.py's code: fwd + bwd + gradient clipping + the
spec's outer optimizer on a fixed batch of random byte tokens, bf16 autocast on CUDA, memory
writes as the spec says (Hope: differentiable, the default). `--activation-checkpointing`
recomputes each block in the backward (torch.utils.checkpoint around every block: nslang models
have no switch of their own, so this wraps them from outside; a model it breaks gets an error row).

nested-learning side (importable from --nl-path, default /tmp/site or /tmp/nlpkg when present):
its own training loop `nested_learning.training.run_training_loop`, on its synthetic-token
dataset, at its `hope/pilot_selfmod` configuration (HOPESelfModBlock: self-modifying Titans +
a 4-level CMS, the nearest to nslang's hope.nsam; pilot levels and teach schedule; its Muon outer
optimizer replaced by AdamW as in nslang's specs unless --nl-optim config) with vocab 257, dim,
layers and heads = dim / 64 set to match. Two modes:
- `offline`: train.online_updates=false: one forward/backward over the whole sequence, the outer
  step, then one no-grad pass that writes the fast memories from the teach signal
  (two_pass_stopgrad_updates: its writes are not differentiable);
- `online`: the pilot_selfmod setting (online_updates=true, per-layer teach signals): the sequence
  is trained chunk by chunk, the chunk being its fastest CMS period (1 token in the pilot config).
Its loop is timed from inside: the outer optimizer's `step` is wrapped to stamp the time, so
setup is excluded. A SIGALRM after --budget-s ends a mode that is too slow: its row then gives
what was timed, or an upper bound on tokens/s when not even one step finished.

Every model is timed in its own try/except: an out-of-memory, a missing package or any error
becomes its row, and the others still run. With --fit, an out-of-memory halves the batch (down
to 1) and tries again.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.train_throughput import _find, build, time_steps  # noqa: E402
from runtime.train.distributed import pick_device  # noqa: E402
from runtime.train.errors import TrainError, is_out_of_memory  # noqa: E402

NL_VERSION = "0.2.0"
NL_PATHS = ["/tmp/site", "/tmp/nlpkg"]


class _OutOfTime(BaseException):
    """A BaseException, so that no `except Exception` inside a timed library swallows it."""


@contextlib.contextmanager
def alarm(seconds: float | None):
    """Raise _OutOfTime in the main thread after `seconds` (Python-level code only)."""
    if not seconds or not hasattr(signal, "SIGALRM"):
        yield
        return

    def fire(signum, frame):
        raise _OutOfTime

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def with_fit(fn, batch: int, fit: bool, device: torch.device) -> dict:
    """fn(batch) -> row; with `fit`, halve the batch on out-of-memory until it fits or is 1."""
    tried = []
    while True:
        try:
            row = fn(batch)
            if tried:
                row["note"] = (row.get("note", "") + f"; out of memory at batch {', '.join(map(str, tried))}").lstrip("; ")
            return row
        except Exception as err:
            if not (is_out_of_memory(err) and fit and batch > 1):
                raise
            tried.append(batch)
            _free(device)
            batch //= 2


# -- nslang ------------------------------------------------------------------------------------------

def nslang_row(spec: Path, args, device: torch.device, workdir: Path, batch: int) -> dict:
    overrides = {"dim": args.dim, "depth": args.depth, "context": args.context}
    if args.heads:
        overrides["heads"] = args.heads
    # the offload is for Hope's CMS weight versions: Transformer++'s activations fit, and moving
    # them all over PCIe made it 55x slower (bench/RESULTS.md, seventh session)
    offload = args.offload_saved if spec.stem.startswith("hope") else 0.0
    row, one_step = build(spec, overrides, device, workdir, batch, args.context, args.precision, args.compile,
                          activation_checkpointing=args.activation_checkpointing, cuda_graphs=args.cuda_graphs,
                          recompute_chunks=args.recompute_chunks, offload_saved=offload)
    name = f"nslang {spec.stem}" + (" (act. ckpt)" if args.activation_checkpointing else "") \
        + (", CUDA graph" if args.cuda_graphs else "") + (", recomputed chunks" if args.recompute_chunks else "") \
        + (f", saved >= {offload:g} MiB on the host" if offload else "")
    out = {"model": name, "params": row["params"], "batch": batch, "optimizer": row["optimizer"]}
    warm: list[float] = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with alarm(args.budget_s + 30 if args.budget_s else None):
            timing = time_steps(one_step, args.warmup_steps, args.steps, device, budget_s=args.budget_s, warm=warm,
                                reserved=args.cuda_graphs)
    except _OutOfTime:
        if not warm:
            raise
        # Not one timed step inside the budget: the warm-up step's own time is the estimate.
        return {**out, "tokens_per_s": batch * args.context / warm[-1], "step_ms": 1000 * warm[-1],
                "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
                "timed_steps": 0, "note": "from the warm-up step: the budget ended the timed ones"}
    finally:
        del one_step
    return {**out, "tokens_per_s": timing["timed_steps"] * batch * args.context / timing["elapsed"],
            "step_ms": timing["step_ms"], "peak_gib": timing["peak_gib"], "timed_steps": timing["timed_steps"]}


# -- nested-learning -----------------------------------------------------------------------------------

def import_nested_learning(path: str | None):
    for p in ([path] if path else NL_PATHS):
        if p and Path(p, "nested_learning").is_dir() and p not in sys.path:
            sys.path.insert(0, p)
    import nested_learning
    from nested_learning import training

    return nested_learning, training


def nl_config(nl, args, device: torch.device, batch: int, mode: str, steps: int):
    """The package's pilot_selfmod configuration (pilot.yaml, then hope/pilot_selfmod.yaml's
    overrides: its hydra `defaults` resolved by hand), sized and pointed at synthetic tokens."""
    from omegaconf import OmegaConf

    configs = Path(nl.__file__).parent / "configs"
    base = OmegaConf.load(configs / "pilot.yaml")
    over = OmegaConf.load(configs / "hope" / "pilot_selfmod.yaml")
    for cfg in (base, over):
        for key in ("defaults", "hydra"):
            cfg.pop(key, None)
    cfg = OmegaConf.merge(base, over)
    heads = args.heads or max(1, args.dim // 64)
    cfg.model.update(vocab_size=257, dim=args.dim, num_layers=args.depth, heads=heads,
                     gradient_checkpointing=bool(args.activation_checkpointing))
    cfg.data = OmegaConf.create({"source": "synthetic", "vocab_size": 257, "seq_len": args.context,
                                 "dataset_size": batch * (steps + 2), "batch_size": batch, "num_workers": 0})
    bf16 = args.precision == "bf16" or (args.precision == "auto" and device.type == "cuda")
    cfg.train.update(steps=steps, log_interval=10**9, device=str(device), seed=0,
                     mixed_precision={"enabled": bf16, "dtype": "bf16"}, compile={"enable": False})
    cfg.train.checkpoint.enable = False
    if mode == "offline":
        cfg.train.update(online_updates=False, per_layer_teach_signal=False)
    cfg.logging.enabled = False
    if args.nl_optim == "adamw":  # as nslang's specs: AdamW (lr 4e-4, weight decay 0.1, betas 0.9 / 0.95)
        cfg.optim = OmegaConf.create({"type": "adamw", "lr": 4e-4, "weight_decay": 0.1, "betas": [0.9, 0.95]})
    return cfg


def nl_row(args, device: torch.device, batch: int, mode: str) -> dict:
    nl, training = import_nested_learning(args.nl_path)
    version = getattr(nl, "__version__", "?")
    total = args.warmup_steps + args.steps
    cfg = nl_config(nl, args, device, batch, mode, total)
    stamps: list[float] = []
    info: dict = {}
    original = training._build_optimizer

    def timed_optimizer(model, cfg_, *, device):
        info["params"] = sum(p.numel() for p in model.parameters())
        opt = original(model, cfg_, device=device)
        inner = opt.step

        def step(*a, **kw):
            out = inner(*a, **kw)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            stamps.append(time.perf_counter())
            if len(stamps) == args.warmup_steps and device.type == "cuda":
                info["warm_peak"] = torch.cuda.max_memory_allocated(device)
                torch.cuda.reset_peak_memory_stats(device)
            if args.budget_s and len(stamps) > args.warmup_steps + 1:
                spent = stamps[-1] - stamps[args.warmup_steps - 1 if args.warmup_steps else 0]
                if spent * (len(stamps) + 1 - args.warmup_steps) / (len(stamps) - args.warmup_steps) > args.budget_s:
                    raise _OutOfTime  # enough timed steps for the budget
            return out

        opt.step = step
        info["optimizer"] = type(opt).__name__
        return opt

    training._build_optimizer = timed_optimizer
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    cut = False
    try:
        with alarm(args.budget_s + 30 if args.budget_s else None):
            training.run_training_loop(cfg, device=device)
    except _OutOfTime:
        cut = True
    finally:
        training._build_optimizer = original
    variant = cfg.model.get("block_variant")
    name = f"nested-learning {version} Hope ({variant}, {mode})"
    row = {"model": name, "params": info.get("params"), "batch": batch, "optimizer": info.get("optimizer", "?")}
    first = args.warmup_steps - 1 if args.warmup_steps else None
    t0 = stamps[first] if first is not None and len(stamps) > first else started
    timed = len(stamps) - (args.warmup_steps if args.warmup_steps else 0)
    if timed < 1 and stamps:
        # Not one timed step inside the budget: the first step (its setup included) is the estimate.
        spent = stamps[-1] - (stamps[-2] if len(stamps) > 1 else started)
        peak = max(info.get("warm_peak", 0), torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
        row.update(tokens_per_s=batch * args.context / spent, step_ms=1000 * spent, timed_steps=0,
                   peak_gib=peak / 2**30 if peak is not None else None,
                   note="from the warm-up step (model setup included): the budget ended the timed ones")
        return row
    if timed < 1:
        spent = time.perf_counter() - started
        row["error"] = (f"no timed step within {time.perf_counter() - started:.0f} s ({len(stamps)} step(s) "
                        f"done): under {batch * args.context / spent:,.1f} tokens/s")
        return row
    elapsed = stamps[-1] - t0
    row.update(tokens_per_s=timed * batch * args.context / elapsed, step_ms=1000 * elapsed / timed,
               peak_gib=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
               timed_steps=timed, note="cut by the time budget" if cut and timed < args.steps else "")
    return row


# -- the table -----------------------------------------------------------------------------------------

def table(rows: list[dict], args, device: torch.device) -> str:
    head = (f"dim {args.dim}, depth {args.depth}, context {args.context}, {device} "
            f"({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), precision {args.precision}, "
            f"torch {torch.__version__}, up to {args.steps} timed steps after {args.warmup_steps}, random byte tokens")
    base = next((r for r in rows if "transformer_pp" in r["model"] and "tokens_per_s" in r), None)
    peak_head = "peak GiB reserved (graph pool)" if args.cuda_graphs else "peak GiB"
    lines = [head, "", f"| model | params | batch | optimizer | tokens/s | ms/step | {peak_head} | vs Transformer++ | note |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        params = f"{r['params'] / 1e6:.1f}M" if r.get("params") else "?"
        if "tokens_per_s" not in r:
            lines.append(f"| {r['model']} | {params} | {r.get('batch', '')} | {r.get('optimizer', '')} | "
                         f"{r.get('error', 'failed')} | | | | |")
            continue
        peak = f"{r['peak_gib']:.2f}" if r.get("peak_gib") is not None else "-"
        ratio = f"{r['tokens_per_s'] / base['tokens_per_s']:.3f}x" if base else "-"
        note = r.get("note", "") + (f" ({r['timed_steps']} timed)" if 0 < r.get("timed_steps", args.steps) < args.steps
                                    else "")
        lines.append(f"| {r['model']} | {params} | {r['batch']} | {r['optimizer']} | {r['tokens_per_s']:,.0f} | "
                     f"{r['step_ms']:,.1f} | {peak} | {ratio} | {note.strip()} |")
    return "\n".join(lines)


def _error_row(name: str, batch: int, err: BaseException) -> dict:
    if isinstance(err, TrainError):
        text = f"does not compile: {err.message.splitlines()[0]}"
    elif is_out_of_memory(err):
        text = "out of memory"
    elif isinstance(err, _OutOfTime):
        text = "out of the time budget before one timed step"
    elif isinstance(err, ImportError):
        text = f"not importable: {err}"
    else:
        text = f"{type(err).__name__}: {str(err).splitlines()[0][:100] if str(err) else ''}"
    return {"model": name, "batch": batch, "error": text}


def _say(row: dict) -> None:
    what = row["error"] if "error" in row else f"{row['tokens_per_s']:,.0f} tokens/s at batch {row['batch']}"
    print(f"{row['model']}: {what}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--specs", default="transformer_pp,hope", help="nslang specs, comma-separated (stock names or files)")
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--depth", type=int, default=12)
    p.add_argument("--heads", type=int, default=None, help="default: each spec's own; nested-learning: dim / 64")
    p.add_argument("--context", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--hope-batch-size", type=int, default=None,
                   help="batch of every Hope (nslang specs named hope*, nested-learning); default: --batch-size")
    p.add_argument("--fit", action="store_true", help="halve the batch on out-of-memory until it fits")
    p.add_argument("--activation-checkpointing", action="store_true")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup-steps", type=int, default=1)
    p.add_argument("--budget-s", type=float, default=120.0, help="timed seconds per model (0: no limit)")
    p.add_argument("--nl-modes", default="offline,online", help="nested-learning modes to time ('' for none)")
    p.add_argument("--nl-optim", default="adamw", choices=["adamw", "config"],
                   help="nested-learning's outer optimizer: AdamW as nslang's specs, or its config's (Muon, which "
                   "0.2.0 also hands its 3-D conv weights: torch's Muon refuses them)")
    p.add_argument("--nl-path", default=None, help="where nested_learning is installed (default: /tmp/site, /tmp/nlpkg)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--compile", action="store_true", help="torch.compile the nslang models")
    p.add_argument("--offload-saved", type=float, default=0.0, metavar="MIB",
                   help="Hope specs (hope*): saved tensors of at least MIB wait in pinned host memory "
                        "(nslang train --offload-saved)")
    p.add_argument("--recompute-chunks", action="store_true",
                   help="recompute the self-modifying chunk steps in the backward (nslang train --recompute-chunks)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="replay the nslang models' forward and backward as a CUDA graph (nslang train --cuda-graphs)")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        specs = [_find(name.strip()) for name in args.specs.split(",") if name.strip()]  # all found, or stop now
        hope_batch = args.hope_batch_size or args.batch_size
        for spec in specs:
            batch = hope_batch if spec.stem.startswith("hope") else args.batch_size
            try:
                rows.append(with_fit(lambda b: nslang_row(spec, args, device, Path(tmp), b), batch, args.fit, device))
            except (Exception, _OutOfTime) as err:  # one failure must not hide the other numbers
                rows.append(_error_row(f"nslang {spec.stem}", batch, err))
            _say(rows[-1])
            _free(device)
        for mode in [m.strip() for m in args.nl_modes.split(",") if m.strip()]:
            try:
                rows.append(with_fit(lambda b: nl_row(args, device, b, mode), hope_batch, args.fit, device))
            except (Exception, _OutOfTime) as err:
                rows.append(_error_row(f"nested-learning {NL_VERSION} Hope ({mode})", hope_batch, err))
            _say(rows[-1])
            _free(device)
    print(table(rows, args, device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
