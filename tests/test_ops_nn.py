"""Neural-network ops against straightforward implementations written here: softmax family,
cross-entropies (including their stability at logits of +-1000), conv2d and pooling (NCHW / OIHW)."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pytest

import graphc as gc
from util import assert_same, assert_within, random_array, reduction_bound, run, unit_roundoff

pytestmark = pytest.mark.usefixtures("device")  # every test also runs on device="cpu" (see conftest.py)

THIS_FILE = os.path.basename(__file__)

# float32 results are compared with float64 computations: allow a few float32 roundings
TOL = {np.dtype(np.float32): {"rtol": 2e-5, "atol": 2e-6}, np.dtype(np.float64): {"rtol": 1e-12, "atol": 1e-13}}


def check(t: gc.Tensor, expected: Any, feeds: dict | None = None, static: tuple | None = None,
          **tol: float) -> np.ndarray:
    """``t`` has ``expected``'s dtype, the given static shape (default: ``expected``'s) and runs to it."""
    expected = np.asarray(expected)
    assert t.dtype == expected.dtype, (t.dtype, expected.dtype)
    assert t.shape == (expected.shape if static is None else static), (t.shape, static, expected.shape)
    result = run(t, feeds)
    assert_same(result, expected, **(tol or TOL.get(expected.dtype, {})))
    return result


def logsumexp64(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """log(sum(exp(x))) over ``axes`` in float64, shifted by the maximum (keepdims)."""
    x = x.astype(np.float64)
    m = np.max(x, axis=axes, keepdims=True)
    return m + np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True))


def as_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    return tuple(a % ndim for a in (axis if isinstance(axis, tuple) else (axis,)))


# ---- softmax / log_softmax ----------------------------------------------------------------------

@pytest.mark.parametrize("shape,axis", [
    ((5,), -1),
    ((3, 5), -1),
    ((3, 5), 0),
    ((3, 5), (0, 1)),
    ((2, 3, 4), 1),
    ((2, 3, 4), (1, 2)),
    ((2, 3, 4), (-1, 0)),
    ((2, 1, 4), 1),
    ((4, 1), -1),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_and_log_softmax(rng, shape, axis, dtype):
    x = random_array(rng, shape, dtype, -5, 5)
    axes = as_axes(axis, len(shape))
    log_p = x.astype(np.float64) - logsumexp64(x, axes)
    check(gc.log_softmax(x, axis=axis), log_p.astype(dtype))
    check(gc.softmax(x, axis=axis), np.exp(log_p).astype(dtype))


def test_softmax_default_axis_is_last(rng):
    x = random_array(rng, (3, 4), "float64")
    log_p = x - logsumexp64(x, (1,))
    check(gc.softmax(x), np.exp(log_p))
    check(gc.log_softmax(x), log_p)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_stable_at_large_logits(dtype):
    x = np.array([[1000, -1000, 1000], [-1000, -1000, -1000], [1000, 0, -1000], [-1000, -999, -1000]], dtype)
    p = run(gc.softmax(x))
    log_p = run(gc.log_softmax(x))
    assert np.isfinite(p).all() and np.isfinite(log_p).all()
    l2, l3 = math.log(2), math.log(3)
    lse = math.log(1 + 2 * math.exp(-1))  # the last row: -999 - logsumexp = -log(1 + 2/e)
    want_log = np.array([[-l2, -2000 - l2, -l2], [-l3, -l3, -l3], [0, -1000, -2000], [-1 - lse, -lse, -1 - lse]])
    check(gc.log_softmax(x), want_log.astype(dtype))
    check(gc.softmax(x), np.exp(want_log).astype(dtype))


@pytest.mark.parametrize("scale", [100.0, 1000.0])
def test_softmax_stable_random_large(rng, scale):
    x = rng.uniform(-scale, scale, size=(6, 7))
    x[:, 0] = scale  # ties at the maximum
    x[:, 1] = scale
    log_p = x - logsumexp64(x, (1,))
    for dtype in ("float32", "float64"):
        xd = x.astype(dtype)
        lp = (xd.astype(np.float64) - logsumexp64(xd, (1,))).astype(dtype)
        out = check(gc.log_softmax(xd), lp, rtol=1e-5, atol=1e-3 if dtype == "float32" else 1e-10)
        assert np.isfinite(out).all()
        out = check(gc.softmax(xd), np.exp(lp.astype(np.float64)).astype(dtype), rtol=1e-4, atol=1e-7)
        assert np.isfinite(out).all()
    np.testing.assert_allclose(run(gc.log_softmax(x)), log_p, rtol=1e-12)


def test_softmax_masked_with_minus_inf():
    x = np.array([[0.0, -np.inf, 1.0], [-np.inf, 2.0, -np.inf]])
    e = math.e
    check(gc.softmax(x), np.array([[1 / (1 + e), 0, e / (1 + e)], [0, 1, 0]]))
    check(gc.log_softmax(x), np.array([[-math.log1p(e), -np.inf, 1 - math.log1p(e)], [-np.inf, 0, -np.inf]]))


def test_softmax_integer_input_uses_float_like_exp():
    x = np.array([[1, 2, 3], [0, 0, 5]], np.int32)
    log_p = x - logsumexp64(x, (1,))
    check(gc.softmax(x), np.exp(log_p))  # int32 -> float64 as np.exp
    x16 = x.astype(np.int16)
    check(gc.log_softmax(x16), log_p.astype(np.float32))  # int16 -> float32 as np.exp


def test_softmax_size_zero_and_unknown_dims(rng):
    check(gc.softmax(np.zeros((0, 3), np.float32)), np.zeros((0, 3), np.float32))
    check(gc.log_softmax(np.zeros((3, 0), np.float64)), np.zeros((3, 0)))
    p = gc.placeholder("float32", (None, 4))
    x = random_array(rng, (5, 4), "float32")
    log_p = (x - logsumexp64(x, (1,))).astype(np.float32)
    check(gc.log_softmax(p), log_p, {p: x}, (None, 4))
    check(gc.softmax(p, 0), np.exp(x - logsumexp64(x, (0,))).astype(np.float32), {p: x}, (None, 4))
    check(gc.softmax(p), np.zeros((0, 4), np.float32), {p: np.zeros((0, 4), np.float32)}, (None, 4))


def test_softmax_errors():
    with pytest.raises(gc.ShapeError):
        gc.softmax(np.float32(1))
    with pytest.raises(gc.ArgumentError):
        gc.softmax(np.zeros((2, 3)), axis=2)
    with pytest.raises(gc.ArgumentError):
        gc.log_softmax(np.zeros((2, 3)), axis=(0, -2))


# ---- softmax_cross_entropy ----------------------------------------------------------------------

def xent_sparse_loops(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = np.zeros(logits.shape[:-1])
    for idx in np.ndindex(*logits.shape[:-1]):
        row = [float(v) for v in logits[idx]]
        m = max(row)
        lse = m + math.log(math.fsum(math.exp(v - m) for v in row))
        out[idx] = lse - row[int(labels[idx])]
    return out.astype(logits.dtype)


def xent_dense_loops(logits: np.ndarray, probs: np.ndarray) -> np.ndarray:
    out = np.zeros(logits.shape[:-1])
    for idx in np.ndindex(*logits.shape[:-1]):
        row = [float(v) for v in logits[idx]]
        m = max(row)
        lse = m + math.log(math.fsum(math.exp(v - m) for v in row))
        out[idx] = -math.fsum(float(p) * (v - lse) for p, v in zip(probs[idx], row))
    return out.astype(logits.dtype)


@pytest.mark.parametrize("shape", [(4, 5), (1, 3), (2, 3, 4), (7,), (0, 3), (3, 1)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("label_dtype", ["int64", "int32", "uint8"])
def test_softmax_cross_entropy_sparse(rng, shape, dtype, label_dtype):
    logits = random_array(rng, shape, dtype, -4, 4)
    labels = rng.integers(0, shape[-1], size=shape[:-1]).astype(label_dtype)
    check(gc.softmax_cross_entropy(logits, labels), xent_sparse_loops(logits, labels))


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4), (6,), (0, 2), (3, 1)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_cross_entropy_dense(rng, shape, dtype):
    logits = random_array(rng, shape, dtype, -4, 4)
    probs = rng.uniform(0, 1, size=shape)
    probs = (probs / probs.sum(axis=-1, keepdims=True)).astype(dtype) if probs.size else probs.astype(dtype)
    check(gc.softmax_cross_entropy(logits, probs), xent_dense_loops(logits, probs))


def test_softmax_cross_entropy_one_hot_labels_agree(rng):
    logits = random_array(rng, (6, 4), "float64")
    labels = rng.integers(0, 4, size=6)
    sparse = run(gc.softmax_cross_entropy(logits, labels))
    dense = run(gc.softmax_cross_entropy(logits, gc.one_hot(labels, 4, "float64")))
    # the dense sum adds exact zeros to the label's term: the two differ by their logsumexps (two code
    # paths, docs/numerics.md) and the rounding of the last subtraction
    bound = reduction_bound("logsumexp", logits, axis=-1) + 2 * unit_roundoff(np.float64) * np.abs(dense)
    assert_within(sparse, dense, bound, signed_zeros=False)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_cross_entropy_stable_at_large_logits(dtype):
    logits = np.array([[1000, -1000, 0], [1000, -1000, 0], [1000, -1000, 0], [-1000, -1000, -1000],
                       [1000, 1000, -1000]], dtype)
    labels = np.array([0, 1, 2, 1, 2])
    want = np.array([0, 2000, 1000, math.log(3), 2000 + math.log(2)])
    out = check(gc.softmax_cross_entropy(logits, labels), want.astype(dtype))
    assert np.isfinite(out).all()
    probs = np.array([[1, 0, 0], [0, 1, 0], [0.5, 0, 0.5], [0.25, 0.5, 0.25], [0.5, 0.5, 0]], dtype)
    want = np.array([0, 2000, 500, math.log(3), math.log(2)])
    out = check(gc.softmax_cross_entropy(logits, probs), want.astype(dtype))
    assert np.isfinite(out).all()


def test_softmax_cross_entropy_unknown_batch(rng):
    lg = gc.placeholder("float32", (None, 5))
    lb = gc.placeholder("int64", (None,))
    x = random_array(rng, (6, 5), "float32")
    y = rng.integers(0, 5, size=6)
    check(gc.softmax_cross_entropy(lg, lb), xent_sparse_loops(x, y), {lg: x, lb: y}, (None,))
    check(gc.softmax_cross_entropy(lg, y), xent_sparse_loops(x, y), {lg: x}, (6,))
    p = gc.placeholder("float32", (None, None))
    probs = np.full((6, 5), 0.2, np.float32)
    check(gc.softmax_cross_entropy(lg, p), xent_dense_loops(x, probs), {lg: x, p: probs}, (None,))
    with pytest.raises(gc.ShapeError):  # batch sizes disagree once fed
        run(gc.softmax_cross_entropy(lg, lb), {lg: x, lb: y[:4]})


@pytest.mark.parametrize("bad", [-1, 5, 100])
def test_softmax_cross_entropy_label_out_of_range(rng, bad):
    x = random_array(rng, (3, 5), "float32")
    labels = np.array([0, bad, 1])
    y = gc.softmax_cross_entropy(x, labels)  # builds: labels are checked when the graph runs
    with pytest.raises(gc.ExecutionError) as info:
        run(y)
    assert THIS_FILE in str(info.value)
    lb = gc.placeholder("int32", (3,))
    y = gc.softmax_cross_entropy(x, lb)
    with pytest.raises(gc.ExecutionError) as info:
        run(y, {lb: labels.astype(np.int32)})
    assert THIS_FILE in str(info.value)


@pytest.mark.parametrize("logits_shape,labels_shape,dtype", [
    ((4, 5), (3,), "int64"),
    ((4, 5), (4, 1), "int64"),
    ((4, 5), (), "int64"),
    ((2, 3, 5), (3,), "int64"),
    ((4, 5), (4, 4), "float32"),
    ((4, 5), (5,), "float32"),
    ((4, 5), (2, 5), "float32"),
])
def test_softmax_cross_entropy_shape_mismatch(logits_shape, labels_shape, dtype):
    with pytest.raises(gc.ShapeError):
        gc.softmax_cross_entropy(np.zeros(logits_shape, np.float32), np.zeros(labels_shape, dtype))


def test_softmax_cross_entropy_errors():
    with pytest.raises(gc.ShapeError):
        gc.softmax_cross_entropy(np.float32(1), np.int64(0))
    with pytest.raises(gc.DTypeError):
        gc.softmax_cross_entropy(np.zeros((2, 3), np.float32), np.zeros((2, 3), bool))


# ---- sigmoid_cross_entropy ----------------------------------------------------------------------

def sigmoid_xent_naive(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    x, z = x.astype(np.float64), np.asarray(z, np.float64)
    s = 1 / (1 + np.exp(-x))
    return -z * np.log(s) - (1 - z) * np.log(1 - s)


@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (0, 2)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_cross_entropy(rng, shape, dtype):
    x = random_array(rng, shape, dtype, -8, 8)
    z = rng.uniform(0, 1, size=shape).astype(dtype)
    check(gc.sigmoid_cross_entropy(x, z), sigmoid_xent_naive(x, z).astype(dtype))
    hard = (rng.uniform(size=shape) < 0.5).astype(dtype)
    check(gc.sigmoid_cross_entropy(x, hard), sigmoid_xent_naive(x, hard).astype(dtype))


def test_sigmoid_cross_entropy_broadcasts_and_promotes(rng):
    x = random_array(rng, (3, 4), "float32")
    z = rng.uniform(0, 1, size=4).astype(np.float32)
    check(gc.sigmoid_cross_entropy(x, z), sigmoid_xent_naive(x, z).astype(np.float32))
    check(gc.sigmoid_cross_entropy(x, 0.25), sigmoid_xent_naive(x, 0.25).astype(np.float32))  # weak scalar
    z64 = z.astype(np.float64)
    check(gc.sigmoid_cross_entropy(x, z64), sigmoid_xent_naive(x, z64))  # float32 with float64 -> float64
    with pytest.raises(gc.ShapeError):
        gc.sigmoid_cross_entropy(x, np.zeros(3, np.float32))


def test_sigmoid_cross_entropy_unknown_dims(rng):
    p = gc.placeholder("float64", (None, 3))
    x = random_array(rng, (4, 3), "float64")
    z = rng.uniform(0, 1, size=(4, 3))
    check(gc.sigmoid_cross_entropy(p, z), sigmoid_xent_naive(x, z), {p: x}, (4, 3))
    check(gc.sigmoid_cross_entropy(p, z[0]), sigmoid_xent_naive(x, z[0]), {p: x}, (None, 3))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_cross_entropy_limits(dtype):
    x = np.array([1000, 1000, -1000, -1000, 1000, -1000, 0, 0, 40, -40], dtype)
    z = np.array([1, 0, 0, 1, 0.5, 0.5, 0.5, 1, 1, 0], dtype)
    # x large: loss -> (1 - z) x;  x very negative: loss -> -z x;  x = 0: log 2
    want = np.array([0, 1000, 0, 1000, 500, 500, math.log(2), math.log(2), math.exp(-40), math.exp(-40)])
    out = check(gc.sigmoid_cross_entropy(x, z), want.astype(dtype), rtol=1e-5, atol=0)
    assert np.isfinite(out).all()


# ---- conv2d -------------------------------------------------------------------------------------

def pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def pads_of(padding: Any, size: int, k: int, stride: int, axis: int) -> tuple[int, int]:
    """(before, after) padding of one spatial axis, TensorFlow's definition for SAME."""
    if padding == "VALID":
        return 0, 0
    if padding == "SAME":
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + k - size, 0)
        return total // 2, total - total // 2  # the odd one goes at the bottom / right
    if isinstance(padding, int):
        return padding, padding
    return tuple(padding[axis])


