"""What each construct accepts: option names, their types, defaults and the paper equations.

One table drives validation (lower.py), the language reference (docs/language.md quotes it) and
error hints, so the three cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Opt:
    """One option: `kind` is int | float | bool | enum | names | gate | call."""

    kind: str
    default: object = None
    choices: tuple[str, ...] = ()      # enum words, or call names for kind="call"
    doc: str = ""
    low: float | None = None           # inclusive bounds for numbers
    high: float | None = None
    high_open: bool = False            # True: value must be < high


# Calls accepted as values, with their keyword/positional parameters and defaults.
CALLS: dict[str, dict[str, object]] = {
    # shapes (DESIGN: memories and shapes)
    "attention": {"window": 0},                       # 0 = global
    "matrix": {},
    "vector": {},
    "mlp": {"hidden": 4.0, "act": "silu"},
    "residual_mlp": {"hidden": 4.0, "act": "silu"},
    "swiglu": {"hidden": 8.0 / 3.0},
    # objectives
    "l2": {}, "dot": {}, "task": {}, "lp": {"p": 3.0}, "huber": {"delta": 1.0},
    # rules
    "none": {}, "hebbian": {}, "delta": {}, "gd": {}, "dgd": {"step": "exact"},
    "ggd": {"window": 4}, "omega": {"window": 4},
    # outputs
    "newton_schulz": {"steps": 5},
    # variants
    "sequential": {}, "independent": {"agg": "weighted_sum"}, "nested": {},
}

SHAPES = ("attention", "matrix", "vector", "mlp", "residual_mlp", "swiglu")
OBJECTIVES = ("l2", "dot", "task", "lp", "huber")
RULES = ("none", "hebbian", "delta", "gd", "dgd", "ggd", "omega")
NONPARAMETRIC = ("attention",)
DEEP = ("mlp", "residual_mlp", "swiglu")

MODEL_SETTINGS: dict[str, Opt] = {
    "vocab": Opt("int", 257, low=2, doc="vocabulary size (257 = bytes + end-of-document)"),
    "dim": Opt("int", 256, low=1, doc="model width"),
    "heads": Opt("int", 4, low=1, doc="heads of every per-head memory"),
    "depth": Opt("int", 4, low=1, doc="number of blocks; each block runs the flows once"),
    "context": Opt("int", 512, low=1, doc="training context in tokens"),
    "norm": Opt("enum", "rmsnorm", ("rmsnorm", "layernorm"), "pre-norm of every sublayer"),
    "position": Opt("enum", "rope", ("rope", "none"), "positions for attention memories"),
    "tie_embeddings": Opt("bool", True, doc="share input embedding and output head"),
    "writes": Opt("enum", "differentiable", ("differentiable", "detached"),
                  "default for every memory: gradients flow through memory writes (the "
                  "meta-learning of Sec. 3.3) unless `detached`"),
}

_GATE = "a number, `data` (a learned projection of the input) or `generated` (a generate transfer)"

MEMORY_OPTIONS: dict[str, Opt] = {
    "shape": Opt("call", "matrix", SHAPES, "attention(window), matrix, vector, mlp(hidden), "
                 "residual_mlp(hidden) = x + W1 s(W2 x) (Eq. 89), swiglu(hidden)"),
    "heads": Opt("enum", "per_head", ("per_head", "shared"), "one memory per head, or one shared"),
    "objective": Opt("call", "l2", OBJECTIVES, "inner objective: l2 ||M(k)-v||^2, dot -<M(k),v> "
                     "(Eq. 14-18), task (next-token loss, Eq. 71), lp(p), huber(delta)"),
    "rule": Opt("call", "gd", RULES, "hebbian (Eq. 16), delta, gd (Eq. 2), dgd (Eq. 57), "
                "ggd(window) (Eq. 58-60), omega(window) (Atlas), none (non-parametric)"),
    "momentum": Opt("gate", 0.0, doc="inner momentum S_t = m S_{t-1} - lr grad (Titans); " + _GATE,
                    low=0.0, high=1.0, high_open=True),
    "lr": Opt("gate", "data", doc="inner learning rate eta_t; " + _GATE, low=0.0),
    "retain": Opt("gate", 1.0, doc="retention alpha_t (1 = keep everything); " + _GATE,
                  low=0.0, high=1.0),
    "keys": Opt("enum", "project", ("project", "generated"), "k_t = x W_k, or from a generator"),
    "values": Opt("enum", "project", ("project", "generated", "self"),
                  "v_t = x W_v, from a generator, or self-generated v-hat = M(v) (Eq. 84)"),
    "queries": Opt("enum", "project", ("project", "generated"),
                   "q_t = x W_q (Eq. 83 text: q is not adaptive), or generated (Eq. 88 set)"),
    "output": Opt("call", "none", ("none", "newton_schulz"), "post-process the read"),
    "chunk": Opt("int", None, low=1, doc="tokens per chunk-parallel update (default: the level's "
                 "period, 1 for `token` levels)"),
    "conv": Opt("int", 0, low=0, doc="local depthwise convolution window on q, k, v (Hope: 4)"),
    "qk_norm": Opt("bool", True, doc="L2-normalise q and k (Hope, Sec. 8.3)"),
    "dim": Opt("int", None, low=1, doc="width of this memory (default: the model width)"),
    "writes": Opt("enum", None, ("differentiable", "detached"), "override of the model default"),
    "read": Opt("enum", "current", ("current", "previous", "chunk_start"),
                "read with the state after the token's write (y_t = M_t q_t), before it "
                "(y_t = M_{t-1} q_t, Eq. 83), or with the chunk-start state"),
    "decay_on": Opt("enum", "input", ("input", "all"), "where (alpha I - eta k k^T) of Eq. 88 acts "
                    "on an MLP memory: the input-side matrix W2 (default) or every matrix"),
    "lr_gate": Opt("enum", "softplus", ("softplus", "sigmoid"), "output map of a generated lr"),
    "lr_max": Opt("float", 0.0, low=0.0,
                  doc="cap of a `data` lr of an MLP memory: eta_t = lr_max * sigmoid(.), starting at "
                  "lr_max / 2 (titans-pytorch's max_lr); 0: uncapped (softplus)"),
    "retain_init": Opt("float", 0.0, low=0.0, high=1.0, high_open=True,
                       doc="where a self-modifying group's generated retention alpha starts (its "
                       "sigmoid's offset is logit(retain_init)); 0: the layer's default, 0.9933"),
    "retain_gate": Opt("enum", "sigmoid", ("sigmoid", "exp"),
                        "map of a data-dependent or generated retention: sigmoid(z), or "
                        "exp(-softplus(z)) (Gated DeltaNet's decay)"),
}

CMS_OPTIONS: dict[str, Opt] = {
    "variant": Opt("call", "sequential", ("sequential", "independent", "nested"),
                   "sequential (Eq. 70, 73), independent(agg) (Eq. 74), nested (Eq. 72)"),
    "levels": Opt("names", None, doc="the CMS levels, fastest first; one MLP per level"),
    "shape": Opt("call", "residual_mlp", DEEP, "the MLP of each level"),
    "objective": Opt("call", "task", OBJECTIVES, "what each level's update minimises (Eq. 71: "
                     "the task loss)"),
    "rule": Opt("call", "gd", ("gd", "dgd"), "the update at a chunk boundary (Eq. 71)"),
    "lr": Opt("float", 1e-3, low=0.0, doc="eta^(l) of Eq. 71"),
    "momentum": Opt("float", 0.0, low=0.0, high=1.0, high_open=True),
    "level_norm": Opt("enum", "none", ("none", "rms"),
                      "input of each level after the first (sequential, nested): rms divides it by "
                      "its root mean square, without a gain (the level's weights carry the scale), "
                      "so a chain of SwiGLU levels stays bounded; none: Eq. 70 as written"),
    "signal": Opt("enum", "exact", ("exact", "two_pass", "local"),
                  "error signal inside the context: exact (backward through the rest of the "
                  "network per chunk), two_pass (first-pass signal; approximate), local"),
    "writes": Opt("enum", None, ("differentiable", "detached"),
                  "override of the model default: `detached` learns theta_0 through the reads "
                  "only (first-order; no second-order graph: far less memory)"),
}

OPTIMIZERS: dict[str, dict[str, Opt]] = {
    "sgd": {"lr": Opt("float", 0.1, low=0.0), "momentum": Opt("float", 0.9, low=0.0, high=1.0),
            "nesterov": Opt("bool", False), "weight_decay": Opt("float", 0.0, low=0.0)},
    "adamw": {"lr": Opt("float", 3e-4, low=0.0), "beta1": Opt("float", 0.9, low=0.0, high=1.0),
              "beta2": Opt("float", 0.95, low=0.0, high=1.0), "eps": Opt("float", 1e-8, low=0.0),
              "weight_decay": Opt("float", 0.1, low=0.0)},
    "muon": {"lr": Opt("float", 0.02, low=0.0), "momentum": Opt("float", 0.95, low=0.0, high=1.0),
             "nesterov": Opt("bool", True), "ns_steps": Opt("int", 5, low=1),
             "weight_decay": Opt("float", 0.0, low=0.0), "adam_lr": Opt("float", 3e-4, low=0.0)},
    "m3": {"lr": Opt("float", 0.02, low=0.0), "beta1": Opt("float", 0.95, low=0.0, high=1.0),
           "beta2": Opt("float", 0.999, low=0.0, high=1.0),
           "beta3": Opt("float", 0.95, low=0.0, high=1.0), "alpha": Opt("float", 0.5, low=0.0),
           "eps": Opt("float", 1e-8, low=0.0), "slow_every": Opt("int", 64, low=1),
           "ns_steps": Opt("int", 5, low=1),
           "accumulate": Opt("enum", "ema", ("ema", "sum"), "Alg. 1 prints sums; EMA default"),
           "bias_correction": Opt("bool", True), "weight_decay": Opt("float", 0.0, low=0.0),
           "rms_normalize": Opt("bool", True, doc="Alg. 1 divides by sqrt(V) with no RMS "
                                "normalisation; true rescales the update to a fixed RMS")},
    "delta_momentum": {"lr": Opt("float", 0.01, low=0.0), "alpha": Opt("float", 0.9, low=0.0),
                       "normalize": Opt("bool", True, doc="normalise g in the g g^T term"),
                       "mode": Opt("enum", "row", ("row", "flatten"), "what g is for a matrix "
                                   "parameter in Eq. 49: each row, or the flattened matrix"),
                       "erase": Opt("float", 1.0, low=0.0, doc="strength of the g g^T term "
                                    "(1 = Eq. 49, 0 = plain momentum)")},
    "deep_momentum": {"lr": Opt("float", 0.01, low=0.0), "hidden": Opt("int", 16, low=1),
                      "alpha": Opt("float", 0.9, low=0.0, high=1.0, doc="decay of the memory "
                                   "(Eq. 50)"),
                      "objective": Opt("enum", "dot", ("dot", "ones", "l2"), "the inner L^(2) "
                                       "of Eq. 50: <m(u), u>, the printed <m(u), 1>, or "
                                       "||m(u) + u||^2"),
                      "inner_lr": Opt("float", 0.01, low=0.0),
                      "output": Opt("call", "none", ("none", "newton_schulz"))},
}

TRANSFERS: dict[str, tuple[str, ...]] = {
    "condition": ("parametric", "nonparametric"),
    "backprop": (),
    "init": (),
    "generate": ("keys", "values", "queries", "lr", "retain", "momentum", "weights", "context"),
}

LEVEL_KINDS = ("every", "token", "sequence", "step", "frozen")
