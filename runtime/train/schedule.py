"""Learning-rate schedule: linear warmup, then cosine (or linear) decay, or constant.

The factor is a pure function of the step, so a resumed run needs no scheduler state: step k of
a resumed run gets exactly the learning rate it would have had.
"""
from __future__ import annotations

import math

# Every learning-rate option of an optimizer group that the schedule scales (Muon keeps a second
# learning rate for the parameters it hands to AdamW).
LR_KEYS = ("lr", "adamw_lr")


def lr_factor(step: int, total: int, warmup: int, kind: str = "cosine", min_ratio: float = 0.1) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (1-based) of `total`.

    Warmup: step / warmup for the first `warmup` steps (never 0, so step 1 already moves).
    Then over the remaining steps: cosine from 1 to `min_ratio`, linear from 1 to `min_ratio`, or 1.
    """
    if warmup > 0 and step <= warmup:
        return step / warmup
    if kind == "constant":
        return 1.0
    span = max(1, total - warmup)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    if kind == "linear":
        decay = 1.0 - progress
    elif kind == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown schedule {kind!r}; expected cosine, linear or constant")
    return min_ratio + (1.0 - min_ratio) * decay


def remember_peaks(optimizer) -> None:
    """Store each group's peak learning rates (`peak_lr`, `peak_adamw_lr`) beside the live ones."""
    for group in optimizer.param_groups:
        for key in LR_KEYS:
            if key in group and f"peak_{key}" not in group:
                group[f"peak_{key}"] = float(group[key])


def apply(optimizer, factor: float) -> float:
    """Set every group's learning rates to peak * factor; return the first group's lr."""
    for group in optimizer.param_groups:
        for key in LR_KEYS:
            if f"peak_{key}" in group:
                group[key] = group[f"peak_{key}"] * factor
    return float(optimizer.param_groups[0]["lr"])
