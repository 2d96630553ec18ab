"""CMS chunk-boundary update (Eq. 71) as one fused Triton kernel, forward and backward.

Per in-context level and weight tensor, each segment does pending += lr * grad, and at the
level's boundary weights -= pending, pending = 0. Unfused that is 3-4 elementwise kernels per
tensor (mul, add, sub, zeros) that each read and write the whole [B, ...] tensor; here it is one:

    apply:      W' = W - (P + lr G),   P' = 0        (P' written by the same kernel)
    otherwise:  W' = W (untouched),    P' = P + lr G

Both cases are one linear map  out = [W] + s (P + lr G)  with s = -1 (apply) or +1, so the
backward is its transpose, (dW, dP, dG) = ([X], s X, s lr X), again one kernel, and the transpose
of that is the forward map: `_Update` and `_UpdateT` are each other's backward, so gradients of
any order (the outer gradient through create_graph, and double backward) stay in Triton.

W may be theta_0 broadcast over the batch (a stride-0 `expand`): the kernel reads it with its
batch stride instead of materialising B copies; autograd's expand sums dW back. The dispatch
(runtime/ops/cms/dispatch.py) picks this or the PyTorch ops.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_BLOCK = 2048  # elements per program: large enough to stream at bandwidth, 4 warps
# lr and s travel as fp32 kernel scalars (Triton's type for Python floats): exact for s, and for
# lr a relative 6e-8 rounding, below fp32 storage; fp64 tensors accumulate in fp64 (ACC).


@triton.jit
def _update_fwd(
    w, p, g, out, zero, lr, s, M, sw, sp, sg,
    HAS_W: tl.constexpr, ZERO: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """One block of one batch row: out = [w] + s (p + lr g) in ACC (fp32, fp64 for fp64 inputs);
    zero <- 0 when ZERO."""
    i_m, i_b = tl.program_id(0), tl.program_id(1).to(tl.int64)
    o = i_m * BLOCK + tl.arange(0, BLOCK)
    m = o < M
    x = tl.load(p + i_b * sp + o, mask=m, other=0.0).to(ACC)
    x += lr * tl.load(g + i_b * sg + o, mask=m, other=0.0).to(ACC)
    x = s * x
    if HAS_W:
        x += tl.load(w + i_b * sw + o, mask=m, other=0.0).to(ACC)
    tl.store(out + i_b * M + o, x.to(out.dtype.element_ty), mask=m)
    if ZERO:
        tl.store(zero + i_b * M + o, tl.zeros([BLOCK], dtype=zero.dtype.element_ty), mask=m)


@triton.jit
def _update_bwd(x, dp, dg, lr, s, n, ACC: tl.constexpr, BLOCK: tl.constexpr):
    """The transpose (P and G part): dp = s x, dg = s lr x."""
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = o < n
    b_x = s * tl.load(x + o, mask=m, other=0.0).to(ACC)
    tl.store(dp + o, b_x.to(dp.dtype.element_ty), mask=m)
    tl.store(dg + o, (lr * b_x).to(dg.dtype.element_ty), mask=m)


def _acc(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _rows(x: torch.Tensor, M: int) -> tuple[torch.Tensor, int]:
    """x [B, ...] and its batch stride, with each batch row contiguous (stride 0 allowed)."""
    if x[0].is_contiguous() and x.stride(0) in (0, M):
        return x, x.stride(0)
    return x.contiguous(), M


def _fwd(w, p, g, lr, s, zero_pending):
    B, M = p.shape[0], p[0].numel()
    p, sp = _rows(p, M)
    g, sg = _rows(g, M)
    has_w = w is not None
    w, sw = _rows(w, M) if has_w else (p, 0)  # p: a placeholder pointer, never read
    out = torch.empty(p.shape, device=p.device, dtype=p.dtype)
    zero = torch.empty_like(out) if zero_pending else out
    _update_fwd[(triton.cdiv(M, _BLOCK), B)](
        w, p, g, out, zero, float(lr), float(s), M, sw, sp, sg,
        HAS_W=has_w, ZERO=zero_pending, ACC=_acc(p.dtype), BLOCK=_BLOCK, num_warps=4,
    )  # fmt: skip
    return out, (zero if zero_pending else None)


class _Update(torch.autograd.Function):
    """out = [w] + s (p + lr g); with zero_pending also a fresh zero tensor (no gradient)."""

    @staticmethod
    def forward(ctx, w, p, g, lr, s, zero_pending):
        out, zero = _fwd(w, p, g, lr, s, zero_pending)
        ctx.lr, ctx.s, ctx.has_w = lr, s, w is not None
        if zero is not None:
            ctx.mark_non_differentiable(zero)
        return out, zero

    @staticmethod
    def backward(ctx, dout, _dzero):
        dp, dg = _UpdateT.apply(dout, ctx.lr, ctx.s)
        return (dout if ctx.has_w else None), dp, dg, None, None, None


class _UpdateT(torch.autograd.Function):
    """The transpose of `_Update` without w: x -> (s x, s lr x)."""

    @staticmethod
    def forward(ctx, x, lr, s):
        x = x.contiguous()
        dp, dg = torch.empty_like(x), torch.empty_like(x)
        n = x.numel()
        _update_bwd[(triton.cdiv(n, _BLOCK),)](
            x, dp, dg, float(lr), float(s), n, ACC=_acc(x.dtype), BLOCK=_BLOCK
        )
        ctx.lr, ctx.s = lr, s
        return dp, dg

    @staticmethod
    def backward(ctx, ddp, ddg):
        ddp = torch.zeros_like(ddg) if ddp is None else ddp
        ddg = torch.zeros_like(ddp) if ddg is None else ddg
        out, _ = _Update.apply(None, ddp, ddg, ctx.lr, ctx.s, False)
        return out, None, None


def cms_update_kernel(
    w: torch.Tensor, p: torch.Tensor, g: torch.Tensor, lr: float, apply: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """One level tensor's segment update, fused: (W', P') (see the module docstring).

    w: weights [B, ...] (may be a batch-broadcast expand); p: pending; g: gradient, both [B, ...]
    of w's shape. Differentiable in w, p, g to any order. Without `apply`, W' is w itself.
    """
    if apply:
        w_new, p_new = _Update.apply(w, p, g, lr, -1.0, True)
        return w_new, p_new
    p_new, _ = _Update.apply(None, p, g, lr, 1.0, False)
    return w, p_new


__all__ = ["cms_update_kernel"]
