"""Training compiled nslang models: `train(RunConfig)`, checkpoints that resume exactly, sampling.

    config.py       RunConfig (every field documented), run files (TOML / JSON), overrides
    build.py        spec or package directory -> imported package (Config, Model, plan)
    loop.py         train(): the loop, evaluation, checkpoints, the NaN stop, OOM messages
    schedule.py     warmup + cosine / linear / constant learning rate
    periodic.py     cross-sequence levels: parameters stepped once per period of tokens
    checkpoint.py   atomic save, weights_only load, spec check, RNG states
    metrics.py      metrics.jsonl, TensorBoard, progress bar, loss plot
    nan_guard.py    the first module (and .nsam line) whose output went non-finite
    generate.py     sampling with the recurrent fast state
    distributed.py  DDP / FSDP2 under torchrun; a no-op on one process

Failures raise TrainError (a message and a hint; NonFiniteLoss and OutOfMemory are subclasses)
or the data layer's DataError; the CLI prints them and exits non-zero without a traceback.
"""
from .errors import NonFiniteLoss, OutOfMemory, TrainError

# The rest is imported on first use, so `from runtime.train.errors import TrainError` (the CLI's
# error handling) does not pay for importing torch.
_LAZY = {"RunConfig": "config", "load_run_config": "config", "read_run_file": "config",
         "generate_text": "generate", "greedy_recompute": "generate", "load_run": "generate", "sample": "generate",
         "RunResult": "loop", "StepInfo": "loop", "train": "loop"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["NonFiniteLoss", "OutOfMemory", "TrainError", *_LAZY]
