"""--cuda-graphs (runtime/train/cuda_graph.py).

On the CPU there is no graph to capture, so the tests swap in the eager recorder, which reruns the
step where a graph would replay it: everything else (the static batch, the gradients accumulated in
place into fixed buffers and re-attached every step, the unused parameters, the loop's wiring with
the periodic gate and M3) runs as on a GPU and must give bitwise the losses of the plain loop. The
marked GPU test captures real graphs and holds them to eager training.
"""
from __future__ import annotations

import traceback
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from _train_common import TINY, TINY_RECURRENT
from runtime.train import TrainError, train
from runtime.train import cuda_graph
from runtime.train.cuda_graph import EagerRecorder, GraphedStep

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def eager_recorder(monkeypatch):
    """train(..., cuda_graphs=True) on the CPU, its graphs replaced by the eager recorder."""
    import runtime.train.loop as loop

    monkeypatch.setattr(cuda_graph, "CudaGraphRecorder", lambda device: EagerRecorder())
    monkeypatch.setattr(loop, "graph_device_error", lambda device, distributed: None)


@pytest.mark.parametrize("text", [TINY, TINY_RECURRENT], ids=["cms_slow_level_m3", "delta_cms_segments"])
def test_graphed_training_equals_the_plain_loop(text, spec, run_config, tmp_path, eager_recorder):
    # TINY: a cross-sequence level whose gradient the periodic gate withholds and sums (it replaces
    # .grad), and M3; accumulation 2: the in-place sum over micro-batches.
    path = spec(text)
    kw = dict(steps=6, accumulation=2, eval_every=0, save_every=100)
    plain = train(run_config(path, out=str(tmp_path / "plain"), **kw))
    graphed = train(run_config(path, out=str(tmp_path / "graphed"), cuda_graphs=True, **kw))
    assert sorted(plain.losses) == list(range(1, 7))
    assert graphed.losses == plain.losses  # bitwise: the same operations in the same order
    assert graphed.val_loss == plain.val_loss


class _Partly(nn.Module):
    def __init__(self):
        super().__init__()
        self.used = nn.Linear(4, 4)
        self.unused = nn.Parameter(torch.ones(3))

    def forward(self, x):
        return self.used(x.float()).square().mean()


def test_a_parameter_without_gradient_keeps_none():
    module = _Partly()
    batch = torch.randn(2, 4)
    step = GraphedStep(module, list(module.parameters()), batch, 1, lambda **_: torch.autocast("cpu", enabled=False),
                       recorder=EagerRecorder())
    module.zero_grad(set_to_none=True)  # as the optimizer does between steps
    loss = step([torch.randn(2, 4)])
    assert module.unused.grad is None  # AdamW would otherwise decay it under a zero gradient
    assert module.used.weight.grad is not None and module.used.weight.grad.abs().sum() > 0
    assert loss.shape == () and torch.isfinite(loss)


def test_gradients_are_those_of_the_new_batch_not_the_sum_of_steps():
    module = _Partly()
    step = GraphedStep(module, list(module.parameters()), torch.randn(2, 4), 1,
                       lambda **_: torch.autocast("cpu", enabled=False), recorder=EagerRecorder())
    x = torch.randn(2, 4)
    step([x])
    step([x])  # a second step on the same batch: the buffers are zeroed first, not accumulated
    got = module.used.weight.grad.clone()
    module.zero_grad(set_to_none=True)
    module(x).backward()
    assert torch.equal(got, module.used.weight.grad)


def test_a_batch_of_another_shape_is_refused():
    module = _Partly()
    step = GraphedStep(module, list(module.parameters()), torch.randn(2, 4), 1,
                       lambda **_: torch.autocast("cpu", enabled=False), recorder=EagerRecorder())
    with pytest.raises(TrainError, match="captured for"):
        step([torch.randn(3, 4)])


