"""Compile every kernel for the H100 (sm_90) on a machine without a GPU, and say whether it fits:
shared memory, registers and spills per kernel and launch configuration.

    python bench/hopper_fit.py [--only smt,titans,... | --dispatched] [--check]

Each case calls a kernel's own launcher with CPU tensors while Triton's active driver is an
offline stand-in for an H100, and every launch compiles (through ptxas, which the triton wheel
carries) instead of running. So the code, the constexprs and the launch options are exactly those
a GPU would get, and what the compiler reports is what the GPU would refuse or spill: the
dynamic shared memory against Hopper's 232,448 bytes per block, the registers per thread, and the
bytes spilled to local memory (cuobjdump's resource usage).

Why: the interpreter (CI) runs a kernel's arithmetic but none of the compiler's checks. Triton
3.7.1 (our `kernels` extra's minimum) refused the self-modifying forward kernel, which the GPU's
3.6.0 had compiled (a loop rebinding a name to a tile of another shape), and a tile size that
does not fit shared memory showed up only as an `OutOfResources` on the device. With
`--check`, a case whose kernels are dispatched (`must_fit`) fails unless every launch compiles and
fits; CI runs that (tests/test_hopper_fit.py). The other cases are configurations the next
device session would try. The counts are the local triton's: the device's may differ (checked:
3.6.0 here gives the 317,440 bytes the H100 reported for the self-modifying backward at hidden
tile 128).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

if os.environ.get("TRITON_INTERPRET") == "1":  # the kernels must be JIT functions, not interpreted
    sys.exit("bench/hopper_fit.py compiles the kernels: run it without TRITON_INTERPRET=1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.runtime import driver  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

HOPPER_SHARED = 232_448  # bytes of shared memory one block may use on sm_90 (opt-in maximum)


class _OfflineHopper:
    """Triton's active driver while compiling only: an sm_90 target, no device, nothing runs."""

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_current_target(self):
        return GPUTarget("cuda", 90, 32)

    def get_active_torch_device(self):
        return torch.device("cpu")

    def is_active(self):
        return True


@dataclass
class Compiled:
    kernel: str
    warps: int
    shared: int       # dynamic shared memory, bytes
    registers: int    # per thread
    spilled: int      # stack frame per thread, bytes (where ptxas puts spilled registers)

    @property
    def fits(self) -> bool:
        return self.shared <= HOPPER_SHARED


@contextlib.contextmanager
def compiling_for_hopper():
    """Inside: every Triton launch compiles for sm_90 and is recorded (a list of Compiled, or an
    exception for a kernel the compiler refused) instead of running."""
    records, touched = [], []
    run, active = JITFunction.run, driver._active

    def compile_only(self, *args, grid, warmup, **kwargs):
        touched.append(self)
        try:
            kernel = run(self, *args, grid=grid, warmup=True, **kwargs)
        except Exception as err:  # noqa: BLE001  (the compiler's refusal is the result)
            records.append((self.fn.__name__, err))
            raise
        records.append(_usage(self.fn.__name__, kernel))
        return kernel

    driver.set_active(_OfflineHopper())
    JITFunction.run = compile_only
    try:
        yield records
    finally:
        JITFunction.run = run
        driver._active = active
        for fn in touched:  # their caches hold binders for the stand-in's target
            fn.device_caches.clear()


def _usage(name: str, kernel) -> Compiled:
    """Shared memory from Triton's metadata; registers and local memory from the cubin."""
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        report = subprocess.run([str(tool), "--dump-resource-usage", f.name], capture_output=True,
                                text=True, check=True).stdout
    regs = re.search(r"REG:(\d+)", report)
    stack = re.search(r"STACK:(\d+)", report)
    return Compiled(name, kernel.metadata.num_warps, kernel.metadata.shared,
                    int(regs.group(1)) if regs else -1, int(stack.group(1)) if stack else -1)


# -- the cases: each calls a launcher forward and backward with CPU tensors --------------------
def _backward(o, state):
    (o.float().sum() + sum(t.float().sum() for t in state)).backward()


