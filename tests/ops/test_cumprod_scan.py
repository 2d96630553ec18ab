"""cumprod_scan (runtime/ops/mlp_memory.py): torch.cumprod without the host read-back of its backward."""
import pytest
import torch

from runtime.ops.mlp_memory import cumprod_scan, decay_matrix


@pytest.mark.parametrize("shape,dim", [((3, 5, 7), -1), ((2, 16, 16), -2), ((4, 1), -1), ((2, 63), 1),
                                       ((3, 0), -1)])
def test_equals_cumprod_with_zeros(shape, dim):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(*shape, generator=g, dtype=torch.float64)
    if x.numel():
        x.view(-1)[::5] = 0  # zeros: where a division-based product would fail
    torch.testing.assert_close(cumprod_scan(x, dim), torch.cumprod(x, dim), rtol=1e-14, atol=0)


def test_first_and_second_derivatives_with_zeros():
    # gradcheck / gradgradcheck: finite differences in float64 (the self-modifying memories
    # differentiate through the decays twice)
    x = torch.rand(2, 6, dtype=torch.float64)
    x[0, 2] = 0.0
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: cumprod_scan(t, -1), (x,))
    assert torch.autograd.gradgradcheck(lambda t: cumprod_scan(t, -1), (x,))


def test_decay_matrix_is_the_product_of_decays():
    g = torch.rand(2, 9, dtype=torch.float64)
    g[1, 4] = 0.0
    A, a0 = decay_matrix(g)
    for i in range(9):
        for j in range(9):
            want = torch.prod(g[:, j + 1:i + 1], dim=-1) if j <= i else torch.zeros(2, dtype=torch.float64)
            torch.testing.assert_close(A[:, i, j], want, rtol=1e-14, atol=0)
    torch.testing.assert_close(a0, torch.cumprod(g, -1), rtol=1e-14, atol=0)
