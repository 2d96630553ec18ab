"""Tables and plots of evaluation results, and the comparison of runs (`nslang eval`, `nslang report`).

An evaluation file (`nslang eval`, `<run>/eval.json` by default):

    {"format": "nslang-eval", "run", "checkpoint", "step", "model", "tokenizer", "n", "seed", "time",
     "tasks": {name: {"kind": "task", "n", "acc", "acc_norm", "chance", "gen_acc", "ll", "ppl",
                      "bins": {key: {value: {...}}}, "mode", "params", "seconds"}
               name: {"kind": "continual", "names", "matrix", "final_accuracy", "forgetting", "bwt",
                      "average_accuracies", "metric", "params", "seconds"}}}

Plots: accuracy against context length, from the bins that are a length (NIAH and bAbI `length`,
MQAR `seq_len`), one line per task (or per run), log-likelihood accuracy solid and generation
dashed; the continual accuracy matrix as a heatmap (row i: after training on task i; column j:
tested on task j), one panel per stream (or per run).

A run's summary for `nslang report` comes from its own files: `run.json`, `metrics.jsonl` (final
train and validation loss, median tokens/s), the newest checkpoint (parameter count),
`eval.json` when `nslang eval` wrote one, and `variant.json` when `nslang sweep` trained it.
"""
from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path
from typing import Sequence

EVAL_FILE = "eval.json"
VARIANT_FILE = "variant.json"
CONTEXT_KEYS = ("length", "seq_len")


# -- numbers -------------------------------------------------------------------------------------

def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.{digits}g}"
        return f"{value:.{digits}f}"
    return str(value)


def text_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    def cell(c) -> str:
        return (c if isinstance(c, str) else fmt(c)).replace("|", "\\|")
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


TASK_COLUMNS = ("n", "acc", "acc_norm", "gen_acc", "chance", "ppl")
CONTINUAL_COLUMNS = ("final_accuracy", "forgetting", "bwt")


def eval_tables(tasks: dict) -> str:
    """The printed tables of an evaluation: one for tasks, one for continual streams."""
    parts = []
    plain = [(name, r) for name, r in tasks.items() if r.get("kind", "task") == "task"]
    if plain:
        rows = [[name] + [r.get(c) for c in TASK_COLUMNS] + [r.get("mode", "")] for name, r in plain]
        parts.append(text_table(["task", *TASK_COLUMNS, "mode"], rows))
    streams = [(name, r) for name, r in tasks.items() if r.get("kind") == "continual"]
    if streams:
        rows = [[name, len(r.get("names", []))] + [r.get(c) for c in CONTINUAL_COLUMNS] for name, r in streams]
        parts.append(text_table(["stream", "tasks", *CONTINUAL_COLUMNS], rows))
        for name, r in streams:
            names = r.get("names", [])
            mrows = [[f"after {names[i]}"] + list(row) for i, row in enumerate(r.get("matrix", []))]
            parts.append(f"{name}: accuracy on each task (columns) after training on each task (rows)\n"
                         + text_table(["", *names], mrows))
    return "\n\n".join(parts)


def main_metric(result: dict) -> tuple[str, float | None]:
    """The number a comparison table shows for one task's result."""
    if result.get("kind") == "continual":
        return "final_accuracy", result.get("final_accuracy")
    for key in (result.get("paper_metric"), "acc", "gen_acc", "ppl"):
        if key and result.get(key) is not None:
            return key, result[key]
    return "", None


# -- plots ---------------------------------------------------------------------------------------

def context_series(result: dict) -> dict[str, tuple[list[float], list[float]]]:
    """{metric: (lengths, values)} of a task's length bins; {} when it has none."""
    bins = result.get("bins") or {}
    for key in CONTEXT_KEYS:
        groups = bins.get(key)
        if not groups or len(groups) < 1:
            continue
        out = {}
        try:
            items = sorted(((float(label), m) for label, m in groups.items()), key=lambda t: t[0])
        except ValueError:
            continue
        for metric in ("acc", "gen_acc"):
            pts = [(x, m[metric]) for x, m in items if m.get(metric) is not None]
            if pts:
                out[metric] = ([p[0] for p in pts], [p[1] for p in pts])
        return out
    return {}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, out)
    return out


def _finish(fig, out: Path) -> Path:
    """Save the figure (`_save`) and close it; returns the path, for the plot functions to return."""
    import matplotlib.pyplot as plt  # imported already: the figure was made with it

    path = _save(fig, out)
    plt.close(fig)
    return path


def heatmap(ax, m):
    """Draw the matrix `m` (values 0-1, NaN where unknown) on `ax` as a viridis image with each known
    cell's value written in it (white on dark cells); returns the image, for a colorbar."""
    import numpy as np

    image = ax.imshow(np.ma.masked_invalid(m), vmin=0.0, vmax=1.0, cmap="viridis")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if not np.isnan(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if m[i, j] < 0.6 else "black")
    return image


