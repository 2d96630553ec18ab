"""`nslang variants`: one child spec per grid point, each checked and compiled with its overrides
visible in its plan; the spec's own sweep blocks; `nslang sweep` trains them; `nslang report`."""
from __future__ import annotations

import json

import pytest
from eval_cli_common import TINY, corpus

from nslang.cli import main
from nslang.frontend import check_file
from nslang.variants import VariantError, parse_sets, split_values

pytestmark = pytest.mark.usefixtures("one_thread")


def plan_of(folder, variant) -> dict:
    return json.loads((folder / variant["package"] / "plan.json").read_text())["plan"]


def sublayer(plan: dict, name: str) -> dict:
    return next(s for s in plan["sublayers"] if s["name"] == name)


def test_variants_write_check_and_compile_every_point(tmp_path, capsys):
    spec = tmp_path / "tiny_eval.nsam"
    spec.write_text(TINY)
    out = tmp_path / "grid"
    status = main(["variants", str(spec), "--set", "dim=32,64",
                   "--set", "attn.shape=attention(window = 8),attention(window = 16)",
                   "--set", "adamw.lr=0.01", "-o", str(out)])
    text = capsys.readouterr().out
    assert status == 0, text
    index = json.loads((out / "index.json").read_text())
    assert index["model"] == "tiny_eval" and index["axes"] == {
        "dim": ["32", "64"], "attn.shape": ["attention(window = 8)", "attention(window = 16)"], "adamw.lr": ["0.01"]}
    variants = index["variants"]
    assert len(variants) == 4 and all(v["ok"] for v in variants)
    assert len(list(out.glob("*.nsam"))) == 4
    seen = set()
    for v in variants:
        child = out / v["spec"]
        assert child.read_text().count("extends") == 1 and f"dim = {v['overrides']['dim']}" in child.read_text()
        assert check_file(str(child)).ok  # it checks on its own, from where it is
        plan = plan_of(out, v)
        assert plan["dim"] == int(v["overrides"]["dim"])
        assert f"window = {sublayer(plan, 'attn')['args']['window']})" in v["overrides"]["attn.shape"]
        assert plan["optimizer"]["lr"] == 0.01
        seen.add((plan["dim"], sublayer(plan, "attn")["args"]["window"]))
        assert v["label"] in text
    assert seen == {(32, 8), (32, 16), (64, 8), (64, 16)}


def test_sweep_blocks_expand_and_cross_with_set(tmp_path, capsys):
    spec = tmp_path / "tiny_eval.nsam"
    spec.write_text(TINY + "\nsweep depths { depth = [1, 2] }\nsweep widths { dim = [32, 64]; attn.qk_norm = [true] }\n")
    out = tmp_path / "sw"
    assert main(["variants", str(spec), "-o", str(out)]) == 0
    variants = json.loads((out / "index.json").read_text())["variants"]
    assert [(v["sweep"], v["overrides"]) for v in variants] == [
        ("depths", {"depth": "1"}), ("depths", {"depth": "2"}),
        ("widths", {"dim": "32", "attn.qk_norm": "true"}), ("widths", {"dim": "64", "attn.qk_norm": "true"})]
    assert [plan_of(out, v)["depth"] for v in variants[:2]] == [1, 2]
    assert sublayer(plan_of(out, variants[3]), "attn")["args"]["qk_norm"] is True
    # one sweep, crossed with a --set axis (which replaces a sweep axis of the same path)
    out2 = tmp_path / "sw2"
    assert main(["variants", str(spec), "--sweep", "widths", "--set", "dim=48", "--set", "depth=1,2",
                 "-o", str(out2)]) == 0
    variants = json.loads((out2 / "index.json").read_text())["variants"]
    assert [v["overrides"] for v in variants] == [{"attn.qk_norm": "true", "dim": "48", "depth": "1"},
                                                  {"attn.qk_norm": "true", "dim": "48", "depth": "2"}]
    assert all(plan_of(out2, v)["dim"] == 48 for v in variants)
    capsys.readouterr()


