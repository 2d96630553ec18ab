"""Merged declarations -> IR: every option validated against schema.py, defaults filled in."""
from __future__ import annotations

import builtins
import keyword

from . import ir
from . import syntax as S
from .diagnostics import Diagnostics, did_you_mean
from .merge import Decl, Merged
from .schema import (CALLS, CMS_OPTIONS, MEMORY_OPTIONS, MODEL_SETTINGS, NONPARAMETRIC,
                     OPTIMIZERS, Opt)
from .source import Span
from .values import CallV, Mult, Val, Word

# Names that generated code uses for itself; a spec name equal to one would shadow it.
_GENERATED_NAMES = {"x", "self", "torch", "nn", "F", "Config", "Model", "state", "tokens"}
# nn.Module attributes: a memory becomes an attribute of a Block module
_MODULE_ATTRS = {"forward", "training", "train", "eval", "parameters", "named_parameters",
                 "modules", "children", "named_children", "state_dict", "load_state_dict", "to",
                 "cuda", "cpu", "type", "float", "double", "half", "bfloat16", "apply",
                 "zero_grad", "register_buffer", "register_parameter", "buffers", "requires_grad_"}
_BUILTINS = set(dir(builtins))


def check_name(name: S.Name, what: str, diags: Diagnostics, allow_x: bool = False) -> bool:
    """Names become Python identifiers in generated code: ASCII, not keywords or builtins."""
    text = name.text
    if not text.isascii():
        diags.error("NS107", f"{what} name `{text}` is not ASCII", span=name.span,
                    hint="names become Python identifiers in the generated code; use ASCII "
                    "letters, digits and `_`")
        return False
    if keyword.iskeyword(text) or keyword.issoftkeyword(text):
        diags.error("NS106", f"{what} name `{text}` is a Python keyword", span=name.span,
                    hint=f"names become Python identifiers; try `{text}_`")
        return False
    if text.startswith("__") or text in _MODULE_ATTRS:
        diags.error("NS106", f"{what} name `{text}` is reserved: it names a Python module "
                    "attribute in the generated code", span=name.span, hint=f"try `{text.strip('_')}_mem`")
        return False
    if text in _BUILTINS or (text in _GENERATED_NAMES and not allow_x):
        diags.error("NS106", f"{what} name `{text}` shadows a Python builtin or a name the "
                    "generated code uses", span=name.span, hint=f"try `{text}_mem`")
        return False
    return True


def lower_model(m: Merged, diags: Diagnostics) -> tuple[ir.Model | None, set[str]]:
    """Lower what can be lowered. Returns the model (partial if some declarations were wrong,
    so the graph checks can still report their own errors) and the names that failed, which
    the checks must not report again as unknown."""
    check_name(m.name, "model", diags)
    settings = _settings(m, diags)
    levels = [lv for d in m.decls.values() if d.kind == "level" if (lv := _level(d, diags))]
    level_names = {lv.name for lv in levels}
    # declared levels that failed to lower (already reported): not "undeclared" for their users
    bad = {name for name, d in m.decls.items() if d.kind == "level"} - level_names
    dim = settings.dim if settings else 1
    memories = [mem for d in m.decls.values() if d.kind == "memory"
                if (mem := _memory(d, level_names, dim, settings, diags, bad))]
    cms = [c for d in m.decls.values() if d.kind == "cms"
           if (c := _cms(d, level_names, settings, diags, bad))]
    opts = [d for d in m.decls.values() if d.kind == "optimizer"]
    optimizer = None
    for extra in opts[1:]:
        diags.error("NS102", "a model has one outer optimizer", span=extra.name.span,
                    notes=[("first declared", opts[0].name.span)])
    if opts:
        optimizer = lower_optimizer(opts[0], diags, level_names, bad)
    flows = [ir.Flow(span=f.span, path=tuple(n.text for n in f.path),
                     spans=tuple(n.span for n in f.path)) for f in m.flows]
    transfers = [t for t in (_transfer(t, diags) for t in m.transfers) if t]
    lowered = {x.name for x in (*levels, *memories, *cms)}
    failed = {name for name in m.decls if name not in lowered}
    if settings is None:
        return None, failed
    return ir.Model(span=m.span, name=m.name.text, extends=tuple(m.chain), settings=settings,
                    levels=tuple(levels), memories=tuple(memories), cms=tuple(cms),
                    flows=tuple(flows), transfers=tuple(transfers), optimizer=optimizer), failed


