"""The runtime library: code every compiled graph shares, compiled once per process.

It holds the thread pool (threadpool.py) and the generated GEMM for float32 and float64
with a multi-threaded driver::

    void graphc_gemm_<dtype>_mt(M, N, K, const T *A, a_row, a_col, const T *B, b_row, b_col,
                                T *C, ldc, T *pack, pack_stride, threads)

which splits ``C`` into ``threads`` row bands (column bands when ``M`` is too short for that), each
task using its own ``pack + task * pack_stride`` panel buffer.

Graph modules only declare these functions.  In this process the library is JIT-compiled on first
use and its functions are registered with LLVM's symbol table (``llvm.add_symbol``), so every graph
module links against the one copy; an ahead-of-time object links the same module in.  GEMM code is
already vectorised and scheduled by hand, so the library skips LLVM's IR pipeline (``RUNTIME_OPT =
0``): with it the GEMMs measured slower and took twice as long to compile; only the code generator
optimises (``RUNTIME_CODEGEN_OPT``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from graphc.backends.cpu.library import CompiledModule
from graphc.backends.cpu.target import host_target
from graphc.backends.cpu.threadpool import I8P, I64, PARALLEL_FOR, TASK_TYPE, declare_parallel_for, emit_thread_pool
from graphc.codegen.target import Target, new_module

GEMM_DTYPES = ("float32", "float64")
RUNTIME_PARTS = ("pool", "gemm_float32", "gemm_float64")
RUNTIME_OPT = 0  # the IR pipeline's level for the runtime library
RUNTIME_CODEGEN_OPT = 2  # the code generator's
_lock = threading.Lock()
_loaded: dict[tuple[Target, str], CompiledModule] = {}


def runtime_suffix(target: Target) -> str:
    """What the names of the runtime library built for ``target`` end with: nothing for the host's own
    CPU, else ``.`` and the CPU's name, so that libraries for two CPU levels can live in one process."""
    return "" if target == host_target() else f".{target.cpu}"


def gemm_driver_name(dtype: Any, suffix: str = "") -> str:
    return f"graphc_gemm_{np.dtype(dtype).name}_mt{suffix}"


def _gemm_driver_type(dtype: Any) -> ir.FunctionType:
    p = (ir.FloatType() if np.dtype(dtype) == np.float32 else ir.DoubleType()).as_pointer()
    return ir.FunctionType(ir.VoidType(), [I64, I64, I64, p, I64, I64, p, I64, I64, p, I64, p, I64, I64])


def declare_gemm(module: ir.Module, dtype: Any, suffix: str = "") -> ir.Function:
    """The multi-threaded GEMM driver for ``dtype`` declared in ``module`` (defined by the runtime library
    whose names end with ``suffix``)."""
    name = gemm_driver_name(dtype, suffix)
    existing = module.globals.get(name)
    return existing if existing is not None else ir.Function(module, _gemm_driver_type(dtype), name)


def _emit_gemm_driver(module: ir.Module, dtype: np.dtype, target: Target, parallel_for: ir.Function) -> None:
    """Emit the single-threaded GEMM for ``dtype`` and its multi-threaded driver."""
    from graphc.backends.cpu.gemm import emit_gemm, gemm_config  # imported only when a part is compiled

    cfg = gemm_config(dtype, target)
    single = emit_gemm(module, f"graphc_gemm_{dtype.name}", dtype, target)
    block = module.globals[f"graphc_gemm_{dtype.name}_block"]
    fields = 16  # the 14 arguments, then the row and column band sizes
    ctx_type = ir.ArrayType(I64, fields)
    elem_ptr = single.args[3].type

    # task(ctx, i): the i-th row (or column) band
    task = ir.Function(module, TASK_TYPE, f"graphc_gemm_{dtype.name}_task")
    task.linkage = "internal"
    b = ir.IRBuilder(task.append_basic_block("entry"))
    ctx = b.bitcast(task.args[0], ctx_type.as_pointer())
    v = [b.load(b.gep(ctx, [ir.Constant(I64, 0), ir.Constant(I64, k)])) for k in range(fields)]
    (M, N, K, A, a_r, a_c, B, b_r, b_c, C, ldc, pack, pack_stride, _threads, row_band, col_band) = v
    i = task.args[1]
    zero, big = ir.Constant(I64, 0), ir.Constant(I64, 2**62)
    by_rows = b.icmp_signed(">", row_band, zero)
    r0 = b.select(by_rows, b.mul(i, row_band), zero)
    r1 = b.select(by_rows, b.add(r0, row_band), big)
    c0 = b.select(by_rows, zero, b.mul(i, col_band))
    c1 = b.select(by_rows, big, b.add(c0, col_band))
    own_pack = b.gep(b.inttoptr(pack, elem_ptr), [b.mul(i, pack_stride)])
    b.call(block, [M, N, K, b.inttoptr(A, elem_ptr), a_r, a_c, b.inttoptr(B, elem_ptr), b_r, b_c,
                   b.inttoptr(C, elem_ptr), ldc, own_pack, r0, r1, c0, c1])
    b.ret_void()

    driver = ir.Function(module, _gemm_driver_type(dtype), gemm_driver_name(dtype, runtime_suffix(target)))
    b = ir.IRBuilder(driver.append_basic_block("entry"))
    args = list(driver.args)
    M, N, threads = args[0], args[1], args[13]
    one = ir.Constant(I64, 1)
    serial = driver.append_basic_block("serial")
    split = driver.append_basic_block("split")
    b.cbranch(b.icmp_signed(">", threads, one), split, serial)
    b.position_at_end(serial)
    b.call(single, args[:12])
    b.ret_void()
    b.position_at_end(split)
    ctx = b.alloca(ctx_type)

    def ceil_div(x: ir.Value, y: ir.Value) -> ir.Value:
        return b.sdiv(b.add(x, b.sub(y, one)), y)

    mr, nr = ir.Constant(I64, cfg.mr), ir.Constant(I64, cfg.nr)
    row_tiles, col_tiles = ceil_div(M, mr), ceil_div(N, nr)
    rows_suffice = b.icmp_signed(">=", row_tiles, threads)
    tiles = b.select(rows_suffice, row_tiles, col_tiles)
    tasks = b.select(b.icmp_signed("<", tiles, threads), tiles, threads)
    tasks = b.select(b.icmp_signed("<", tasks, one), one, tasks)
    band_tiles = ceil_div(tiles, tasks)
    row_band = b.select(rows_suffice, b.mul(band_tiles, mr), ir.Constant(I64, 0))
    col_band = b.mul(band_tiles, nr)
    values = [a if a.type == I64 else b.ptrtoint(a, I64) for a in args] + [row_band, col_band]
    for k, value in enumerate(values):
        b.store(value, b.gep(ctx, [ir.Constant(I64, 0), ir.Constant(I64, k)]))
    b.call(parallel_for, [task, b.bitcast(ctx, I8P), tasks, threads])
    b.ret_void()


