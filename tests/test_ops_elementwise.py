"""Elementwise ops against NumPy 2: values, dtypes (weak Python scalars), shapes, broadcasting, special values.

graphc's documented deviations are applied to NumPy's answer before comparing: where NumPy gives float16
(``exp`` of int8) graphc computes in float32, and where NumPy gives an unsigned type wider than uint8
graphc gives int64.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import graphc as gc
from util import assert_same, graphc_dtype, random_array, run

pytestmark = pytest.mark.usefixtures("device")  # every test also runs on device="cpu" (see conftest.py)

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "float32", "float64"]
INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8"]
SIGNED_DTYPES = ["int8", "int16", "int32", "int64", "float32", "float64"]
FLOAT_DTYPES = ["float32", "float64"]
SCALARS = [True, False, 2, -2, 0, 2.5, -0.5, 300, -129]

UNARY_NUMPY: dict[str, Callable[..., Any]] = {
    "neg": np.negative, "abs": np.absolute, "sign": np.sign, "exp": np.exp, "expm1": np.expm1, "log": np.log,
    "log1p": np.log1p, "sqrt": np.sqrt, "square": np.square, "reciprocal": np.reciprocal, "sin": np.sin,
    "cos": np.cos, "tanh": np.tanh, "floor": np.floor, "ceil": np.ceil, "round": np.round, "isnan": np.isnan,
    "isfinite": np.isfinite, "logical_not": np.logical_not,
}
BINARY_NUMPY: dict[str, Callable[..., Any]] = {
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.true_divide,
    "floor_divide": np.floor_divide, "mod": np.remainder, "power": np.power, "maximum": np.maximum,
    "minimum": np.minimum, "equal": np.equal, "not_equal": np.not_equal, "less": np.less,
    "less_equal": np.less_equal, "greater": np.greater, "greater_equal": np.greater_equal,
    "logical_and": np.logical_and, "logical_or": np.logical_or,
}
DIVISIONS = ("divide", "floor_divide", "mod")
# Values that make each unary op interesting without leaving its domain too often.
UNARY_RANGE = {"log": (0, 5), "sqrt": (0, 5), "log1p": (-0.9, 5), "reciprocal": (1, 4)}

SPECIALS = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 1e-30, -1e-30, 1e30, -1e30, 88.5, -88.5,
            710.0, -745.5, np.inf, -np.inf, np.nan]
BINARY_SPECIALS = [0.0, -0.0, 1.0, -1.0, 2.5, -2.5, np.inf, -np.inf, np.nan]


# ---- helpers ------------------------------------------------------------------------------------------

def numpy_expected(fn: Callable[..., Any], *args: Any) -> np.ndarray:
    """NumPy's result of ``fn(*args)``; where NumPy computes in float16 the same function in float32."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = np.asarray(fn(*args))
        if out.dtype == np.float16:
            args = tuple(a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype.kind in "biu"
                         else np.float32(a) if isinstance(a, bool) else a for a in args)
            out = np.asarray(fn(*args))
            assert out.dtype == np.float32
        return out.astype(graphc_dtype(out.dtype))


def feed_inputs(args: tuple[Any, ...], source: str = "placeholder") -> tuple[list[Any], dict]:
    """NumPy arrays become placeholders (fed), constants or Variables; Python scalars stay as they are."""
    inputs: list[Any] = []
    feeds: dict = {}
    for a in args:
        if not isinstance(a, np.ndarray):
            inputs.append(a)
        elif source == "placeholder":
            p = gc.placeholder(a.dtype, a.shape)
            feeds[p] = a
            inputs.append(p)
        elif source == "constant":
            inputs.append(gc.constant(a))
        else:
            inputs.append(gc.Variable(a))
    return inputs, feeds


def assert_static(t: gc.Tensor, expected: np.ndarray) -> None:
    """The tensor's static dtype and shape (None = unknown) agree with NumPy's result."""
    assert isinstance(t, gc.Tensor), type(t)
    assert t.dtype == expected.dtype, (t.dtype, expected.dtype)
    assert len(t.shape) == expected.ndim, (t.shape, expected.shape)
    assert all(s is None or s == e for s, e in zip(t.shape, expected.shape)), (t.shape, expected.shape)


def assert_signed_zeros(result: np.ndarray, expected: np.ndarray) -> None:
    """Where NumPy gives a zero, graphc gives the zero of the same sign."""
    if expected.dtype.kind == "f":
        zeros = expected == 0
        np.testing.assert_array_equal(np.signbit(result[zeros]), np.signbit(expected[zeros]))


def check(gc_fn: Callable[..., Any], np_fn: Callable[..., Any], *args: Any, rtol: float | None = None,
          atol: float = 0.0, source: str = "placeholder", signed_zeros: bool = True) -> None:
    """``gc_fn`` on ``args`` equals NumPy's ``np_fn``: value, dtype, shape, or the matching error.

    NumPy's TypeError / OverflowError (no loop, Python int out of range) must be a graphc DTypeError
    when the graph is built; NumPy's ValueError (integer to a negative power) an ExecutionError at run time.
    """
    try:
        expected = numpy_expected(np_fn, *args)
    except (TypeError, OverflowError):
        inputs, _ = feed_inputs(args, source)
        with pytest.raises(gc.DTypeError):
            gc_fn(*inputs)
        return
    except ValueError:
        inputs, feeds = feed_inputs(args, source)
        t = gc_fn(*inputs)
        with pytest.raises(gc.ExecutionError):
            run(t, feeds)
        return
    inputs, feeds = feed_inputs(args, source)
    t = gc_fn(*inputs)
    assert_static(t, expected)
    result = run(t, feeds)
    assert_same(result, expected, rtol=rtol, atol=atol)
    if signed_zeros:
        assert_signed_zeros(result, expected)