def smt(D, hid, chunk, block_hidden=None, warps=None):
    def run():
        from runtime.ops.self_modifying_titans import memory_names
        from runtime.ops.self_modifying_titans.kernel import chunk_self_modifying_titans_kernel
        x = torch.randn(1, 2 * chunk, 1, D, requires_grad=True)
        init = {n: (torch.randn(1, 1 if n in ("eta", "alpha") else D, hid, requires_grad=True),
                    torch.randn(1, hid, D, requires_grad=True)) for n in memory_names(False)}
        W_q = torch.randn(1, D, D, requires_grad=True)
        # the CUDA defaults (tf32 products, 8 warps), which a CPU call would not pick
        o, st = chunk_self_modifying_titans_kernel(
            x, init, W_q, chunk_size=chunk, momentum=0.9, v_l2norm=True, precision="tf32",
            num_warps=warps or 8, block_hidden=block_hidden)
        _backward(o, [t for ws in st.values() for t in ws[:2]])
    return run


def titans(D, hid, chunk, dtype, precision="bf16", split=False):
    def run():
        from runtime.ops.titans.kernel import chunk_titans_kernel
        from runtime.ops.titans.kernel_split import chunk_titans_split_kernel
        mk = lambda *s: torch.randn(*s, dtype=dtype, requires_grad=True)  # noqa: E731
        q, k, v = (mk(1, 2 * chunk, 1, D) for _ in range(3))
        eta, theta, alpha = (torch.full((1, 2 * chunk, 1), c, dtype=dtype, requires_grad=True)
                             for c in (0.9, 0.01, 0.01))
        W1, W2 = mk(1, D, hid), mk(1, hid, D)
        fn = chunk_titans_split_kernel if split else chunk_titans_kernel
        # precision: bf16 products are what CUDA runs for every input dtype (kernel.py's `_prec`)
        o, state = fn(q, k, v, eta, theta, alpha, W1, W2, chunk_size=chunk, memory="mlp",
                      precision=precision)
        _backward(o, state)
    return run


def linear(rule, D=128, chunk=64):
    def run():
        from runtime.ops.gated_delta.kernel import chunk_gated_delta_kernel
        from runtime.ops.hebbian.kernel import chunk_hebbian_kernel
        bf = lambda t: t.to(torch.bfloat16).requires_grad_()  # noqa: E731
        T = 2 * chunk
        q, k, v = bf(torch.randn(1, T, 1, D)), bf(F.normalize(torch.randn(1, T, 1, D), dim=-1)), \
            bf(torch.randn(1, T, 1, D))
        la = F.logsigmoid(torch.randn(1, T, 1) + 3).requires_grad_()
        if rule.startswith("hebbian"):
            o, s = chunk_hebbian_kernel(q, k, v, log_a=la if rule == "hebbian_gated" else None,
                                        chunk_size=chunk)
        else:
            b = bf(torch.sigmoid(torch.randn(1, T, 1)))
            o, s = chunk_gated_delta_kernel(q, k, v, b, log_a=la if rule == "gated_delta" else None,
                                            chunk_size=chunk)
        _backward(o, [s])
    return run


def cms():
    from runtime.ops.cms.kernel import cms_update_kernel
    w, p, g = (torch.randn(2, 64, 256, requires_grad=True) for _ in range(3))
    w2, p2 = cms_update_kernel(w, p, g, 0.01, True)
    (w2.sum() + p2.sum()).backward()


@dataclass
class Case:
    name: str
    what: str
    run: callable
    must_fit: bool  # dispatched as it is: CI fails unless it compiles and fits


