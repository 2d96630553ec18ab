"""The training loop: `train(RunConfig)` from a spec (or compiled package) to a run directory.

    <out>/package/          the compiled model (when trained from a spec), with plan.json
    <out>/spec/             the derived spec, when the run has `set` overrides
    <out>/run.json          the resolved run configuration
    <out>/metrics.jsonl     train / val records and events (metrics.py)
    <out>/loss.png          training and validation loss and throughput
    <out>/checkpoints/      step_N.pt, the newest `keep` of them (checkpoint.py)

One optimizer step: `accumulation` micro-batches of `batch_size` sequences of `context` tokens
(per process), each backward scaled by 1/accumulation; bf16 autocast on CUDA; the global
gradient norm clipped; cross-sequence levels held back until their period (periodic.py); the
learning rate from the schedule (schedule.py); then the spec's outer optimizer. The loss and the
gradient norm are read back every step (one device sync): a NaN or inf stops the run before the
optimizer can write it into the weights, so every checkpoint on disk stays finite. Under
--cuda-graphs the forward and backward are one replayed graph (cuda_graph.py); the rest is as above.

Exactness of --resume: the data position, the optimizer state, the periodic gradient sums and the
random generators are all in the checkpoint, and the schedule is a function of the step, so a run
resumed at step k computes the same losses as one that never stopped (tested on the CPU).

A wall-clock limit (`max_minutes`) is checked on every step: the step that crosses it completes,
a checkpoint is written, a `time_limit` event is logged, the final validation runs, and `train`
returns normally (`RunResult.stopped == "time_limit"`); `--resume` continues the run.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from ..layers.common import use_recomputed_chunks
from .offload import offloaded
from . import build, checkpoint, distributed, metrics, schedule
from .compiling import compile_for_training
from .cuda_graph import GraphedStep, graph_device_error
from .config import RunConfig
from .errors import NonFiniteLoss, OutOfMemory, TrainError, is_out_of_memory
from .nan_guard import diagnose
from .periodic import PeriodicGrads


class LossModule(nn.Module):
    """`model.loss(tokens)` as a forward, so that DDP / FSDP / torch.compile wrap the whole step."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.loss(tokens)


@dataclass
class StepInfo:
    """What callbacks see after every optimizer step."""

    step: int
    loss: float
    lr: float
    grad_norm: float
    tokens: int
    out: Path


@dataclass
class RunResult:
    out: Path
    step: int
    tokens: int
    losses: dict[int, float] = field(default_factory=dict)  # step -> train loss, this process's steps
    val_loss: float | None = None
    tokens_per_s: float = float("nan")
    checkpoint: Path | None = None
    plot: Path | None = None
    peak_memory: int | None = None
    stopped: str | None = None  # "time_limit" when max_minutes cut the run short


def make_optimizer(spec_optimizer: dict, model: nn.Module, lr: float | None):
    """The spec's outer optimizer over the model's parameters. Weight decay, when the spec asks for
    it, applies to matrices only (embeddings and projections); norms, gains and biases get none.
    Returns the optimizer and the parameter names in the order its state_dict numbers them."""
    from runtime.optim import build_optimizer

    options = {k: v for k, v in spec_optimizer.items() if k not in ("name", "kind")}
    kind = spec_optimizer.get("kind") or spec_optimizer.get("name") or "adamw"
    if lr is not None:
        options["lr"] = lr
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if options.get("weight_decay"):
        groups = [{"params": [p for _, p in named if p.ndim >= 2], "names": [n for n, p in named if p.ndim >= 2]},
                  {"params": [p for _, p in named if p.ndim < 2], "names": [n for n, p in named if p.ndim < 2],
                   "weight_decay": 0.0}]
        groups = [g for g in groups if g["params"]]
    else:
        groups = [{"params": [p for _, p in named], "names": [n for n, _ in named]}]
    names = [n for g in groups for n in g.pop("names")]
    try:
        opt = build_optimizer(kind, groups, **options)
    except (TypeError, ValueError) as err:
        raise TrainError(f"the spec's optimizer `{spec_optimizer.get('name', kind)}` ({kind}) cannot be built: {err}",
                         "check its options against docs/language.md, section Optimizers") from None
    return opt, names


