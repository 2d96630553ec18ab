"""`nslang eval`: exit codes, the table, the JSON file, the plots (context length; forgetting)."""
from __future__ import annotations

import json
import random

import pytest
from eval_cli_common import run_cli, trained_run

from nslang.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    return trained_run(tmp_path_factory)


def test_eval_writes_table_json_and_context_plot(run_dir, tmp_path, capsys):
    out = tmp_path / "res" / "mqar.json"
    status = main(["eval", str(run_dir), "--task", "mqar,formal_parity", "--n", "4", "--seed", "1",
                   "--param", "mqar.num_pairs=2", "--param", "mqar.seq_len=48,64", "--param", "mqar.num_queries=1",
                   "--device", "cpu", "-q", "--out", str(out)])
    text = capsys.readouterr().out
    assert status == 0
    assert "mqar" in text and "formal_parity" in text and "acc" in text and "wrote" in text
    doc = json.loads(out.read_text())
    assert doc["format"] == "nslang-eval" and doc["step"] == 3 and doc["n"] == 4 and doc["seed"] == 1
    mqar = doc["tasks"]["mqar"]
    assert mqar["kind"] == "task" and mqar["n"] == 4 and mqar["mode"] == "both"
    assert 0.0 <= mqar["acc"] <= 1.0 and 0.0 <= mqar["gen_acc"] <= 1.0 and mqar["chance"] == 0.5
    assert set(mqar["bins"]["seq_len"]) == {"48", "64"} and mqar["params"]["seq_len"] == [48, 64]
    assert doc["tasks"]["formal_parity"]["n"] == 4
    png = tmp_path / "res" / "mqar_context.png"
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "res" / "mqar_forgetting.png").exists()


def test_default_out_is_the_run_and_accumulates(run_dir, capsys):
    extra = {"formal_parity": [], "babi_qa1": ["--param", "lengths=0"],
             "niah_single_1": ["--param", "lengths=300", "--param", "count=tokens"]}  # tokens of the run
    for task, params in extra.items():
        args = ["eval", str(run_dir), "--task", task, "--n", "2", "--mode", "ll", "--no-plot", "-q", "--device", "cpu"]
        assert main(args + params) == 0
    capsys.readouterr()
    doc = json.loads((run_dir / "eval.json").read_text())
    assert set(extra) <= set(doc["tasks"])
    assert doc["tasks"]["niah_single_1"]["params"] == {"lengths": 300, "count": "tokens"}


def test_eval_continual_stream_draws_the_forgetting_heatmap(run_dir, tmp_path, capsys):
    rng = random.Random(0)
    topics = {"sea": "ship wave salt tide", "war": "sword army siege blood", "farm": "wheat plough barn cow"}
    with open(tmp_path / "records.jsonl", "w") as fh:
        for topic, words in topics.items():
            for _ in range(4):
                text = " ".join(rng.choice(words.split()) for _ in range(12))
                fh.write(json.dumps({"text": text, "topic": topic}) + "\n")
    out = tmp_path / "cl.json"
    status = main(["eval", str(run_dir), "--task", "class_incremental", "--param", f"source=@{tmp_path / 'records.jsonl'}",
                   "--param", "classes_per_task=1", "--param", "test_per_class=2", "--param", "train_per_class=2",
                   "--param", "train_steps=1", "--param", "train_batch=2", "--param", "train_seq_len=16",
                   "--device", "cpu", "-q", "--out", str(out)])
    text = capsys.readouterr().out
    assert status == 0, text
    doc = json.loads(out.read_text())["tasks"]["class_incremental"]
    assert doc["kind"] == "continual" and len(doc["names"]) == 3
    matrix = doc["matrix"]
    assert [sum(v is not None for v in row) for row in matrix] == [1, 2, 3]
    assert "forgetting" in doc and "bwt" in doc and "final_accuracy" in text
    assert doc["params"]["source"] == "<12 records>"
    assert (tmp_path / "cl_forgetting.png").is_file()


