"""Speed of our Triton kernels against the PyTorch forms and (if installed) fla.

    python bench/kernels.py [--iters 20] [--warmup 5] [--timeout 60] [--no-reference] [--tune]
                            [--profile] [--only-extras] [--no-cms] [--fla-ignore-triton-guard]
                            [--shapes 8,2048,8,128 ...] [--rules gated_delta,delta,...]
                            [--cpu-smoke]

Times, on one CUDA device in bf16 (CUDA events, warm-up runs, median of --iters runs): our
Triton kernel, fla's kernel for the same rule and our PyTorch chunk form (on fp32 copies: it has
no bf16 solve), forward and forward+backward, at B=8, T=2048, H=8, D=128 and B=2, T=8192, H=8,
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

Each measurement (one shape, rule and implementation; one CMS case and implementation) runs in
its own process with a time limit (--timeout, seconds, default 60, first-call compilation and
autotuning included): one that hangs, crashes or fails prints its row as `timeout after N s` (with
the phase it was in) or as the error, and the rest still run. Work is ordered by importance:
gated_delta and delta at both shapes (ours, then fla, then the PyTorch form), then hebbian_gated,
then hebbian, then the CMS rows. Every row is flushed as soon as it is known, and one line on
stderr says what starts before each measurement (and how long it took, first calls included),
so the log of a killed run shows where it stopped; each child also logs its phases there (first
calls, timing, output) and what it printed (TRITON_PRINT_AUTOTUNING=1 adds Triton's autotuning
times, fla's included). The table itself is on stdout.
--tune also times a few launch configurations of our kernel and prints the best per shape.
fla refuses the gated backward on Hopper with Triton in [3.4, 3.7.1) (a Triton miscompile, fla
issue 640); --fla-ignore-triton-guard lifts that check to time it anyway (its gradients may then
be wrong, its time is still representative).
--cpu-smoke checks the mechanics without a GPU: CPU, Triton's interpreter, fp32, tiny shapes
and CMS level, wall-clock timing, and (without fla) our PyTorch chunk form standing in for fla;
--smoke-fault RULE:IMPL:hang|raise|crash (repeatable) makes that measurement misbehave.
No assertion: this is a benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if "--cpu-smoke" in sys.argv:  # before triton is imported (the kernels read it at import)
    os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.ops.cms.dispatch import cms_update_reference  # noqa: E402
from runtime.ops.cms.kernel import cms_update_kernel  # noqa: E402
from runtime.ops.gated_delta import chunk_gated_delta  # noqa: E402
from runtime.ops.gated_delta import kernel as K  # noqa: E402
from runtime.ops.hebbian import chunk_hebbian  # noqa: E402
from runtime.ops.hebbian.kernel import chunk_hebbian_kernel  # noqa: E402

SHAPES = [(8, 2048, 8, 128), (2, 8192, 8, 128)]
RULES = ("gated_delta", "delta", "hebbian_gated", "hebbian")
# Order of the work: each tier at every shape before the next tier.
TIERS = (("gated_delta", "delta"), ("hebbian_gated",), ("hebbian",))
IMPL_ORDER = ("kernel", "fla", "ref(fp32)")
CMS_LEVEL = dict(batch=8, dim=768, hidden=3072)
CMS_CASES = (("boundary", True), ("accumulate", False))
CMS_IMPLS = ("eager", "kernel")

SMOKE_SHAPES = [(1, 64, 2, 16), (2, 96, 2, 32)]
SMOKE_CMS_LEVEL = dict(batch=2, dim=32, hidden=64)

# device, dtype and timing: CUDA/bf16 by default, CPU/fp32 under --cpu-smoke (set in main)
DEV = "cuda"
DTYPE = torch.bfloat16
SMOKE = False

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


def _sync() -> None:
    if DEV == "cuda":
        torch.cuda.synchronize()


def _time(fn, iters: int, warmup: int) -> float:
    """Median milliseconds of fn() over iters runs, after warmup runs (CUDA events; wall clock
    on CPU)."""
    for _ in range(warmup):
        fn()
    _sync()
    times = []
    for _ in range(iters):
        if DEV != "cuda":
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
            continue
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _inputs(B, T, H, D, gated, seed=0):
    g = torch.Generator(device=DEV).manual_seed(seed)
    kw = dict(device=DEV, generator=g)
    q = (torch.randn(B, T, H, D, **kw) / D**0.5).to(DTYPE)
    k = F.normalize(torch.randn(B, T, H, D, **kw), dim=-1).to(DTYPE)
    v = torch.randn(B, T, H, D, **kw).to(DTYPE)
    b = torch.sigmoid(torch.randn(B, T, H, **kw)).to(DTYPE)
    log_a = F.logsigmoid(torch.randn(B, T, H, **kw) + 3).float() if gated else None
    do = torch.randn(B, T, H, D, **kw).to(DTYPE)
    return q, k, v, b, log_a, do


def _fla_impl(rule):
    """fla's function for the rule, as fn(q, k, v, b, log_a) -> o; None where not installed.
    Under --cpu-smoke without fla, our PyTorch chunk form stands in (to exercise the columns)."""
    if rule == "gated_delta" and chunk_gated_delta_rule is not None:
        return lambda q, k, v, b, la: chunk_gated_delta_rule(
            q, k, v, la, b, scale=1.0, output_final_state=True
        )[0]
    if rule == "delta" and chunk_delta_rule is not None:
        return lambda q, k, v, b, la: chunk_delta_rule(
            q, k, v, b, scale=1.0, output_final_state=True
        )[0]
    if rule == "hebbian_gated" and chunk_simple_gla is not None:
        return lambda q, k, v, b, la: chunk_simple_gla(
            q, k, v, g=la, scale=1.0, output_final_state=True
        )[0]
    if rule == "hebbian" and chunk_linear_attn is not None:
        # fla 0.6.0: chunk_linear_attn(q, k, v, scale, initial_state, output_final_state,
        # normalize, cu_seqlens) -> chunk_simple_gla(g=None) (plus the normaliser if normalize)
        return lambda q, k, v, b, la: chunk_linear_attn(
            q, k, v, scale=1.0, output_final_state=True, normalize=False
        )[0]
    if SMOKE:
        return _impls_ours(rule)["ref(fp32)"]
    return None


def _impls_ours(rule):
    if rule in ("hebbian", "hebbian_gated"):
        return {
            "kernel": lambda q, k, v, b, la: chunk_hebbian_kernel(q, k, v, log_a=la)[0],
            "ref(fp32)": lambda q, k, v, b, la: chunk_hebbian(
                *(x.float() for x in (q, k, v)), log_a=la
            )[0],
        }
    return {
        "kernel": lambda q, k, v, b, la: K.chunk_gated_delta_kernel(q, k, v, b, log_a=la)[0],
        # the PyTorch form has no bf16 triangular solve: it runs on fp32 copies
        "ref(fp32)": lambda q, k, v, b, la: chunk_gated_delta(
            *(x.float() for x in (q, k, v, b)), log_a=la
        )[0],
    }


NO_FLA = False  # --no-fla: our side only (a regression check of our kernels, without fla's autotuning)


def _impls(rule):
    """name -> fn(q, k, v, b, log_a) returning o (the Hebbian rules ignore b), in IMPL_ORDER."""
    impls = _impls_ours(rule)
    fla = None if NO_FLA else _fla_impl(rule)
    if fla is not None:
        impls["fla"] = fla
    return {n: impls[n] for n in IMPL_ORDER if n in impls}


def _measure(fn, inputs, iters, warmup, phase=lambda s: None):
    """(fwd ms, fwd+bwd ms, first fwd s, first fwd+bwd s); the first calls (compilation,
    autotuning) are timed apart from the medians. phase(name) is called as each step starts."""
    q, k, v, b, la, do = inputs
    leaves = [x.detach().requires_grad_() for x in (q, k, v, b)]
    la_leaf = None if la is None else la.detach().requires_grad_()

    def fwd():
        with torch.no_grad():
            fn(q, k, v, b, la)

    def fwd_bwd():
        fn(*leaves, la_leaf).backward(do)

    firsts, medians = [], []
    for name, f in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
        phase(f"{name}: first call (compile / autotune)")
        t0 = time.perf_counter()
        f()
        _sync()
        firsts.append(time.perf_counter() - t0)
        phase(f"{name}: timing ({warmup} warm-up + {iters} runs)")
        medians.append(_time(f, iters, warmup))
    return medians[0], medians[1], firsts[0], firsts[1]


# ----------------------------------------------------------------------------------------------
# child process: one measurement
# ----------------------------------------------------------------------------------------------


def _set_pdeathsig() -> None:
    """Die with the parent (Linux): a killed benchmark leaves no process holding the GPU."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 (best effort: not Linux)
        pass


