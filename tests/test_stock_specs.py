"""The stock specs in specs/ are the proof that the language expresses the paper's models
(DESIGN.md): each checks with no diagnostic at all, says which equations it encodes, and the
Hope family is written as `extends` of Hope, so an ablation reads as its one difference."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from nslang import ir
from nslang.frontend import check_file

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
ALL = sorted(SPECS.rglob("*.nsam"))

MODELS = {"transformer_pp", "linear_attention", "deltanet", "gated_deltanet", "titans",
          "ttt_linear", "ttt_mlp", "self_modifying_titans", "hope", "hope_attention",
          "ada_transformer", "cms_sequential", "cms_independent", "cms_nested", "hope_no_dgd",
          "hope_no_momentum", "hope_no_retention", "hope_no_cms"}
OPTIMIZERS = {"adamw": "adamw", "muon": "muon", "m3": "m3", "delta_momentum": "delta_momentum",
              "deep_momentum": "deep_momentum", "sgd_momentum": "sgd"}


def _id(path: Path) -> str:
    return str(path.relative_to(SPECS))


def _model(name: str) -> ir.Model:
    result = check_file(SPECS / f"{name}.nsam")
    assert result.ok, result.diagnostics.render()
    (model,) = result.spec.models
    return model


def test_every_stock_spec_is_there():
    assert {p.stem for p in SPECS.glob("*.nsam")} >= MODELS
    assert {p.stem for p in (SPECS / "optim").glob("*.nsam")} >= set(OPTIMIZERS)


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_checks_with_no_errors_and_no_warnings(path):
    result = check_file(path)
    assert result.ok and result.diagnostics.items == [], result.diagnostics.render()
    assert result.spec.models or result.spec.optimizers


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_starts_with_a_comment_that_cites_equations(path):
    lines = path.read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    assert header, f"{path.name} does not start with a comment block"
    assert re.search(r"\b(Eq\.|Eqs\.|Algorithm|Alg\.) ?\d", "\n".join(header)), \
        f"{path.name}: the header cites no equation"


@pytest.mark.parametrize("path", [p for p in ALL if p.parent == SPECS], ids=_id)
def test_every_model_has_a_flow(path):
    result = check_file(path)
    assert result.spec.models, f"{path.name} declares no model"
    for model in result.spec.models:
        assert model.flows, f"model `{model.name}` has no flow"


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_specs_are_one_top_level_optimizer(name):
    result = check_file(SPECS / "optim" / f"{name}.nsam")
    assert result.ok, result.diagnostics.render()
    assert not result.spec.models
    (opt,) = result.spec.optimizers
    assert opt.kind == OPTIMIZERS[name] and opt.level is None


# ---- the Hope family ---------------------------------------------------------------------------
HOPE_FAMILY = sorted(p.stem for p in SPECS.glob("hope_*.nsam"))


def test_hope_is_self_modifying_titans_plus_cms():
    hope = _model("hope")
    assert hope.extends[0].endswith("self_modifying_titans.nsam")
    (cms,) = hope.cms
    assert cms.variant == "sequential" and len(cms.levels) == 3 and cms.objective.kind == "task"
    titans = hope.member("titans")
    assert titans.rule.kind == "dgd" and titans.conv == 4 and titans.qk_norm
    assert titans.momentum.value > 0 and titans.retain.mode == "generated"
    assert [f.path for f in hope.flows] == [("x", "titans", "continuum")]
    assert not any(m.shape.kind == "attention" for m in hope.memories)


@pytest.mark.parametrize("name", HOPE_FAMILY)
def test_hope_variants_extend_hope(name):
    text = (SPECS / f"{name}.nsam").read_text()
    assert re.search(rf"^model {name} extends hope\b", text, re.M), text
    assert _model(name).extends[0].endswith("hope.nsam")


def test_self_modifying_titans_generates_its_inputs():
    m = _model("self_modifying_titans")
    generated = {t.arg for t in m.transfers if t.kind == "generate" and t.target == "titans"}
    assert generated == {"keys", "values", "lr", "retain"}
    inits = {t.target for t in m.transfers if t.kind == "init"}
    in_context = {mem.name for mem in m.memories if m.level(mem.level).kind == "every"}
    assert inits == in_context                      # every initial state is meta-learned
    assert all(m.member(name).rule.kind == "dgd" for name in in_context)
    assert all(m.member(name).values == "self" for name in in_context)   # Eq. 87
    # Eq. 88: every memory of the group, the generators included, takes k, eta, alpha from them
    for arg, gen in (("keys", "k_gen"), ("lr", "lr_gen"), ("retain", "retain_gen")):
        fed = {t.target for t in m.transfers if t.kind == "generate" and t.arg == arg}
        assert fed == in_context and all(t.source == gen for t in m.transfers
                                         if t.kind == "generate" and t.arg == arg)


def test_ablations_change_what_table_6_says():
    hope = _model("hope")
    no_dgd = _model("hope_no_dgd")
    assert {m.rule.kind for m in no_dgd.memories} == {"gd"}
    assert no_dgd.cms == hope.cms
    assert _model("hope_no_momentum").member("titans").momentum.value == 0
    no_ret = _model("hope_no_retention")
    assert all(m.retain.mode == "const" and m.retain.value == 1 for m in no_ret.memories)
    no_cms = _model("hope_no_cms")
    assert no_cms.cms[0].levels == ("outer",) and no_cms.level("outer").kind == "frozen"
    attn = _model("hope_attention")
    assert [m.shape.kind for m in attn.memories] == ["attention"]
    assert attn.cms[0].levels == hope.cms[0].levels


def test_cms_variants_differ_only_in_the_variant():
    seq, ind, nes = (_model(f"cms_{v}") for v in ("sequential", "independent", "nested"))
    assert (seq.cms[0].variant, ind.cms[0].variant, nes.cms[0].variant) == \
        ("sequential", "independent", "nested")
    assert ind.cms[0].agg == "weighted_sum"
    for other in (ind, nes):
        assert other.cms[0].levels == seq.cms[0].levels
        assert other.memories == seq.memories


def test_sweep_example_has_a_sweep_and_a_const():
    result = check_file(ROOT / "examples" / "hope_sweep.nsam")
    assert result.ok and result.diagnostics.items == [], result.diagnostics.render()
    assert result.spec.sweeps and result.spec.consts
