"""`nslang eval`, `nslang variants`, `nslang sweep` and `nslang report`: parse, call the library.

    nslang eval RUN --task mqar,niah_single_1 [--n N] [--seed S] [--param key=value ...] [--out FILE]
    nslang variants SPEC --set dim=128,256 [--set member.option=a,b ...] [--sweep NAME] [-o DIR]
    nslang sweep DIR [--steps N ...]           train every variant of DIR/index.json into DIR/runs/
    nslang report RUN [RUN ...] [-o report.md] a table of the runs and their plots

Exit status: 0 on success; 1 for bad input (a run, task, parameter, spec, index) or when a
variant does not compile or a sweep's run fails; 2 for a bad command line (argparse).
"""
from __future__ import annotations

import inspect
import json
import os
import sys
import time
from pathlib import Path

from .cli_train import _field_args, _guarded

# Names that stand for several tasks.
FAMILIES = {
    "niah": "niah_", "babi": "babi_qa", "formal": "formal_",
}
CONTINUAL = ("class_incremental", "new_language")
MODES = ("auto", "ll", "gen", "both")  # runtime.eval.run_model.MODES (not imported here: no torch at startup)
# Parameters of a continual stream's training between tasks (the rest go to the stream's builder).
CONTINUAL_TRAIN = {"train_steps": 20, "train_lr": None, "train_batch": 4, "train_seq_len": None}


def _error(message: str, hint: str = ""):
    from runtime.train.errors import TrainError

    return TrainError(message, hint)


# -- eval ----------------------------------------------------------------------------------------

def task_list(text: str) -> list[str]:
    """`mqar,niah` -> task names (a family name stands for all its tasks; `zero_shot` for Table 2's)."""
    import difflib

    from runtime.eval import task_names
    from runtime.eval.zero_shot import TASKS

    known = task_names()
    out: list[str] = []
    for name in (n.strip() for n in text.split(",")):
        if not name:
            continue
        if name in known or name in CONTINUAL:
            found = [name]
        elif name in FAMILIES:
            found = [k for k in known if k.startswith(FAMILIES[name])]
        elif name == "zero_shot":
            found = list(TASKS)
        else:
            close = difflib.get_close_matches(name, known + list(CONTINUAL) + list(FAMILIES), n=1)
            raise _error(f"unknown evaluation task {name!r}",
                         f"did you mean {close[0]!r}?" if close else
                         f"known: {', '.join(known + list(CONTINUAL))} (families: {', '.join(FAMILIES)}, zero_shot)")
        out += [f for f in found if f not in out]
    if not out:
        raise _error("no task given", "for example --task mqar,niah_single_1")
    return out


def parse_value(text: str):
    """A --param value: true/false, none, an int, a float, a comma list of those, `@FILE`
    (a .jsonl file's records, or a text file's text as one document), or the text itself."""
    text = text.strip()
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise _error(f"--param: no file {path}")
        if path.suffix == ".jsonl":
            try:
                return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            except json.JSONDecodeError as err:
                raise _error(f"--param: {path} is not JSON lines ({err.msg})") from None
        return [path.read_text()]
    if "," in text:
        return tuple(parse_value(p) for p in text.split(",") if p.strip())
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_params(items: list[str] | None) -> list[tuple[str | None, str, object]]:
    """`key=value` or `task.key=value` -> [(task or None, key, value)]."""
    out = []
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise _error(f"--param {item!r} is not KEY=VALUE", "for example --param lengths=1024,4096")
        scope, _, name = key.rpartition(".")
        out.append((scope or None, name, parse_value(value)))
    return out


def _accepts(name: str) -> set[str]:
    """The parameters a task (or stream) takes from --param."""
    from runtime.eval import babi, formal, mqar, niah
    from runtime.eval import continual as C

    if name == "mqar":
        fn, skip = mqar.MQAR.__init__, {"self"}
    elif name.startswith("niah_"):
        fn, skip = niah.NIAH.__init__, {"self", "variant"}
    elif name.startswith("babi_qa"):
        fn, skip = babi.BAbI.__init__, {"self", "task"}
    elif name.startswith("formal_"):
        fn, skip = formal.FormalLanguage.__init__, {"self", "language"}
    elif name in CONTINUAL:
        fn, skip = getattr(C, name), set()
        return {p for p in inspect.signature(fn).parameters if p not in skip} | set(CONTINUAL_TRAIN)
    else:  # zero-shot sets take nothing from the command line
        return set()
    return {p for p in inspect.signature(fn).parameters if p not in skip}