def test_a_point_that_does_not_compile_is_reported(tmp_path, capsys):
    spec = tmp_path / "tiny_eval.nsam"
    spec.write_text(TINY)
    out = tmp_path / "bad"
    assert main(["variants", str(spec), "--set", "heads=2,3", "-o", str(out)]) == 1
    captured = capsys.readouterr()
    variants = json.loads((out / "index.json").read_text())["variants"]
    assert [v["ok"] for v in variants] == [True, False] and "heads" in variants[1]["errors"]
    assert "FAILED" in captured.out and "do not compile" in captured.out
    # bad command lines: exit 1 with a message
    assert main(["variants", str(spec), "--set", "dim", "-o", str(out)]) == 1
    assert main(["variants", str(spec), "-o", str(out)]) == 1
    assert "nothing to vary" in capsys.readouterr().err
    assert main(["variants", str(spec), "--sweep", "nope", "--set", "dim=32", "-o", str(out)]) == 1
    assert main(["variants", str(tmp_path / "missing.nsam"), "--set", "dim=32"]) == 1


def test_values_split_outside_brackets():
    assert split_values("[cms1],[cms1, cms2],residual_mlp(hidden = 2x, act = gelu)") == [
        "[cms1]", "[cms1, cms2]", "residual_mlp(hidden = 2x, act = gelu)"]
    assert parse_sets(["continuum.levels=[a],[a,b]", "dim=1"]) == {"continuum.levels": ["[a]", "[a,b]"],
                                                                   "dim": ["1"]}
    for bad in (["dim=1,,2"], ["dim=[1"], ["a.b.c=1"], ["dim=1", "dim=2"], ["x=1;y"]):
        with pytest.raises(VariantError):
            parse_sets(bad)


def test_sweep_trains_every_variant_and_report_compares_them(tmp_path, tmp_path_factory, capsys):
    spec = tmp_path / "tiny_eval.nsam"
    spec.write_text(TINY)
    out = tmp_path / "grid"
    assert main(["variants", str(spec), "--set", "dim=16,32", "-o", str(out)]) == 0
    data = corpus(tmp_path_factory)
    args = ["sweep", str(out), "--steps", "2", "--data", str(data), "--batch-size", "2", "--context", "32",
            "--warmup", "1", "--log-every", "1", "--eval-every", "0", "--eval-batches", "1", "--save-every", "2",
            "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    runs = sorted((out / "runs").iterdir())
    assert [r.name for r in runs] == ["tiny_eval_v00", "tiny_eval_v01"] and "dim=16" in text
    for r in runs:
        assert (r / "checkpoints").is_dir() and json.loads((r / "variant.json").read_text())["ok"]
    summary = json.loads((out / "sweep.json").read_text())
    assert [r["status"] for r in summary["runs"]] == ["ok", "ok"] and summary["runs"][0]["step"] == 2
    # a second sweep resumes: nothing left to train, still exit 0
    assert main(args) == 0
    # an eval of one run, then the report of the sweep folder
    assert main(["eval", str(runs[1]), "--task", "mqar", "--n", "2", "--param", "num_pairs=2",
                 "--param", "seq_len=32", "--param", "num_queries=1", "--device", "cpu", "-q", "--no-plot"]) == 0
    report = tmp_path / "rep" / "report.md"
    assert main(["report", str(out), "-o", str(report)]) == 0
    text = capsys.readouterr().out
    md = report.read_text()
    assert "| run | model | dim | step | params | train loss | val loss | tokens/s | mqar (acc) |" in md
    rows = [line for line in md.splitlines() if line.startswith("| tiny_eval_v")]
    assert len(rows) == 2 and rows[0].split("|")[3].strip() == "16" and rows[1].split("|")[-2].strip() != "-"
    for png in ("report_loss.png", "report_context.png"):
        assert (tmp_path / "rep" / png).read_bytes()[:4] == b"\x89PNG" and f"]({png})" in md
    assert not (tmp_path / "rep" / "report_forgetting.png").exists()
    assert "tiny_eval_v00" in text
