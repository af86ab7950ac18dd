"""matmul against NumPy 2: 1-D/2-D/batched operands, batch broadcasting, unknown dims, dtypes, errors.

Float products add in another order than NumPy's BLAS: they are compared within docs/numerics.md's
bound, 2 K u sum_k |a_ik b_kj| (``util.gemm_bound``); integer and bool products exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import graphc as gc
from util import DEVICES, assert_same, assert_within, gemm_bound, path_bounds, random_array, run

pytestmark = pytest.mark.usefixtures("device")  # every test also runs on device="cpu" (see conftest.py)

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "float32", "float64"]

SHAPES = [
    ((2, 3), (3, 4)),
    ((1, 1), (1, 1)),
    ((3,), (3, 4)),
    ((2, 3), (3,)),
    ((3,), (3,)),
    ((1,), (1, 5)),
    ((5, 2, 3), (3, 4)),
    ((2, 3), (5, 3, 4)),
    ((5, 2, 3), (5, 3, 4)),
    ((1, 2, 3), (5, 3, 4)),
    ((5, 2, 3), (1, 3, 4)),
    ((3,), (5, 3, 4)),
    ((5, 2, 3), (3,)),
    ((2, 3, 4, 5), (2, 3, 5, 2)),
    ((2, 1, 4, 5), (1, 3, 5, 2)),
    ((2, 1, 4, 5), (3, 5, 2)),
    ((4, 5), (2, 3, 5, 2)),
    ((6, 1, 1, 2, 3), (4, 1, 3, 2)),
    ((17, 33), (33, 9)),
]
EMPTY_SHAPES = [
    ((0, 3), (3, 4)),
    ((2, 0), (0, 4)),
    ((2, 3), (3, 0)),
    ((0,), (0,)),
    ((0,), (0, 3)),
    ((3, 0), (0,)),
    ((0, 2, 3), (3, 4)),
    ((2, 3), (0, 3, 4)),
    ((2, 0, 3), (2, 3, 1)),
    ((1, 2, 0), (5, 0, 3)),
]


def expected_matmul(a: Any, b: Any) -> np.ndarray:
    return np.asarray(np.matmul(a, b))


def assert_matmul(result: Any, a: Any, b: Any) -> None:
    """``result`` is NumPy's ``a @ b``: floats within the promise's bound (another order of the K
    products), integers and bools exactly."""
    expected = expected_matmul(a, b)
    if expected.dtype.kind != "f":
        assert_same(result, expected)
        return
    assert isinstance(result, np.ndarray), type(result)
    assert_within(result, expected, gemm_bound(np.asarray(a), np.asarray(b)), signed_zeros=False)


def check(a: np.ndarray, b: np.ndarray, *, shape_a: tuple | None = None, shape_b: tuple | None = None,
          operator: bool = False, source: str = "placeholder") -> gc.Tensor:
    """``a @ b`` in graphc (fed through placeholders of ``shape_a``/``shape_b``) equals NumPy's."""
    expected = expected_matmul(a, b)
    if source == "placeholder":
        p = gc.placeholder(a.dtype, shape_a if shape_a is not None else a.shape)
        q = gc.placeholder(b.dtype, shape_b if shape_b is not None else b.shape)
        feeds = {p: a, q: b}
    elif source == "variable":
        p, q, feeds = gc.Variable(a), gc.Variable(b), {}
    else:
        p, q, feeds = gc.constant(a), gc.constant(b), {}
    t = p @ q if operator else gc.matmul(p, q)
    assert isinstance(t, gc.Tensor)
    assert t.dtype == expected.dtype, (t.dtype, expected.dtype)
    assert len(t.shape) == expected.ndim, (t.shape, expected.shape)
    assert all(s is None or s == e for s, e in zip(t.shape, expected.shape)), (t.shape, expected.shape)
    assert_matmul(run(t, feeds), a, b)
    return t