def _has_in_context_loops(model: nn.Module) -> bool:
    """A CMS that learns inside the context (the model's segment loop) or a self-modifying memory
    (its chunk loop): the launch-bound models."""
    from ..layers import SelfModifying

    return bool(getattr(model, "segment", 0)) or any(isinstance(m, SelfModifying) for m in model.modules())


def summed_validation_loss(loss_module: nn.Module, batch: torch.Tensor, can_split: bool) -> torch.Tensor:
    """The batch's token losses summed (float64). On out-of-memory, if `can_split`, the two halves
    of the batch instead: under --cuda-graphs the captured step's memory stays reserved while the
    validation runs eagerly beside it (a hope_two_pass 512x4 run ran out there, bench/RESULTS.md).
    Each sequence's loss is its own, so the sum is the same up to rounding. Not under torchrun:
    a rank that retried alone would leave the others waiting in a collective."""
    try:
        return loss_module(batch).double() * batch[:, 1:].numel()
    except RuntimeError as err:  # torch.OutOfMemoryError is one
        if not (can_split and is_out_of_memory(err) and batch.shape[0] > 1):
            raise
    if batch.is_cuda:
        torch.cuda.empty_cache()
    half = batch.shape[0] // 2
    return (summed_validation_loss(loss_module, batch[:half], can_split)
            + summed_validation_loss(loss_module, batch[half:], can_split))


def _autocast(device: torch.device, precision: str):
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return lambda **_: contextlib.nullcontext()
    return lambda **kw: torch.autocast(device_type=device.type, dtype=torch.bfloat16, **kw)


