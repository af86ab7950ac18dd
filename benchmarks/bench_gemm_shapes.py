"""(s) small and skinny matrix products: graphc's GEMM against NumPy's BLAS over every shape a two- or
three-layer network multiplies, same threads.

    python3 benchmarks/bench_gemm_shapes.py [--quick] [--threads N] [--dtype float32|float64]

Every ``M x K @ K x N`` product with M, N, K in {10, 32, 50, 64, 256, 500, 784} (343 shapes; ``--quick``:
{10, 50, 64}), row-major, contiguous.  Both sides are called from native code in a loop, so neither pays a
Python call per product (in a compiled graph the products call the GEMM from native code too):

* graphc: the runtime library's GEMM driver (``graphc_gemm_<dtype>_mt``, what a graph's matrix products
  call), with the thread count a graph would give it (``--threads`` from ``M * N * K`` >= the CPU backend's
  threshold for splitting a product, else 1);
* NumPy's BLAS: ``cblas_sgemm`` / ``cblas_dgemm`` of the OpenBLAS NumPy loaded (alpha 1, beta 0), its pool
  limited to ``--threads``.

Each side's loop of calls (about 2 ms) is timed 7 times after checking that it computes ``a @ b`` (float64
reference).  On one thread the sides alternate shape by shape; on several, every graphc product is timed
first and then every BLAS one, because OpenBLAS's workers keep spinning for about 0.1 s after each call
and would take the cores from graphc's workers (measured: graphc's 2-thread products ran up to 5x slower
right after a BLAS call).  Targets: graphc at least as fast on every shape (the minimum ratio >= 1.0x) and
a geometric mean >= 1.3x.
"""

from __future__ import annotations

from _timing import early_thread_setup

early_thread_setup()  # before NumPy is imported: BLAS/OpenMP thread variables from --threads

import argparse  # noqa: E402
import ctypes  # noqa: E402
import itertools  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _harness import Section, main_cli  # noqa: E402
from _timing import (  # noqa: E402
    Config,
    Row,
    Timing,
    at_least,
    blas_threads,
    check_close,
    limit_blas,
    measure,
    openblas_library,
)

SIZES = (10, 32, 50, 64, 256, 500, 784)
QUICK_SIZES = (10, 50, 64)
LOOP_SECONDS = 2e-3


def _dtype_from_argv() -> np.dtype:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args, rest = parser.parse_known_args()
    sys.argv[1:] = rest
    return np.dtype(args.dtype)


DTYPE = _dtype_from_argv() if __name__ == "__main__" else np.dtype(np.float32)


