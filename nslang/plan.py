"""Checked model -> plan: what runs. Shapes, each level's regime and update schedule, chunking,
and which runtime layer implements each memory (`nslang compile --dump plan` prints it).

The plan holds only plain values (ints, floats, short enum strings, validated names), so the code
rendered from it cannot contain anything the spec did not pass through the checks.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field, replace

from . import ir
from .checks import CheckedModel, period_tokens
from .diagnostics import Diagnostics
from .kernels import choose as choose_kernel
from .naming import class_name
from .schema import DEEP
from .source import SOURCES


@dataclass(frozen=True)
class LevelPlan:
    name: str
    frequency: str       # "every 16 tokens", "frozen after pre-training", ...
    regime: str          # in_context | cross_sequence | outer
    period: int | None   # tokens between updates (None: per outer step / frozen)


@dataclass(frozen=True)
class SublayerPlan:
    name: str            # the spec's name
    cls: str             # the generated class name
    layer: str           # runtime layer: Attention | FeedForward | LinearMemory | DeepMemory | Continuum
    regime: str
    schedule: str        # one line for the generated docstring
    source: str          # file:line of the declaration
    args: dict = field(default_factory=dict)  # constructor arguments (plain values)
    kernel: dict | None = None  # the Triton kernel on CUDA and its constexprs (nslang/kernels.py)


@dataclass(frozen=True)
class Plan:
    model: str
    spec_file: str
    spec_hash: str
    vocab: int
    dim: int
    heads: int
    depth: int
    context: int
    norm: str
    position: str
    tie_embeddings: bool
    levels: tuple[LevelPlan, ...]
    sublayers: tuple[SublayerPlan, ...]   # in flow order: each is a pre-norm residual sublayer
    optimizer: dict | None
    segment: int = 0     # tokens per step of the CMS learning loop (0: no in-context CMS level)
    # CMS error signal: "exact" (a backward through the rest of the network every `segment`
    # tokens) or "two_pass" (one first pass per `signal_chunk` tokens, the slowest in-context
    # period; see runtime/model_base.py)
    cms_signal: str = "exact"
    signal_chunk: int = 0
    setting_lines: dict = field(default_factory=dict)  # config field -> file:line

    def to_dict(self) -> dict:
        return asdict(self)


def _where(span) -> str:
    src = SOURCES.get(span.file)
    line = src.line_col(span.start)[0] if src else 0
    return f"{span.file}:{line}"


def _frequency(lv: ir.Level) -> str:
    if lv.kind == "every":
        return "every token" if lv.period == 1 else f"every {lv.period} tokens"
    return {"sequence": "once per sequence", "step": "every outer step",
            "frozen": "every outer step in pre-training, frozen after"}[lv.kind]


def _regime(lv: ir.Level, context: int) -> str:
    """DESIGN.md 'How a level's frequency becomes execution'."""
    if lv.kind in ("step", "frozen"):
        return "outer"
    return "in_context" if period_tokens(lv, context) <= context else "cross_sequence"


def plan_model(checked: CheckedModel, spec_text_hash: str, diags: Diagnostics) -> Plan | None:
    m = checked.model
    s = m.settings
    levels = {lv.name: lv for lv in m.levels}
    order = _flow_order(m)
    inits = {t.target for t in m.transfers if t.kind == "init"}
    sublayers = []
    for name in order:
        member = m.member(name)
        if isinstance(member, ir.Cms):
            sub = _plan_cms(member, levels, s, inits, diags)
            if sub is not None:
                sublayers.append(sub)
        elif isinstance(member, ir.Memory):
            sub = _plan_memory(member, m, levels[member.level], checked.chunks[name], inits, diags)
            if sub is not None:
                sublayers.append(sub)
    sublayers = [replace(sub, kernel=choose_kernel(sub.layer, sub.args, sub.args.get("dim", s.dim),
                                                   sub.args.get("heads", s.heads)))
                 for sub in sublayers]
    segment = _segment(m, sublayers, diags)
    cms_signal, signal_chunk = _signal(m, sublayers, diags)
    if diags.errors:
        return None
    opt = None
    if m.optimizer is not None:
        opt = {"name": m.optimizer.name, "kind": m.optimizer.kind, **m.optimizer.options}
    return Plan(
        model=m.name, spec_file=m.span.file, spec_hash=spec_text_hash, vocab=s.vocab, dim=s.dim,
        heads=s.heads, depth=s.depth, context=s.context, norm=s.norm, position=s.position,
        tie_embeddings=s.tie_embeddings,
        levels=tuple(LevelPlan(lv.name, _frequency(lv), _regime(lv, s.context),
                               lv.period if lv.kind == "every" else None)
                     for lv in checked.level_order()),
        sublayers=tuple(sublayers), optimizer=opt, segment=segment, cms_signal=cms_signal,
        signal_chunk=signal_chunk,
        setting_lines={k: _where(sp) for k, sp in s.option_spans.items()})