# ---- shapes ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
@pytest.mark.parametrize(("shape_a", "shape_b"), SHAPES, ids=str)
def test_matmul_shapes(rng: np.random.Generator, shape_a: tuple, shape_b: tuple, dtype: str) -> None:
    a, b = random_array(rng, shape_a, dtype), random_array(rng, shape_b, dtype)
    check(a, b)
    check(a, b, operator=True)


@pytest.mark.parametrize(("shape_a", "shape_b"), SHAPES, ids=str)
def test_matmul_static_shapes_equal_numpy(shape_a: tuple, shape_b: tuple) -> None:
    t = gc.matmul(gc.placeholder("float32", shape_a), gc.placeholder("float32", shape_b))
    assert t.shape == np.matmul(np.ones(shape_a), np.ones(shape_b)).shape


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
@pytest.mark.parametrize(("shape_a", "shape_b"), EMPTY_SHAPES, ids=str)
def test_matmul_with_size_zero_dims(rng: np.random.Generator, shape_a: tuple, shape_b: tuple, dtype: str) -> None:
    check(random_array(rng, shape_a, dtype), random_array(rng, shape_b, dtype))


def test_matmul_of_empty_inner_dim_is_zeros() -> None:
    result = run(gc.matmul(gc.constant(np.ones((2, 0), np.float32)), gc.constant(np.ones((0, 3), np.float32))))
    assert_same(result, np.zeros((2, 3), np.float32))
    assert_same(run(gc.constant(np.ones(0)) @ gc.constant(np.ones(0))), np.float64(0))


@pytest.mark.parametrize("source", ["placeholder", "constant", "variable"])
def test_matmul_of_every_kind_of_source(rng: np.random.Generator, source: str) -> None:
    check(random_array(rng, (3, 4), "float32"), random_array(rng, (4, 2), "float32"), source=source)


def test_matmul_known_values() -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    b = np.array([[5.0, 6.0], [7.0, 8.0]], np.float32)
    assert_same(run(gc.constant(a) @ gc.constant(b)), np.array([[19.0, 22.0], [43.0, 50.0]], np.float32))
    assert_same(run(gc.constant(np.array([1, 2, 3])) @ gc.constant(np.array([4, 5, 6]))), np.int64(32))
    assert_same(run(gc.matmul(gc.constant(a), gc.constant(np.array([1.0, 1.0], np.float32)))),
                np.array([3.0, 7.0], np.float32))
    assert_same(run(gc.matmul(gc.constant(np.array([1.0, 1.0], np.float32)), gc.constant(a))),
                np.array([4.0, 6.0], np.float32))


def test_matmul_special_values() -> None:
    a = np.array([[np.inf, 1.0], [np.nan, 0.0], [1.0, 2.0]])
    b = np.array([[1.0, 0.0], [2.0, -np.inf]])
    with np.errstate(invalid="ignore"):
        check(a, b)


# ---- dtypes ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype_b", DTYPES)
@pytest.mark.parametrize("dtype_a", DTYPES)
def test_matmul_promotes_mixed_dtypes(rng: np.random.Generator, dtype_a: str, dtype_b: str) -> None:
    a = random_array(rng, (2, 3), dtype_a)
    b = random_array(rng, (3, 4), dtype_b)
    check(a, b)
    check(a[0], b, operator=True)


@pytest.mark.parametrize(("dtype_a", "dtype_b", "want"), [
    ("int32", "float32", "float64"), ("int8", "uint8", "int16"), ("bool", "int8", "int8"),
    ("float32", "float64", "float64"), ("bool", "bool", "bool"), ("uint8", "float32", "float32"),
    ("int16", "float32", "float32"), ("int64", "int8", "int64"),
])
def test_matmul_result_dtype_table(dtype_a: str, dtype_b: str, want: str) -> None:
    t = gc.matmul(gc.placeholder(dtype_a, (2, 3)), gc.placeholder(dtype_b, (3,)))
    assert t.dtype == np.dtype(want) and t.shape == (2,)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16"])
def test_integer_matmul_wraps_like_numpy(dtype: str) -> None:
    info = np.iinfo(dtype)
    a = np.full((2, 3), info.max, dtype)
    check(a, a.T.copy())


