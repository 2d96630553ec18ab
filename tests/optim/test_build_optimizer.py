"""build_optimizer: every name builds, trains a tiny model, and checkpoints through
torch.save / torch.load(weights_only=True) with identical next steps after resuming."""

import pytest
import torch

from runtime.optim import OPTIMIZERS, build_optimizer
from optim_common import _plain, _roundtrip


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


# The option sets of specs/optim/*.nsam, written with the spec language's flat names
# (nslang/schema.py); copied here rather than imported so this file tests the factory alone.
SPEC_OPTIONS = {
    "sgd": dict(lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.0),
    "adamw": dict(lr=4e-4, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1),
    "muon": dict(lr=0.02, momentum=0.95, nesterov=True, ns_steps=5, weight_decay=0.0, adam_lr=3e-4),
    "m3": dict(lr=0.02, beta1=0.95, beta2=0.999, beta3=0.95, alpha=0.5, slow_every=64, ns_steps=5,
               accumulate="ema", bias_correction=True, rms_normalize=True, eps=1e-8, weight_decay=0.0),
    "delta_momentum": dict(lr=0.01, alpha=0.9, normalize=True, mode="row", erase=1.0),
    "deep_momentum": dict(lr=0.01, alpha=0.9, hidden=16, inner_lr=0.01, objective="dot", output="none"),
}


@pytest.mark.parametrize("name", sorted(SPEC_OPTIONS))
def test_spec_option_names_are_accepted(name):
    model = make_model()
    opt = build_optimizer(name, model.parameters(), **SPEC_OPTIONS[name])
    group = opt.param_groups[0]
    if name == "adamw":
        assert group["betas"] == [0.9, 0.95]
    if name == "m3":
        assert group["betas"] == [0.95, 0.999, 0.95] and group["slow_every"] == 64
    if name == "muon":
        assert group["adamw_lr"] == 3e-4
    if name == "deep_momentum":
        assert group["mlp_lr"] == 0.01 and group["output"] == "linear"
    losses = train(model, opt, 20)
    assert all(map(lambda v: v == v and v < 10, losses)), losses  # finite, no blow-up


def test_partial_and_conflicting_betas():
    p = [torch.nn.Parameter(torch.zeros(2, 2))]
    assert build_optimizer("m3", p, beta3=0.5).param_groups[0]["betas"] == [0.95, 0.999, 0.5]
    assert build_optimizer("adamw", p, beta2=0.5).param_groups[0]["betas"] == [0.9, 0.5]
    with pytest.raises(TypeError):
        build_optimizer("adamw", p, beta1=0.8, betas=(0.9, 0.99))
    with pytest.raises(TypeError):
        build_optimizer("muon", p, adam_lr=1e-3, adamw_lr=1e-3)
    assert build_optimizer("dmgd", p, output="newton_schulz").param_groups[0]["output"] == "ns"