def route_params(tasks: list[str], params) -> dict[str, dict]:
    """{task: {key: value}}; a parameter no named task takes is an error."""
    routed: dict[str, dict] = {t: {} for t in tasks}
    for scope, key, value in params:
        targets = [t for t in tasks if scope in (None, t)]
        if scope is not None and not targets:
            raise _error(f"--param {scope}.{key}: {scope} is not one of the tasks ({', '.join(tasks)})")
        taking = [t for t in targets if key in _accepts(t)]
        if not taking:
            names = sorted(set().union(*(_accepts(t) for t in targets)))
            raise _error(f"--param {key}: no task of {', '.join(targets)} takes it",
                         f"they take: {', '.join(names)}" if names else "these tasks take no parameters")
        for t in taking:
            routed[t][key] = value
    return routed


def _plain(value):
    """A parameter as JSON (files given with @ are recorded by size)."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return f"<{len(value)} records>"
    return value


def build_task(name: str, params: dict, tokenizer):
    """The task with its parameters; `tokenizer()` gives the run's tokenizer (for count=tokens)."""
    from runtime.eval import make

    params = dict(params)
    if params.get("count") is not None:
        count = params["count"]
        if count in ("tokens", "token"):
            params["count"] = lambda s: len(tokenizer().encode(s))
        elif count in ("chars", "characters"):
            params["count"] = len
        else:
            raise _error(f"--param count={count}: use count=tokens or count=chars")
    if isinstance(params.get("haystack"), list):  # @file: documents, or records with "text"
        params["haystack"] = [d["text"] if isinstance(d, dict) else str(d) for d in params["haystack"]]
    for key in ("lengths", "depths"):
        if isinstance(params.get(key), (int, float)):
            params[key] = (params[key],)
    try:
        return make(name, **params)
    except (ValueError, TypeError) as err:
        raise _error(f"task {name}: {err}") from None


def build_stream(name: str, params: dict):
    from runtime.eval import continual as C

    params = {k: v for k, v in params.items() if k not in CONTINUAL_TRAIN}
    if name == "new_language" and isinstance(params.get("tasks"), str):
        params["tasks"] = (params["tasks"],)
    try:
        return getattr(C, name)(**params)
    except (ValueError, TypeError, KeyError) as err:
        raise _error(f"stream {name}: {err}") from None