def test_bool_matmul_is_logical() -> None:
    a = np.array([[True, False], [False, False]])
    b = np.array([[True, True], [False, True]])
    check(a, b)
    assert_same(run(gc.constant(a) @ gc.constant(b)), np.array([[True, True], [False, False]]))


def test_float32_matmul_accuracy(rng: np.random.Generator) -> None:
    a = rng.standard_normal((64, 300)).astype(np.float32)
    b = rng.standard_normal((300, 48)).astype(np.float32)
    result = run(gc.matmul(gc.constant(a), gc.constant(b)))
    exact = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(result, exact, rtol=1e-4, atol=1e-4)
    assert result.dtype == np.float32


# ---- operands that are not tensors ----------------------------------------------------------------------

@pytest.mark.parametrize("left", [
    np.ones((2, 3)), np.ones((2, 3), np.float32), np.arange(3, dtype=np.int8), [[1.0, 2.0, 3.0]], [1, 2, 3],
], ids=["f64", "f32", "i8-1d", "list2d", "list1d"])
def test_numpy_array_on_the_left_builds_a_node(rng: np.random.Generator, left: Any) -> None:
    x = random_array(rng, (3, 4), "float32")
    p = gc.placeholder("float32", (3, 4))
    t = left @ p if isinstance(left, np.ndarray) else gc.matmul(left, p)
    assert isinstance(t, gc.Tensor)
    expected = np.matmul(left, x)
    assert t.dtype == expected.dtype and t.shape == expected.shape
    assert_matmul(run(t, {p: x}), left, x)
    # and on the right
    q = gc.placeholder("float32", (4, 3))
    right = np.asarray(left).T if np.ndim(left) == 2 else np.asarray(left)
    u = q @ right if isinstance(left, np.ndarray) else gc.matmul(q, right.tolist())
    x2 = random_array(rng, (4, 3), "float32")
    assert_matmul(run(u, {q: x2}), x2, right)


# ---- unknown dims ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("shape_a", "shape_b", "fed_a", "fed_b", "static"), [
    ((None, 3), (3, 4), [(5, 3), (1, 3), (0, 3)], [(3, 4)] * 3, (None, 4)),
    ((None, None), (None, None), [(2, 3), (4, 1)], [(3, 5), (1, 2)], (None, None)),
    ((2, None), (None, 4), [(2, 3), (2, 0)], [(3, 4), (0, 4)], (2, 4)),
    ((None, 2, 3), (3, 4), [(5, 2, 3), (0, 2, 3)], [(3, 4), (3, 4)], (None, 2, 4)),
    ((None, 2, 3), (None, 3, 4), [(5, 2, 3), (1, 2, 3), (5, 2, 3)], [(5, 3, 4), (6, 3, 4), (1, 3, 4)],
     (None, 2, 4)),
    ((None,), (None, 3), [(4,), (0,)], [(4, 3), (0, 3)], (3,)),
    ((None, None), (None,), [(2, 3)], [(3,)], (None,)),
    ((None,), (None,), [(3,), (0,)], [(3,), (0,)], ()),
    ((None, None, None, None), (None, None), [(2, 3, 4, 5)], [(5, 6)], (None, None, None, None)),
], ids=str)
def test_matmul_with_unknown_dims(rng: np.random.Generator, shape_a: tuple, shape_b: tuple, fed_a: list,
                                  fed_b: list, static: tuple) -> None:
    p = gc.placeholder("float32", shape_a)
    q = gc.placeholder("float32", shape_b)
    t = p @ q
    assert t.shape == static and t.dtype == np.float32
    for sa, sb in zip(fed_a, fed_b):
        a, b = random_array(rng, sa, "float32"), random_array(rng, sb, "float32")
        assert_matmul(run(t, {p: a, q: b}), a, b)


