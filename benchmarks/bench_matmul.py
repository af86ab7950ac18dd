"""(d) float32 matmul: graphc's generated GEMM against NumPy's matmul (OpenBLAS), 256 and 1024, same threads.

    python3 benchmarks/bench_matmul.py [--quick] [--threads N]

Two comparisons per size:

* ``gc.function([a, b], a @ b, device="cpu", threads=N)`` against ``a @ b`` with NumPy's BLAS limited to
  the same N threads (both return a fresh array).  This is the one with the target: at least 0.8x NumPy.
* the GEMM kernel alone, called through ctypes on preallocated buffers (pack buffer allocated once), against
  ``np.matmul(a, b, out=c)`` with BLAS on one thread: the kernel's single-core efficiency, whatever the
  runtime around it does.  This line reaches into ``graphc.backends.cpu.gemm``; if its interface changes the
  line is skipped with a note.

NumPy's BLAS threads: the BLAS thread variables are set from ``--threads`` before NumPy is imported, and
while timing the pool is limited at run time too (threadpoolctl if installed, else OpenBLAS's own
``openblas_set_num_threads``); the header prints what the BLAS library reports.
"""

from __future__ import annotations

from _timing import early_thread_setup

early_thread_setup()  # before NumPy is imported: BLAS/OpenMP thread variables from --threads

import ctypes  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _harness import Section, main_cli  # noqa: E402
from _timing import (  # noqa: E402
    SETTLE_SECONDS,
    Config,
    Row,
    at_least,
    blas_threads,
    check_close,
    compare,
    fmt_time,
    limit_blas,
    measure_many,
)

import graphc as gc  # noqa: E402


def sizes(cfg: Config) -> list[int]:
    """The matrix sizes: 256 and 1024 (quick: 64 and 128)."""
    return [64, 128] if cfg.quick else [256, 1024]


def tolerance(n: int) -> tuple[float, float]:
    """(rtol, atol) for float32 products of standard normal n x n matrices (entries about sqrt(n))."""
    return 1e-4, 2e-5 * n


_compiled_gemm: dict[str, Any] = {}


def gemm_entry() -> tuple[Any, str]:
    """graphc's float32 GEMM kernel, compiled once per process (it takes the sizes as arguments): the ctypes
    function and a description of its blocking."""
    if not _compiled_gemm:
        from graphc.backends.cpu import gemm
        from graphc.backends.cpu.library import CompiledModule
        from graphc.codegen.target import Target, new_module

        target = Target.host()
        cfg = gemm.gemm_config(np.float32, target)
        module = new_module("bench_matmul", target)
        gemm.emit_gemm(module, "gemm", np.float32, target)
        compiled = CompiledModule(module, target)
        P, L = ctypes.c_void_p, ctypes.c_int64
        _compiled_gemm["module"] = compiled
        _compiled_gemm["fn"] = ctypes.CFUNCTYPE(None, L, L, L, P, L, L, P, L, L, P, L, P)(compiled.address("gemm"))
        _compiled_gemm["pack"] = lambda n: gemm.pack_buffer_elements(n, n, n, np.float32, target)
        _compiled_gemm["blocking"] = (f"{target.cpu}: {cfg.lanes} x float32 vectors, micro-tile {cfg.mr} x {cfg.nr}, "
                                      f"mc={cfg.mc} kc={cfg.kc} nc={cfg.nc}")
    return _compiled_gemm["fn"], _compiled_gemm["blocking"]


def gemm_kernel(n: int, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[Callable[[], None], str]:
    """graphc's GEMM kernel for ``c = a @ b`` (n x n float32) as a zero-argument callable (the pack buffer
    allocated once, here), and its blocking."""
    fn, blocking = gemm_entry()
    pack = np.empty(_compiled_gemm["pack"](n), np.float32)
    args = (n, n, n, a.ctypes.data, n, 1, b.ctypes.data, n, 1, c.ctypes.data, n, pack.ctypes.data)

    def call() -> None:
        fn(*args)

    call.pack = pack  # type: ignore[attr-defined]  # keeps the buffer alive as long as the callable
    return call, blocking


def section_d(cfg: Config) -> list[Row]:
    """(d) gc.function matmul vs NumPy with the same threads (target >= 0.8x), and the kernel alone (1 thread)."""
    rows: list[Row] = []
    rng = np.random.default_rng(0)
    with limit_blas(cfg.threads):
        print(f"(d) NumPy BLAS while timing: {blas_threads()}")
    for n in sizes(cfg):
        a = rng.standard_normal((n, n), np.float32)
        b = rng.standard_normal((n, n), np.float32)
        rtol, atol = tolerance(n)
        pa = gc.placeholder("float32", (n, n), name="a")
        pb = gc.placeholder("float32", (n, n), name="b")
        fn = gc.function([pa, pb], pa @ pb, device="cpu", threads=cfg.threads, name="matmul")
        with limit_blas(cfg.threads):
            expected = a @ b
            check_close(f"(d) {n}: graphc vs numpy", fn(a, b), expected, rtol, atol)
            timings = measure_many({"graphc": lambda fn=fn, a=a, b=b: fn(a, b), "numpy": lambda a=a, b=b: a @ b},
                                   cfg.runs, min_time=cfg.min_time, block=1 if cfg.threads == 1 else 8,
                                   settle=0 if cfg.threads == 1 or cfg.quick else SETTLE_SECONDS)
        graphc_time, numpy_time = timings["graphc"], timings["numpy"]
        gflops = 2.0 * n**3 / 1e9
        threads = f"{cfg.threads} thread{'s' if cfg.threads > 1 else ''}"
        label = f"{n}  {threads}"
        target = None if cfg.quick else at_least(0.8)
        rows += compare("d", label, graphc_time, {"numpy": numpy_time}, {"numpy": target} if target else None,
                        what=f"{n} gc.function, {threads}")
        print(f"(d) {n}  GFLOP/s: graphc {gflops / graphc_time.best:.1f}, numpy {gflops / numpy_time.best:.1f}")

        try:
            c = np.empty((n, n), np.float32)
            kernel, blocking = gemm_kernel(n, a, b, c)
            kernel()
            check_close(f"(d) {n}: graphc GEMM kernel vs numpy", c, expected, rtol, atol)
        except (AttributeError, TypeError, ValueError, ImportError) as exc:
            print(f"(d) {n}  kernel-only line unavailable (graphc.backends.cpu.gemm changed: {exc!r})")
            continue
        c_np = np.empty((n, n), np.float32)
        with limit_blas(1):
            timings = measure_many({"kernel": kernel, "numpy": lambda a=a, b=b, c_np=c_np: np.matmul(a, b, out=c_np)},
                                   cfg.runs, min_time=cfg.min_time)
        kernel_time, numpy_one = timings["kernel"], timings["numpy"]
        rows += compare("d", f"{n}  kernel alone, 1 thread", kernel_time, {"numpy out=": numpy_one},
                        what=f"{n} GEMM kernel alone, 1 thread")
        print(f"(d) {n}  kernel alone: {fmt_time(kernel_time.best)} = {gflops / kernel_time.best:.1f} GFLOP/s "
              f"({blocking})", flush=True)
    return rows


SECTIONS: dict[str, Section] = {"d": ("float32 matmul against NumPy (OpenBLAS), same threads", section_d)}


if __name__ == "__main__":
    raise SystemExit(main_cli(SECTIONS, __doc__))
