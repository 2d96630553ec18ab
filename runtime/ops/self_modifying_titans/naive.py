"""Self-modifying ("deep self-referential") Titans, token by token: the chunk-wise definition of
nested-learning.md sec. 6 (NL Eq. 83-90), written as a loop over tokens.

Six memories M_box, box in {k, v, q, eta, alpha, mem}, each a 2-layer MLP with per-sequence,
per-head weights (W1, W2) (Eq. 89/91: M(x) = x + W1 s(W2 x)). With chunk size C and xi the state at
the last chunk boundary (= the last state of the previous chunk), every token t of a chunk does:

    k_t = M_k,xi(x_t)   v_t = M_v,xi(x_t)   q_t = M_q,xi(x_t) or x_t W_q       (Eq. 84-86, 90)
    eta_t = eta_map(mean M_eta,xi(x_t))      alpha_t = alpha_map(mean M_alpha,xi(x_t))
    vhat_box,t = M_box,xi(v_t)                        (each memory makes its own target, Eq. 87)
    M_box,t = M_box,t-1 (alpha_t I - eta_t k_t k_t^T) - eta_t grad L(M_box,xi; k_t, vhat_box,t)
                                                                              (Eq. 88 / 90)
    L(M; k, v) = ||M(k) - v||^2 (vhat is a fixed target: no gradient through it inside L)
    y_t = M_mem,t-1(q_t)                                                      (Eq. 83)

With C = 1, xi = t-1 and this is exactly the sequential Eq. 83-88. Choices the paper leaves open
(nested-learning.md sec. 6, 11), each a named option:

- `dgd="input"` (default): on a 2-layer MLP the factor (alpha I - eta k k^T) right-multiplies the
  input-side matrix W2 (it sees the key k); W1 (whose input is s(W2 k), not k) only gets the
  retention alpha. `dgd="none"`: both get alpha only, i.e. plain GD with weight decay (Table 6's
  "w/o DGD" ablation).
- `adaptive_q=False` (default): Eq. 83's text says q_t = x_t W_q is the only non-adaptive
  projection, so q is a fixed projection `W_q` [H, D, D] (q_t = x_t W_q per head) and there is no
  q memory. Eq. 88/96 list q among the updated memories and Table 6 ablates "inner-projection q":
  `adaptive_q=True` adds the q memory (q_t = M_q,xi(x_t)), updated like the others.
- eta and alpha memories output `d_gate` numbers per head (their W1 is [H, d_gate, D_hid]); the
  gate is eta_t = eta_scale * eta_map(mean of the outputs + eta_bias) and alpha_t =
  alpha_map(mean of the outputs + alpha_bias), with eta_map in {"softplus" (default), "sigmoid"}
  and alpha_map in {"sigmoid" (default), "softplus"}. The biases (float or per-head [H] tensor,
  default 0) are ours, not the paper's: a memory with no bias gives alpha = 1/2 for small
  outputs, i.e. forgets half its state per token; alpha_bias ~ 3 starts near alpha = 0.95.
  Their residual skip x needs d_gate == D; with d_gate != D they are plain MLPs W1 s(W2 x). Their
  self-generated targets are M_eta,xi(v_t), M_alpha,xi(v_t) (d_gate numbers), as Eq. 87 states.
- `v_l2norm=False` (default): True L2-normalises v_t too. Ours, not the paper's: with unit
  k and v every target M(v_t) has a bounded input, which keeps compiled models stable at
  random initialisation (the stability note below).
- `qk_l2norm=True` (default): k_t and q_t are L2-normalised after generation, as Hope does
  (sec. 7); it keeps eta ||k||^2 = eta, so the DGD factor stays a contraction for eta < 1 + alpha.
- `momentum=None` (default, Eq. 88 has none): off. A float or a [B, T, H] tensor m turns on the
  inner momentum implied by Table 6 ("w/o momentum"), Titans-style [inferred]:
      S_box,t = m_t S_box,t-1 - eta_t grad L(M_box,xi; k_t, vhat_box,t)
      M_box,t = M_box,t-1 (alpha_t I - eta_t k_t k_t^T) + S_box,t      (W1: alpha_t W1 + S1)
  With momentum off the S buffers of the state are passed through unchanged.
- `read`: "previous" (default, Eq. 83: y_t = M_mem,t-1(q_t)), "current" (M_mem,t(q_t)) or
  "chunk_start" (M_mem,xi(q_t), cheapest).

Stability (measured with random inits, |x| ~ 1, unit keys): the rule is only bounded in a narrow
band of gates. The v memory's target is M_v(M_v(x)), so any gain above 1 feeds back and the whole
system blows up within ~50 tokens (eta ~ 0.2, alpha ~ 0.993); with alpha ~ 0.95 and eta ~ 0.07
every memory decays towards W = 0, which is a fixed point (s(0) = 0 makes both gradients vanish).
Trained gates must keep it between the two; the tests use alpha ~ 0.993, eta ~ 0.07.

State: a dict {name: (W1, W2, S1, S2)}, each [B, H, ...]; W1 [B, H, D_out, D_hid],
W2 [B, H, D_hid, D]. Everything (x, W_q, init weights, initial state, momentum) is differentiable;
gradients flow through every write into the initial weights (the meta-learned init, Eq. 28).
"""