def plot_context(panels: dict[str, dict[str, dict]], out: Path, title: str = "") -> Path | None:
    """Accuracy against context length. panels: {panel title: {line label: task result}}; a panel
    per task (several runs as lines) or one panel (several tasks as lines). None when no result
    has length bins."""
    series = {p: {label: s for label, r in lines.items() if (s := context_series(r))}
              for p, lines in panels.items()}
    series = {p: lines for p, lines in series.items() if lines}
    if not series:
        return None
    plt = _pyplot()
    n = len(series)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows + 0.4), squeeze=False,
                             layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (panel, lines) in zip(axes.flat, series.items()):
        xs_all = sorted({x for s in lines.values() for xs, _ in s.values() for x in xs})
        # lengths are spread on a log scale; a length of 0 (plain bAbI) gets the first slot
        pos = {x: i for i, x in enumerate(xs_all)}
        for k, (label, s) in enumerate(lines.items()):
            color = colors[k % len(colors)]
            for metric, style, suffix in (("acc", "o-", ""), ("gen_acc", "s--", " (generation)")):
                if metric in s:
                    xs, ys = s[metric]
                    ax.plot([pos[x] for x in xs], ys, style, color=color, markersize=4, label=label + suffix)
        # the guessing level, where every line of the panel has the same one (one task)
        chances = {r.get("chance") for r in panels[panel].values() if isinstance(r, dict)}
        if len(chances) == 1 and None not in chances:
            ax.axhline(chances.pop(), color="0.5", linestyle=":", linewidth=1, label="chance")
        ax.set_xticks(range(len(xs_all)))
        ax.set_xticklabels([_length_label(x) for x in xs_all])
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("context length")
        ax.set_ylabel("accuracy")
        ax.set_title(panel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(series):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return _finish(fig, out)


def _length_label(x: float) -> str:
    x = int(x) if float(x).is_integer() else x
    if isinstance(x, int) and x >= 1024 and x % 1024 == 0:
        return f"{x // 1024}K"
    return str(x)


def plot_forgetting(panels: dict[str, dict], out: Path, title: str = "") -> Path | None:
    """Heatmaps of continual accuracy matrices. panels: {title: continual result}."""
    panels = {k: v for k, v in panels.items() if v.get("matrix")}
    if not panels:
        return None
    plt = _pyplot()
    import numpy as np

    n = len(panels)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    size = max(len(r["names"]) for r in panels.values())
    side = 1.2 + 0.9 * size
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols + 1.6, side * rows + 0.8), squeeze=False,
                             layout="constrained")
    image = None
    for ax, (panel, r) in zip(axes.flat, panels.items()):
        names = r["names"]
        m = np.array([[np.nan if v is None else v for v in row] for row in r["matrix"]], dtype=float)
        image = heatmap(ax, m)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(m.shape[0]))
        ax.set_yticklabels([f"after {n_}" for n_ in names[:m.shape[0]]], fontsize=8)
        ax.set_xlabel("tested on")
        ax.set_title(f"{panel}\nforgetting {fmt(r.get('forgetting'))}, final {fmt(r.get('final_accuracy'))}",
                     fontsize=9)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=list(axes.flat), shrink=0.8, label=r.get("metric", "acc"))
    if title:
        fig.suptitle(title)
    return _finish(fig, out)


def plot_eval(tasks: dict, stem: Path, title: str = "") -> list[Path]:
    """The plots of one evaluation: `<stem>_context.png` and `<stem>_forgetting.png`, where they apply."""
    stem = Path(stem)
    written = []
    plain = {name: r for name, r in tasks.items() if r.get("kind", "task") == "task"}
    path = plot_context({"accuracy by context length": plain}, stem.with_name(stem.name + "_context.png"), title)
    if path:
        written.append(path)
    streams = {name: r for name, r in tasks.items() if r.get("kind") == "continual"}
    path = plot_forgetting(streams, stem.with_name(stem.name + "_forgetting.png"), title)
    if path:
        written.append(path)
    return written


# -- runs ----------------------------------------------------------------------------------------

def summarize_run(run: str | Path, count_params: bool = True) -> dict:
    """What `nslang report` shows of one run directory (see the module docstring)."""
    from runtime.train import metrics as M

    run = Path(run)
    info = _read_json(run / "run.json") or {}
    records = M.read(run / M.METRICS)
    steps, loss = M.series(records, "train", "loss")
    vsteps, vloss = M.series(records, "val", "val_loss")
    _, tput = M.series(records, "train", "tokens_per_s")
    tput = [t for t in tput if isinstance(t, (int, float)) and math.isfinite(t)]
    out = {"run": str(run), "name": run.name, "model": info.get("model"),
           "step": steps[-1] if steps else None, "train_loss": loss[-1] if loss else None,
           "val_loss": vloss[-1] if vloss else None,
           "tokens_per_s": statistics.median(tput) if tput else None,
           "params": None, "curve": (steps, loss), "val_curve": (vsteps, vloss),
           "eval": (_read_json(run / EVAL_FILE) or {}).get("tasks", {}),
           "variant": _read_json(run / VARIANT_FILE) or {}}
    if count_params:
        out["params"] = _count_params(run)
    return out


