"""bench/titans_stability.py's replay and scalar model, on small inputs (the training part is the
trainer's, tested elsewhere)."""
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.titans_stability import replay, scalar_limits  # noqa: E402


def test_scalar_model_matches_plain_gradient_descent():
    rows = {int(r.split("|")[1]): [float(c) for c in r.split("|")[2:-1]]
            for r in scalar_limits([1, 4], momenta=(0.0,), steps=512).splitlines()[2:]}
    # per-token GD on a quadratic is stable exactly for theta * L < 2; chunk-start gradients shrink it
    assert abs(rows[1][0] - 2.0) < 1e-3
    assert 0.3 < rows[4][0] < 0.6


def test_replay_compares_the_op_with_its_definition():
    torch.manual_seed(0)
    B, T, H, D, hid = 1, 24, 2, 8, 16
    q, k = (torch.nn.functional.normalize(torch.randn(B, T, H, D), dim=-1) for _ in range(2))
    kept = dict(q=q, k=k, v=torch.randn(B, T, H, D), eta=torch.full((B, T, H), 0.9),
                theta=torch.full((B, T, H), 0.01), alpha=torch.full((B, T, H), 0.01),
                W1=torch.randn(H, D, hid) / 4, W2=torch.randn(H, hid, D) / 4, o=torch.zeros(B, T, H, D),
                options={"chunk_size": 8, "memory": "mlp", "activation": "silu", "read": "current"})
    text = replay(kept, [1, 8])
    diff = float(text.split("max |difference| ")[1].split()[0])
    assert diff < 1e-10
    assert [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ") and "---" not in line
            and "chunk" not in line] == ["1", "8"]