@pytest.mark.parametrize(("shape_a", "shape_b", "fed_a", "fed_b"), [
    ((None, None), (None, 4), (2, 3), (5, 4)),
    ((None,), (None,), (3,), (4,)),
    ((None, 2, 3), (None, 3, 4), (5, 2, 3), (4, 3, 4)),
    ((2, None), (3, 4), (2, 4), (3, 4)),
])
def test_mismatched_fed_dims_are_a_shape_error_naming_the_user_line(shape_a: tuple, shape_b: tuple,
                                                                    fed_a: tuple, fed_b: tuple) -> None:
    p = gc.placeholder("float32", shape_a)
    q = gc.placeholder("float32", shape_b)
    t = gc.matmul(p, q)
    with pytest.raises(ValueError):
        np.matmul(np.ones(fed_a), np.ones(fed_b))
    with pytest.raises(gc.ShapeError, match="test_ops_linalg.py"):
        run(t, {p: np.ones(fed_a, np.float32), q: np.ones(fed_b, np.float32)})


# ---- errors ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("shape_a", "shape_b"), [
    ((2, 3), (4, 5)), ((3,), (4,)), ((2, 3), (4,)), ((4,), (3, 2)), ((5, 2, 3), (4, 2)),
    ((2, 2, 3), (3, 3, 4)), ((2, 3, 2, 3), (4, 3, 4)), ((0, 3), (0, 3)),
], ids=str)
def test_mismatched_shapes_are_a_shape_error_naming_the_user_line(shape_a: tuple, shape_b: tuple) -> None:
    with pytest.raises(ValueError):
        np.matmul(np.ones(shape_a), np.ones(shape_b))
    a = gc.placeholder("float32", shape_a)
    b = gc.placeholder("float32", shape_b)
    with pytest.raises(gc.ShapeError, match="test_ops_linalg.py") as info:
        gc.matmul(a, b)
    message = str(info.value)
    assert "matmul" in message
    assert a.name in message and b.name in message
    with pytest.raises(gc.ShapeError, match="test_ops_linalg.py"):
        a @ b
    assert isinstance(info.value, gc.GraphcError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("other", [2.0, 3, np.float32(2.0), np.array(2.0)], ids=repr)
def test_scalar_operand_is_a_shape_error(other: Any) -> None:
    x = gc.placeholder("float32", (2, 2))
    with pytest.raises(ValueError):
        np.matmul(np.ones((2, 2)), other)
    with pytest.raises(gc.ShapeError, match="test_ops_linalg.py"):
        gc.matmul(x, other)
    with pytest.raises(gc.ShapeError, match="test_ops_linalg.py"):
        gc.matmul(other, x)
    with pytest.raises(gc.ShapeError):
        x @ other
    with pytest.raises(gc.ShapeError):
        gc.placeholder("float32", ()) @ x
    if not isinstance(other, (int, float)):
        with pytest.raises(gc.ShapeError):
            other @ x


def test_scalar_placeholder_operand_is_a_shape_error() -> None:
    with pytest.raises(gc.ShapeError, match="test_ops_linalg.py"):
        gc.matmul(gc.placeholder("float32", (3,)), gc.placeholder("float32", ()))


# ---- composed with other ops ----------------------------------------------------------------------------

def test_dense_layer(rng: np.random.Generator) -> None:
    x = random_array(rng, (8, 5), "float32")
    w = random_array(rng, (5, 3), "float32")
    b = random_array(rng, (3,), "float32")
    xp = gc.placeholder("float32", (None, 5))
    out = gc.relu(xp @ gc.Variable(w) + gc.constant(b)) * 2.0
    assert out.shape == (None, 3) and out.dtype == np.float32
    (bound,) = path_bounds(out, {xp: x}, DEVICES)  # the matmul's bound, carried through + b, relu and * 2
    assert_within(run(out, {xp: x}), np.maximum(x @ w + b, 0) * 2.0, bound, signed_zeros=False)


def test_matmul_of_transposed_operand(rng: np.random.Generator) -> None:
    a = random_array(rng, (4, 3), "float64")
    p = gc.placeholder("float64", (4, 3))
    assert_matmul(run(p.T @ p, {p: a}), a.T, a)
    assert_matmul(run(gc.matmul(p, p.T), {p: a}), a, a.T)


FLAG_SHAPES = [((4, 3), (3, 5)), ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((2, 1, 4, 5), (3, 5, 2)), ((7, 1), (1, 6))]


@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
@pytest.mark.parametrize("shapes", FLAG_SHAPES, ids=str)
def test_transpose_flags(rng: np.random.Generator, shapes: tuple, transpose_a: bool, transpose_b: bool) -> None:
    """matmul(a, b, transpose_a=, transpose_b=) multiplies by the operands with their last two axes
    swapped (given in the swapped layout here), batched and broadcast as without the flags."""
    (sa, sb) = shapes
    swap = lambda s, t: (*s[:-2], s[-1], s[-2]) if t else s  # noqa: E731
    a = random_array(rng, swap(sa, transpose_a), "float32")
    b = random_array(rng, swap(sb, transpose_b), "float32")
    pa, pb = gc.placeholder("float32", a.shape), gc.placeholder("float32", b.shape)
    out = gc.matmul(pa, pb, transpose_a=transpose_a, transpose_b=transpose_b)
    ea = np.swapaxes(a, -1, -2) if transpose_a else a
    eb = np.swapaxes(b, -1, -2) if transpose_b else b
    assert out.shape == np.matmul(ea, eb).shape
    assert_matmul(run(out, {pa: a, pb: b}), ea, eb)


@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_transpose_flags_gradients(transpose_a: bool, transpose_b: bool) -> None:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 4, 3) if transpose_a else (2, 3, 4))
    b = rng.standard_normal((5, 4) if transpose_b else (4, 5))
    gc.testing.check_grad(lambda x, y: gc.matmul(x, y, transpose_a=transpose_a, transpose_b=transpose_b), [a, b])
    gc.testing.check_grad(lambda x, y: gc.matmul(x, y, transpose_a=transpose_a, transpose_b=transpose_b), [a, b],
                          order=2, rtol=1e-4, atol=1e-6)


