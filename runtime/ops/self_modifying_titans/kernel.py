"""Self-modifying Titans: fused Triton kernels, forward and backward, every chunk of a sequence in
one launch each.

Same contract as ``chunk_self_modifying_titans`` (chunk.py), values and gradients (of x, W_q and
every memory's init weights or whole initial state).

The kernels live in kernel_forward.py (with the per-chunk pieces both share) and
kernel_backward.py; this module launches them through an autograd Function, pads widths, says
which calls they take (`why_not`) and holds the derivation below.

Why. The chunk form is exact but launch-bound: one 16-token chunk of one block issues ~400
operators in the forward and ~2,600 with the backward, so a 2,048-token step through 12 blocks is
millions of launches (bench/RESULTS.md, "125M Hope's operator count"). Here one program per
(batch, head) runs all chunks in order, and a chunk is a few dozen small matrix products on tiles
held on chip.

Forward, per chunk (state xi at its start, every memory stacked; the notation of chunk.py, with
token-indexed coefficient matrices [C, C] whose rows are "the state before token i" (prev) or
"after it" (cur)):

1. Generation from xi (`_chunk_inputs`): y_g = s(X W2_g^T) W1_g^T (+ X) for every generator g,
   over hidden tiles; K, V, Q normalised as the options say; eta = eta_scale * map(mean y_eta +
   eta_bias), alpha = map(mean y_alpha + alpha_bias).
2. Coefficients (`_coefficients`; no division: products of the gates along masked loops, so
   alpha = 0 is exact): Tcur[i, j] = prod_{l=j+1..i} alpha_l (j <= i), bcur[i] = prod_{l<=i}
   alpha_l, Tprev, bprev the same one token earlier; with momentum m: Mcur, m0cur likewise,
   e = T m0, Dg = (T Mcur) diag(eta); without: e = 0, Dg = T diag(eta). E = T diag(eta) weighs
   the DGD writes. The chunk end is row L-1 of the cur matrices (L = the chunk's real tokens, so
   the padding of a last, shorter chunk writes nothing: its columns are past the end row).
3. Per memory, pass 1 over hidden tiles: dY/2 = W1 (s(W2 k) - s(W2 v)) (+ k - v).
   Pass 2, tile by tile: dZ/2 = (dY/2 W1) s'(W2 k); u = (I + Eprev * KK^T)^-1 r with
   r = -2 (Dgprev * KK^T) dZ/2 + bprev W2 k + eprev S2 k (the unit-lower-triangular system of
   chunk.py, its inverse built once per chunk by forward substitution); M_mem's read (previous
   or current: z = -2 (Dg * QK^T) dZ/2 + b W2 q + e S2 q - (E * QK^T) u, h = s(z),
   y = -2 (Dg * h A^T) dY/2 + b W1 h + e S1 h + q); and the tile's chunk-end state:
       W1' = bC W1 + eC S1 - 2 dY/2^T (DgC . A)      S1' = mC S1 - 2 dY/2^T (MC . A)
       W2' = bC W2 + eC S2 - (2 DgC . dZ/2 + EC . u)^T K     S2' = mC S2 - 2 (MC . dZ/2)^T K
   written to the next state slot (the forward keeps every chunk's start when a gradient is due).

Backward (`_smt_bwd`), the chunks in reverse from the stored chunk-start states, each the
reverse of the lines above. Per chunk: steps 1 and 2 again; per memory, pass 0 recomputes dY/2,
pass A (tile by tile) takes every term that does not need dY/2's own adjoint (the read, the
chunk-end state, the u system, dZ/2 = (dY/2 W1) s'), accumulating that adjoint and parking the
tile's partial dA, dZ of the keys in a scratch buffer; pass B adds the terms through
dY/2 = (s(Zk) - s(Zv)) W1^T. Every memory adds into the shared adjoints of K, V, Q and of the
coefficient matrices; those go back through step 2 into eta and alpha (the product rule over the
masked products, as d/d log alpha, whose factor for a sigmoid gate is 1 - alpha: no division),
and through step 1 into X, W_q and the generators' chunk-start weights. The state's gradient is
carried between chunks in two slots. (u = L^-1 r gives dr = L^-T du and dL = -dr u^T.)

The state lives in global memory (fp32, stacked [slots, memories, B * H, ...], the gates'
one-row W1 zero-padded to D rows as chunk.py's `_stack_state` does; head and hidden widths that
are not powers of two zero-padded to one, which is exact: see the wrapper); a chunk reads and
writes it
a few times per pass, which stays in L2 at the stock shape (5 memories at D = 64, hidden 128:
0.5 MB per head). Memory: the forward keeps N + 1 chunk-start states for the backward, 4 NM
B H (T/C + 1) D hid fp32 (1 GB per block at B = 1, H = 12, T = 2,048, D = 64, hid 128). Products
accumulate in fp32 with tf32 operands on CUDA and exact fp32 in the interpreter; the coefficient
and key products (KK^T, QK^T, T M) are always full fp32. Parallelism is one program per (batch,
head).
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

from .kernel_backward import _smt_bwd
from .kernel_forward import _smt_fwd
from .naive import check_options, initial_self_mod_state, is_residual, memory_names, momentum_gate

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
GATE_MAPS = {"softplus": 0, "sigmoid": 1}
READS = {"previous": 0, "current": 1, "chunk_start": 2}
ACTS = {"silu": 0, "gelu": 1}


class _SelfModifyingFn(torch.autograd.Function):
    """xs [B * H, T, D], wq [H, D, D] (or a placeholder), the stacked state W1, W2, S1, S2
    [NM, B * H, ...] (fp32), mom [B * H, T] or None -> o [B * H, T, D] and the final state."""

    @staticmethod
    def forward(ctx, xs, wq, W1, W2, S1, S2, mom, cfg):
        BH, T, D = xs.shape
        N = -(-T // cfg["C"])
        grad = any(ctx.needs_input_grad[:6])
        NS = N + 1 if grad else 2  # every chunk-start state for the backward, else the latest
        bufs = []
        for t in (W1, W2, S1, S2):
            b = t.new_empty(NS, *t.shape)
            b[0] = t
            bufs.append(b)
        o = torch.empty_like(xs)
        args = _launch_args(cfg)
        if T:
            _smt_fwd[(BH,)](xs, wq, *bufs, xs if mom is None else mom, o, T, N, NS, BH,
                            cfg["H"], *cfg["scalars"], **args)
        last = N % NS if T else 0
        final = tuple(b[last].clone() for b in bufs)
        if grad:
            ctx.save_for_backward(xs, wq, *bufs, mom)
            ctx.cfg, ctx.N = cfg, N
        return (o, *final)

    @staticmethod
    @once_differentiable  # a second-order pass runs the chunk form (layers.common.second_order)
    def backward(ctx, do, gW1, gW2, gS1, gS2):
        xs, wq, W1s, W2s, S1s, S2s, mom = ctx.saved_tensors
        cfg, N = ctx.cfg, ctx.N
        BH, T, D = xs.shape
        grads = []
        for g, ref in zip((gW1, gW2, gS1, gS2), (W1s, W2s, S1s, S2s)):
            b = ref.new_zeros(2, *ref.shape[1:])
            if g is not None:
                b[N % 2] = g
            grads.append(b)
        dx = torch.zeros_like(xs)
        dwq = xs.new_zeros(BH, D, D)
        scratch = xs.new_empty(BH, 2, cfg["C"], W1s.shape[-1])
        if T:
            _smt_bwd[(BH,)](xs, wq, W1s, W2s, S1s, S2s, xs if mom is None else mom,
                            do.contiguous(), dx, dwq, *grads, scratch, T, N, BH, cfg["H"],
                            *cfg["scalars"], **_launch_args(cfg))
        dW_q = None
        if ctx.needs_input_grad[1] and cfg["IQ"] < 0:
            dW_q = dwq.view(-1, cfg["H"], D, D).sum(0)
        return (dx, dW_q, *(g[0] for g in grads), None, None)


def _in_spans(xs, wq, state, mom, cfg, n_chunks):
    """recompute_step: the chunks in spans of ~sqrt(n), each span's forward kept only as its
    start state and run again in the backward (non-reentrant torch.utils.checkpoint), so the
    backward holds ~2 sqrt(n) chunk-start states instead of n + 1 (as chunk.py's spans)."""
    span = max(1, math.isqrt(n_chunks)) * cfg["C"]  # tokens: a whole number of chunks

    def run(xs_span, mom_span, *st):
        return _SelfModifyingFn.apply(xs_span, wq, *st, mom_span, cfg)

    outs = []
    for a in range(0, xs.shape[1], span):
        xs_span = xs[:, a:a + span].contiguous()
        mom_span = None if mom is None else mom[:, a:a + span].contiguous()
        # no random numbers in the kernels, so no RNG state to replay (and reading it is not
        # allowed while a CUDA graph is captured)
        o, *state = checkpoint(run, xs_span, mom_span, *state, use_reentrant=False,
                               preserve_rng_state=False)
        outs.append(o)
    return (torch.cat(outs, dim=1), *state)


def _launch_args(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k.isupper() and k != "H"} | dict(
        num_warps=cfg["warps"], num_stages=1)


# Per chunk size, the widest (padded) head the kernels have run at on a GPU (bench/RESULTS.md,
# ninth session: chunk 16 at widths 16-64; chunk 32 only at 16). Wider heads and longer chunks
# take larger tiles, which may not fit Hopper's shared memory: until a GPU run shows they do,
# "auto" runs the chunk form there ("kernel" still runs them).
VERIFIED_WIDTH = {16: 64}


def why_not(x, init_weights=None, W_q=None, chunk_size=16, adaptive_q=False, eta_bias=0.0,
            alpha_bias=0.0, eta_scale=1.0, momentum=None, retention=True, initial_state=None,
            verified_only=False, **_) -> str | None:
    """None when the kernel takes the call, else the reason (the dispatch then runs chunk.py).
    verified_only: also refuse the tile sizes no GPU run has checked yet (`VERIFIED_WIDTH`)."""
    names = memory_names(adaptive_q, retention)
    if any(torch.is_tensor(b) for b in (eta_bias, alpha_bias, eta_scale)):
        return "per-head gate scales or biases (tensors) are not supported"
    if torch.is_tensor(momentum) and momentum.requires_grad and torch.is_grad_enabled():
        return "a momentum gate that needs a gradient is not supported"
    D = x.shape[-1]
    if D > 128:
        return f"head width {D} (the kernel takes up to 128)"
    if verified_only and _padded(D) > VERIFIED_WIDTH.get(chunk_size, 0):
        return (f"head width {D} (run as {_padded(D)}) at chunk {chunk_size}: no GPU run has "
                f"checked that tile size yet; impl='kernel' runs it")
    if chunk_size not in (16, 32):
        return f"chunk {chunk_size} (the kernel takes 16 or 32)"
    if _padded(D) > 64 and chunk_size == 32:
        return (f"head width {D} at chunk 32: the backward needs more shared memory than Hopper "
                f"has at any hidden tile (bench/hopper_fit.py); chunk 16 fits")
    src = initial_state if initial_state is not None else init_weights
    hidden = {src[n][1].shape[-2] for n in names}
    if len(hidden) != 1:
        return f"memories of different hidden widths {sorted(hidden)}"
    gates = {src[n][0].shape[-2] for n in names if n in ("eta", "alpha")}
    if len(gates) != 1 or max(gates) > D:
        return f"gate widths {sorted(gates)} (one width, at most the head width {D})"
    others = {src[n][0].shape[-2] for n in names if n not in ("eta", "alpha")}
    if others != {D}:
        return "a k, v, q or mem memory whose output is not the head width"
    return None


def chunk_self_modifying_titans_kernel(x, init_weights=None, W_q=None, chunk_size=16,
                                       adaptive_q=False, activation="silu", eta_map="softplus",
                                       alpha_map="sigmoid", eta_scale=1.0, eta_bias=0.0,
                                       alpha_bias=0.0, qk_l2norm=True, v_l2norm=False,
                                       dgd="input", momentum=None, read="previous",
                                       retention=True, initial_state=None, compile_step=False,
                                       recompute_step=False, precision=None, block_hidden=None,
                                       num_warps=None):
    """`chunk_self_modifying_titans` on the Triton kernels, values and gradients. compile_step
    concerns the chunk form and is ignored; recompute_step keeps ~2 sqrt(n) chunk-start states
    for the backward instead of n + 1, for one more forward (`_in_spans`). precision: the
    products' operand precision, "ieee" (exact fp32) or "tf32" (the CUDA default); block_hidden
    (the hidden tile) and num_warps: launch configuration (bench/self_modifying.py sweeps them)."""
    check_options(activation, eta_map, alpha_map, dgd, read)
    reason = why_not(x, init_weights, W_q, chunk_size=chunk_size, adaptive_q=adaptive_q,
                     eta_bias=eta_bias, alpha_bias=alpha_bias, eta_scale=eta_scale,
                     momentum=momentum, retention=retention, initial_state=initial_state)
    if reason is not None:
        raise ValueError(f"the self-modifying Titans kernel does not take this call: {reason}")
    B, T, H, D = x.shape
    names = memory_names(adaptive_q, retention)
    state = initial_self_mod_state(init_weights, B, names, initial_state)
    d_gate = state["eta"][0].shape[-2]
    hid = state["mem"][1].shape[-2]
    # Widths that are not powers of two are zero-padded up to one (tl.arange's tiles): exact, as
    # `_stack_state` in chunk.py: zero columns of x and zero rows/columns of the weights give zero
    # keys, values, queries and targets there, every write keeps them zero (a padded hidden unit
    # sees z = 0, s(0) = 0, and its W1 column is 0, so its dZ is 0 too), and they are cut off
    # again below (their gradients with them).
    Dp, hp = _padded(D), _padded(hid)

    def stack(i):  # [NM, B * H, ...] fp32; W1, S1 [.., Dp, hp] (the gates' rows padded too)
        ts = [state[n][i].float() for n in names]
        if i in (0, 2):
            ts = [F.pad(t, (0, hp - hid, 0, Dp - t.shape[-2])) for t in ts]
        else:
            ts = [F.pad(t, (0, Dp - D, 0, hp - hid)) for t in ts]
        return torch.stack(ts).flatten(1, 2).contiguous()

    W1s, W2s, S1s, S2s = (stack(i) for i in range(4))
    mom = momentum_gate(momentum, x)
    mom = None if mom is None else mom.detach().float().flatten(0, 1).contiguous()  # [B * H, T]
    xs = F.pad(x.float().transpose(1, 2), (0, Dp - D)).flatten(0, 1).contiguous()  # [B*H, T, Dp]
    fixed_q = W_q is not None and not adaptive_q
    wq = F.pad(W_q.float(), (0, Dp - D, 0, Dp - D)).contiguous() if fixed_q else xs.new_zeros(1)
    prec = precision or ("ieee" if _INTERPRET or not x.is_cuda else "tf32")
    cfg = dict(
        C=chunk_size, H=H, scalars=(float(eta_scale), float(eta_bias), float(alpha_bias)),
        # 8 warps: 1.3x faster than 4 at the 125M block's shape on the H100 (bench/RESULTS.md)
        warps=num_warps or (8 if x.is_cuda else 4), D=Dp, HID=hp,
        BHID=min(hp, block_hidden or _block_hidden(Dp, chunk_size)), NM=len(names),
        IK=names.index("k"), IV=names.index("v"), IQ=names.index("q") if adaptive_q else -1,
        IETA=names.index("eta"), IALPHA=names.index("alpha") if retention else -1,
        IMEM=names.index("mem"),
        RES_MASK=sum(1 << i for i, n in enumerate(names) if is_residual(*state[n][:2])),
        DG=d_gate, GATE_RES=is_residual(*state["eta"][:2]), ACT=ACTS[activation],
        ETA_MAP=GATE_MAPS[eta_map], ALPHA_MAP=GATE_MAPS[alpha_map], QK_NORM=qk_l2norm,
        V_NORM=v_l2norm, DGD=dgd == "input", READ=READS[read], HAS_MOM=mom is not None, PREC=prec,
    )
    n_chunks = -(-T // chunk_size)
    if recompute_step and torch.is_grad_enabled() and n_chunks > 1:
        o, *final = _in_spans(xs, wq, (W1s, W2s, S1s, S2s), mom, cfg, n_chunks)
    else:
        o, *final = _SelfModifyingFn.apply(xs, wq, W1s, W2s, S1s, S2s, mom, cfg)
    out = o.view(B, H, T, Dp)[..., :D].transpose(1, 2).to(x.dtype)  # [B, T, H, D]
    result = {}
    for i, n in enumerate(names):
        d, dtype = state[n][0].shape[-2], state[n][0].dtype
        W1, W2, S1, S2 = (t[i].view(B, H, *t.shape[2:]) for t in final)
        result[n] = tuple(t.to(dtype) for t in (W1[..., :d, :hid], W2[..., :hid, :D],
                                                 S1[..., :d, :hid], S2[..., :hid, :D]))
    return out, result


def _block_hidden(Dp: int, C: int) -> int:
    """The default hidden tile: the widest whose backward fits Hopper's 232,448 bytes of shared
    memory per block. Compiled for sm_90 by bench/hopper_fit.py (triton 3.6.0 and 3.7.1 agree),
    the backward needs, at head width Dp and chunk C: Dp 64, C 16: 206,848 B at tile 64; Dp 64,
    C 32: 303,104 at 64, 200,704 at 32; Dp 128, C 16: 382,976 at 64, 229,376 at 32; Dp 128, C 32:
    276,480 even at 16 (`why_not` refuses it)."""
    return 64 if Dp <= 64 and C == 16 else 32


def _padded(n: int) -> int:
    """The tile width for a width n: the next power of two, at least 16 (tl.dot's smallest)."""
    return max(16, 1 << (n - 1).bit_length())
