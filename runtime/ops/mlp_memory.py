"""Shared pieces of the deep (MLP) memory ops: forward, hand-written L2 gradients, and the
low-rank bookkeeping that lets the chunk forms read token-varying weights with matmuls.

The memory of one head is a 2-layer MLP with per-sequence weights (nested-learning.md sec. 1, 10):

    mlp:           M(x) = W1 s(W2 x)
    residual_mlp:  M(x) = x + W1 s(W2 x)          (Eq. 89/91; needs D_out == D_in)

    W1: [B, H, D_out, D_hid]    W2: [B, H, D_hid, D_in]    x: [B, H, N, D_in]

Objective (Titans / TTT / Eq. 88): l(W; k, v) = ||M(k) - v||^2 (no 1/2). With z = W2 k, a = s(z),
dy = dl/dM(k) = 2 (M(k) - v) (the residual skip does not depend on the weights):

    dl/dW1 = dy a^T                     [D_out, D_hid]
    dl/dW2 = dz k^T,  dz = (W1^T dy) * s'(z)   [D_hid, D_in]     (Eq. 29-31: delta_l x_{l-1}^T)

Every per-token gradient is a rank-1 outer product, so the chunk forms never materialise them: they
keep the factors (dy, a) and (dz, k) and contract with them, like linear attention does with v k^T.

Low-rank representation of a token-varying weight inside a chunk of C tokens:

    W(i) = sum_r coef_r[i] M_r  +  sum_g sum_j Coef_g[i, j] V_g[j] K_g[j]^T

(bases M_r are full matrices: chunk-start weights, momentum buffers; terms are rank-1 writes).
Then W(i) x_i = sum_r coef_r[i] (M_r x_i) + sum_g (Coef_g * (X K_g^T)) V_g: one masked matmul per
term. `lowrank_apply` does that; `lowrank_row` materialises W(i) for one i (the chunk-end state).
"""

import math

import torch

ACTIVATIONS = ("silu", "gelu")
MEMORY_KINDS = ("mlp", "residual_mlp")


def activation_and_derivative(z, activation="silu"):
    """s(z) and s'(z) written out, so the hand-written gradient stays differentiable (the outer
    meta-learning loop backpropagates through the inner gradient, i.e. needs s'')."""
    if activation == "silu":
        sig = torch.sigmoid(z)
        return z * sig, sig * (1 + z * (1 - sig))
    if activation == "gelu":  # exact (erf) GELU: s = z Phi(z), s' = Phi(z) + z phi(z)
        cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2.0)))
        pdf = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        return z * cdf, cdf + z * pdf
    raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")


def apply_activation(z, activation="silu"):
    """s(z) alone, where s'(z) is not needed (forwards, reads): one fused operator (F.silu,
    exact-erf F.gelu) instead of the written-out chain, differentiable to any order likewise."""
    if activation == "silu":
        return torch.nn.functional.silu(z)
    if activation == "gelu":
        return torch.nn.functional.gelu(z)
    raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")


def activation_derivative(z, activation="silu"):
    """s'(z) alone, the same formula as `activation_and_derivative`'s."""
    if activation == "silu":
        sig = torch.sigmoid(z)
        return sig * (1 + z * (1 - sig))
    if activation == "gelu":
        cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2.0)))
        return cdf + z * torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")


def check_memory_kind(memory):
    if memory not in MEMORY_KINDS:
        raise ValueError(f"unknown memory {memory!r}; expected one of {MEMORY_KINDS}")
    return memory == "residual_mlp"


def broadcast_weights(w, batch):
    """Init weights [H, ...] (shared, meta-learned) or [B, H, ...] -> [B, H, ...]. `expand` keeps
    the graph to the shared init, so its gradient sums over the batch."""
    if w.dim() == 3:
        w = w.unsqueeze(0)
    return w.expand(batch, *w.shape[1:])


def mlp_forward(W1, W2, x, activation="silu", residual=False):
    """M(x) for x [B, H, N, D_in] -> [B, H, N, D_out]."""
    a, _ = activation_and_derivative(x @ W2.transpose(-1, -2), activation)  # [B, H, N, D_hid]
    y = a @ W1.transpose(-1, -2)  # [B, H, N, D_out]
    return x + y if residual else y


def mlp_l2_grad_factors(W1, W2, k, v, activation="silu", residual=False):
    """Factors of the per-token gradients of ||M(k_n) - v_n||^2 at fixed weights (W1, W2).

    k [B, H, N, D_in], v [B, H, N, D_out] -> dy [B, H, N, D_out], a [B, H, N, D_hid],
    dz [B, H, N, D_hid], such that dl_n/dW1 = dy_n a_n^T and dl_n/dW2 = dz_n k_n^T.
    """
    z = k @ W2.transpose(-1, -2)  # [B, H, N, D_hid]
    a, da = activation_and_derivative(z, activation)
    y = a @ W1.transpose(-1, -2)  # [B, H, N, D_out]
    if residual:
        y = y + k
    dy = 2 * (y - v)  # dl/dM(k)
    dz = (dy @ W1) * da  # back through W1 and the activation: [B, H, N, D_hid]
    return dy, a, dz


