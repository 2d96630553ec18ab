"""Generation carries the recurrent fast state: greedy decoding with state= equals recomputing the
whole sequence for every token, for attention (KV cache), a delta-rule memory and an in-context
CMS level (the segment loop)."""
from __future__ import annotations

import pytest
import torch

from _train_common import TINY_ATTN, TINY_RECURRENT
from nslang.cli import main
from runtime.train import generate_text, greedy_recompute, sample, train
from runtime.train.build import compile_package


@pytest.mark.parametrize("text", [TINY_ATTN, TINY_RECURRENT], ids=["attention", "delta+cms"])
def test_greedy_with_state_equals_full_recompute(spec, tmp_path, text):
    pkg = compile_package(spec(text), tmp_path / "out")
    torch.manual_seed(0)
    model = pkg.Model(pkg.Config()).double().eval()
    with torch.no_grad():  # larger weights than at init: varied, sharp logits, so argmax is not a near tie
        for p in model.parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 0.3)
    prompt = [256] + list(b"To be, or not")  # 14 tokens: not a multiple of the 16-token CMS chunk
    new = sample(model, prompt, 24, temperature=0.0, top_k=None)
    assert new == greedy_recompute(model, prompt, 24)
    assert len(set(new)) > 1  # not a degenerate constant sequence


def test_generate_from_a_run_dir(spec, run_config, capsys):
    path = spec(TINY_ATTN)
    cfg = run_config(path, steps=2, save_every=2)
    train(cfg)
    text = generate_text(cfg.out, "the king", max_new_tokens=20, temperature=0.8, top_k=20, seed=3, device="cpu")
    assert isinstance(text, str) and 0 < len(text.encode("utf-8", "replace")) <= 20 * 3
    assert text == generate_text(cfg.out, "the king", 20, 0.8, 20, seed=3, device="cpu")  # seeded
    status = main(["generate", cfg.out, "--prompt", "the king", "--tokens", "10", "--device", "cpu"])
    out = capsys.readouterr().out
    assert status == 0 and out.startswith("the king")
    status = main(["generate", str(path.parent / "nowhere"), "--prompt", "x"])
    assert status == 1 and "no run at" in capsys.readouterr().err


def _tensors(tree) -> list:
    if isinstance(tree, torch.Tensor):
        return [tree]
    items = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, (list, tuple)) else ()
    return [t for item in items for t in _tensors(item)]


def test_a_no_grad_call_returns_a_state_without_history(spec, tmp_path):
    """With an in-context CMS level each segment runs under enable_grad (the level learns from its
    gradient), so the fast state it returns (here the delta memory's) carries that graph. Without
    an outer gradient nothing reads it, and keeping it chained every segment onto the last: an
    evaluation's memory grew with its length (28 GiB on a 2,048-token NIAH batch). The values
    are those of a call with gradients."""
    pkg = compile_package(spec(TINY_RECURRENT), tmp_path / "out")
    torch.manual_seed(0)
    model = pkg.Model(pkg.Config()).double()
    tokens = torch.randint(0, 257, (2, 40))  # 2.5 segments of the 16-token level
    with torch.no_grad():
        logits, state = model(tokens, state=model.init_state(2))
    tensors = _tensors(state)
    assert len(tensors) > 4 and not any(t.requires_grad for t in tensors)
    with_grad, state_g = model(tokens, state=model.init_state(2))
    # equal up to float64 rounding (~2e-16 measured): with an outer gradient the level's gradient
    # is taken with create_graph, whose operators sum in another order
    close = lambda a, b: torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=1e-12)  # noqa: E731
    close(logits, with_grad)
    for a, b in zip(tensors, _tensors(state_g), strict=True):
        close(a, b)
