"""bench/roofline.py counts what a kernel does from its own code in Triton's interpreter: FLOPs of
every tl.dot, bytes of every live load and store lane, distinct bytes per launch, launches and
programs. Checked on a small kernel whose counts are known by hand."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ["TRITON_INTERPRET"] = "1"
torch = pytest.importorskip("torch")
triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.roofline import WORKLOADS, counting, measure  # noqa: E402


@triton.jit
def _twice_and_product(a, b, out, n, M: tl.constexpr, K: tl.constexpr, N: tl.constexpr):
    """out = a @ b, with a loaded twice and a masked load of b's first n rows."""
    o_m, o_k, o_n = tl.arange(0, M), tl.arange(0, K), tl.arange(0, N)
    x = tl.load(a + o_m[:, None] * K + o_k[None, :])
    x += tl.load(a + o_m[:, None] * K + o_k[None, :])  # the same addresses again
    y = tl.load(b + o_k[:, None] * N + o_n[None, :], mask=(o_k < n)[:, None], other=0.0)
    tl.store(out + tl.program_id(0) * M * N + o_m[:, None] * N + o_n[None, :], tl.dot(x, y))


def test_counts_of_a_small_kernel_match_the_hand_count():
    M, K, N, n = 16, 32, 16, 20
    a, b = torch.randn(M, K), torch.randn(K, N)
    out = torch.empty(3, M, N)
    with counting() as counts:
        _twice_and_product[(3,)](a, b, out, n, M=M, K=K, N=N)
        _twice_and_product[(3,)](a, b, out, n, M=M, K=K, N=N)
    c = counts["_twice_and_product"]
    assert (c.launches, c.programs, c.dots) == (2, 6, 6)
    assert c.flops == 6 * 2 * M * N * K
    assert c.loaded == 6 * 4 * (2 * M * K + n * N)  # the masked-off rows of b are not loaded
    assert c.stored == 6 * 4 * M * N
    # per launch: a once, b's live rows once, every program's own output tile
    assert c.compulsory == 2 * 4 * (M * K + n * N + 3 * M * N)
    live_b = torch.where(torch.arange(K)[:, None] < n, b, 0.0)
    assert torch.allclose(out[2], (2 * a) @ live_b, atol=1e-5)


def test_scaling_to_the_benchmark_shape_is_linear_in_chunks_and_programs():
    """The Hebbian workload at two lengths: the per-chunk cost times the benchmark's chunks plus
    the fixed cost, times its (batch, head) programs, equals a direct count at a third length."""
    w = next(x for x in WORKLOADS if x.name == "hebbian_gated")
    with counting() as direct:
        w.run(3 * w.chunk)
    scaled = measure(type(w)(**{**w.__dict__, "shape": {"B": 1, "H": 1, "T": 3 * w.chunk}}))
    assert scaled.keys() == direct.keys()
    for name, c in direct.items():
        assert scaled[name].flops == pytest.approx(c.flops)
        assert scaled[name].loaded + scaled[name].stored == pytest.approx(c.loaded + c.stored)