def mlp_l2_grads(W1, W2, k, v, activation="silu", residual=False):
    """Materialised per-token gradients: G1 [B, H, N, D_out, D_hid], G2 [B, H, N, D_hid, D_in].
    Used by the naive forms (N = 1) and by the tests against autograd."""
    dy, a, dz = mlp_l2_grad_factors(W1, W2, k, v, activation, residual)
    return dy.unsqueeze(-1) * a.unsqueeze(-2), dz.unsqueeze(-1) * k.unsqueeze(-2)


def decay_matrix(g):
    """Products of per-token decays inside a chunk, for the linear scan s_i = g_i s_{i-1} + u_i.

    g [..., C] -> (A [..., C, C], a0 [..., C]) with A[i, j] = prod_{l=j+1..i} g_l for j <= i (so
    A[i, i] = 1) and 0 above the diagonal, a0[i] = prod_{l<=i} g_l; then s_i = a0[i] s_0 +
    sum_j A[i, j] u_j. Built as a cumulative product down each column of a matrix holding g_i below
    the diagonal and 1 elsewhere: no division by cumulative products, so g = 0 is exact.
    """
    C = g.shape[-1]
    below = torch.ones(C, C, dtype=torch.bool, device=g.device).tril(-1)  # i > j
    one = torch.ones((), dtype=g.dtype, device=g.device)
    col = torch.where(below, g.unsqueeze(-1), one)  # [..., C, C]: row i holds g_i where i > j
    A = cumprod_scan(col, dim=-2).tril()  # running product down the rows, upper part zeroed
    return A, cumprod_scan(g, dim=-1)


def cumprod_scan(x, dim: int):
    """torch.cumprod(x, dim) as log2(n) multiplications by shifted copies (a Hillis-Steele scan).

    Why not torch.cumprod: its backward looks for zeros in the input with a host read-back
    (`masked_select`, `.item()`) in the torch builds we run on CUDA (2.11), so a training step
    cannot be captured as a CUDA graph, and its double backward (self-modifying memories take
    gradients of gradients) loops over the dimension, one launch per element. Plain products are
    exact with zeros, sync-free and differentiable to any order. Products associate differently
    from the sequential cumprod: the results agree to rounding."""
    x = x.movedim(dim, -1)
    n, step = x.shape[-1], 1
    while step < n:
        shifted = torch.cat([torch.ones_like(x[..., :step]), x[..., :-step]], dim=-1)
        x = x * shifted
        step *= 2
    return x.movedim(-1, dim)


def shift_base(coef, first):
    """Base coefficients [..., C] of the state before token i: [first, coef[0], ..., coef[C-2]]."""
    head = torch.full_like(coef[..., :1], first)
    return torch.cat([head, coef[..., :-1]], dim=-1)


def shift_term(coef):
    """Term coefficients [..., C, C] of the state before token i: row i <- row i-1, row 0 = 0."""
    return torch.cat([torch.zeros_like(coef[..., :1, :]), coef[..., :-1, :]], dim=-2)


def lowrank_apply(x, bases, terms):
    """y_i = W(i) x_i for the low-rank representation in the module docstring.

    x [B, H, C, D_in]; bases: list of (coef [B, H, C], M [B, H, D_out, D_in]);
    terms: list of (Coef [B, H, C, C], V [B, H, C, D_out], K [B, H, C, D_in]) -> [B, H, C, D_out].
    """
    y = 0
    for coef, M in bases:
        y = y + coef.unsqueeze(-1) * (x @ M.transpose(-1, -2))
    for Coef, V, K in terms:
        y = y + (Coef * (x @ K.transpose(-1, -2))) @ V  # masked "attention" over the writes
    return y


def lowrank_row(bases, terms, i):
    """Materialise W(i) [B, H, D_out, D_in] (i = -1: the chunk-end state)."""
    W = 0
    for coef, M in bases:
        W = W + coef[..., i, None, None] * M
    for Coef, V, K in terms:
        W = W + V.transpose(-1, -2) @ (Coef[..., i, :, None] * K)  # sum_j Coef[i,j] V_j K_j^T
    return W


def mlp_read_lowrank(x, w1_rep, w2_rep, activation="silu", residual=False):
    """y_i = M_i(x_i) for a memory whose weights vary per token, W = (w1_rep, w2_rep) each a
    (bases, terms) pair. The first layer is linear in W2, so W2_i x_i is exact via `lowrank_apply`;
    the activation then acts per token, and W1_i h_i is again linear in W1."""
    h, _ = activation_and_derivative(lowrank_apply(x, *w2_rep), activation)  # [B, H, C, D_hid]
    y = lowrank_apply(h, *w1_rep)
    return x + y if residual else y
