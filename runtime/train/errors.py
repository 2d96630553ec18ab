"""The trainer's error types. Each carries a message that stands on its own and a hint; the CLI
prints both and exits non-zero without a traceback."""
from __future__ import annotations


class TrainError(Exception):
    """Bad input to a run: a run file, a spec, a checkpoint, a device. Exit status 1."""

    exit_code = 1

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message, self.hint = message, hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class NonFiniteLoss(TrainError):
    """The loss or the gradient norm became NaN or inf. Exit status 3."""

    exit_code = 3


class OutOfMemory(TrainError):
    """The device ran out of memory. Exit status 4."""

    exit_code = 4


def is_out_of_memory(err: BaseException) -> bool:
    """A device allocation failure: CUDA's OutOfMemoryError, or a RuntimeError saying so (the CPU
    allocator, older CUDA builds)."""
    import torch

    if isinstance(err, torch.OutOfMemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