def _settings(m: Merged, diags: Diagnostics) -> ir.Settings | None:
    values, spans = {}, {}
    for key, (sym, val) in m.settings.items():
        opt = MODEL_SETTINGS.get(key)
        if opt is None:
            diags.error("NS104", f"unknown model setting `{key}`", span=sym.span,
                        hint=did_you_mean(key, MODEL_SETTINGS))
            continue
        ok = _validate(val, opt, key, diags)
        if ok is not None:
            values[key], spans[key] = ok, sym.span
    for key, opt in MODEL_SETTINGS.items():
        values.setdefault(key, opt.default)
    if values["dim"] % values["heads"]:
        diags.error("NS206", f"dim = {values['dim']} is not divisible by heads = {values['heads']}",
                    span=spans.get("dim") or spans.get("heads") or m.name.span,
                    hint=f"pick heads among {_divisors(values['dim'])}")
    return ir.Settings(span=m.span, option_spans=spans, **values)


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, min(n, 64) + 1) if n % d == 0)


def _level(d: Decl, diags: Diagnostics) -> ir.Level | None:
    if not check_name(d.name, "level", diags):
        return None
    kind, period = d.freq
    if kind == "token":
        return ir.Level(span=d.span, name=d.name.text, kind="every", period=1)
    if kind != "every":
        return ir.Level(span=d.span, name=d.name.text, kind=kind)
    if period is None:  # the period did not evaluate; that error is already reported
        return None
    if not (isinstance(period.value, int) and not isinstance(period.value, bool)) or period.value < 1:
        diags.error("NS111", f"level `{d.name.text}`: `every` needs a positive whole number of "
                    f"tokens, got `{period.plain()}`", span=period.span,
                    hint="e.g. `level chunk every 16`")
        return None
    return ir.Level(span=d.span, name=d.name.text, kind="every", period=period.value)


def _memory(d: Decl, level_names, dim: int, settings, diags: Diagnostics,
            bad_levels=frozenset()) -> ir.Memory | None:
    ok = check_name(d.name, "memory", diags)
    if d.level.text in bad_levels:
        ok = False
    elif d.level.text not in level_names:
        diags.error("NS103", f"memory `{d.name.text}` is on level `{d.level.text}`, which is not "
                    "declared", span=d.level.span, hint=did_you_mean(d.level.text, level_names))
        ok = False
    vals = _options(d, MEMORY_OPTIONS, "memory", diags)
    if vals is None or not ok:
        return None
    shape = _shape(vals.pop("shape"), d, diags)
    if shape is not None and shape.kind in NONPARAMETRIC:
        # Attention keeps its context and learns nothing in context: no rule unless one is
        # written (the checks then reject it), and no q/k normalisation unless asked for.
        if "rule" not in d.options:
            vals["rule"] = CallV("none", (), {})
        if "qk_norm" not in d.options:
            vals["qk_norm"] = False
    for key in ("objective", "rule", "output"):
        vals[key] = _call_node(key, vals[key], d)
    for key in ("momentum", "lr", "retain"):
        vals[key] = _gate(vals[key], d.options.get(key), d.span)
    vals["dim"] = vals["dim"] or dim
    vals["writes"] = vals["writes"] or (settings.writes if settings else "differentiable")
    vals["chunk"] = vals["chunk"] or 0  # 0: resolved from the level by the checker / planner
    if shape is None:
        return None
    spans = {k: n.span for k, (n, _) in d.options.items()}
    return ir.Memory(span=d.span, name=d.name.text, level=d.level.text, shape=shape,
                     option_spans=spans, **vals)