def test_exit_codes(run_dir, tmp_path, capsys):
    # unknown task, with a suggestion (exit 1, no traceback), before any model is loaded
    assert main(["eval", str(run_dir), "--task", "mqra"]) == 1
    assert "did you mean 'mqar'" in capsys.readouterr().err
    # a parameter that no named task takes
    assert main(["eval", str(run_dir), "--task", "mqar", "--param", "lengths=1024"]) == 1
    assert "no task of mqar takes it" in capsys.readouterr().err
    # a parameter the task rejects
    assert main(["eval", str(run_dir), "--task", "mqar", "--param", "seq_len=8", "-q"]) == 1
    assert "too short" in capsys.readouterr().err
    # no run there
    assert main(["eval", str(tmp_path / "nowhere"), "--task", "mqar"]) == 1
    assert "no run at" in capsys.readouterr().err
    # a bad command line: argparse's exit status 2
    with pytest.raises(SystemExit) as info:
        main(["eval", str(run_dir)])
    assert info.value.code == 2
    # and the same through the real entry point
    status, out, err = run_cli("eval", run_dir, "--task", "nope")
    assert status == 1 and "unknown evaluation task 'nope'" in err and "Traceback" not in err


def _oom_above(monkeypatch, rows: int, calls: list):
    """RunModel._forward raises CUDA's out-of-memory error for more than `rows` rows at once."""
    import torch

    from runtime.eval.run_model import RunModel

    real = RunModel._forward

    def forward(self, tokens, state):
        calls.append(len(tokens))
        if len(tokens) > rows:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return real(self, tokens, state)

    monkeypatch.setattr(RunModel, "_forward", forward)


def test_eval_out_of_memory_halves_the_batch_and_gets_the_same_result(run_dir, tmp_path, capsys, monkeypatch):
    argv = ["eval", str(run_dir), "--task", "mqar", "--n", "8", "--param", "num_pairs=2", "--param", "seq_len=48",
            "--param", "num_queries=1", "--device", "cpu", "--batch-size", "8", "--no-plot"]
    assert main([*argv, "--out", str(tmp_path / "full.json")]) == 0
    capsys.readouterr()
    calls: list[int] = []
    _oom_above(monkeypatch, 2, calls)
    assert main([*argv, "--out", str(tmp_path / "fitted.json")]) == 0
    err = capsys.readouterr().err
    assert "out of memory at batch 8; again at batch 4" in err and "at batch 4; again at batch 2" in err
    assert max(calls) == 8 and calls[-1] <= 2
    full, fitted = (json.loads((tmp_path / f).read_text())["tasks"]["mqar"] for f in ("full.json", "fitted.json"))
    assert fitted["acc"] == full["acc"] and fitted["gen_acc"] == full["gen_acc"]  # the batch changes nothing else


