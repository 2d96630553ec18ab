"""Deep momentum (DMGD, Eq. 50 / 52): matches a reference with hand-derived inner gradients for
each objective and output, reduces to momentum when the MLP is frozen, checkpoints resume."""

import math

import pytest
import torch

from runtime.optim import DeepMomentum, SGDMomentum, build_optimizer
from optim_common import init_params, grads, ns5, assert_traj_close, _plain, _roundtrip


def run(make_opt, steps, dtype=torch.float64):
    """Returns the trajectory, the optimiser, and the initial MLP weights it created."""
    w0, b0 = init_params(dtype)
    w, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    opt = make_opt([w, b])
    init_w2 = [opt.state[p]["w2"].clone() for p in (w, b)]
    out = []
    for s in range(steps):
        w.grad, b.grad = grads(w, b, s)
        opt.step()
        out.append((w.detach().clone(), b.detach().clone()))
    return out, opt, init_w2


# --- plain reference: the inner gradients derived by hand (no autograd) ---------------------


def memory_step(mem, u, *, alpha, lr, mlp_lr, objective, normalize_keys):
    """One inner GD step of the memory m(U) = B + tanh(K W2^T) W1^T on rows U [R, d]."""
    B, W1, W2 = mem
    R = u.shape[0]
    K = u / (torch.sqrt((u * u).mean(dim=1, keepdim=True)) + 1e-12) if normalize_keys else u
    H = torch.tanh(K @ W2.T)
    out = B + H @ W1.T
    if objective == "dot":  # L = <out, U>
        d_out = u
    elif objective == "ones":  # L = <out, 1>
        d_out = torch.ones_like(u)
    else:  # L = 1/2 ||out + U||^2
        d_out = out + u
    g_B = d_out
    g_W1 = d_out.T @ H
    g_W2 = ((d_out @ W1) * (1 - H * H)).T @ K
    step = mlp_lr / R
    B, W1, W2 = alpha * B - lr * g_B, alpha * W1 - step * g_W1, alpha * W2 - step * g_W2
    new_out = B + torch.tanh(K @ W2.T) @ W1.T
    return (B, W1, W2), new_out


def reference(steps, dtype, init_w2, *, lr, alpha, hidden, mlp_lr, objective, normalize_keys=True,
              output="linear", ns_lr=0.02, wd=0.0):
    params = list(init_params(dtype))
    mems = []
    for p, w2 in zip(params, init_w2):
        rows = p.reshape(p.shape[0], -1) if p.ndim >= 2 else p.reshape(1, -1)
        mems.append((torch.zeros_like(rows), torch.zeros(rows.shape[1], hidden, dtype=dtype), w2.clone()))
    out = []
    for s in range(steps):
        gs = grads(params[0], params[1], s)
        for i, g in enumerate(gs):
            u = g.reshape(g.shape[0], -1) if g.ndim >= 2 else g.reshape(1, -1)
            mems[i], m_out = memory_step(mems[i], u, alpha=alpha, lr=lr, mlp_lr=mlp_lr,
                                         objective=objective, normalize_keys=normalize_keys)
            p = params[i] * (1 - lr * wd)
            if output == "ns" and params[i].ndim >= 2:
                scale = math.sqrt(max(1.0, m_out.shape[0] / m_out.shape[1]))
                params[i] = p + ns_lr * scale * ns5(m_out).reshape(p.shape)
            else:
                params[i] = p + m_out.reshape(p.shape)
        out.append(tuple(p.clone() for p in params))
    return out


# --- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("objective", ["dot", "ones", "l2"])
def test_first_steps_match_reference(objective):
    # mlp_lr large enough that the MLP visibly moves the weights within 5 steps.
    opts = dict(lr=0.05, alpha=0.9, hidden=5, mlp_lr=2.0, objective=objective)
    got, opt, init_w2 = run(lambda p: DeepMomentum(p, weight_decay=0.1, **opts), 5)
    want = reference(5, torch.float64, init_w2, wd=0.1, **opts)
    assert_traj_close(got, want, atol=1e-12)
    w = opt.param_groups[0]["params"][0]
    assert opt.state[w]["w1"].abs().max() > 1e-3  # the deep part is really in play


