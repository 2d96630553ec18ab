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


def test_recomputed_chunk_steps_train_exactly_as_kept_ones(run_config, tmp_path, monkeypatch):
    # --recompute-chunks: Hope's self-modifying chunk steps run again in the backward; the losses
    # of a short run are bitwise those of the plain run (the same operations, recomputed).
    from pathlib import Path

    import runtime.ops.self_modifying_titans.chunk as chunk
    from runtime.train import train

    calls = []
    real = chunk.checkpoint
    monkeypatch.setattr(chunk, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))

    spec = Path(__file__).resolve().parents[2] / "specs" / "hope_two_pass.nsam"
    kw = dict(steps=3, eval_every=0, save_every=100, set={"dim": 32, "depth": 1, "context": 64})
    plain = train(run_config(spec, out=str(tmp_path / "plain"), **kw))
    again = train(run_config(spec, out=str(tmp_path / "again"), recompute_chunks=True, **kw))
    try:
        assert sorted(plain.losses) == [1, 2, 3] and again.losses == plain.losses
        assert calls  # the recomputing path ran (only in the second run)
    finally:
        common.use_recomputed_chunks(False)  # the flag is process-wide; later tests run without it
