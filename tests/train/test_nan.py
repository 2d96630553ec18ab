"""A NaN or inf stops the run at its step, naming the first module (and .nsam line) it came out of."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from _train_common import TINY_ATTN
from nslang.cli import main
from runtime.train import NonFiniteLoss, train
from runtime.train.nan_guard import diagnose, locate

MLP_LINE = 6  # `memory mlp in outer { ... }` in TINY_ATTN


def test_nan_in_a_memory_stops_the_run_and_names_it(spec, run_config, capsys):
    path = spec(TINY_ATTN)
    cfg = run_config(path, steps=2, save_every=2)
    train(cfg)
    ckpt = cfg.resolved_out() / "checkpoints" / "step_0000002.pt"
    payload = torch.load(ckpt, weights_only=True)
    payload["model"]["blocks.1.mlp.down.weight"][0, 0] = float("nan")
    torch.save(payload, ckpt)
    saved = ckpt.read_bytes()

    with pytest.raises(NonFiniteLoss) as err:
        train(run_config(path, steps=6, resume="latest"))
    message = err.value.message
    assert "loss became nan at step 3" in message
    assert "blocks.1.mlp.down" in message and "memory `mlp` of block 1" in message
    assert f"{path}:{MLP_LINE}" in message
    assert "step_0000002.pt" in err.value.hint  # the last good checkpoint
    assert ckpt.read_bytes() == saved and len(list(ckpt.parent.iterdir())) == 1  # nothing saved is lost
    events = [json.loads(line) for line in (cfg.resolved_out() / "metrics.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "nonfinite" and e["step"] == 3 for e in events)
    assert (cfg.resolved_out() / "loss.png").is_file()

    status = main(["train", str(path), "--out", cfg.out, "--data", cfg.data, "--resume", "--steps", "6",
                   "--device", "cpu", "--no-progress", "--context", "64", "--batch-size", "2"])
    stderr = capsys.readouterr().err
    assert status == 3 and "error: the loss became nan at step 3" in stderr and "Traceback" not in stderr


class _Sub(nn.Module):
    """`gate` (model.nsam:12). in-context: every 16 tokens."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x)


class _Tagged(_Sub):
    nsam_source = "other.nsam:3"


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 4)
        self.blocks = nn.ModuleList([nn.ModuleDict({"gate": _Sub(), "mem": _Tagged()}) for _ in range(2)])

    def forward(self, x):
        x = self.embed(x)
        for b in self.blocks:
            x = b["mem"](b["gate"](x))
        return x


def test_locate_reads_nsam_source_or_the_docstring():
    toy = _Toy()
    place = locate(toy, "blocks.1.gate.lin")
    assert (place.memory, place.source, place.block) == ("gate", "model.nsam:12", 1)
    assert place.schedule == "in-context: every 16 tokens"
    tagged = locate(toy, "blocks.0.mem")
    assert (tagged.source, tagged.block) == ("other.nsam:3", 0)
    assert locate(toy, "embed").describe() == "embed (the token embedding)"


def test_diagnose_forward_and_backward():
    toy = _Toy()
    with torch.no_grad():
        toy.blocks[1]["mem"].lin.bias[0] = float("inf")
    x = torch.ones(2, 4)
    finding = diagnose(toy, lambda: toy(x))
    assert finding.stage == "forward" and finding.place.module == "blocks.1.mem.lin"
    assert "other.nsam:3" in finding.describe()

    toy = _Toy()
    toy(x).sum().backward()
    toy.blocks[0]["gate"].lin.weight.grad[0, 0] = float("nan")
    finding = diagnose(toy, lambda: toy(x))
    assert finding.stage == "backward" and finding.bad_grads == ["blocks.0.gate.lin.weight"]
    assert "backward pass" in finding.describe() and "model.nsam:12" in finding.describe()


def test_hint_for_a_chunk_parallel_memory():
    from runtime.train.nan_guard import Finding, Place

    chunked = Place("blocks.3.lmm.out", "lmm", "titans.nsam:25", "in-context: every 16 tokens, chunk-parallel over "
                    "16 tokens; initial state meta-learned (init transfer)", 3)
    hint = Finding("forward", chunked).hint()
    assert "`lmm` updates chunk-parallel over 16 tokens" in hint and "shorter chunk" in hint
    per_token = Place("blocks.0.mem", "mem", "x.nsam:3", "in-context: every token, chunk-parallel over 1 tokens", 0)
    assert Finding("forward", per_token).hint() == ""  # per-token updates: nothing to say
    assert Finding("backward", chunked, bad_grads=["w"]).hint() == ""  # the forward was finite
    assert Finding("forward", Place("embed")).hint() == ""


def test_hint_for_a_chain_of_swiglu_levels_without_level_norm():
    from runtime.layers.continuum import Continuum

    def block(level_norm):
        cms = Continuum(8, 16, "swiglu", "silu", "sequential", [4, 8, 0], ["in_context", "in_context", "outer"],
                        1e-3, "exact", 16, level_norm=level_norm)
        with torch.no_grad():
            for level in cms.levels:
                level["up"].mul_(1e4)  # each level squares its input's scale: the chain overflows
        return torch.nn.ModuleDict({"continuum": cms})

    x = torch.ones(2, 4, 8)
    model = torch.nn.Module()
    model.blocks = torch.nn.ModuleList([block("none")])
    finding = diagnose(model, lambda: model.blocks[0]["continuum"](x))
    assert finding.stage == "forward" and finding.place.module.startswith("blocks.0.continuum")
    assert finding.unnormalised_chain == (3, "swiglu")
    assert "level_norm = rms" in finding.hint() and "degree 8" in finding.hint()
    # the same weights with the norm: every level reads a unit-RMS input, and nothing overflows
    model.blocks = torch.nn.ModuleList([block("rms")])
    y, _ = model.blocks[0]["continuum"](x)
    assert torch.isfinite(y).all()


def test_hint_for_a_self_modifying_group_names_its_retention_start():
    """A non-finite value out of a self-modifying group gets the retention advice (the value
    generator's self-target grows chunk after chunk), with the group's own starting alpha and a
    lower one to try; outside the group the chunk-parallel hint stays."""
    from runtime.layers.selfmod import SelfModifying

    def group(retain_init, retention=True):
        return SelfModifying(8, 2, {n: 8 for n in ("mem", "k", "v", "eta", "alpha")}, 4, False, "input", 0.9,
                             "previous", "softplus", "sigmoid", "silu", 0, True, retention=retention,
                             retain_init=retain_init)

    def finding_of(m):
        model = torch.nn.Module()
        model.blocks = torch.nn.ModuleList([torch.nn.ModuleDict({"titans": m})])
        with torch.no_grad():
            model.blocks[0]["titans"].out.weight.fill_(float("inf"))
        finding = diagnose(model, lambda: model.blocks[0]["titans"](torch.randn(1, 8, 8)))
        assert finding.stage == "forward" and finding.place.module.startswith("blocks.0.titans")
        return finding

    for retain_init, start, lower in ((0.0, "0.9933", "0.95"), (0.95, "0.95", "0.9")):
        finding = finding_of(group(retain_init))
        assert finding.self_modifying_retain == pytest.approx(float(start), abs=1e-4)
        hint = finding.hint()
        assert f"starts at {start}" in hint and f"`retain_init = {lower}`" in hint and "Eq. 87" in hint
    # Table 6's ablation without retention (specs/hope_no_retention.nsam) has nothing to lower
    hint = finding_of(group(0.0, retention=False)).hint()
    assert "no retention (`retain = 1`)" in hint and "starts at" not in hint and "Eq. 87" in hint