def _count_params(run: Path) -> int | None:
    from runtime.train import checkpoint

    path = checkpoint.latest(run / "checkpoints")
    if path is None:
        return None
    try:
        payload = checkpoint.load(path)
    except Exception:
        return None
    seen, total = set(), 0
    for name, t in payload["model"].items():
        if not hasattr(t, "numel"):
            continue
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if key in seen:  # tied weights (embedding and head) count once
            continue
        seen.add(key)
        total += t.numel()
    return total


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def expand_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories from the arguments: a run, or a sweep folder (its `runs/*`)."""
    out = []
    for p in map(Path, paths):
        if (p / "run.json").is_file() or (p / "checkpoints").is_dir():
            out.append(p)
        elif (p / "runs").is_dir():
            out += sorted(q for q in (p / "runs").iterdir() if (q / "run.json").is_file())
        elif p.is_dir():
            found = sorted(q for q in p.iterdir() if (q / "run.json").is_file())
            if not found:
                raise FileNotFoundError(f"{p} is not a run directory (no run.json) and holds no runs")
            out += found
        else:
            raise FileNotFoundError(f"no run at {p}")
    return out


def write_report(runs: Sequence[str | Path], out: str | Path, count_params: bool = True) -> dict:
    """Compare runs: a markdown file with a table and the plots beside it. Returns
    {"markdown": path, "plots": [paths], "rows": [...]}."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summaries = [summarize_run(r, count_params) for r in runs]
    names = _unique([s["name"] for s in summaries])
    override_keys = list(dict.fromkeys(k for s in summaries for k in s["variant"].get("overrides", {})))
    task_keys = list(dict.fromkeys(t for s in summaries for t in s["eval"]))
    headers = ["run", "model", *override_keys, "step", "params", "train loss", "val loss", "tokens/s"]
    metric_names = {}
    for t in task_keys:
        metric = next((main_metric(s["eval"][t])[0] for s in summaries if t in s["eval"]), "")
        metric_names[t] = metric
        headers.append(f"{t} ({metric})" if metric else t)
    rows = []
    for name, s in zip(names, summaries):
        row = [name, s["model"] or "-"]
        row += [s["variant"].get("overrides", {}).get(k, "-") for k in override_keys]
        row += [s["step"], s["params"], s["train_loss"], s["val_loss"],
                None if s["tokens_per_s"] is None else round(s["tokens_per_s"])]
        row += [main_metric(s["eval"][t])[1] if t in s["eval"] else None for t in task_keys]
        rows.append(row)
    stem = out.with_suffix("")
    plots: list[Path] = []
    loss_png = _plot_losses(names, summaries, stem.with_name(stem.name + "_loss.png"))
    if loss_png:
        plots.append(loss_png)
    panels: dict[str, dict] = {}
    for t in task_keys:
        panels[t] = {name: s["eval"][t] for name, s in zip(names, summaries)
                     if t in s["eval"] and s["eval"][t].get("kind", "task") == "task"}
    ctx_png = plot_context(panels, stem.with_name(stem.name + "_context.png"))
    if ctx_png:
        plots.append(ctx_png)
    streams = {f"{name}: {t}": s["eval"][t] for name, s in zip(names, summaries) for t in task_keys
               if t in s["eval"] and s["eval"][t].get("kind") == "continual"}
    forget_png = plot_forgetting(streams, stem.with_name(stem.name + "_forgetting.png"))
    if forget_png:
        plots.append(forget_png)
    lines = [f"# Runs compared ({len(summaries)})", "", markdown_table(headers, rows), ""]
    lines += [f"- `{name}`: {s['run']}" for name, s in zip(names, summaries)]
    lines.append("")
    captions = {"_loss": "Loss curves (train solid, validation dashed)",
                "_context": "Accuracy against context length", "_forgetting": "Continual accuracy matrices"}
    for p in plots:
        caption = next((c for k, c in captions.items() if p.stem.endswith(k)), p.stem)
        rel = os.path.relpath(p, out.parent).replace(os.sep, "/")
        lines += [f"## {caption}", "", f"![{caption}]({rel})", ""]
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, out)
    return {"markdown": out, "plots": plots, "headers": headers, "rows": rows}


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def _plot_losses(names: list[str], summaries: list[dict], out: Path) -> Path | None:
    if not any(s["curve"][0] for s in summaries):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, s) in enumerate(zip(names, summaries)):
        color = colors[k % len(colors)]
        steps, loss = s["curve"]
        if steps:
            ax.plot(steps, loss, color=color, linewidth=1.2, label=name)
        vsteps, vloss = s["val_curve"]
        if vsteps:
            ax.plot(vsteps, vloss, "o--", color=color, markersize=3, linewidth=1.0)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats / token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _finish(fig, out)
