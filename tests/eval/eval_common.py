"""Shared helpers for the evaluation tests: chance-level checks, guessers and a small inline haystack."""

from __future__ import annotations

import math
import random

# Tolerance of the chance checks: Z standard deviations of the binomial (or Poisson-binomial, when
# examples have different numbers of choices) mean. The guessers are seeded, so a test is
# deterministic; Z = 4 means a fresh seed fails by chance about once in 16,000 runs.
Z = 4.0


def chance_band(chances: list[float], z: float = Z) -> tuple[float, float]:
    """(expected accuracy, tolerance) for independent examples with these success chances."""
    n = len(chances)
    mean = sum(chances) / n
    sigma = math.sqrt(sum(p * (1 - p) for p in chances)) / n
    return mean, z * sigma


def assert_chance(acc: float, chances: list[float], z: float = Z) -> None:
    mean, tol = chance_band(chances, z)
    assert abs(acc - mean) <= tol, f"accuracy {acc:.3f} is not chance {mean:.3f} +- {tol:.3f}"


def uniform_scorer(seed: int = 0):
    """A log-likelihood function that knows nothing: an independent uniform number per call."""
    rng = random.Random(seed)
    return lambda context, continuation: rng.random()


def scorer_from(answer_of):
    """A log-likelihood function from an oracle: 0 for a right continuation, -10 for a wrong one.

    answer_of(context) returns the set of right continuations (stripped) for that context."""
    return lambda context, continuation: 0.0 if continuation.strip() in answer_of(context) else -10.0


# Original filler prose for the haystack tests (no digits, no bAbI names or places).
PROSE = [
    "The harbour town woke slowly under a grey sky. Fishermen argued about the weather while gulls "
    "circled the masts! Nobody remembered who had painted the lighthouse red, or why. A baker opened "
    "his shutters and the smell of bread drifted down the lane. Children ran along the sea wall, "
    "shouting at the waves as if the waves could hear them?",
    "In the afternoon the wind turned and the boats came back early. An old sailor counted the ropes "
    "twice and frowned. The market stalls folded their awnings one by one. Somewhere a radio played a "
    "song that everyone knew but nobody could name. By evening the streets were quiet again, and the "
    "lamps along the quay flickered on.",
]
