"""Speed of graphc's inline float32 math functions against NumPy's ufuncs.

Each function is JIT-compiled into a loop over a float32 array (one thread, LLVM O3 vectorised) and
timed on 10**7 elements against the NumPy ufunc doing the same (NumPy has no sigmoid ufunc: the
NumPy expression ``1 / (1 + exp(-x))`` stands in; erf uses ``scipy.special.erf`` when SciPy is
installed). Prints the time per call (best of several, timed with the shared helper in ``_timing.py``) and
the ratio graphc speed / NumPy speed (> 1: graphc is faster).  Not part of ``run_all.py`` (it times the
math library's kernels on their own, not a graph).

    python benchmarks/bench_mathlib.py [--n N] [--repeat R] [names...]
"""

from __future__ import annotations

import argparse
import ctypes
import math
from collections.abc import Callable

import numpy as np
from _timing import fmt_time, measure_many

from graphc.backends.cpu.library import CompiledModule
from graphc.codegen.mathlib import FLOAT32_FUNCTIONS, define_elementwise_kernel
from graphc.codegen.target import new_module

try:
    from scipy.special import erf as _np_erf
except ImportError:  # NumPy itself has no erf
    _np_erf = np.vectorize(math.erf, otypes=[np.float32])


def _np_sigmoid(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """NumPy's sigmoid, ``1 / (1 + exp(-x))``, computed in ``out``."""
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


NUMPY: dict[str, Callable[..., np.ndarray]] = {
    "exp": lambda x, out: np.exp(x, out=out),
    "log": lambda x, out: np.log(x, out=out),
    "log1p": lambda x, out: np.log1p(x, out=out),
    "expm1": lambda x, out: np.expm1(x, out=out),
    "tanh": lambda x, out: np.tanh(x, out=out),
    "sigmoid": _np_sigmoid,
    "erf": lambda x, out: _np_erf(x, out=out) if isinstance(_np_erf, np.ufunc) else _np_erf(x),
    "sin": lambda x, out: np.sin(x, out=out),
    "cos": lambda x, out: np.cos(x, out=out),
    "softplus": lambda x, out: np.logaddexp(np.float32(0), x, out=out),
    "power": lambda x, y, out: np.power(x, y, out=out),
}


def inputs(name: str, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Typical arguments: the range where the function is neither saturated nor trivial."""
    def uniform(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, n).astype(np.float32)

    return {
        "exp": lambda: [uniform(-87, 88)],
        "log": lambda: [np.exp(uniform(-80, 80))],
        "log1p": lambda: [uniform(-0.99, 100)],
        "expm1": lambda: [uniform(-20, 80)],
        "tanh": lambda: [uniform(-10, 10)],
        "sigmoid": lambda: [uniform(-30, 30)],
        "erf": lambda: [uniform(-5, 5)],
        "sin": lambda: [uniform(-100, 100)],
        "cos": lambda: [uniform(-100, 100)],
        "softplus": lambda: [uniform(-30, 30)],
        "power": lambda: [uniform(0, 10), uniform(-10, 10)],
    }[name]()


def main(argv: list[str] | None = None) -> None:
    """Compile every requested function into one module, then time each against NumPy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=sorted(FLOAT32_FUNCTIONS))
    parser.add_argument("--n", type=int, default=10**7)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    module = new_module("bench_mathlib")
    for name in args.names:
        define_elementwise_kernel(module, f"k_{name}", FLOAT32_FUNCTIONS[name], 2 if name == "power" else 1)
    compiled = CompiledModule(module)

    rng = np.random.default_rng(0)
    print(f"{args.n:,} float32 elements, one thread, best of {args.repeat}")
    print(f"{'function':<10} {'graphc':>10} {'numpy':>10} {'ratio':>7}")
    for name in args.names:
        xs = inputs(name, args.n, rng)
        out = np.empty_like(xs[0])
        proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * (len(xs) + 1)), ctypes.c_int64)
        kernel = proto(compiled.address(f"k_{name}"))
        pointers = [a.ctypes.data for a in xs]
        ref_out = np.empty_like(out)
        with np.errstate(all="ignore"):  # interleaved, so that both see the same machine
            timings = measure_many({"graphc": lambda: kernel(out.ctypes.data, *pointers, args.n),  # noqa: B023
                                    "numpy": lambda: NUMPY[name](*xs, out=ref_out)}, args.repeat, warmup=1)  # noqa: B023
        ours, theirs = timings["graphc"], timings["numpy"]
        print(f"{name:<10} {fmt_time(ours.best):>10} {fmt_time(theirs.best):>10} {theirs.best / ours.best:>7.2f}")


if __name__ == "__main__":
    main()
