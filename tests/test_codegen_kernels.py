"""Codegen picks each memory's Triton kernel and its constexprs (nslang/kernels.py), writes the
choice into the generated model, and the layers run exactly that choice."""
from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported: kernels on CPU
pytest.importorskip("triton")

from nslang.kernels import choose  # noqa: E402
from runtime.layers import implementation  # noqa: E402
from test_compile import SMALL, _build  # noqa: E402

pytestmark = pytest.mark.usefixtures("checked_kernel_memory")  # tests/bounds.py


def test_the_generated_model_states_each_kernel_and_its_parameters(tmp_path):
    pkg, compiled = _build(tmp_path, SMALL, "fast", "pkg_kernels")
    kernels = {s.name: s.kernel for s in compiled.plan.sublayers}
    chunk = {s.name: s.args.get("chunk") for s in compiled.plan.sublayers}
    assert kernels["delta"] == {"op": "gated_delta", "file": "runtime/ops/gated_delta/kernel.py",
                                "DELTA": True, "GATE": True, "CHUNK": chunk["delta"]}
    assert kernels["heb"]["op"] == "hebbian" and kernels["heb"]["DELTA"] is False
    assert kernels["heb"]["GATE"] is True            # retain = 0.9: a constant gate
    assert kernels["titans"]["op"] is None and kernels["titans"]["reason"].startswith("chunk 8")
    deep = dict(read="current", chunk=16, act="silu", kind="residual_mlp", hidden=128)
    assert choose("DeepMemory", deep, dim=256, heads=4) == {
        "op": "titans", "file": "runtime/ops/titans/kernel.py", "RESIDUAL": True, "ACT": "silu",
        "CHUNK": 16, "HIDDEN": 128}
    assert kernels["mlp"] is None                     # a plain MLP has no fast state
    text = (tmp_path / "pkg_kernels" / "model.py").read_text()
    assert "On CUDA: the `gated_delta` Triton kernel" in text
    assert pkg.model.Delta.kernel == kernels["delta"]


def test_codegen_says_why_a_memory_runs_no_kernel():
    args = dict(rule="delta", chunk=64, retain={"mode": "data", "value": None})
    wide = choose("LinearMemory", args, dim=768, heads=4)    # head width 192
    assert wide["op"] is None and "192 > 128" in wide["reason"]
    assert choose("LinearMemory", dict(args, rule="omega"), 256, 4)["op"] is None
    assert choose("LinearMemory", dict(args, chunk=48), 256, 4)["reason"].startswith("chunk 48")
    assert choose("Attention", {}, 256, 4) is None


def test_codegen_picks_the_self_modifying_kernel():
    """Hope's memory group: the kernel with its constexprs at the stock shape; a note where the
    default implementation waits for a GPU run at the tile size (width 96 runs as 128); none
    where the kernel cannot run (width 128 at chunk 32 fits no tile in Hopper's shared memory)."""
    args = dict(hidden={"mem": 128, "k": 128, "v": 128, "eta": 128, "alpha": 128}, chunk=16,
                act="silu", read="previous", dgd="input")
    assert choose("SelfModifying", args, dim=256, heads=4) == {
        "op": "self_modifying_titans", "file": "runtime/ops/self_modifying_titans/kernel.py",
        "ACT": "silu", "CHUNK": 16, "READ": "previous", "DGD": "input", "HIDDEN": 128}
    assert "chunk form" in choose("SelfModifying", args, dim=384, heads=4)["note"]
    assert "192" in choose("SelfModifying", args, dim=768, heads=4)["reason"]
    assert choose("SelfModifying", dict(args, chunk=64), 256, 4)["reason"].startswith("chunk 64")
    assert "shared memory" in choose("SelfModifying", dict(args, chunk=32), 512, 4)["reason"]
    assert "note" in choose("SelfModifying", dict(args, chunk=32), 256, 4)  # width 64 fits
    uneven = dict(args, hidden={"mem": 128, "k": 64})
    assert "hidden widths" in choose("SelfModifying", uneven, 256, 4)["reason"]


def test_a_memory_without_a_kernel_refuses_kernel_mode_with_the_reason(tmp_path):
    pkg, _ = _build(tmp_path, SMALL, "fast", "pkg_nokernel")
    pkg.model.Delta.kernel = {"op": None, "reason": "a test said so"}
    net = pkg.Model(pkg.Config())
    tokens = torch.randint(0, 61, (1, 9))
    net(tokens)   # fast mode: the chunk form
    with implementation("kernel"), pytest.raises(RuntimeError, match="a test said so"):
        net(tokens)


def test_the_kernel_runs_with_the_generated_constexprs_and_checks_them(tmp_path):
    pkg, _ = _build(tmp_path, SMALL.replace("flow x -> delta -> heb -> dg -> titans -> mlp",
                                            "flow x -> heb -> mlp"), "fast", "pkg_heb")
    torch.manual_seed(0)
    net = pkg.Model(pkg.Config())
    tokens = torch.randint(0, 61, (2, 20))
    with implementation("chunk"):
        ref = net(tokens)
    with implementation("kernel"):
        out = net(tokens)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)   # fp32 kernel vs fp32 chunk form
    stale = 16 if pkg.model.Heb.kernel["CHUNK"] != 16 else 32
    pkg.model.Heb.kernel = dict(pkg.model.Heb.kernel, CHUNK=stale)   # a stale generated choice
    with implementation("kernel"), pytest.raises(ValueError, match="recompile the spec"):
        net(tokens)