def test_eval_out_of_memory_at_batch_one_is_a_diagnostic(run_dir, tmp_path, capsys, monkeypatch):
    _oom_above(monkeypatch, 0, [])
    status = main(["eval", str(run_dir), "--task", "mqar", "--n", "2", "--param", "num_pairs=2",
                   "--param", "seq_len=48", "--device", "cpu", "--batch-size", "2", "--no-plot",
                   "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert status == 4, err  # OutOfMemory's exit status, as `nslang train` uses
    assert "task mqar: out of CPU memory even at batch 1" in err and "--chunk" in err and "Traceback" not in err


def test_eval_out_of_memory_loading_the_model_is_a_diagnostic(run_dir, tmp_path, capsys, monkeypatch):
    # The last grid's MQAR evaluation of one Hope died with CUDA's own traceback when four jobs
    # shared the card and moving the model's weights failed.
    import torch

    def to(self, *a, **kw):
        raise torch.AcceleratorError("CUDA error: out of memory")

    monkeypatch.setattr(torch.nn.Module, "to", to)
    status = main(["eval", str(run_dir), "--task", "mqar", "--n", "2", "--param", "num_pairs=2",
                   "--param", "seq_len=48", "--device", "cpu", "--no-plot", "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert status == 4, err
    assert "out of CPU memory moving the model of" in err and "--device cpu" in err and "Traceback" not in err
    assert not (tmp_path / "x.json").exists()


def test_eval_nonfinite_fine_tuning_is_a_diagnostic(run_dir, tmp_path, capsys):
    with open(tmp_path / "records.jsonl", "w") as fh:
        for topic in ("sea", "war"):
            for i in range(2):
                fh.write(json.dumps({"text": f"{topic} text number {i} " * 3, "topic": topic}) + "\n")
    status = main(["eval", str(run_dir), "--task", "class_incremental", "--param", f"source=@{tmp_path / 'records.jsonl'}",
                   "--param", "classes_per_task=1", "--param", "test_per_class=1", "--param", "train_per_class=2",
                   "--param", "train_steps=2", "--param", "train_lr=1e30", "--param", "train_seq_len=16",
                   "--device", "cpu", "-q", "--out", str(tmp_path / "cl.json")])
    err = capsys.readouterr().err
    assert status == 1, err
    assert "task class_incremental: the fine-tuning loss became" in err and "train_lr" in err
    assert "Traceback" not in err


def test_eval_continual_out_of_memory_restarts_from_the_checkpoint(run_dir, tmp_path, capsys, monkeypatch):
    with open(tmp_path / "records.jsonl", "w") as fh:
        for topic in ("sea", "war"):
            for i in range(4):
                fh.write(json.dumps({"text": f"{topic} text number {i} " * 3, "topic": topic}) + "\n")
    argv = ["eval", str(run_dir), "--task", "class_incremental", "--param", f"source=@{tmp_path / 'records.jsonl'}",
            "--param", "classes_per_task=1", "--param", "test_per_class=2", "--param", "train_per_class=2",
            "--param", "train_steps=1", "--param", "train_batch=1", "--param", "train_seq_len=16",
            "--device", "cpu", "--batch-size", "2", "--no-plot"]
    assert main([*argv, "--out", str(tmp_path / "full.json")]) == 0
    capsys.readouterr()
    _oom_above(monkeypatch, 1, [])  # scoring two test texts at once fails, after the first fine-tuning
    assert main([*argv, "--out", str(tmp_path / "fitted.json")]) == 0
    assert "out of memory at batch 2; again at batch 1, fine-tuning batch 1" in capsys.readouterr().err
    full, fitted = (json.loads((tmp_path / f).read_text())["tasks"]["class_incremental"]
                    for f in ("full.json", "fitted.json"))
    # restarted from the checkpoint, not from the half fine-tuned weights: the same matrix
    assert fitted["matrix"] == full["matrix"]


def test_eval_reports_progress_unless_quiet(run_dir, tmp_path, capsys):
    argv = ["eval", str(run_dir), "--task", "mqar", "--n", "6", "--param", "num_pairs=2", "--param", "seq_len=48",
            "--param", "num_queries=1", "--device", "cpu", "--batch-size", "4", "--no-plot",
            "--out", str(tmp_path / "m.json")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    # each pass reports when it ends: 6 examples x 2 choices scored, then 6 generations
    assert "mqar: log-likelihood 12/12 (" in err and "mqar: generation 6/6 (" in err
    assert main([*argv, "-q"]) == 0
    assert "log-likelihood" not in capsys.readouterr().err


def test_context_plot_marks_the_guessing_level(tmp_path, monkeypatch):
    """A panel whose runs share one chance level (one task) gets it as a dotted line; a panel mixing
    tasks with different chance levels gets none."""
    pytest.importorskip("matplotlib")
    from runtime.eval import report

    figures = []
    monkeypatch.setattr(report, "_finish", lambda fig, out: figures.append(fig) or out)

    def result(chance):
        return {"chance": chance, "bins": {"length": {"512": {"acc": 0.2}, "1024": {"acc": 0.6}}}}

    report.plot_context({"one task": {"a": result(0.25), "b": result(0.25)},
                         "mixed": {"a": result(0.25), "b": result(0.5)}}, tmp_path / "p.png")
    one, mixed = figures[0].axes[:2]
    assert [line.get_ydata()[0] for line in one.lines if line.get_label() == "chance"] == [0.25]
    assert not [line for line in mixed.lines if line.get_label() == "chance"]
