"""Sampling from a trained run with the recurrent fast state.

The prompt is fed once through `model(tokens, state=model.init_state(1))`; then each new token is
fed alone with the state the previous call returned. Attention carries its KV cache and position,
linear and deep memories their matrices, CMS levels their in-context weights and pending updates:
every memory keeps learning from the text it reads, exactly as on one long sequence (the tests
check that greedy decoding this way equals recomputing the whole sequence at every token).

The prompt is preceded by the end-of-document token, as a document is in the training stream.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from . import build, checkpoint
from .distributed import pick_device
from .errors import OutOfMemory, TrainError, is_out_of_memory


def _pick(logits: torch.Tensor, temperature: float, top_k: int | None, generator) -> int:
    """One token id from the logits of the last position ([vocab])."""
    if temperature <= 0:
        return int(torch.argmax(logits))
    logits = logits.float() / temperature
    if top_k is not None and 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))


@torch.no_grad()
def sample(model, prompt: list[int], max_new_tokens: int, temperature: float = 0.8, top_k: int | None = 50,
           generator: torch.Generator | None = None, stop_id: int | None = None) -> list[int]:
    """New token ids after `prompt`, carrying the model's fast state from call to call."""
    if not prompt:
        raise ValueError("the prompt needs at least one token")
    device = next(model.parameters()).device
    state = model.init_state(1)
    logits, state = model(torch.tensor([prompt], device=device), state=state)  # [1, T, vocab]
    out: list[int] = []
    for i in range(max_new_tokens):
        token = _pick(logits[0, -1], temperature, top_k, generator)
        if token == stop_id:
            break
        out.append(token)
        if i + 1 < max_new_tokens:
            logits, state = model(torch.tensor([[token]], device=device), state=state)  # [1, 1, vocab]
    return out


@torch.no_grad()
def greedy_recompute(model, prompt: list[int], max_new_tokens: int) -> list[int]:
    """Greedy decoding that runs the whole sequence again for every token (the reference)."""
    device = next(model.parameters()).device
    ids = list(prompt)
    for _ in range(max_new_tokens):
        logits = model(torch.tensor([ids], device=device))
        ids.append(int(torch.argmax(logits[0, -1])))
    return ids[len(prompt):]


def _resolve(run: str | Path, ckpt: str | Path | None) -> tuple[Path, Path]:
    """(run directory, checkpoint path) from a run directory or a checkpoint file."""
    run = Path(run)
    if run.is_file():
        return run.parent.parent, run
    if not run.is_dir():
        raise TrainError(f"no run at {run}", "give the --out directory of `nslang train`, or a checkpoint file")
    path = Path(ckpt) if ckpt else checkpoint.latest(run / "checkpoints")
    if path is None:
        raise TrainError(f"{run} holds no checkpoint yet", "train it first (`nslang train SPEC --out RUN`)")
    return run, path


def load_run(run: str | Path, ckpt: str | Path | None = None, device: str = "auto"):
    """(model in eval mode, tokenizer, package) of a run's newest (or given) checkpoint."""
    from runtime.data import load_tokenizer

    run_dir, path = _resolve(run, ckpt)
    payload = checkpoint.load(path)
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    package = Path(info.get("package", run_dir / "package"))
    if not package.is_dir() and (run_dir / "package").is_dir():  # the run directory was moved, or cwd differs
        package = run_dir / "package"
    pkg = build.open_package(package)
    checkpoint.check_spec(payload, pkg.spec_hash, path)
    model = pkg.Model(pkg.Config())
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise TrainError(f"the weights in {path} do not fit {package}: {str(err).splitlines()[0][:200]}") from None
    target = pick_device(device)
    try:
        model.to(target).eval()
    except Exception as err:  # noqa: BLE001 - only out-of-memory is a diagnostic; the rest re-raises
        if not is_out_of_memory(err):
            raise
        size = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**30
        raise OutOfMemory(f"out of {target.type.upper()} memory moving the model of {path} ({size:.2f} GiB of "
                          f"weights) to {target}",
                          "another process may hold the card (nvidia-smi lists them): wait for it, pick a "
                          "free one (--device cuda:N), or run on the CPU (--device cpu)") from None
    tok_spec = payload.get("tokenizer") or info.get("tokenizer") or {"kind": "byte"}
    tokenizer = load_tokenizer(tok_spec, Path(payload.get("corpus", ".")))
    return model, tokenizer, pkg


def generate_text(run: str | Path, prompt: str, max_new_tokens: int = 200, temperature: float = 0.8,
                  top_k: int | None = 50, seed: int = 0, device: str = "auto",
                  ckpt: str | Path | None = None) -> str:
    """Continue `prompt` with the run's model; returns the new text only."""
    model, tokenizer, _ = load_run(run, ckpt, device)
    ids = [tokenizer.eod_id] + tokenizer.encode(prompt)
    generator = torch.Generator().manual_seed(seed)
    new = sample(model, ids, max_new_tokens, temperature, top_k, generator, stop_id=tokenizer.eod_id)
    return tokenizer.decode(new)