def _smoke_fault(args, rule, impl, phase_name):
    """--cpu-smoke only: misbehave as asked (to check the parent's handling)."""
    for spec in args.smoke_fault or ():
        r, i, what = spec.split(":")
        if (r, i) != (rule, impl) or not phase_name.startswith("fwd: first"):
            continue
        if what == "hang":
            time.sleep(10**6)
        if what == "raise":
            raise RuntimeError("injected failure (--smoke-fault)")
        if what == "crash":
            os._exit(3)


def _run_child(args) -> None:
    """Time one measurement and print one JSON line on stdout; phases go to the progress file
    (read by the parent on a timeout) and to stderr."""
    _set_pdeathsig()
    progress = Path(args.progress_file) if args.progress_file else None
    kind, *key = args.only.split("|")

    def phase(name):
        if progress is not None:
            progress.write_text(name)
        print(f"    [{args.only}] {name}", file=sys.stderr, flush=True)

    try:
        if kind == "table":
            shape, rule, impl = tuple(int(x) for x in key[0].split(",")), key[1], key[2]
            phase("inputs")
            inputs = _inputs(*shape, gated=rule in ("gated_delta", "hebbian_gated"))
            fn = _impls(rule)[impl]

            def phase_f(name):
                phase(name)
                if SMOKE:
                    _smoke_fault(args, rule, impl, name)

            f, fb, f1, fb1 = _measure(fn, inputs, args.iters, args.warmup, phase_f)
            res = {"fwd": f, "fwd_bwd": fb, "first_fwd_s": f1, "first_fwd_bwd_s": fb1}
            if args.out_file:
                phase("output (for |o - o_fla|)")
                with torch.no_grad():
                    o = fn(*inputs[:5])
                torch.save(o.detach().to("cpu"), args.out_file)
        elif kind == "cms":
            case, impl = key
            res = _cms_measure(dict(CMS_CASES)[case], impl, args.iters, args.warmup, phase)
        else:
            raise ValueError(f"unknown measurement {args.only!r}")
        phase("done")
        print(json.dumps(res), flush=True)
    except Exception as err:  # noqa: BLE001 (reported by the parent as the row)
        print(json.dumps({"error": f"{type(err).__name__}: {str(err)[:300]}"}), flush=True)


