"""CMS inside a compiled model: the levels learn from the next-token loss exactly as Eq. 71 says
(checked against the independent op reference `naive_cms`), change only at their boundaries,
and pass the outer gradient through their writes."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from codegen.emit import write_package
from nslang.compile import compile_spec
from runtime.ops.cms import naive_cms
from runtime.train.build import compile_package

ROOT = Path(__file__).resolve().parent.parent

SPEC = """
model cms_only {
  dim = 16; heads = 2; depth = 1; context = 32; vocab = 23
  level fast every 4
  level slow every 8
  level outer frozen
  cms continuum { variant = VARIANT; levels = [fast, slow]; shape = residual_mlp(hidden = 2x); lr = 0.05 }
  flow x -> continuum
}
"""


def _build(tmp_path, variant: str):
    spec = tmp_path / "cms.nsam"
    spec.write_text(SPEC.replace("VARIANT", variant))
    compiled = compile_spec(spec, tmp_path / f"cms_{variant}")
    assert compiled.plan is not None, compiled.result.diagnostics.render()
    assert compiled.plan.segment == 4
    write_package(compiled.files, tmp_path / f"cms_{variant}")
    sys.path.insert(0, str(tmp_path))
    try:
        sys.modules.pop(f"cms_{variant}", None)
        pkg = importlib.import_module(f"cms_{variant}")
    finally:
        sys.path.remove(str(tmp_path))
    torch.manual_seed(0)
    model = pkg.Model(pkg.Config()).double()
    with torch.no_grad():  # non-zero output weights, so every level matters from the start
        for level in model.blocks[0].continuum.levels:
            level["down"].normal_(0, 0.3)
    return model


@pytest.mark.parametrize("variant", ["sequential", "independent", "nested"])
# applied updates folded into the weights every 4 tokens or read in low-rank form throughout
# (runtime/layers/cms_learning.py's FOLD_TOKENS)
@pytest.mark.parametrize("fold", [4, 128])
def test_compiled_cms_equals_the_op_reference(tmp_path, variant, fold, monkeypatch):
    from runtime.layers import cms_learning

    monkeypatch.setattr(cms_learning, "FOLD_TOKENS", fold)
    model = _build(tmp_path, variant)
    block, cms = model.blocks[0], model.blocks[0].continuum
    tokens = torch.randint(0, 23, (2, 21))   # 21: not a multiple of either period
    T = tokens.shape[1]
    logits = model(tokens)

    # The same computation written against the op: x is the block input after its norm, the
    # task loss of token t is the next-token CE of head(norm(embed + y_t)).
    emb = model.embed(tokens)
    x = block.continuum_norm(emb)

    def token_loss(y, start, end):
        out = model.head(model.norm(emb[:, start:end] + y))            # [B, n, vocab]
        n_tgt = max(0, min(end, T - 1) - start)
        loss = 0 * y.sum(-1)  # tokens without a target: zero, but still part of the graph
        if n_tgt:
            ce = F.cross_entropy(out[:, :n_tgt].flatten(0, 1), tokens[:, start + 1:start + 1 + n_tgt]
                                 .flatten(), reduction="none").view(-1, n_tgt)
            loss = torch.cat([ce, loss[:, n_tgt:]], dim=1)
        return loss

    params = [(lv["down"].T, lv["up"].T) for lv in cms.levels]   # op: x + W1 s(W2 x)
    agg = cms.agg if variant == "independent" else None
    y_ref, _ = naive_cms(x, token_loss, params, [4, 8], [0.05, 0.05], variant=variant,
                         agg_weights=agg)
    ref_logits = model.head(model.norm(emb + y_ref))
    torch.testing.assert_close(logits, ref_logits, rtol=1e-9, atol=1e-10)

    # the outer gradient through the writes matches too
    g_model = torch.autograd.grad(logits.square().sum(), [cms.levels[0]["up"]])[0]
    g_ref = torch.autograd.grad(ref_logits.square().sum(), [cms.levels[0]["up"]])[0]
    torch.testing.assert_close(g_model, g_ref, rtol=1e-8, atol=1e-10)


def test_levels_change_exactly_at_their_boundaries(tmp_path):
    model = _build(tmp_path, "sequential")
    tokens = torch.randint(0, 23, (2, 33))
    state = model.init_state(2)
    previous = [w.clone() for w in _fast_weights(state)]
    for s in range(0, 32, 4):   # one segment per call: the fast level's period
        _, state = model(tokens[:, s:s + 4], state=state)
        now = _fast_weights(state)
        pos = s + 4
        changed = [not torch.equal(a, b) for a, b in zip(previous, now)]
        # [fast up, fast down, slow up, slow down]; a call's last token has no target yet, so
        # the first call's fast update still has three tokens of signal
        assert changed[:2] == [pos % 4 == 0] * 2
        assert changed[2:] == [pos % 8 == 0] * 2
        previous = [w.clone() for w in now]


def test_in_context_learning_runs_under_no_grad(tmp_path):
    model = _build(tmp_path, "sequential")
    tokens = torch.randint(0, 23, (1, 17))
    with torch.no_grad():
        logits, state = model(tokens, state=model.init_state(1))
    theta0 = model.blocks[0].continuum.levels[0]["up"]
    assert not torch.equal(state[0]["continuum"].weights[0][0][0], theta0)
    assert not logits.requires_grad


def _fast_weights(state):
    return [w.detach() for level in state[0]["continuum"].weights for w in level]


def test_a_call_may_start_inside_a_segment(tmp_path):
    model = _build(tmp_path, "sequential")
    tokens = torch.randint(0, 23, (2, 30))
    state = model.init_state(2)
    first, state = model(tokens[:, :6], state=state)     # ends 2 tokens into a segment
    second, state = model(tokens[:, 6:], state=state)
    assert first.shape[1] == 6 and second.shape[1] == 24   # every token gets its logits
    assert state[0]["continuum"].pos == 30


def test_detached_writes_learn_theta0_through_reads_only(tmp_path):
    spec = tmp_path / "cms.nsam"
    spec.write_text(SPEC.replace("VARIANT", "sequential").replace("lr = 0.05 }",
                                                                  "lr = 0.05; writes = detached }"))
    compiled = compile_spec(spec, tmp_path / "cms_detached")
    assert compiled.plan.sublayers[0].args["detach_writes"] is True
    write_package(compiled.files, tmp_path / "cms_detached")
    sys.path.insert(0, str(tmp_path))
    try:
        pkg = importlib.import_module("cms_detached")
    finally:
        sys.path.remove(str(tmp_path))
    torch.manual_seed(0)
    detached = pkg.Model(pkg.Config()).double()
    meta = _build(tmp_path, "sequential")
    detached.load_state_dict(meta.state_dict())
    tokens = torch.randint(0, 23, (2, 21))
    # same forward (the in-context updates are the same numbers) ...
    torch.testing.assert_close(detached(tokens), meta(tokens), rtol=1e-12, atol=1e-12)
    # ... but the outer gradient of theta_0 differs: only the reads carry it
    up = lambda model: model.blocks[0].continuum.levels[0]["up"]  # noqa: E731
    g_det = torch.autograd.grad(detached(tokens).square().sum(), [up(detached)])[0]
    g_meta = torch.autograd.grad(meta(tokens).square().sum(), [up(meta)])[0]
    assert torch.isfinite(g_det).all() and not torch.allclose(g_det, g_meta)


def _build_two_pass(tmp_path, writes: str):
    name = f"cms_two_pass_{writes}"
    spec = tmp_path / f"{name}.nsam"
    spec.write_text(SPEC.replace("VARIANT", "sequential").replace(
        "lr = 0.05 }", f"lr = 0.05; signal = two_pass; writes = {writes} }}"))
    compiled = compile_spec(spec, tmp_path / name)
    assert compiled.plan is not None, compiled.result.diagnostics.render()
    assert (compiled.plan.cms_signal, compiled.plan.signal_chunk) == ("two_pass", 8)
    write_package(compiled.files, tmp_path / name)
    sys.path.insert(0, str(tmp_path))
    try:
        sys.modules.pop(name, None)
        pkg = importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))
    model = pkg.Model(pkg.Config()).double()
    model.load_state_dict(_build(tmp_path, "sequential").state_dict())
    return model


@pytest.mark.parametrize("writes", ["detached", "differentiable"])
def test_compiled_two_pass_signal_equals_the_op_reference(tmp_path, writes):
    """`signal = two_pass`: per chunk of the slowest level (8 tokens), u = dL/dy from a first pass
    at the chunk-start weights, then each level learns from u held fixed. The forward equals the
    op's two_pass; with detached writes the outer gradient (through the reads) does too."""
    model = _build_two_pass(tmp_path, writes)
    block, cms = model.blocks[0], model.blocks[0].continuum
    tokens = torch.randint(0, 23, (2, 21))
    T = tokens.shape[1]
    logits = model(tokens)

    emb = model.embed(tokens)
    x = block.continuum_norm(emb)

    def token_loss(y, start, end):
        out = model.head(model.norm(emb[:, start:end] + y))
        n_tgt = max(0, min(end, T - 1) - start)
        loss = 0 * y.sum(-1)
        if n_tgt:
            ce = F.cross_entropy(out[:, :n_tgt].flatten(0, 1), tokens[:, start + 1:start + 1 + n_tgt]
                                 .flatten(), reduction="none").view(-1, n_tgt)
            loss = torch.cat([ce, loss[:, n_tgt:]], dim=1)
        return loss

    params = [(lv["down"].T, lv["up"].T) for lv in cms.levels]
    y_ref, _ = naive_cms(x, token_loss, params, [4, 8], [0.05, 0.05], variant="sequential",
                         signal="two_pass", stop_grad_updates=writes == "detached")
    ref_logits = model.head(model.norm(emb + y_ref))
    torch.testing.assert_close(logits, ref_logits, rtol=1e-9, atol=1e-10)

    # the signal differs from the exact one (three levels of chain -> not equal in general)
    exact = _build(tmp_path, "sequential")
    assert not torch.allclose(exact(tokens), logits, rtol=1e-6, atol=1e-8)

    up = cms.levels[0]["up"]
    g_model = torch.autograd.grad(logits.square().sum(), [up])[0]
    if writes == "detached":
        g_ref = torch.autograd.grad(ref_logits.square().sum(), [up])[0]
        torch.testing.assert_close(g_model, g_ref, rtol=1e-8, atol=1e-10)
    else:
        # compiled models hold u constant for the outer gradient (no second-order graph of the
        # first pass): record the first passes' signals at theta_0, replay them at theta_0 +-
        # eps * d, and the finite difference of that function is what the gradient must equal
        recorded, first_pass = [], model._first_pass_signals
        model._first_pass_signals = lambda *a: recorded.append(first_pass(*a)) or recorded[-1]
        with torch.no_grad():
            model(tokens)
        eps, direction = 1e-6, torch.randn_like(up)

        def replayed(shift):
            replay = iter(recorded)
            model._first_pass_signals = lambda *a: next(replay)
            with torch.no_grad():
                up.add_(shift * direction)
                value = model(tokens).square().sum()
                up.sub_(shift * direction)
            return value

        fd = (replayed(eps) - replayed(-eps)) / (2 * eps)
        torch.testing.assert_close((g_model * direction).sum(), fd, rtol=1e-6, atol=1e-9)
        # and the writes carry gradient: the detached model's gradient is different
        detached = _build_two_pass(tmp_path, "detached")
        g_det = torch.autograd.grad(detached(tokens).square().sum(),
                                    [detached.blocks[0].continuum.levels[0]["up"]])[0]
        assert not torch.allclose(g_det, g_model, rtol=1e-4)


