"""`nslang compile --check`: run each sublayer of a compiled model with the fast implementation
and with the token-by-token reference on the same random input, in float64, and report the
largest relative error per sublayer."""
from __future__ import annotations

import torch

from .layers import Continuum, implementation


def check_model(model: torch.nn.Module, tokens: int, seed: int = 0) -> list[dict]:
    """One row per distinct sublayer class: name, layer kind, tokens, max relative error."""
    model = model.double()
    torch.manual_seed(seed)
    rows, seen = [], set()
    for block in model.blocks:
        for name, layer in block.named_children():
            if name.endswith("_norm") or name in seen:
                continue
            seen.add(name)
            kind = type(layer).__mro__[1].__name__
            if isinstance(layer, Continuum):
                rows.append(dict(name=name, layer=kind, tokens=tokens, rel_error=None,
                                 note="reads only; its updates are the model loop (tested)"))
                continue
            x = torch.randn(2, tokens, model.cfg.dim, dtype=torch.float64)
            with torch.no_grad():
                fast, _ = layer(x)
                with implementation("reference"):
                    ref, _ = layer(x)
            err = ((fast - ref).abs().max() / ref.abs().max().clamp_min(1e-300)).item()
            rows.append(dict(name=name, layer=kind, tokens=tokens, rel_error=err, note=""))
    return rows