def test_transposes_fold_into_the_product(rng: np.random.Generator) -> None:
    """The optimiser turns a transpose of the last two axes feeding a matmul into its flag (no copy), and
    the gradients of a dense layer need no transposes at all."""
    x = gc.placeholder("float32", (None, 6), name="x")
    w = gc.Variable(random_array(rng, (6, 3), "float32"), name="w")
    pairs = gc.placeholder("float32", (2, 6, 5), name="pairs")
    loss = gc.sum(gc.tanh(x @ w)) + gc.sum(gc.matmul(gc.transpose(pairs, (0, 2, 1)), pairs.T.T))
    fn = gc.function([x, pairs], [loss, *gc.grad(loss, [x, w])])
    text = gc.dprint(fn)
    assert "transpose(" not in text, text
    assert "transpose_a=True" in text and "transpose_b=True" in text
    xv, pv = random_array(rng, (4, 6), "float32"), random_array(rng, (2, 6, 5), "float32")
    wv = w.value
    value, gx, gw = fn(xv, pv)
    th = np.tanh(xv @ wv)
    expected = th.sum() + np.matmul(np.swapaxes(pv, 1, 2), pv).sum()
    np.testing.assert_allclose(value, expected, rtol=1e-4)
    np.testing.assert_allclose(gx, (1 - th ** 2) @ wv.T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gw, xv.T @ (1 - th ** 2), rtol=1e-4, atol=1e-5)


def test_transpose_flag_needs_a_matrix() -> None:
    v = gc.placeholder("float32", (3,))
    m = gc.placeholder("float32", (3, 4))
    with pytest.raises(gc.ShapeError, match="transpose_a needs an operand of at least 2 dimensions"):
        gc.matmul(v, m, transpose_a=True)
    with pytest.raises(gc.ShapeError, match=r"contracted dimensions differ: \[3, 4\]\^T @ \[3, 4\]\^T"):
        gc.matmul(m, m, transpose_a=True, transpose_b=True)