def test_level_norm_makes_each_later_level_read_a_scale_free_input(tmp_path):
    """`level_norm = rms`: every level after the first reads its input divided by its RMS, so
    scaling the first level's output weights leaves the block's output unchanged; without it a
    chain of SwiGLU levels grows with a power of that scale. The first level still sees the raw
    input (scaling it changes the output)."""
    spec = tmp_path / "cms_norm.nsam"
    spec.write_text(SPEC.replace("VARIANT", "sequential").replace("residual_mlp(hidden = 2x)", "swiglu")
                    .replace("lr = 0.05 }", "lr = 0.05; level_norm = rms }"))
    compiled = compile_spec(spec, tmp_path / "cms_norm")
    assert compiled.plan is not None, compiled.result.diagnostics.render()
    assert "level_norm='rms'" in compiled.files["model.py"]
    from runtime.layers.continuum import Continuum

    torch.manual_seed(0)
    x = torch.randn(2, 5, 16, dtype=torch.double)
    outputs = {}
    for norm in ("rms", "none"):
        layer = Continuum(16, 40, "swiglu", "silu", "sequential", [4, 8], ["in_context", "in_context"],
                          0.05, "exact", 32, level_norm=norm).double()
        torch.manual_seed(1)
        for level in layer.levels:
            level["down"].data.normal_(0, 0.3)
        base, _ = layer(x)
        with torch.no_grad():  # x100, then x100 again: both far above the norm's eps (1e-6)
            layer.levels[0]["down"].mul_(100.0)
        once, _ = layer(x)
        with torch.no_grad():
            layer.levels[0]["down"].mul_(100.0)
        scaled, _ = layer(x)
        doubled_input, _ = layer(2 * x)
        outputs[norm] = (base, once, scaled, doubled_input)
    _, once, scaled, doubled_input = outputs["rms"]
    # what remains is the eps: relative eps / (2 rms^2) of the first level's output (~1e-5 at x100)
    torch.testing.assert_close(scaled, once, rtol=0, atol=1e-4 * once.abs().max().item())
    assert not torch.allclose(doubled_input, scaled, rtol=1e-3)
    base, once, _, _ = outputs["none"]
    assert once.abs().max() > 1e3 * base.abs().max()  # degree 2 of the second level: 100^2


