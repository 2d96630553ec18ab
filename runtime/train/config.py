"""The run configuration: one dataclass, read from a run file (TOML or JSON) and command-line
overrides, in that order of precedence (defaults < run file < command line).

A run file uses the field names below; `set` is a table of spec overrides:

    # run.toml
    spec = "specs/hope.nsam"
    steps = 300
    batch_size = 4
    context = 128
    [set]                 # written into a derived spec: model hope_run extends hope { dim = 128 }
    dim = 128
    depth = 2
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from .errors import TrainError


def _f(default, help: str, **kw):
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class RunConfig:
    """Everything a training run needs. Each field's help is what `nslang train --help` prints."""

    # what to train
    spec: str = _f("", "a .nsam spec, or a package directory made by `nslang compile`")
    model: str | None = _f(None, "which model of the spec file (default: the first)")
    set: dict = _f({}, "spec overrides KEY=VALUE (`dim=128`, `continuum.lr=0.01`), compiled as a "
                       "derived spec that extends the given one")
    out: str = _f("", "run directory: package, checkpoints, metrics, plot (default: runs/<spec name>)")
    # data
    data: str = _f("shakespeare", "corpus name (`nslang data list`), a prepared-corpus folder, or a "
                                   "generated task: task:NAME?key=value&... (runtime/data/tasks.py)")
    tokenizer: str = _f("byte", "byte (257 ids, needs nothing), gpt2, or bpe (trained on the corpus)")
    vocab_size: int | None = _f(None, "vocabulary size of a bpe tokenizer")
    val_fraction: float = _f(0.01, "share of the corpus's documents held out for validation")
    # steps and batches
    steps: int = _f(200, "optimizer steps in the whole run (a resumed run counts from its checkpoint)")
    batch_size: int = _f(8, "sequences per micro-batch, per process")
    context: int | None = _f(None, "tokens per training sequence (default: the model's context)")
    accumulation: int = _f(1, "micro-batches per optimizer step (gradient accumulation)")
    # optimisation (the optimizer itself comes from the spec; AdamW if the spec names none)
    lr: float | None = _f(None, "peak learning rate (default: the spec optimizer's lr)")
    warmup: int = _f(20, "steps of linear warmup from 0 to the peak learning rate")
    schedule: str = _f("cosine", "after warmup: cosine or linear decay to min_lr_ratio * lr, or constant",
                       choices=("cosine", "linear", "constant"))
    min_lr_ratio: float = _f(0.1, "final learning rate as a fraction of the peak")
    grad_clip: float = _f(1.0, "clip the global gradient norm to this (0: off)")
    seed: int = _f(0, "seed of the initial weights and of the data order")
    max_minutes: float | None = _f(None, "stop after this many minutes of training (counted from the first "
                                         "step of this invocation), write a checkpoint, and exit 0; the "
                                         "metrics record that the run was cut by time")
    # hardware
    device: str = _f("auto", "auto (cuda when present, else cpu), cpu, cuda, cuda:N")
    precision: str = _f("auto", "auto (bf16 autocast on CUDA, fp32 on CPU), bf16 or fp32",
                        choices=("auto", "bf16", "fp32"))
    compile: bool = _f(False, "torch.compile the loss step (models with in-context learning loops: "
                               "their per-chunk steps; runtime/train/compiling.py)")
    recompute_chunks: bool = _f(False, "keep only the state at the start of each span of the self-modifying "
                                        "memories' chunk steps for the backward and run the span again there: "
                                        "hope_two_pass's activations 517 -> 228 MiB on the CPU at 1,024 tokens "
                                        "(bench/activation_memory.py), about 1.8x the time (the exact signal's "
                                        "second-order passes keep their graphs either way)")
    offload_saved: float = _f(0.0, "MiB: tensors of at least this size that the forward saves for the backward wait "
                                    "in pinned host memory (CUDA; 0: off). For a Hope whose CMS writes are "
                                    "differentiable, each weight version of a fast level is one (runtime/train/offload.py)")
    cuda_graphs: bool = _f(False, "capture each micro-batch's forward and backward once as a CUDA graph and "
                                   "replay it (one GPU; for launch-bound models such as Hope; "
                                   "runtime/train/cuda_graph.py)")
    parallel: str = _f("ddp", "under torchrun: ddp (replicated weights) or fsdp (FSDP2, sharded)",
                       choices=("ddp", "fsdp"))
    # logging, evaluation, checkpoints
    log_every: int = _f(10, "steps between metric records")
    eval_every: int = _f(100, "steps between validation passes (0: only at the end)")
    eval_batches: int = _f(8, "validation batches per pass")
    save_every: int = _f(100, "steps between checkpoints (one is also written at the end)")
    keep: int = _f(2, "checkpoints to keep (older ones are deleted)")
    resume: str | None = _f(None, "continue a run: `latest` (the newest checkpoint in out) or a checkpoint path")
    tensorboard: bool = _f(False, "also write TensorBoard events to <out>/tensorboard")
    progress: bool = _f(True, "show a progress bar on stderr")

    # -- derived -------------------------------------------------------------------------------
    def resolved_out(self) -> Path:
        if self.out:
            return Path(self.out)
        spec = Path(self.spec.rstrip("/"))
        return Path("runs") / (spec.stem if spec.suffix == ".nsam" else spec.name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> "RunConfig":
        """Raise TrainError on a value no run can use; return self."""
        if not self.spec:
            raise TrainError("no spec to train", "give a .nsam spec or a compiled package directory "
                             "(`nslang train specs/hope.nsam`), or `spec = ...` in the run file")
        positive = ("steps", "batch_size", "accumulation", "log_every", "eval_batches", "save_every", "keep")
        for name in positive:
            if getattr(self, name) < 1:
                raise TrainError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup", "eval_every"):
            if getattr(self, name) < 0:
                raise TrainError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.context is not None and self.context < 1:
            raise TrainError(f"context must be at least 1, got {self.context}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise TrainError(f"lr must be a positive number, got {self.lr}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise TrainError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.max_minutes is not None and not (self.max_minutes > 0 and math.isfinite(self.max_minutes)):
            raise TrainError(f"max_minutes must be a positive number of minutes, got {self.max_minutes}")
        if not (self.offload_saved >= 0 and math.isfinite(self.offload_saved)):
            raise TrainError(f"offload_saved must be 0 (off) or a size in MiB, got {self.offload_saved}")
        if self.offload_saved and self.cuda_graphs:
            raise TrainError("--offload-saved and --cuda-graphs do not combine: a graph replays fixed GPU "
                             "buffers, so its saved tensors cannot move to the host",
                             "drop one: --offload-saved when memory runs out, --cuda-graphs when it fits")
        if self.grad_clip < 0:
            raise TrainError(f"grad_clip must be 0 (off) or positive, got {self.grad_clip}")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise TrainError(f"{f.name} must be one of {', '.join(choices)}, got {getattr(self, f.name)!r}")
        for key, value in self.set.items():
            _check_override(key, value)
        return self


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
_TYPES = get_type_hints(RunConfig)


def _check_override(key: str, value) -> None:
    if not all(part.isidentifier() for part in str(key).split(".")):
        raise TrainError(f"spec override {key!r} is not a setting or member.option name",
                         "write set.dim = 128 or --set continuum.lr=0.01")
    text = render_value(value)
    if any(c in text for c in "\n;{}#"):
        raise TrainError(f"spec override {key} = {text!r} holds a newline, ';', '{{', '}}' or '#'",
                         "give one value per override")


def render_value(value) -> str:
    """A run-file value as .nsam text (strings are taken as .nsam text already: `swiglu`, `2x`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    return str(value)


def _unknown(name: str, where: str) -> TrainError:
    close = difflib.get_close_matches(name, list(FIELDS), n=1)
    return TrainError(f"unknown run setting {name!r} in {where}",
                      f"did you mean {close[0]!r}?" if close else f"known settings: {', '.join(FIELDS)}")


def coerce(name: str, value: Any, where: str = "the command line") -> Any:
    """Turn a run-file or command-line value into the field's type, or raise TrainError."""
    if name not in FIELDS:
        raise _unknown(name, where)
    kind = _TYPES[name]
    optional = type(None) in getattr(kind, "__args__", ())
    base = next((a for a in getattr(kind, "__args__", (kind,)) if a is not type(None)), kind)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "")):
        if optional:
            return None
        raise TrainError(f"{name} needs a value ({base.__name__})")
    try:
        if base is bool:
            if isinstance(value, str):
                low = value.lower()
                if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return low in ("true", "1", "yes", "on")
            if not isinstance(value, (bool, int)):
                raise ValueError(value)
            return bool(value)
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(str(value).replace("_", "")) if isinstance(value, str) else int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if base is dict:
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
        if isinstance(value, (dict, list)):
            raise ValueError(value)
        return str(value)
    except (TypeError, ValueError):
        raise TrainError(f"{name} = {value!r} in {where} is not a valid {base.__name__}") from None


