"""The `nslang` command line: each command parses its arguments and calls one library function.

Heavy imports (torch, matplotlib) happen inside the commands that need them, so `nslang check`
stays fast.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .frontend import Result, check_file


def _report(result: Result) -> int:
    """Print diagnostics to stderr; the exit status says whether there were errors."""
    if result.diagnostics.items:
        print(result.diagnostics.render(), file=sys.stderr)
    return 1 if result.diagnostics.errors or result.spec is None else 0


def cmd_check(args) -> int:
    status = 0
    for path in args.specs:
        result = check_file(path)
        status = max(status, _report(result))
        if status or result.spec is None:
            continue
        if args.dump == "ir":
            print(result.spec.model_dump_json(indent=2))
        elif args.dump == "graph":
            print(json.dumps([_graph_dump(c) for c in result.checked], indent=2))
        elif len(args.specs) > 1 or not args.quiet:
            names = ", ".join(m.name for m in result.spec.models) or \
                ", ".join(o.name for o in result.spec.optimizers)
            print(f"{path}: ok ({names})")
    return status


def _graph_dump(checked) -> dict:
    import networkx as nx

    data = nx.node_link_data(checked.graph, edges="edges")
    return {"model": checked.model.name,
            "levels_slowest_first": [lv.name for lv in checked.level_order()],
            "chunks": checked.chunks, "graph": data}


def cmd_viz(args) -> int:
    result = check_file(args.spec)
    status = _report(result)
    if status:
        return status
    if not result.checked:
        print(f"error: {args.spec} declares no model to draw", file=sys.stderr)
        return 1
    from .viz import draw

    checked = _pick_model(result, args.model)
    if checked is None:
        return 1
    try:
        notes = draw(checked, Path(args.output))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for note in notes:
        print(note, file=sys.stderr)
    print(f"wrote {args.output}")
    return 0


def _pick_model(result: Result, name: str | None):
    if name is None:
        return result.checked[0]
    for c in result.checked:
        if c.model.name == name:
            return c
    print(f"error: no model `{name}`; the file has: "
          f"{', '.join(c.model.name for c in result.checked)}", file=sys.stderr)
    return None


def cmd_compile(args) -> int:
    from .compile import compile_spec

    compiled = compile_spec(args.spec, args.output, args.model)
    status = _report(compiled.result)
    if compiled.plan is None:
        return status or 1
    if args.dump == "plan":
        print(json.dumps(compiled.plan.to_dict(), indent=2))
        return 0
    from codegen.emit import write_package

    write_package(compiled.files, Path(args.output))
    print(f"wrote {args.output}/ ({', '.join(sorted(compiled.files))})")
    return _check_compiled(compiled.plan, Path(args.output)) if args.check else 0


def _check_compiled(plan, out: Path) -> int:
    """Compare every sublayer's fast path with its token-by-token reference (float64)."""
    from runtime.check import check_model
    from runtime.package import import_package

    pkg = import_package(out)
    cfg = pkg.Config()
    model = pkg.Model(cfg)
    tokens = 2 * max([plan.segment] + [s.args.get("chunk") or 1 for s in plan.sublayers]) + 3
    rows = check_model(model, tokens)
    print(f"\n{'sublayer':<16} {'layer':<14} {'tokens':>6}  max relative error (fast vs reference)")
    worst = 0.0
    for r in rows:
        err = "-" if r["rel_error"] is None else f"{r['rel_error']:.2e}"
        print(f"{r['name']:<16} {r['layer']:<14} {r['tokens']:>6}  {err}  {r['note']}")
        worst = max(worst, r["rel_error"] or 0.0)
    # float64 chunk forms agree with their definitions to ~1e-12; anything near 1e-6 is a bug
    return 0 if worst < 1e-8 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nslang", description="A compiler for nested systems "
                                     "of associative memories (Nested Learning).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="check .nsam specs and report every error")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.add_argument("--dump", choices=["ir", "graph"], help="print the IR or the level graph")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when all is well")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("viz", help="draw a model's level graph (.svg, .png or .dot)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--model", help="which model of the file (default: the first)")
    p.set_defaults(func=cmd_viz)

    p = sub.add_parser("compile", help="compile a spec into a Python package (config, model)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-o", "--output", default=None, metavar="DIR",
                   help="package directory (default: build/<spec name>)")
    p.add_argument("--model", help="which model of the file (default: the first)")
    p.add_argument("--dump", choices=["plan"], help="print the plan instead of writing files")
    p.add_argument("--check", action="store_true", help="run each sublayer against its "
                   "token-by-token reference on a random input and print the largest error")
    p.set_defaults(func=cmd_compile)
    from .cli_train import register; register(sub)
    from .cli_eval import register as register_eval; register_eval(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "command", None) == "compile" and args.output is None:
        args.output = str(Path("build") / Path(args.spec).stem)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