def _segment(m: ir.Model, sublayers, diags: Diagnostics) -> int:
    """The period of the fastest in-context CMS level: the model runs segment by segment so CMS
    levels can learn from the task loss. Chunked rules must not straddle a segment."""
    periods = [p for sub in sublayers if sub.layer == "Continuum"
               for p, r in zip(sub.args["periods"], sub.args["regimes"]) if r == "in_context"]
    if not periods:
        return 0
    segment = min(periods)
    modes = {sub.args["detach_writes"] for sub in sublayers if sub.layer == "Continuum"}
    if len(modes) > 1:
        diags.error("NS211", "the CMS blocks of one model must agree on `writes` (they learn in "
                    "one segment loop)", span=m.span, hint="set `writes` once, on the model")
    for sub in sublayers:
        chunk = sub.args.get("chunk")
        if sub.layer in ("DeepMemory", "SelfModifying") and chunk and segment % chunk:
            mem = m.member(sub.name)
            diags.error("NS211", f"`{sub.name}` updates in chunks of {chunk} tokens, which do not "
                        f"divide the fastest in-context CMS period ({segment})", span=mem.span,
                        hint=f"make the CMS period a multiple of {chunk}")
    return segment


def _signal(m: ir.Model, sublayers, diags: Diagnostics) -> tuple[str, int]:
    """The CMS error signal of the model and, for two_pass, the tokens per first pass: the
    slowest in-context CMS period (the op's definition: one first pass per slowest chunk)."""
    cms = [sub for sub in sublayers if sub.layer == "Continuum"]
    signals = {sub.args["signal"] for sub in cms}
    if len(signals) > 1:
        diags.error("NS211", "the CMS blocks of one model must agree on `signal` (they learn in "
                    "one segment loop)", span=m.span,
                    hint="give every cms block the same `signal`")
        return "exact", 0
    signal = signals.pop() if signals else "exact"
    periods = [p for sub in cms for p, r in zip(sub.args["periods"], sub.args["regimes"])
               if r == "in_context"]
    if signal != "two_pass" or not periods:
        return "exact", 0
    return signal, max(periods)


def _generated_targets(m: ir.Model, source: str) -> set[str]:
    return {t.target for t in m.transfers if t.kind == "generate" and t.source == source}


def _flow_order(m: ir.Model) -> list[str]:
    """Members in the order data meets them: a topological order of the flow DAG from `x`,
    ties broken by declaration order so the generated file reads like the spec."""
    import networkx as nx

    g = nx.DiGraph()
    for f in m.flows:
        nx.add_path(g, f.path)
    declared = {mem.name: i for i, mem in enumerate((*m.memories, *m.cms))}
    order = nx.lexicographical_topological_sort(g, key=lambda n: declared.get(n, -1))
    return [n for n in order if n != "x"]


def _gate(g: ir.Gate) -> dict:
    return {"mode": g.mode, "value": g.value}