def cmd_eval(args) -> int:
    from runtime.eval.report import EVAL_FILE, eval_tables, plot_eval
    from runtime.eval.run_model import RunModel

    names = task_list(args.task)
    routed = route_params(names, parse_params(args.param))
    if args.n < 1:
        raise _error(f"--n must be at least 1, got {args.n}")
    # Tasks first (a bad parameter fails before the model loads); count=tokens reads the tokenizer late.
    loaded: dict = {}
    tasks = {name: build_stream(name, routed[name]) if name in CONTINUAL else
             build_task(name, routed[name], lambda: loaded["model"].tokenizer) for name in names}
    model = loaded["model"] = RunModel.load(args.run, args.checkpoint, args.device, batch_size=args.batch_size,
                                            chunk=args.chunk)
    run_dir = Path(model.info["run"])
    say = (lambda text: print(text, file=sys.stderr)) if not args.quiet else (lambda text: None)
    progress = None if args.quiet else _Progress()
    model.on_progress = progress
    say(f"{model.info.get('model')}: {model.info['checkpoint']} (step {model.info.get('step')}), "
        f"{model.info.get('tokenizer')} tokens, chunk {model.chunk}, batch {model.batch_size}")
    results: dict[str, dict] = {}
    for name, task in tasks.items():
        params = routed[name]
        t0 = time.perf_counter()
        if progress:
            progress.start(name)
        record, model = _evaluate_fitting(name, task, params, model, args, say)
        loaded["model"] = model
        record["params"] = {k: _plain(v) for k, v in params.items()}
        record["seconds"] = round(time.perf_counter() - t0, 3)
        results[name] = record
        say(f"{name}: done in {record['seconds']:.1f}s")

    out = Path(args.out) if args.out else run_dir / EVAL_FILE
    doc = {"format": "nslang-eval", "run": str(run_dir), "checkpoint": model.info["checkpoint"],
           "step": model.info.get("step"), "model": model.info.get("model"),
           "tokenizer": model.info.get("tokenizer"), "n": args.n, "seed": args.seed, "mode": args.mode,
           "time": time.time(), "tasks": {}}
    if args.out is None and out.is_file():  # the run's own file: add to what earlier evals found
        try:
            old = json.loads(out.read_text())
            if old.get("checkpoint") == doc["checkpoint"]:
                doc["tasks"].update(old.get("tasks", {}))
        except (OSError, json.JSONDecodeError, AttributeError):
            pass
    doc["tasks"].update(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    os.replace(tmp, out)
    print(eval_tables(results))
    plots = [] if args.no_plot else plot_eval(results, out.with_suffix(""),
                                               title=f"{doc['model']} step {doc['step']}")
    print(f"wrote {out}" + "".join(f", {p}" for p in plots))
    return 0


# -- variants, sweep -----------------------------------------------------------------------------

def cmd_variants(args) -> int:
    from .variants import expand, parse_sets, write

    sets = parse_sets(args.set or [])
    model, points = expand(args.spec, sets, args.sweep, args.model)
    out = Path(args.output) if args.output else Path("variants") / Path(args.spec).stem
    index = write(args.spec, points, out, model)
    bad = 0
    for v in index["variants"]:
        mark = "ok" if v["ok"] else "FAILED"
        print(f"{v['name']}: {v['label']}  {mark}" + (f"  [{v['sweep']}]" if v["sweep"] else ""))
        if not v["ok"]:
            bad += 1
            print("  " + v["errors"].replace("\n", "\n  "), file=sys.stderr)
    print(f"wrote {len(points)} specs and {out / 'index.json'}"
          + (f"; {bad} do not compile" if bad else "") + f"; train them with `nslang sweep {out}`")
    return 1 if bad else 0


class _Progress:
    """`TASK: log-likelihood 48/96 (12 s)` on stderr, for evaluations that take minutes: at most
    every `every` seconds, and when a pass ends."""

    def __init__(self, every: float = 5.0):
        self.every, self.task, self.t0, self.last = every, "", time.monotonic(), time.monotonic()

    def start(self, task: str) -> None:
        self.task, self.t0 = task, time.monotonic()
        self.last = self.t0

    def __call__(self, what: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < self.every:
            return
        self.last = now
        print(f"{self.task}: {what} {done}/{total} ({now - self.t0:.0f} s)", file=sys.stderr, flush=True)


def _evaluate_fitting(name: str, task, params: dict, model, args, say):
    """(record, model) of one task. Out of memory halves the batch (evaluation rows, and the
    continual stream's fine-tuning batch) and runs the task again, down to 1; a continual stream
    restarts from the checkpoint, since its fine-tuning changed the weights."""
    import gc

    import torch

    from runtime.eval.run_model import RunModel, run_continual, run_task
    from runtime.train.errors import OutOfMemory, is_out_of_memory

    train = {k: params.get(k, d) for k, d in CONTINUAL_TRAIN.items()}
    while True:
        try:
            if name in CONTINUAL:
                res = run_continual(model, task, steps=int(train["train_steps"]), lr=train["train_lr"],
                                    batch_size=int(train["train_batch"]), seq_len=train["train_seq_len"],
                                    seed=args.seed)
                return {"kind": "continual", **res.to_dict()}, model
            try:
                return {"kind": "task", **run_task(model, task, args.n, args.seed, args.mode)}, model
            except ValueError as err:
                raise _error(f"task {name}: {err}") from None
        except FloatingPointError as err:
            raise _error(f"task {name}: {err}", "the stream fine-tunes with the spec's learning rate unless "
                         "told otherwise: try --param train_lr=1e-4 (or a smaller train_batch)") from None
        except Exception as err:  # noqa: BLE001 - only out-of-memory is handled; the rest re-raises
            if not is_out_of_memory(err):
                raise
            batch = model.batch_size
            if batch == 1 and (name not in CONTINUAL or int(train["train_batch"]) == 1):
                raise OutOfMemory(f"task {name}: out of {model.device.type.upper()} memory even at batch 1",
                                  "evaluate shorter inputs (--param lengths=...), read them in smaller "
                                  "pieces (--chunk), or use a device with more memory") from None
        # out of memory: free what the failed attempt held (outside the except block, which keeps
        # the exception and with it the attempt's tensors alive), then halve and retry
        gc.collect()
        if model.device.type == "cuda":
            torch.cuda.empty_cache()
        if name in CONTINUAL:
            train["train_batch"] = max(1, int(train["train_batch"]) // 2)
            model = RunModel.load(args.run, args.checkpoint, args.device, batch_size=max(1, batch // 2),
                                  chunk=args.chunk).with_progress(model.on_progress)
        else:
            model.batch_size = max(1, batch // 2)
        say(f"{name}: out of memory at batch {batch}; again at batch {model.batch_size}"
            + (f", fine-tuning batch {train['train_batch']}" if name in CONTINUAL else ""))


def cmd_sweep(args) -> int:
    from runtime.data._common import DataError
    from runtime.eval.report import text_table
    from runtime.train import load_run_config, train
    from runtime.train import checkpoint as ckpt
    from runtime.train.config import FIELDS
    from runtime.train.errors import TrainError

    from .variants import VARIANT_FILE, read_index

    folder, index = read_index(args.dir)
    variants = index["variants"]
    if args.only:
        names = {v["name"] for v in variants}
        missing = [n for n in args.only if n not in names]
        if missing:
            raise _error(f"--only: no variant {', '.join(missing)} in {folder}",
                         f"the variants: {', '.join(sorted(names))}")
        variants = [v for v in variants if v["name"] in args.only]
    own = {"spec", "set", "resume", "out", "model"}
    overrides = {k: v for k, v in vars(args).items() if k in FIELDS and k not in own and v is not None}
    runs_root = Path(args.out) if args.out else folder / "runs"
    rows, status = [], 0
    for i, v in enumerate(variants, 1):
        out = runs_root / v["name"]
        row = {"name": v["name"], "label": v.get("label", ""), "run": str(out), "status": "ok"}
        if not v.get("ok"):
            row["status"] = "does not compile"
            rows.append(row)
            status = 1
            print(f"[{i}/{len(variants)}] {v['name']}: skipped, it does not compile", file=sys.stderr)
            continue
        print(f"[{i}/{len(variants)}] {v['name']}: {v.get('label', '')}", file=sys.stderr)
        values = {**overrides, "spec": str(folder / v["spec"]), "out": str(out)}
        if ckpt.list_checkpoints(out / "checkpoints"):
            values["resume"] = "latest"
        try:
            cfg = load_run_config(args.config, values)
            out.mkdir(parents=True, exist_ok=True)
            (out / VARIANT_FILE).write_text(json.dumps({"index": str(folder / "index.json"), **v}, indent=1) + "\n")
            result = train(cfg)
            last = result.losses[max(result.losses)] if result.losses else None
            row.update(step=result.step, train_loss=last, val_loss=result.val_loss,
                       tokens_per_s=result.tokens_per_s)
        except (TrainError, DataError) as err:
            print(f"error: {v['name']}: {err}", file=sys.stderr)
            row.update(status="failed", error=str(err))
            status = max(status, getattr(err, "exit_code", 1))
        rows.append(row)
    summary = folder / "sweep.json"
    summary.write_text(json.dumps({"index": str(folder / "index.json"), "runs": rows}, indent=1, default=str) + "\n")
    print(text_table(["variant", "overrides", "step", "train loss", "val loss", "tokens/s", "status"],
                     [[r["name"], r["label"], r.get("step"), r.get("train_loss"), r.get("val_loss"),
                       r.get("tokens_per_s"), r["status"]] for r in rows]))
    print(f"wrote {summary}; compare the runs with `nslang report {runs_root}`")
    return status


def cmd_report(args) -> int:
    from runtime.eval.report import expand_runs, text_table, write_report

    try:
        runs = expand_runs(args.runs)
    except FileNotFoundError as err:
        raise _error(str(err), "give run directories (--out of `nslang train`) or a sweep folder") from None
    result = write_report(runs, args.output)
    print(text_table(result["headers"], result["rows"]))
    print(f"wrote {result['markdown']}" + "".join(f", {p}" for p in result["plots"]))
    return 0


def register(sub) -> None:
    """Add `eval`, `variants`, `sweep` and `report` to the `nslang` sub-command parsers."""
    p = sub.add_parser("eval", help="evaluate a trained run on tasks: a table, a JSON file, plots",
                       description="Evaluate a run's newest checkpoint on evaluation tasks (runtime/eval).")
    p.add_argument("run", metavar="RUN", help="a run directory (--out of `nslang train`) or a checkpoint file")
    p.add_argument("--task", required=True, metavar="NAME[,NAME]",
                   help="tasks: mqar, niah_single_1..3, niah_multikey_1..3, niah_multivalue, niah_multiquery, "
                   "babi_qa1..3, formal_<language>, the zero-shot sets (lambada, piqa, ...), class_incremental, "
                   "new_language; families: niah, babi, formal, zero_shot")
    p.add_argument("--n", type=int, default=100, help="examples per task (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the examples (default: 0)")
    p.add_argument("--param", action="append", metavar="[TASK.]KEY=VALUE",
                   help="a task parameter, repeatable: --param lengths=1024,4096 --param mqar.num_pairs=16; "
                   "count=tokens measures lengths in the run's tokens; @FILE reads a .jsonl or text file; "
                   "continual streams also take train_steps, train_lr, train_batch, train_seq_len")
    p.add_argument("--mode", default="auto", choices=MODES,
                   help="ll: rank choices by log-likelihood; gen: greedy generation; both; auto: both for "
                   "the generative families (mqar, niah, babi, formal, lambada), ll for the rest")
    p.add_argument("-o", "--out", default=None, metavar="FILE",
                   help="the JSON file (default: RUN/eval.json, which keeps the results of earlier tasks)")
    p.add_argument("--no-plot", action="store_true", help="write no plot")
    p.add_argument("--batch-size", type=int, default=8, help="requests per forward call (default: 8)")
    p.add_argument("--chunk", type=int, default=None,
                   help="tokens per forward call on long contexts, the state carried between (default: 1024, "
                   "or the model's context if longer)")
    p.add_argument("--device", default="auto")
    p.add_argument("--checkpoint", default=None, help="a checkpoint of the run other than the newest")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_guarded(cmd_eval))

    p = sub.add_parser("variants", help="one spec per point of a grid of overrides, checked and compiled",
                       description="Write a child spec per grid point (extends SPEC with the overrides), "
                       "check and compile each, and write DIR/index.json.")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--set", action="append", metavar="KEY=V1,V2",
                   help="an axis, repeatable: --set dim=128,256 --set continuum.lr=0.01,0.1 "
                   "(list values keep their brackets: --set continuum.levels=[cms1],[cms1,cms2])")
    p.add_argument("--sweep", action="append", metavar="NAME",
                   help="expand only this sweep block of the spec (repeatable; default: all of them)")
    p.add_argument("--model", help="which model of the file (default: the first)")
    p.add_argument("-o", "--output", default=None, metavar="DIR",
                   help="folder of the specs, packages and index (default: variants/<spec name>)")
    p.set_defaults(func=_guarded(cmd_variants))

    p = sub.add_parser("sweep", help="train every variant of a `nslang variants` folder",
                       description="Train the variants listed in DIR/index.json one after another into "
                       "DIR/runs/<variant> (--out: another folder for the runs); a run that has checkpoints "
                       "is resumed. The options are `nslang train`'s, applied to every run.")
    p.add_argument("dir", metavar="DIR", help="a folder written by `nslang variants` (or its index.json)")
    p.add_argument("-c", "--config", metavar="RUN_FILE", help="a run file (.toml or .json) for every run")
    p.add_argument("--only", action="append", metavar="NAME", help="train only these variants (repeatable)")
    _field_args(p)
    p.set_defaults(func=_guarded(cmd_sweep))

    p = sub.add_parser("report", help="compare runs: a markdown table, loss curves, eval plots",
                       description="Compare run directories (or sweep folders): final losses, tokens/s, "
                       "parameters and eval metrics in a markdown table, with plots beside it.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories, or a sweep folder (its runs/)")
    p.add_argument("-o", "--output", default="report.md", metavar="FILE", help="(default: report.md)")
    p.set_defaults(func=_guarded(cmd_report))
