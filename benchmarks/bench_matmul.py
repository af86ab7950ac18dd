"""Single-threaded matmul: graphc's generated GEMM against NumPy's matmul (OpenBLAS), float32 256 and 1024.

    python benchmarks/bench_matmul.py [--sizes 256 1024] [--dtype float32] [--repeat 0.5]

Both sides run on one thread: the BLAS thread variables are set to 1 before NumPy is imported (and
threadpoolctl limits the BLAS pool when it is installed); the script reports the thread count the BLAS
library says it uses. Times are the best and the median of repeated calls on preallocated outputs
(``np.matmul(a, b, out=c)``), the GEMM pack buffer allocated once outside the timing. The ratio is
NumPy's time over graphc's (above 1: graphc is faster); the target is at least 0.8.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import ctypes  # noqa: E402
import glob  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from contextlib import nullcontext  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from graphc.codegen import gemm  # noqa: E402
from graphc.codegen.jit import CompiledModule, Target, new_module  # noqa: E402


def blas_threads() -> str:
    """How many threads NumPy's BLAS uses, as far as it can be asked."""
    try:
        from threadpoolctl import threadpool_info

        pools = [f"{p['internal_api']}: {p['num_threads']}" for p in threadpool_info() if p["user_api"] == "blas"]
        if pools:
            return ", ".join(pools) + " (threadpoolctl)"
    except ImportError:
        pass
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "*openblas*"))
    for path in libs:
        lib = ctypes.CDLL(path)
        for sym in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
            if hasattr(lib, sym):
                return f"{getattr(lib, sym)()} (OpenBLAS {os.path.basename(path)}, OPENBLAS_NUM_THREADS=1)"
    return "unknown (OPENBLAS_NUM_THREADS=1 set before importing NumPy; threadpoolctl not installed)"


def limit_threads():
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=1, user_api="blas")
    except ImportError:
        return nullcontext()


def timeit(fn, budget: float) -> tuple[float, float]:
    """(best, median) seconds of ``fn()`` over about ``budget`` seconds (at least 5 calls)."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=float, default=0.5, help="seconds of timing per measurement")
    args = parser.parse_args()
    dtype = np.dtype(args.dtype)

    target = Target.host()
    cfg = gemm.gemm_config(dtype, target)
    module = new_module("bench_matmul", target)
    gemm.emit_gemm(module, "gemm", dtype, target)
    t0 = time.perf_counter()
    compiled = CompiledModule(module, target)
    compile_s = time.perf_counter() - t0
    P, L = ctypes.c_void_p, ctypes.c_int64
    fn = ctypes.CFUNCTYPE(None, L, L, L, P, L, L, P, L, L, P, L, P)(compiled.address("gemm"))

    print(f"target: {target.cpu}, {cfg.lanes} x {dtype.name} vectors, micro-tile {cfg.mr} x {cfg.nr} "
          f"({cfg.mr} x {cfg.nv} vectors), mc={cfg.mc} kc={cfg.kc} nc={cfg.nc}, FMA={cfg.fma}; "
          f"compiled in {compile_s:.2f} s")
    print(f"threads: graphc 1; NumPy BLAS {blas_threads()}")
    print(f"{'n':>6} {'graphc ms':>10} {'GFLOP/s':>8} {'NumPy ms':>10} {'GFLOP/s':>8} {'ratio':>6}",
          " (best times; median ratio)")
    rng = np.random.default_rng(0)
    with limit_threads():
        for n in args.sizes:
            a = rng.standard_normal((n, n)).astype(dtype)
            b = rng.standard_normal((n, n)).astype(dtype)
            c = np.empty((n, n), dtype)
            c_np = np.empty((n, n), dtype)
            pack = np.empty(gemm.pack_buffer_elements(n, n, n, dtype, target), dtype)
            call = (n, n, n, a.ctypes.data, n, 1, b.ctypes.data, n, 1, c.ctypes.data, n, pack.ctypes.data)
            fn(*call)
            np.matmul(a, b, out=c_np)
            tol = 1e-3 * np.sqrt(n) if dtype == np.float32 else 1e-9 * np.sqrt(n)
            if not np.allclose(c, c_np, rtol=tol, atol=tol):
                raise SystemExit(f"n={n}: graphc and NumPy disagree (max diff {np.abs(c - c_np).max()})")
            g_best, g_med = timeit(lambda call=call: fn(*call), args.repeat)
            n_best, n_med = timeit(lambda a=a, b=b, c_np=c_np: np.matmul(a, b, out=c_np), args.repeat)
            flops = 2.0 * n**3
            print(f"{n:>6} {g_best * 1e3:>10.3f} {flops / g_best / 1e9:>8.1f} {n_best * 1e3:>10.3f} "
                  f"{flops / n_best / 1e9:>8.1f} {n_best / g_best:>6.2f}  ({n_med / g_med:.2f})")


if __name__ == "__main__":
    main()
