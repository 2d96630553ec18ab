"""In-context memories: matrix memories written by linear rules, and MLP memories trained by
mini-batch GD with momentum and retention (Titans). Fast state is per sequence."""
from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.dgd import dgd_step_size
from ..ops.gated_delta import chunk_gated_delta, naive_gated_delta
from ..ops.gated_delta.dispatch import gated_delta as dispatch_gated_delta
from ..ops.hebbian import chunk_hebbian, naive_hebbian
from ..ops.hebbian.dispatch import hebbian as dispatch_hebbian
from ..ops.omega import chunk_omega, naive_omega
from ..ops.ttt_linear import chunk_ttt_linear, naive_ttt_linear
from ..ops.titans import chunk_titans, naive_titans
from ..ops.titans.dispatch import titans as dispatch_titans
from .common import CausalConv, _heads, op

hebbian = op(chunk_hebbian, naive_hebbian,
             auto=partial(dispatch_hebbian, impl="auto"),
             kernel=partial(dispatch_hebbian, impl="kernel"))
gated_delta = op(chunk_gated_delta, naive_gated_delta,
                 auto=partial(dispatch_gated_delta, impl="auto"),
                 kernel=partial(dispatch_gated_delta, impl="kernel"))
titans = op(chunk_titans, naive_titans, chunk_is_semantic=True,
            auto=partial(dispatch_titans, impl="auto"),
            kernel=partial(dispatch_titans, impl="kernel"))
omega = op(chunk_omega, naive_omega)
ttt_linear = op(chunk_ttt_linear, naive_ttt_linear, chunk_is_semantic=True)  # mini_batch_size


class _Gates(nn.Module):
    """Per-head scalar gates (learning rate, retention, momentum): constant, or data-dependent
    (a learned projection of the input through softplus / sigmoid)."""

    def __init__(self, dim: int, heads: int, specs: dict[str, dict], bias: dict | None = None):
        super().__init__()
        self.heads, self.specs = heads, specs
        self.proj = nn.ModuleDict({name: nn.Linear(dim, heads) for name, g in specs.items()
                                   if g["mode"] == "data"})
        with torch.no_grad():  # start data-dependent gates where the rule is stable
            for name, b in (bias or {}).items():
                if name in self.proj:
                    self.proj[name].bias.fill_(b)

    def forward(self, x, name: str, squash) -> torch.Tensor | None:
        g = self.specs[name]
        if g["mode"] == "data":
            return squash(self.proj[name](x))  # [B, T, H]
        if g["value"] is None:
            return None
        return x.new_full((*x.shape[:2], self.heads), g["value"])


class _FastMemory(nn.Module):
    """Projections, optional short convolution and L2-normalised q/k shared by fast memories."""

    # The generated class sets the Triton kernel codegen chose (nslang/kernels.py); "auto" lets
    # the dispatch decide (layers built by hand).
    kernel = "auto"

    def __init__(self, dim, heads, conv, qk_norm, lr, retain, momentum, gate_bias=None):
        super().__init__()
        self.heads, self.qk_norm = heads, qk_norm
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        self.conv = CausalConv(3 * dim, conv) if conv else None
        self.gates = _Gates(dim, heads, {"lr": lr, "retain": retain, "momentum": momentum},
                            gate_bias)

    def project(self, x, tail):
        """q, k, v [B, T, H, Dh] and the conv tail to carry: the last (window - 1) projected
        inputs, so a sequence split into segments sees the same causal convolution."""
        h = self.qkv(x)  # [B, T, 3D]
        if self.conv is not None:
            h, tail = self.conv(h, tail)
        q, k, v = (_heads(t, self.heads) for t in h.chunk(3, dim=-1))
        if self.qk_norm:
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        return q, k, v, tail


def _exp_decay(z):
    return torch.exp(-F.softplus(z))