def conv2d_loops(x: np.ndarray, w: np.ndarray, strides: Any, padding: Any) -> np.ndarray:
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    sh, sw = pair(strides)
    (pt, pb), (pl, pr) = pads_of(padding, h, kh, sh, 0), pads_of(padding, wd, kw, sw, 1)
    oh, ow = (h + pt + pb - kh) // sh + 1, (wd + pl + pr - kw) // sw + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            for di in range(kh):
                for dj in range(kw):
                    r, col = i * sh + di - pt, j * sw + dj - pl
                    if 0 <= r < h and 0 <= col < wd:  # outside: zero padding contributes nothing
                        out[:, :, i, j] += x[:, :, r, col].astype(np.float64) @ w[:, :, di, dj].T
    return out.astype(x.dtype)


CONV_PADDINGS = ["VALID", "SAME", 1, ((1, 0), (2, 1))]


@pytest.mark.parametrize("strides", [1, 2, (2, 1)])
@pytest.mark.parametrize("padding", CONV_PADDINGS, ids=["VALID", "SAME", "int", "pairs"])
@pytest.mark.parametrize("ksize", [(3, 3), (2, 2), (1, 3), (4, 1)])
def test_conv2d(rng, strides, padding, ksize):
    x = random_array(rng, (2, 3, 7, 6), "float64")
    w = random_array(rng, (4, 3, *ksize), "float64")
    check(gc.conv2d(x, w, strides=strides, padding=padding), conv2d_loops(x, w, strides, padding))