def test_cuda_graphs_on_the_cpu_is_a_clear_error(spec, run_config, tmp_path):
    with pytest.raises(TrainError) as err:
        train(run_config(spec(TINY), cuda_graphs=True, steps=1))
    assert "needs a CUDA device" in err.value.message and "drop --cuda-graphs" in err.value.hint
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before any step


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("stock", ["hope", "hope_two_pass"])
def test_graphed_training_on_the_gpu_follows_eager(stock, run_config, tmp_path):
    # Real graphs: Hope's self-modifying chunk loop, its CMS and the kernels, replayed. fp32, so
    # that the two runs differ only by the kernels' own run-to-run nondeterminism (atomics in
    # the backward), which the tolerance allows for over 6 steps.
    path = ROOT / "specs" / f"{stock}.nsam"
    kw = dict(steps=6, accumulation=2, eval_every=0, save_every=100, device="cuda", precision="fp32",
              set={"dim": 64, "depth": 2, "context": 64})
    plain = train(run_config(path, out=str(tmp_path / "plain"), **kw))
    graphed = train(run_config(path, out=str(tmp_path / "graphed"), cuda_graphs=True, **kw))
    assert sorted(graphed.losses) == sorted(plain.losses) == list(range(1, 7))
    for step, loss in plain.losses.items():
        assert graphed.losses[step] == pytest.approx(loss, rel=1e-4), step


# Operators that wait for the GPU on CUDA: a value read back (`.item()`, data-dependent output
# shapes), or cumprod, whose backward reads back whether its input has zeros in the torch build of
# the H100 runs (2.11; the capture of Hope failed there, bench/graph_probe.py found it).
_SYNCING = {"_local_scalar_dense", "nonzero", "masked_select", "masked_scatter", "masked_scatter_", "unique",
            "_unique2", "unique_consecutive", "cumprod", "repeat_interleave"}


class _HostData(TorchDispatchMode):
    """Records where a step would stop a CUDA graph capture: a tensor made from host data
    (torch.tensor, as_tensor, indexing with a list: a host-to-device copy, which a capture refuses)
    or an operator in _SYNCING."""

    def __init__(self):
        super().__init__()
        self.sites: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.lift_fresh.default or func.overloadpacket.__name__ in _SYNCING \
                or _host_to_device(func, args, kwargs or {}) or _mask_index(func, args):
            ours = [f for f in traceback.extract_stack()
                    if str(ROOT) in f.filename and ".venv" not in f.filename and "tests" not in f.filename]
            self.sites.add(f"{func.overloadpacket.__name__} at " + (f"{ours[-1].filename}:{ours[-1].lineno}"
                                                                    if ours else "?"))
        return func(*args, **(kwargs or {}))


def _host_to_device(func, args, kwargs) -> bool:
    """A copy from a CPU tensor into the model's device (meta in the test below; CUDA in training)."""
    name = func.overloadpacket.__name__
    if name == "_to_copy" and args[0].device.type == "cpu":
        return kwargs.get("device") is not None and torch.device(kwargs["device"]).type != "cpu"
    if name == "copy_" and len(args) > 1:
        return args[1].device.type == "cpu" and args[0].device.type != "cpu"
    return False


def _mask_index(func, args) -> bool:
    """x[mask] / x[mask] = v with a boolean mask: the result's size is read back from the GPU."""
    if func.overloadpacket.__name__ not in ("index", "index_put", "index_put_"):
        return False
    return any(t is not None and t.dtype == torch.bool for t in args[1])


STOCK = sorted(p.stem for p in (ROOT / "specs").glob("*.nsam"))


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("stock", STOCK)
def test_a_stock_models_step_is_capturable(stock, device, tmp_path):
    # What a capture needs, checked without a GPU: the forward and backward never copy host data
    # to the device nor wait for it (Hope's float momentum gate and its decays' cumprod once did,
    # and its capture failed on the H100).
    from runtime.train.build import compile_package
    from runtime.train.loop import LossModule

    pkg = compile_package(ROOT / "specs" / f"{stock}.nsam", tmp_path,
                          overrides={"dim": 32, "depth": 1, "context": 64, "heads": 2})
    # Twice: on the CPU a tensor made from host data shows as lift_fresh (on the meta device it
    # is made in place, unseen); on the meta device (shapes only, no data), the model sits on a
    # device that is not the host, as on a GPU: a tensor made on the CPU and mixed in fails, and
    # one copied over is flagged.
    torch.manual_seed(0)
    with torch.device(device):
        model = pkg.Model(pkg.Config())
    tokens = torch.randint(0, 200, (2, 65), device=device)
    with _HostData() as mode:
        LossModule(model)(tokens).backward()
    assert not mode.sites, f"capture hazards: {sorted(mode.sites)}"


