"""The level graph and the checks that run on it.

`build_graph` turns a model's IR into a networkx DiGraph with three node kinds (level, memory,
cms) and typed edges (contains, flow, transfer). `check_model` runs every check, reporting all
errors at once; only a model that passes gets a `CheckedModel`, so holding one proves it did.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx

from . import ir
from .diagnostics import Diagnostics, did_you_mean
from .naming import GENERATED_CLASSES, class_name, norm_attribute
from .schema import DEEP, NONPARAMETRIC

# Rules whose chunk-parallel form is exact for any chunk (the chunk is only a speed knob).
EXACT_CHUNK_RULES = ("hebbian", "delta", "dgd", "omega", "none")
DEFAULT_LINEAR_CHUNK = 64
INPUT = "x"  # the block input in flows


@dataclass(frozen=True)
class CheckedModel:
    """A model that passed every check, with its graph and the chunk each memory runs at."""

    model: ir.Model
    graph: nx.DiGraph
    chunks: dict[str, int]   # memory name -> tokens per chunk-parallel update

    def level_order(self) -> list[ir.Level]:
        """Slowest first (the order levels are drawn and documented in)."""
        return sorted(self.model.levels, key=lambda lv: level_rank(lv, self.model.settings.context),
                      reverse=True)


def level_rank(level: ir.Level, context: int) -> tuple[int, float]:
    """A sortable speed: smaller is faster. Periods are tokens; `step` and `frozen` come last."""
    order = {"every": 0, "sequence": 1, "step": 2, "frozen": 3}
    period = {"every": level.period or 1, "sequence": context}.get(level.kind, math.inf)
    return (order[level.kind] if level.kind != "every" else 0, period)


def period_tokens(level: ir.Level, context: int) -> float:
    return {"every": level.period or 1, "sequence": context}.get(level.kind, math.inf)


def build_graph(model: ir.Model) -> nx.DiGraph:
    g = nx.DiGraph(name=model.name)
    ctx = model.settings.context
    for lv in model.levels:
        g.add_node(f"level:{lv.name}", kind="level", name=lv.name, freq=lv.kind, period=lv.period,
                   tokens=period_tokens(lv, ctx))
    for mem in model.memories:
        g.add_node(mem.name, kind="memory", level=mem.level, shape=mem.shape.kind, rule=mem.rule.kind)
        g.add_edge(f"level:{mem.level}", mem.name, kind="contains")
    for c in model.cms:
        g.add_node(c.name, kind="cms", levels=c.levels, variant=c.variant)
        for lv in c.levels:
            g.add_edge(f"level:{lv}", c.name, kind="contains")
    if model.optimizer is not None and model.optimizer.level:
        g.add_node(f"opt:{model.optimizer.name}", kind="optimizer", level=model.optimizer.level,
                   optimizer=model.optimizer.kind)
        g.add_edge(f"level:{model.optimizer.level}", f"opt:{model.optimizer.name}", kind="contains")
    for f in model.flows:
        for a, b in zip(f.path, f.path[1:]):
            g.add_edge(a, b, kind="flow")
    for t in model.transfers:
        src = t.source if t.source in g else f"level:{t.source}"
        dst = t.target if t.target in g else f"level:{t.target}"
        g.add_edge(src, dst, kind="transfer", transfer=t.kind, arg=t.arg)
    return g


def check_model(model: ir.Model, diags: Diagnostics,
                failed: set[str] = frozenset()) -> CheckedModel | None:
    """Run every check. `failed` names declarations that did not lower (already reported):
    references to them are not reported again."""
    n_before = len(diags.errors)
    levels = {lv.name: lv for lv in model.levels}
    members = {m.name: m for m in (*model.memories, *model.cms)}
    _check_levels(model, diags)
    _check_python_names(model, diags)
    chunks = _check_chunks(model, levels, diags)
    _check_shapes(model, diags)
    _check_flows(model, members, failed, diags)
    _check_transfers(model, levels, members, failed, diags)
    _check_generated(model, diags)
    _check_cms(model, levels, diags)
    if model.optimizer is not None and model.optimizer.level:
        lv = levels[model.optimizer.level]
        if lv.kind not in ("step", "frozen"):
            diags.error("NS203", f"the outer optimizer runs once per outer step, but level "
                        f"`{lv.name}` is `{_freq(lv)}`", span=model.optimizer.span,
                        hint="put it on a `step` or `frozen` level: `level outer frozen`")
    if len(diags.errors) > n_before:
        return None
    return CheckedModel(model, build_graph(model), chunks)


def _check_python_names(model: ir.Model, diags: Diagnostics) -> None:
    """Two members must not become the same generated class or Block attribute."""
    owners: dict[str, ir.Node] = {}
    members = (*model.memories, *model.cms)
    names = {m.name for m in members}
    for m in members:
        cls = class_name(m.name)
        if cls in GENERATED_CLASSES:
            diags.error("NS106", f"`{m.name}` would become class `{cls}`, which the generated "
                        "code defines itself", span=m.span, hint=f"rename it, e.g. `{m.name}_mem`")
        elif cls in owners:
            other = owners[cls]
            diags.error("NS102", f"`{m.name}` and `{other.name}` both become class `{cls}` in the "
                        "generated code", span=m.span, notes=[("the other", other.span)],
                        hint="rename one of them")
        owners.setdefault(cls, m)
        if norm_attribute(m.name) in names:
            diags.error("NS102", f"`{norm_attribute(m.name)}` names the pre-norm of `{m.name}` in "
                        "the generated code", span=model.member(norm_attribute(m.name)).span,
                        hint="rename it")


def _freq(lv: ir.Level) -> str:
    return f"every {lv.period}" if lv.kind == "every" else lv.kind


def _check_levels(model: ir.Model, diags: Diagnostics) -> None:
    ctx = model.settings.context
    periodic = sorted((lv for lv in model.levels if lv.kind == "every"), key=lambda lv: lv.period)
    # the first level of each distinct period: comparing against those (few) rather than every
    # faster level keeps this linear in the number of levels, and reports the same level
    first_with: dict[int, ir.Level] = {}
    for lv in periodic:
        first_with.setdefault(lv.period, lv)
    for slow in periodic:
        for period, fast in first_with.items():  # ascending: `periodic` is sorted
            if period >= slow.period:
                break
            if slow.period % fast.period:
                lower = slow.period // fast.period * fast.period
                diags.error("NS201", f"level `{slow.name}` (every {slow.period}) is not a multiple "
                            f"of the faster level `{fast.name}` (every {fast.period}) it contains",
                            span=slow.span, hint=f"use every {lower or fast.period} or "
                            f"{lower + fast.period}, so the slower level's boundaries fall on the "
                            "faster level's")
                break
        if slow.period <= ctx and ctx % slow.period:
            diags.error("NS202", f"level `{slow.name}` updates every {slow.period} tokens, which "
                        f"does not divide the context ({ctx})", span=slow.span,
                        hint=f"pick a divisor of {ctx}, e.g. {_near_divisor(ctx, slow.period)}")
        elif slow.period > ctx and slow.period % ctx:
            diags.error("NS202", f"level `{slow.name}` (every {slow.period}) spans more than one "
                        f"context ({ctx}) but is not a multiple of it", span=slow.span,
                        hint=f"use every {math.ceil(slow.period / ctx) * ctx}")


def _near_divisor(n: int, target: int) -> int:
    # 1 divides n, so the nearest divisor is below 2 * target; the window bounds the search for
    # huge numbers (a context of 10**12 must not take minutes to suggest a divisor)
    window = range(max(1, target - 10_000), min(n, 2 * target, target + 10_000) + 1)
    return min((d for d in (1, n, *window) if n % d == 0), key=lambda d: (abs(d - target), d))


def _check_chunks(model: ir.Model, levels, diags: Diagnostics) -> dict[str, int]:
    ctx = model.settings.context
    chunks = {}
    for mem in model.memories:
        lv = levels[mem.level]
        period = lv.period if lv.kind == "every" else None
        if mem.chunk:
            chunk = mem.chunk
            span = mem.option_spans.get("chunk", mem.span)
            if period and chunk % period:
                diags.error("NS202", f"memory `{mem.name}` has chunk = {chunk}, which is not a "
                            f"multiple of its level's period ({period})", span=span,
                            hint="a chunk holds whole update periods; "
                            f"use {period * max(1, chunk // period)}")
            if ctx % chunk:
                diags.error("NS202", f"memory `{mem.name}` has chunk = {chunk}, which does not "
                            f"divide the context ({ctx})", span=span,
                            hint=f"pick a divisor of {ctx}, e.g. {_near_divisor(ctx, chunk)}")
        elif period and period > 1:
            chunk = min(period, ctx)
        elif mem.rule.kind in EXACT_CHUNK_RULES and mem.shape.kind not in DEEP:
            chunk = math.gcd(DEFAULT_LINEAR_CHUNK, ctx)
        else:
            chunk = 1
        chunks[mem.name] = chunk
    return chunks


def _explicit(mem: ir.Memory, key: str) -> bool:
    return key in mem.option_spans


def _check_shapes(model: ir.Model, diags: Diagnostics) -> None:
    for mem in model.memories:
        kind = mem.shape.kind
        if kind in NONPARAMETRIC:
            for key in ("rule", "objective", "momentum", "lr", "retain", "output", "chunk"):
                if _explicit(mem, key) and not (key == "rule" and mem.rule.kind == "none"):
                    diags.error("NS207", f"`{key}` makes no sense for `{mem.name}`: attention is "
                                "non-parametric (it keeps its context, it does not learn)",
                                span=mem.option_spans[key], hint=f"remove `{key}`, or give "
                                f"`{mem.name}` a parametric shape such as `matrix` or `mlp`")
            if mem.values == "self":
                diags.error("NS207", "attention cannot generate its own values",
                            span=mem.option_spans["values"])
            continue
        if mem.rule.kind == "none":
            diags.error("NS207", f"`{mem.name}` has shape `{kind}`, which has parameters, but "
                        "rule `none`", span=mem.rule.span, hint="choose a learning rule such as "
                        "`delta`, `gd` or `dgd`")
        if mem.rule.kind in ("hebbian", "delta") and kind in DEEP:
            diags.error("NS207", f"the `{mem.rule.kind}` rule is defined for matrix memories, and "
                        f"`{mem.name}` is `{kind}`", span=mem.rule.span,
                        hint="use `gd` or `dgd` for an MLP memory (Eq. 88), or `shape = matrix`")
        if mem.output.kind == "newton_schulz" and kind == "vector":
            diags.error("NS207", "Newton-Schulz orthogonalises a matrix; a `vector` memory has "
                        "no matrix to orthogonalise", span=mem.output.span,
                        hint="remove `output`, or use `shape = matrix`")
        if mem.rule.kind == "hebbian" and mem.objective.kind not in ("dot",) and \
                _explicit(mem, "objective"):
            diags.error("NS207", "the Hebbian rule is one gradient step on the dot-product "
                        "objective (Eq. 14-18)", span=mem.objective.span,
                        hint="remove `objective` or set `objective = dot`")
        # (a memory at the model width is covered by the model's own dim/heads check)
        if mem.heads == "per_head" and mem.dim % model.settings.heads and \
                mem.dim != model.settings.dim:
            diags.error("NS206", f"`{mem.name}` is per head, but its width {mem.dim} is not "
                        f"divisible by heads = {model.settings.heads}",
                        span=mem.option_spans.get("dim", mem.span))


def _check_flows(model: ir.Model, members, failed, diags: Diagnostics) -> None:
    if not model.flows:
        diags.error("NS108", f"model `{model.name}` has no flow", span=model.span,
                    hint="say how data moves through a block: `flow x -> attn -> mlp`")
        return
    g = nx.DiGraph()
    first_span = {}
    for f in model.flows:
        for i, (name, span) in enumerate(zip(f.path, f.spans)):
            if name == INPUT:
                if i:
                    diags.error("NS205", "`x` is the block input; it can only start a flow",
                                span=span, hint="data cannot flow back into the block input")
                continue
            if name not in members and name not in failed:
                lv = model.level(name)
                diags.error("NS101", f"unknown memory `{name}` in flow", span=span,
                            hint=f"`{name}` is a level; flows connect memories" if lv else
                            did_you_mean(name, members))
        for (a, sa), (b, sb) in zip(zip(f.path, f.spans), zip(f.path[1:], f.spans[1:])):
            if a == b:
                diags.error("NS205", f"`{a}` flows into itself", span=sb,
                            hint="a memory reads its own state already; remove the repeat")
                continue
            if b == INPUT:  # reported above; as an edge it would also be reported as a cycle
                continue
            g.add_edge(a, b)
            first_span.setdefault((a, b), sb)
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        loop = " -> ".join([cycle[0][0]] + [e[1] for e in cycle])
        diags.error("NS205", f"the per-step data flow has a cycle: {loop}",
                    span=first_span[(cycle[-1][0], cycle[-1][1])],
                    hint="within a step data flows one way; feed a slower level back with a "
                    "transfer (condition, init, generate) instead")
    dims = {m.name: m.dim for m in model.memories} | {c.name: model.settings.dim for c in model.cms}
    dims[INPUT] = model.settings.dim
    for (a, b), span in first_span.items():
        if a in dims and b in dims and dims[a] != dims[b]:
            diags.error("NS206", f"`{a}` gives width {dims[a]} but `{b}` takes width {dims[b]}",
                        span=span, hint="flows connect memories of the same width; set `dim` on "
                        "one of them")
    in_flow = {n for f in model.flows for n in f.path}
    sources = {t.source for t in model.transfers}
    for m in (*model.memories, *model.cms):
        if m.name not in in_flow and m.name not in sources:
            diags.warning("NS210", f"`{m.name}` is in no flow and feeds no transfer, so nothing "
                          "reads it", span=m.span, hint=f"add it to a flow, e.g. `flow x -> {m.name}`")


def _check_transfers(model: ir.Model, levels, members, failed, diags: Diagnostics) -> None:
    ctx = model.settings.context
    flow_graph = nx.Graph()
    for f in model.flows:
        # `x` starts every flow; through it, any two flows would look connected
        nx.add_path(flow_graph, [n for n in f.path if n != INPUT])

    def level_of(name: str) -> ir.Level | None:
        if name in levels:
            return levels[name]
        m = members.get(name)
        if isinstance(m, ir.Memory):
            return levels.get(m.level)
        if isinstance(m, ir.Cms):  # a CMS is as slow as its slowest level
            lvls = [levels[n] for n in m.levels if n in levels]
            return max(lvls, key=lambda lv: level_rank(lv, ctx)) if lvls else None
        return None

    for t in model.transfers:
        ok = True
        for name, span in ((t.source, t.source_span), (t.target, t.target_span)):
            if name in failed:
                ok = False
            elif name not in levels and name not in members:
                diags.error("NS101", f"unknown level or memory `{name}` in transfer", span=span,
                            hint=did_you_mean(name, [*levels, *members]))
                ok = False
        if not ok:
            continue
        if t.source == t.target and t.kind != "generate":  # M_k generating its own keys is Eq. 88
            diags.error("NS211", f"`{t.source}` transfers to itself", span=t.span,
                        hint="only `generate` may point a memory at itself (self-modification)")
            continue
        src, dst = level_of(t.source), level_of(t.target)
        if t.kind == "init" and src and dst:
            if level_rank(src, ctx) <= level_rank(dst, ctx):
                diags.error("NS203", f"an init transfer goes from a slower level to a faster one, "
                            f"but `{t.source}` ({_freq(src)}) is not slower than `{t.target}` "
                            f"({_freq(dst)})", span=t.span, hint=f"write `transfer {t.target} -> "
                            f"{t.source} : init` if that was meant, or use `condition`")
        if t.kind == "init" and t.target in members and isinstance(members[t.target], ir.Memory) \
                and members[t.target].shape.kind in NONPARAMETRIC:
            diags.error("NS211", f"`{t.target}` is attention: it has no state to initialise",
                        span=t.target_span)
        if t.kind == "backprop":
            both = t.source in flow_graph and t.target in flow_graph
            if not both or not nx.has_path(flow_graph, t.source, t.target):
                diags.error("NS204", f"backprop needs `{t.source}` and `{t.target}` in one "
                            "gradient flow, but no flow connects them", span=t.span,
                            hint=f"connect them in a flow (`flow {t.source} -> {t.target}`) or "
                            "use `condition`")
        if t.kind == "generate":
            for name, span, role in ((t.source, t.source_span, "generator"),
                                     (t.target, t.target_span, "target")):
                if not isinstance(members.get(name), ir.Memory):
                    diags.error("NS211", f"the {role} of a generate transfer must be a memory; "
                                f"`{name}` is a {'level' if name in levels else 'CMS'}", span=span)


_GENERATABLE = ("keys", "values", "queries", "lr", "retain", "momentum")


def _check_generated(model: ir.Model, diags: Diagnostics) -> None:
    mems = {m.name: m for m in model.memories}
    generated = {(t.target, t.arg): t for t in model.transfers if t.kind == "generate"}
    for m in model.memories:
        for key in _GENERATABLE:
            value = getattr(m, key)
            mode = value.mode if isinstance(value, ir.Gate) else value
            if mode == "generated" and (m.name, key) not in generated:
                diags.error("NS208", f"`{m.name}.{key}` is `generated`, but no memory generates it",
                            span=m.option_spans.get(key, m.span),
                            hint=f"add `transfer GEN -> {m.name} : generate({key})`, or use "
                            "`project` / `data`")
    for (target, arg), t in generated.items():
        m = mems.get(target)
        if m is None or arg not in _GENERATABLE:
            continue
        value = getattr(m, arg)
        mode = value.mode if isinstance(value, ir.Gate) else value
        # values = self with a generated v: v-hat = M(v_t), v_t = M_v(x_t) (Eqs. 84, 87)
        if mode != "generated" and not (arg == "values" and mode == "self"):
            diags.error("NS209", f"`{t.source}` generates `{target}.{arg}`, but `{target}` "
                        f"takes {arg} = {mode if mode != 'const' else value.value}", span=t.span,
                        hint=f"set `{arg} = generated` in `{target}`")
        gen = mems.get(t.source)
        if gen is not None and arg in ("keys", "values", "queries") and gen.dim != m.dim:
            diags.error("NS206", f"`{t.source}` has width {gen.dim} but `{target}` needs {arg} of "
                        f"width {m.dim}", span=t.span, hint="give both the same `dim`")


def _check_cms(model: ir.Model, levels, diags: Diagnostics) -> None:
    ctx = model.settings.context
    for c in model.cms:
        lvls = [levels[n] for n in c.levels if n in levels]
        for a, b, span in zip(lvls, lvls[1:], c.level_spans[1:]):
            if level_rank(a, ctx) > level_rank(b, ctx):
                diags.error("NS201", f"cms `{c.name}` lists `{b.name}` ({_freq(b)}) after the "
                            f"slower `{a.name}` ({_freq(a)})", span=span,
                            hint="list CMS levels fastest first (Eq. 70: MLP^(f_1) is applied first)")
        if len(set(c.levels)) != len(c.levels):
            diags.error("NS102", f"cms `{c.name}` lists a level twice", span=c.span)
        if c.objective.kind != "task" and c.signal != "local":
            diags.error("NS207", f"cms `{c.name}` learns an associative objective "
                        f"(`{c.objective.kind}`), which needs `signal = local`",
                        span=c.option_spans.get("objective", c.span),
                        hint="Eq. 71 updates CMS levels on the task loss; use `objective = task`")
