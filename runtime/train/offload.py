"""Large saved activations in host memory (`nslang train --offload-saved MIB`).

Why: a Hope whose CMS writes are differentiable keeps every version of each in-context level's
weights for the backward (the read `h @ W_t` saves W_t): at dim 768, 18 MiB per version, one per
16 tokens for the fastest level of each block, 46% of what the forward leaves for the backward
(bench/RESULTS.md, seventh session). These tensors are few and large, so moving them to pinned
host memory as the forward saves them, and back when the backward reads them, costs a copy each
way at PCIe speed and bounds what stays on the GPU. Small saved tensors (the many per-chunk
activations) stay where they are: copying them would cost more launches than it saves.
"""
from __future__ import annotations

import contextlib

import torch


def offloaded(min_mib: float, counter: list | None = None, cpu_too: bool = False):
    """A context manager under which every saved tensor of a CUDA forward of at least `min_mib`
    MiB goes to pinned host memory until the backward needs it; a no-op context for min_mib <= 0.
    Parameters (and views of them) are never copied: they stay alive anyway. `counter` (a list)
    gets the bytes of each tensor moved; `cpu_too` also copies CPU tensors (to a fresh host
    tensor: what the tests use to run the same path without a GPU)."""
    if not min_mib or min_mib <= 0:
        return contextlib.nullcontext()
    min_bytes = int(min_mib * 2**20)

    def pack(t: torch.Tensor):
        nbytes = t.numel() * t.element_size()
        if (not (t.is_cuda or cpu_too) or nbytes < min_bytes or t.layout != torch.strided
                or _is_parameter(t)):
            return t
        # empty_like keeps a dense tensor's strides (a transposed weight stays transposed, so the
        # backward's products see the layout, and give the bits, they would have)
        host = torch.empty_like(t, device="cpu", pin_memory=t.is_cuda)
        host.copy_(t, non_blocking=True)  # ordered before the backward's copy back: one stream
        if counter is not None:
            counter.append(nbytes)
        return _OnHost(host, t.device)

    def unpack(saved):
        if isinstance(saved, _OnHost):
            return saved.tensor.to(saved.device, non_blocking=True)
        return saved

    return torch.autograd.graph.saved_tensors_hooks(pack, unpack)


class _OnHost:
    """A saved tensor parked in host memory, and the device it returns to."""

    __slots__ = ("tensor", "device")

    def __init__(self, tensor: torch.Tensor, device: torch.device):
        self.tensor, self.device = tensor, device


def _is_parameter(t: torch.Tensor) -> bool:
    base = t._base if t._base is not None else t
    return isinstance(base, torch.nn.Parameter) or (base.is_leaf and base.requires_grad)