def _cms(d: Decl, level_names, settings, diags: Diagnostics,
         bad_levels=frozenset()) -> ir.Cms | None:
    ok = check_name(d.name, "cms", diags)
    vals = _options(d, CMS_OPTIONS, "cms", diags)
    if vals is None or not ok:
        return None
    if vals["levels"] is None:
        diags.error("NS108", f"cms `{d.name.text}` needs `levels = [...]`", span=d.name.span,
                    hint="list the CMS levels, fastest first: `levels = [cms1, cms2]`")
        return None
    names, spans = vals.pop("levels")
    for n, sp in zip(names, spans):
        if n in bad_levels:
            ok = False
        elif n not in level_names:
            diags.error("NS103", f"cms `{d.name.text}` uses level `{n}`, which is not declared",
                        span=sp, hint=did_you_mean(n, level_names))
            ok = False
    variant = vals.pop("variant")
    agg = None
    if variant.name == "independent":
        agg = variant.kwargs.get("agg", Val(Word("weighted_sum"), d.span)).plain()
    shape = _shape(vals.pop("shape"), d, diags)
    if not ok or shape is None:
        return None
    spans_by_opt = {k: n.span for k, (n, _) in d.options.items()}
    vals["writes"] = vals["writes"] or (settings.writes if settings else "differentiable")
    return ir.Cms(span=d.span, name=d.name.text, variant=variant.name, agg=agg, levels=tuple(names),
                  level_spans=tuple(spans), shape=shape, option_spans=spans_by_opt,
                  objective=_call_node("objective", vals.pop("objective"), d),
                  rule=_call_node("rule", vals.pop("rule"), d), **vals)


def lower_optimizer(d: Decl, diags: Diagnostics, level_names=None,
                    bad_levels=frozenset()) -> ir.Optimizer | None:
    kind = d.opt_kind.text if d.opt_kind is not None else d.name.text
    kind_span = d.opt_kind.span if d.opt_kind is not None else d.name.span
    if kind not in OPTIMIZERS:
        diags.error("NS101", f"unknown optimizer `{kind}`", span=kind_span,
                    hint=did_you_mean(kind, OPTIMIZERS) + "; or `optimizer NAME : KIND { ... }`")
        return None
    if d.level is not None and level_names is not None and d.level.text in bad_levels:
        return None
    if d.level is not None and level_names is not None and d.level.text not in level_names:
        diags.error("NS103", f"optimizer `{d.name.text}` is on level `{d.level.text}`, which is "
                    "not declared", span=d.level.span, hint=did_you_mean(d.level.text, level_names))
        return None
    vals = _options(d, OPTIMIZERS[kind], f"optimizer `{kind}`", diags)
    if vals is None:
        return None
    plain = {k: (v.name if isinstance(v, CallV) else v) for k, v in vals.items()}
    return ir.Optimizer(span=d.span, name=d.name.text, kind=kind,
                        level=d.level.text if d.level else None, options=plain)


# -- option validation -------------------------------------------------------------------------
def _options(d: Decl, table: dict[str, Opt], what: str, diags: Diagnostics) -> dict | None:
    out, ok = {}, True
    for key, (name, val) in d.options.items():
        opt = table.get(key)
        if opt is None:
            diags.error("NS104", f"{what} has no option `{key}`", span=name.span,
                        hint=did_you_mean(key, table))
            ok = False
            continue
        checked = _validate(val, opt, key, diags)
        if checked is None:
            ok = False
        else:
            out[key] = checked
    for key, opt in table.items():
        if key not in out:
            out[key] = _default(opt, d.span)
    return out if ok else None


def _default(opt: Opt, span: Span):
    if opt.kind == "call":
        return CallV(opt.default, (), {})
    return opt.default


