"""Speed of our Triton kernels against the PyTorch forms and (if installed) fla.

    python bench/kernels.py [--iters 20] [--warmup 5] [--no-reference] [--tune]
                            [--profile] [--only-extras] [--no-cms] [--fla-ignore-triton-guard]

Times, on one CUDA device in bf16 (CUDA events, warm-up runs, median of --iters runs): our
Triton kernel, our PyTorch chunk form (on fp32 copies: it has no bf16 solve) and fla's kernel
for the same rule, forward and forward+backward, at B=8, T=2048, H=8, D=128 and B=2, T=8192, H=8,
D=128. Rules: gated_delta (fla chunk_gated_delta_rule), delta (chunk_delta_rule), hebbian_gated
(linear attention with a per-head per-token retention: fla chunk_simple_gla with g = log a) and
hebbian (plain linear attention: fla chunk_linear_attn, normalize=False). Prints one table:
"vs fla" is fla's time over ours, fwd/fwd+bwd (> 1: ours is faster); "|o - o_fla|" is the
relative difference of the outputs (same inputs, fla with scale=1), a check that both compute
the same thing.
Then the CMS chunk-boundary update (runtime/ops/cms/kernel.py) of one Hope-sized level (batch 8,
dim 768, hidden 3072: up [8, 768, 3072] and down [8, 3072, 768], fp32): the fused kernel against
the eager PyTorch ops (continuum.py's accumulate + advance), at a boundary (W -= P + lr G, P = 0)
and between boundaries (P += lr G), forward and forward+backward, with the effective bandwidth.
--tune also times a few launch configurations of our kernel and prints the best per shape.
fla refuses the gated backward on Hopper with Triton in [3.4, 3.7.1) (a Triton miscompile, fla
issue 640); --fla-ignore-triton-guard lifts that check to time it anyway (its gradients may then
be wrong, its time is still representative).
No assertion: this is a benchmark.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.ops.cms.dispatch import cms_update_reference  # noqa: E402
from runtime.ops.cms.kernel import cms_update_kernel  # noqa: E402
from runtime.ops.gated_delta import chunk_gated_delta  # noqa: E402
from runtime.ops.gated_delta import kernel as K  # noqa: E402
from runtime.ops.hebbian import chunk_hebbian  # noqa: E402
from runtime.ops.hebbian.kernel import chunk_hebbian_kernel  # noqa: E402

SHAPES = [(8, 2048, 8, 128), (2, 8192, 8, 128)]
RULES = ("gated_delta", "delta", "hebbian_gated", "hebbian")
CMS_LEVEL = dict(batch=8, dim=768, hidden=3072)

try:  # fla is optional: compare against it only where it is installed
    from fla.ops.delta_rule import chunk_delta_rule
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule
except Exception:  # noqa: BLE001 (any import failure means: no fla column)
    chunk_gated_delta_rule = chunk_delta_rule = None
try:
    from fla.ops.linear_attn import chunk_linear_attn
    from fla.ops.simple_gla import chunk_simple_gla
except Exception:  # noqa: BLE001
    chunk_simple_gla = chunk_linear_attn = None


def _time(fn, iters: int, warmup: int) -> float:
    """Median milliseconds of fn() over iters runs, after warmup runs."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _inputs(B, T, H, D, gated, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    kw = dict(device="cuda", generator=g)
    q = (torch.randn(B, T, H, D, **kw) / D**0.5).bfloat16()
    k = F.normalize(torch.randn(B, T, H, D, **kw), dim=-1).bfloat16()
    v = torch.randn(B, T, H, D, **kw).bfloat16()
    b = torch.sigmoid(torch.randn(B, T, H, **kw)).bfloat16()
    log_a = F.logsigmoid(torch.randn(B, T, H, **kw) + 3).float() if gated else None
    do = torch.randn(B, T, H, D, **kw).bfloat16()
    return q, k, v, b, log_a, do


