"""What `--compile` compiles.

A model without in-context learning loops is one graph: torch.compile wraps the whole loss step.
A model whose forward runs such loops (a CMS segment loop, self-modifying Titans' chunk loop)
would make dynamo unroll every iteration of every block into one graph (minutes of compilation,
and graph breaks at each inner autograd.grad); there the per-chunk step is compiled instead
(`runtime.layers.common.compiled_ops`): one small graph, reused by every chunk of every block.
"""
from __future__ import annotations

import torch

from ..layers.common import use_compiled_ops
from ..layers.selfmod import SelfModifying


def has_learning_loops(model: torch.nn.Module) -> bool:
    return bool(getattr(model, "segment", 0)) or any(isinstance(m, SelfModifying)
                                                     for m in model.modules())


def compile_for_training(step_module: torch.nn.Module, model: torch.nn.Module):
    """The module to call for a training step under `--compile` (see the module docstring)."""
    if has_learning_loops(model):
        use_compiled_ops()
        return step_module
    return torch.compile(step_module)
