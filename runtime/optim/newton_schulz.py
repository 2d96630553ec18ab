"""Newton-Schulz orthogonalisation: the inner optimiser that Muon and M3 run on a momentum.

Nested Learning (section 4, Eq. 42-44) reads Muon's Newton-Schulz (NS) step as an *inner
optimisation*: find an orthogonal O close to the momentum g by gradient descent on

    L~(O) = ||O^T O - I||_F^2        (plus a proximity term to g),

started at O_0 = g. Dropping the proximity term, one GD step on L~ with step 1/4 is

    O <- O - (1/2) O (O^T O - I) = 1.5 O - 0.5 O O^T O,

the classical *cubic* Newton-Schulz iteration. It converges to the polar factor U V^T of
g = U S V^T for every singular value in (0, sqrt(3)), but slowly for small ones (each step
multiplies a small singular value by only 1.5).

Muon (Jordan et al.) instead uses a *quintic* polynomial with coefficients tuned so that small
singular values grow fast (slope 3.4445 at 0):

    A = X X^T,   X <- a X + (b A + c A A) X,   (a, b, c) = (3.4445, -4.7750, 2.0315).

These coefficients do not converge to exactly 1: they trade accuracy for speed, and after
5 steps the singular values lie in a band around 1. Measured (tests/optim/test_newton_schulz.py):
every singular value that is >= 2e-3 after Frobenius normalisation ends in [0.68, 1.21]
(random Gaussian matrices: [0.68, 1.18]); smaller ones are not lifted all the way (5 steps
multiply them by at most 3.4445**5 ~ 485). Muon's authors report that this band does not hurt
training; the cubic variant needs ~20 steps to reach 1 +- 1e-3 on the same inputs.

Both variants pre-normalise by the Frobenius norm, which bounds every singular value by 1 (so the
iteration starts inside its basin), and work on the "wide" orientation (rows <= cols) so the Gram
matrix X X^T is the smaller of the two. NS(c g) = NS(g) for any c > 0 (up to the epsilon), which
is why the optimisers that use it can ignore the overall scale of their momenta.
"""

from __future__ import annotations

import torch

# Muon's quintic coefficients (a, b, c): X <- a X + b (X X^T) X + c (X X^T)^2 X.
QUINTIC_COEFFS = (3.4445, -4.7750, 2.0315)
# Cubic Newton-Schulz (a, b): X <- a X + b (X X^T) X; one GD step on ||O^T O - I||^2 (Eq. 44).
CUBIC_COEFFS = (1.5, -0.5)

VARIANTS = ("quintic", "cubic")

_DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Map a dtype name ("float32", "bfloat16", ...) or a torch.dtype to a torch.dtype.

    Optimisers keep the *name* in their param groups so that state_dict() stays plain data.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown NS dtype {dtype!r}; expected one of {sorted(_DTYPES)}") from None


def dtype_name(dtype: str | torch.dtype) -> str:
    """The canonical name of a dtype accepted by resolve_dtype (for storing in param groups)."""
    resolved = resolve_dtype(dtype)
    for name, value in _DTYPES.items():
        if value == resolved:
            return name
    raise AssertionError("unreachable")


def newton_schulz(
    g: torch.Tensor,
    steps: int = 5,
    *,
    variant: str = "quintic",
    dtype: str | torch.dtype = "float32",
    eps: float = 1e-7,
) -> torch.Tensor:
    """Approximately orthogonalise ``g`` (replace its singular values by ~1), Eq. 42-44.

    Args:
        g: a tensor of shape [..., m, n]; leading dimensions are a batch, each matrix is treated
           on its own.
        steps: number of NS iterations (= inner GD steps of Eq. 44). Muon uses 5.
        variant: "quintic" (Muon's coefficients 3.4445, -4.7750, 2.0315; fast, ends in a band
           around 1) or "cubic" (1.5, -0.5; converges to exactly 1 but slowly for small singular
           values: 5 steps multiply a tiny singular value by only 1.5**5 ~ 7.6).
        dtype: the compute dtype, "float32" (default) or "bfloat16" (what Muon uses on GPUs;
           cheaper, singular values land in the same band with more noise). "float64" is
           accepted too (tests use it for exact comparisons).
        eps: added to the Frobenius norm so a zero matrix maps to zero instead of NaN.

    Returns:
        a tensor with the shape and dtype of ``g``.
    """
    if g.ndim < 2:
        raise ValueError(f"newton_schulz needs a [..., m, n] tensor, got shape {tuple(g.shape)}")
    if variant == "quintic":
        coeffs = QUINTIC_COEFFS
    elif variant == "cubic":
        coeffs = CUBIC_COEFFS
    else:
        raise ValueError(f"unknown NS variant {variant!r}; expected one of {VARIANTS}")

    x = g.to(resolve_dtype(dtype))
    # Work on the wide orientation so the Gram matrix is min(m, n) square (cheaper), and so the
    # quintic's "X X^T" acts on the smaller side; the transpose is undone at the end.
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    # Frobenius pre-normalisation: sigma_max <= ||X||_F, so all singular values start in (0, 1].
    x = x / (torch.linalg.matrix_norm(x, ord="fro", keepdim=True) + eps)

    for _ in range(steps):
        gram = x @ x.mT
        if len(coeffs) == 3:
            a, b, c = coeffs
            # a X + (b A + c A^2) X: one polynomial p(A) X, written to need two Gram products.
            poly = b * gram + c * (gram @ gram)
            x = a * x + poly @ x
        else:
            a, b = coeffs
            x = a * x + b * (gram @ x)

    if tall:
        x = x.mT
    return x.to(g.dtype)


def as_matrix(t: torch.Tensor) -> torch.Tensor:
    """View a parameter-shaped tensor as the 2-D matrix the matrix optimisers act on.

    Conv-like tensors [out, in, k1, k2, ...] become [out, in * k1 * k2 * ...]: each output
    channel is one row, which is how Muon treats them. 2-D tensors are returned unchanged.
    """
    if t.ndim < 2:
        raise ValueError("as_matrix expects a tensor with ndim >= 2")
    return t.reshape(t.size(0), -1)