import torch
import torch.nn.functional as F

from ..mlp_memory import broadcast_weights, mlp_forward, mlp_l2_grads

GATE_MAPS = ("softplus", "sigmoid")
READS = ("previous", "current", "chunk_start")


def memory_names(adaptive_q, retention=True):
    """The memories of the op, in state order (no q memory unless adaptive_q; no alpha memory
    without retention, Table 6's "w/o weight decay": alpha_t = 1)."""
    q = ("q",) if adaptive_q else ()
    alpha = ("alpha",) if retention else ()
    return ("k", "v", *q, "eta", *alpha, "mem")


def is_residual(W1, W2):
    """x + W1 s(W2 x) where the shapes allow it (D_out == D_in), else W1 s(W2 x) (gate memories)."""
    return W1.shape[-2] == W2.shape[-1]


def check_options(activation, eta_map, alpha_map, dgd, read):
    for name, val, allowed in (("eta_map", eta_map, GATE_MAPS), ("alpha_map", alpha_map, GATE_MAPS),
                               ("dgd", dgd, ("input", "none")), ("read", read, READS),
                               ("activation", activation, ("silu", "gelu"))):
        if val not in allowed:
            raise ValueError(f"unknown {name} {val!r}; expected one of {allowed}")


def gate(z, kind):
    return F.softplus(z) if kind == "softplus" else torch.sigmoid(z)


def initial_self_mod_state(init_weights, batch, names, initial_state=None):
    """{name: (W1, W2, S1, S2)} with a leading [B, H]: the given state, or the meta-learned init
    weights broadcast over the batch with zero momentum."""
    if initial_state is not None:
        return {n: tuple(initial_state[n]) for n in names}
    state = {}
    for n in names:
        W1, W2 = (broadcast_weights(w, batch) for w in init_weights[n])
        state[n] = (W1, W2, torch.zeros_like(W1), torch.zeros_like(W2))
    return state


def momentum_gate(momentum, x):
    """None, a float or a [B, T, H] tensor -> None or a [B, H, T] tensor."""
    if momentum is None:
        return None
    B, T, H = x.shape[:3]
    if torch.is_tensor(momentum):
        return momentum.to(x.device, x.dtype).expand(B, T, H).transpose(1, 2)
    # a fill, not a tensor made from host data: no host-to-device copy (CUDA-graph capturable)
    return x.new_full((B, H, T), float(momentum))


def head_bias(b):
    """A float, or a per-head tensor [H] -> [H, 1] (broadcasts over [B, H, N])."""
    return b.unsqueeze(-1) if torch.is_tensor(b) and b.dim() == 1 else b


def raw_generator_outputs(xi, x, activation):
    """{generator name: M_name(x)} for the generators in xi (every name but "mem")."""
    return {n: mlp_forward(W1, W2, x, activation, is_residual(W1, W2))
            for n, (W1, W2) in xi.items() if n != "mem"}