class NativeLoops:
    """Native loops that call a GEMM ``reps`` times: graphc's driver and the BLAS's ``cblas_?gemm``."""

    def __init__(self, dtype: np.dtype) -> None:
        from llvmlite import ir

        from graphc.backends.cpu import runtime_lib
        from graphc.backends.cpu.library import CompiledModule
        from graphc.backends.cpu.target import host_target
        from graphc.codegen.target import new_module

        found = openblas_library()
        if found is None:
            raise LookupError("NumPy's OpenBLAS was not found")
        lib = found[0]
        letter = "s" if dtype == np.float32 else "d"
        names = [f"{p}cblas_{letter}gemm{s}" for p in ("scipy_", "", "openblas_") for s in ("64_", "")]
        blas_name = next((n for n in names if hasattr(lib, n)), None)
        if blas_name is None:
            raise LookupError(f"no cblas_{letter}gemm in {lib._name}")
        blas_int = ir.IntType(64 if blas_name.endswith("64_") else 32)
        target = host_target()
        runtime_lib.load_runtime([f"gemm_{dtype.name}"], target)
        import llvmlite.binding as llvm

        graphc_addr = llvm.address_of_symbol(runtime_lib.gemm_driver_name(dtype))
        blas_addr = ctypes.cast(getattr(lib, blas_name), ctypes.c_void_p).value

        i32, i64 = ir.IntType(32), ir.IntType(64)
        real = ir.FloatType() if dtype == np.float32 else ir.DoubleType()
        p = real.as_pointer()
        module = new_module("bench_gemm_shapes", target)
        graphc_type = runtime_lib.declare_gemm(module, dtype).function_type
        blas_type = ir.FunctionType(ir.VoidType(), [i32, i32, i32, blas_int, blas_int, blas_int, real, p, blas_int,
                                                    p, blas_int, real, p, blas_int])
        params = [i64] * 3 + [p, i64, p, i64, p, i64, p, i64, i64]
        self._loop(module, "repeat_graphc", graphc_type, graphc_addr, params,
                   lambda a: [a[0], a[1], a[2], a[3], a[4], ir.Constant(i64, 1), a[5], a[6], ir.Constant(i64, 1),
                              a[7], a[8], a[9], a[10], a[11]])

        n = blas_int
        self._loop(module, "repeat_blas", blas_type, blas_addr, [n] * 3 + [p, n, p, n, p, n],
                   lambda a: [ir.Constant(i32, 101), ir.Constant(i32, 111), ir.Constant(i32, 111), *a[:3],
                              ir.Constant(real, 1.0), *a[3:7], ir.Constant(real, 0.0), *a[7:]])
        self.compiled = CompiledModule(module, target)
        P, L = ctypes.c_void_p, ctypes.c_int64
        graphc_loop = ctypes.CFUNCTYPE(None, L, L, L, L, P, L, P, L, P, L, P, L, L)
        self.graphc = graphc_loop(self.compiled.address("repeat_graphc"))
        N = ctypes.c_int64 if blas_int.width == 64 else ctypes.c_int32
        self.blas = ctypes.CFUNCTYPE(None, L, N, N, N, P, N, P, N, P, N)(self.compiled.address("repeat_blas"))
        self.blas_name = blas_name

    @staticmethod
    def _loop(module: Any, name: str, callee_type: Any, address: int, params: list[Any],
              call_args: Callable[[list[Any]], list[Any]]) -> None:
        """``void name(i64 reps, params...)``: call the function at ``address`` ``reps`` times with
        ``call_args(params)``."""
        from llvmlite import ir

        i64 = ir.IntType(64)
        fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i64, *params]), name)
        entry = fn.append_basic_block("entry")
        body = fn.append_basic_block("body")
        done = fn.append_basic_block("done")
        b = ir.IRBuilder(entry)
        callee = b.inttoptr(ir.Constant(i64, address), callee_type.as_pointer())
        args = call_args(list(fn.args[1:]))
        b.cbranch(b.icmp_signed(">", fn.args[0], ir.Constant(i64, 0)), body, done)
        b.position_at_end(body)
        i = b.phi(i64)
        i.add_incoming(ir.Constant(i64, 0), entry)
        b.call(callee, args)
        nxt = b.add(i, ir.Constant(i64, 1))
        i.add_incoming(nxt, body)
        b.cbranch(b.icmp_signed("<", nxt, fn.args[0]), body, done)
        b.position_at_end(done)
        b.ret_void()


def shapes(cfg: Config) -> list[tuple[int, int, int]]:
    """Every (M, N, K) of the grid."""
    sizes = QUICK_SIZES if cfg.quick else SIZES
    return list(itertools.product(sizes, sizes, sizes))


