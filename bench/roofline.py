"""What bounds each kernel: FLOPs, bytes and launches counted from the kernels' own code, set
against the time the H100 measured (issue 5: "where a target is missed, say what limits it").

    python bench/roofline.py [--only smt,titans,gated_delta,delta,hebbian_gated,hebbian]

Each kernel runs once, forward and backward, in Triton's interpreter (CPU) at its benchmark widths
for one (batch, head) and two short lengths. Every `tl.dot` counts 2 M N K FLOPs, every load and
store the bytes of its live lanes ("requested": what the SMs ask the memory system for, L2 hits
included), and the distinct addresses a launch touches give the bytes it cannot avoid
("compulsory": each byte read or written at least once). The two lengths separate the cost per
chunk from the fixed one, and the counts are scaled to the benchmark shape: programs x (fixed +
chunks x per chunk). Compulsory bytes across programs are summed (the per-head weights are
counted once per batch row, a small overcount).

Per kernel the table gives those totals, the time each takes at the card's peaks (the FLOPs at
tensor-core rate; requested bytes at HBM rate, an upper bound on their time when they miss L2;
compulsory bytes at HBM rate, a lower bound) and the measured time from bench/RESULTS.md, so
"measured / bound" says how far the kernel sits above what its arithmetic and traffic require.
Each runs with the dtypes it was benchmarked in (the linear rules' q, k, v in bf16; the deep
memories in fp32). No assertion: this is a benchmark.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

# before triton is imported: the counts come from the interpreter
os.environ["TRITON_INTERPRET"] = "1"

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from triton.runtime import interpreter as interp  # noqa: E402

# NVIDIA H100 SXM5 datasheet peaks (dense): the card of every measured time below.
H100 = {"tf32 TFLOP/s": 494.7, "bf16 TFLOP/s": 989.4, "HBM TB/s": 3.35, "L2 MB": 50, "SMs": 132}


@dataclass
class Counts:
    """Totals of one kernel (one name), over its launches."""
    launches: int = 0
    programs: int = 0
    dots: int = 0
    flops: float = 0.0
    loaded: float = 0.0
    stored: float = 0.0
    compulsory: float = 0.0
    _addresses: list = field(default_factory=list, repr=False)

    def scaled(self, k: float) -> "Counts":
        return Counts(self.launches, self.programs, round(self.dots * k), self.flops * k,
                      self.loaded * k, self.stored * k, self.compulsory * k)

    def minus(self, o: "Counts") -> "Counts":
        return Counts(self.launches - o.launches, self.programs - o.programs, self.dots - o.dots,
                      self.flops - o.flops, self.loaded - o.loaded, self.stored - o.stored,
                      self.compulsory - o.compulsory)

    def plus(self, o: "Counts") -> "Counts":
        return self.minus(o.scaled(-1.0))


@contextlib.contextmanager
def counting():
    """{kernel name: Counts} of every launch inside the block (the interpreter's builder patched:
    its loads, stores and dots report their sizes before they run)."""
    counts: dict[str, Counts] = {}
    current: list[Counts] = []
    builder = interp.InterpreterBuilder
    load, store, dot = builder.create_masked_load, builder.create_masked_store, builder.create_dot
    call = interp.GridExecutor.__call__

    def _touch(ptrs, mask, nbytes):
        c = current[-1]
        live = ptrs.data[mask.data] if mask is not None else ptrs.data.ravel()
        c._addresses.append((nbytes, live.astype(np.int64).ravel()))
        return live.size * nbytes

    def masked_load(self, ptrs, mask, other, *rest):
        current[-1].loaded += _touch(ptrs, mask, ptrs.get_element_ty().primitive_bitwidth // 8)
        return load(self, ptrs, mask, other, *rest)

    def masked_store(self, ptrs, value, mask, *rest):
        current[-1].stored += _touch(ptrs, mask, ptrs.get_element_ty().primitive_bitwidth // 8)
        return store(self, ptrs, value, mask, *rest)

    def create_dot(self, a, b, d, *rest):
        (m, k), n = a.data.shape[-2:], b.data.shape[-1]
        current[-1].dots += 1
        current[-1].flops += 2.0 * m * n * k * math.prod(a.data.shape[:-2])
        return dot(self, a, b, d, *rest)

    def launch(self, *args, **kwargs):
        c = counts.setdefault(self.fn.__name__, Counts())
        current.append(c)
        grid = self.grid(None) if callable(self.grid) else self.grid
        c.launches += 1
        c.programs += math.prod(grid)
        try:
            return call(self, *args, **kwargs)
        finally:
            current.pop()
            # distinct addresses per launch (an element counted once however often it is used)
            c.compulsory += _distinct_bytes(c._addresses)
            c._addresses.clear()

    builder.create_masked_load, builder.create_masked_store = masked_load, masked_store
    builder.create_dot = create_dot
    interp.GridExecutor.__call__ = launch
    try:
        yield counts
    finally:
        builder.create_masked_load, builder.create_masked_store = load, store
        builder.create_dot = dot
        interp.GridExecutor.__call__ = call


def _distinct_bytes(addresses: list) -> float:
    """Bytes of the distinct elements touched, from (element bytes, addresses) pairs."""
    total = 0.0
    for width in {w for w, _ in addresses}:
        same = [a for w, a in addresses if w == width]
        total += np.unique(np.concatenate(same)).size * width
    return total


# -- the kernels, at their benchmark widths, one (batch, head) --------------------------------
@dataclass
class Workload:
    name: str
    what: str
    run: callable            # T -> None: one forward + backward at length T
    chunk: int
    lengths: tuple           # two short lengths (multiples of the chunk)
    shape: dict              # the benchmark's B, T, H
    measured_ms: dict        # {"forward": ms, "forward + backward": ms}, from bench/RESULTS.md
    source: str              # where in RESULTS.md
    precision: str           # the operand precision on the GPU (the FLOP peak it is held to)


def _backward(o, state):
    loss = o.float().square().mean() + sum(t.float().square().mean() for t in state)
    loss.backward()


def _smt(T):
    from runtime.ops.self_modifying_titans import memory_names
    from runtime.ops.self_modifying_titans.kernel import chunk_self_modifying_titans_kernel
    D, hid = 64, 128
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(1, T, 1, D, generator=g), dim=-1).requires_grad_()
    init = {n: (torch.randn(1, 1 if n in ("eta", "alpha") else D, hid, generator=g).div(hid ** 0.5)
                .requires_grad_(), torch.randn(1, hid, D, generator=g).div(D ** 0.5).requires_grad_())
            for n in memory_names(False)}
    W_q = torch.eye(D).repeat(1, 1, 1).requires_grad_()
    o, state = chunk_self_modifying_titans_kernel(
        x, init, W_q, chunk_size=16, momentum=0.9, eta_scale=0.1, eta_bias=-2.6,
        alpha_bias=math.log(0.95 / 0.05), v_l2norm=True, precision="ieee")
    _backward(o, [t for ws in state.values() for t in ws[:2]])


def _titans(T):
    from runtime.ops.titans.kernel import chunk_titans_kernel
    D, hid = 128, 512
    mk = lambda *s, scale=1.0: (torch.randn(*s) * scale).requires_grad_()  # noqa: E731
    q, k, v = (mk(1, T, 1, D, scale=D ** -0.5) for _ in range(3))
    eta, theta, alpha = (torch.full((1, T, 1), c, requires_grad=True) for c in (0.9, 0.01, 0.01))
    W1, W2 = mk(1, D, hid, scale=hid ** -0.5), mk(1, hid, D, scale=D ** -0.5)
    o, state = chunk_titans_kernel(q, k, v, eta, theta, alpha, W1, W2, chunk_size=64,
                                   memory="mlp", precision="ieee")
    _backward(o, state)


def _linear(rule):
    def run(T):
        from runtime.ops.gated_delta.kernel import chunk_gated_delta_kernel
        from runtime.ops.hebbian.kernel import chunk_hebbian_kernel
        D = 128
        bf = lambda t: t.to(torch.bfloat16).requires_grad_()  # noqa: E731  (as benchmarked)
        q = bf(torch.randn(1, T, 1, D) / D ** 0.5)
        k = bf(F.normalize(torch.randn(1, T, 1, D), dim=-1))
        v = bf(torch.randn(1, T, 1, D))
        b = bf(torch.sigmoid(torch.randn(1, T, 1)))
        la = F.logsigmoid(torch.randn(1, T, 1) + 3).requires_grad_()  # fp32, as bench/kernels.py
        if rule.startswith("hebbian"):
            o, s = chunk_hebbian_kernel(q, k, v, log_a=la if rule == "hebbian_gated" else None)
        else:
            o, s = chunk_gated_delta_kernel(q, k, v, b, log_a=la if rule == "gated_delta" else None)
        _backward(o, [s])
    return run


_LINEAR_SHAPE = {"B": 8, "T": 2048, "H": 8}
WORKLOADS = [
    Workload("smt", "self-modifying Titans (Hope's memory), D 64, hidden 128, chunk 16, momentum",
             _smt, 16, (32, 48), {"B": 8, "T": 2048, "H": 12},
             {"forward": 20.9, "forward + backward": 98.3},
             "ninth session, B = 8 table (forward at 4 warps, fwd + bwd at 8)", "tf32"),
    Workload("titans", "Titans deep memory, D 128, hidden 512, chunk 64", _titans, 64, (64, 128),
             {"B": 8, "T": 2048, "H": 8}, {"forward + backward": 67.89},
             "third session, 'Deep memory', fp32 row", "tf32"),
    Workload("gated_delta", "gated delta rule, D 128, chunk 64", _linear("gated_delta"), 64,
             (64, 128), _LINEAR_SHAPE, {"forward": 0.569, "forward + backward": 1.691},
             "third session, 'Linear-rule kernels vs fla', bf16", "bf16"),
    Workload("delta", "delta rule, D 128, chunk 64", _linear("delta"), 64, (64, 128),
             _LINEAR_SHAPE, {"forward": 0.453, "forward + backward": 1.758},
             "third session, 'Linear-rule kernels vs fla', bf16", "bf16"),
    Workload("hebbian_gated", "Hebbian with retention, D 128, chunk 64", _linear("hebbian_gated"),
             64, (64, 128), _LINEAR_SHAPE, {"forward": 0.241, "forward + backward": 1.281},
             "third session, 'Linear-rule kernels vs fla', bf16", "bf16"),
    Workload("hebbian", "Hebbian without retention, D 128, chunk 64", _linear("hebbian"), 64,
             (64, 128), _LINEAR_SHAPE, {"forward": 0.392, "forward + backward": 0.803},
             "fourth session, 'Hebbian and CMS rows', bf16", "bf16"),
]


def measure(w: Workload) -> dict[str, Counts]:
    """{kernel: Counts at the benchmark shape}, from the two short runs."""
    runs = []
    for T in w.lengths:
        # the random inputs may overflow in the deep memories' long recurrences; the counts do
        # not depend on the values
        with counting() as counts, np.errstate(all="ignore"):
            w.run(T)
        runs.append((T // w.chunk, counts))
    (n1, c1), (n2, c2) = runs
    N = w.shape["T"] // w.chunk
    programs = w.shape["B"] * w.shape["H"]
    out = {}
    for name in c2:
        per_chunk = c2[name].minus(c1[name]).scaled(1.0 / (n2 - n1))
        fixed = c1[name].minus(per_chunk.scaled(n1))
        total = fixed.plus(per_chunk.scaled(N)).scaled(programs)
        total.launches, total.programs = c2[name].launches, programs * c2[name].programs
        out[name] = total
    return out


def _fmt(x: float, unit: float, digits: int = 2) -> str:
    return f"{x / unit:,.{digits}f}"


def report(w: Workload, counts: dict[str, Counts]) -> tuple[list[str], str]:
    peak = H100[f"{w.precision} TFLOP/s"] * 1e12
    hbm = H100["HBM TB/s"] * 1e12
    heads = w.shape["B"] * w.shape["H"]
    rows = []
    for name, c in counts.items():
        moved = c.loaded + c.stored
        rows.append(f"| {w.name} | `{name}` | {c.launches} x {c.programs // max(c.launches, 1):,} | "
                    f"{c.dots / heads:,.0f} | {_fmt(c.flops, 1e9)} | "
                    f"{_fmt(moved, 1e9)} | {_fmt(c.compulsory, 1e9)} | {_fmt(c.flops / peak, 1e-3, 3)} | "
                    f"{_fmt(moved / hbm, 1e-3, 3)} | {_fmt(c.compulsory / hbm, 1e-3, 3)} |")
    total = Counts()
    for c in counts.values():
        total = total.plus(c)
    bound = max(total.flops / peak, total.compulsory / hbm) * 1e3
    upper = max(total.flops / peak, (total.loaded + total.stored) / hbm) * 1e3
    measured = w.measured_ms.get("forward + backward")
    summary = (f"{w.name}: {w.what}; B {w.shape['B']}, T {w.shape['T']}, H {w.shape['H']}. "
               f"Bound by compulsory bytes and FLOPs: {bound:.3f} ms; with every requested byte from "
               f"HBM: {upper:.3f} ms. Measured forward + backward {measured} ms ({w.source}): "
               f"{measured / bound:.1f}x the first bound, {measured / upper:.1f}x the second.")
    per_program = max(c.programs / c.launches for c in counts.values())
    if per_program <= H100["SMs"]:  # one wave: each program's dots run one after another
        summary += (f" Every kernel has at most {per_program:.0f} programs (one wave on "
                    f"{H100['SMs']} SMs), so a program's {total.dots / heads:,.0f} products run in "
                    f"sequence: {measured * 1e3 / (total.dots / heads):.2f} us each, loads included.")
    return rows, summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(w.name for w in WORKLOADS),
                   help="comma-separated workloads: " + ", ".join(w.name for w in WORKLOADS))
    args = p.parse_args()
    chosen = [w for w in WORKLOADS if w.name in args.only.split(",")]
    print(f"Counted in Triton's interpreter, scaled to the benchmark shapes; peaks: {H100}")
    print()
    print("| workload | kernel | launches x programs | dots per (b, h) | GFLOP | GB requested | "
          "GB compulsory | ms at FLOP peak | ms if requested from HBM | ms for compulsory at HBM |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    summaries = []
    for w in chosen:
        rows, summary = report(w, measure(w))
        print("\n".join(rows), flush=True)
        summaries.append(summary)
    print()
    print("\n".join(f"- {s}" for s in summaries))


if __name__ == "__main__":
    main()