def safe_operands(name: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Avoid integer division by zero and integer negative powers in the bulk tests (tested separately)."""
    if name in DIVISIONS and y.dtype.kind in "biu":
        y = np.where(y == 0, np.ones((), y.dtype), y)
    if name == "power" and y.dtype.kind in "iu":
        y = np.abs(y).astype(y.dtype)
    return x, y


def float_result_dtype(dtype: str) -> np.dtype:
    """The dtype NumPy's transcendental functions (np.exp) give for ``dtype``, as graphc has it."""
    return graphc_dtype(np.exp(np.zeros(1, dtype)).dtype)


def known_math(fn: Callable[[float], float], x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``fn`` applied in float64 Python math to each element, rounded to ``dtype``."""
    values = [fn(float(v)) for v in x.astype(np.float64).ravel()]
    return np.array(values, dtype=np.float64).reshape(x.shape).astype(dtype)


def _sigmoid(v: float) -> float:
    if math.isnan(v):
        return math.nan
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def _softplus(v: float) -> float:
    if math.isnan(v):
        return math.nan
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


def _rsqrt(v: float) -> float:
    if math.isnan(v) or v < 0:
        return math.nan
    if v == 0:
        return math.copysign(math.inf, v)
    return 1.0 / math.sqrt(v)


def _erf(v: float) -> float:
    return math.nan if math.isnan(v) else math.erf(v)


def _relu(v: float) -> float:
    return v if math.isnan(v) or v > 0 else 0.0


KNOWN_MATH = {"sigmoid": _sigmoid, "softplus": _softplus, "rsqrt": _rsqrt, "erf": _erf}


# ---- unary ops ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(UNARY_NUMPY))
def test_unary_matches_numpy(rng: np.random.Generator, name: str, dtype: str) -> None:
    low, high = UNARY_RANGE.get(name, (-3, 3))
    x = random_array(rng, (3, 4), dtype, low, high)
    check(getattr(gc, name), UNARY_NUMPY[name], x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", sorted(UNARY_NUMPY))
def test_unary_special_values(name: str, dtype: str) -> None:
    x = np.array(SPECIALS, dtype=dtype)
    check(getattr(gc, name), UNARY_NUMPY[name], x)


@pytest.mark.parametrize("shape", [(), (0,), (1,), (2, 0, 3), (1, 1, 1)])
@pytest.mark.parametrize("name", sorted(UNARY_NUMPY))
def test_unary_shapes(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> None:
    check(getattr(gc, name), UNARY_NUMPY[name], random_array(rng, shape, "float32", 0.1, 3))


@pytest.mark.parametrize("name", ["neg", "sign", "abs", "reciprocal", "square", "floor", "ceil", "round"])
@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_unary_integer_edges(name: str, dtype: str) -> None:
    info = np.iinfo(dtype)
    values = [info.min, info.min + 1, -2, -1, 1, 2, 3, info.max - 1, info.max]
    if name == "reciprocal":  # integer 1 // x; zero is undefined
        values = [v for v in values if v != 0]
    x = np.array([v for v in values if info.min <= v <= info.max], dtype=dtype)
    check(getattr(gc, name), UNARY_NUMPY[name], x)


@pytest.mark.parametrize("source", ["placeholder", "constant", "variable"])
@pytest.mark.parametrize("name", ["neg", "exp", "sqrt", "round", "isnan", "logical_not"])
def test_unary_on_every_kind_of_source(rng: np.random.Generator, name: str, source: str) -> None:
    check(getattr(gc, name), UNARY_NUMPY[name], random_array(rng, (2, 3), "float32", 0, 3), source=source)


@pytest.mark.parametrize("value", [2, -3, 2.5, -0.5, True, 0])
@pytest.mark.parametrize("name", sorted(UNARY_NUMPY))
def test_unary_of_python_scalar(name: str, value: Any) -> None:
    if name == "reciprocal" and value == 0:
        return  # integer reciprocal of 0 is undefined
    check(getattr(gc, name), UNARY_NUMPY[name], value)


def test_neg_and_subtract_of_bool_are_dtype_errors() -> None:
    x = gc.placeholder("bool", (3,))
    with pytest.raises(gc.DTypeError):
        gc.neg(x)
    with pytest.raises(gc.DTypeError):
        _ = -x
    with pytest.raises(gc.DTypeError):
        gc.subtract(x, x)
    with pytest.raises(gc.DTypeError):
        x - True


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_round_half_to_even(dtype: str) -> None:
    below_half = np.nextafter(np.array(0.5, dtype), 0)  # must not round up by adding 0.5
    x = np.array([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, below_half, 1e20, -0.0, 4.5000005], dtype=dtype)
    want = np.array([0.0, 2.0, 2.0, 4.0, -0.0, -2.0, -2.0, 0.0, 1e20, -0.0, 5.0], dtype=dtype)
    p = gc.placeholder(dtype, (None,))
    result = run(gc.round(p), {p: x})
    assert_same(result, want)
    assert_signed_zeros(result, want)
    assert_same(result, np.round(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid", "softplus", "erf", "rsqrt"])
def test_ops_numpy_lacks_dtypes_and_values(rng: np.random.Generator, name: str, dtype: str) -> None:
    low = 0 if name == "rsqrt" else -4
    x = random_array(rng, (3, 5), dtype, low, 4)
    if name == "rsqrt":
        x = np.where(x == 0, np.ones((), x.dtype), x) if dtype != "bool" else np.ones((3, 5), bool)
    want_dtype = float_result_dtype(dtype)
    p = gc.placeholder(dtype, x.shape)
    t = getattr(gc, name)(p)
    assert t.dtype == want_dtype and t.shape == x.shape
    assert_same(run(t, {p: x}), known_math(KNOWN_MATH[name], x, want_dtype),
                atol=float(np.finfo(want_dtype).tiny))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", ["sigmoid", "softplus", "erf", "rsqrt"])
def test_ops_numpy_lacks_special_values(name: str, dtype: str) -> None:
    x = np.array([*SPECIALS, -1000.0, 1000.0, -100.0, 100.0, 20.0, -20.0, 1e-10], dtype=dtype)
    p = gc.placeholder(dtype, (None,))
    result = run(getattr(gc, name)(p), {p: x})
    assert_same(result, known_math(KNOWN_MATH[name], x, np.dtype(dtype)), atol=float(np.finfo(dtype).tiny))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sigmoid_is_stable_at_extremes(dtype: str) -> None:
    x = np.array([-1000.0, -np.inf, 1000.0, np.inf, 0.0, -100.0, 100.0], dtype=dtype)
    p = gc.placeholder(dtype, (None,))
    result = run(gc.sigmoid(p), {p: x})
    assert not np.isnan(result).any(), result
    assert result[0] == 0 and result[1] == 0 and result[2] == 1 and result[3] == 1 and result[4] == 0.5
    assert 0 <= result[5] < 1e-30 and result[6] == 1
    assert result.dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_softplus_is_stable_at_extremes(dtype: str) -> None:
    x = np.array([1000.0, -1000.0, np.inf, -np.inf, 0.0, 50.0], dtype=dtype)
    p = gc.placeholder(dtype, (None,))
    result = run(gc.softplus(p), {p: x})
    assert result.dtype == np.dtype(dtype)
    assert result[0] == 1000 and result[1] == 0 and result[2] == np.inf and result[3] == 0
    np.testing.assert_allclose(result[4], math.log(2), rtol=1e-6)
    np.testing.assert_allclose(result[5], 50.0, rtol=1e-6)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_erf_matches_math_erf(dtype: str) -> None:
    x = np.linspace(-6, 6, 97).astype(dtype)
    p = gc.placeholder(dtype, x.shape)
    result = run(gc.erf(p), {p: x})
    assert_same(result, np.array([math.erf(float(v)) for v in x]).astype(dtype))
    assert_same(run(gc.erf(gc.constant(np.array([np.inf, -np.inf, np.nan], dtype)))),
                np.array([1.0, -1.0, np.nan], dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_rsqrt_known_values(dtype: str) -> None:
    x = np.array([4.0, 0.25, 1.0, 0.0, np.inf, -1.0, np.nan, 1e-30], dtype=dtype)
    p = gc.placeholder(dtype, (None,))
    want = np.array([0.5, 2.0, 1.0, np.inf, 0.0, np.nan, np.nan, 1e15], dtype=dtype)
    assert_same(run(gc.rsqrt(p), {p: x}), want)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "float32", "float64"])
def test_relu(rng: np.random.Generator, dtype: str) -> None:
    x = random_array(rng, (4, 5), dtype)
    p = gc.placeholder(dtype, x.shape)
    t = gc.relu(p)
    assert t.dtype == np.dtype(dtype)
    assert_same(run(t, {p: x}), np.where(x > 0, x, np.zeros((), dtype)))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_relu_keeps_nan_and_inf(dtype: str) -> None:
    x = np.array([np.nan, -1.0, 0.0, 2.0, -np.inf, np.inf, -0.0], dtype=dtype)
    p = gc.placeholder(dtype, (None,))
    assert_same(run(gc.relu(p), {p: x}), known_math(_relu, x, np.dtype(dtype)))


def test_relu_of_bool_is_a_dtype_error() -> None:
    with pytest.raises(gc.DTypeError):
        gc.relu(gc.placeholder("bool", (2,)))


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "erf", "rsqrt", "relu"])
def test_ops_numpy_lacks_keep_shape(name: str) -> None:
    for shape in [(), (0,), (2, 0, 1), (1, 3)]:
        x = np.full(shape, 0.5, np.float32)
        p = gc.placeholder("float32", shape)
        result = run(getattr(gc, name)(p), {p: x})
        assert result.shape == shape and result.dtype == np.float32


# ---- binary ops ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype_y", DTYPES)
@pytest.mark.parametrize("dtype_x", DTYPES)
@pytest.mark.parametrize("name", sorted(BINARY_NUMPY))
def test_binary_dtype_promotion(rng: np.random.Generator, name: str, dtype_x: str, dtype_y: str) -> None:
    x = random_array(rng, (2, 3), dtype_x)
    y = random_array(rng, (2, 3), dtype_y)
    x, y = safe_operands(name, x, y)
    check(getattr(gc, name), BINARY_NUMPY[name], x, y)


@pytest.mark.parametrize("scalar", SCALARS, ids=repr)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(BINARY_NUMPY))
def test_binary_with_python_scalar_on_either_side(rng: np.random.Generator, name: str, dtype: str,
                                                  scalar: Any) -> None:
    x = random_array(rng, (2, 3), dtype, 1, 3)  # positive: no integer division by zero, no negative powers
    fn, np_fn = getattr(gc, name), BINARY_NUMPY[name]
    if not (name in DIVISIONS and scalar in (0, False)) and not (name == "power" and scalar in (-2, -129)):
        check(fn, np_fn, x, scalar)
    check(fn, np_fn, scalar, x)


@pytest.mark.parametrize(("a", "b"), [(2, 3), (2, 2.5), (True, 2), (-7, 2), (7.5, -2), (True, False)], ids=repr)
@pytest.mark.parametrize("name", sorted(BINARY_NUMPY))
def test_binary_of_two_python_scalars(name: str, a: Any, b: Any) -> None:
    check(getattr(gc, name), BINARY_NUMPY[name], a, b)


@pytest.mark.parametrize(("dtype", "scalar", "want"), [
    ("float32", 2.5, "float32"), ("float32", 2, "float32"), ("float32", True, "float32"),
    ("float64", 2, "float64"), ("int32", 2.5, "float64"), ("int8", 2.5, "float64"), ("int8", 2, "int8"),
    ("uint8", 2, "uint8"), ("int16", True, "int16"), ("bool", 2, "int64"), ("bool", 2.5, "float64"),
    ("bool", True, "bool"), ("uint8", 255, "uint8"), ("int8", -128, "int8"),
])
def test_weak_scalar_promotion_table(dtype: str, scalar: Any, want: str) -> None:
    x = gc.placeholder(dtype, (2,))
    for t in (x * scalar, scalar * x, gc.multiply(x, scalar), gc.maximum(scalar, x)):
        assert t.dtype == np.dtype(want), (t, want)


@pytest.mark.parametrize(("dtype", "scalar"), [("uint8", 300), ("uint8", -1), ("int8", 200), ("int8", -129),
                                               ("int16", 40000), ("int32", 2**31), ("uint8", 256)])
@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "maximum", "floor_divide", "mod", "power"])
def test_out_of_range_python_int_is_a_dtype_error(name: str, dtype: str, scalar: int) -> None:
    x = gc.placeholder(dtype, (3,))
    with pytest.raises(OverflowError):
        BINARY_NUMPY[name](np.ones(3, dtype), scalar)
    with pytest.raises(gc.DTypeError):
        getattr(gc, name)(x, scalar)
    with pytest.raises(gc.DTypeError):
        getattr(gc, name)(scalar, x)


def test_uint8_plus_300_is_a_dtype_error_through_the_operator() -> None:
    x = gc.placeholder("uint8", (3,))
    with pytest.raises(gc.DTypeError):
        x + 300
    with pytest.raises(gc.DTypeError):
        300 + x
    with pytest.raises(gc.GraphcError, match="300"):
        x + 300


@pytest.mark.parametrize(("dtype", "scalar"), [("uint8", 300), ("uint8", -3), ("int8", 200), ("int8", -129),
                                               ("int16", -40000), ("int32", 2**40)])
@pytest.mark.parametrize("name", ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"])
def test_comparison_with_out_of_range_python_int_is_exact(name: str, dtype: str, scalar: int) -> None:
    info = np.iinfo(dtype)
    x = np.array([info.min, 0, 1, info.max], dtype=dtype)
    check(getattr(gc, name), BINARY_NUMPY[name], x, scalar)
    check(getattr(gc, name), BINARY_NUMPY[name], scalar, x)


@pytest.mark.parametrize(("dtype", "scalar", "name"), [("float32", 2**70, "add"), ("float64", -(2**80), "multiply"),
                                                       ("int64", 2**63, "less"), ("int32", -(2**64), "equal")])
def test_python_int_beyond_int64_is_refused(dtype: str, scalar: int, name: str) -> None:
    # documented limit: Python ints in graphs must fit int64 (NumPy would accept some of these)
    x = gc.placeholder(dtype, (3,))
    with pytest.raises(gc.DTypeError, match="int64"):
        getattr(gc, name)(x, scalar)


@pytest.mark.parametrize(("other", "np_other"), [
    (lambda: gc.constant(2.5), 2.5),
    (lambda: gc.constant(2), 2),
    (lambda: gc.constant(2.5, dtype="float64"), np.float64(2.5)),
    (lambda: gc.constant(np.float64(2.5)), np.float64(2.5)),
    (lambda: gc.constant(np.int64(3)), np.int64(3)),
    # the result of any op is strongly typed (only Python scalars are weak, as in NumPy 2)
    (lambda: gc.constant(2) + 1, np.int64(3)),
    (lambda: gc.constant(2.0) * 3, np.float64(6.0)),
    (lambda: gc.stop_gradient(2.5), np.float64(2.5)),
    (lambda: gc.cast(2.5, "float64"), np.float64(2.5)),
    (lambda: gc.constant([1.5, 2.5, 3.5]), np.array([1.5, 2.5, 3.5])),
], ids=["weak-float", "weak-int", "float64-dtype", "np-float64", "np-int64", "op-of-weak-int", "op-of-weak-float",
        "stop-gradient", "cast", "list"])
@pytest.mark.parametrize("dtype", ["float32", "int8", "uint8", "int32", "bool"])
def test_weakness_of_derived_operands(rng: np.random.Generator, dtype: str, other: Callable[[], Any],
                                      np_other: Any) -> None:
    x = random_array(rng, (3,), dtype, 0, 3)
    check(lambda a: a * other(), lambda a: a * np_other, x)
    check(lambda a: other() + a, lambda a: np_other + a, x)


BROADCAST_SHAPES = [
    ((2, 3), (3,)), ((2, 1), (1, 3)), ((4, 1, 3), (2, 1)), ((), (2, 3)), ((2, 3), ()), ((0,), (1,)),
    ((2, 0), (2, 1)), ((0, 3), (1, 3)), ((1,), (0,)), ((3, 1, 0), (1, 4, 1)), ((1, 1), (1,)), ((5, 1, 1, 2), (3, 1)),
]


@pytest.mark.parametrize("dtype", ["float32", "int32"])
@pytest.mark.parametrize(("shape_x", "shape_y"), BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY_NUMPY))
def test_binary_broadcasting(rng: np.random.Generator, name: str, shape_x: tuple, shape_y: tuple,
                             dtype: str) -> None:
    x, y = safe_operands(name, random_array(rng, shape_x, dtype), random_array(rng, shape_y, dtype))
    check(getattr(gc, name), BINARY_NUMPY[name], x, y)
    check(getattr(gc, name), BINARY_NUMPY[name], *safe_operands(name, y, x))


@pytest.mark.parametrize(("shape_x", "shape_y"), [((2, 3), (4,)), ((2, 3), (3, 2)), ((0,), (2,)), ((2, 1, 3), (4, 2))],
                         ids=str)
@pytest.mark.parametrize("name", ["add", "less", "logical_and", "power"])
def test_binary_broadcast_mismatch_is_a_shape_error(name: str, shape_x: tuple, shape_y: tuple) -> None:
    with pytest.raises(ValueError):
        BINARY_NUMPY[name](np.ones(shape_x), np.ones(shape_y))
    x = gc.placeholder("float32", shape_x)
    with pytest.raises(gc.ShapeError, match="test_ops_elementwise.py"):
        getattr(gc, name)(x, gc.placeholder("float32", shape_y))


def test_broadcasting_with_unknown_dims(rng: np.random.Generator) -> None:
    x = gc.placeholder("float32", (None, 3))
    y = gc.placeholder("float32", (None, 1))
    t = x * y + gc.constant(np.ones((1, 3), np.float32))
    assert t.shape == (None, 3) and t.dtype == np.float32
    for n in (0, 1, 4):
        a, b = random_array(rng, (n, 3), "float32"), random_array(rng, (n, 1), "float32")
        assert_same(run(t, {x: a, y: b}), a * b + np.ones((1, 3), np.float32))
    # an unknown dim meeting a known one takes its size; a different size at run time is a ShapeError
    z = gc.placeholder("float32", (None,))
    u = z + gc.constant(np.ones(3, np.float32))
    assert u.shape == (3,)
    assert_same(run(u, {z: np.ones(1, np.float32)}), np.full(3, 2, np.float32))
    with pytest.raises(gc.ShapeError):
        run(u, {z: np.ones(2, np.float32)})
    with pytest.raises(gc.ShapeError):
        run(t, {x: np.ones((2, 3), np.float32), y: np.ones((3, 1), np.float32)})
    # two unknown dims broadcast against each other at run time
    v = gc.placeholder("int32", (None,))
    w = gc.placeholder("int32", (None, None))
    s = gc.maximum(v, w)
    assert s.shape == (None, None) and s.dtype == np.int32
    for a_shape, b_shape in [((1,), (2, 3)), ((3,), (2, 1)), ((3,), (1, 3)), ((0,), (2, 1)), ((1,), (0, 1))]:
        a, b = random_array(rng, a_shape, "int32"), random_array(rng, b_shape, "int32")
        assert_same(run(s, {v: a, w: b}), np.maximum(a, b))
    with pytest.raises(gc.ShapeError, match="test_ops_elementwise.py"):
        run(s, {v: np.ones(2, np.int32), w: np.ones((2, 3), np.int32)})


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", sorted(BINARY_NUMPY))
def test_binary_special_values(name: str, dtype: str) -> None:
    values = np.array(BINARY_SPECIALS, dtype=dtype)
    check(getattr(gc, name), BINARY_NUMPY[name], values[:, None], values[None, :],
          signed_zeros=name not in ("maximum", "minimum"))


@pytest.mark.parametrize("dtype", SIGNED_DTYPES)
@pytest.mark.parametrize("name", ["floor_divide", "mod"])
def test_floor_divide_and_mod_with_negative_operands(name: str, dtype: str) -> None:
    x = np.array([-7, -6, -5, -1, 0, 1, 5, 6, 7], dtype=dtype)[:, None]
    y = np.array([-3, -2, -1, 1, 2, 3], dtype=dtype)[None, :]
    check(getattr(gc, name), BINARY_NUMPY[name], x, y)
    # Python semantics: rounding towards -inf, the remainder has the sign of the divisor
    py = operator.floordiv if name == "floor_divide" else operator.mod
    want = np.array([[py(int(a), int(b)) for b in y[0]] for a in x[:, 0]]).astype(dtype)
    p, q = gc.placeholder(dtype, x.shape), gc.placeholder(dtype, y.shape)
    assert_same(run(getattr(gc, name)(p, q), {p: x, q: y}), want)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", ["floor_divide", "mod"])
def test_floor_divide_and_mod_of_fractions(name: str, dtype: str) -> None:
    x = np.array([-7.5, -2.25, -0.5, 0.5, 2.25, 7.5], dtype=dtype)[:, None]
    y = np.array([-2.0, -0.75, 0.75, 2.0], dtype=dtype)[None, :]
    check(getattr(gc, name), BINARY_NUMPY[name], x, y)
    py = operator.floordiv if name == "floor_divide" else operator.mod
    want = np.array([[py(float(a), float(b)) for b in y[0]] for a in x[:, 0]]).astype(dtype)
    p = gc.placeholder(dtype, x.shape)
    assert_same(run(getattr(gc, name)(p, gc.constant(y)), {p: x}), want)


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("name", DIVISIONS)
def test_integer_division_by_zero_follows_numpy(name: str, dtype: str) -> None:
    x = np.array([-3, 0, 5], dtype=dtype) if dtype != "uint8" else np.array([3, 0, 5], dtype=dtype)
    check(getattr(gc, name), BINARY_NUMPY[name], x, np.zeros(3, dtype))


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_integer_overflow_wraps_like_numpy(dtype: str) -> None:
    info = np.iinfo(dtype)
    x = np.array([info.max, info.min, info.max // 2 + 1], dtype=dtype)
    for name in ("add", "subtract", "multiply"):
        check(getattr(gc, name), BINARY_NUMPY[name], x, x)
        check(getattr(gc, name), BINARY_NUMPY[name], x, 1)
    check(gc.power, np.power, x, 2)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64"])
def test_integer_power_with_negative_exponent_fails_at_run_time(dtype: str) -> None:
    x = gc.placeholder(dtype, (3,))
    y = gc.placeholder(dtype, (3,))
    t = gc.power(x, y)  # building is fine: the values are not known yet
    assert t.dtype == np.dtype(dtype)
    assert_same(run(t, {x: np.array([2, 3, -2], dtype), y: np.array([0, 2, 3], dtype)}),
                np.array([1, 9, -8], dtype))
    with pytest.raises(gc.ExecutionError, match="test_ops_elementwise.py") as info:
        run(t, {x: np.array([2, 3, 4], dtype), y: np.array([1, -1, 2], dtype)})
    assert isinstance(info.value, gc.GraphcError)
    with pytest.raises(gc.ExecutionError):
        run(x ** -1, {x: np.array([2, 3, 4], dtype)})
    # a float exponent is fine: int ** -1.0 is float64
    assert_same(run(x ** -1.0, {x: np.array([2, 4, 1], dtype)}), np.array([0.5, 0.25, 1.0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_maximum_minimum_propagate_nan(dtype: str) -> None:
    x = np.array([np.nan, 1.0, -np.inf, np.nan]) if dtype in FLOAT_DTYPES else np.array([0, 1, 2, 3])
    y = np.array([1.0, np.nan, 0.0, np.nan]) if dtype in FLOAT_DTYPES else np.array([3, 2, 1, 0])
    check(gc.maximum, np.maximum, x.astype(dtype), y.astype(dtype))
    check(gc.minimum, np.minimum, x.astype(dtype), y.astype(dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_comparisons_with_nan_and_signed_zero(dtype: str) -> None:
    x = np.array([np.nan, 0.0, -0.0, np.inf, 1.0], dtype)
    y = np.array([np.nan, -0.0, 0.0, np.inf, np.nan], dtype)
    for name in ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal"):
        check(getattr(gc, name), BINARY_NUMPY[name], x, y)


# ---- Python operators -----------------------------------------------------------------------------------

BINARY_OPERATORS = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "//": operator.floordiv,
    "%": operator.mod, "**": operator.pow, "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}


@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "int32", "uint8"])
@pytest.mark.parametrize("op", sorted(BINARY_OPERATORS))
def test_python_operators(rng: np.random.Generator, op: str, dtype: str) -> None:
    fn = BINARY_OPERATORS[op]
    x = random_array(rng, (2, 3), dtype, 1, 4)
    y = random_array(rng, (3,), dtype, 1, 4)
    check(fn, fn, x, y)  # tensor op tensor
    check(fn, fn, x, 2)  # tensor op weak int
    check(fn, fn, 3, x)  # weak int op tensor
    check(fn, fn, x, 1.5)
    check(fn, fn, 2.5, x)


@pytest.mark.parametrize("left", [
    np.array([1.5, 2.0, 3.0]), np.array([1, 2, 3], np.int8), np.array([[1], [2]], np.int64),
    np.array([True, False, True]), np.float32(2.0), np.float64(2.0), np.int64(3), np.array(2.0, np.float32),
], ids=["f64", "i8", "i64-col", "bool", "np-f32", "np-f64", "np-i64", "0d-f32"])
@pytest.mark.parametrize("op", sorted(BINARY_OPERATORS))
def test_numpy_operand_on_the_left_builds_a_node(rng: np.random.Generator, op: str, left: Any) -> None:
    fn = BINARY_OPERATORS[op]
    x = random_array(rng, (3,), "float32", 1, 3)
    p = gc.placeholder("float32", (3,))
    with np.errstate(all="ignore"):
        t = fn(left, p)
    assert isinstance(t, gc.Tensor), type(t)
    try:
        expected = numpy_expected(fn, left, x)
    except TypeError:
        return
    assert_static(t, expected)
    assert_same(run(t, {p: x}), expected)
    # and on the right, for symmetry
    q = fn(p, left)
    assert isinstance(q, gc.Tensor)
    assert_same(run(q, {p: x}), numpy_expected(fn, x, left))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"])
def test_unary_python_operators(rng: np.random.Generator, dtype: str) -> None:
    x = random_array(rng, (2, 3), dtype)
    check(operator.neg, operator.neg, x)
    check(abs, abs, x)


@pytest.mark.parametrize("dtype", [
    "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
    "bool",
])
def test_unary_plus(rng: np.random.Generator, dtype: str) -> None:
    check(operator.pos, operator.pos, random_array(rng, (2, 3), dtype))


@pytest.mark.parametrize("op", ["&", "|"])
def test_logical_operators_on_bools(rng: np.random.Generator, op: str) -> None:
    fn = operator.and_ if op == "&" else operator.or_
    x = random_array(rng, (4, 3), "bool")
    y = random_array(rng, (3,), "bool")
    check(fn, fn, x, y)
    check(fn, fn, x, True)
    check(fn, fn, False, x)
    check(operator.invert, operator.invert, x)
    p = gc.placeholder("bool", (3,))
    t = fn(y, p)  # a NumPy bool array on the left
    assert isinstance(t, gc.Tensor)
    assert_same(run(t, {p: y[::-1].copy()}), fn(y, y[::-1]))


@pytest.mark.parametrize("dtype", ["int8", "int32", "uint8", "float32"])
@pytest.mark.parametrize("op", ["&", "|", "~"])
def test_bitwise_operators_on_non_bools_are_refused(op: str, dtype: str) -> None:
    # NumPy makes these bitwise for integers and a TypeError for floats; graphc has no bitwise ops,
    # so it refuses rather than silently computing something else
    x = gc.placeholder(dtype, (2, 3))
    y = gc.placeholder("bool", (2, 3))
    with pytest.raises(gc.DTypeError, match="bool operands"):
        ~x if op == "~" else (x & y if op == "&" else y | x)


def test_tensor_comparison_results_are_tensors_not_bools() -> None:
    x = gc.placeholder("float32", (2,))
    assert isinstance(x == x, gc.Tensor) and isinstance(x != 1, gc.Tensor)
    with pytest.raises(gc.GraphcError):
        bool(x == x)


# ---- logical ops ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_logical_ops_treat_nonzero_as_true(dtype: str) -> None:
    x = np.array([0, 1, 2, 0], dtype=dtype) if dtype != "bool" else np.array([False, True, True, False])
    y = np.array([0, 0, 3, 1], dtype=dtype) if dtype != "bool" else np.array([False, False, True, True])
    check(gc.logical_and, np.logical_and, x, y)
    check(gc.logical_or, np.logical_or, x, y)
    check(gc.logical_not, np.logical_not, x)
    if dtype in FLOAT_DTYPES:
        special = np.array([np.nan, -0.0, np.inf], dtype)
        check(gc.logical_not, np.logical_not, special)
        check(gc.logical_and, np.logical_and, special, special)


# ---- where ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype_y", DTYPES)
@pytest.mark.parametrize("dtype_x", DTYPES)
def test_where_promotes_like_numpy(rng: np.random.Generator, dtype_x: str, dtype_y: str) -> None:
    c = random_array(rng, (2, 3), "bool")
    check(gc.where, np.where, c, random_array(rng, (2, 3), dtype_x), random_array(rng, (2, 3), dtype_y))


@pytest.mark.parametrize("scalar", [True, 2, -1, 2.5, 0.0], ids=repr)
@pytest.mark.parametrize("dtype", DTYPES)
def test_where_with_python_scalar_branches(rng: np.random.Generator, dtype: str, scalar: Any) -> None:
    c = random_array(rng, (4,), "bool")
    x = random_array(rng, (4,), dtype, 0, 3)
    if dtype == "uint8" and scalar == -1:
        # NumPy's where silently wraps -1 to 255 here; graphc refuses it like uint8 + (-1)
        with pytest.raises(gc.DTypeError):
            gc.where(gc.constant(c), gc.constant(x), scalar)
        return
    check(gc.where, np.where, c, x, scalar)
    check(gc.where, np.where, c, scalar, x)
    check(gc.where, np.where, c, scalar, 7)


@pytest.mark.parametrize("dtype", ["int8", "int32", "uint8", "float32", "float64"])
def test_where_condition_nonzero_is_true(dtype: str) -> None:
    c = np.array([0, 1, 2, 0], dtype=dtype)
    if dtype in FLOAT_DTYPES:
        c = np.array([0.0, np.nan, -0.0, 0.5], dtype=dtype)
    check(gc.where, np.where, c, np.arange(4.0), -np.arange(4.0))


@pytest.mark.parametrize(("shape_c", "shape_x", "shape_y"), [
    ((2, 3), (3,), ()), ((2, 1), (1, 3), (2, 3)), ((), (2,), (2,)), ((0, 3), (3,), (1,)), ((2, 1, 4), (3, 1), (4,)),
    ((1,), (0,), (1,)),
], ids=str)
def test_where_broadcasts(rng: np.random.Generator, shape_c: tuple, shape_x: tuple, shape_y: tuple) -> None:
    check(gc.where, np.where, random_array(rng, shape_c, "bool"), random_array(rng, shape_x, "float32"),
          random_array(rng, shape_y, "float32"))


def test_where_shape_mismatch_is_a_shape_error() -> None:
    with pytest.raises(gc.ShapeError, match="test_ops_elementwise.py"):
        gc.where(gc.placeholder("bool", (2, 3)), gc.placeholder("float32", (4,)), 0.0)


def test_where_keeps_special_values() -> None:
    c = np.array([True, False, True, False])
    x = np.array([np.nan, 1.0, -0.0, np.inf], np.float32)
    y = np.array([2.0, np.nan, 3.0, -0.0], np.float32)
    check(gc.where, np.where, c, x, y)
    check(gc.where, np.where, ~c, x, y)


# ---- cast -----------------------------------------------------------------------------------------------

def _cast_source(dtype: str) -> np.ndarray:
    values = {
        "bool": [True, False, True],
        "uint8": [0, 1, 2, 127, 200, 255],
        "float32": [-1.75, -0.5, -0.0, 0.0, 0.5, 1.5, 2.5, 100.9, 127.0],
        "float64": [-1.75, -0.5, -0.0, 0.0, 0.5, 1.5, 2.5, 100.9, 127.0],
    }.get(dtype, [-128, -2, -1, 0, 1, 2, 127])
    return np.array(values, dtype=dtype)


@pytest.mark.parametrize("target", DTYPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cast_between_every_pair(dtype: str, target: str) -> None:
    x = _cast_source(dtype)
    if dtype in FLOAT_DTYPES and target == "uint8":
        x = np.abs(x)  # negative floats to unsigned are undefined in C (and NumPy)
    check(lambda t: gc.cast(t, target), lambda a: a.astype(target), x)
    check(lambda t: t.astype(target), lambda a: a.astype(target), x)


def test_cast_edge_values() -> None:
    check(lambda t: gc.cast(t, "int8"), lambda a: a.astype(np.int8), np.array([300, -129, 255, 128], np.int64))
    check(lambda t: gc.cast(t, "uint8"), lambda a: a.astype(np.uint8), np.array([-1, 256, 300], np.int32))
    check(lambda t: gc.cast(t, "float32"), lambda a: a.astype(np.float32),
          np.array([1e300, -1e300, 1e-300, np.nan, 0.1, -0.0], np.float64))
    check(lambda t: gc.cast(t, "bool"), lambda a: a.astype(bool), np.array([np.nan, 0.0, -0.0, np.inf, 1e-30]))
    check(lambda t: gc.cast(t, "int32"), lambda a: a.astype(np.int32), np.array([-2.9, -0.1, 0.9, 2.9]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", [2.5, -3, True], ids=repr)
def test_cast_of_python_scalar(value: Any, dtype: str) -> None:
    t = gc.cast(value, dtype)
    assert t.dtype == np.dtype(dtype) and t.shape == ()
    assert_same(run(t), np.array(value).astype(dtype))
    # a cast scalar is strongly typed: float32 * cast(2.5, float64) is float64
    x = gc.placeholder("float32", (2,))
    assert (x * gc.cast(2.5, dtype)).dtype == np.result_type(np.float32, dtype)


@pytest.mark.parametrize("target", ["float16", "uint16", "complex64", "U3", "object"])
def test_cast_to_unsupported_dtype_is_a_dtype_error(target: str) -> None:
    with pytest.raises(gc.DTypeError):
        gc.cast(gc.placeholder("float32", (2,)), target)


@pytest.mark.parametrize("shape", [(), (0,), (2, 0), (1, 3)])
def test_cast_keeps_shape(shape: tuple) -> None:
    check(lambda t: gc.cast(t, "int16"), lambda a: a.astype(np.int16), np.ones(shape, np.float64))


# ---- stop_gradient --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_stop_gradient_is_identity(rng: np.random.Generator, dtype: str) -> None:
    for shape in [(), (0,), (2, 3)]:
        check(gc.stop_gradient, lambda a: a, random_array(rng, shape, dtype))


def test_stop_gradient_of_a_python_scalar_is_strongly_typed() -> None:
    # stop_gradient is an op, and the result of any op is strong: like float32 * np.float64(2.5)
    x = gc.placeholder("float32", (2,))
    assert (x * gc.stop_gradient(2.5)).dtype == np.float64
    assert (gc.placeholder("int8", (2,)) + gc.stop_gradient(3)).dtype == np.int64
    assert (x * gc.stop_gradient(gc.constant(np.float32(2.5)))).dtype == np.float32
    assert_same(run(gc.stop_gradient(gc.constant(np.array([1.0, np.nan, -0.0])))), np.array([1.0, np.nan, -0.0]))


# ---- graphs of several ops ------------------------------------------------------------------------------

def test_chained_expression_matches_numpy(rng: np.random.Generator) -> None:
    a = random_array(rng, (3, 4), "float32")
    b = random_array(rng, (4,), "float32", 0.5, 2)
    c = random_array(rng, (3, 1), "int8")

    def expr(x: Any, y: Any, z: Any, lib: Any) -> Any:
        return lib.where(x > 0, lib.sqrt(lib.abs(x)) * y, -x / y) + z * 2 - (x ** 2) // 1.5 + lib.maximum(x, 0.5)

    check(lambda x, y, z: expr(x, y, z, gc), lambda x, y, z: expr(x, y, z, np), a, b, c, rtol=1e-6)
