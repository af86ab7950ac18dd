"""Accuracy, special values and vectorisation of the inline float64 math functions (graphc.codegen.mathlib64).

Each function is JIT-compiled into a loop applying it elementwise and run over ~1.6 million float64 inputs
(random bit patterns over the whole float64 range, the busy range around 0, magnitudes from 1e-20 to 1,
the overflow / underflow edges, inf, nan, +-0.0, the smallest denormal and normal) and compared with NumPy
evaluated in ``longdouble`` (x87 extended precision: 11 more bits than float64).  The error is counted in
float64 ulps of the reference (``np.spacing``); nan and infinities must match exactly, and the signs of
zero results too.  The measured maximum must not exceed MAX_ULP, nor be more than 1 ulp below it.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from graphc.backends.cpu.library import CompiledModule
from graphc.codegen.mathlib import F64, define_elementwise_kernel
from graphc.codegen.mathlib64 import FLOAT64_FUNCTIONS, MAX_ULP
from graphc.codegen.target import new_module

NAMES = sorted(FLOAT64_FUNCTIONS)
LD = np.longdouble

pytestmark = pytest.mark.skipif(np.finfo(LD).nmant < 60, reason="needs an extended-precision longdouble")

REFERENCE = {
    "exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "softplus": lambda x: np.logaddexp(LD(0), x),
}
DOMAIN = {"log": lambda x: np.abs(x), "log1p": lambda x: np.where(x < -1, -x, x)}


@pytest.fixture(scope="module")
def compiled() -> CompiledModule:
    module = new_module("mathlib64_test")
    for name in NAMES:
        define_elementwise_kernel(module, f"k_{name}", FLOAT64_FUNCTIONS[name], element=F64)
    return CompiledModule(module)


def apply(compiled: CompiledModule, name: str, x: np.ndarray) -> np.ndarray:
    fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(compiled.address(f"k_{name}"))
    x = np.ascontiguousarray(x, np.float64)
    out = np.empty_like(x)
    fn(out.ctypes.data, x.ctypes.data, x.size)
    return out


def inputs(name: str) -> np.ndarray:
    rng = np.random.default_rng(sorted(REFERENCE).index(name))
    bits = rng.integers(0, 2**64, 600_000, dtype=np.uint64).view(np.float64)
    parts = [bits[np.isfinite(bits)], rng.uniform(-40, 40, 400_000),
             rng.standard_normal(200_000) * 10.0 ** rng.uniform(-20, 0, 200_000),
             rng.uniform(700, 712, 50_000), rng.uniform(-750, -700, 50_000), rng.uniform(-1, 1, 100_000),
             np.linspace(-1, 3, 50_000), rng.uniform(15, 40, 50_000), -rng.uniform(15, 40, 50_000),
             [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 2.2250738585072014e-308, 1.0, -1.0,
              709.782712893384, 709.7827128933841, -745.1332191019411, -745.1332191019412, 2.0**53, 2.0**53 + 2]]
    x = np.concatenate(parts)
    return DOMAIN.get(name, lambda v: v)(x)


def ulp_errors(name: str, x: np.ndarray, got: np.ndarray) -> tuple[float, np.ndarray]:
    with np.errstate(all="ignore"):
        ref = REFERENCE[name](x.astype(LD))
        ref64 = ref.astype(np.float64)
    finite = np.isfinite(ref64) & np.isfinite(got)
    bad = ~finite & ~(np.isnan(ref64) & np.isnan(got)) & (got != ref64)
    err = np.abs(got[finite].astype(LD) - ref[finite]) / np.spacing(np.abs(ref64[finite])).astype(LD)
    return float(err.max()), x[bad]


@pytest.mark.parametrize("name", NAMES)
def test_accuracy_within_documented_ulps(compiled: CompiledModule, name: str) -> None:
    x = inputs(name)
    worst, mismatched = ulp_errors(name, x, apply(compiled, name, x))
    assert mismatched.size == 0, f"{name}: nan / inf differs from NumPy at {mismatched[:5]}"
    assert worst <= MAX_ULP[name], f"{name}: {worst:.3f} ulp > the documented {MAX_ULP[name]}"
    assert worst > MAX_ULP[name] - 1, f"{name}: the documented bound {MAX_ULP[name]} is loose (measured {worst:.3f})"


@pytest.mark.parametrize("name", NAMES)
def test_signed_zeros_and_specials(compiled: CompiledModule, name: str) -> None:
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan])
    with np.errstate(all="ignore"):
        expected = REFERENCE[name](x.astype(LD)).astype(np.float64)
    got = apply(compiled, name, x)
    np.testing.assert_array_equal(got, expected)
    assert list(np.signbit(got[:2])) == list(np.signbit(expected[:2])), (name, got[:2], expected[:2])


def test_loops_are_vectorised(compiled: CompiledModule) -> None:
    """Every kernel's loop runs on vector registers: the functions call no library (the point of them)."""
    asm = compiled.assembly()
    assert "call" not in "".join(line for line in asm.splitlines() if "exp" in line and "call" in line)
    vector = "zmm" if "zmm" in asm else "ymm" if "ymm" in asm else "xmm"
    assert any(vector in line and line.strip().startswith(("vfmadd", "vmul", "mul")) and "pd" in line
               for line in asm.splitlines())


def test_float64_graphs_use_them() -> None:
    """A float64 graph on the CPU computes these functions inline: its results are mathlib64's, which
    match NumPy within the documented bounds."""
    import graphc as gc

    x = np.linspace(-30, 30, 10_001)
    p = gc.placeholder("float64", x.shape)
    fn = gc.function([p], [gc.exp(p), gc.tanh(p), gc.sigmoid(p), gc.log1p(gc.abs(p))], device="cpu")
    for got, name, arg in zip(fn(x), ["exp", "tanh", "sigmoid", "log1p"], [x, x, x, np.abs(x)]):
        worst, mismatched = ulp_errors(name, arg, got)
        assert mismatched.size == 0 and worst <= MAX_ULP[name], (name, worst)