class _Interrupt:
    """First Ctrl-C: finish the step, save, stop. Second: stop at once."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def train(cfg: RunConfig, callbacks: Sequence[Callable[[StepInfo], None]] = (), stream=None) -> RunResult:
    """Train `cfg.spec` as `cfg` says; see the module docstring. Raises TrainError (and its
    subclasses NonFiniteLoss, OutOfMemory), DataError, or KeyboardInterrupt after saving."""
    from runtime.data import BatchSampler, ValidationIterator, open_corpus

    cfg.validate()
    out = cfg.resolved_out()
    dist = distributed.init(cfg.device, cfg.parallel)
    try:
        # -- what to resume -------------------------------------------------------------------
        ckpt_dir = out / "checkpoints"
        payload, resume_path = None, None
        if cfg.resume:
            resume_path = checkpoint.latest(ckpt_dir) if cfg.resume == "latest" else Path(cfg.resume)
            if resume_path is None:
                raise TrainError(f"--resume: {ckpt_dir} holds no checkpoint",
                                 "train without --resume to start the run, or give --resume PATH")
            payload = checkpoint.load(resume_path)
        elif checkpoint.list_checkpoints(ckpt_dir):
            step_done = checkpoint.list_checkpoints(ckpt_dir)[-1][0]
            raise TrainError(f"{out} already holds a run (checkpoints up to step {step_done})",
                             "pass --resume to continue it, or --out DIR for a new run")

        # -- the model's package -------------------------------------------------------------------
        check = (lambda h: checkpoint.check_spec(payload, h, resume_path)) if payload else None
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            pkg = build.load(cfg.spec, out, cfg.model, cfg.set, before_write=check)
        distributed.barrier(dist)
        if not dist.is_main:
            pkg = build.open_package(cfg.spec if Path(cfg.spec).is_dir() else out / "package")
        model_cfg = pkg.Config()

        # -- data ----------------------------------------------------------------------------------
        corpus_args = dict(tokenizer=cfg.tokenizer, vocab_size=cfg.vocab_size, val_fraction=cfg.val_fraction)
        if dist.is_main:
            corpus = open_corpus(cfg.data, progress=cfg.progress, **corpus_args) \
                if not (Path(cfg.data) / "meta.json").is_file() else open_corpus(cfg.data)
        distributed.barrier(dist)
        if not dist.is_main:
            corpus = open_corpus(cfg.data, progress=False, **corpus_args) \
                if not (Path(cfg.data) / "meta.json").is_file() else open_corpus(cfg.data)
        if corpus.vocab_size > model_cfg.vocab:
            raise TrainError(f"the corpus {corpus.name} ({corpus.meta['tokenizer'].get('name', cfg.tokenizer)}) "
                             f"has {corpus.vocab_size} token ids, more than the model's vocab of {model_cfg.vocab}",
                             f"set `vocab = {corpus.vocab_size}` in the spec (or --set vocab={corpus.vocab_size})")
        seq_len = cfg.context or model_cfg.context
        if seq_len > model_cfg.context:
            raise TrainError(f"--context {seq_len} is longer than the model's context of {model_cfg.context}",
                             f"lengthen the model's context (--set context={seq_len}) or train on shorter sequences")
        device = dist.device
        sampler = BatchSampler(corpus, cfg.batch_size, seq_len, seed=cfg.seed, rank=dist.rank,
                               world_size=dist.world, device=device)
        has_val = corpus.meta["splits"]["val"]["tokens"] > seq_len
        if has_val:
            ValidationIterator(corpus, cfg.batch_size, seq_len)  # fail now, not after training, if too short

        # -- model, optimizer ----------------------------------------------------------------------
        torch.manual_seed(cfg.seed)
        model = pkg.Model(model_cfg).to(device)
        loss_module = distributed.wrap(LossModule(model), model, dist)
        optimizer, names = make_optimizer(pkg.optimizer, model, cfg.lr)
        schedule.remember_peaks(optimizer)
        peaks = [{k: v for k, v in g.items() if k.startswith("peak_")} for g in optimizer.param_groups]
        tokens_per_step = cfg.batch_size * seq_len * cfg.accumulation * dist.world
        periodic = PeriodicGrads(model, tokens_per_step)
        step, tokens = 0, 0
        if payload is not None:
            distributed.load_model_state(model, payload["model"], dist)
            distributed.load_optimizer_state(model, optimizer, payload["optimizer"], names, dist)
            for group, peak in zip(optimizer.param_groups, peaks):
                group.update(peak)  # the peak comes from this run's spec / --lr, not the file
            sampler.load_state_dict(payload["data"])
            periodic.load_state_dict(payload.get("periodic", {}))
            if "rng" in payload:
                checkpoint.set_rng_state(payload["rng"])
            step, tokens = int(payload["step"]), int(payload["tokens"])
        train_module = compile_for_training(loss_module, model) if cfg.compile else loss_module
        use_recomputed_chunks(cfg.recompute_chunks)
        autocast = _autocast(device, cfg.precision)
        graphed = None  # the captured step under --cuda-graphs, made at the first step
        if cfg.cuda_graphs and (why := graph_device_error(device, dist.active)):
            raise why

        log_ = metrics.MetricsLog(out, enabled=dist.is_main, tensorboard=cfg.tensorboard and dist.is_main)
        bar = metrics.Progress(cfg.steps, start=step, enabled=cfg.progress and dist.is_main, stream=stream,
                               every=cfg.log_every)
        result = RunResult(out, step, tokens)
        say = bar.message if dist.is_main else (lambda text: None)
        if dist.is_main:
            _write_json(out / "run.json", {"config": cfg.to_dict(), "package": str(pkg.path),
                                           "spec_hash": pkg.spec_hash, "model": pkg.model_name,
                                           "corpus": str(corpus.path), "tokenizer": corpus.meta["tokenizer"],
                                           "world_size": dist.world, "device": str(device)})
        n_params = sum(p.numel() for p in model.parameters())
        say(f"{pkg.model_name}: {n_params / 1e6:.2f}M parameters, optimizer {pkg.optimizer.get('kind')}, "
            f"{tokens_per_step} tokens/step on {dist.world} x {device}, corpus {corpus.name}")
        if dist.active and dist.strategy == "fsdp" and distributed.state_from_parameters(model):
            say("note: the initial fast state is built from parameters before the blocks run: FSDP shards "
                "the model as one unit (optimizer and gradient memory are sharded, parameters are gathered)")
        for note in pkg.notes + periodic.notes:
            say(f"note: {note}")
        if device.type == "cuda" and not dist.active and not cfg.cuda_graphs and _has_in_context_loops(model):
            say("note: this model's in-context memories run a loop of small operators per chunk, and "
                "the GPU mostly waits for their launches; --cuda-graphs replays the step as one graph "
                "(Hope: 7.7-8.5x faster steps on an H100, bench/RESULTS.md)")
        if periodic.summary():
            say(periodic.summary())
        log_.write({"kind": "event", "step": step, "event": "resume" if payload else "start",
                    "time": time.time(), **({"from": str(resume_path)} if payload else {})})
        if payload:
            say(f"resumed from {resume_path} at step {step}")

        def save(at_step: int) -> Path:
            state = {
                "step": at_step, "tokens": tokens,
                "spec": {"hash": pkg.spec_hash, "model": pkg.model_name, "files": pkg.spec_files},
                "model": distributed.model_state(model, dist),
                "optimizer": distributed.optimizer_state(model, optimizer, names, dist),
                "periodic": periodic.state_dict(),
                "data": sampler.state_dict(),
                "rng": checkpoint.rng_state(),
                "config": cfg.to_dict(),
                "tokenizer": corpus.meta["tokenizer"],
                "corpus": str(corpus.path),
            }
            path = checkpoint.path_for(ckpt_dir, at_step)
            if dist.is_main:
                try:
                    checkpoint.save(state, path, keep=cfg.keep)
                except OSError as err:
                    raise TrainError(f"cannot write checkpoint {path}: {err.strerror or err}",
                                     "free disk space or fix permissions; the earlier checkpoints are intact, "
                                     "continue with --resume") from None
            distributed.barrier(dist)
            result.checkpoint = path
            return path

        def evaluate() -> float | None:
            if not has_val:
                return None
            val = ValidationIterator(corpus, cfg.batch_size, seq_len, max_batches=cfg.eval_batches,
                                     rank=dist.rank, world_size=dist.world, device=device)
            n_batches = int(distributed.all_reduce(dist, torch.tensor([len(val)], device=device), "min").item())
            sums = torch.zeros(2, device=device, dtype=torch.float64)
            model.eval()
            with torch.no_grad(), autocast():
                for i, batch in enumerate(val):
                    if i >= n_batches:
                        break
                    sums[0] += summed_validation_loss(loss_module, batch, can_split=dist.world == 1)
                    sums[1] += batch[:, 1:].numel()
            model.train()
            distributed.all_reduce(dist, sums)
            return float(sums[0] / sums[1]) if sums[1] > 0 else None

        # -- the loop -------------------------------------------------------------------------------
        model.train()
        window_loss, window_steps, window_tokens, window_time = 0.0, 0, 0, 0.0
        last_loss = float("nan")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        # The wall-clock limit: every rank checks its own clock, and the flag rides in the per-step
        # all-reduce (max) with the loss, so all ranks stop after the same step.
        loop_start = time.monotonic()
        deadline = loop_start + 60.0 * cfg.max_minutes if cfg.max_minutes is not None else math.inf
        with _Interrupt() as interrupt:
            while step < cfg.steps:
                t0 = time.perf_counter()
                next_step = step + 1
                lr = schedule.apply(optimizer, schedule.lr_factor(next_step, cfg.steps, cfg.warmup, cfg.schedule,
                                                                  cfg.min_lr_ratio))
                batches = []
                try:
                    if cfg.cuda_graphs:
                        batches = [sampler.next_batch() for _ in range(cfg.accumulation)]
                        if graphed is None:
                            graphed = GraphedStep(train_module, list(model.parameters()), batches[0],
                                                  cfg.accumulation, autocast)
                        loss_sum = graphed(batches)
                    else:
                        loss_sum = torch.zeros((), device=device)
                        for micro in range(cfg.accumulation):
                            batch = sampler.next_batch()
                            batches.append(batch)
                            with distributed.no_sync(loss_module, dist, skip=micro < cfg.accumulation - 1), \
                                    autocast(), offloaded(cfg.offload_saved):
                                loss = train_module(batch)
                            (loss / cfg.accumulation).backward()
                            loss_sum += loss.detach().float() / cfg.accumulation
                    params = [p for p in model.parameters() if p.grad is not None]
                    max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if params \
                        else torch.zeros((), device=device)
                    stats = torch.stack([loss_sum, distributed.local(grad_norm).float().to(device),
                                         torch.tensor(float(interrupt.requested), device=device),
                                         torch.tensor(float(time.monotonic() >= deadline), device=device)])
                    if dist.active:
                        stats[0] /= dist.world
                        distributed.all_reduce(dist, stats[:1])
                        distributed.all_reduce(dist, stats[1:], "max")
                    loss_value, norm_value, stop, out_of_time = stats.tolist()
                except Exception as err:
                    if is_out_of_memory(err):
                        raise _oom_error(err, cfg, seq_len, device, next_step, model=model) from None
                    raise
                if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
                    what = "loss" if not math.isfinite(loss_value) else "gradient norm"
                    value = loss_value if what == "loss" else norm_value
                    finding = diagnose(model, lambda: [loss_module(b) for b in batches], pkg.sublayers())
                    log_.write({"kind": "event", "step": next_step, "event": "nonfinite", "what": what,
                                "value": str(value), "finding": finding.describe(), "time": time.time()})
                    kept = checkpoint.latest(ckpt_dir)
                    raise NonFiniteLoss(
                        f"the {what} became {value} at step {next_step}: {finding.describe()}",
                        (f"the last good checkpoint is {kept}; " if kept else "no checkpoint was written yet; ")
                        + "try a lower --lr, a longer --warmup or --grad-clip, or check that memory's lr/retain"
                        + finding.hint())
                periodic.gate(next_step)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step, tokens = next_step, tokens + tokens_per_step
                dt = time.perf_counter() - t0
                result.losses[step] = loss_value
                last_loss = loss_value
                window_loss += loss_value
                window_steps += 1
                window_tokens += tokens_per_step
                window_time += dt
                bar.update(step, loss_value, window_tokens / window_time if window_time else float("nan"))
                timed_out = bool(out_of_time) and step < cfg.steps
                if step % cfg.log_every == 0 or step == cfg.steps or timed_out:
                    tput = window_tokens / window_time if window_time else float("nan")
                    record = {"kind": "train", "step": step, "tokens": tokens, "loss": window_loss / window_steps,
                              "lr": lr, "grad_norm": norm_value, "tokens_per_s": tput, "time": time.time()}
                    if device.type == "cuda":
                        record["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                    log_.write(record)
                    result.tokens_per_s = tput
                    window_loss, window_steps, window_tokens, window_time = 0.0, 0, 0, 0.0
                if cfg.eval_every and step % cfg.eval_every == 0 and step != cfg.steps:
                    result.val_loss = _log_val(log_, evaluate(), step, tokens, say)
                if step % cfg.save_every == 0 or step == cfg.steps or stop or timed_out:
                    save(step)
                for cb in callbacks:
                    cb(StepInfo(step, loss_value, lr, norm_value, tokens, out))
                if stop:
                    log_.write({"kind": "event", "step": step, "event": "interrupted", "time": time.time()})
                    bar.close()
                    say(f"interrupted: saved {result.checkpoint}; continue with --resume")
                    raise KeyboardInterrupt
                if timed_out:
                    elapsed = time.monotonic() - loop_start
                    log_.write({"kind": "event", "step": step, "event": "time_limit", "max_minutes": cfg.max_minutes,
                                "elapsed_s": elapsed, "tokens": tokens, "time": time.time()})
                    result.stopped = "time_limit"
                    say(f"time limit: {cfg.max_minutes:g} min reached after step {step} of {cfg.steps} "
                        f"({elapsed / 60:.2f} min); saved {result.checkpoint}; continue with --resume")
                    break
        bar.close()
        result.val_loss = _log_val(log_, evaluate(), step, tokens, say)
        if result.checkpoint is None:  # a resumed run that had nothing left to do
            result.checkpoint = checkpoint.latest(ckpt_dir)
        log_.write({"kind": "event", "step": step, "event": "end", "time": time.time(),
                    **({"reason": result.stopped} if result.stopped else {})})
        result.step, result.tokens = step, tokens
        if device.type == "cuda":
            result.peak_memory = torch.cuda.max_memory_allocated(device)
        if not result.losses:
            say(f"{out} is already at step {step} of {cfg.steps}: nothing to train (raise --steps to go on)")
        say(f"done: step {step}" + (f", train loss {last_loss:.4f}" if math.isfinite(last_loss) else "")
            + (f", val loss {result.val_loss:.4f}" if result.val_loss is not None else "")
            + (f", {result.tokens_per_s:,.0f} tokens/s" if math.isfinite(result.tokens_per_s) else ""))
        finished = True
        return result
    except Exception as err:
        if is_out_of_memory(err):  # outside a step: moving the model, evaluating, gathering a checkpoint
            where = locals()
            raise _oom_error(err, cfg, where.get("seq_len") or cfg.context, dist.device,
                             where.get("step", 0) + 1, "" if "model" in where else "moving the model to the device") \
                from None
        raise
    finally:
        if "log_" in locals():
            log_.close()
            if dist.is_main:
                try:
                    result.plot = metrics.plot(out / metrics.METRICS, out / metrics.PLOT,
                                               title=f"{pkg.model_name} ({cfg.steps} steps)")
                except Exception as err:  # a plot must never hide the run's own outcome
                    print(f"warning: could not draw {out / metrics.PLOT}: {err}", file=sys.stderr)
        distributed.teardown(dist, sync=locals().get("finished", False))


def _log_val(log_, value: float | None, step: int, tokens: int, say) -> float | None:
    if value is None:
        return None
    log_.write({"kind": "val", "step": step, "tokens": tokens, "val_loss": value,
                "val_bits_per_token": value / math.log(2), "time": time.time()})
    say(f"step {step}: val loss {value:.4f} ({value / math.log(2):.3f} bits/token)")
    return value


def _oom_error(err: BaseException, cfg: RunConfig, seq_len, device: torch.device, step: int,
               doing: str = "", model: nn.Module | None = None) -> OutOfMemory:
    from ..layers.selfmod import SelfModifying

    detail, first = "", ""
    # With self-modifying memories, recomputing their chunk steps trades time for memory (runtime/
    # ops/self_modifying_titans/chunk.py), except under the exact CMS signal, whose second-order
    # passes keep the recomputed graphs anyway: there the two_pass signal is the first saving.
    if model is not None and any(isinstance(m, SelfModifying) for m in model.modules()):
        if getattr(model, "segment", 0) and getattr(model, "cms_signal", None) != "two_pass":
            first = ("train the two_pass CMS signal (--set continuum.signal=two_pass, as specs/hope_two_pass.nsam: "
                     "no second-order graph) with --recompute-chunks, ")
        elif not cfg.recompute_chunks:
            first = "add --recompute-chunks (the self-modifying memories' chunk steps run again in the backward), "
    if device.type == "cuda":
        _, total = torch.cuda.mem_get_info(device)
        peak = torch.cuda.max_memory_allocated(device)
        detail = f"; peak {peak / 2**30:.1f} GiB allocated of {total / 2**30:.1f} GiB"
    return OutOfMemory(
        f"out of {'GPU ' if device.type == 'cuda' else ''}memory {doing or f'at step {step}'} with batch "
        f"{cfg.batch_size} x {seq_len or 'context'} tokens (accumulation {cfg.accumulation}){detail}",
        f"{first}lower --batch-size and raise --accumulation (the same tokens per step: e.g. --batch-size "
        f"{max(1, cfg.batch_size // 2)} --accumulation {cfg.accumulation * 2}), shorten --context, "
        "or shard the model with torchrun ... --parallel fsdp")


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
