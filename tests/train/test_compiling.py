"""`--compile` compiles the loss step of a plain model, and the per-chunk steps of a model whose
forward runs in-context learning loops (runtime/train/compiling.py)."""
import torch
from torch import nn

from runtime.layers import common
from runtime.train.compiling import compile_for_training, has_learning_loops


class _Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)


class _Segmented(_Plain):
    segment = 16   # a CMS segment loop


def test_plain_models_compile_whole():
    step = _Plain()
    assert not has_learning_loops(step)
    compiled = compile_for_training(step, step)
    assert compiled is not step and isinstance(compiled, torch._dynamo.eval_frame.OptimizedModule)
    assert not common.ops_compiled()


def test_looping_models_compile_their_chunk_steps():
    model = _Segmented()
    assert has_learning_loops(model)
    try:
        assert compile_for_training(model, model) is model
        assert common.ops_compiled()
    finally:
        common.use_compiled_ops(False)
    assert not common.ops_compiled()
