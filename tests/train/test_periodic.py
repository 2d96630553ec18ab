"""Cross-sequence levels: stepped once per period of tokens with the mean of the period's gradients."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from runtime.train import TrainError
from runtime.train.periodic import PeriodicGrads


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fast = nn.Parameter(torch.zeros(3))
        self.slow = nn.Parameter(torch.zeros(3))

    def update_periods(self):
        return {"slow": 300}


def test_slow_parameter_steps_once_per_period_with_the_mean_gradient():
    toy = Toy()
    periodic = PeriodicGrads(toy, tokens_per_step=100)  # period 300 tokens = 3 steps
    assert periodic.every == {"slow": 3} and not periodic.notes
    opt = torch.optim.SGD(toy.parameters(), lr=1.0)
    for step in range(1, 7):
        g = torch.full((3,), float(step))
        toy.fast.grad, toy.slow.grad = g.clone(), g.clone()
        periodic.gate(step)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step == 2:
            state = periodic.state_dict()
            assert torch.equal(state["acc"]["slow"], torch.full((3,), 3.0))  # 1 + 2, mid-period
    assert toy.fast[0].item() == -sum(range(1, 7))
    assert toy.slow[0].item() == -((1 + 2 + 3) / 3 + (4 + 5 + 6) / 3)  # twice, the mean each time
    fresh = PeriodicGrads(Toy(), tokens_per_step=100)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.acc["slow"], torch.full((3,), 3.0))
    with pytest.raises(TrainError, match="schedule differs"):
        PeriodicGrads(Toy(), tokens_per_step=50).load_state_dict(state)


def test_periods_shorter_than_a_step_and_unknown_names():
    periodic = PeriodicGrads(Toy(), tokens_per_step=512)
    assert periodic.every == {} and "stepped every 1 step" in periodic.notes[0]

    class Wrong(Toy):
        def update_periods(self):
            return {"nope": 100}
    with pytest.raises(TrainError, match="not one of its parameters"):
        PeriodicGrads(Wrong(), 100)
