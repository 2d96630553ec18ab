"""The kernels compile once for every sequence length: a length argument (T, the chunk count N,
the state slots NS, NX) is never specialised. Triton otherwise compiles a variant for 1, for
multiples of 16 and for the rest, and an evaluation calls with every length (DeltaNet's NIAH
runs on the H100 spent their whole time limit compiling `_wy_fwd`, ~45 s a variant:
bench/RESULTS.md)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

OPS = Path(__file__).resolve().parents[2] / "runtime" / "ops"
LENGTHS = {"T", "N", "NS", "NX"}
KERNEL_FILES = [OPS / "gated_delta" / "kernel.py", OPS / "titans" / "kernel.py",
                OPS / "self_modifying_titans" / "kernel_forward.py",
                OPS / "self_modifying_titans" / "kernel_backward.py"]


def _jit_kernels(path: Path):
    """(name, length parameters, names in do_not_specialize) of each @triton.jit function that is
    launched (`kernel[grid](...)` anywhere in the op's folder: a kernel may be defined in one file
    and launched from another): helpers inline into their kernels, whose arguments are what
    Triton specialises."""
    tree = ast.parse(path.read_text())
    launched = {node.func.value.id for f in path.parent.glob("*.py")
                for node in ast.walk(ast.parse(f.read_text()))
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Subscript)
                and isinstance(node.func.value, ast.Name)}
    constants = {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name) and isinstance(node.value, ast.List)}
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef) or fn.name not in launched:
            continue
        for dec in fn.decorator_list:
            target = dec.func if isinstance(dec, ast.Call) else dec
            if ast.unparse(target) != "triton.jit":
                continue
            kept: list[str] = []
            for kw in getattr(dec, "keywords", []):
                if kw.arg == "do_not_specialize":
                    v = kw.value
                    kept = constants[v.id] if isinstance(v, ast.Name) else ast.literal_eval(v)
            params = {a.arg for a in fn.args.args if a.annotation is None}  # constexprs are annotated
            yield fn.name, params & LENGTHS, set(kept)


@pytest.mark.parametrize("path", KERNEL_FILES, ids=lambda p: p.parent.name)
def test_length_arguments_are_not_specialised(path):
    kernels = [k for k in _jit_kernels(path) if k[1]]
    assert kernels, f"no kernel with a length argument in {path}"
    for name, lengths, kept in kernels:
        assert lengths <= kept, f"{name}: {sorted(lengths - kept)} would compile a variant per length"
