"""M3 (Algorithm 1): matches plain references in both accumulate modes, the slow memory changes
only every f steps, the AdamW fallback, checkpoints that resume across a window boundary."""

import pytest
import torch

from runtime.optim import M3, build_optimizer
from optim_common import init_params, grads, ns5, assert_traj_close, _plain, _roundtrip


def run(make_opt, steps, dtype=torch.float64, on_step=None):
    w0, b0 = init_params(dtype)
    w, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    opt = make_opt([w, b])
    out = []
    for s in range(steps):
        w.grad, b.grad = grads(w, b, s)
        opt.step()
        out.append((w.detach().clone(), b.detach().clone()))
        if on_step is not None:
            on_step(opt, w)
    return out, opt


# --- plain reference, written from Algorithm 1 --------------------------------------------


def reference(steps, dtype, *, lr, betas, alpha, eps, f, mode, bias_correction, rms_target, wd=0.0):
    """rms_target=None: no RMS normalisation."""
    b1, b2, b3 = betas
    w, b = init_params(dtype)
    M1, V, M2 = torch.zeros_like(w), torch.zeros_like(w), torch.zeros_like(w)
    O2 = torch.zeros_like(w)
    window = []
    m_b, v_b = torch.zeros_like(b), torch.zeros_like(b)
    out = []
    for s in range(steps):
        t = s + 1
        gw, gb = grads(w, b, s)
        window.append(gw)
        # fast level + variance, every step
        if mode == "ema":
            M1 = b1 * M1 + (1 - b1) * gw
            V = b2 * V + (1 - b2) * gw * gw
            Vh = V / (1 - b2**t) if bias_correction else V
        else:
            M1 = M1 + b1 * gw
            V = V + b2 * gw * gw
            Vh = V
        U = (ns5(M1) + alpha * O2) / (torch.sqrt(Vh) + eps)
        if rms_target is not None:
            U = U * rms_target / (torch.sqrt((U * U).mean()) + 1e-12)
        w = w * (1 - lr * wd) - lr * U
        # slow level, at the end of every window of f steps
        if t % f == 0:
            total = sum(window)
            if mode == "ema":
                M2 = b3 * M2 + (1 - b3) * total / f
            else:
                M2 = M2 + b3 * total
            O2 = ns5(M2)
            window = []
        # the bias: AdamW from the same kind of M1 / V
        if mode == "ema":
            m_b = b1 * m_b + (1 - b1) * gb
            v_b = b2 * v_b + (1 - b2) * gb * gb
            mh = m_b / (1 - b1**t) if bias_correction else m_b
            vh = v_b / (1 - b2**t) if bias_correction else v_b
        else:
            m_b = m_b + b1 * gb
            v_b = v_b + b2 * gb * gb
            mh, vh = m_b, v_b
        b = b * (1 - lr * wd) - lr * mh / (torch.sqrt(vh) + eps)
        out.append((w.clone(), b.clone()))
    return out


# --- tests ---------------------------------------------------------------------------------


def test_default_ema_mode_matches_reference_float64():
    # f = 2 so that 5 steps cross two slow writes (O2 != 0 from step 3 on).
    opts = dict(lr=1e-2, betas=(0.9, 0.99, 0.8), alpha=0.7, eps=1e-8, weight_decay=0.1)
    got, _ = run(lambda p: M3(p, slow_every=2, ns_dtype="float64", **opts), 5)
    want = reference(5, torch.float64, lr=1e-2, betas=(0.9, 0.99, 0.8), alpha=0.7, eps=1e-8, f=2,
                     mode="ema", bias_correction=True, rms_target=0.2, wd=0.1)
    assert_traj_close(got, want, atol=1e-12)


def test_algorithm1_sum_mode_matches_reference_float64():
    opts = dict(lr=1e-3, betas=(0.9, 0.99, 0.8), alpha=0.7, eps=1e-8)
    got, _ = run(lambda p: M3.algorithm1(p, slow_every=2, ns_dtype="float64", **opts), 5)
    want = reference(5, torch.float64, lr=1e-3, betas=(0.9, 0.99, 0.8), alpha=0.7, eps=1e-8, f=2,
                     mode="sum", bias_correction=False, rms_target=None)
    assert_traj_close(got, want, atol=1e-12)


