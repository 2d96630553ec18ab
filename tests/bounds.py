"""Out-of-bounds memory accesses of Triton kernels, caught in the interpreter.

On a GPU a kernel that reads or writes outside its tensors faults ("an illegal memory access was
encountered") or, worse, silently reads a neighbour's bytes. The interpreter (TRITON_INTERPRET=1)
does neither: it dereferences the raw address in host memory, so a wrong offset passes the CPU tests
with garbage that a masked or zero-weighted term may hide. `checked_memory()` makes the interpreter
strict: every load, store and atomic of a launch must fall, for the lanes its mask enables, inside
the storage of one of that launch's tensor arguments; otherwise it raises OutOfBounds naming the
kernel, the operation and how far outside the nearest argument the address lies.

    with checked_memory():
        out = my_kernel_wrapper(...)

Used by the kernel tests (tests/ops); costs a few numpy comparisons per memory operation.
"""
from __future__ import annotations

import contextlib

import numpy as np


class OutOfBounds(AssertionError):
    pass


class Race(AssertionError):
    pass


@contextlib.contextmanager
def checked_memory(races: bool = False):
    """races=True also fails a launch in which one program reads or writes (not atomically) an
    element another program of the same launch writes: the interpreter runs programs one after
    another, a GPU at once, so such a kernel passes here and reads garbage there."""
    from triton.runtime import interpreter as itp

    ranges: list[tuple[int, int, str]] = []  # [start, end) of each argument's storage, its name
    kernel = [""]
    accesses: dict[str, list] = {"read": [], "write": []}  # (addresses, program) per memory op
    executor = itp.GridExecutor
    builder = itp.InterpreterBuilder
    saved = {name: getattr(builder, name) for name in
             ("create_masked_load", "create_masked_store", "create_atomic_rmw", "create_atomic_cas")}
    init_args, restore_args = executor._init_args_hst, executor._restore_args_dev

    def _init_args_hst(self, args_dev, kwargs):
        # Each argument's storage is copied into its own buffer with guard bytes on both sides (at
        # least the storage's size): an access that strays from its tensor lands in a guard, never
        # in a neighbouring argument, so the check below attributes it exactly.
        import torch

        padded: dict[int, tuple] = {}
        ranges.clear()
        kernel[0] = getattr(self.fn, "__name__", "kernel")
        names = list(self.arg_names)

        def to_host(arg, name):
            if isinstance(arg, tuple):
                return tuple(to_host(a, name) for a in arg)
            if not hasattr(arg, "data_ptr"):
                return arg
            t = itp._unwrap_tensor(arg)
            storage = t.untyped_storage()
            if storage.data_ptr() not in padded:
                n = storage.nbytes()
                guard = max(4096, -(-n // 64) * 64)
                big = torch.zeros(n + 2 * guard, dtype=torch.uint8)
                big[guard:guard + n].copy_(torch.empty(0, dtype=torch.uint8, device=t.device).set_(storage).cpu())
                padded[storage.data_ptr()] = (big, guard, n, storage)
                ranges.append((big.data_ptr() + guard, big.data_ptr() + guard + n, name))
            big, guard, n, _ = padded[storage.data_ptr()]
            width = t.element_size()
            host = big.view(t.dtype).as_strided(t.size(), t.stride(), guard // width + t.storage_offset())
            return itp._rewrap_tensor(host, original_tensor=arg)

        accesses["read"].clear()
        accesses["write"].clear()
        args_hst = [to_host(a, names[i] if i < len(names) else f"argument {i}") for i, a in enumerate(args_dev)]
        kwargs_hst = {k: to_host(v, k) for k, v in kwargs.items()}
        self._padded = padded
        return args_hst, kwargs_hst

    def _restore_args_dev(self, args_dev, args_hst, kwargs, kwargs_hst):
        import torch

        if races:
            find_race()
        for big, guard, n, storage in self._padded.values():
            torch.empty(0, dtype=torch.uint8, device=storage.device).set_(storage).copy_(big[guard:guard + n])

    def name_of(address: int) -> str:
        for start, end, name in ranges:
            if start <= address < end:
                return f"`{name}` byte {address - start}"
        return "?"

    def find_race():
        def flat(kind):
            pieces = accesses[kind]
            if not pieces:
                return np.zeros(0, np.uint64), np.zeros(0, np.int64)
            return (np.concatenate([a for a, _ in pieces]),
                    np.concatenate([np.full(a.shape, p, np.int64) for a, p in pieces]))

        wa, wp = flat("write")
        if wa.size == 0:
            return
        order = np.lexsort((wp, wa))
        wa, wp = wa[order], wp[order]
        starts = np.r_[0, np.flatnonzero(wa[1:] != wa[:-1]) + 1]
        first, last = wp[starts], wp[np.r_[starts[1:] - 1, wa.size - 1]]
        if (clash := np.flatnonzero(first != last)).size:
            i = clash[0]
            raise Race(f"{kernel[0]}: programs {first[i]} and {last[i]} both write {name_of(int(wa[starts[i]]))}")
        ra, rp = flat("read")
        written, writer = wa[starts], first
        at = np.searchsorted(written, ra)
        hit = (at < written.size) & (written[np.minimum(at, written.size - 1)] == ra)
        other = hit & (writer[np.minimum(at, written.size - 1)] != rp)
        if other.any():
            j = np.flatnonzero(other)[0]
            raise Race(f"{kernel[0]}: program {rp[j]} reads {name_of(int(ra[j]))}, which program "
                       f"{writer[at[j]]} writes in the same launch")

    def record(kind: str, builder_self, addresses):
        x, y, z = builder_self.grid_idx
        gx, gy, _ = builder_self.grid_dim
        accesses[kind].append((addresses, (z * gy + y) * gx + x))

    def check(op: str, ptrs, mask):
        addresses = np.asarray(ptrs.data).astype(np.uint64)
        enabled = np.broadcast_to(np.asarray(mask.data, dtype=bool), addresses.shape) if mask is not None \
            else np.ones(addresses.shape, dtype=bool)
        wanted = addresses[enabled]
        if wanted.size == 0:
            return wanted
        width = np.dtype(itp._get_np_dtype(ptrs.get_element_ty())).itemsize
        inside = np.zeros(wanted.shape, dtype=bool)
        for start, end, _ in ranges:
            inside |= (wanted >= start) & (wanted + width <= end)
        if inside.all():
            return wanted
        bad = int(wanted[~inside][0])
        start, end, name = min(ranges, key=lambda r: min(abs(bad - r[0]), abs(bad - r[1])))
        index = (bad - start) // width if bad >= start else -((start - bad + width - 1) // width)
        raise OutOfBounds(f"{kernel[0]}: {op} of {int((~inside).sum())} lane(s) outside every tensor argument; "
                          f"the first at element {index} of `{name}`, which holds {(end - start) // width}")

    def masked_load(self, ptrs, mask, other, *a):
        wanted = check("load", ptrs, mask)
        if races:
            record("read", self, wanted)
        return saved["create_masked_load"](self, ptrs, mask, other, *a)

    def masked_store(self, ptrs, value, mask, *a):
        wanted = check("store", ptrs, mask)
        if races:
            record("write", self, wanted)
        return saved["create_masked_store"](self, ptrs, value, mask, *a)

    def atomic_rmw(self, rmw, ptr, val, mask, *a):
        check("atomic", ptr, mask)
        return saved["create_atomic_rmw"](self, rmw, ptr, val, mask, *a)

    def atomic_cas(self, ptr, cmp, val, *a):
        check("atomic_cas", ptr, None)
        return saved["create_atomic_cas"](self, ptr, cmp, val, *a)

    executor._init_args_hst, executor._restore_args_dev = _init_args_hst, _restore_args_dev
    builder.create_masked_load, builder.create_masked_store = masked_load, masked_store
    builder.create_atomic_rmw, builder.create_atomic_cas = atomic_rmw, atomic_cas
    try:
        yield
    finally:
        executor._init_args_hst, executor._restore_args_dev = init_args, restore_args
        for name, fn in saved.items():
            setattr(builder, name, fn)
