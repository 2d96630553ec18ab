"""Comparisons shared by the op tests (float64 chunk form vs token-by-token definition)."""
from __future__ import annotations


def rel_err(a, b) -> float:
    """Largest absolute difference over the largest magnitude of the reference."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def assert_close(a, b, rtol=1e-9):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = rel_err(a, b)
    assert err < rtol, err
