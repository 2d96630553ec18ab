"""build_optimizer: every name builds, trains a tiny model, and checkpoints through
torch.save / torch.load(weights_only=True) with identical next steps after resuming."""

import io

import pytest
import torch

from runtime.optim import OPTIMIZERS, build_optimizer

# Learning rates that suit a tiny regression (the defaults are tuned for real models).
OPTIONS = {
    "sgd": dict(lr=0.1, momentum=0.9),
    "sgd_momentum": dict(lr=0.1, momentum=0.9, form="paper"),
    "adamw": dict(lr=1e-2),
    "muon": dict(lr=0.02, adamw_lr=1e-2),
    "m3": dict(lr=1e-2, slow_every=4),
    "m3_algorithm1": dict(lr=1e-3, slow_every=4),
    "delta_momentum": dict(lr=0.05),
    "deep_momentum": dict(lr=0.05, objective="l2"),
    "dmgd": dict(lr=0.05, output="ns", ns_lr=0.02),
}


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def loss_at(model, step):
    gen = torch.Generator().manual_seed(step % 4)  # 4 fixed batches, cycled
    x = torch.randn(32, 4, generator=gen)
    y = torch.sin(x[:, :3] * 2.0)
    return (model(x) - y).square().mean()


def train(model, opt, steps, start=0):
    losses = []
    for s in range(start, start + steps):
        opt.zero_grad()
        loss = loss_at(model, s)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _plain(obj):
    if isinstance(obj, torch.Tensor) or isinstance(obj, (bool, int, float, str)):
        return True
    if isinstance(obj, list):
        return all(_plain(v) for v in obj)
    if isinstance(obj, dict):
        return all(isinstance(k, (int, str)) and _plain(v) for k, v in obj.items())
    return False


def _roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_every_name_has_options_here():
    assert set(OPTIONS) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_trains_and_resumes(name):
    model = make_model()
    opt = build_optimizer(name, model.parameters(), **OPTIONS[name])
    losses = train(model, opt, 40)
    assert losses[-1] < 0.9 * losses[0], losses[::8]

    sd = opt.state_dict()
    assert _plain(sd), name
    loaded = _roundtrip({"model": model.state_dict(), "opt": sd})
    model2 = make_model()
    model2.load_state_dict(loaded["model"])
    opt2 = build_optimizer(name, model2.parameters(), **OPTIONS[name])
    opt2.load_state_dict(loaded["opt"])
    train(model, opt, 3, start=40)
    train(model2, opt2, 3, start=40)
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q), name


def test_names_are_normalised_and_unknown_names_fail():
    p = [torch.nn.Parameter(torch.zeros(2, 2))]
    assert type(build_optimizer(" M3 ", p)).__name__ == "M3"
    assert type(build_optimizer("Delta-Momentum", p)).__name__ == "DeltaMomentum"
    with pytest.raises(ValueError, match="known: adamw"):
        build_optimizer("lion", p)
    with pytest.raises(TypeError):
        build_optimizer("muon", p, not_an_option=1)
