"""Checkpoints: one file per save, written atomically, read without unpickling arbitrary objects.

A checkpoint is a `torch.save`d dict of tensors and plain values only (it loads with
`torch.load(weights_only=True)`):

    format, version   "nslang-checkpoint", 1
    step, tokens      optimizer steps done, training tokens seen (all processes together)
    spec              {"hash", "model", "files": {name: text}}: what the weights belong to
    model             the model's state_dict
    optimizer         the outer optimizer's state_dict (M3's slow momentum and window included)
    periodic          gradients accumulated for cross-sequence levels since their last step
    data              the batch sampler's position (a few ints)
    rng               torch (CPU and CUDA), numpy and Python generator states
    config            the RunConfig, as a dict
    tokenizer         the corpus's tokenizer description (meta.json), for `nslang generate`
    corpus            the prepared corpus's folder

Saving writes `<dir>/.step_N.pt.tmp`, fsyncs it and renames it to `step_N.pt`, so a crash at any
moment leaves either the old set of checkpoints or the new one, never half a file.
"""
from __future__ import annotations

import os
import pickle
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from .errors import TrainError

FORMAT, VERSION = "nslang-checkpoint", 1
_NAME = re.compile(r"^step_(\d+)\.pt$")


def path_for(folder: Path, step: int) -> Path:
    return folder / f"step_{step:07d}.pt"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest(folder: Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def save(payload: dict, path: Path, keep: int | None = None) -> Path:
    """Write `payload` atomically to `path`; then delete all but the newest `keep` checkpoints."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save({"format": FORMAT, "version": VERSION, **payload}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a disk-full or interrupted write leaves nothing behind
        raise
    _fsync_dir(path.parent)
    if keep is not None:
        for _, old in list_checkpoints(path.parent)[:-keep]:
            if old != path:
                old.unlink(missing_ok=True)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: Path) -> dict:
    """Read a checkpoint, refusing anything but tensors and plain values; TrainError on any damage."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"no checkpoint at {path}", _earlier_hint(path))
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:
            raise TrainError(f"{path} holds a Python object ({found.group(1)}), not only tensors and plain "
                             "values; refusing to unpickle it",
                             "nslang checkpoints never do: this file was not written by `nslang train`") from None
        reason = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        reason = reason.group(1).strip() if reason else (text.strip().splitlines() or [type(err).__name__])[0]
        raise TrainError(f"checkpoint {path} is truncated or corrupt ({reason[:160]})", _earlier_hint(path)) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, IndexError, KeyError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrainError(f"checkpoint {path} is truncated or corrupt ({reason[:160]})",
                         _earlier_hint(path)) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise TrainError(f"{path} is not an nslang checkpoint", "give a step_N.pt file from a run's checkpoints/")
    if payload.get("version") != VERSION:
        raise TrainError(f"{path} has checkpoint version {payload.get('version')}; this nslang reads {VERSION}")
    for key in ("step", "spec", "model", "optimizer", "data"):
        if key not in payload:
            raise TrainError(f"checkpoint {path} is incomplete (no {key!r})", _earlier_hint(path))
    return payload


def _earlier_hint(path: Path) -> str:
    others = [p for _, p in list_checkpoints(path.parent) if p != path]
    if others:
        return f"resume from an earlier one: --resume {others[-1]}"
    return "start the run again without --resume (with another --out to keep this directory as it is)"


def check_spec(payload: dict, spec_hash: str, path: Path) -> None:
    """Refuse a checkpoint written for another spec."""
    saved = payload["spec"]
    if saved.get("hash") != spec_hash:
        files = ", ".join(list(saved.get("files", {}))[:3]) or "unknown files"
        raise TrainError(
            f"checkpoint {path} belongs to model `{saved.get('model')}` with spec hash {saved.get('hash')} "
            f"({files}), but this run compiles spec hash {spec_hash}",
            "resume with the spec the run was started with (its text is in the checkpoint's `spec` entry), "
            "or start a new run with another --out")


# -- random generators ----------------------------------------------------------------------------

def rng_state() -> dict:
    """Every generator state, as tensors and plain values."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": _plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"][:torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)


def _plain(x):
    return [_plain(v) for v in x] if isinstance(x, (tuple, list)) else x


def _tuple(x):
    return tuple(_tuple(v) for v in x) if isinstance(x, list) else x
