"""Runtime layers the generated models are built from: one class per planned layer kind.

Each layer maps x [B, T, D] (and an optional carried state) to (y [B, T, D], new state). The
learning rules themselves live in runtime/ops (tested against their token-by-token definitions);
these classes add the projections, gates and norms around them. Fast state is per sequence:
nothing here forces batch size 1.
"""
from .attention import Attention
from .common import CausalConv, RMSNorm, implementation, make_norm, rotary
from .continuum import Continuum
from .fast import DeepMemory, LinearMemory
from .feedforward import FeedForward
from .selfmod import SelfModifying

__all__ = ["Attention", "CausalConv", "Continuum", "DeepMemory", "FeedForward", "LinearMemory",
           "RMSNorm", "SelfModifying", "implementation", "make_norm", "rotary"]