def _validate(val: Val, opt: Opt, key: str, diags: Diagnostics):
    """Return the checked Python value, or None after reporting why it is wrong."""
    v = val.value
    bad = lambda msg, hint=None: diags.error("NS105", msg, span=val.span, hint=hint)  # noqa: E731
    if opt.kind == "bool":
        if isinstance(v, bool):
            return v
        return bad(f"`{key}` is `true` or `false`, got `{val.plain()}`")
    if opt.kind in ("int", "float"):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or isinstance(v, Mult):
            return bad(f"`{key}` needs a number, got `{val.plain()}`", opt.doc or None)
        if opt.kind == "int" and not (isinstance(v, int) or float(v).is_integer()):
            return bad(f"`{key}` needs a whole number, got `{v}`")
        v = int(v) if opt.kind == "int" else float(v)
        return v if _in_range(v, opt, key, val.span, diags) else None
    if opt.kind == "enum":
        word = v.text if isinstance(v, Word) else v if isinstance(v, str) else None
        if word in opt.choices:
            return word
        return bad(f"`{key}` is one of {_list(opt.choices)}, got `{val.plain()}`",
                   did_you_mean(str(word), opt.choices) if word else None)
    if opt.kind == "gate":
        if isinstance(v, Word) and v.text in ("data", "generated"):
            return v.text
        if isinstance(v, (int, float)) and not isinstance(v, (bool, Mult)):
            return float(v) if _in_range(float(v), opt, key, val.span, diags) else None
        return bad(f"`{key}` is a number, `data` or `generated`, got `{val.plain()}`", opt.doc)
    if opt.kind == "names":
        items = v if isinstance(v, tuple) else None
        if items is None or not all(isinstance(i.value, Word) for i in items) or not items:
            return bad(f"`{key}` is a list of level names like `[fast, slow]`, got `{val.plain()}`")
        return [i.value.text for i in items], [i.span for i in items]
    if opt.kind == "call":
        return _validate_call(val, opt, key, diags)
    raise AssertionError(opt.kind)


def _validate_call(val: Val, opt: Opt, key: str, diags: Diagnostics):
    v = val.value
    call = CallV(v.text, (), {}) if isinstance(v, Word) else v if isinstance(v, CallV) else None
    if call is None or call.name not in opt.choices:
        word = call.name if call else str(val.plain())
        diags.error("NS105", f"`{key}` is one of {_list(opt.choices)}, got `{val.plain()}`",
                    span=val.span, hint=did_you_mean(word, opt.choices))
        return None
    params = CALLS[call.name]
    if len(call.args) > len(params):
        diags.error("NS105", f"`{call.name}` takes {len(params)} argument(s)", span=val.span,
                    hint=f"parameters: {_list(params) if params else 'none'}")
        return None
    given = dict(zip(params, call.args)) | dict(call.kwargs)
    for p, arg in given.items():
        if p not in params:
            diags.error("NS104", f"`{call.name}` has no parameter `{p}`", span=arg.span,
                        hint=did_you_mean(p, params))
            return None
        default = params[p]
        a = arg.value
        if isinstance(default, float) and not (isinstance(a, (int, float)) and not isinstance(a, bool)):
            diags.error("NS105", f"`{call.name}({p} = ...)` needs a number or a width like `4x`",
                        span=arg.span)
            return None
        if isinstance(default, int) and not isinstance(default, bool) and \
                (not isinstance(a, int) or isinstance(a, bool) or a < 0):
            diags.error("NS105", f"`{call.name}({p} = ...)` needs a whole number >= 0", span=arg.span)
            return None
        if isinstance(default, float) and a <= 0:
            diags.error("NS105", f"`{call.name}({p} = ...)` must be positive", span=arg.span)
            return None
        if isinstance(default, str):
            word = a.text if isinstance(a, Word) else a if isinstance(a, str) else None
            choices = _WORD_PARAMS.get(p)
            if word is None or (choices and word not in choices):
                diags.error("NS105", f"`{call.name}({p} = ...)` needs " +
                            (f"one of {_list(choices)}" if choices else "a word"), span=arg.span,
                            hint=did_you_mean(word, choices) if word and choices else None)
                return None
    return CallV(call.name, (), given)


# Word-valued call parameters whose IR field takes only these words (`act` is checked in _shape).
_WORD_PARAMS = {"step": ("exact", "paper")}