def _impls(rule):
    """name -> fn(q, k, v, b, log_a) returning o (the Hebbian rules ignore b)."""
    if rule in ("hebbian", "hebbian_gated"):
        impls = {
            "kernel": lambda q, k, v, b, la: chunk_hebbian_kernel(q, k, v, log_a=la)[0],
            "ref(fp32)": lambda q, k, v, b, la: chunk_hebbian(
                *(x.float() for x in (q, k, v)), log_a=la
            )[0],
        }
    else:
        impls = {
            "kernel": lambda q, k, v, b, la: K.chunk_gated_delta_kernel(q, k, v, b, log_a=la)[0],
            # the PyTorch form has no bf16 triangular solve: it runs on fp32 copies
            "ref(fp32)": lambda q, k, v, b, la: chunk_gated_delta(
                *(x.float() for x in (q, k, v, b)), log_a=la
            )[0],
        }
    if rule == "gated_delta" and chunk_gated_delta_rule is not None:
        impls["fla"] = lambda q, k, v, b, la: chunk_gated_delta_rule(
            q, k, v, la, b, scale=1.0, output_final_state=True
        )[0]
    if rule == "delta" and chunk_delta_rule is not None:
        impls["fla"] = lambda q, k, v, b, la: chunk_delta_rule(
            q, k, v, b, scale=1.0, output_final_state=True
        )[0]
    if rule == "hebbian_gated" and chunk_simple_gla is not None:
        impls["fla"] = lambda q, k, v, b, la: chunk_simple_gla(
            q, k, v, g=la, scale=1.0, output_final_state=True
        )[0]
    if rule == "hebbian" and chunk_linear_attn is not None:
        impls["fla"] = lambda q, k, v, b, la: chunk_linear_attn(
            q, k, v, scale=1.0, output_final_state=True, normalize=False
        )[0]
    return impls


def _measure(fn, inputs, iters, warmup):
    q, k, v, b, la, do = inputs
    leaves = [x.detach().requires_grad_() for x in (q, k, v, b)]
    la_leaf = None if la is None else la.detach().requires_grad_()

    def fwd():
        with torch.no_grad():
            fn(q, k, v, b, la)

    def fwd_bwd():
        fn(*leaves, la_leaf).backward(do)

    return _time(fwd, iters, warmup), _time(fwd_bwd, iters, warmup)


def _tune(shape, iters, warmup):
    """Time our fwd+bwd under a few launch configurations; prints the best few."""
    B, T, H, D = shape
    inputs = _inputs(B, T, H, D, gated=True)
    base = K._cfg
    results = []
    for bvs in (16, 32, 64):
        for ws in (4, 8):
            for wc in (4, 8):
                for st in (2, 3):
                    cfg = dict(
                        BV_STATE=bvs, BV=64, BK=64, warps_state=ws, warps_chunk=wc, stages=st
                    )
                    K._cfg = lambda *a, _c=cfg: dict(_c)
                    try:
                        f, fb = _measure(_impls("gated_delta")["kernel"], inputs, iters, warmup)
                    except Exception as e:  # noqa: BLE001 (an invalid config: skip it)
                        print("  skip", cfg, type(e).__name__)
                        continue
                    finally:
                        K._cfg = base
                    results.append((fb, f, cfg))
    for fb, f, cfg in sorted(results, key=lambda r: r[0])[:5]:
        print(f"  {shape}: fwd {f:.3f} ms, fwd+bwd {fb:.3f} ms  {cfg}")
    print(f"  default: {base(B, H, D, D, 64, torch.device('cuda'))}")


def _profile(shape):
    """Per-kernel CUDA time of our fwd+bwd (torch.profiler), to see where the time goes."""
    from torch.profiler import ProfilerActivity, profile

    inputs = _inputs(*shape, gated=True)
    fn = _impls("gated_delta")["kernel"]
    _measure(fn, inputs, 2, 2)  # compile first
    q, k, v, b, la, do = inputs
    leaves = [x.detach().requires_grad_() for x in (q, k, v, b, la)]
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            fn(*leaves).backward(do)
        torch.cuda.synchronize()
    print(f"# {shape}, gated, fwd+bwd x5")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=14))