def test_lr_max_caps_a_deep_memorys_learning_rate():
    """`lr_max`: an MLP memory's data-dependent lr is lr_max * sigmoid(.), starting at lr_max / 2
    and never above lr_max, however large the gate's input; without it, softplus (uncapped)."""
    import runtime.layers.fast as fast
    from runtime.layers.fast import DeepMemory

    data = {"mode": "data"}
    seen, real = {}, fast.titans

    def spy(q, k, v, eta, theta, alpha, W1, W2, **kw):
        seen["theta"] = theta / (1 - eta)  # the layer passes theta (1 - momentum)
        return real(q, k, v, eta, theta, alpha, W1, W2, **kw)

    torch.manual_seed(0)
    x = torch.randn(2, 20, 16)
    for lr_max in (0.002, 0.0):
        layer = DeepMemory(16, 2, "gd", "l2", 4, data, data, data, 0, True, True, False, "mlp", 16, "silu",
                           "current", lr_max=lr_max)
        fast.titans = spy
        try:
            layer(x)
            start = seen["theta"].detach().clone()
            with torch.no_grad():
                layer.gates.proj["lr"].weight.fill_(10.0)  # a gate input far beyond its range
            layer(x)
        finally:
            fast.titans = real
        if lr_max:
            # the gate's bias is 0, its weights random: sigmoid around 1/2
            assert abs(start.mean().item() - lr_max / 2) < 0.1 * lr_max and start.max() < lr_max
            assert 0 < seen["theta"].max() <= lr_max
        else:
            assert start.mean() < 0.03 and seen["theta"].max() > 1.0  # softplus from ~0.01, uncapped


