"""Reductions against NumPy 2: sum mean max min prod argmax argmin logsumexp.

Axis None / int / negative / tuple, keepdims, every dtype, size-0 axes, unknown dims, and logsumexp's
stability.  graphc's documented deviation: sums and products of uint8 are int64 where NumPy gives uint64.
Float sums, means, products and logsumexps add in another order than NumPy's (on device="cpu"): they
are compared within docs/numerics.md's bound (``util.assert_reduction_close``), everything else exactly.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import graphc as gc
from util import assert_reduction_close, assert_same, graphc_dtype, random_array, run

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "float32", "float64"]
FLOAT_DTYPES = ["float32", "float64"]
REDUCTIONS = ["sum", "mean", "max", "min", "prod"]
ARG_REDUCTIONS = ["argmax", "argmin"]
# NumPy (and so the reference backend) warns about the mean of an empty axis, which is nan by definition
pytestmark = [pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning"),
              pytest.mark.usefixtures("device")]  # every test also runs on device="cpu" (see conftest.py)
AXES = [None, 0, 1, 2, -1, -3, (0, 2), (-1, 0), (0, 1, 2), ()]


# ---- helpers ------------------------------------------------------------------------------------------

def logsumexp_reference(x: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(x))) in float64 with the usual max shift, rounded to the dtype NumPy's exp gives."""
    out_dtype = graphc_dtype(np.exp(np.zeros(0, x.dtype)).dtype)
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if x64.size == 0:
            return np.log(np.sum(np.exp(x64), axis=axis, keepdims=keepdims)).astype(out_dtype)
        m = np.max(x64, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        out = np.log(np.sum(np.exp(x64 - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        out = np.squeeze(out, axis=axis)
    return np.asarray(out).astype(out_dtype)


NUMPY_REDUCTIONS: dict[str, Callable[..., Any]] = {
    "sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod, "argmax": np.argmax,
    "argmin": np.argmin, "logsumexp": logsumexp_reference,
}


def numpy_expected(name: str, x: np.ndarray, **kwargs: Any) -> np.ndarray:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = np.asarray(NUMPY_REDUCTIONS[name](x, **kwargs))
    return out.astype(graphc_dtype(out.dtype))


def assert_reduced(result: np.ndarray, expected: np.ndarray, name: str, x: np.ndarray, axis: Any = None,
                   keepdims: bool = False) -> None:
    """``result`` is NumPy's ``expected``: exactly, or for float sums, means, products and logsumexps
    within the promise's bound (they may add in another order)."""
    if name in ("sum", "mean", "prod", "logsumexp") and np.asarray(expected).dtype.kind == "f":
        assert isinstance(result, np.ndarray), type(result)
        assert_reduction_close(result, expected, name, x, axis, keepdims)
    else:
        assert_same(result, expected)


def check(name: str, x: np.ndarray, *, method: bool = False, source: str = "placeholder",
          shape: tuple | None = None, **kwargs: Any) -> None:
    """gc.<name>(x, **kwargs) equals NumPy's: static dtype/shape (None = unknown), run-time value, dtype, shape."""
    expected = numpy_expected(name, x, **kwargs)
    if source == "placeholder":
        p = gc.placeholder(x.dtype, shape if shape is not None else x.shape)
        feeds = {p: x}
    else:
        p, feeds = gc.constant(x), {}
    t = getattr(p, name)(**kwargs) if method else getattr(gc, name)(p, **kwargs)
    assert isinstance(t, gc.Tensor)
    assert t.dtype == expected.dtype, (t.dtype, expected.dtype)
    assert len(t.shape) == expected.ndim and all(s is None or s == e for s, e in zip(t.shape, expected.shape)), (
        t.shape, expected.shape)
    assert_reduced(run(t, feeds), expected, name, x, kwargs.get("axis"), kwargs.get("keepdims", False))


def values_for(rng: np.random.Generator, name: str, shape: tuple, dtype: str) -> np.ndarray:
    """Random values; products use small magnitudes so they neither overflow nor vanish."""
    if name == "prod":
        if dtype in FLOAT_DTYPES:
            return (rng.uniform(0.5, 1.5, shape) * rng.choice([-1, 1], shape)).astype(dtype)
        return random_array(rng, shape, dtype, -2, 2)
    return random_array(rng, shape, dtype)


# ---- axis / keepdims / dtype -----------------------------------------------------------------------------

@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", [*REDUCTIONS, "logsumexp"])
def test_reduction_matches_numpy(rng: np.random.Generator, name: str, dtype: str, axis: Any, keepdims: bool
                                 ) -> None:
    check(name, values_for(rng, name, (2, 3, 4), dtype), axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -2], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ARG_REDUCTIONS)
def test_arg_reduction_matches_numpy(rng: np.random.Generator, name: str, dtype: str, axis: Any,
                                     keepdims: bool) -> None:
    check(name, random_array(rng, (3, 4, 5), dtype), axis=axis, keepdims=keepdims)


@pytest.mark.parametrize(("dtype", "want"), [
    ("bool", "int64"), ("int8", "int64"), ("int16", "int64"), ("int32", "int64"), ("int64", "int64"),
    ("uint8", "int64"), ("float32", "float32"), ("float64", "float64"),
])
def test_sum_and_prod_accumulator_dtypes(dtype: str, want: str) -> None:
    x = gc.placeholder(dtype, (3, 2))
    for t in (gc.sum(x), gc.sum(x, axis=0), gc.prod(x, axis=-1, keepdims=True), x.sum(), x.prod(axis=())):
        assert t.dtype == np.dtype(want), t


@pytest.mark.parametrize(("dtype", "want"), [
    ("bool", "float64"), ("int8", "float64"), ("uint8", "float64"), ("int64", "float64"), ("float32", "float32"),
    ("float64", "float64"),
])
def test_mean_dtypes(dtype: str, want: str) -> None:
    assert gc.mean(gc.placeholder(dtype, (3,))).dtype == np.dtype(want)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32"])
def test_small_int_sums_do_not_wrap(dtype: str) -> None:
    info = np.iinfo(dtype)
    x = np.full((1000,), info.max, dtype)
    check("sum", x)
    check("sum", x, axis=0, keepdims=True)
    check("mean", x)
    check("prod", np.full((5,), 100 if info.max >= 100 else 10, dtype))


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("value", [3, 2.5, True], ids=repr)
def test_reduction_of_scalar(name: str, value: Any) -> None:
    expected = numpy_expected(name, np.array(value))
    t = getattr(gc, name)(value)
    assert t.shape == () and t.dtype == expected.dtype
    assert_same(run(t), expected)
    check(name, np.array(value, np.float32))
    check(name, np.array(value, np.float32), axis=(), keepdims=True)


@pytest.mark.parametrize("name", ["argmax", "argmin", "logsumexp"])
def test_other_reductions_of_scalar(name: str) -> None:
    check(name, np.array(2.5))
    check(name, np.array(2.5), keepdims=True)
    check(name, np.array(7, np.int32), axis=None)


@pytest.mark.parametrize("name", [*REDUCTIONS, "logsumexp"])
def test_tuple_axes_in_any_order_and_lists(rng: np.random.Generator, name: str) -> None:
    x = values_for(rng, name, (2, 3, 4, 2), "float64")
    for axis in [(3, 0), (-1, -4), [1, 2], (2, -3, 0)]:
        check(name, x, axis=tuple(axis))
        t = getattr(gc, name)(gc.constant(x), axis=list(axis))  # a list is accepted like a tuple
        assert_reduced(run(t), numpy_expected(name, x, axis=tuple(axis)), name, x, tuple(axis))


def test_reduction_of_python_lists_and_numpy_integer_axes() -> None:
    assert_same(run(gc.sum([1, 2, 3])), np.sum([1, 2, 3]))
    assert_same(run(gc.max([[1.5, 2.5], [0.5, -1.0]], axis=np.int64(1))), np.max([[1.5, 2.5], [0.5, -1.0]], axis=1))
    assert_same(run(gc.mean([True, False, True, True])), np.mean([True, False, True, True]))
    assert_same(run(gc.argmin([[3, 1], [0, 2]], axis=np.int32(-1))), np.argmin([[3, 1], [0, 2]], axis=-1))
    assert_same(run(gc.prod([[1, 2], [3, 4]], axis=(np.int64(0), 1))), np.prod([[1, 2], [3, 4]]))


# ---- tensor methods ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "kwargs"), [
    ("sum", {}), ("sum", {"axis": 1, "keepdims": True}), ("sum", {"axis": (0, 1)}), ("mean", {}),
    ("mean", {"axis": 0}), ("max", {}), ("max", {"axis": -1}), ("min", {"axis": 0, "keepdims": True}),
    ("min", {}), ("prod", {}), ("prod", {"axis": 1}), ("argmax", {}), ("argmax", {"axis": 1}),
    ("argmin", {"axis": 0, "keepdims": True}), ("argmin", {}),
], ids=str)
def test_tensor_methods(rng: np.random.Generator, name: str, kwargs: dict) -> None:
    x = values_for(rng, name, (3, 4), "float32")
    check(name, x, method=True, **kwargs)
    check(name, x.astype(np.int32), method=True, source="constant", **kwargs)


def test_positional_axis_argument(rng: np.random.Generator) -> None:
    x = random_array(rng, (3, 4), "float64")
    p = gc.placeholder("float64", (3, 4))
    assert_same(run(gc.sum(p, 1), {p: x}), np.sum(x, 1))
    assert_same(run(p.max(0), {p: x}), np.max(x, 0))
    assert_same(run(gc.argmin(p, -1), {p: x}), np.argmin(x, -1))
    assert_same(run(gc.logsumexp(p, 0, True), {p: x}), logsumexp_reference(x, 0, True))


# ---- size-0 axes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sum", "prod", "mean", "logsumexp"])
def test_reductions_with_an_identity_of_empty(name: str, dtype: str) -> None:
    for shape, axes in [((0,), [None, 0]), ((2, 0, 3), [None, 1, (0, 1), 2, -1]), ((0, 4), [0, 1, None])]:
        x = np.zeros(shape, dtype)
        for axis in axes:
            for keepdims in (False, True):
                check(name, x, axis=axis, keepdims=keepdims)


def test_empty_values_are_the_identities() -> None:
    assert_same(run(gc.sum(gc.constant(np.zeros((0,), np.float32)))), np.float32(0))
    assert_same(run(gc.prod(gc.constant(np.zeros((0,), np.int8)))), np.int64(1))
    assert_same(run(gc.sum(gc.constant(np.zeros((2, 0), np.int32)), axis=1)), np.zeros(2, np.int64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy warns "Mean of empty slice"
        assert_same(run(gc.mean(gc.constant(np.zeros((0, 2), np.float32)), axis=0)), np.full(2, np.nan, np.float32))
    assert_same(run(gc.logsumexp(gc.constant(np.zeros((3, 0))), axis=-1)), np.full(3, -np.inf))


@pytest.mark.parametrize("dtype", ["bool", "int32", "uint8", "float32"])
@pytest.mark.parametrize("name", ["max", "min", "argmax", "argmin"])
def test_extremum_of_an_empty_axis_is_a_shape_error_at_build_time(name: str, dtype: str) -> None:
    cases: list[tuple[tuple, Any]] = [((0,), None), ((0,), 0), ((2, 0), 1), ((2, 0), -1), ((0, 3), 0),
                                      ((2, 0), None), ((0, 3), -2)]
    for shape, axis in cases:
        with pytest.raises(ValueError):  # NumPy: "zero-size array to reduction operation ... has no identity"
            getattr(np, name)(np.zeros(shape, dtype), axis=axis)
        with pytest.raises(gc.ShapeError, match="test_ops_reduce.py"):
            getattr(gc, name)(gc.placeholder(dtype, shape), axis=axis)
        with pytest.raises(gc.ShapeError):
            getattr(gc, name)(gc.constant(np.zeros(shape, dtype)), axis=axis, keepdims=True)


@pytest.mark.parametrize("name", ["max", "min", "argmax", "argmin"])
def test_extremum_along_a_nonempty_axis_of_an_empty_tensor(name: str) -> None:
    # reducing the size-2 axis of a [2, 0] tensor is fine: the result is empty
    for keepdims in (False, True):
        for axis in (0, -2):
            check(name, np.zeros((2, 0), np.float32), axis=axis, keepdims=keepdims)
        for axis in (0, 2, -1, -3):
            check(name, np.zeros((2, 0, 3), np.int16), axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("name", ["max", "min", "argmax", "argmin"])
def test_extremum_of_an_unknown_dim_fed_empty_fails_when_run(name: str) -> None:
    x = gc.placeholder("float32", (None, 3))
    t = getattr(gc, name)(x, axis=0)  # not known to be empty while building
    assert_same(run(t, {x: np.ones((2, 3), np.float32)}), numpy_expected(name, np.ones((2, 3), np.float32), axis=0))
    with pytest.raises(gc.GraphcError):
        run(t, {x: np.zeros((0, 3), np.float32)})


# ---- unknown dims ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 1)], ids=str)
@pytest.mark.parametrize("name", [*REDUCTIONS, "logsumexp", *ARG_REDUCTIONS])
def test_unknown_dims(rng: np.random.Generator, name: str, axis: Any, keepdims: bool) -> None:
    if name.startswith("arg") and isinstance(axis, tuple):
        return
    p = gc.placeholder("float32", (None, 3))
    t = getattr(gc, name)(p, axis=axis, keepdims=keepdims)
    # the static shape keeps the unknown batch dim where it survives
    want_static = numpy_expected(name, np.ones((7, 3), np.float32), axis=axis, keepdims=keepdims).shape
    static = tuple(None if s == 7 else s for s in want_static)
    assert t.shape == static, (t.shape, static)
    for n in (1, 4):
        x = values_for(rng, name, (n, 3), "float32")
        assert_reduced(run(t, {p: x}), numpy_expected(name, x, axis=axis, keepdims=keepdims), name, x, axis,
                       keepdims)


@pytest.mark.parametrize("name", ["sum", "prod", "mean", "logsumexp"])
def test_unknown_dims_fed_empty(name: str) -> None:
    p = gc.placeholder("float64", (None, None))
    for shape in [(0, 3), (3, 0), (0, 0)]:
        x = np.zeros(shape)
        for axis in (None, 0, 1):
            assert_same(run(getattr(gc, name)(p, axis=axis), {p: x}), numpy_expected(name, x, axis=axis))


# ---- logsumexp ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_logsumexp_is_stable(dtype: str) -> None:
    x = np.array([
        [1000.0, 1000.0, 1000.0],
        [-1000.0, -1000.0, -1000.0],
        [1000.0, -1000.0, 0.0],
        [-np.inf, -np.inf, -np.inf],
        [-np.inf, 0.0, -np.inf],
        [np.inf, 1.0, -np.inf],
        [np.inf, np.inf, 2.0],
        [np.nan, 1.0, 2.0],
        [88.0, 89.0, 90.0],
        [-745.0, -746.0, -747.0],
    ], dtype=dtype)
    p = gc.placeholder(dtype, (None, 3))
    result = run(gc.logsumexp(p, axis=1), {p: x})
    want = np.array([1000 + math.log(3), -1000 + math.log(3), 1000.0, -np.inf, 0.0, np.inf, np.inf, np.nan,
                     90 + math.log1p(math.exp(-1) + math.exp(-2)), -745 + math.log1p(math.exp(-1) + math.exp(-2))],
                    dtype=dtype)
    assert_same(result, want)
    assert_same(result, logsumexp_reference(x, axis=1))
    # and over the other axis / all axes, keepdims
    check("logsumexp", x, axis=0)
    check("logsumexp", x, axis=None, keepdims=True)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_logsumexp_of_large_finite_values_does_not_overflow(rng: np.random.Generator, dtype: str) -> None:
    x = (rng.uniform(-1, 1, (4, 50)) + 700).astype(dtype)
    check("logsumexp", x, axis=-1)
    check("logsumexp", -x, axis=-1)
    result = run(gc.logsumexp(gc.constant(x)))
    assert np.isfinite(result) and result > 700


@pytest.mark.parametrize("dtype", ["bool", "int8", "int16", "int32", "int64", "uint8"])
def test_logsumexp_of_integers_is_float(rng: np.random.Generator, dtype: str) -> None:
    x = random_array(rng, (3, 4), dtype)
    t = gc.logsumexp(gc.placeholder(dtype, (3, 4)))
    assert t.dtype == graphc_dtype(np.exp(np.zeros(1, dtype)).dtype)
    check("logsumexp", x, axis=1)


# ---- values: nan, ties, special cases ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", [*REDUCTIONS, *ARG_REDUCTIONS])
def test_nan_and_inf(name: str, dtype: str) -> None:
    x = np.array([[1.0, np.nan, 3.0, np.nan], [np.inf, -np.inf, 0.0, 2.0], [-0.0, 0.0, 5.0, -np.inf]], dtype)
    for axis in (None, 0, 1):
        check(name, x, axis=axis)


@pytest.mark.parametrize("dtype", DTYPES)
def test_argmax_argmin_ties_give_the_first_index(dtype: str) -> None:
    x = np.array([[1, 3, 3, 2, 3], [2, 2, 2, 2, 2], [0, 0, 1, 1, 0], [3, 1, 3, 1, 1]]).astype(dtype)
    for name in ARG_REDUCTIONS:
        for axis in (None, 0, 1, -1):
            check(name, x, axis=axis)
    assert_same(run(gc.argmax(gc.constant(np.array([1, 3, 3, 2]).astype(dtype)))), np.int64(1 if dtype != "bool"
                                                                                          else 0))
    assert_same(run(gc.argmin(gc.constant(np.array([2, 0, 1, 0]).astype(dtype)))), np.int64(1))


def test_argmax_of_nan_is_the_first_nan() -> None:
    x = np.array([1.0, np.nan, 5.0, np.nan])
    assert_same(run(gc.argmax(gc.constant(x))), np.int64(1))
    assert_same(run(gc.argmin(gc.constant(x))), np.int64(1))


def test_argmax_keepdims_with_axis_none() -> None:
    x = np.arange(24.0).reshape(2, 3, 4)
    t = gc.argmax(gc.constant(x), keepdims=True)
    assert t.shape == (1, 1, 1) and t.dtype == np.int64
    assert_same(run(t), np.argmax(x, keepdims=True))


def test_max_min_of_bool_and_extreme_ints() -> None:
    check("max", np.array([False, True, False]))
    check("min", np.array([[True, True], [False, True]]), axis=1)
    for dtype in ("int8", "int64", "uint8"):
        info = np.iinfo(dtype)
        x = np.array([info.min, info.max, 0], dtype)
        for name in ("max", "min", "argmax", "argmin"):
            check(name, x)


def test_float32_sum_of_many_values(rng: np.random.Generator) -> None:
    x = rng.uniform(0, 1, (100_000,)).astype(np.float32)
    check("sum", x)
    check("mean", x)
    check("sum", x.reshape(100, 1000), axis=1)
    # whole numbers below 2**24: every partial sum is exact, so any order gives NumPy's sum exactly
    whole = rng.integers(0, 100, (100_000,)).astype(np.float32)
    p = gc.placeholder("float32", (100_000,))
    assert_same(run(gc.sum(p), {p: whole}), np.sum(whole))
    assert_same(run(gc.sum(p.reshape(100, 1000), axis=1), {p: whole}), whole.reshape(100, 1000).sum(axis=1))


# ---- argument errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [*REDUCTIONS, "logsumexp"])
@pytest.mark.parametrize("axis", [2, -3, (0, 0), (0, -2), (0, 5), 1.5, "0"], ids=str)
def test_bad_axes_are_argument_errors(name: str, axis: Any) -> None:
    with pytest.raises((ValueError, TypeError)):  # NumPy: AxisError / repeated axis / not an integer
        getattr(np, name if name != "logsumexp" else "sum")(np.ones((2, 3)), axis=axis)
    with pytest.raises(gc.ArgumentError, match="test_ops_reduce.py"):
        getattr(gc, name)(gc.placeholder("float32", (2, 3)), axis=axis)


@pytest.mark.parametrize("name", ARG_REDUCTIONS)
@pytest.mark.parametrize("axis", [2, -3, (0,), (0, 1), 1.5], ids=str)
def test_bad_arg_axes_are_argument_errors(name: str, axis: Any) -> None:
    with pytest.raises(gc.ArgumentError):
        getattr(gc, name)(gc.placeholder("float32", (2, 3)), axis=axis)


def test_reduction_of_scalar_rejects_axis_zero() -> None:
    with pytest.raises(gc.ArgumentError):
        gc.sum(gc.placeholder("float32", ()), axis=0)
    check("sum", np.array(3.0, np.float32), axis=None)