def _bench_cms(iters, warmup):
    """The CMS boundary update of one Hope-sized level: fused kernel vs the eager ops."""
    B, D, Hd = CMS_LEVEL["batch"], CMS_LEVEL["dim"], CMS_LEVEL["hidden"]
    lr = 0.01
    g = torch.Generator(device="cuda").manual_seed(0)
    shapes = [(B, D, Hd), (B, Hd, D)]  # up, down
    leaves = [
        [torch.randn(s, device="cuda", generator=g).requires_grad_() for _ in range(3)]
        for s in shapes
    ]
    upstream = [torch.randn(s, device="cuda", generator=g) for s in shapes]
    n_bytes = 4 * sum(B * D * Hd for _ in shapes)  # one pass over one tensor of the level
    fns = {"kernel": cms_update_kernel, "eager": cms_update_reference}
    print(f"\n# CMS boundary update, one level: up [{B}, {D}, {Hd}] + down [{B}, {Hd}, {D}], "
          f"fp32, lr={lr}; ms (GB/s: tensor passes the fused form needs / time)")
    head = f"{'case':<16}{'impl':<9}{'fwd':>9}{'GB/s':>8}{'fwd+bwd':>10}{'GB/s':>8}{'speed-up':>14}"
    print(head)
    print("-" * len(head))
    for apply in (True, False):
        # passes of the fused form: read p, g (and w), write out (and the zero p): fwd;
        # backward: read dW', write dp, dg (dW is dW' itself)
        passes_f = 5 if apply else 3
        passes_b = passes_f + 3
        res = {}
        for name, fn in fns.items():
            def fwd(fn=fn):
                with torch.no_grad():
                    for w, p, gr in leaves:
                        fn(w, p, gr, lr, apply)

            def fwd_bwd(fn=fn):
                outs = []
                for (w, p, gr), up in zip(leaves, upstream):
                    w2, p2 = fn(w, p, gr, lr, apply)
                    outs.append(((w2 if apply else p2), up))
                torch.autograd.backward([o for o, _ in outs], [u for _, u in outs])

            res[name] = (_time(fwd, iters, warmup), _time(fwd_bwd, iters, warmup))
        case = "boundary" if apply else "accumulate"
        for name, (f, fb) in res.items():
            sp = ""
            if name == "kernel":
                sp = f"{res['eager'][0] / f:.2f}x/{res['eager'][1] / fb:.2f}x"
            gbf, gbb = passes_f * n_bytes / f / 1e6, passes_b * n_bytes / fb / 1e6
            print(f"{case:<16}{name:<9}{f:>9.3f}{gbf:>8.0f}{fb:>10.3f}{gbb:>8.0f}{sp:>14}")
        for w, p, gr in leaves:
            for x in (w, p, gr):
                x.grad = None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--no-reference", action="store_true", help="skip the (slow) PyTorch chunk form")
    p.add_argument("--tune", action="store_true", help="also sweep launch configurations")
    p.add_argument("--profile", action="store_true", help="also print per-kernel times (ours)")
    p.add_argument("--only-extras", action="store_true", help="skip the table (--tune/--profile)")
    p.add_argument("--no-cms", action="store_true", help="skip the CMS update rows")
    p.add_argument("--fla-ignore-triton-guard", action="store_true")
    args = p.parse_args()
    if args.fla_ignore_triton_guard and chunk_gated_delta_rule is not None:
        import fla.ops.common.chunk_o as fla_chunk_o

        fla_chunk_o.TRITON_ABOVE_3_7_1 = True
    if not torch.cuda.is_available():
        sys.exit("bench/kernels.py needs a CUDA device")
    import triton

    fla = "yes" if chunk_gated_delta_rule is not None else "not installed"
    if chunk_gated_delta_rule is not None and chunk_simple_gla is None:
        fla = "yes (no simple_gla / linear_attn)"
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"triton {triton.__version__}, fla {fla}; bf16, ms")
    head = (f"{'B,T,H,D':<18}{'rule':<14}{'impl':<11}{'fwd':>9}{'fwd+bwd':>10}{'vs fla':>15}"
            f"{'|o - o_fla|':>13}")
    print(head)
    print("-" * len(head))
    for shape in [] if args.only_extras else SHAPES:
        for rule in RULES:
            inputs = _inputs(*shape, gated=rule in ("gated_delta", "hebbian_gated"))
            impls = _impls(rule)
            if args.no_reference:
                impls.pop("ref(fp32)")
            rows = {}
            for n, fn in impls.items():
                try:
                    rows[n] = _measure(fn, inputs, args.iters, args.warmup)
                except Exception as e:  # noqa: BLE001 (report and go on with the others)
                    print(f"{str(shape):<18}{n}: {type(e).__name__}: {str(e)[:100]}")
            ref_o = None
            if "fla" in rows:
                with torch.no_grad():
                    ref_o = impls["fla"](*inputs[:5]).float()
            for name, (f, fb) in rows.items():
                vs = ""
                if "fla" in rows and name != "fla":
                    vs = f"{rows['fla'][0] / f:.2f}x/{rows['fla'][1] / fb:.2f}x"
                diff = ""
                if ref_o is not None and name != "fla":
                    with torch.no_grad():
                        o = impls[name](*inputs[:5]).float()
                    diff = f"{((o - ref_o).norm() / ref_o.norm()).item():.1e}"
                print(f"{str(shape):<18}{rule:<14}{name:<11}{f:>9.3f}{fb:>10.3f}{vs:>15}{diff:>13}")
            del inputs
            torch.cuda.empty_cache()
    if not (args.only_extras or args.no_cms):
        _bench_cms(args.iters, args.warmup)
    if args.profile:
        for shape in SHAPES:
            _profile(shape)
    if args.tune:
        for shape in SHAPES:
            _tune(shape, args.iters, args.warmup)


if __name__ == "__main__":
    main()