def test_unnormalised_keys_and_ns_output_match_reference():
    opts = dict(lr=0.05, alpha=0.8, hidden=3, mlp_lr=1.0, objective="dot", normalize_keys=False,
                output="ns", ns_lr=0.03)
    got, _, init_w2 = run(lambda p: DeepMomentum(p, ns_dtype="float64", **opts), 5)
    assert_traj_close(got, reference(5, torch.float64, init_w2, **opts), atol=1e-12)


def test_float32_defaults():
    got, _, init_w2 = run(lambda p: DeepMomentum(p), 5, torch.float32)
    want = reference(5, torch.float32, init_w2, lr=1e-2, alpha=0.9, hidden=16, mlp_lr=1e-2 / 16, objective="dot")
    assert_traj_close(got, want, atol=1e-6)


def test_frozen_mlp_is_paper_form_momentum():
    # With mlp_lr = 0, W1 stays 0, m(u) = B and the dot objective gives B <- alpha B - lr u:
    # exactly Eq. 10-13's momentum.
    got, _, _ = run(lambda p: DeepMomentum(p, lr=0.05, alpha=0.9, mlp_lr=0.0), 5)
    want, _, _ = _sgd_run()
    assert_traj_close(got, want, atol=1e-12)


def _sgd_run():
    w0, b0 = init_params(torch.float64)
    w, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    opt = SGDMomentum([w, b], lr=0.05, momentum=0.9, form="paper")
    out = []
    for s in range(5):
        w.grad, b.grad = grads(w, b, s)
        opt.step()
        out.append((w.detach().clone(), b.detach().clone()))
    return out, opt, None


def test_memory_is_created_eagerly_and_seeded():
    def make(seed):
        w, b = (torch.nn.Parameter(t) for t in init_params(torch.float64))
        return DeepMomentum([w, b], hidden=4, seed=seed), w, b

    (o1, w1, b1), (o2, w2, b2), (o3, w3, _) = make(0), make(0), make(1)
    assert set(o1.state[w1]) == {"bias", "w1", "w2"}
    assert o1.state[w1]["w2"].shape == (4, 4) and o1.state[b1]["w2"].shape == (4, 6)
    assert torch.equal(o1.state[w1]["w1"], torch.zeros(4, 4, dtype=torch.float64))
    assert torch.equal(o1.state[w1]["w2"], o2.state[w2]["w2"])
    assert not torch.equal(o1.state[w1]["w2"], o3.state[w3]["w2"])
    # A group added later gets its memory too.
    extra = torch.nn.Parameter(torch.zeros(3, 2, dtype=torch.float64))
    o1.add_param_group({"params": [extra], "hidden": 2})
    assert o1.state[extra]["w1"].shape == (2, 2)


@pytest.mark.parametrize("output", ["linear", "ns"])
def test_state_dict_roundtrip_and_resume(output):
    def make(params, seed):
        return DeepMomentum(params, mlp_lr=1.0, output=output, weight_decay=0.01, seed=seed)

    w0, b0 = init_params(torch.float32)
    w, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    opt = make([w, b], seed=0)
    for s in range(3):
        w.grad, b.grad = grads(w, b, s)
        opt.step()
    sd = opt.state_dict()
    assert _plain(sd)
    loaded = _roundtrip({"opt": sd, "w": w.detach(), "b": b.detach()})

    w2, b2 = torch.nn.Parameter(loaded["w"].clone()), torch.nn.Parameter(loaded["b"].clone())
    opt2 = make([w2, b2], seed=123)  # a different init: the loaded memory must replace it
    opt2.load_state_dict(loaded["opt"])
    for s in range(3, 6):
        w.grad, b.grad = grads(w, b, s)
        opt.step()
        w2.grad, b2.grad = grads(w2, b2, s)
        opt2.step()
        assert torch.equal(w, w2) and torch.equal(b, b2)


def test_factory_and_bad_options():
    p = [torch.nn.Parameter(torch.zeros(3, 3))]
    assert isinstance(build_optimizer("dmgd", p, hidden=2), DeepMomentum)
    assert isinstance(build_optimizer("deep_momentum", p), DeepMomentum)
    for bad in (dict(objective="huber"), dict(output="tanh"), dict(hidden=0)):
        with pytest.raises(ValueError):
            DeepMomentum(p, **bad)
