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


# cuDNN and cuBLAS allocate their own workspaces and report a failure in their own words.
_ALLOC_FAILED = ("out of memory", "can't allocate memory", "CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED")
# cuDNN also says INTERNAL_ERROR when a workspace allocation fails (a Hope ablation on a GPU shared
# by four jobs, bench/RESULTS.md): taken as out of memory only when the card is nearly full.
_INTERNAL = ("CUDNN_STATUS_INTERNAL_ERROR", "CUBLAS_STATUS_INTERNAL_ERROR")
NEARLY_FULL = 0.10  # free fraction of the card under which a library's internal error counts as memory


def is_out_of_memory(err: BaseException, free_fraction=None) -> bool:
    """A device allocation failure: CUDA's OutOfMemoryError, a RuntimeError saying so (the CPU
    allocator, older CUDA builds, cuDNN, cuBLAS), or a cuDNN/cuBLAS internal error while the card
    has under NEARLY_FULL of its memory free (`free_fraction()`, default: the current CUDA
    device's)."""
    import torch

    if isinstance(err, torch.OutOfMemoryError):
        return True
    if not isinstance(err, RuntimeError):
        return False
    text = str(err)
    if any(s in text for s in _ALLOC_FAILED):
        return True
    if any(s in text for s in _INTERNAL):
        return (free_fraction or _cuda_free_fraction)() < NEARLY_FULL
    return False


def _cuda_free_fraction() -> float:
    import torch

    if not torch.cuda.is_available():
        return 1.0
    try:
        free, total = torch.cuda.mem_get_info()
    except RuntimeError:  # the context itself is broken: no evidence either way
        return 1.0
    # memory this process holds in its cache is free to it too
    return (free + torch.cuda.memory_reserved() - torch.cuda.memory_allocated()) / total
