"""`--cuda-graphs`: a micro-batch's forward and backward captured once as a CUDA graph, replayed
every step.

Why: the Hope family is launch-bound. A Hope step issues tens of thousands of small kernels (the
self-modifying memories' chunk loop, the CMS segments), and the profile (bench/profile_hope.py,
bench/RESULTS.md) shows the GPU busy only 10-11% of the step: the host cannot issue them fast
enough. A replayed graph issues all of them from one host call.

What is captured: `(module(batch) / accumulation).backward()` on a static input batch, with the
gradients accumulated in place into static buffers. What stays eager, every step: copying each
micro-batch into the static batch, zeroing the buffers, gradient clipping, the periodic gate, the
NaN check and the outer optimizer (its step counts, schedules and M3's slow buffers live on the
host, and a graph would freeze them).

Exactness: a replay runs the captured kernels on the new batch, so the losses and gradients equal
the eager step's up to the kernels' own nondeterminism (tested on the GPU; on the CPU an eager
"recorder" runs the same bookkeeping and is bitwise equal to the plain loop). The warm-up before
the capture runs the first batch through forward and backward on a side stream (autotuning and
compilation must happen outside the capture; one pass, as it costs a whole eager step); its
gradients are discarded. Parameters that get no gradient in the warm-up keep `grad = None`, as in
an eager step.

Limits: one process on CUDA (DDP's bucketed all-reduce is not captured), one batch shape, and a
step that neither reads values back from the GPU (`.item()`, data-dependent shapes, cumprod's
backward in torch 2.11) nor copies host data to it: such an operation makes the capture fail, and
the error says where. tests/train/test_cuda_graph.py checks every stock model for both on the CPU;
bench/graph_probe.py narrows a failure down on a GPU.
"""
from __future__ import annotations

import traceback
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from .errors import TrainError


class CudaGraphRecorder:
    """Captures `fn` in a CUDA graph: (its outputs, a function that replays it)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.graph = None

    def capture(self, fn: Callable[[], torch.Tensor]):
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: a logging or data thread's CUDA calls do not abort the capture
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            out = fn()
        return out, self.graph.replay

    def warm_up(self, fn: Callable[[], None]) -> None:
        """Run `fn` on a side stream, as torch.cuda.graph requires of the work before a capture."""
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            fn()
        torch.cuda.current_stream(self.device).wait_stream(side)
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()  # the warm-up's blocks, cached on the side stream, serve no one now


class EagerRecorder:
    """The recorder's contract without CUDA: "replay" reruns `fn` and writes into the first outputs.
    It runs the same bookkeeping as a graph (static batch, static gradient buffers), which the CPU
    tests hold to the plain training step."""

    def capture(self, fn: Callable[[], torch.Tensor]):
        out = fn()

        def replay():
            out.copy_(fn())

        return out, replay

    def warm_up(self, fn: Callable[[], None]) -> None:
        fn()


class GraphedStep:
    """The forward and backward of `accumulation` micro-batches, through one captured graph.

    step_module(batch) -> scalar loss; params: the parameters the optimizer steps; example: a batch
    of the shape every later batch has; autocast: a factory of the step's autocast context (called
    with cache_enabled=False, which a capture needs).
    """

    def __init__(self, step_module: nn.Module, params: Sequence[nn.Parameter], example: torch.Tensor,
                 accumulation: int, autocast: Callable[..., object], recorder=None, warmup: int = 1):
        self.module, self.accumulation, self.autocast = step_module, accumulation, autocast
        self.params = [p for p in params if p.requires_grad]
        self.batch = example.clone()
        self.recorder = recorder or CudaGraphRecorder(example.device)
        for p in self.params:
            p.grad = None

        def warm_up():
            for _ in range(warmup):
                for p in self.params:
                    p.grad = None
                self._forward_backward()

        self.recorder.warm_up(warm_up)
        self.used = [p for p in self.params if p.grad is not None]
        for p in self.params:
            p.grad = None
        # Existing gradients make the captured backward accumulate into them in place, so the
        # buffers' addresses are fixed and accumulation over micro-batches is a plain replay.
        self.grads = [torch.zeros_like(p) for p in self.used]
        self._attach()
        try:
            self.loss, self.replay = self.recorder.capture(self._forward_backward)
        except RuntimeError as err:
            if "out of memory" in str(err).lower():
                raise
            raise TrainError(
                f"--cuda-graphs: the training step cannot be captured in a CUDA graph:\n{error_chain(err)}",
                "train without --cuda-graphs; a captured step must not read values back to the host "
                "(.item(), a data-dependent shape) or copy host data to the device; bench/graph_probe.py "
                "narrows down which operation breaks the capture") from None

    def _forward_backward(self) -> torch.Tensor:
        with self.autocast(cache_enabled=False):
            loss = self.module(self.batch)
        (loss / self.accumulation).backward()
        return loss.detach().float()

    def _attach(self) -> None:
        # The optimizer's zero_grad(set_to_none=True) and the periodic gate detach or replace
        # .grad between steps; the graph keeps writing into the same buffers.
        for p, g in zip(self.used, self.grads):
            p.grad = g

    def __call__(self, batches: Sequence[torch.Tensor]) -> torch.Tensor:
        """Forward and backward of every micro-batch: the gradients (summed, each loss divided by
        the accumulation) are in the parameters' .grad; returns the mean loss (a device scalar)."""
        if len(batches) != self.accumulation:
            raise ValueError(f"GraphedStep takes {self.accumulation} micro-batches, got {len(batches)}")
        self._attach()
        if self.grads:
            torch._foreach_zero_(self.grads)
        total = torch.zeros((), device=self.batch.device)
        for batch in batches:
            if batch.shape != self.batch.shape:
                raise TrainError(f"--cuda-graphs: a batch of shape {tuple(batch.shape)}, but the graph was "
                                 f"captured for {tuple(self.batch.shape)}",
                                 "a captured step needs one batch shape; train without --cuda-graphs")
            self.batch.copy_(batch)
            self.replay()
            total += self.loss / self.accumulation
        return total


_ROOT = Path(__file__).resolve().parents[2]


def error_chain(err: BaseException | None, frames: int = 4) -> str:
    """An error and its causes, each with its last frames in nslang's own code (not torch's):
    a capture error is raised far from the operation that invalidated the capture."""
    lines, seen = [], set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        ours = [f for f in traceback.extract_tb(err.__traceback__)
                if f.filename.startswith(str(_ROOT)) and "site-packages" not in f.filename]
        lines.append(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        lines += [f"    {Path(f.filename).relative_to(_ROOT)}:{f.lineno} in {f.name}: {f.line}"
                  for f in ours[-frames:]]
        err = err.__cause__ or err.__context__
    return "\n".join(lines)


def graph_device_error(device: torch.device, distributed: bool) -> TrainError | None:
    """Why --cuda-graphs cannot run here, or None."""
    if device.type != "cuda":
        return TrainError(f"--cuda-graphs needs a CUDA device, not {device}",
                          "drop --cuda-graphs (it only removes kernel-launch overhead on a GPU)")
    if distributed:
        return TrainError("--cuda-graphs runs in one process: DDP's and FSDP's gradient all-reduce is not captured",
                          "drop --cuda-graphs under torchrun, or train on one GPU")
    return None


__all__ = ["CudaGraphRecorder", "EagerRecorder", "GraphedStep", "error_chain", "graph_device_error"]