def emit_runtime(module: ir.Module, target: Target, parts: Sequence[str] = RUNTIME_PARTS) -> list[str]:
    """Define the runtime library's ``parts`` (``"pool"``, ``"gemm_float32"``, ``"gemm_float64"``) in
    ``module``; returns the names graph modules call.  A GEMM part without ``"pool"`` declares the
    pool's entry, to be linked from another module."""
    exported = []
    suffix = runtime_suffix(target)
    for part in parts:
        if part == "pool":
            emit_thread_pool(module, suffix)
        elif part.startswith("gemm_") and part[5:] in GEMM_DTYPES:
            _emit_gemm_driver(module, np.dtype(part[5:]), target, declare_parallel_for(module, suffix))
        else:
            raise ValueError(f"unknown runtime part {part!r}; known: {', '.join(RUNTIME_PARTS)}")
        exported += _exports(part, suffix)
    return exported


Compiler = Callable[[str, Callable[[], ir.Module]], CompiledModule]
"""``compile(name, build)``: the compiled module ``build()`` makes; may serve it from a cache keyed
by ``name`` (the part, the target and the optimisation level are in it)."""


def runtime_part_name(part: str, target: Target) -> str:
    """What a compiler is asked for when runtime ``part`` is compiled for ``target`` (a cache key's name:
    the part, the target and the optimisation levels)."""
    return f"graphc-runtime/{part}/{target.triple}/{target.cpu}/{target.features}/O{RUNTIME_OPT}.{RUNTIME_CODEGEN_OPT}"


def is_loaded(part: str, target: Target) -> bool:
    """Whether runtime ``part`` for ``target`` is already in this process."""
    return (target, part) in _loaded


def load_runtime(parts: Sequence[str] = RUNTIME_PARTS, target: Target | None = None,
                 compiler: Compiler | None = None) -> None:
    """Compile the runtime library's ``parts`` into this process (each once) and register their
    functions for linking.  Each part is its own module, so a graph without float64 matmuls never
    waits for the float64 GEMM to compile.  ``compiler`` lets the caller cache the object code."""
    target = target or host_target()
    with _lock:
        for part in ("pool", *parts):
            if (target, part) in _loaded:
                continue

            def build(part: str = part) -> ir.Module:
                module = new_module(f"graphc_runtime_{part}", target)
                emit_runtime(module, target, [part])
                return module

            name = runtime_part_name(part, target)
            compiled = compiler(name, build) if compiler else CompiledModule(build(), target, opt=RUNTIME_OPT,
                                                                             codegen_opt=RUNTIME_CODEGEN_OPT)
            for symbol in _exports(part, runtime_suffix(target)):
                llvm.add_symbol(symbol, compiled.address(symbol))
            _loaded[(target, part)] = compiled


def _exports(part: str, suffix: str) -> list[str]:
    """The functions runtime ``part`` (built with names ending in ``suffix``) defines for graph modules."""
    return [PARALLEL_FOR + suffix] if part == "pool" else [gemm_driver_name(part[5:], suffix)]


def runtime_parts(module: ir.Module, target: Target) -> list[str]:
    """The runtime parts that ``module`` (built for ``target``) calls, from the functions it declares,
    with the pool whenever a GEMM is among them (its driver runs bands on the pool)."""
    declared = {f.name for f in module.functions if f.is_declaration}
    suffix = runtime_suffix(target)
    gemms = [f"gemm_{d}" for d in GEMM_DTYPES if gemm_driver_name(d, suffix) in declared]
    return (["pool"] if PARALLEL_FOR + suffix in declared or gemms else []) + gemms


__all__ = ["GEMM_DTYPES", "RUNTIME_CODEGEN_OPT", "RUNTIME_OPT", "RUNTIME_PARTS", "Compiler", "declare_gemm",
           "declare_parallel_for", "runtime_suffix",
           "emit_runtime", "gemm_driver_name", "is_loaded", "load_runtime", "runtime_part_name", "runtime_parts"]
