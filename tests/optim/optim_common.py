"""Setup shared by tests/optim/test_*.py: the small model, its per-step gradients, a Newton-Schulz
reference, trajectory comparison and the state-dict round-trip helpers."""

import io

import torch

# --- a small model: y = tanh(x W^T + b), W [6, 4] (tall), b [6]; new data every step ---------


def init_params(dtype):
    gen = torch.Generator().manual_seed(0)
    w = 0.5 * torch.randn(6, 4, generator=gen, dtype=torch.float64)
    b = 0.1 * torch.randn(6, generator=gen, dtype=torch.float64)
    return w.to(dtype), b.to(dtype)


def grads(w, b, step, scale=1.0):
    gen = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(8, 4, generator=gen, dtype=torch.float64).to(w.dtype)
    t = torch.randn(8, 6, generator=gen, dtype=torch.float64).to(w.dtype)
    w = w.detach().requires_grad_(True)
    b = b.detach().requires_grad_(True)
    loss = scale * (torch.tanh(x @ w.T + b) - t).square().mean()
    return torch.autograd.grad(loss, (w, b))


def ns5(g):
    x = g.T if g.shape[0] > g.shape[1] else g
    x = x / (torch.sqrt((x * x).sum()) + 1e-7)
    for _ in range(5):
        a = x @ x.T
        x = 3.4445 * x - 4.7750 * (a @ x) + 2.0315 * (a @ (a @ x))
    return x.T if g.shape[0] > g.shape[1] else x


def assert_traj_close(a, b, atol):
    for (wa, ba), (wb, bb) in zip(a, b, strict=True):
        torch.testing.assert_close(wa, wb, rtol=0, atol=atol)
        torch.testing.assert_close(ba, bb, rtol=0, atol=atol)


def _plain(obj):
    if isinstance(obj, torch.Tensor) or isinstance(obj, (bool, int, float, str)):
        return True
    if isinstance(obj, list):
        return all(_plain(v) for v in obj)
    if isinstance(obj, dict):
        return all(isinstance(k, (int, str)) and _plain(v) for k, v in obj.items())
    return False


def _roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)
