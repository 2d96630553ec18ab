"""Muon: matches a plain re-implementation, routes 1-D / tagged params to AdamW, checkpoints."""

import math

import pytest
import torch

from runtime.optim import Muon, build_optimizer
from optim_common import init_params, grads, ns5, assert_traj_close, _plain, _roundtrip


def run(make_opt, steps, dtype=torch.float64):
    w0, b0 = init_params(dtype)
    w, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    opt = make_opt([w, b])
    out = []
    for s in range(steps):
        w.grad, b.grad = grads(w, b, s)
        opt.step()
        out.append((w.detach().clone(), b.detach().clone()))
    return out, opt


# --- plain reference, written from the formulas -------------------------------------------


def reference(steps, dtype, lr=0.02, beta=0.95, nesterov=True, wd=0.0, adam_lr=3e-4,
              betas=(0.9, 0.95), eps=1e-8, adam_wd=0.0):
    w, b = init_params(dtype)
    m = torch.zeros_like(w)
    ea, eq = torch.zeros_like(b), torch.zeros_like(b)
    out = []
    for s in range(steps):
        gw, gb = grads(w, b, s)
        # Muon on W
        m = beta * m + gw
        read = gw + beta * m if nesterov else m
        upd = ns5(read) * math.sqrt(max(1.0, w.shape[0] / w.shape[1]))
        w = w * (1 - lr * wd) - lr * upd
        # AdamW on b
        t = s + 1
        ea = betas[0] * ea + (1 - betas[0]) * gb
        eq = betas[1] * eq + (1 - betas[1]) * gb * gb
        mhat = ea / (1 - betas[0] ** t)
        vhat = eq / (1 - betas[1] ** t)
        b = b * (1 - adam_lr * adam_wd) - adam_lr * mhat / (vhat.sqrt() + eps)
        out.append((w.clone(), b.clone()))
    return out


# --- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("nesterov", [True, False])
def test_first_steps_match_reference_float64(nesterov):
    got, _ = run(lambda p: Muon(p, nesterov=nesterov, ns_dtype="float64", weight_decay=0.1,
                                adamw_weight_decay=0.05), 5)
    want = reference(5, torch.float64, nesterov=nesterov, wd=0.1, adam_wd=0.05)
    assert_traj_close(got, want, atol=1e-12)


def test_first_steps_match_reference_float32():
    got, _ = run(lambda p: Muon(p), 5, torch.float32)
    want = reference(5, torch.float32)
    assert_traj_close(got, want, atol=1e-6)


def test_one_d_params_go_to_adamw():
    _, opt = run(lambda p: Muon(p), 2)
    w, b = opt.param_groups[0]["params"]
    assert set(opt.state[w]) == {"momentum"}
    assert set(opt.state[b]) == {"step", "exp_avg", "exp_avg_sq"}
    assert Muon.routes_to_muon(opt.param_groups[0], w)
    assert not Muon.routes_to_muon(opt.param_groups[0], b)


def test_use_muon_false_group_is_adamw_with_its_own_lr():
    emb = torch.nn.Parameter(torch.randn(10, 4, dtype=torch.float64))
    emb0 = emb.detach().clone()
    opt = Muon([{"params": [emb], "use_muon": False, "lr": 1e-3}], adamw_betas=(0.9, 0.99))
    g = torch.randn(10, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    emb.grad = g
    opt.step()
    assert set(opt.state[emb]) == {"step", "exp_avg", "exp_avg_sq"}
    # First AdamW step: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps).
    torch.testing.assert_close(emb.detach(), emb0 - 1e-3 * g / (g.abs() + 1e-8), rtol=0, atol=1e-12)


def test_conv_kernels_are_flattened():
    conv = torch.nn.Parameter(torch.zeros(8, 3, 3, 3, dtype=torch.float64))
    opt = Muon([conv], lr=1.0, momentum=0.0, nesterov=False, ns_dtype="float64")
    g = torch.randn(8, 3, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    conv.grad = g
    opt.step()
    upd = -conv.detach().reshape(8, 27)
    torch.testing.assert_close(upd, ns5(g.reshape(8, 27)), rtol=0, atol=1e-12)
    s = torch.linalg.svdvals(upd)
    assert s.min() > 0.65 and s.max() < 1.2  # wide: scale 1, the NS band


def test_scale_for_tall_matrices():
    w = torch.nn.Parameter(torch.zeros(12, 3, dtype=torch.float64))
    opt = Muon([w], lr=1.0, momentum=0.0, nesterov=False, ns_dtype="float64")
    w.grad = torch.randn(12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    opt.step()
    s = torch.linalg.svdvals(w.detach())
    # NS band times sqrt(12 / 3) = 2.
    assert s.min() > 2 * 0.65 and s.max() < 2 * 1.2


def test_state_dict_roundtrip_and_resume():
    def make(params):
        return Muon(params, weight_decay=0.01, ns_dtype=torch.float32)  # a dtype object is stored by name

    w0, b0 = init_params(torch.float32)
    w, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    opt = make([w, b])
    for s in range(3):
        w.grad, b.grad = grads(w, b, s)
        opt.step()
    sd = opt.state_dict()
    assert _plain(sd), sd["param_groups"]
    assert sd["param_groups"][0]["ns_dtype"] == "float32"
    loaded = _roundtrip({"opt": sd, "w": w.detach(), "b": b.detach()})

    w2, b2 = torch.nn.Parameter(loaded["w"].clone()), torch.nn.Parameter(loaded["b"].clone())
    opt2 = make([w2, b2])
    opt2.load_state_dict(loaded["opt"])
    for s in range(3, 6):
        w.grad, b.grad = grads(w, b, s)
        opt.step()
        w2.grad, b2.grad = grads(w2, b2, s)
        opt2.step()
        assert torch.equal(w, w2) and torch.equal(b, b2)


def test_factory_and_bad_options():
    p = [torch.nn.Parameter(torch.zeros(3, 3))]
    opt = build_optimizer("muon", p, lr=0.01, ns_steps=3)
    assert isinstance(opt, Muon) and opt.param_groups[0]["ns_steps"] == 3
    with pytest.raises(ValueError):
        Muon(p, ns_variant="septic")
    with pytest.raises(ValueError):
        Muon(p, momentum=1.0)
