"""Metrics: a JSONL file, an optional TensorBoard writer, a progress bar, and the loss plot.

`metrics.jsonl` holds one JSON object per line:
    {"kind": "train", "step", "tokens", "loss", "lr", "grad_norm", "tokens_per_s", "time"}
        (+ "peak_memory_gib" on CUDA)
    {"kind": "val", "step", "tokens", "val_loss", "val_bits_per_token"}
    {"kind": "event", "step", "event": "start" | "resume" | "end" | "nonfinite" | "time_limit" | ..., ...}
        ("time_limit" carries "max_minutes", "elapsed_s", "tokens"; the "end" event of such a run
        carries "reason": "time_limit")

Lines are appended and flushed one by one, so a killed run keeps every record it wrote. A resumed
run appends after the old records; when a step appears twice (the steps between the last
checkpoint and the kill are run again), readers keep the later record.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

from .errors import TrainError

METRICS, PLOT = "metrics.jsonl", "loss.png"


class MetricsLog:
    def __init__(self, folder: Path, enabled: bool = True, tensorboard: bool = False):
        self.enabled = enabled
        self.path = folder / METRICS
        self._fh = None
        self._tb = None
        if not enabled:
            return
        folder.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise TrainError("TensorBoard output needs the `tensorboard` package, which is not installed",
                                 "pip install tensorboard, or train without --tensorboard") from None
            self._tb = SummaryWriter(str(folder / "tensorboard"))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self._fh.write(json.dumps(record, allow_nan=True) + "\n")
        self._fh.flush()
        if self._tb is not None and record.get("kind") in ("train", "val"):
            for key, value in record.items():
                if key not in ("kind", "step", "time") and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"{record['kind']}/{key}", value, record["step"])

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read(path: Path) -> list[dict]:
    """Every record of a metrics file (a torn last line, from a kill mid-write, is skipped)."""
    out = []
    if not Path(path).is_file():
        return out
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def series(records: list[dict], kind: str, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric, one value per step (the last record of a step wins)."""
    by_step = {}
    for r in records:
        if r.get("kind") == kind and key in r:
            by_step[r["step"]] = r[key]
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def plot(metrics_path: Path, out: Path, title: str = "") -> Path | None:
    """Training and validation loss, and throughput, against the step: a two-panel PNG."""
    records = read(metrics_path)
    steps, loss = series(records, "train", "loss")
    if not steps:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_tp) = plt.subplots(2, 1, figsize=(7, 6), sharex=True,
                                         gridspec_kw={"height_ratios": [2, 1]})
    ax_loss.plot(steps, loss, label="train", color="tab:blue", linewidth=1.2)
    vsteps, vloss = series(records, "val", "val_loss")
    if vsteps:
        ax_loss.plot(vsteps, vloss, "o-", label="validation", color="tab:orange", markersize=4)
    for r in records:
        if r.get("kind") == "event" and r.get("event") == "resume":
            ax_loss.axvline(r["step"], color="gray", linestyle=":", linewidth=1)
    ax_loss.set_ylabel("loss (nats / token)")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_loss.set_title(title)
    tsteps, tput = series(records, "train", "tokens_per_s")
    ax_tp.plot(tsteps, tput, color="tab:green", linewidth=1.2)
    ax_tp.set_ylabel("tokens / s")
    ax_tp.set_xlabel("step")
    ax_tp.grid(alpha=0.3)
    fig.tight_layout()
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)
    return out


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, a line per update otherwise)."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True, stream=None, every: int = 10):
        self.total, self.enabled, self.every = total, enabled, every
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start_step, self.t0 = start, time.monotonic()
        self._last_draw = 0.0

    def update(self, step: int, loss: float, tokens_per_s: float, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and step < self.total and (
                (self.tty and now - self._last_draw < 0.2) or (not self.tty and step % self.every)):
            return
        self._last_draw = now
        done = step - self.start_step
        eta = (now - self.t0) / done * (self.total - step) if done > 0 else float("nan")
        width = 24
        filled = int(width * step / max(1, self.total))
        bar = "#" * filled + "-" * (width - filled)
        line = (f"step {step}/{self.total} [{bar}] loss {loss:.4f} | {_si(tokens_per_s)} tok/s"
                f" | eta {_duration(eta)}")
        if self.tty:
            self.stream.write("\r" + line + "\033[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line that does not disturb the bar."""
        if self.tty and self.enabled:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _si(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.1f}{unit}"
    return f"{x:.0f}"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
