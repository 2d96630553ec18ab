"""Data-parallel training under `torchrun`: DDP or FSDP2, set up from torchrun's environment.

With one process (no `WORLD_SIZE`, or `WORLD_SIZE=1`) every function here is a no-op and the
model is used as it is. Under torchrun:

- `ddp`: every rank holds the whole model; gradients are averaged after each backward (skipped
  on the micro-batches of an accumulation with `no_sync`).
- `fsdp`: FSDP2 (`fully_shard`): each block is sharded across ranks, and the root module (the
  embedding, the head and the final norm) last. A model whose initial fast state is built from
  its parameters before the blocks run (in-context CMS levels) is sharded as one unit instead:
  all its parameters are gathered for the forward, so FSDP then saves optimizer and gradient
  memory but not parameter memory. Parameters stay float32; the forward runs under
  the same bf16 autocast as single-process training.

Nothing of nslang is switched off: fast state is per sequence and lives inside the forward, so each
rank carries its own sequences' memories; memory writes stay differentiable (no detach, no
`find_unused_parameters` tricks); cross-sequence levels accumulate their already-averaged
gradients on every rank alike. Checkpoints hold full (unsharded) tensors, so a run saved under
FSDP resumes on one process, under DDP or with another number of GPUs.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
from torch import nn

from .errors import TrainError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    strategy: str = "none"  # none | ddp | fsdp

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def pick_device(pref: str, local_rank: int = 0) -> torch.device:
    """`auto`: the local GPU when there is one, else the CPU."""
    pref = pref.strip().lower()
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainError(f"device {pref} was asked for, but this torch sees no CUDA device",
                             "train with --device cpu (or --device auto)")
        if pref == "cuda":
            pref = f"cuda:{local_rank}"
        try:
            device = torch.device(pref)
        except RuntimeError:
            raise TrainError(f"unknown device {pref!r}", "use auto, cpu, cuda or cuda:N") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainError(f"device {pref} does not exist: {torch.cuda.device_count()} CUDA device(s)")
        return device
    if pref == "cpu":
        return torch.device("cpu")
    raise TrainError(f"unknown device {pref!r}", "use auto, cpu, cuda or cuda:N")


def init(device_pref: str, strategy: str) -> Dist:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK and join the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=pick_device(device_pref))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_pref, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    import torch.distributed as tdist

    if not tdist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        tdist.init_process_group(backend=backend, **kwargs)
    return Dist(rank, world, local_rank, device, strategy)


def teardown(dist: Dist, sync: bool = False) -> None:
    """Leave the process group. sync (a run that ended normally): first wait for every rank, so
    no rank tears gloo down while another still talks to it (rank 0 draws the plot last; an
    early destroy aborted the other rank at exit). Never after an error: a peer may be gone."""
    if dist.active:
        import torch.distributed as tdist

        if tdist.is_initialized():
            if sync:
                barrier(dist)
            tdist.destroy_process_group()


def barrier(dist: Dist) -> None:
    if dist.active:
        import torch.distributed as tdist

        if dist.device.type == "cuda":
            tdist.barrier(device_ids=[dist.device.index])
        else:
            tdist.barrier()


def all_reduce(dist: Dist, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    if dist.active:
        import torch.distributed as tdist

        tdist.all_reduce(tensor, op={"sum": tdist.ReduceOp.SUM, "max": tdist.ReduceOp.MAX,
                                     "min": tdist.ReduceOp.MIN}[op])
    return tensor


def wrap(module: nn.Module, model: nn.Module, dist: Dist) -> nn.Module:
    """Wrap `module` (the loss module around `model`) for data parallelism; `model` is sharded
    block by block under FSDP. Returns the module to call."""
    if not dist.active:
        return module
    if dist.strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [dist.device.index] if dist.device.type == "cuda" else None
        return DDP(module, device_ids=ids)
    if dist.strategy == "fsdp":
        try:
            from torch.distributed.fsdp import fully_shard
        except ImportError:  # torch < 2.6 keeps FSDP2 under _composable
            from torch.distributed._composable.fsdp import fully_shard
        if not state_from_parameters(model):
            for block in getattr(model, "blocks", []):
                fully_shard(block)
        fully_shard(module)
        return module
    raise TrainError(f"unknown parallel strategy {dist.strategy!r}", "use ddp or fsdp")


def state_from_parameters(model: nn.Module) -> bool:
    """True when the model's initial fast state holds tensors (in-context CMS weights start from
    their meta-learned parameters). `Model.forward` builds that state before any block runs, so
    per-block shards would still be sharded then: such a model is sharded as one unit."""
    init = getattr(model, "init_state", None)
    if init is None:
        return False
    from .nan_guard import has_tensor

    with torch.no_grad():
        return has_tensor(init(1))


def no_sync(wrapped: nn.Module, dist: Dist, skip: bool):
    """Skip the gradient all-reduce of a micro-batch that is not the last of its step."""
    if not (skip and dist.active):
        return contextlib.nullcontext()
    if dist.strategy == "ddp":
        return wrapped.no_sync()
    # FSDP2: reduce-scatter only on the last micro-batch.
    wrapped.set_requires_gradient_sync(False)
    return _ResyncFSDP(wrapped)


class _ResyncFSDP(contextlib.AbstractContextManager):
    def __init__(self, wrapped):
        self.wrapped = wrapped

    def __exit__(self, *exc):
        self.wrapped.set_requires_gradient_sync(True)
        return False


def local(t: torch.Tensor) -> torch.Tensor:
    """A plain tensor from a (possibly sharded) DTensor: the full value."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


# -- state dicts: always full tensors on the CPU ----------------------------------------------------

def _sd_options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def model_state(model: nn.Module, dist: Dist) -> dict:
    if dist.strategy == "fsdp" and dist.active:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(model, options=_sd_options(cpu_offload=True))
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def load_model_state(model: nn.Module, state: dict, dist: Dist) -> None:
    try:
        if dist.strategy == "fsdp" and dist.active:
            from torch.distributed.checkpoint.state_dict import set_model_state_dict

            set_model_state_dict(model, state, options=_sd_options())
        else:
            model.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as err:
        raise TrainError(f"the checkpoint's weights do not fit this model: {str(err).splitlines()[0][:300]}",
                         "resume with the spec and overrides the run was started with") from None


def optimizer_state(model: nn.Module, optimizer, names: list[str], dist: Dist) -> dict:
    """The optimizer's state_dict in torch's plain form (parameters numbered in `names` order)."""
    if not (dist.strategy == "fsdp" and dist.active):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    osd = get_optimizer_state_dict(model, optimizer, options=_sd_options(cpu_offload=True))
    index = {n: i for i, n in enumerate(names)}
    return {"state": {index[n]: s for n, s in osd.get("state", {}).items()},
            "param_groups": [{**g, "params": [index[n] for n in g["params"]]}
                             for g in osd.get("param_groups", [])]}


def load_optimizer_state(model: nn.Module, optimizer, state: dict, names: list[str], dist: Dist) -> None:
    try:
        if dist.strategy == "fsdp" and dist.active:
            from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

            fqn = {"state": {names[int(i)]: s for i, s in state["state"].items()},
                   "param_groups": [{**g, "params": [names[int(i)] for i in g["params"]]}
                                    for g in state["param_groups"]]}
            set_optimizer_state_dict(model, optimizer, fqn, options=_sd_options())
        else:
            optimizer.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, IndexError) as err:
        raise TrainError(f"the checkpoint's optimizer state does not fit this optimizer: "
                         f"{str(err).splitlines()[0][:300]}",
                         "resume with the spec the run was started with") from None
