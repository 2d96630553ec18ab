"""The lm-evaluation-harness model `nslang`: its three methods on stand-in requests (no lm-eval
needed), then a real lm-eval run of three local tasks (a YAML + jsonl in tmp_path) when lm-eval is
installed (`pip install lm-eval`; it is not a dependency of nslang)."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import pytest
from eval_cli_common import trained_run

from runtime.eval.lm_eval_adapter import NslangModel
from runtime.eval.run_model import RunModel

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    return trained_run(tmp_path_factory)


@dataclass
class Req:
    """What the adapter reads of lm-eval's Instance: `.args`."""

    args: tuple


DOCS = [{"question": "the king", "choices": [" is dead", " lives"], "label": 0, "text": "the king is dead"},
        {"question": "thou art", "choices": [" foul", " fair"], "label": 1, "text": "thou art fair and the queen"}]


def test_methods_on_stand_in_requests(run_dir):
    rm = RunModel.load(run_dir, device="cpu")
    lm = NslangModel(model=rm, max_gen_toks=6)
    pairs = [(d["question"], c) for d in DOCS for c in d["choices"]]
    got = lm.loglikelihood([Req(p) for p in pairs])
    assert got == rm.loglikelihoods(pairs)
    assert all(isinstance(ll, float) and ll < 0 and isinstance(g, bool) for ll, g in got)
    rolling = lm.loglikelihood_rolling([Req((d["text"],)) for d in DOCS])
    assert rolling == [rm.loglikelihoods([("", d["text"])])[0][0] for d in DOCS]
    free = lm.generate_until([Req(("the king", {"max_gen_toks": 6}))])[0]
    assert free == rm.generate("the king", max_tokens=6) and len(free) <= 6
    if len(free) >= 3:  # a stop string cuts the text before it
        stop = free[2]
        cut = lm.generate_until([Req(("the king", {"until": [stop], "max_gen_toks": 6, "do_sample": False}))])[0]
        assert cut == free[:free.index(stop)]
    assert lm.generate_until([Req(("the king", {"until": "\n"}))])[0] == rm.generate("the king", max_tokens=6,
                                                                                      until=["\n"])
    with pytest.raises(ValueError, match="run="):
        NslangModel()


def _task_files(folder, data) -> list[str]:
    common = f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
    (folder / "choice.yaml").write_text(
        "task: nslang_t_choice\n" + common + "output_type: multiple_choice\ndoc_to_text: \"{{question}}\"\n"
        "doc_to_choice: \"{{choices}}\"\ndoc_to_target: \"{{label}}\"\nmetric_list:\n  - metric: acc\n")
    (folder / "rolling.yaml").write_text(
        "task: nslang_t_rolling\n" + common + "output_type: loglikelihood_rolling\ndoc_to_text: \"\"\n"
        "doc_to_target: \"{{text}}\"\nmetric_list:\n  - metric: bits_per_byte\n")
    (folder / "gen.yaml").write_text(
        "task: nslang_t_gen\n" + common + "output_type: generate_until\ndoc_to_text: \"{{question}}\"\n"
        "doc_to_target: \"{{choices[label]}}\"\ngeneration_kwargs:\n  until: [\"\\n\"]\n  max_gen_toks: 4\n"
        "metric_list:\n  - metric: exact_match\n")
    return ["nslang_t_choice", "nslang_t_rolling", "nslang_t_gen"]


def test_lm_eval_runs_local_tasks(run_dir, tmp_path, monkeypatch):
    pytest.importorskip("lm_eval", reason="lm-eval is optional: pip install lm-eval")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    import lm_eval
    from lm_eval.tasks import TaskManager

    import runtime.eval.lm_eval_adapter as adapter

    assert adapter.NslangLM is not None
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    names = _task_files(tmp_path, data)
    out = lm_eval.simple_evaluate(model="nslang", model_args=f"run={run_dir},batch_size=4", tasks=names,
                                  task_manager=TaskManager(include_path=str(tmp_path)), device="cpu",
                                  log_samples=False)
    results = out["results"]
    # acc is what our own scores say: the higher-scored choice, per document
    rm = RunModel.load(run_dir, device="cpu")
    right = [max(range(2), key=lambda k: rm.score_fn(d["question"], d["choices"][k])) == d["label"] for d in DOCS]
    assert results["nslang_t_choice"]["acc,none"] == pytest.approx(sum(right) / 2)
    # bits per byte from the whole-document log-likelihoods
    lls = [rm.loglikelihoods([("", d["text"])])[0][0] for d in DOCS]
    nbytes = sum(len(d["text"].encode()) for d in DOCS)
    assert results["nslang_t_rolling"]["bits_per_byte,none"] == pytest.approx(-sum(lls) / nbytes / math.log(2),
                                                                              rel=1e-4)
    assert 0.0 <= results["nslang_t_gen"]["exact_match,none"] <= 1.0
    # as lm-eval's command line builds it: model_args win over its --batch_size, and its default
    # device (cuda) falls back to the CPU where there is none
    from lm_eval.api.registry import get_model

    lm = get_model("nslang").create_from_arg_string(f"run={run_dir},batch_size=4", {"batch_size": 1, "device": "cuda"})
    assert lm.model.batch_size == 4 and lm.model.device.type in ("cpu", "cuda")
    assert os.environ.get("HF_DATASETS_OFFLINE") == "1"