def test_a_capture_error_names_where_in_nslang_it_happened():
    from runtime.train.cuda_graph import error_chain

    def inner():
        raise ValueError("boom\nsecond line")

    try:
        try:
            inner()
        except ValueError as err:
            raise RuntimeError("capture invalidated") from err
    except RuntimeError as err:
        text = error_chain(err)
    lines = text.splitlines()
    assert lines[0] == "RuntimeError: capture invalidated"
    assert "ValueError: boom" in lines and "second line" not in lines  # first lines only
    assert any("tests/train/test_cuda_graph.py:" in line and "in inner" in line for line in lines)


@pytest.mark.parametrize("bad,device", [("copied", "meta"), ("from_data", "cpu"), ("read_back", "cpu"),
                                        ("cumprod", "cpu")])
def test_the_capture_check_sees_each_hazard(bad, device):
    x = torch.ones(4, 3, device=device, requires_grad=True)
    with _HostData() as mode:
        if bad == "copied":
            x * torch.ones(3).to(x.device)  # made on the CPU, copied over
        elif bad == "from_data":
            x * torch.tensor([1.0, 2.0, 3.0], device=x.device)
        elif bad == "read_back":
            x[x.sum(-1) > 0]  # a data-dependent shape: nonzero
        else:
            torch.cumprod(x, -1)
    assert mode.sites, bad


def test_validation_halves_a_batch_that_runs_out_of_memory():
    # Under --cuda-graphs the captured step keeps its memory while validation runs eagerly: a
    # batch that does not fit is summed in halves, which gives the same loss.
    from runtime.train.loop import summed_validation_loss

    torch.manual_seed(0)
    head = torch.nn.Linear(4, 7)
    embed = torch.nn.Embedding(7, 4)

    def mean_loss(batch):
        logits = head(embed(batch[:, :-1]))
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())

    calls = []

    def small_device(batch):  # "runs out of memory" above 2 sequences
        calls.append(batch.shape[0])
        if batch.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return mean_loss(batch)

    batch = torch.randint(0, 7, (5, 9))
    whole = mean_loss(batch).double() * batch[:, 1:].numel()
    split = summed_validation_loss(small_device, batch, can_split=True)
    assert split.item() == pytest.approx(whole.item(), rel=1e-6)
    assert calls == [5, 2, 3, 1, 2]  # 5 -> 2 + 3 -> 2 + (1 + 2)
    with pytest.raises(torch.OutOfMemoryError):  # under torchrun a rank must not retry alone
        summed_validation_loss(small_device, batch, can_split=False)


@pytest.mark.parametrize("stock,loops", [("hope", True), ("self_modifying_titans", True),
                                         ("transformer_pp", False), ("titans", False)])
def test_the_graph_note_is_for_models_with_in_context_loops(stock, loops, tmp_path):
    # On CUDA without --cuda-graphs, `train` suggests the option for these models only.
    from runtime.train.build import load
    from runtime.train.loop import _has_in_context_loops

    pkg = load(ROOT / "specs" / f"{stock}.nsam", tmp_path / stock, overrides={"dim": 32, "depth": 1})
    with torch.device("meta"):
        model = pkg.Model(pkg.Config())
    assert _has_in_context_loops(model) is loops


def test_graphed_training_with_recomputed_chunks_equals_the_plain_loop(run_config, tmp_path, eager_recorder):
    # The combination the 30M Hope curves use (--cuda-graphs --recompute-chunks), on the stock
    # hope_two_pass: the recorder's bookkeeping with chunk steps recomputed in the backward.
    path = ROOT / "specs" / "hope_two_pass.nsam"
    kw = dict(steps=3, accumulation=1, eval_every=0, save_every=100, batch_size=2, context=32,
              set={"dim": 32, "depth": 1, "context": 32})
    plain = train(run_config(path, out=str(tmp_path / "plain"), **kw))
    graphed = train(run_config(path, out=str(tmp_path / "graphed"), cuda_graphs=True, recompute_chunks=True, **kw))
    assert sorted(plain.losses) == [1, 2, 3]
    assert graphed.losses == plain.losses  # recomputation is bitwise (tests/ops), and so is the recorder