@pytest.mark.parametrize("size,k,stride", [(5, 3, 2), (6, 3, 2), (6, 2, 2), (5, 4, 3), (1, 3, 1), (4, 4, 1),
                                           (7, 2, 3)])
def test_conv2d_same_output_size(rng, size, k, stride):
    x = random_array(rng, (1, 2, size, size + 1), "float32")
    w = random_array(rng, (3, 2, k, k), "float32")
    y = gc.conv2d(x, w, strides=stride, padding="SAME")
    assert y.shape == (1, 3, math.ceil(size / stride), math.ceil((size + 1) / stride))
    check(y, conv2d_loops(x, w, stride, "SAME"))


def test_conv2d_same_pads_bottom_right():
    x = np.arange(4, dtype=np.float64).reshape(1, 1, 1, 4)
    w = np.ones((1, 1, 1, 2))
    # in 4, kernel 2, stride 1: one padding column, at the right
    check(gc.conv2d(x, w, padding="SAME"), np.array([1, 3, 5, 3.0]).reshape(1, 1, 1, 4))
    x = np.arange(1, 6, dtype=np.float64).reshape(1, 1, 5, 1)
    w = np.ones((1, 1, 4, 1))
    # in 5, kernel 4, stride 1: padding 1 on top, 2 at the bottom
    check(gc.conv2d(x, w, padding="SAME"), np.array([6, 10, 14, 12, 9.0]).reshape(1, 1, 5, 1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv2d_dtypes(rng, dtype):
    x = random_array(rng, (2, 2, 5, 5), dtype)
    w = random_array(rng, (3, 2, 3, 3), dtype)
    check(gc.conv2d(x, w, 2, "SAME"), conv2d_loops(x, w, 2, "SAME"))


def test_conv2d_integers_and_promotion(rng):
    x = random_array(rng, (2, 2, 5, 4), "int32", -5, 5)
    w = random_array(rng, (3, 2, 2, 3), "int32", -5, 5)
    check(gc.conv2d(x, w, 1, "SAME"), conv2d_loops(x, w, 1, "SAME"))
    xf, wd = x.astype(np.float32), w.astype(np.float64)
    check(gc.conv2d(xf, wd, (1, 2), 1), conv2d_loops(xf.astype(np.float64), wd, (1, 2), 1))


def test_conv2d_unknown_dims(rng):
    x = random_array(rng, (3, 2, 6, 5), "float32")
    w = random_array(rng, (4, 2, 3, 2), "float32")
    p = gc.placeholder("float32", (None, 2, 6, 5))
    check(gc.conv2d(p, w, 1, "SAME"), conv2d_loops(x, w, 1, "SAME"), {p: x}, (None, 4, 6, 5))
    check(gc.conv2d(p, w, 2, "VALID"), conv2d_loops(x, w, 2, "VALID"), {p: x}, (None, 4, 2, 2))
    q = gc.placeholder("float32", (None, None, None, None))
    check(gc.conv2d(q, w, (2, 1), 1), conv2d_loops(x, w, (2, 1), 1), {q: x}, (None, 4, None, None))
    check(gc.conv2d(q, w), np.zeros((0, 4, 4, 4), np.float32), {q: np.zeros((0, 2, 6, 5), np.float32)},
          (None, 4, None, None))
    with pytest.raises(gc.ShapeError):  # the channels disagree once fed
        run(gc.conv2d(q, w), {q: np.zeros((1, 3, 6, 5), np.float32)})
    k = gc.placeholder("float32", (None, 2, 3, 2))
    check(gc.conv2d(x, k, 1, "SAME"), conv2d_loops(x, w, 1, "SAME"), {k: w}, (3, None, 6, 5))


def test_conv2d_shape_errors():
    x = np.zeros((1, 3, 5, 5), np.float32)
    with pytest.raises(gc.ShapeError):
        gc.conv2d(x, np.zeros((4, 2, 3, 3), np.float32))  # channels
    with pytest.raises(gc.ShapeError):
        gc.conv2d(x, np.zeros((4, 3, 6, 3), np.float32))  # kernel larger than the input
    with pytest.raises(gc.ShapeError):
        gc.conv2d(x[0], np.zeros((4, 3, 3, 3), np.float32))  # 3-D input
    with pytest.raises(gc.ShapeError):
        gc.conv2d(x, np.zeros((3, 3, 3), np.float32))  # 3-D weights


@pytest.mark.parametrize("kwargs", [{"strides": 0}, {"strides": (1, 2, 3)}, {"strides": 1.5}, {"padding": "FULL"},
                                    {"padding": -1}, {"padding": ((1, 2),)}, {"padding": ((1, -1), (0, 0))}])
def test_conv2d_bad_arguments(kwargs):
    with pytest.raises(gc.ArgumentError):
        gc.conv2d(np.zeros((1, 3, 5, 5), np.float32), np.zeros((4, 3, 3, 3), np.float32), **kwargs)


# ---- pooling ------------------------------------------------------------------------------------

def pool_loops(x: np.ndarray, ksize: Any, strides: Any, padding: Any, kind: str) -> np.ndarray:
    """Max or mean over each window's real elements (padding never takes part)."""
    _, _, h, wd = x.shape
    kh, kw = pair(ksize)
    sh, sw = pair(ksize if strides is None else strides)
    (pt, pb), (pl, pr) = pads_of(padding, h, kh, sh, 0), pads_of(padding, wd, kw, sw, 1)
    oh, ow = (h + pt + pb - kh) // sh + 1, (wd + pl + pr - kw) // sw + 1
    out = np.zeros((*x.shape[:2], oh, ow), np.float64 if kind == "avg" else x.dtype)
    for i in range(oh):
        for j in range(ow):
            rows = [r for r in range(i * sh - pt, i * sh - pt + kh) if 0 <= r < h]
            cols = [c for c in range(j * sw - pl, j * sw - pl + kw) if 0 <= c < wd]
            win = x[:, :, rows][:, :, :, cols]
            out[:, :, i, j] = win.max(axis=(2, 3)) if kind == "max" else win.astype(np.float64).mean(axis=(2, 3))
    return out


POOL_PADDINGS = ["VALID", "SAME", 1, ((1, 0), (0, 1))]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("ksize", [2, 3, (2, 3)])
@pytest.mark.parametrize("strides", [None, 1, 2, (1, 2), 3])
@pytest.mark.parametrize("padding", POOL_PADDINGS, ids=["VALID", "SAME", "int", "pairs"])
def test_pool(rng, kind, ksize, strides, padding):
    x = random_array(rng, (2, 3, 7, 8), "float32")
    op = gc.max_pool2d if kind == "max" else gc.avg_pool2d
    want = pool_loops(x, ksize, strides, padding, kind).astype(np.float32)
    check(op(x, ksize, strides, padding), want)


@pytest.mark.parametrize("padding", ["SAME", 1, ((2, 1), (1, 2))])
def test_max_pool_padding_never_wins(rng, padding):
    x = -rng.uniform(5, 10, size=(2, 2, 5, 6))
    y = run(gc.max_pool2d(x, 3, 2, padding))
    assert (y < 0).all()
    check(gc.max_pool2d(x, 3, 2, padding), pool_loops(x, 3, 2, padding, "max"))


@pytest.mark.parametrize("dtype", ["int8", "int32"])
def test_max_pool_padding_never_wins_integers(rng, dtype):
    x = random_array(rng, (1, 2, 5, 5), dtype, -100, -1)
    check(gc.max_pool2d(x, 2, 1, "SAME"), pool_loops(x, 2, 1, "SAME", "max"))
    check(gc.max_pool2d(x, 3, 2, 1), pool_loops(x, 3, 2, 1, "max"))


def test_avg_pool_counts_only_real_elements():
    x = np.ones((1, 1, 3, 3), np.float32)
    check(gc.avg_pool2d(x, 2, 1, "SAME"), np.ones((1, 1, 3, 3), np.float32))
    check(gc.avg_pool2d(x, 3, 1, 1), np.ones((1, 1, 3, 3), np.float32))
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    # in 4, window 3, stride 2, SAME: output 2, one padding row/column at the bottom/right
    want = np.array([[np.mean([0, 1, 2, 4, 5, 6, 8, 9, 10]), np.mean([2, 3, 6, 7, 10, 11])],
                     [np.mean([8, 9, 10, 12, 13, 14]), np.mean([10, 11, 14, 15])]])
    check(gc.avg_pool2d(x, 3, 2, "SAME"), want.reshape(1, 1, 2, 2))


@pytest.mark.parametrize("dtype", ["int32", "int8", "uint8", "bool"])
def test_pool_integer_inputs(rng, dtype):
    x = random_array(rng, (1, 2, 5, 5), dtype, -50, 50)
    check(gc.max_pool2d(x, 2, 1, "SAME"), pool_loops(x, 2, 1, "SAME", "max"))
    # a mean: integers average in float64, as np.mean (and gc.mean) do
    check(gc.avg_pool2d(x, 2, 1, "SAME"), pool_loops(x, 2, 1, "SAME", "avg"))
    assert gc.avg_pool2d(x, 2).dtype == np.mean(x).dtype == gc.mean(x).dtype


def test_pool_unknown_dims(rng):
    x = random_array(rng, (3, 2, 6, 5), "float64")
    p = gc.placeholder("float64", (None, 2, 6, 5))
    check(gc.max_pool2d(p, 2), pool_loops(x, 2, None, "VALID", "max"), {p: x}, (None, 2, 3, 2))
    check(gc.avg_pool2d(p, 3, 2, "SAME"), pool_loops(x, 3, 2, "SAME", "avg"), {p: x}, (None, 2, 3, 3))
    q = gc.placeholder("float64", (None, None, None, 5))
    check(gc.avg_pool2d(q, (2, 3), 1, 1), pool_loops(x, (2, 3), 1, 1, "avg"), {q: x}, (None, None, None, 5))
    check(gc.max_pool2d(q, 2), np.zeros((0, 2, 3, 2)), {q: np.zeros((0, 2, 6, 5))}, (None, None, None, 2))


def test_pool_errors():
    x = np.zeros((1, 1, 4, 4), np.float32)
    for op in (gc.max_pool2d, gc.avg_pool2d):
        with pytest.raises(gc.ShapeError):
            op(x, 2, padding=2)  # padding as large as the window
        with pytest.raises(gc.ShapeError):
            op(x, 3, padding=((0, 3), (0, 0)))
        with pytest.raises(gc.ShapeError):
            op(x, 5)  # window larger than the input
        with pytest.raises(gc.ShapeError):
            op(x[0], 2)
        with pytest.raises(gc.ArgumentError):
            op(x, 0)
        with pytest.raises(gc.ArgumentError):
            op(x, 2, padding="same-ish")


def test_dense_labels_broadcast_like_the_formula_they_stand_for():
    logits = np.random.default_rng(3).standard_normal((4, 5)).astype(np.float32)
    row = np.random.default_rng(4).uniform(0, 1, (1, 5)).astype(np.float32)
    expected = -np.sum(row * (logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))), -1)
    result = run(gc.softmax_cross_entropy(gc.constant(logits), gc.constant(row)))
    np.testing.assert_allclose(result, expected, rtol=1e-5)
    assert result.shape == (4,)