def read_run_file(path: str | Path) -> dict:
    """The settings of a TOML (.toml) or JSON (.json) run file, coerced to the field types."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise TrainError(f"cannot read run file {path}: {err.strerror or err}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise TrainError(f"{path}:{err.lineno}:{err.colno}: not valid JSON: {err.msg}") from None
    else:
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise TrainError(f"{path}: not valid TOML: {err}",
                             "run files are TOML (key = value lines) or JSON (a .json file)") from None
    if not isinstance(data, dict):
        raise TrainError(f"{path} must hold a table of settings")
    out = {k: coerce(k, v, str(path)) for k, v in data.items()}
    if "spec" in out and out["spec"] and not Path(out["spec"]).is_absolute():
        # A spec named in a run file is relative to the run file, like an extends path.
        candidate = path.parent / out["spec"]
        if candidate.exists():
            out["spec"] = str(candidate)
    return out


def load_run_config(run_file: str | Path | None = None, overrides: dict | None = None) -> RunConfig:
    """Defaults, then the run file, then `overrides` (already-typed values or strings)."""
    values: dict = {}
    if run_file:
        values.update(read_run_file(run_file))
    for key, value in (overrides or {}).items():
        if key == "set" and isinstance(value, dict):
            values["set"] = {**values.get("set", {}), **value}
        else:
            values[key] = coerce(key, value)
    return RunConfig(**values).validate()


def parse_set(items: list[str]) -> dict:
    """`--set KEY=VALUE` items -> {key: value text}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise TrainError(f"--set {item!r} is not KEY=VALUE", "for example --set dim=128")
        out[key.strip()] = value.strip()
    return out
