"""Pieces shared by the layers: norms, rotary positions, head splitting."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

# Which implementation of each rule the layers call:
#   "fast"      Triton kernels on CUDA where a rule has one, else the chunk-parallel form;
#   "kernel"    the Triton kernel (an error for rules without one, or without CUDA);
#   "chunk"     the PyTorch chunk-parallel form;
#   "reference" the token-by-token definition.
# `nslang compile --check` and the tests compare them; users force one with `implementation()`.
MODES = ("fast", "kernel", "chunk", "reference")
_MODE = ["fast"]


@contextlib.contextmanager
def implementation(mode: str):
    if mode not in MODES:
        raise ValueError(f"implementation is one of {', '.join(MODES)}, not {mode!r}")
    _MODE.append(mode)
    try:
        yield
    finally:
        _MODE.pop()


def alias_weight(w: torch.Tensor, outer_grad: bool) -> torch.Tensor:
    """A fresh autograd node for w: gradients taken w.r.t. it count only later uses. Outside
    training it is a detached leaf, so the in-context update still runs under no_grad."""
    if outer_grad:
        return w.view_as(w)
    return w.detach().requires_grad_(True)


_SECOND_ORDER = [False]


@contextlib.contextmanager
def second_order(on: bool = True):
    """A pass whose gradient is taken with create_graph (the exact CMS signal's, when the outer
    gradient goes through it): the Triton kernels' backwards are first-order, so "fast" runs the
    chunk forms there (runtime/model_base.py turns it on for those passes)."""
    _SECOND_ORDER.append(on)
    try:
        yield
    finally:
        _SECOND_ORDER.pop()


_COMPILED_OPS = [False]


@contextlib.contextmanager
def compiled_ops(on: bool = True):
    """Run the chunk steps of ops that offer one (self-modifying Titans) through torch.compile.
    Same math, fewer kernel launches. First-order autograd only: the exact CMS signal's
    create_graph pass turns it off for itself (runtime/model_base.py)."""
    _COMPILED_OPS.append(on)
    try:
        yield
    finally:
        _COMPILED_OPS.pop()


def ops_compiled() -> bool:
    return _COMPILED_OPS[-1]


def use_compiled_ops(on: bool = True) -> None:
    """compiled_ops for the rest of the process (a training run compiles once, then trains)."""
    _COMPILED_OPS[0] = on


_RECOMPUTED_CHUNKS = [False]


@contextlib.contextmanager
def recomputed_chunks(on: bool = True):
    """The chunk steps of ops that offer one (self-modifying Titans) keep only the state at the start
    of each span of steps for the backward and run the span again there (torch.utils.checkpoint),
    instead of keeping every intermediate (runtime/ops/self_modifying_titans/chunk.py says how much
    that saves). The exact CMS signal's create_graph passes turn
    it off for themselves (runtime/model_base.py): a recomputation inside a pass that keeps its
    graph for a second-order gradient keeps it again, so it would cost time and save nothing."""
    _RECOMPUTED_CHUNKS.append(on)
    try:
        yield
    finally:
        _RECOMPUTED_CHUNKS.pop()


def use_recomputed_chunks(on: bool = True) -> None:
    """recomputed_chunks for the rest of the process (`nslang train --recompute-chunks`)."""
    _RECOMPUTED_CHUNKS[0] = on


def chunks_recomputed() -> bool:
    return _RECOMPUTED_CHUNKS[-1]


def op(chunk, reference, chunk_is_semantic: bool = False, auto=None, kernel=None):
    """One rule with its implementations. `auto` picks the kernel when it can run (default: the
    chunk form). For exact rules the chunk size is only a speed knob and the token-by-token form
    takes none; for mini-batch rules (Titans, Eq. 90) it is part of the definition.

    A call may pass `kernel_choice`: the generated model's `kernel` (nslang/kernels.py), a dict
    with the kernel's constexprs, or {"op": None, "reason": ...} when codegen chose none; "auto"
    (the default, for layers built by hand) leaves the choice to the dispatch."""
    def call(*args, kernel_choice="auto", **kwargs):
        mode = _MODE[-1]
        if mode == "reference":
            if not chunk_is_semantic:
                kwargs.pop("chunk_size", None)
            return reference(*args, **kwargs)
        chosen = kernel_choice if isinstance(kernel_choice, dict) else None
        if chosen is not None and chosen.get("op") is None:  # codegen chose no kernel
            if mode == "kernel":
                raise RuntimeError(f"{chunk.__name__}: the generated model runs no Triton kernel "
                                   f"here: {chosen.get('reason')}")
            return chunk(*args, **kwargs)
        params = None if chosen is None else {k: v for k, v in chosen.items() if k.isupper()}
        if mode == "kernel":
            if kernel is None:
                raise RuntimeError(f"{chunk.__name__} has no Triton kernel yet")
            return kernel(*args, **kwargs) if params is None else kernel(*args, constexprs=params,
                                                                          **kwargs)
        if mode == "fast" and auto is not None and not _SECOND_ORDER[-1]:
            return auto(*args, **kwargs) if params is None else auto(*args, constexprs=params,
                                                                      **kwargs)
        return chunk(*args, **kwargs)
    call.__name__ = chunk.__name__
    return call


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(kind: str, dim: int) -> nn.Module:
    return RMSNorm(dim) if kind == "rmsnorm" else nn.LayerNorm(dim)


def rotary(x: torch.Tensor, offset: int = 0, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding on [B, T, H, D] (D even), positions offset..offset+T-1."""
    d = x.shape[-1]
    # Angles in float32 at least (float64 when the model runs in float64, for exact tests).
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    inv = base ** (-torch.arange(0, d, 2, device=x.device, dtype=dtype) / d)
    pos = torch.arange(offset, offset + x.shape[1], device=x.device, dtype=dtype)
    ang = torch.outer(pos, inv)[None, :, None, :]  # [1, T, 1, D/2]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.unflatten(-1, (heads, x.shape[-1] // heads))  # [B, T, D] -> [B, T, H, D/H]


class CausalConv(nn.Module):
    """Depthwise causal convolution (window w) followed by SiLU. It carries the last w - 1
    inputs as state, so a sequence split into segments sees the same convolution."""

    def __init__(self, channels: int, window: int):
        super().__init__()
        self.window = window
        self.conv = nn.Conv1d(channels, channels, window, groups=channels)

    def forward(self, h, tail=None):  # h [B, T, C]
        if tail is None:
            tail = h.new_zeros(h.shape[0], self.window - 1, h.shape[2])
        padded = torch.cat([tail, h], dim=1)  # [B, w-1+T, C]
        tail = padded[:, padded.shape[1] - (self.window - 1):]
        return F.silu(self.conv(padded.transpose(1, 2)).transpose(1, 2)), tail