def test_default_options_match_reference_float32():
    got, _ = run(lambda p: M3(p, slow_every=2), 5, torch.float32)
    want = reference(5, torch.float32, lr=1e-3, betas=(0.95, 0.999, 0.95), alpha=0.5, eps=1e-8, f=2,
                     mode="ema", bias_correction=True, rms_target=0.2)
    assert_traj_close(got, want, atol=1e-6)


@pytest.mark.parametrize("mode", ["ema", "sum"])
def test_slow_memory_changes_only_every_f_steps(mode):
    f = 3
    slow, ortho, window, fast = [], [], [], []

    def record(opt, w):
        st = opt.state[w]
        slow.append(st["slow"].clone())
        ortho.append(st["slow_ortho"].clone())
        window.append(st["window"].clone())
        fast.append(st["fast"].clone())

    _, opt = run(lambda p: M3(p, slow_every=f, accumulate=mode), 10, on_step=record)
    zero = torch.zeros_like(slow[0])
    for i in range(10):
        t = i + 1
        prev_slow = slow[i - 1] if i else zero
        changed = not torch.equal(slow[i], prev_slow)
        assert changed == (t % f == 0), f"step {t}"
        assert (not torch.equal(ortho[i], ortho[i - 1] if i else zero)) == (t % f == 0)
        # The window is emptied exactly when the slow memory is written.
        assert torch.equal(window[i], zero) == (t % f == 0)
        # The fast memory changes every step.
        assert not torch.equal(fast[i], fast[i - 1] if i else zero)
    assert opt.state[opt.param_groups[0]["params"][0]]["slow_updates"] == 10 // f
    # Algorithm 1's first window is empty: O2 = 0 during the first f steps.
    assert all(torch.equal(o, zero) for o in ortho[: f - 1])


def test_one_d_params_use_the_adamw_fallback():
    _, opt = run(lambda p: M3(p), 2)
    w, b = opt.param_groups[0]["params"]
    assert {"slow", "window", "slow_ortho"} <= set(opt.state[w])
    assert set(opt.state[b]) == {"step", "fast", "second_moment"}


def test_use_muon_false_group_uses_the_fallback():
    w = torch.nn.Parameter(torch.randn(5, 3, dtype=torch.float64))
    opt = M3([{"params": [w], "use_muon": False}])
    w.grad = torch.ones_like(w)
    opt.step()
    assert "slow" not in opt.state[w]


@pytest.mark.parametrize("mode", ["ema", "sum"])
def test_state_dict_roundtrip_and_resume_across_a_window(mode):
    def make(params):
        return M3(params, slow_every=3, accumulate=mode, weight_decay=0.01)

    w0, b0 = init_params(torch.float32)
    w, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    opt = make([w, b])
    for s in range(4):  # stop mid-window: the window buffer must travel with the checkpoint
        w.grad, b.grad = grads(w, b, s)
        opt.step()
    sd = opt.state_dict()
    assert _plain(sd)
    loaded = _roundtrip({"opt": sd, "w": w.detach(), "b": b.detach()})

    w2, b2 = torch.nn.Parameter(loaded["w"].clone()), torch.nn.Parameter(loaded["b"].clone())
    opt2 = make([w2, b2])
    opt2.load_state_dict(loaded["opt"])
    for s in range(4, 8):  # crosses the slow write at step 6
        w.grad, b.grad = grads(w, b, s)
        opt.step()
        w2.grad, b2.grad = grads(w2, b2, s)
        opt2.step()
        assert torch.equal(w, w2) and torch.equal(b, b2)
    assert torch.equal(opt.state[w]["slow"], opt2.state[w2]["slow"])


def test_factory_and_bad_options():
    p = [torch.nn.Parameter(torch.zeros(3, 3))]
    opt = build_optimizer("m3", p, slow_every=64, ns_steps=5, lr=3e-4)
    assert isinstance(opt, M3) and opt.param_groups[0]["slow_every"] == 64
    alg1 = build_optimizer("m3_algorithm1", p)
    g = alg1.param_groups[0]
    assert (g["accumulate"], g["bias_correction"], g["rms_normalize"]) == ("sum", False, False)
    for bad in (dict(accumulate="mean"), dict(slow_every=0), dict(betas=(0.9, 0.99)), dict(ns_variant="x")):
        with pytest.raises(ValueError):
            M3(p, **bad)
