"""SGD with momentum (Eq. 10-13): torch form == torch.optim.SGD, paper form == its equation."""

import pytest
import torch

from runtime.optim import SGDMomentum, build_optimizer
from optim_common import init_params, grads, assert_traj_close, _roundtrip


def run(make_opt, steps, dtype=torch.float64, lrs=None):
    w0, b0 = init_params(dtype)
    w, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())
    opt = make_opt([w, b])
    out = []
    for s in range(steps):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[s]
        w.grad, b.grad = grads(w, b, s)
        opt.step()
        out.append((w.detach().clone(), b.detach().clone()))
    return out


def reference_paper(steps, lr, alpha, nesterov=False, weight_decay=0.0, lrs=None):
    """Eq. 10-13 written out: m <- alpha m - eta g; W <- W + m (Nesterov: + alpha m - eta g)."""
    params = list(init_params(torch.float64))
    mem = [torch.zeros_like(p) for p in params]
    out = []
    for s in range(steps):
        eta = lr if lrs is None else lrs[s]
        gs = grads(params[0], params[1], s)
        for i, g in enumerate(gs):
            g = g + weight_decay * params[i]
            mem[i] = alpha * mem[i] - eta * g
            if nesterov:
                params[i] = params[i] + alpha * mem[i] - eta * g
            else:
                params[i] = params[i] + mem[i]
        out.append(tuple(p.clone() for p in params))
    return out


# --- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["torch", "paper"])
@pytest.mark.parametrize("nesterov", [False, True])
def test_first_steps_match_equation(form, nesterov):
    got = run(lambda p: SGDMomentum(p, lr=0.1, momentum=0.9, nesterov=nesterov, form=form), 5)
    want = reference_paper(5, lr=0.1, alpha=0.9, nesterov=nesterov)
    assert_traj_close(got, want, atol=1e-12)


def test_weight_decay_matches_equation():
    for form in ("torch", "paper"):
        got = run(lambda p: SGDMomentum(p, lr=0.05, momentum=0.8, weight_decay=0.1, form=form), 4)
        assert_traj_close(got, reference_paper(4, lr=0.05, alpha=0.8, weight_decay=0.1), atol=1e-12)


def test_torch_form_is_torch_sgd_exactly():
    got = run(lambda p: SGDMomentum(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=False), 5, torch.float32)
    want = run(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1), 5, torch.float32)
    for (wa, ba), (wb, bb) in zip(got, want):
        assert torch.equal(wa, wb) and torch.equal(ba, bb)


def test_forms_differ_only_under_a_changing_lr():
    lrs = [0.1, 0.1, 0.05, 0.02, 0.02]
    paper = run(lambda p: SGDMomentum(p, lr=0.1, momentum=0.9, form="paper"), 5, lrs=lrs)
    torch_form = run(lambda p: SGDMomentum(p, lr=0.1, momentum=0.9), 5, lrs=lrs)
    # The paper form stores eta_t g_t at write time.
    assert_traj_close(paper, reference_paper(5, lr=0.1, alpha=0.9, lrs=lrs), atol=1e-12)
    # torch rescales the whole memory by today's lr, so the trajectories separate at step 3.
    assert_traj_close(paper[:2], torch_form[:2], atol=1e-12)
    assert (paper[2][0] - torch_form[2][0]).abs().max() > 1e-4


def test_mixed_groups():
    def make(params):
        w, b = params
        return SGDMomentum([{"params": [w]}, {"params": [b], "form": "paper"}], lr=0.1, momentum=0.9)

    got = run(make, 4)
    assert_traj_close(got, reference_paper(4, lr=0.1, alpha=0.9), atol=1e-12)


def _plain(obj):
    if isinstance(obj, torch.Tensor):
        return True
    if isinstance(obj, (bool, int, float, str)):
        return True
    if isinstance(obj, (list, tuple)):
        return all(_plain(v) for v in obj)
    if isinstance(obj, dict):
        return all(isinstance(k, (int, str)) and _plain(v) for k, v in obj.items())
    return False


@pytest.mark.parametrize("form", ["torch", "paper"])
def test_state_dict_roundtrip_and_resume(form):
    def make(params):
        return SGDMomentum(params, lr=0.1, momentum=0.9, nesterov=True, form=form)

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


def test_factory_names():
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(build_optimizer("sgd", p, lr=0.1), SGDMomentum)
    opt = build_optimizer("SGD-Momentum", p, lr=0.1, form="paper")
    assert opt.param_groups[0]["form"] == "paper"
    with pytest.raises(ValueError):
        SGDMomentum(p, form="nope")
