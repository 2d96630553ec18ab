"""The IR: what the user wrote, names resolved, defaults filled, a span on every node.

Frozen pydantic models, so a checked IR cannot be edited behind the checker's back and dumps
(`nslang check --dump ir`) are plain JSON.
"""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict

from .source import Span


class Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    span: Span


class Shape(Node):
    kind: Literal["attention", "matrix", "vector", "mlp", "residual_mlp", "swiglu"]
    hidden: Optional[float] = None     # hidden width as a multiple of the memory width
    window: Optional[int] = None       # attention: 0 = global
    act: Optional[str] = None


class Rule(Node):
    kind: Literal["none", "hebbian", "delta", "gd", "dgd", "ggd", "omega"]
    step: Optional[Literal["exact", "paper"]] = None   # dgd: eta' = eta/(1+eta|k|^2) or eta/(1+eta)
    window: Optional[int] = None                       # ggd, omega


class Objective(Node):
    kind: Literal["l2", "dot", "task", "lp", "huber"]
    p: Optional[float] = None
    delta: Optional[float] = None


class Gate(Node):
    """A learning rate, retention or momentum: a constant, data-dependent, or generated."""

    mode: Literal["const", "data", "generated"]
    value: Optional[float] = None


class Output(Node):
    kind: Literal["none", "newton_schulz"]
    steps: Optional[int] = None


class Level(Node):
    name: str
    kind: Literal["every", "token", "sequence", "step", "frozen"]
    period: Optional[int] = None   # tokens, for `every` (1 for `token`)


class Memory(Node):
    name: str
    level: str
    shape: Shape
    heads: Literal["per_head", "shared"]
    objective: Objective
    rule: Rule
    momentum: Gate
    lr: Gate
    retain: Gate
    keys: Literal["project", "generated"]
    values: Literal["project", "generated", "self"]
    queries: Literal["project", "generated"]
    output: Output
    chunk: int
    conv: int
    qk_norm: bool
    dim: int
    writes: Literal["differentiable", "detached"]
    read: Literal["current", "previous", "chunk_start"]
    decay_on: Literal["input", "all"]
    lr_gate: Literal["softplus", "sigmoid"]
    retain_gate: Literal["sigmoid", "exp"]
    lr_max: float = 0.0
    retain_init: float = 0.0
    option_spans: dict[str, Span] = {}


class Cms(Node):
    name: str
    variant: Literal["sequential", "independent", "nested"]
    agg: Optional[str] = None
    levels: tuple[str, ...]
    level_spans: tuple[Span, ...]
    shape: Shape
    objective: Objective
    rule: Rule
    lr: float
    momentum: float
    level_norm: Literal["none", "rms"] = "none"
    signal: Literal["exact", "two_pass", "local"]
    writes: Literal["differentiable", "detached"]
    option_spans: dict[str, Span] = {}


class Flow(Node):
    path: tuple[str, ...]
    spans: tuple[Span, ...]


class Transfer(Node):
    source: str
    target: str
    kind: Literal["condition", "backprop", "init", "generate"]
    arg: Optional[str] = None
    source_span: Span
    target_span: Span


class Optimizer(Node):
    name: str
    kind: Literal["sgd", "adamw", "muon", "m3", "delta_momentum", "deep_momentum"]
    level: Optional[str] = None
    options: dict[str, Union[bool, int, float, str]]


class Settings(Node):
    vocab: int
    dim: int
    heads: int
    depth: int
    context: int
    norm: str
    position: str
    tie_embeddings: bool
    writes: Literal["differentiable", "detached"]
    option_spans: dict[str, Span] = {}


class Model(Node):
    name: str
    extends: tuple[str, ...]          # the chain of files this model inherits from, nearest first
    settings: Settings
    levels: tuple[Level, ...]
    memories: tuple[Memory, ...]
    cms: tuple[Cms, ...]
    flows: tuple[Flow, ...]
    transfers: tuple[Transfer, ...]
    optimizer: Optional[Optimizer] = None

    def level(self, name: str) -> Level | None:
        return next((lv for lv in self.levels if lv.name == name), None)

    def member(self, name: str) -> Memory | Cms | None:
        return next((m for m in (*self.memories, *self.cms) if m.name == name), None)


class SweepAxis(Node):
    path: str
    values: tuple[Union[bool, int, float, str, tuple], ...]


class Sweep(Node):
    name: str
    axes: tuple[SweepAxis, ...]


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    file: str
    models: tuple[Model, ...]
    optimizers: tuple[Optimizer, ...]
    sweeps: tuple[Sweep, ...]
    consts: dict[str, Union[bool, int, float, str]]