# ----------------------------------------------------------------------------------------------
# parent process: spawn, time out, report
# ----------------------------------------------------------------------------------------------


def _log(msg: str) -> None:
    print(f"[bench/kernels {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _spawn(key: str, args, work_dir: Path, out_file: str | None = None) -> dict:
    """Run one measurement in a child process, with args.timeout seconds; a dict with the
    result, or "error" (with "timeout" and the last "phase" when it ran out of time)."""
    progress = work_dir / "progress"
    progress.write_text("starting the process (imports)")
    cmd = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:], "--only", key,
           "--progress-file", str(progress)]  # fmt: skip
    if out_file:
        cmd += ["--out-file", out_file]
    _log(f"start {key} (timeout {args.timeout:g} s)")
    t0 = time.monotonic()
    # unbuffered: what the child printed (e.g. TRITON_PRINT_AUTOTUNING=1) survives a kill
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        out, _ = proc.communicate(timeout=args.timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        timed_out = True
    for ln in out.splitlines():  # the child's own stdout (not its result) goes to the log
        if not ln.startswith("{"):
            print(f"    [{key}] stdout: {ln}", file=sys.stderr, flush=True)
    if timed_out:
        ph = progress.read_text().strip()
        _log(f"timeout {key} after {args.timeout:g} s, in phase: {ph}")
        return {"error": f"timeout after {args.timeout:g} s (in: {ph})", "timeout": True}
    took = time.monotonic() - t0
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        ph = progress.read_text().strip()
        res = {"error": f"process died (exit {proc.returncode}) in: {ph}; its stderr is above"}
    else:
        res = json.loads(lines[-1])
    if "error" in res:
        _log(f"failed {key} after {took:.1f} s: {res['error']}")
    else:
        firsts = ""
        if "first_fwd_s" in res:
            firsts = (f" (first fwd {res['first_fwd_s']:.1f} s, "
                      f"first fwd+bwd {res['first_fwd_bwd_s']:.1f} s)")
        _log(f"done {key} in {took:.1f} s{firsts}")
    return res


def _row(*cells) -> None:
    print("".join(cells), flush=True)


def _bench_table(args, shapes, rules, work_dir: Path) -> None:
    head = (f"{'B,T,H,D':<18}{'rule':<14}{'impl':<11}{'fwd':>9}{'fwd+bwd':>10}{'vs fla':>15}"
            f"{'|o - o_fla|':>13}")
    _row(head)
    _row("-" * len(head))
    for tier in TIERS:
        for shape in shapes:
            for rule in (r for r in tier if r in rules):
                _bench_group(args, shape, rule, work_dir)


def _bench_group(args, shape, rule, work_dir: Path) -> None:
    """One shape and rule: ours, then fla, then the PyTorch form, one process each. Our row
    waits for fla's (its ratio), every other row prints as soon as it is measured."""
    names = [n for n in _impls(rule) if not (args.no_reference and n == "ref(fp32)")]
    lead = f"{str(shape):<18}{rule:<14}"
    shape_s = ",".join(map(str, shape))
    outs = {n: str(work_dir / f"o_{rule}_{shape_s}_{i}.pt") for i, n in enumerate(names)}
    have_fla = "fla" in names
    res, pending = {}, []

    def emit(name):
        r = res[name]
        if "error" in r:
            _row(f"{lead}{name:<11}  {r['error']}")
            return
        f, fb = r["fwd"], r["fwd_bwd"]
        vs = diff = ""
        fla = res.get("fla", {})
        if name != "fla" and "fwd" in fla:
            vs = f"{fla['fwd'] / f:.2f}x/{fla['fwd_bwd'] / fb:.2f}x"
            try:
                o = torch.load(outs[name]).float()
                o_fla = torch.load(outs["fla"]).float()
                diff = f"{((o - o_fla).norm() / o_fla.norm()).item():.1e}"
            except Exception as e:  # noqa: BLE001
                diff = type(e).__name__
        _row(f"{lead}{name:<11}{f:>9.3f}{fb:>10.3f}{vs:>15}{diff:>13}")

    for name in names:
        res[name] = _spawn(f"table|{shape_s}|{rule}|{name}", args, work_dir,
                           outs[name] if have_fla else None)  # fmt: skip
        if have_fla and "fla" not in res and name != "fla":
            pending.append(name)  # printed with fla's row, which it is compared with
            continue
        for p in pending:
            emit(p)
        pending = []
        emit(name)
    for p in pending:
        emit(p)
    for path in outs.values():
        Path(path).unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------
# CMS boundary update
# ----------------------------------------------------------------------------------------------


def _cms_setup():
    level = SMOKE_CMS_LEVEL if SMOKE else CMS_LEVEL
    B, D, Hd = level["batch"], level["dim"], level["hidden"]
    g = torch.Generator(device=DEV).manual_seed(0)
    shapes = [(B, D, Hd), (B, Hd, D)]  # up, down
    leaves = [
        [torch.randn(s, device=DEV, generator=g).requires_grad_() for _ in range(3)]
        for s in shapes
    ]
    upstream = [torch.randn(s, device=DEV, generator=g) for s in shapes]
    n_bytes = 4 * sum(B * D * Hd for _ in shapes)  # one pass over one tensor of the level
    return (B, D, Hd), leaves, upstream, n_bytes


def _cms_measure(apply, impl, iters, warmup, phase=lambda s: None) -> dict:
    """One CMS case (apply: at a boundary) and implementation: fwd and fwd+bwd ms."""
    lr = 0.01
    fn = {"kernel": cms_update_kernel, "eager": cms_update_reference}[impl]
    phase("inputs")
    _, leaves, upstream, _ = _cms_setup()

    def fwd():
        with torch.no_grad():
            for w, p, gr in leaves:
                fn(w, p, gr, lr, apply)

    def fwd_bwd():
        outs = []
        for (w, p, gr), up in zip(leaves, upstream):
            w2, p2 = fn(w, p, gr, lr, apply)
            outs.append(((w2 if apply else p2), up))
        torch.autograd.backward([o for o, _ in outs], [u for _, u in outs])

    phase("fwd (first call compiles)")
    f = _time(fwd, iters, warmup)
    phase("fwd+bwd")
    fb = _time(fwd_bwd, iters, warmup)
    return {"fwd": f, "fwd_bwd": fb}


def _bench_cms(args, work_dir: Path) -> None:
    """The CMS boundary update of one Hope-sized level: fused kernel vs the eager ops."""
    (B, D, Hd), _, _, n_bytes = _cms_setup()
    lr = 0.01
    _row(f"\n# CMS boundary update, one level: up [{B}, {D}, {Hd}] + down [{B}, {Hd}, {D}], "
         f"fp32, lr={lr}; ms (GB/s: tensor passes the fused form needs / time)")
    head = f"{'case':<16}{'impl':<9}{'fwd':>9}{'GB/s':>8}{'fwd+bwd':>10}{'GB/s':>8}{'speed-up':>14}"
    _row(head)
    _row("-" * len(head))
    for case, apply in CMS_CASES:
        # passes of the fused form: read p, g (and w), write out (and the zero p): fwd;
        # backward: read dW', write dp, dg (dW is dW' itself)
        passes_f = 5 if apply else 3
        passes_b = passes_f + 3
        res = {name: _spawn(f"cms|{case}|{name}", args, work_dir) for name in CMS_IMPLS}
        for name in ("kernel", "eager"):
            r = res[name]
            if "error" in r:
                _row(f"{case:<16}{name:<9}  {r['error']}")
                continue
            f, fb = r["fwd"], r["fwd_bwd"]
            sp = ""
            if name == "kernel" and "fwd" in res["eager"]:
                sp = f"{res['eager']['fwd'] / f:.2f}x/{res['eager']['fwd_bwd'] / fb:.2f}x"
            gbf, gbb = passes_f * n_bytes / f / 1e6, passes_b * n_bytes / fb / 1e6
            _row(f"{case:<16}{name:<9}{f:>9.3f}{gbf:>8.0f}{fb:>10.3f}{gbb:>8.0f}{sp:>14}")


# ----------------------------------------------------------------------------------------------
# extras (in this process): launch-configuration sweep, profile
# ----------------------------------------------------------------------------------------------


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
                        f, fb, _, _ = _measure(
                            _impls("gated_delta")["kernel"], inputs, iters, warmup
                        )
                    except Exception as e:  # noqa: BLE001 (an invalid config: skip it)
                        print("  skip", cfg, type(e).__name__, flush=True)
                        continue
                    finally:
                        K._cfg = base
                    results.append((fb, f, cfg))
    for fb, f, cfg in sorted(results, key=lambda r: r[0])[:5]:
        print(f"  {shape}: fwd {f:.3f} ms, fwd+bwd {fb:.3f} ms  {cfg}", flush=True)
    print(f"  default: {base(B, H, D, D, 64, torch.device(DEV))}", flush=True)


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
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=14), flush=True)


