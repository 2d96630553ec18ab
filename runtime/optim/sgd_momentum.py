"""SGD with momentum, read as an associative memory over gradients (Nested Learning Eq. 10-13).

The paper writes momentum as a two-level system:

    W_{t+1} = W_t + m_{t+1},
    m_{t+1} = argmin_m  <m, grad L(W_t)> + ||m - alpha m_t||^2 / (2 eta)
            = alpha m_t - eta grad L(W_t),

i.e. the momentum m is a memory that compresses the stream of gradients (keys) with a
dot-product objective, and the weights are the outer level that reads it.

torch.optim.SGD keeps the memory without the learning rate inside it,

    b_{t+1} = mu b_t + g_t,        W_{t+1} = W_t - lr_t b_{t+1},

which is *exactly* the paper's rule with m_t = -lr b_t, alpha = mu, eta = lr, as long as the
learning rate is constant (and dampening = 0). So the default form ("torch") reuses torch's step
unchanged. The two differ only when the learning rate changes over time: torch applies today's
lr to the whole memory (a schedule rescales past gradients too), while the paper's memory stores
eta_t g_t when it is written (a schedule only affects new writes). ``form="paper"`` gives the
latter; its state is the memory m itself (key ``"memory"``), so W <- W + m is literal.
"""

from __future__ import annotations

import torch

FORMS = ("torch", "paper")


class SGDMomentum(torch.optim.SGD):
    """SGD with momentum (Eq. 10-13); ``form="torch"`` is torch.optim.SGD's own step.

    Args:
        params: parameters or param groups.
        lr: eta.
        momentum: alpha, the memory's decay (0.9 by default; 0 gives plain SGD).
        dampening, nesterov, weight_decay, maximize: as in torch.optim.SGD (form "torch"). In
            form "paper", weight decay is added to the gradient (as torch does), dampening scales
            the write (m <- alpha m - eta (1 - dampening) g) and nesterov reads
            W <- W + alpha m_{t+1} - eta g.
        form: "torch" (default; reuses torch's step: lr applied at read time) or "paper"
            (lr applied at write time, the memory m is stored as is). Identical for constant lr.

    ``foreach`` and ``fused`` are fixed to False so that state_dict() holds no None values and the
    step is the simple per-tensor loop (the optimisers here favour readability; fused kernels are
    a later concern).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.9,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        form: str = "torch",
    ):
        if form not in FORMS:
            raise ValueError(f"unknown form {form!r}; expected one of {FORMS}")
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            foreach=False,
            fused=False,
        )
        # torch's __init__ has already built the groups from its own defaults; add ours so that
        # later add_param_group() calls inherit it too.
        self.defaults["form"] = form
        for group in self.param_groups:
            group.setdefault("form", form)

    @torch.no_grad()
    def step(self, closure=None):
        # Groups in torch form use torch's step untouched. To keep that exact, run torch's step
        # with the paper-form groups hidden, then do the paper-form groups ourselves.
        paper_groups = [g for g in self.param_groups if g["form"] == "paper"]
        if not paper_groups:
            return super().step(closure)

        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        torch_groups = [g for g in self.param_groups if g["form"] != "paper"]
        if torch_groups:
            all_groups = self.param_groups
            self.param_groups = torch_groups
            try:
                super().step()
            finally:
                self.param_groups = all_groups

        for group in paper_groups:
            lr, alpha = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("SGDMomentum does not support sparse gradients")
                g = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"] != 0:
                    g = g + group["weight_decay"] * p
                state = self.state[p]
                if "memory" not in state:
                    # First write: m_1 = -eta g (alpha * 0 + write), no dampening on the first
                    # write, matching torch's buffer initialisation.
                    state["memory"] = -lr * g.clone()
                else:
                    m = state["memory"]
                    m.mul_(alpha).add_(g, alpha=-lr * (1.0 - group["dampening"]))
                m = state["memory"]
                if group["nesterov"]:
                    p.add_(m, alpha=alpha).add_(g, alpha=-lr)
                else:
                    p.add_(m)
        return loss