def section_s(cfg: Config) -> list[Row]:
    """(s) graphc's GEMM driver against cblas_?gemm over the shape grid, both called from native loops."""
    from graphc.backends.cpu.backend import GEMM_PARALLEL_MIN_MACS
    from graphc.backends.cpu.gemm import pack_buffer_elements

    dtype = DTYPE
    try:
        loops = NativeLoops(dtype)
    except (LookupError, OSError) as exc:
        print(f"(s) skipped: {exc}")
        return []
    with limit_blas(cfg.threads):
        print(f"(s) {dtype.name}; BLAS: {loops.blas_name}, {blas_threads()}; graphc splits a product over "
              f"{cfg.threads} thread(s) from {GEMM_PARALLEL_MIN_MACS} multiply-adds")
    eps = np.finfo(dtype).eps
    runs = 3 if cfg.quick else 7

    def problem(M: int, N: int, K: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The operands (seeded by the shape), their float64 product and the loop length."""
        rng = np.random.default_rng([M, N, K])
        a = rng.standard_normal((M, K)).astype(dtype)
        b = rng.standard_normal((K, N)).astype(dtype)
        expected = a.astype(np.float64) @ b.astype(np.float64)
        return a, b, expected, max(1, min(10_000, int(LOOP_SECONDS * 50e9 / (2 * M * N * K + 2000))))

    def check(what: str, c: np.ndarray, expected: np.ndarray, K: int) -> None:
        tol = 8 * eps * math.sqrt(K) * max(1.0, float(np.abs(expected).max()))
        check_close(what, c, expected, rtol=0, atol=tol)

    def time_graphc(M: int, N: int, K: int) -> tuple[Timing, int]:
        a, b, expected, reps = problem(M, N, K)
        c = np.empty((M, N), dtype)
        threads = cfg.threads if M * N * K >= GEMM_PARALLEL_MIN_MACS else 1
        stride = pack_buffer_elements(M, N, K, dtype)
        pack = np.empty(stride * threads, dtype)
        args = (M, N, K, a.ctypes.data, K, b.ctypes.data, N, c.ctypes.data, N, pack.ctypes.data, stride, threads)
        loops.graphc(1, *args)
        check(f"(s) {M}x{N}x{K}: graphc", c, expected, K)
        return measure(lambda: loops.graphc(reps, *args), runs=runs, warmup=1), reps

    def time_blas(M: int, N: int, K: int) -> Timing:
        a, b, expected, reps = problem(M, N, K)
        c = np.empty((M, N), dtype)
        args = (M, N, K, a.ctypes.data, K, b.ctypes.data, N, c.ctypes.data, N)
        with limit_blas(cfg.threads):
            loops.blas(1, *args)
            check(f"(s) {M}x{N}x{K}: blas", c, expected, K)
            return measure(lambda: loops.blas(reps, *args), runs=runs, warmup=1)

    grid = shapes(cfg)
    if cfg.threads == 1:  # interleaved, shape by shape
        results = {shape: (*time_graphc(*shape), time_blas(*shape)) for shape in grid}
    else:
        # OpenBLAS's workers keep spinning for about 0.1 s after each call (OPENBLAS_THREAD_TIMEOUT) and would
        # share the cores with graphc's: every graphc product is timed first, then every BLAS one
        with limit_blas(1):  # (the reference products then leave no spinning BLAS workers behind either)
            ours = {shape: time_graphc(*shape) for shape in grid}
        results = {shape: (*ours[shape], time_blas(*shape)) for shape in grid}
    ratios: dict[tuple[int, int, int], float] = {}
    print(f"(s) {'M':>4} {'N':>4} {'K':>4}  {'graphc':>9}  {'blas':>9}  ratio [median]")
    for (M, N, K), (g, reps, o) in results.items():
        ratio = o.best / g.best
        ratios[(M, N, K)] = ratio
        print(f"(s) {M:4d} {N:4d} {K:4d}  {g.best / reps * 1e6:7.2f}us  {o.best / reps * 1e6:7.2f}us  "
              f"{ratio:5.2f}x [{o.median / g.median:5.2f}x]{'  SLOWER' if ratio < 1 else ''}", flush=True)
    values = list(ratios.values())
    geomean = math.exp(sum(map(math.log, values)) / len(values))
    worst = min(ratios, key=ratios.__getitem__)
    slower = sum(r < 1 for r in values)
    print(f"(s) {len(values)} shapes: geometric mean {geomean:.2f}x, slowest {ratios[worst]:.2f}x at "
          f"{'x'.join(map(str, worst))}, {slower} below 1.0x")
    judged = not cfg.quick
    threads = f"{cfg.threads} thread{'s' if cfg.threads > 1 else ''}"
    return [Row("s", f"{dtype.name} GEMM grid, {threads}: geometric mean vs BLAS", geomean, "x",
                at_least(1.3) if judged else None),
            Row("s", f"{dtype.name} GEMM grid, {threads}: slowest shape ({'x'.join(map(str, worst))}) vs BLAS",
                ratios[worst], "x", at_least(1.0) if judged else None)]


SECTIONS: dict[str, Section] = {"s": ("small and skinny matrix products against NumPy's BLAS", section_s)}


if __name__ == "__main__":
    raise SystemExit(main_cli(SECTIONS, __doc__))
