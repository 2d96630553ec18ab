"""Outer optimisers of nslang: optimisers read as associative memories over gradients.

Each one is a ``torch.optim.Optimizer`` whose ``state_dict()`` holds only tensors and plain
Python numbers / strings / lists / dicts (checkpoints load with ``torch.load(weights_only=True)``).

``build_optimizer(name, params, **options)`` is how the compiler and the trainer make one; the
names (case-insensitive, "-" and "_" interchangeable) and their classes:

=================  ====================================================================
name               optimizer (options: see the class docstring)
=================  ====================================================================
sgd, sgd_momentum  SGDMomentum (torch.optim.SGD's step; ``form="paper"``: Eq. 10-13 literal)
adamw              torch.optim.AdamW (reused as is; foreach/fused fixed to False)
muon               Muon (NS on ndim >= 2 params, AdamW for the rest / ``use_muon=False``)
m3                 M3 (Algorithm 1 with the documented EMA defaults)
m3_algorithm1      M3.algorithm1: the printed form (sums, no bias correction, no RMS norm)
delta_momentum     DeltaMomentum (Eq. 49)
deep_momentum,     DeepMomentum (DMGD, Eq. 50 / 52)
dmgd
=================  ====================================================================
"""

from __future__ import annotations

import inspect

import torch

from .deep_momentum import DeepMomentum
from .delta_momentum import DeltaMomentum
from .m3 import M3
from .muon import Muon
from .newton_schulz import newton_schulz
from .sgd_momentum import SGDMomentum


def _adamw(params, **options) -> torch.optim.AdamW:
    # Fixed so that state_dict() has no None entries and the step is the plain loop.
    options.setdefault("foreach", False)
    options.setdefault("fused", False)
    opt = torch.optim.AdamW(params, **options)
    # torch stores betas as a tuple; keep plain lists only (its step unpacks either).
    opt.defaults["betas"] = list(opt.defaults["betas"])
    for group in opt.param_groups:
        group["betas"] = list(group["betas"])
    return opt


def _default(arg: str, cls) -> tuple:
    return tuple(inspect.signature(cls.__init__).parameters[arg].default)


def _fold_betas(options: dict, names: tuple[str, ...], default: tuple[float, ...]) -> None:
    """Turn the spec's flat beta1, beta2, ... into the constructor's ``betas`` sequence."""
    if not any(n in options for n in names):
        return
    if "betas" in options:
        raise TypeError(f"give either betas or {', '.join(names)}, not both")
    options["betas"] = [options.pop(n, d) for n, d in zip(names, default)]


def _rename(options: dict, spec_name: str, arg_name: str) -> None:
    if spec_name in options:
        if arg_name in options:
            raise TypeError(f"give either {spec_name} or {arg_name}, not both")
        options[arg_name] = options.pop(spec_name)


def _spec_options(key: str, options: dict) -> dict:
    """Accept the option names of the spec language (nslang/schema.py) besides the Python ones.

    The specs use flat names (beta1, beta2, beta3; adam_lr; inner_lr); the classes use the torch
    conventions (a ``betas`` sequence; ``adamw_lr``; ``mlp_lr``).
    """
    options = dict(options)
    if key == "adamw":
        _fold_betas(options, ("beta1", "beta2"), (0.9, 0.999))
    elif key in ("m3", "m3_algorithm1"):
        _fold_betas(options, ("beta1", "beta2", "beta3"), _default("betas", M3))
    elif key == "muon":
        _rename(options, "adam_lr", "adamw_lr")
    elif key in ("deep_momentum", "dmgd"):
        _rename(options, "inner_lr", "mlp_lr")
    return options


OPTIMIZERS = {
    "sgd": SGDMomentum,
    "sgd_momentum": SGDMomentum,
    "adamw": _adamw,
    "muon": Muon,
    "m3": M3,
    "m3_algorithm1": M3.algorithm1,
    "delta_momentum": DeltaMomentum,
    "deep_momentum": DeepMomentum,
    "dmgd": DeepMomentum,
}


def build_optimizer(name: str, params, **options) -> torch.optim.Optimizer:
    """Build the optimizer called ``name`` over ``params`` (tensors or param groups).

    ``options`` are the optimizer's keyword arguments, or the spec language's names for them
    (beta1/beta2/beta3 for ``betas``, adam_lr for Muon's ``adamw_lr``, inner_lr for DMGD's
    ``mlp_lr``); an unknown one raises TypeError from the constructor, an unknown name raises
    ValueError listing the known names.
    """
    key = name.strip().lower().replace("-", "_")
    try:
        factory = OPTIMIZERS[key]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(sorted(OPTIMIZERS))}") from None
    return factory(params, **_spec_options(key, options))


__all__ = [
    "DeepMomentum",
    "DeltaMomentum",
    "M3",
    "Muon",
    "OPTIMIZERS",
    "SGDMomentum",
    "build_optimizer",
    "newton_schulz",
]