def test_retain_init_sets_where_a_self_modifying_groups_retention_starts(tmp_path):
    """`retain_init` moves the offset of the group's generated retention to logit(retain_init): with
    the generators' outputs at zero, alpha starts at retain_init (0 keeps the layer's 0.9933). Any
    other memory refuses it (NS211) at compile time."""
    import runtime.layers.selfmod as selfmod
    from nslang.cli import main

    spec = tmp_path / "sm.nsam"
    text = (ROOT / "specs" / "self_modifying_titans.nsam").read_text()
    assert "    read = previous\n  }" in text  # M_mem's block, the first memory
    spec.write_text(text.replace("    read = previous\n  }", "    read = previous\n    retain_init = 0.95\n  }", 1))
    seen = {}
    real = selfmod.self_modifying_titans

    def spy(h, weights, W_q, **kw):
        seen["alpha_bias"] = kw["alpha_bias"]
        return real(h, weights, W_q, **kw)

    for path, expected in ((spec, 0.95), (ROOT / "specs" / "self_modifying_titans.nsam", None)):
        pkg = compile_package(path, tmp_path / f"pkg_{expected}", overrides={"dim": 16, "depth": 1, "heads": 2})
        model = pkg.Model(pkg.Config())
        selfmod.self_modifying_titans = spy
        try:
            model(torch.randint(0, 20, (1, 16)))
        finally:
            selfmod.self_modifying_titans = real
        alpha0 = torch.sigmoid(torch.tensor(seen["alpha_bias"])).item()
        assert alpha0 == pytest.approx(expected if expected else torch.sigmoid(torch.tensor(5.0)).item(), abs=1e-6)
    bad = tmp_path / "bad.nsam"
    bad.write_text("model t {\n  vocab = 257; dim = 32; heads = 2; depth = 1; context = 64\n  level fast token\n"
                   "  level outer frozen\n  memory delta in fast { shape = matrix; rule = delta; objective = l2; "
                   "lr = data; retain = 1; retain_init = 0.9 }\n  flow x -> delta\n}\n")
    assert main(["compile", str(bad), "-o", str(tmp_path / "bad_out")]) != 0
