"""The learning-rate schedule: warmup, cosine / linear / constant, every lr of every group."""
from __future__ import annotations

import math

import pytest
import torch

from runtime.optim import build_optimizer
from runtime.train.schedule import apply, lr_factor, remember_peaks


def test_warmup_then_cosine_to_the_floor():
    f = [lr_factor(s, total=110, warmup=10, kind="cosine", min_ratio=0.1) for s in range(1, 111)]
    assert f[0] == pytest.approx(0.1) and f[9] == 1.0  # step 1 already moves; step 10 is the peak
    assert lr_factor(60, 110, 10) == pytest.approx(0.55)  # half way through the cosine: the midpoint
    assert f[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[9:], f[10:]))  # never rises after warmup
    assert lr_factor(500, 110, 10) == pytest.approx(0.1)  # past the end: the floor


def test_linear_constant_and_no_warmup():
    assert lr_factor(1, 100, 0, "constant") == 1.0 == lr_factor(77, 100, 0, "constant")
    assert lr_factor(60, 110, 10, "linear", 0.0) == pytest.approx(0.5)
    assert lr_factor(1, 100, 0, "cosine", 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 100)))
    with pytest.raises(ValueError):
        lr_factor(20, 100, 10, "exponential")


def test_apply_scales_every_learning_rate_from_its_peak():
    params = [torch.nn.Parameter(torch.zeros(4, 4)), torch.nn.Parameter(torch.zeros(4))]
    opt = build_optimizer("muon", params, lr=0.02, adam_lr=1e-3)
    remember_peaks(opt)
    assert apply(opt, 0.5) == pytest.approx(0.01)
    assert opt.param_groups[0]["adamw_lr"] == pytest.approx(5e-4)
    apply(opt, 1.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02)  # from the peak, not compounded