def _in_range(v: float, opt: Opt, key: str, span: Span, diags: Diagnostics) -> bool:
    lo, hi = opt.low, opt.high
    if (lo is not None and v < lo) or (hi is not None and (v >= hi if opt.high_open else v > hi)):
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}" + \
              (")" if opt.high_open else "]")
        diags.error("NS105", f"`{key}` = {v:g} is outside {rng}", span=span, hint=opt.doc or None)
        return False
    return True


def _list(words) -> str:
    return ", ".join(f"`{w}`" for w in words)


# -- IR nodes from checked calls -----------------------------------------------------------------
def _arg(call: CallV, name: str):
    v = call.kwargs.get(name)
    if v is None:
        return CALLS[call.name].get(name)
    return v.plain() if isinstance(v.value, (Word, CallV)) else v.value


def _shape(call: CallV, d: Decl, diags: Diagnostics) -> ir.Shape | None:
    span = d.options["shape"][1].span if "shape" in d.options else d.span
    if call.name == "attention":
        return ir.Shape(span=span, kind="attention", window=_arg(call, "window"))
    hidden = _arg(call, "hidden") if call.name in ("mlp", "residual_mlp", "swiglu") else None
    act = _arg(call, "act") if call.name in ("mlp", "residual_mlp") else None
    if act is not None and act not in ("silu", "gelu", "relu"):
        diags.error("NS105", f"activation `{act}` is not one of `silu`, `gelu`, `relu`", span=span)
        return None
    return ir.Shape(span=span, kind=call.name, hidden=float(hidden) if hidden else None, act=act)


def _call_node(key: str, call: CallV, d: Decl):
    span = d.options[key][1].span if key in d.options else d.span
    if key == "objective":
        return ir.Objective(span=span, kind=call.name, p=_arg(call, "p") if call.name == "lp" else None,
                            delta=_arg(call, "delta") if call.name == "huber" else None)
    if key == "rule":
        return ir.Rule(span=span, kind=call.name,
                       step=_arg(call, "step") if call.name == "dgd" else None,
                       window=_arg(call, "window") if call.name in ("ggd", "omega") else None)
    return ir.Output(span=span, kind=call.name,
                     steps=_arg(call, "steps") if call.name == "newton_schulz" else None)


def _gate(value, given, span: Span) -> ir.Gate:
    span = given[1].span if given else span
    if isinstance(value, str):
        return ir.Gate(span=span, mode=value)
    return ir.Gate(span=span, mode="const", value=value)


def _transfer(t: S.TransferDecl, diags: Diagnostics) -> ir.Transfer | None:
    from .schema import TRANSFERS
    kind = t.kind.text
    if kind not in TRANSFERS:
        diags.error("NS211", f"unknown transfer kind `{kind}`", span=t.kind.span,
                    hint=did_you_mean(kind, TRANSFERS))
        return None
    allowed = TRANSFERS[kind]
    if t.kwargs or len(t.args) > 1:
        diags.error("NS211", f"`{kind}` takes at most one argument", span=t.span,
                    hint=f"one of {_list(allowed)}" if allowed else "it takes none")
        return None
    arg = None
    if t.args:
        a = t.args[0]
        if not allowed:
            diags.error("NS211", f"`{kind}` takes no argument", span=a.span)
            return None
        if not (isinstance(a, S.Sym) and a.text in allowed):
            diags.error("NS211", f"`{kind}(...)` takes one of {_list(allowed)}", span=a.span,
                        hint=did_you_mean(a.text, allowed) if isinstance(a, S.Sym) else None)
            return None
        arg = a.text
    elif kind == "generate":
        diags.error("NS211", "`generate` needs what it generates: `generate(keys)`", span=t.kind.span,
                    hint=f"one of {_list(allowed)}")
        return None
    elif kind == "condition":
        arg = "parametric"
    return ir.Transfer(span=t.span, source=t.source.text, target=t.target.text, kind=kind, arg=arg,
                       source_span=t.source.span, target_span=t.target.span)


def is_parametric(mem: ir.Memory) -> bool:
    return mem.shape.kind not in NONPARAMETRIC
