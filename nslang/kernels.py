"""Which Triton kernel runs each compiled memory on CUDA, and its constexpr parameters.

Codegen writes the choice into the generated model (`kernel = {...}` on the memory's class), so a
reader sees which kernel a memory uses and how it is specialised, or why it has none. The layer
passes the parameters to the op's dispatch, which checks them against the call and compiles that
specialisation (runtime/ops/kernel_dispatch.py); on CPU, or under
`runtime.layers.implementation("chunk")`, the PyTorch chunk form runs instead.

Head widths follow `Config.dim` at run time, so they are not among the fixed parameters: the
choice here is made for the spec's widths, and the kernel's `supports` checks the call's.
The limits below are the kernels' own (each kernel module's `supports` / `why_not` is the
runtime check); they live here too because the compiler does not import torch or triton.
"""
from __future__ import annotations

GATED_DELTA = "runtime/ops/gated_delta/kernel.py"
TITANS = "runtime/ops/titans/kernel.py"
CMS_UPDATE = "runtime/ops/cms/kernel.py"
SELF_MODIFYING = "runtime/ops/self_modifying_titans/kernel.py"
CHUNKS = (16, 32, 64)


def none(reason: str) -> dict:
    return {"op": None, "reason": reason}


def choose(layer: str, args: dict, dim: int, heads: int) -> dict | None:
    """The kernel for a sublayer with these constructor arguments; None for layers without fast
    state (attention runs PyTorch's fused SDPA, feed-forward layers are plain matmuls)."""
    dh = dim // heads
    if layer == "LinearMemory":
        return _linear(args, dh)
    if layer == "DeepMemory":
        return _deep(args, dh)
    if layer == "Continuum":
        if "in_context" not in args["regimes"]:
            return none("no level learns inside the context, so nothing updates in the forward")
        return {"op": "cms_update", "file": CMS_UPDATE}
    if layer == "SelfModifying":
        return _self_modifying(args, dh)
    return None


def _linear(args: dict, dh: int) -> dict:
    rule = args["rule"]
    if rule == "omega":
        return none("the Omega rule has none yet")
    if rule == "gd" and (args.get("minibatch") or 1) > 1:
        return none("mini-batch gd (TTT-linear) has none yet")
    if args["chunk"] not in CHUNKS:
        return none(f"chunk {args['chunk']} (the kernel takes {', '.join(map(str, CHUNKS))})")
    if dh > 128:
        return none(f"head width {dh} > 128 (the state backward needs more shared memory "
                    "than Hopper has)")
    retain = args["retain"]
    gate = retain["mode"] != "const" or retain["value"] is not None
    # hebbian is the gated-delta kernel without the delta correction (DELTA=False)
    return {"op": "hebbian" if rule == "hebbian" else "gated_delta", "file": GATED_DELTA,
            "DELTA": rule != "hebbian", "GATE": gate, "CHUNK": args["chunk"]}


def _deep(args: dict, dh: int) -> dict:
    hidden = args["hidden"]
    if args["read"] != "current":
        return none(f"read = {args['read']} (the kernel reads the current state)")
    if args["chunk"] not in CHUNKS:
        return none(f"chunk {args['chunk']} (the kernel takes {', '.join(map(str, CHUNKS))})")
    if args["act"] not in ("silu", "gelu"):
        return none(f"activation {args['act']} (the kernel takes silu or gelu)")
    if not (_pow2(dh) and 16 <= dh <= 128):
        return none(f"head width {dh} (the kernel takes powers of two from 16 to 128)")
    if not (_pow2(hidden) and hidden <= 4096):
        return none(f"hidden width {hidden} (the kernel takes powers of two up to 4096)")
    return {"op": "titans", "file": TITANS, "RESIDUAL": args["kind"] == "residual_mlp",
            "ACT": args["act"], "CHUNK": args["chunk"], "HIDDEN": hidden}


def _self_modifying(args: dict, dh: int) -> dict:
    hidden = set(args["hidden"].values())
    if args["chunk"] not in (16, 32):
        return none(f"chunk {args['chunk']} (the kernel takes 16 or 32)")
    if args["act"] not in ("silu", "gelu"):
        return none(f"activation {args['act']} (the kernel takes silu or gelu)")
    if dh > 128:
        return none(f"head width {dh} (the kernel takes up to 128)")
    if len(hidden) != 1:
        return none(f"hidden widths {sorted(hidden)} (the kernel takes one for all memories)")
    if dh > 64 and args["chunk"] == 32:  # the kernel module's why_not says the same
        return none(f"head width {dh} at chunk 32 (its backward needs more shared memory than "
                    "Hopper has; chunk 16 fits)")
    choice = {"op": "self_modifying_titans", "file": SELF_MODIFYING, "ACT": args["act"],
              "CHUNK": args["chunk"], "READ": args["read"], "DGD": args["dgd"],
              "HIDDEN": min(hidden)}
    # the kernel module's VERIFIED_WIDTH: the tile sizes a GPU run has checked
    if max(16, 1 << (dh - 1).bit_length()) > {16: 64}.get(args["chunk"], 0):
        choice["note"] = ("until a GPU run checks this tile size, the default implementation runs "
                          "the PyTorch chunk form; implementation('kernel') runs the kernel")
    return choice


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def constexprs(kernel: dict | None) -> dict | None:
    """The parameters dispatch checks: the choice without its bookkeeping keys."""
    if not kernel or kernel.get("op") is None:
        return None
    return {k: v for k, v in kernel.items() if k.isupper()}


def comment(kernel: dict) -> str:
    """One line for the generated code above `kernel = ...`."""
    if kernel["op"] is None:
        return f"No Triton kernel: {kernel['reason']}. The PyTorch chunk form runs everywhere."
    params = ", ".join(f"{k}={v!r}" for k, v in kernel.items() if k.isupper())
    return (f"On CUDA: the `{kernel['op']}` Triton kernel ({kernel['file']})"
            + (f", specialised by its constexprs {params}" if params else "") + "."
            + (f" Note: {kernel['note']}." if "note" in kernel else ""))