def _plan_memory(mem: ir.Memory, m: ir.Model, lv: ir.Level, chunk: int, inits: set[str],
                 diags: Diagnostics) -> SublayerPlan | None:
    s = m.settings
    regime = _regime(lv, s.context)
    common = dict(dim=mem.dim, heads=s.heads if mem.heads == "per_head" else 1)
    where = _where(mem.span)
    kind = mem.shape.kind
    if kind == "attention":
        window = mem.shape.window or None
        sched = "non-parametric: keeps its context (global)" if window is None else \
            f"non-parametric: keeps the last {window} tokens"
        return SublayerPlan(mem.name, class_name(mem.name), "Attention", "in_context", sched, where,
                            dict(common, window=window, rope=s.position == "rope",
                                 qk_norm=mem.qk_norm))
    if regime == "outer":
        hidden = _hidden(mem, s.dim)
        return SublayerPlan(mem.name, class_name(mem.name), "FeedForward", "outer",
                            f"parameters updated by the outer optimizer ({_frequency(lv)})", where,
                            dict(dim=mem.dim, hidden=hidden, kind=kind, act=mem.shape.act or "silu"))
    if regime == "cross_sequence":
        diags.error("NS211", f"`{mem.name}` is a memory on the cross-sequence level `{lv.name}`; "
                    "the compiler runs cross-sequence levels for CMS blocks only so far",
                    span=mem.span, hint="put it in a `cms` block, or on a level faster than the "
                    "context")
        return None
    gens = {t.arg: t.source for t in m.transfers if t.kind == "generate" and t.target == mem.name}
    if gens:
        return _plan_self_modifying(mem, m, lv, chunk, gens, inits, diags)
    if mem.read == "previous":
        diags.error("NS211", f"`{mem.name}` reads before its write (`read = previous`), which "
                    "compiled models do not support yet", span=mem.option_spans["read"],
                    hint="use `read = current` or `chunk_start`")
        return None
    sched = (f"in-context: {_frequency(lv)}, chunk-parallel over {chunk} tokens; "
             f"initial state {'meta-learned (init transfer)' if mem.name in inits else 'zeros'}; "
             f"writes {mem.writes}")
    args = dict(common, rule=mem.rule.kind, objective=mem.objective.kind, chunk=chunk,
                lr=_gate(mem.lr), retain=_gate(mem.retain), momentum=_gate(mem.momentum),
                conv=mem.conv, qk_norm=mem.qk_norm, learn_init=mem.name in inits,
                detach_writes=mem.writes == "detached")
    if kind in DEEP and mem.rule.kind != "gd":
        diags.error("NS211", f"`{mem.name}`: an MLP memory compiles with rule `gd` (Titans, "
                    f"TTT-MLP); `{mem.rule.kind}` on an MLP memory compiles only inside a "
                    "self-modifying group (generated keys, values, lr)", span=mem.rule.span,
                    hint="use `rule = gd`, or generate its inputs as specs/hope.nsam does")
        return None
    if mem.lr_max and (kind not in DEEP or mem.lr.mode != "data"):
        diags.error("NS211", f"`{mem.name}`: `lr_max` caps the data-dependent lr of an MLP memory; "
                    "other memories and lr modes do not compile it yet",
                    span=mem.option_spans.get("lr_max", mem.span),
                    hint="remove `lr_max`" + ("" if kind not in DEEP else ", or set `lr = data`"))
        return None
    if mem.retain_init:
        diags.error("NS211", f"`{mem.name}`: `retain_init` sets where a self-modifying group's "
                    "generated retention starts; other memories do not compile it yet",
                    span=mem.option_spans.get("retain_init", mem.span), hint="remove `retain_init`")
        return None
    if kind in DEEP:
        args.update(kind=kind, hidden=_hidden(mem, mem.dim // common["heads"]),
                    act=mem.shape.act or "silu", read=mem.read,
                    **({"lr_max": mem.lr_max} if mem.lr_max else {}))
        return SublayerPlan(mem.name, class_name(mem.name), "DeepMemory", regime, sched, where, args)
    period = lv.period if lv.kind == "every" else 1
    if mem.rule.kind == "ggd":
        diags.error("NS211", f"`{mem.name}`: the GGD rule is not compiled yet", span=mem.rule.span,
                    hint="use `dgd`, `delta` or `omega(window = ...)`")
        return None
    if mem.rule.kind == "gd" and period > 1 and (mem.retain.mode != "const" or mem.retain.value
                                                  != 1.0 or mem.momentum.mode != "const"
                                                  or mem.momentum.value):
        diags.error("NS211", f"`{mem.name}`: mini-batch gd on a matrix memory (TTT-linear) is "
                    "compiled without retention or momentum so far", span=mem.span,
                    hint="set `retain = 1` and `momentum = 0`, or use `dgd`")
        return None
    # gd takes its gradients at the start of each update period (TTT's mini-batch, Titans'
    # chunk): with a period of one token that is the delta rule with b = 2 eta.
    args.update(step=mem.rule.step or "exact", retain_gate=mem.retain_gate, lr_gate=mem.lr_gate,
                window=mem.rule.window, minibatch=period if mem.rule.kind == "gd" else None)
    return SublayerPlan(mem.name, class_name(mem.name), "LinearMemory", regime, sched, where, args)


# op memory name -> the input of the target memory its generator produces (Eqs. 84-86)
_GROUP = {"k": "keys", "v": "values", "q": "queries", "eta": "lr", "alpha": "retain"}


def _plan_self_modifying(mem: ir.Memory, m: ir.Model, lv: ir.Level, chunk: int, gens: dict,
                         inits: set[str], diags: Diagnostics) -> SublayerPlan | None:
    """A memory whose k, v, lr and retention come from generator memories that learn with the
    same rule (Eq. 88): one self-modifying Titans layer holding the whole group."""
    def refuse(message, hint, span=mem.span):
        diags.error("NS211", message, span=span, hint=hint)
        return None

    # Without a retention generator the group keeps everything: alpha_t = 1 (Table 6's "w/o
    # weight decay"), which every member must then say.
    retention = "retain" in gens
    needed = ("keys", "values", "lr") + (("retain",) if retention else ())
    missing = [a for a in needed if a not in gens]
    if not retention and not (mem.retain.mode == "const" and mem.retain.value == 1.0):
        missing.append("retain")
    if missing:
        return refuse(f"`{mem.name}` has generated inputs but no generator for "
                      f"{', '.join(missing)}; the compiled self-modifying layer needs keys, "
                      "values and lr generated, and retain generated or 1 (Eqs. 84-86)",
                      "generate them, or use `project` / `data` inputs")
    members = {"mem": mem} | {op: m.member(gens[arg]) for op, arg in _GROUP.items() if arg in gens}
    for op, g in members.items():
        if g.values != "self":
            return refuse(f"`{g.name}` is in the self-modifying group of `{mem.name}`, so it "
                          "regresses onto its own M(v) (Eq. 87)", "set `values = self`",
                          g.option_spans.get("values", g.span))
        if g.shape.kind != "residual_mlp" or g.rule.kind != mem.rule.kind:
            return refuse(f"`{g.name}` must be a residual_mlp with rule `{mem.rule.kind}` like "
                          f"`{mem.name}`: the group shares one update rule (Eq. 88)",
                          "match the shape and rule", g.span)
        if op != "mem":
            if not retention and not (g.retain.mode == "const" and g.retain.value == 1.0):
                return refuse(f"`{g.name}` must keep everything (`retain = 1`) like `{mem.name}`",
                              "set `retain = 1`", g.retain.span)
            for arg in ("keys", "lr") + (("retain",) if retention else ()):
                src = next((t.source for t in m.transfers if t.kind == "generate"
                            and t.target == g.name and t.arg == arg), None)
                if src != gens[arg]:
                    return refuse(f"`{g.name}` must take its {arg} from `{gens[arg]}` like "
                                  f"`{mem.name}` (Eq. 88: one k_t, eta_t, alpha_t for every "
                                  "memory of the group)",
                                  f"add `transfer {gens[arg]} -> {g.name} : generate({arg})`",
                                  g.span)
        if g.chunk and g.chunk != chunk or g.level != mem.level:
            return refuse(f"`{g.name}` updates on level `{g.level}`, `{mem.name}` on "
                          f"`{mem.level}`: compiled self-modifying groups use one chunk size",
                          "put the generators on the memory's level (two chunk sizes, one for "
                          "M_mem and one for the generators, are not compiled yet)", g.span)
    if mem.momentum.mode != "const":
        return refuse("a self-modifying memory takes a constant momentum", "e.g. `momentum = 0.9`",
                      mem.momentum.span)
    if mem.rule.kind == "dgd" and mem.decay_on != "input":
        return refuse("`decay_on = all` is not compiled yet", "use `decay_on = input`",
                      mem.option_spans.get("decay_on", mem.span))
    if mem.retain_gate != "sigmoid":
        return refuse("a self-modifying memory's retention goes through a sigmoid (the op's "
                      "alpha map)", "remove `retain_gate`", mem.option_spans.get("retain_gate"))
    if mem.rule.kind not in ("dgd", "gd"):
        return refuse("a self-modifying memory learns by `dgd` or `gd` (Eq. 88)", "set the rule",
                      mem.rule.span)
    heads = m.settings.heads
    dh = mem.dim // heads
    hidden = {op: _hidden(g, dh) for op, g in members.items()}
    learn = all(g.name in inits for g in members.values())
    sched = (f"in-context: {_frequency(lv)}, chunk-parallel over {chunk} tokens (Eq. 90); "
             f"a self-modifying group with generators {', '.join(sorted(gens.values()))}; "
             f"initial states {'meta-learned (init transfer)' if learn else 'fixed'}")
    args = dict(dim=mem.dim, heads=heads, hidden=hidden, chunk=chunk,
                adaptive_q="queries" in gens, dgd="input" if mem.rule.kind == "dgd" else "none",
                momentum=mem.momentum.value or None, read=mem.read, lr_gate=mem.lr_gate,
                retain_gate=mem.retain_gate, act=mem.shape.act or "silu", conv=mem.conv,
                learn_init=learn, retention=retention,
                **({"retain_init": mem.retain_init} if mem.retain_init else {}))
    return SublayerPlan(mem.name, class_name(mem.name), "SelfModifying", "in_context", sched,
                        _where(mem.span), args)


def _hidden(mem: ir.Memory, width: int) -> int:
    factor = mem.shape.hidden or (8 / 3 if mem.shape.kind == "swiglu" else 4.0)
    return max(1, int(math.ceil(width * factor)))


def _plan_cms(c: ir.Cms, levels: dict, s: ir.Settings, inits: set[str],
              diags: Diagnostics) -> SublayerPlan | None:
    if c.signal == "local" or c.objective.kind != "task" or c.rule.kind != "gd" or c.momentum:
        diags.error("NS211", f"cms `{c.name}`: compiled CMS blocks learn by plain `gd` on the task "
                    "loss with the exact or two_pass signal so far", span=c.span,
                    hint="use `rule = gd; objective = task; signal = exact | two_pass; momentum = 0` "
                    "(the local signal exists in runtime/ops/cms, not yet in models)")
        return None
    periods, regimes = [], []
    for name in c.levels:
        lv = levels[name]
        regimes.append(_regime(lv, s.context))
        periods.append(lv.period if lv.kind == "every" else 0)
    parts = [f"{n}: {_frequency(levels[n])} ({r.replace('_', '-')})" for n, r in zip(c.levels, regimes)]
    return SublayerPlan(
        c.name, class_name(c.name), "Continuum", "mixed", "CMS " + c.variant + "; " + "; ".join(parts),
        _where(c.span),
        dict(dim=s.dim, hidden=_hidden_cms(c, s.dim), kind=c.shape.kind, act=c.shape.act or "silu",
             variant=c.variant, periods=periods, regimes=regimes, lr=c.lr, signal=c.signal,
             detach_writes=c.writes == "detached",
             context=s.context, **({"level_norm": c.level_norm} if c.level_norm != "none" else {})))


def _hidden_cms(c: ir.Cms, dim: int) -> int:
    factor = c.shape.hidden or 4.0
    return max(1, int(math.ceil(dim * factor)))


def spec_hash(paths_and_texts: list[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for path, text in paths_and_texts:
        h.update(path.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()[:16]
