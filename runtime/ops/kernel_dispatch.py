"""One rule for every op that has a Triton kernel: run the kernel or the PyTorch reference.

    impl = "auto"       the kernel on CUDA when triton imports and it takes the call, else the
                        reference (TRITON_INTERPRET=1 does not make "auto" pick it on CPU);
           "kernel"     the kernel, or an error saying why it cannot run;
           "reference"  the PyTorch chunk form.

`chosen` is what codegen chose for the memory (nslang/kernels.py, written into the generated
model): the kernel's constexpr parameters. `actual` gives the same parameters as read from this
call; if they differ the generated model and its layer disagree, which is a bug, so it raises
rather than silently compiling another specialisation.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Callable

import torch

HAS_TRITON = importlib.util.find_spec("triton") is not None
IMPLS = ("auto", "kernel", "reference")


def kernel_usable(x: torch.Tensor) -> bool:
    # TRITON_INTERPRET=1 runs the kernels on CPU tensors (tests); otherwise they need CUDA.
    return HAS_TRITON and (x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1")


def run(impl: str, x: torch.Tensor, reference: Callable, load: Callable, chosen: dict | None = None,
        actual: dict | None = None):
    """reference() runs the PyTorch form; load() imports the kernel module lazily (triton is
    optional) and returns (launch, why_not): launch() runs the kernel, why_not() is None when the
    kernel takes the call, else the reason."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(map(repr, IMPLS))}, got {impl!r}")
    if chosen is not None and actual is not None:
        wrong = {k: (v, actual[k]) for k, v in chosen.items() if k in actual and actual[k] != v}
        if wrong:
            detail = ", ".join(f"{k}: generated {g!r}, call {c!r}" for k, (g, c) in wrong.items())
            raise ValueError(f"the kernel parameters the model was generated with do not match "
                             f"the call ({detail}); recompile the spec")
    if impl == "reference":
        return reference()
    if impl == "kernel":
        if not HAS_TRITON:
            raise RuntimeError("impl='kernel' needs triton (pip install 'nslang[kernels]')")
        if not kernel_usable(x):
            raise RuntimeError("impl='kernel' needs CUDA tensors (or TRITON_INTERPRET=1)")
    elif not (x.is_cuda and HAS_TRITON):
        return reference()
    launch, why_not = load()
    reason = why_not()
    if reason is None:
        return launch()
    if impl == "auto":
        return reference()
    raise ValueError(f"the Triton kernel does not support this call: {reason}")
