"""Newton-Schulz orthogonalisation: the singular-value band, orientation, batching, dtypes."""

import pytest
import torch

from runtime.optim.newton_schulz import as_matrix, newton_schulz


def reference_ns(g: torch.Tensor, steps: int, coeffs) -> torch.Tensor:
    """Plain NS on one matrix, written from the formulas (not from the module)."""
    x = g.clone()
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (torch.sqrt((x * x).sum()) + 1e-7)
    for _ in range(steps):
        a_mat = x @ x.T
        if len(coeffs) == 3:
            a, b, c = coeffs
            x = a * x + b * (a_mat @ x) + c * (a_mat @ (a_mat @ x))
        else:
            a, b = coeffs
            x = a * x + b * (a_mat @ x)
    return x.T if tall else x


def svals(t: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(t.double())


SHAPES = [(32, 64), (64, 32), (64, 64), (128, 512), (8, 200)]


@pytest.mark.parametrize("shape", SHAPES)
def test_matches_plain_reference_float64(shape):
    g = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for variant, coeffs in [("quintic", (3.4445, -4.7750, 2.0315)), ("cubic", (1.5, -0.5))]:
        out = newton_schulz(g, 5, variant=variant, dtype="float64")
        torch.testing.assert_close(out, reference_ns(g, 5, coeffs), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_quintic_five_steps_band_random(shape):
    # Muon's known behaviour: 5 quintic steps leave the singular values in a band around 1, not
    # at 1. Measured on Gaussian matrices (square ones included, whose smallest singular value
    # is ~1e-3 after normalisation): [0.68, 1.18].
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    s = svals(newton_schulz(g, 5))
    assert s.min() >= 0.65 and s.max() <= 1.2, (s.min().item(), s.max().item())


def test_quintic_band_is_the_scalar_polynomial():
    # On a diagonal matrix NS acts on each (Frobenius-normalised) singular value separately, so
    # the band can be mapped exactly. A batch of diag(x, sqrt(1 - x^2)) has Frobenius norm 1,
    # so its normalised singular values are x and sqrt(1 - x^2): together they sweep [2e-3, 1].
    # Every one lands in [0.68, 1.21] after 5 steps.
    x = torch.logspace(torch.log10(torch.tensor(2e-3)).item(), 0, 2000, dtype=torch.float64)
    diag = torch.stack([x, torch.sqrt(1 - x * x)], dim=-1)
    out = newton_schulz(torch.diag_embed(diag), 5, dtype="float64", eps=0.0)
    s = torch.diagonal(out, dim1=-2, dim2=-1)[diag >= 2e-3]  # drop the 0 partner of x = 1
    assert s.min() >= 0.68 and s.max() <= 1.21, (s.min().item(), s.max().item())
    assert s.max() > 1.2  # the band's top is really reached (the 1.2 of the brief is too tight)


def test_small_singular_values_are_not_lifted_by_five_steps():
    # 3.4445**5 ~ 485: a normalised singular value of 1e-4 stays below 0.05. This is the limit
    # to keep in mind for ill-conditioned momenta.
    s_in = torch.tensor([1.0, 1.0, 1e-4], dtype=torch.float64)
    out = torch.diagonal(newton_schulz(torch.diag(s_in), 5, dtype="float64"))
    assert out[-1] < 0.05


def test_cubic_converges_to_one_but_slowly():
    g = torch.randn(32, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    s5 = svals(newton_schulz(g, 5, variant="cubic", dtype="float64"))
    s25 = svals(newton_schulz(g, 25, variant="cubic", dtype="float64"))
    # The cubic never overshoots 1 from below and is far from 1 after 5 steps...
    assert s5.max() <= 1.0 + 1e-9 and s5.min() < 0.6
    # ...but reaches it (to 1e-6) given enough steps.
    assert (s25 - 1).abs().max() < 1e-6


def test_tall_matrices_are_transposed():
    g = torch.randn(48, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(newton_schulz(g, dtype="float64"), newton_schulz(g.T, dtype="float64").T)


def test_batched_equals_per_matrix():
    g = torch.randn(3, 2, 16, 24, generator=torch.Generator().manual_seed(5))
    out = newton_schulz(g)
    assert out.shape == g.shape
    for i in range(3):
        for j in range(2):
            torch.testing.assert_close(out[i, j], newton_schulz(g[i, j]), rtol=1e-5, atol=1e-6)


def test_scale_invariant_and_zero_safe():
    g = torch.randn(16, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(
        newton_schulz(1e3 * g, dtype="float64"), newton_schulz(g, dtype="float64"), rtol=0, atol=1e-7
    )
    z = newton_schulz(torch.zeros(8, 8))
    assert torch.equal(z, torch.zeros(8, 8))


def test_bfloat16_compute_keeps_input_dtype_and_band():
    g = torch.randn(64, 128, generator=torch.Generator().manual_seed(7))
    out = newton_schulz(g, dtype="bfloat16")
    assert out.dtype == torch.float32
    s = svals(out)
    # bf16 rounding widens the band a little (measured [0.67, 1.14] here).
    assert s.min() >= 0.6 and s.max() <= 1.25
    out_dtype_obj = newton_schulz(g, dtype=torch.bfloat16)
    assert torch.equal(out, out_dtype_obj)


def test_rejects_vectors_and_bad_options():
    with pytest.raises(ValueError):
        newton_schulz(torch.ones(5))
    with pytest.raises(ValueError):
        newton_schulz(torch.ones(2, 2), variant="septic")
    with pytest.raises(ValueError):
        newton_schulz(torch.ones(2, 2), dtype="int8")


def test_as_matrix_flattens_conv_kernels():
    w = torch.randn(8, 3, 5, 5)
    assert as_matrix(w).shape == (8, 75)
    assert as_matrix(torch.randn(4, 6)).shape == (4, 6)