class LinearMemory(_FastMemory):
    """A matrix memory M [B, H, Dv, Dk] written by a linear rule, read as y = M q."""

    def __init__(self, dim, heads, rule, objective, chunk, lr, retain, momentum, conv, qk_norm,
                 learn_init, detach_writes, step, retain_gate, lr_gate, window, minibatch):
        super().__init__(dim, heads, conv, qk_norm, lr, retain, momentum)
        self.rule, self.chunk, self.step, self.detach_writes = rule, chunk, step, detach_writes
        self.window, self.minibatch = window, minibatch
        self.lr_map = torch.sigmoid if lr_gate == "sigmoid" else F.softplus
        # exp(-softplus(z)) is Gated DeltaNet's decay; sigmoid(z) the plain gate
        self.retain_map = torch.sigmoid if retain_gate == "sigmoid" else _exp_decay
        dh = dim // heads
        self.init = nn.Parameter(torch.zeros(heads, dh, dh)) if learn_init else None

    def forward(self, x, state=None):
        state, tail = state if state is not None else (None, None)
        q, k, v, tail = self.project(x, tail)
        if self.detach_writes:  # stop gradients at the write: an explicit option, not the default
            k, v = k.detach(), v.detach()
        B = x.shape[0]
        if state is None and self.init is not None:
            state = self.init.expand(B, *self.init.shape)
        lr = self.gates(x, "lr", self.lr_map)
        retain = self.gates(x, "retain", self.retain_map)
        if self.rule == "hebbian":
            if lr is not None:
                v = v * lr[..., None]
            o, state = hebbian(q, k, v, retain, initial_state=state, chunk_size=self.chunk,
                               kernel_choice=self.kernel)
        elif self.rule == "gd" and self.minibatch > 1:
            # TTT-linear: gradients of ||M k - v||^2 at the start of each mini-batch
            o, state = ttt_linear(q, k, v, lr, mini_batch_size=self.minibatch, initial_state=state)
        elif self.rule in ("delta", "gd"):
            # per token, gd on ||M k - v||^2 is the delta rule with b = 2 eta
            b = 2 * lr if self.rule == "gd" else lr
            o, state = gated_delta(q, k, v, b, retain, initial_state=state, chunk_size=self.chunk,
                                   kernel_choice=self.kernel)
        elif self.rule == "omega":
            o, state = omega(q, k, v, lr, retain, window=self.window, initial_state=state,
                             chunk_size=self.chunk)
        elif self.rule == "dgd":
            # Eq. 57 is the gated delta rule with write strength eta' (runtime/ops/dgd)
            b = dgd_step_size(lr, k, self.step)
            o, state = gated_delta(q, k, v, b, retain, initial_state=state, chunk_size=self.chunk,
                                   kernel_choice=self.kernel)
        else:
            raise NotImplementedError(f"rule {self.rule} in a model")  # the planner rejects it
        return self.out(o.flatten(-2)), (state, tail)


class DeepMemory(_FastMemory):
    """An MLP memory trained in context by mini-batch GD with momentum and retention (Titans)."""

    def __init__(self, dim, heads, rule, objective, chunk, lr, retain, momentum, conv, qk_norm,
                 learn_init, detach_writes, kind, hidden, act, read, lr_max=0.0):
        # GD on an MLP memory diverges at init with lr ~ softplus(0) = 0.7 and half retention:
        # start at lr ~ 0.01, momentum ~ 0.9, retention ~ 0.99 (Titans' regime). With lr_max the
        # lr is lr_max * sigmoid(z) and starts at half of it.
        super().__init__(dim, heads, conv, qk_norm, lr, retain, momentum,
                         gate_bias={"lr": 0.0 if lr_max else -4.6, "momentum": 2.2, "retain": 4.6})
        # Why a cap: every gradient of a chunk is taken at its start, so the largest stable step
        # shrinks about as 1 / chunk, and an uncapped lr gate learns its way past it (Titans on
        # MQAR diverged at step 7 from lr 0.01, at step 35 from 0.001; bench/RESULTS.md)
        self.lr_max = lr_max
        self.chunk, self.kind, self.act, self.read = chunk, kind, act, read
        self.detach_writes = detach_writes
        dh = dim // heads
        w1 = torch.randn(heads, dh, hidden) / math.sqrt(hidden)
        w2 = torch.randn(heads, hidden, dh) / math.sqrt(dh)
        # Without an init transfer the initial state is fixed (a buffer), not meta-learned.
        if learn_init:
            self.W1, self.W2 = nn.Parameter(w1), nn.Parameter(w2)
        else:
            self.register_buffer("W1", w1)
            self.register_buffer("W2", w2)

    def _capped_lr(self, z):
        return self.lr_max * torch.sigmoid(z)

    def forward(self, x, state=None):
        state, tail = state if state is not None else (None, None)
        q, k, v, tail = self.project(x, tail)
        if self.detach_writes:
            k, v = k.detach(), v.detach()
        theta = self.gates(x, "lr", self._capped_lr if self.lr_max else F.softplus)
        momentum = self.gates(x, "momentum", torch.sigmoid)
        retain = self.gates(x, "retain", torch.sigmoid)
        alpha = 1 - retain  # Titans writes the forgetting rate, M_t = (1 - alpha) M + S
        if momentum is not None:
            # The steps of S_t = m S_{t-1} - theta grad add up to theta / (1 - m): with a data-
            # dependent m near 1 that diverges. Scaling theta by (1 - m) keeps the long-run step
            # at theta (ours; the same choice as the self-modifying layer).
            theta = theta * (1 - momentum)
        o, state = titans(q, k, v, momentum, theta, alpha, self.W1, self.W2,
                                chunk_size=self.chunk, memory=self.kind, activation=self.act,
                                read=self.read, initial_state=state, kernel_choice=self.kernel)
        return self.out(o.flatten(-2)), (state, tail)