# ----------------------------------------------------------------------------------------------


def _shape(s: str) -> tuple[int, int, int, int]:
    shape = tuple(int(x) for x in s.split(","))
    if len(shape) != 4:
        raise argparse.ArgumentTypeError(f"a shape is B,T,H,D, got {s!r}")
    return shape


def main() -> None:
    global DEV, DTYPE, SMOKE
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds per measurement (its own process), first calls included")
    p.add_argument("--no-reference", action="store_true", help="skip the (slow) PyTorch chunk form")
    p.add_argument("--tune", action="store_true", help="also sweep launch configurations")
    p.add_argument("--profile", action="store_true", help="also print per-kernel times (ours)")
    p.add_argument("--only-extras", action="store_true", help="skip the table (--tune/--profile)")
    p.add_argument("--no-cms", action="store_true", help="skip the CMS update rows")
    p.add_argument("--fla-ignore-triton-guard", action="store_true")
    p.add_argument("--no-fla", action="store_true",
                   help="our kernels only (fla autotunes ~2 min per rule at its first shape)")
    p.add_argument("--shapes", type=_shape, nargs="+", help="B,T,H,D ... (default: the two)")
    p.add_argument("--rules", help=f"comma-separated subset of {','.join(RULES)}, or none (the CMS rows only)")
    p.add_argument("--cpu-smoke", action="store_true",
                   help="check the mechanics on CPU (interpreter, fp32, tiny shapes)")
    p.add_argument("--smoke-fault", action="append", help="RULE:IMPL:hang|raise|crash (smoke)")
    # internal: the child process of one measurement
    p.add_argument("--only", help=argparse.SUPPRESS)
    p.add_argument("--progress-file", help=argparse.SUPPRESS)
    p.add_argument("--out-file", help=argparse.SUPPRESS)
    args = p.parse_args()
    global NO_FLA
    NO_FLA = args.no_fla
    if args.cpu_smoke:
        DEV, DTYPE, SMOKE = "cpu", torch.float32, True
    elif not torch.cuda.is_available():
        sys.exit("bench/kernels.py needs a CUDA device (or --cpu-smoke)")
    if args.fla_ignore_triton_guard and chunk_gated_delta_rule is not None:
        import fla.ops.common.chunk_o as fla_chunk_o

        fla_chunk_o.TRITON_ABOVE_3_7_1 = True
    if args.only:
        return _run_child(args)
    import triton

    shapes = args.shapes or (SMOKE_SHAPES if SMOKE else SHAPES)
    rules = RULES if not args.rules else () if args.rules == "none" else tuple(args.rules.split(","))
    bad = [r for r in rules if r not in RULES]
    if bad:
        sys.exit(f"unknown rules {bad}; choose from {RULES}")
    fla = "skipped (--no-fla)" if NO_FLA else "yes" if chunk_gated_delta_rule is not None else "not installed"
    if not NO_FLA and chunk_gated_delta_rule is not None and chunk_simple_gla is None:
        fla = "yes (no simple_gla / linear_attn)"
    if SMOKE:
        fla += "; CPU smoke run (interpreter, fp32, wall clock; fla column: our PyTorch form)"
        device = "CPU"
    else:
        device = torch.cuda.get_device_name()
    dt = str(DTYPE).replace("torch.", "").replace("bfloat16", "bf16").replace("float32", "fp32")
    _row(f"# {device}, torch {torch.__version__}, triton {triton.__version__}, fla {fla}; "
         f"{dt}, ms; one process per measurement, timeout {args.timeout:g} s")
    with tempfile.TemporaryDirectory(prefix="bench_kernels_") as tmp:
        work_dir = Path(tmp)
        if not args.only_extras:
            _bench_table(args, shapes, rules, work_dir)
        if not (args.only_extras or args.no_cms):
            _bench_cms(args, work_dir)
    if args.profile:
        for shape in shapes:
            _profile(shape)
    if args.tune:
        for shape in shapes:
            _tune(shape, args.iters, args.warmup)


if __name__ == "__main__":
    main()
