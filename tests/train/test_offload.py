"""--offload-saved: large saved tensors wait in host memory; the step's numbers do not change."""
from pathlib import Path

import pytest
import torch

from runtime.train.config import RunConfig
from runtime.train.errors import TrainError
from runtime.train.offload import offloaded

ROOT = Path(__file__).resolve().parents[2]


def _loss_and_grads(model, tokens, context):
    from runtime.train.loop import LossModule

    model.zero_grad(set_to_none=True)
    with context:
        loss = LossModule(model)(tokens)
    loss.backward()
    return loss.detach(), [p.grad.clone() if p.grad is not None else None for p in model.parameters()]


@pytest.mark.parametrize("stock", ["hope", "hope_two_pass"])
def test_a_hope_step_with_its_cms_weight_versions_offloaded_is_unchanged(stock, tmp_path):
    # The stock Hopes: differentiable CMS writes, so the backward reads every weight version, and
    # the exact signal takes a double backward. The same path as on a GPU, with CPU tensors
    # copied to fresh host tensors: every moved tensor must come back with its values.
    from runtime.train.build import compile_package

    pkg = compile_package(ROOT / "specs" / f"{stock}.nsam", tmp_path,
                          overrides={"dim": 32, "depth": 2, "context": 64, "heads": 2})
    torch.manual_seed(0)
    model = pkg.Model(pkg.Config()).double()
    tokens = torch.randint(0, 200, (2, 65))
    moved: list[int] = []
    plain_loss, plain = _loss_and_grads(model, tokens, offloaded(0))
    # 0.01 MiB: above the per-token activations at this size, below a CMS level's weights
    loss, grads = _loss_and_grads(model, tokens, offloaded(0.01, counter=moved, cpu_too=True))
    assert moved, "nothing was large enough to move: the threshold no longer selects the weight versions"
    assert torch.equal(loss, plain_loss)
    # Not bitwise: a saved tensor that is not dense (an expanded theta_0) comes back contiguous,
    # and BLAS then sums the backward's products in another order; float64 round-off is ~1e-15
    # relative (1.3e-14 at most seen), a wrong value would be O(1).
    for a, b in zip(grads, plain):
        assert (a is None) == (b is None)
        if a is not None:
            assert (a - b).abs().max() <= 1e-12 * b.abs().max()


def test_parameters_are_never_copied():
    w = torch.nn.Parameter(torch.randn(64, 64))
    x = torch.randn(8, 64, requires_grad=True)
    moved: list[int] = []
    with offloaded(0.001, counter=moved, cpu_too=True):
        y = (x @ w.expand(8, 64, 64)[0]).sum()  # saves a view of w, and x (too small to move)
    y.backward()
    assert moved == []
    assert torch.allclose(x.grad, w.detach().sum(1).expand(8, 64))


def test_without_a_gpu_nothing_moves_unless_asked():
    x = torch.randn(256, 256, requires_grad=True)
    moved: list[int] = []
    with offloaded(0.001, counter=moved):
        (x * x).sum().backward()
    assert moved == [] and torch.equal(x.grad, 2 * x.detach())


@pytest.mark.parametrize("changes, message", [
    ({"offload_saved": -1.0}, "offload_saved must be 0"),
    ({"offload_saved": float("nan")}, "offload_saved must be 0"),
    ({"offload_saved": 8.0, "cuda_graphs": True}, "do not combine"),
])
def test_bad_offload_settings_are_refused(changes, message):
    with pytest.raises(TrainError, match=message):
        RunConfig(spec="specs/hope.nsam", **changes).validate()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_the_gpu_the_weight_versions_go_to_pinned_memory_and_back(tmp_path):
    # The real path: CUDA tensors copied to pinned host memory without waiting, and back at the
    # backward. fp32 on one stream, so the only difference allowed is the contiguous copy's
    # reordering (as above): 1e-5 relative is 100x above float32 round-off, far below a
    # corrupted copy.
    from runtime.train.build import compile_package

    pkg = compile_package(ROOT / "specs" / "hope_two_pass.nsam", tmp_path,
                          overrides={"dim": 64, "depth": 2, "context": 64, "heads": 2})
    torch.manual_seed(0)
    model = pkg.Model(pkg.Config()).cuda()
    tokens = torch.randint(0, 200, (4, 65), device="cuda")
    moved: list[int] = []
    plain_loss, plain = _loss_and_grads(model, tokens, offloaded(0))
    torch.cuda.reset_peak_memory_stats()
    loss, grads = _loss_and_grads(model, tokens, offloaded(0.01, counter=moved))
    assert moved
    assert torch.equal(loss, plain_loss)
    for a, b in zip(grads, plain):
        if a is not None:
            assert (a - b).abs().max() <= 1e-5 * b.abs().max()
