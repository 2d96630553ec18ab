"""Delta momentum (Eq. 49): matches plain references (row / flatten, normalised or not), the guard
keeps the memory bounded under large gradients, checkpoints resume."""

import pytest
import torch

from runtime.optim import DeltaMomentum, SGDMomentum, build_optimizer
from optim_common import init_params, grads, assert_traj_close, _plain, _roundtrip


def run(make_opt, steps, dtype=torch.float64, scale=1.0):
    w0, b0 = init_params(dtype)
    w, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    opt = make_opt([w, b])
    out = []
    for s in range(steps):
        w.grad, b.grad = grads(w, b, s, scale)
        opt.step()
        out.append((w.detach().clone(), b.detach().clone()))
    return out, opt


# --- plain reference, written from Eq. 49 --------------------------------------------------


def delta_write(m, g, alpha, lr, erase, normalize):
    """m, g: [rows, width]; each row r: m_r (alpha I - erase k_r k_r^T) - lr g_r."""
    new = torch.empty_like(m)
    for r in range(m.shape[0]):
        k = g[r] / g[r].norm() if normalize else g[r]
        eye = torch.eye(m.shape[1], dtype=m.dtype)
        new[r] = m[r] @ (alpha * eye - erase * torch.outer(k, k)) - lr * g[r]
    return new


def reference(steps, dtype, *, lr, alpha, erase, normalize, mode, wd=0.0, scale=1.0):
    w, b = init_params(dtype)
    mw, mb = torch.zeros_like(w), torch.zeros_like(b)
    out = []
    for s in range(steps):
        gw, gb = grads(w, b, s, scale)
        if mode == "row":
            mw = delta_write(mw, gw, alpha, lr, erase, normalize)
        else:
            mw = delta_write(mw.reshape(1, -1), gw.reshape(1, -1), alpha, lr, erase, normalize).reshape(w.shape)
        # a bias is always one vector
        mb = delta_write(mb.reshape(1, -1), gb.reshape(1, -1), alpha, lr, erase, normalize).reshape(b.shape)
        w = w * (1 - lr * wd) + mw
        b = b * (1 - lr * wd) + mb
        out.append((w.clone(), b.clone()))
    return out


# --- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["row", "flatten"])
@pytest.mark.parametrize("normalize", [True, False])
def test_first_steps_match_equation_49(mode, normalize):
    opts = dict(lr=0.05, alpha=0.9, erase=1.0, normalize=normalize, mode=mode)
    got, _ = run(lambda p: DeltaMomentum(p, weight_decay=0.1, **opts), 5)
    assert_traj_close(got, reference(5, torch.float64, wd=0.1, **opts), atol=1e-12)


def test_float32_defaults():
    got, _ = run(lambda p: DeltaMomentum(p), 5, torch.float32)
    want = reference(5, torch.float32, lr=1e-2, alpha=0.9, erase=1.0, normalize=True, mode="row")
    assert_traj_close(got, want, atol=1e-6)


def test_erase_zero_is_paper_form_momentum():
    got, _ = run(lambda p: DeltaMomentum(p, lr=0.05, alpha=0.9, erase=0.0), 5)
    want, _ = run(lambda p: SGDMomentum(p, lr=0.05, momentum=0.9, form="paper"), 5)
    assert_traj_close(got, want, atol=1e-12)


def test_erasure_removes_the_old_component_along_the_gradient():
    # With unit keys and alpha = erase = 1, the memory forgets exactly its component along g.
    p = torch.nn.Parameter(torch.zeros(1, 3, dtype=torch.float64))
    opt = DeltaMomentum([p], lr=1.0, alpha=1.0, erase=1.0)
    p.grad = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    opt.step()  # m = [-1, 0, 0]
    p.grad = torch.tensor([[0.0, 2.0, 0.0]], dtype=torch.float64)
    opt.step()  # orthogonal gradient: nothing erased, m = [-1, -2, 0]
    torch.testing.assert_close(opt.state[p]["momentum"], torch.tensor([[-1.0, -2.0, 0.0]], dtype=torch.float64))
    p.grad = torch.tensor([[3.0, 0.0, 0.0]], dtype=torch.float64)
    opt.step()  # the old -1 along e1 is erased, then -3 written: m = [-3, -2, 0]
    torch.testing.assert_close(opt.state[p]["momentum"], torch.tensor([[-3.0, -2.0, 0.0]], dtype=torch.float64))


def test_guard_keeps_memory_bounded_under_large_gradients():
    # Gradients 300x larger: ||g||^2 >> 1 + alpha, so raw Eq. 49 amplifies the memory along g
    # every step, while unit keys keep the decay map non-expansive.
    def mem_norm(normalize):
        _, opt = run(lambda p: DeltaMomentum(p, lr=1e-4, normalize=normalize), 8, scale=300.0)
        w = opt.param_groups[0]["params"][0]
        return opt.state[w]["momentum"].norm().item()

    guarded, raw = mem_norm(True), mem_norm(False)
    # Guarded: at most sum_i lr ||g_i|| (each step is non-expansive plus one write).
    assert guarded < 8 * 1e-4 * 300 * 2
    assert raw > 1e3 * guarded


def test_state_dict_roundtrip_and_resume():
    def make(params):
        return DeltaMomentum(params, lr=0.05, weight_decay=0.01)

    w0, b0 = init_params(torch.float32)
    w, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    opt = make([w, b])
    for s in range(3):
        w.grad, b.grad = grads(w, b, s)
        opt.step()
    sd = opt.state_dict()
    assert _plain(sd)
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
    opt = build_optimizer("delta-momentum", p, mode="flatten")
    assert isinstance(opt, DeltaMomentum) and opt.param_groups[0]["mode"] == "flatten"
    with pytest.raises(ValueError):
        DeltaMomentum(p, mode="column")