CASES = [
    Case("smt", "self-modifying Titans, 125M block (D 64, hid 128, chunk 16), dispatched config",
         smt(64, 128, 16), True),
    Case("smt_bhid128", "the same with hidden tile 128 (H100: out of shared memory)",
         smt(64, 128, 16, block_hidden=128), False),
    Case("smt_wide", "D 128, hid 256, chunk 16 (its default tile, 32)", smt(128, 256, 16), True),
    Case("smt_c32", "D 64, hid 128, chunk 32 (its default tile, 32)", smt(64, 128, 32), True),
    Case("smt_c32_bhid64", "the same with hidden tile 64 (does not fit)",
         smt(64, 128, 32, block_hidden=64), False),
    Case("titans", "Titans deep memory, D 128, hid 512, chunk 64, fp32 inputs (bf16 products)",
         titans(128, 512, 64, torch.float32), True),
    Case("titans_bf16", "the same with bf16 inputs", titans(128, 512, 64, torch.bfloat16), True),
    Case("titans_tf32", "the same with tf32 products (kernel.py's `_prec`: does not fit)",
         titans(128, 512, 64, torch.float32, precision="tf32"), False),
    Case("titans_split", "split deep-memory kernel, D 64, hid 256, chunk 64, bf16 (undispatched)",
         titans(64, 256, 64, torch.bfloat16, split=True), False),
    Case("titans_split_tf32", "the same with tf32 products (H100: out of shared memory)",
         titans(64, 256, 64, torch.float32, precision="tf32", split=True), False),
    Case("gated_delta", "gated delta rule, D 128, chunk 64, bf16", linear("gated_delta"), True),
    Case("delta", "delta rule, D 128, chunk 64, bf16", linear("delta"), True),
    Case("hebbian", "Hebbian, D 128, chunk 64, bf16", linear("hebbian"), True),
    Case("hebbian_gated", "Hebbian with retention, D 128, chunk 64, bf16", linear("hebbian_gated"),
         True),
    Case("cms", "CMS boundary update, fp32", cms, True),
]


def compile_case(case: Case) -> list:
    """The case's launches: Compiled, or (kernel, error) where the compiler refused one."""
    with compiling_for_hopper() as records:
        try:
            case.run()
        except Exception as err:  # noqa: BLE001
            if not records or isinstance(records[-1], Compiled):
                records.append(("(launcher)", err))
    return records


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=None, help="comma-separated cases: " +
                   ", ".join(c.name for c in CASES))
    p.add_argument("--dispatched", action="store_true",
                   help="only the cases whose kernels are dispatched as they are (must_fit)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless every launch of every must_fit case compiles and fits")
    args = p.parse_args()
    chosen = [c for c in CASES if (args.only is None or c.name in args.only.split(","))
              and (c.must_fit or not args.dispatched)]
    print(f"sm_90, triton {triton.__version__}; shared memory limit {HOPPER_SHARED:,} B per block")
    print()
    print("| case | kernel | warps | shared B | fits | registers | spilled B/thread |")
    print("| --- | --- | ---: | ---: | --- | ---: | ---: |")
    failed = []
    for case in chosen:
        seen = set()
        for r in compile_case(case):
            if isinstance(r, Compiled):
                key = (r.kernel, r.warps, r.shared, r.registers, r.spilled)
                if key in seen:  # a kernel launched twice (a recompute) is listed once
                    continue
                seen.add(key)
                print(f"| {case.name} | `{r.kernel}` | {r.warps} | {r.shared:,} | "
                      f"{'yes' if r.fits else '**no**'} | {r.registers} | {r.spilled} |", flush=True)
                if case.must_fit and not r.fits:
                    failed.append(f"{case.name}: {r.kernel} needs {r.shared:,} B of shared memory")
            else:
                name, err = r
                msg = " ".join(str(err).split())[:160]
                print(f"| {case.name} | `{name}` | | | **no**: {type(err).__name__}: {msg} | | |",
                      flush=True)
                if case.must_fit:
                    failed.append(f"{case.name}: {name}: {type(err).__name__}: {msg}")
    print()
    for c in chosen:
        print(f"- {c.name}: {c.what}")
    if args.check and failed:
        print("\nkernels a GPU would refuse:\n" + "\n".join(f"- {f}" for f in failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