def generate(xi, x, W_q, activation, eta_map, alpha_map, eta_scale, eta_bias, alpha_bias,
             qk_l2norm, v_l2norm=False, raw=None):
    """k, v, q [B, H, N, D] and eta, alpha [B, H, N] for tokens x [B, H, N, D], all from the
    chunk-boundary weights xi = {name: (W1, W2)} (Eq. 84-86, 90). `raw` may give the generators'
    outputs already computed (the chunk form computes them stacked)."""
    raw = raw_generator_outputs(xi, x, activation) if raw is None else raw
    k, v = raw["k"], raw["v"]
    q = raw["q"] if "q" in xi else x @ W_q  # fixed projection per head: [B,H,N,D] @ [H,D,D]
    if qk_l2norm:
        k, q = F.normalize(k, dim=-1), F.normalize(q, dim=-1)
    if v_l2norm:
        v = F.normalize(v, dim=-1)
    eta = eta_scale * gate(raw["eta"].mean(-1) + head_bias(eta_bias), eta_map)  # [B, H, N]
    if "alpha" in xi:
        alpha = gate(raw["alpha"].mean(-1) + head_bias(alpha_bias), alpha_map)
    else:  # no retention: alpha_t = 1
        alpha = torch.ones_like(eta)
    return k, v, q, eta, alpha


def naive_self_modifying_titans(x, init_weights=None, W_q=None, chunk_size=16, adaptive_q=False,
                                activation="silu", eta_map="softplus", alpha_map="sigmoid",
                                eta_scale=1.0, eta_bias=0.0, alpha_bias=0.0, qk_l2norm=True, v_l2norm=False,
                                dgd="input", momentum=None, read="previous", retention=True,
                                initial_state=None, compile_step=False, recompute_step=False):
    """(compile_step and recompute_step are accepted for the chunk form's signature and ignored: no
    chunk step here.)
    x [B, T, H, D]; init_weights {name: (W1 [(B,) H, D_out, D_hid], W2 [(B,) H, D_hid, D])}
    for the names of `memory_names(adaptive_q)`; W_q [H, D, D] when not adaptive_q.
    Returns o [B, T, H, D] and the final state {name: (W1, W2, S1, S2)}."""
    check_options(activation, eta_map, alpha_map, dgd, read)
    B, T = x.shape[:2]
    names = memory_names(adaptive_q, retention)
    state = initial_self_mod_state(init_weights, B, names, initial_state)
    mom = momentum_gate(momentum, x)  # [B, H, T] or None
    outputs = []
    for t in range(T):
        if t % chunk_size == 0:
            xi = {n: state[n][:2] for n in names}  # chunk boundary: generation and gradients here
        x_t = x[:, t].unsqueeze(2)  # [B, H, 1, D]
        k, v, q, eta, alpha = generate(xi, x_t, W_q, activation, eta_map, alpha_map, eta_scale,
                                       eta_bias, alpha_bias, qk_l2norm, v_l2norm)
        e, a = eta[..., None], alpha[..., None]  # [B, H, 1, 1]: broadcast over a weight matrix
        if read != "current":
            W1r, W2r = state["mem"][:2] if read == "previous" else xi["mem"]
            outputs.append(mlp_forward(W1r, W2r, q, activation, True)[:, :, 0])
        for n in names:
            W1, W2, S1, S2 = state[n]
            W1x, W2x = xi[n]
            res = is_residual(W1x, W2x)
            vhat = mlp_forward(W1x, W2x, v, activation, res)  # self-generated target (Eq. 87)
            G1, G2 = (g[:, :, 0] for g in mlp_l2_grads(W1x, W2x, k, vhat, activation, res))
            if mom is None:
                U1, U2 = -e * G1, -e * G2
            else:
                m = mom[:, :, t, None, None]
                S1, S2 = m * S1 - e * G1, m * S2 - e * G2
                U1, U2 = S1, S2
            if dgd == "input":  # W2 (alpha I - eta k k^T) = alpha W2 - eta (W2 k) k^T
                W2 = a * W2 - e * (W2 @ k.transpose(-1, -2)) @ k + U2
            else:
                W2 = a * W2 + U2
            W1 = a * W1 + U1
            state[n] = (W1, W2, S1, S2)
        if read == "current":
            W1r, W2r = state["mem"][:2]
            outputs.append(mlp_forward(W1r, W2r, q, activation, True)[:, :, 0])
    o = torch.stack(outputs, dim=1) if T else x.new_zeros(x.shape)  # [B, T, H, D]
    return o, state
