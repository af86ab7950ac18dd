"""Shape ops and basic slicing against NumPy: values, dtypes, static and run-time shapes, errors."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import graphc as gc
from util import assert_same, random_array, run

pytestmark = pytest.mark.usefixtures("device")  # every test also runs on device="cpu" (see conftest.py)

THIS_FILE = os.path.basename(__file__)


def check(t: gc.Tensor, expected: Any, feeds: dict | None = None, static: tuple | None = None) -> np.ndarray:
    """``t`` has NumPy's dtype, the given static shape (default: ``expected``'s) and runs to ``expected``."""
    expected = np.asarray(expected)
    assert t.dtype == expected.dtype, (t.dtype, expected.dtype)
    assert t.shape == (expected.shape if static is None else static), (t.shape, static, expected.shape)
    result = run(t, feeds)
    assert_same(result, expected)
    return result


def unknown(shape: tuple, known: tuple[int, ...] = ()) -> tuple:
    """``shape`` with every axis not in ``known`` replaced by None."""
    return tuple(d if i in known else None for i, d in enumerate(shape))


# ---- reshape ------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,new", [
    ((2, 3, 4), (6, 4)),
    ((2, 3, 4), (-1,)),
    ((2, 3, 4), (4, -1)),
    ((2, 3, 4), (2, -1, 2)),
    ((2, 3, 4), (1, 24, 1)),
    ((0, 3), (3, 0)),
    ((0, 3), (-1, 3)),
    ((0, 3), (5, -1)),
    ((1,), ()),
    ((), (1, 1)),
    ((), (-1,)),
    ((1, 1, 1), (-1,)),
])
@pytest.mark.parametrize("dtype", ["float32", "int16", "bool"])
def test_reshape(rng, shape, new, dtype):
    x = random_array(rng, shape, dtype)
    check(gc.reshape(x, new), np.reshape(x, new))


def test_reshape_accepts_numpy_ints_and_lists(rng):
    x = random_array(rng, (2, 6), "float64")
    check(gc.reshape(x, [np.int64(3), np.int32(-1)]), x.reshape(3, 4))
    check(gc.reshape(x, 12), x.reshape(12))


@pytest.mark.parametrize("shape,known,new,static", [
    ((5, 3, 4), (1, 2), (-1, 12), (None, 12)),
    ((5, 4), (1,), (-1,), (None,)),
    ((2, 4), (1,), (8,), (8,)),
    ((2, 4), (1,), (2, -1, 2), (2, None, 2)),
    ((2, 4), (), (4, 2), (4, 2)),
    ((0, 4), (1,), (-1, 2), (None, 2)),
    ((3, 4), (1,), (-1, 3), (None, 3)),
    ((2, 3, 2), (0, 2), (-1,), (None,)),
])
def test_reshape_unknown_dims(rng, shape, known, new, static):
    x = random_array(rng, shape, "float32")
    p = gc.placeholder("float32", unknown(shape, known))
    check(gc.reshape(p, new), x.reshape(new), {p: x}, static)


@pytest.mark.parametrize("shape,new", [
    ((2, 3), (4,)),
    ((2, 3), (4, -1)),
    ((2, 3), (5, 2)),
    ((0, 3), (0, -1)),
    ((0, 3), (-1, 0)),
    ((), (2,)),
])
def test_reshape_bad_size(shape, new):
    with pytest.raises(ValueError):  # NumPy refuses these too
        np.reshape(np.zeros(shape), new)
    with pytest.raises(gc.ShapeError):
        gc.reshape(np.zeros(shape), new)


def test_reshape_bad_size_at_run_time():
    p = gc.placeholder("float32", (None, 4))
    y = gc.reshape(p, (8,))
    assert_same(run(y, {p: np.zeros((2, 4), np.float32)}), np.zeros(8, np.float32))
    with pytest.raises(gc.ShapeError):
        run(y, {p: np.zeros((3, 4), np.float32)})


@pytest.mark.parametrize("new", [(-1, -1), (2, -2), (-3,)])
def test_reshape_bad_argument(new):
    with pytest.raises(gc.ArgumentError):
        gc.reshape(np.zeros((2, 3)), new)


def test_reshape_non_integer_shape():
    with pytest.raises(gc.ArgumentError):
        gc.reshape(np.zeros((2, 3)), (2.0, 3))
    with pytest.raises(gc.ArgumentError):
        gc.reshape(np.zeros((2, 3)), (None, 3))


def test_reshape_method(rng):
    x = random_array(rng, (2, 3, 2), "int32")
    t = gc.constant(x)
    check(t.reshape(3, 4), x.reshape(3, 4))
    check(t.reshape((4, 3)), x.reshape((4, 3)))
    check(t.reshape([-1]), x.reshape([-1]))
    check(t.reshape(-1, 2), x.reshape(-1, 2))


# ---- transpose ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 3, 4), (0, 2, 1), (1, 1, 5, 2)])
def test_transpose_default(rng, shape):
    x = random_array(rng, shape, "float64")
    check(gc.transpose(x), np.transpose(x))
    check(gc.constant(x).T, x.T)
    check(gc.constant(x).transpose(), x.transpose())


@pytest.mark.parametrize("shape,perm", [
    ((2, 3), (0, 1)),
    ((2, 3), (1, 0)),
    ((2, 3), (-1, 0)),
    ((2, 3, 4), (1, 0, 2)),
    ((2, 3, 4), (2, 0, 1)),
    ((2, 3, 4), (-1, -3, -2)),
    ((2, 3, 4), [2, -2, 0]),
    ((0, 3, 1), (2, 0, 1)),
    ((2, 1, 3, 1), (3, 1, 0, 2)),
])
@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_transpose_explicit(rng, shape, perm, dtype):
    x = random_array(rng, shape, dtype)
    check(gc.transpose(x, perm), np.transpose(x, perm))


def test_transpose_methods(rng):
    x = random_array(rng, (2, 3, 4), "int64")
    t = gc.constant(x)
    check(t.transpose(1, 0, 2), x.transpose(1, 0, 2))
    check(t.transpose((2, 0, 1)), x.transpose((2, 0, 1)))
    check(t.transpose([-1, 0, 1]), x.transpose([-1, 0, 1]))


def test_transpose_unknown_dims(rng):
    x = random_array(rng, (5, 3, 4), "float32")
    p = gc.placeholder("float32", (None, 3, None))
    check(gc.transpose(p, (2, 0, 1)), x.transpose(2, 0, 1), {p: x}, (None, None, 3))
    check(p.T, x.T, {p: x}, (None, 3, None))
    y = np.zeros((0, 3, 1), np.float32)
    check(gc.transpose(p, (1, 2, 0)), y.transpose(1, 2, 0), {p: y}, (3, None, None))


@pytest.mark.parametrize("perm", [(0, 0, 1), (0, 1), (0, 1, 2, 3), (0, 1, 3), (0, 1, -4), (0, -1, 2),
                                  (0, 1.0, 2), (0, None, 1)])
def test_transpose_bad_perm(perm):
    x = gc.constant(np.zeros((2, 3, 4)))
    with pytest.raises(gc.ArgumentError):
        gc.transpose(x, perm)
    with pytest.raises(gc.ArgumentError):
        x.transpose(perm)


# ---- expand_dims / squeeze ----------------------------------------------------------------------

@pytest.mark.parametrize("shape,axis", [
    ((), 0),
    ((), -1),
    ((3,), 0),
    ((3,), 1),
    ((3,), -1),
    ((2, 3), 1),
    ((2, 3), -2),
    ((2, 3), (0, 2)),
    ((2, 3), (0, -1)),
    ((2, 3), (-1, -2)),
    ((2, 3), (3, 0, 1)),
    ((0, 1), (1, 3)),
])
def test_expand_dims(rng, shape, axis):
    x = random_array(rng, shape, "float32")
    check(gc.expand_dims(x, axis), np.expand_dims(x, axis))


def test_expand_dims_unknown_dims(rng):
    x = random_array(rng, (4, 3), "int32")
    p = gc.placeholder("int32", (None, 3))
    check(gc.expand_dims(p, 0), x[None], {p: x}, (1, None, 3))
    check(gc.expand_dims(p, (1, -1)), x[:, None, :, None], {p: x}, (None, 1, 3, 1))


@pytest.mark.parametrize("shape,axis", [((3,), 2), ((3,), -3), ((2, 3), (0, 4)), ((2, 3), (1, 1))])
def test_expand_dims_bad_axis(shape, axis):
    with pytest.raises(gc.ArgumentError):
        gc.expand_dims(np.zeros(shape), axis)


@pytest.mark.parametrize("shape,axis", [
    ((1, 3, 1), None),
    ((1, 3, 1), 0),
    ((1, 3, 1), -1),
    ((1, 3, 1), (0, 2)),
    ((1, 3, 1), (-1, 0)),
    ((1,), None),
    ((1,), 0),
    ((), None),
    ((3, 4), None),
    ((0, 1), 1),
    ((1, 0, 1), None),
    ((1, 1, 1), (1,)),
])
def test_squeeze(rng, shape, axis):
    x = random_array(rng, shape, "int64")
    check(gc.squeeze(x, axis), np.squeeze(x, axis))


@pytest.mark.parametrize("shape,axis", [((1, 3, 1), 1), ((1, 3, 1), (0, 1)), ((0, 1), 0), ((2,), -1)])
def test_squeeze_non_unit_axis(shape, axis):
    with pytest.raises(ValueError):
        np.squeeze(np.zeros(shape), axis)
    with pytest.raises(gc.ShapeError):
        gc.squeeze(np.zeros(shape), axis)


def test_squeeze_bad_axis():
    with pytest.raises(gc.ArgumentError):
        gc.squeeze(np.zeros((1, 1)), 2)
    with pytest.raises(gc.ArgumentError):
        gc.squeeze(np.zeros((1, 1)), (0, -2))


def test_squeeze_unknown_dims(rng):
    p = gc.placeholder("float32", (None, 1, 3))
    with pytest.raises(gc.ShapeError):
        gc.squeeze(p)
    x = random_array(rng, (4, 1, 3), "float32")
    check(gc.squeeze(p, 1), x[:, 0], {p: x}, (None, 3))
    y = gc.squeeze(p, 0)  # may be 1 at run time
    assert y.shape == (1, 3)
    one = random_array(rng, (1, 1, 3), "float32")
    check(y, one[0], {p: one}, (1, 3))
    with pytest.raises(gc.ShapeError):
        run(y, {p: x})


# ---- broadcast_to -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,target", [
    ((3,), (2, 3)),
    ((1, 3), (4, 3)),
    ((), (2, 2)),
    ((), ()),
    ((2, 1), (2, 0)),
    ((1,), (0,)),
    ((3, 1), (2, 3, 4)),
    ((2, 3), (2, 3)),
    ((1, 1), (1, 1, 1)),
])
@pytest.mark.parametrize("dtype", ["float64", "int8", "bool"])
def test_broadcast_to(rng, shape, target, dtype):
    x = random_array(rng, shape, dtype)
    check(gc.broadcast_to(x, target), np.broadcast_to(x, target))


@pytest.mark.parametrize("shape,target", [((3,), (4,)), ((2, 3), (3,)), ((2, 3), (2, 1)), ((2,), (0,)),
                                          ((2, 1), (3, 4))])
def test_broadcast_to_bad(shape, target):
    with pytest.raises(ValueError):
        np.broadcast_to(np.zeros(shape), target)
    with pytest.raises(gc.ShapeError):
        gc.broadcast_to(np.zeros(shape), target)


@pytest.mark.parametrize("fed,target", [((1,), (1,)), ((1,), (2, 5)), ((5,), (2, 5)), ((3,), (3,)),
                                        ((0,), (4, 0)), ((1,), (0,))])
def test_broadcast_to_unknown_dims(rng, fed, target):
    p = gc.placeholder("float32", (None,))
    x = random_array(rng, fed, "float32")
    check(gc.broadcast_to(p, target), np.broadcast_to(x, target), {p: x}, target)


def test_broadcast_to_negative_target():
    for shape in [(1,), (3,), ()]:
        with pytest.raises(ValueError):
            np.broadcast_to(np.zeros(shape), (-1, 3))
        with pytest.raises(gc.GraphcError):
            gc.broadcast_to(np.zeros(shape), (-1, 3))
    with pytest.raises(gc.GraphcError):
        gc.broadcast_to(np.zeros(1), (-1,))


def test_broadcast_to_unknown_dims_mismatch_at_run_time():
    p = gc.placeholder("float32", (None, 1))
    y = gc.broadcast_to(p, (2, 5, 3))
    assert y.shape == (2, 5, 3)
    with pytest.raises(gc.ShapeError):
        run(y, {p: np.zeros((4, 1), np.float32)})


# ---- concat / stack -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtypes", [
    ("float32", "float32"),
    ("int32", "float32"),
    ("int8", "uint8"),
    ("float32", "float64"),
    ("bool", "int32"),
    ("int16", "int64", "uint8"),
    ("bool", "bool"),
])
def test_concat_promotes_like_numpy(rng, dtypes):
    xs = [random_array(rng, (2, i + 1), dt) for i, dt in enumerate(dtypes)]
    check(gc.concat(xs, axis=1), np.concatenate(xs, axis=1))
    check(gc.concat(xs, axis=-1), np.concatenate(xs, axis=-1))


@pytest.mark.parametrize("shapes,axis", [
    ([(2, 3), (4, 3)], 0),
    ([(2, 3), (2, 1), (2, 0)], 1),
    ([(2, 3), (2, 1)], -1),
    ([(0, 3), (0, 3)], 0),
    ([(0, 3), (2, 3)], -2),
    ([(5,)], 0),
    ([(1, 2, 3), (1, 2, 3), (1, 2, 3)], 2),
    ([(1, 2, 3), (4, 2, 3)], -3),
])
def test_concat(rng, shapes, axis):
    xs = [random_array(rng, s, "float32") for s in shapes]
    check(gc.concat(xs, axis), np.concatenate(xs, axis))
    check(gc.concat([gc.constant(x) for x in xs], axis=axis), np.concatenate(xs, axis=axis))


def test_concat_unknown_dims(rng):
    a = gc.placeholder("float32", (None, 3))
    b = gc.placeholder("float32", (2, None))
    xa, xb = random_array(rng, (4, 3), "float32"), random_array(rng, (2, 3), "float32")
    check(gc.concat([a, b], 0), np.concatenate([xa, xb]), {a: xa, b: xb}, (None, 3))
    check(gc.concat([b, b], 0), np.concatenate([xb, xb]), {b: xb}, (4, None))
    c = gc.placeholder("float32", (None, None))
    xc = random_array(rng, (4, 5), "float32")
    check(gc.concat([a, c], 1), np.concatenate([xa, xc], 1), {a: xa, c: xc}, (None, None))
    check(gc.concat([a, xa], 1), np.concatenate([xa, xa], 1), {a: xa}, (4, 6))
    # the fed shapes must agree off the concat axis
    with pytest.raises(gc.ShapeError):
        run(gc.concat([a, c], 1), {a: xa, c: np.zeros((3, 5), np.float32)})


@pytest.mark.parametrize("shapes,axis", [
    ([(2, 3), (2, 4)], 0),
    ([(2, 3), (3, 3)], 1),
    ([(2, 3), (2, 3, 1)], 0),
    ([(2,), (3, 2)], 0),
])
def test_concat_mismatch(shapes, axis):
    xs = [np.zeros(s, np.float32) for s in shapes]
    with pytest.raises(ValueError):
        np.concatenate(xs, axis)
    with pytest.raises(gc.ShapeError):
        gc.concat(xs, axis)


def test_concat_bad_arguments():
    with pytest.raises(gc.ShapeError):
        gc.concat([np.float32(1), np.float32(2)])
    with pytest.raises(gc.ArgumentError):
        gc.concat([])
    with pytest.raises(gc.ArgumentError):
        gc.concat([np.zeros((2, 3)), np.zeros((2, 3))], axis=2)
    with pytest.raises(gc.ArgumentError):
        gc.concat([np.zeros((2, 3)), np.zeros((2, 3))], axis=-3)


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (0, 2), (1, 1)])
@pytest.mark.parametrize("axis", [0, -1, 1])
def test_stack(rng, shape, axis):
    xs = [random_array(rng, shape, "int32") for _ in range(3)]
    if axis > len(shape):  # stacked scalars have one axis
        with pytest.raises(gc.ArgumentError):
            gc.stack(xs, axis)
        return
    check(gc.stack(xs, axis), np.stack(xs, axis))


def test_stack_promotes_and_single(rng):
    xs = [random_array(rng, (2, 3), "int16"), random_array(rng, (2, 3), "float32")]
    check(gc.stack(xs, 2), np.stack(xs, 2))
    check(gc.stack(xs[:1]), np.stack(xs[:1]))


def test_stack_unknown_dims(rng):
    a = gc.placeholder("float64", (None, 3))
    x = random_array(rng, (4, 3), "float64")
    check(gc.stack([a, a], 1), np.stack([x, x], 1), {a: x}, (None, 2, 3))
    check(gc.stack([a, a, x], 1), np.stack([x, x, x], 1), {a: x}, (4, 3, 3))
    check(gc.stack([x, a], 0), np.stack([x, x], 0), {a: x}, (2, 4, 3))


def test_stack_errors():
    with pytest.raises(gc.ShapeError):
        gc.stack([np.zeros((2, 3)), np.zeros((3, 2))])
    with pytest.raises(gc.ShapeError):
        gc.stack([np.zeros((2, 3)), np.zeros((2, 3, 1))])
    with pytest.raises(gc.ArgumentError):
        gc.stack([])
    with pytest.raises(gc.ArgumentError):
        gc.stack([np.zeros(2), np.zeros(2)], axis=2)


# ---- split --------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,spec,axis", [
    ((6,), 1, 0),
    ((6,), 3, 0),
    ((6,), 6, 0),
    ((4, 6), 2, 1),
    ((4, 6), 3, -1),
    ((4, 6), 4, -2),
    ((0, 2), 3, 0),
    ((6,), [2, 5], 0),
    ((6,), [], 0),
    ((6,), [0], 0),
    ((6,), [-2], 0),
    ((6,), [4, 1], 0),
    ((6,), [3, 10], 0),
    ((6,), (6,), 0),
    ((3, 5), [1, 1, 4], 1),
    ((3, 5), [-4, -1], -1),
])
def test_split(rng, shape, spec, axis):
    x = random_array(rng, shape, "float32")
    parts = gc.split(x, spec, axis)
    expected = np.split(x, spec, axis)
    assert len(parts) == len(expected)
    for part, want in zip(parts, expected):
        check(part, want)


@pytest.mark.parametrize("shape,n,axis", [((5,), 2, 0), ((4, 6), 4, 1), ((3,), 6, 0)])
def test_split_uneven(shape, n, axis):
    with pytest.raises(ValueError):
        np.split(np.zeros(shape), n, axis)
    with pytest.raises(gc.ShapeError):
        gc.split(np.zeros(shape), n, axis)


def test_split_bad_arguments():
    with pytest.raises(gc.ArgumentError):
        gc.split(np.zeros(4), 0)
    with pytest.raises(gc.ArgumentError):
        gc.split(np.zeros(4), 2, axis=1)


def test_split_unknown_dims(rng):
    p = gc.placeholder("float32", (None, 6))
    x = random_array(rng, (5, 6), "float32")
    with pytest.raises(gc.ShapeError):
        gc.split(p, 2)  # equal sections of an unknown axis
    for part, want in zip(gc.split(p, 3, axis=1), np.split(x, 3, axis=1)):
        check(part, want, {p: x}, (None, 2))
    parts = gc.split(p, [1, 3])
    assert [t.shape for t in parts] == [(None, 6)] * 3
    for part, want in zip(parts, np.split(x, [1, 3])):
        check(part, want, {p: x}, (None, 6))


# ---- pad ----------------------------------------------------------------------------------------

PAD_MODES = ["constant", "edge", "reflect", "symmetric"]


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("shape,width", [
    ((3, 4), 1),
    ((3, 4), 0),
    ((3, 4), (1, 2)),
    ((3, 4), [[1, 0], [2, 3]]),
    ((3, 4), ((0, 0), (3, 1))),
    ((3, 4), [(2, 1)]),
    ((5,), 2),
    ((5,), [(0, 4)]),
    ((2, 3, 2), ((1, 1), (0, 2), (1, 0))),
    ((3,), 7),  # wider than the axis: reflect and symmetric repeat
    ((2, 2), (5, 3)),
])
def test_pad(rng, mode, shape, width):
    x = random_array(rng, shape, "float32")
    check(gc.pad(x, width, mode=mode), np.pad(x, width, mode=mode))


@pytest.mark.parametrize("dtype,value", [("float32", 7), ("float32", -1.5), ("float64", 0.25), ("int32", 3),
                                         ("int32", -4), ("uint8", 200), ("bool", True), ("int64", 0)])
def test_pad_constant_values(rng, dtype, value):
    x = random_array(rng, (2, 3), dtype)
    check(gc.pad(x, ((1, 2), (0, 1)), constant_values=value), np.pad(x, ((1, 2), (0, 1)), constant_values=value))
    check(gc.pad(x, 1, "constant", value), np.pad(x, 1, "constant", constant_values=value))


def test_pad_size_zero_and_scalar(rng):
    x = np.zeros((0, 3), np.float32)
    check(gc.pad(x, 1), np.pad(x, 1))
    check(gc.pad(x, ((0, 0), (1, 1)), mode="edge"), np.pad(x, ((0, 0), (1, 1)), mode="edge"))
    for mode in ("edge", "reflect", "symmetric"):
        with pytest.raises(ValueError):
            np.pad(x, 1, mode=mode)
        with pytest.raises(gc.ShapeError):
            gc.pad(x, 1, mode=mode)
    s = np.float32(2.5)
    check(gc.pad(s, 3), np.pad(s, 3))


def test_pad_reflect_size_one_is_refused():
    # NumPy pads a size-1 axis in 'reflect' mode like 'edge' ("legacy behaviour; it really should raise an
    # error", numpy/lib/_arraypad_impl.py); graphc raises instead.
    with pytest.raises(gc.ShapeError):
        gc.pad(np.zeros((1, 3)), 1, mode="reflect")
    check(gc.pad(np.ones((1, 3)), ((0, 0), (2, 1)), mode="reflect"), np.pad(np.ones((1, 3)), ((0, 0), (2, 1)),
                                                                           mode="reflect"))


@pytest.mark.parametrize("mode", PAD_MODES)
def test_pad_unknown_dims(rng, mode):
    p = gc.placeholder("float64", (None, 3))
    x = random_array(rng, (4, 3), "float64")
    width = ((1, 2), (2, 1))
    check(gc.pad(p, width, mode=mode), np.pad(x, width, mode=mode), {p: x}, (None, 6))


def test_pad_unknown_dims_checked_at_run_time():
    p = gc.placeholder("float32", (None, 3))
    y = gc.pad(p, 1, mode="reflect")
    assert y.shape == (None, 5)
    with pytest.raises(gc.ShapeError):
        run(y, {p: np.zeros((1, 3), np.float32)})
    with pytest.raises(gc.ShapeError):
        run(gc.pad(p, 1, mode="edge"), {p: np.zeros((0, 3), np.float32)})


def test_pad_bad_arguments():
    x = np.zeros((2, 3))
    for width in [-1, (1, -1), ((1, 1), (1, 1), (1, 1)), ((1, 2, 3),), 1.5, [[1, 2], [3, 4], [5, 6]]]:
        with pytest.raises(gc.ArgumentError):
            gc.pad(x, width)
    with pytest.raises(gc.ArgumentError):
        gc.pad(x, 1, mode="wrap")
    with pytest.raises(gc.ArgumentError):
        gc.pad(x, 1, constant_values=[1, 2])


# ---- take ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,indices,axis", [
    ((3, 4), 5, None),
    ((3, 4), -1, None),
    ((3, 4), [0, 11, -12, 5], None),
    ((3, 4), [[1, 2], [3, -1]], None),
    ((3, 4), [2, 0, 2], 0),
    ((3, 4), [-1, -3], 0),
    ((3, 4), [[0, 1, 3], [-1, -2, 0]], 1),
    ((3, 4), 1, -1),
    ((3, 4), [[[2]]], -2),
    ((2, 3, 4), [1, 0], 1),
    ((2, 3, 4), [[0], [1]], -1),
    ((5,), [], 0),
    ((0, 3), [], 0),
    ((0, 3), [2, -3], 1),
    ((1,), [0, 0, -1], 0),
])
@pytest.mark.parametrize("index_dtype", ["int64", "int32", "int8"])
def test_take(rng, shape, indices, axis, index_dtype):
    x = random_array(rng, shape, "float32")
    idx = np.asarray(indices, dtype=index_dtype)
    check(gc.take(x, idx, axis=axis), np.take(x, idx, axis=axis))


def test_take_from_scalar_and_size_one():
    check(gc.take(np.float32(3), 0), np.take(np.float32(3), 0))
    check(gc.take(np.float32(3), [[0, -1]]), np.take(np.float32(3), [[0, -1]]))
    with pytest.raises(gc.ExecutionError):
        run(gc.take(np.float32(3), [1]))


def test_take_python_list_and_uint8(rng):
    x = random_array(rng, (4, 3), "int16")
    check(gc.take(x, [3, -4], 0), np.take(x, [3, -4], 0))
    idx = np.array([2, 0, 1], np.uint8)
    check(gc.take(x, idx, axis=1), np.take(x, idx, axis=1))


def test_take_unknown_dims(rng):
    p = gc.placeholder("float32", (None, 4))
    i = gc.placeholder("int64", (None,))
    x = random_array(rng, (5, 4), "float32")
    idx = np.array([0, -1, 2])
    check(gc.take(p, [0, -1], axis=1), np.take(x, [0, -1], axis=1), {p: x}, (None, 2))
    check(gc.take(p, i, axis=0), np.take(x, idx, axis=0), {p: x, i: idx}, (None, 4))
    check(gc.take(p, i), np.take(x, idx), {p: x, i: idx}, (None,))
    check(gc.take(x, i, axis=-1), np.take(x, idx, axis=-1), {i: idx}, (5, None))


@pytest.mark.parametrize("indices,axis", [([3], 0), ([-4], 0), ([0, 12], None), ([-13], None), ([4], 1)])
def test_take_out_of_range_at_run_time(indices, axis):
    x = gc.placeholder("float32", (3, 4))
    y = gc.take(x, np.array(indices), axis=axis)  # builds fine: indices are checked when the graph runs
    with pytest.raises(gc.ExecutionError) as info:
        run(y, {x: np.zeros((3, 4), np.float32)})
    assert THIS_FILE in str(info.value)


def test_take_out_of_range_fed_indices():
    i = gc.placeholder("int32", (None,))
    y = gc.take(np.arange(5.0), i)
    assert_same(run(y, {i: np.array([4, -5], np.int32)}), np.array([4.0, 0.0]))
    with pytest.raises(gc.ExecutionError) as info:
        run(y, {i: np.array([0, 5], np.int32)})
    assert THIS_FILE in str(info.value)


def test_take_errors():
    with pytest.raises(gc.DTypeError):
        gc.take(np.zeros(3), np.array([0.0, 1.0]))
    with pytest.raises(gc.DTypeError):
        gc.take(np.zeros(3), np.array([True]))
    with pytest.raises(gc.ArgumentError):
        gc.take(np.zeros((2, 3)), [0], axis=2)


# ---- one_hot ------------------------------------------------------------------------------------

def one_hot_loops(indices: np.ndarray, depth: int, dtype: Any) -> np.ndarray:
    """TensorFlow's one_hot, written out: row i has a 1 at indices[i] if 0 <= indices[i] < depth."""
    flat = indices.reshape(-1)
    out = np.zeros((flat.size, depth), dtype)
    for row, k in enumerate(flat):
        if 0 <= k < depth:
            out[row, k] = 1
    return out.reshape(*indices.shape, depth)


@pytest.mark.parametrize("indices,depth", [
    ([0, 2, 1, 3], 4),
    ([0, 2, -1, 4, 7, -5], 4),
    ([[0, 1], [2, 5]], 3),
    (3, 5),
    (-1, 2),
    ([], 3),
    ([0, 1], 0),
    ([[[1]]], 1),
])
@pytest.mark.parametrize("dtype", [None, "float64", "int32", gc.bool_, np.uint8])
def test_one_hot(indices, depth, dtype):
    idx = np.asarray(indices, np.int64)
    y = gc.one_hot(idx, depth) if dtype is None else gc.one_hot(idx, depth, dtype=dtype)
    check(y, one_hot_loops(idx, depth, np.float32 if dtype is None else dtype))


@pytest.mark.parametrize("index_dtype", ["int8", "uint8", "int16", "int32"])
def test_one_hot_index_dtypes(rng, index_dtype):
    idx = random_array(rng, (3, 4), index_dtype, low=-2, high=6)
    check(gc.one_hot(idx, 5, "int64"), one_hot_loops(idx, 5, np.int64))


def test_one_hot_unknown_dims():
    p = gc.placeholder("int32", (None, 2))
    idx = np.array([[0, 3], [-1, 2], [1, 1]], np.int32)
    check(gc.one_hot(p, 3), one_hot_loops(idx, 3, np.float32), {p: idx}, (None, 2, 3))


def test_one_hot_errors():
    with pytest.raises(gc.DTypeError):
        gc.one_hot(np.array([0.0, 1.0]), 3)
    with pytest.raises(gc.ArgumentError):
        gc.one_hot(np.array([0, 1]), -1)
    with pytest.raises(gc.DTypeError):
        gc.one_hot(np.array([0, 1]), 3, dtype="complex64")


# ---- basic slicing ------------------------------------------------------------------------------

S = np.s_
INDICES = [
    S[0], S[-1], S[3], S[-4], S[1, 2], S[-1, -2, -3], S[1, 2, 3],
    S[:], S[1:3], S[::-1], S[3:0:-2], S[-1::-1], S[10::-1], S[-10:10], S[3:1], S[::2, ::-3, 1::4],
    S[:, 2], S[:, :, -1], S[:, -5], S[1:, :-1, ::-2],
    S[None], S[None, None], S[:, None], S[..., None], S[None, ..., None],
    S[...], S[..., 0], S[0, ...], S[0, ..., -1], S[..., 1, :], S[:, ..., 2],
    S[None, 1, ..., ::2], S[1, ::-3, None, -1], S[np.int64(2)], S[np.int32(-1), np.uint8(1)], (),
    S[-2:, None, 4:1:-1, ...], S[..., ::-1, None, :0], S[np.int64(1):np.int32(3), ::np.int8(-2)],
    S[5:-10:-1], S[-100:100:3, 100:-100:-4],
]


@pytest.mark.parametrize("index", INDICES, ids=[str(i) for i in range(len(INDICES))])
def test_getitem_static(rng, index):
    x = random_array(rng, (4, 5, 6), "float32")
    check(gc.constant(x)[index], x[index])


@pytest.mark.parametrize("shape,index", [
    ((0, 3), S[:, 1]),
    ((0, 3), S[::-1]),
    ((0, 3), S[1:]),
    ((0, 3), S[..., None, ::-2]),
    ((3, 0), S[-1]),
    ((3, 0), S[:, ::-1]),
    ((1, 1), S[0]),
    ((1, 1), S[-1, 0]),
    ((1, 1), S[::-1, 1:]),
    ((1,), S[-1:]),
    ((), S[()]),
    ((), S[None]),
    ((), S[...]),
    ((), S[None, ..., None]),
])
@pytest.mark.parametrize("dtype", ["int32", "bool"])
def test_getitem_small_sizes(rng, shape, index, dtype):
    x = random_array(rng, shape, dtype)
    check(gc.constant(x)[index], x[index])


@pytest.mark.parametrize("index,static", [
    (S[0], (5, None)),
    (S[-1], (5, None)),
    (S[:, 1:3], (None, 2, None)),
    (S[::-1, ::-2, 1:], (None, 3, None)),
    (S[..., -1], (None, 5)),
    (S[None, :, 4], (1, None, None)),
    (S[1:, None, -1, ::-1], (None, 1, None)),
    (S[3, -5, -6], ()),
    (S[...], (None, 5, None)),
    (S[:, ::-1, None, 0], (None, 5, 1)),
    (S[5:-10:-1, :, -100:100:3], (None, 5, None)),
    (S[:2, 1:3, 100:-100:-4], (None, 2, None)),
])
@pytest.mark.parametrize("fed", [(4, 5, 6), (7, 5, 9)])
def test_getitem_unknown_dims(rng, index, static, fed):
    p = gc.placeholder("float64", (None, 5, None))
    x = random_array(rng, fed, "float64")
    check(p[index], x[index], {p: x}, static)


def random_index(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple:
    """A random basic index for ``shape``: in-range ints, slices (any bounds and steps), None, one Ellipsis."""
    items: list[Any] = []
    axes = list(shape)
    use_ellipsis = rng.random() < 0.3
    skip = int(rng.integers(0, len(axes) + 1)) if use_ellipsis else 0
    ellipsis_at = int(rng.integers(0, len(axes) - skip + 1)) if use_ellipsis else -1
    consumed = len(axes) - skip if use_ellipsis else int(rng.integers(0, len(axes) + 1))
    for k in range(consumed):
        if k == ellipsis_at:
            items.append(Ellipsis)
        while rng.random() < 0.2:
            items.append(None)
        d = axes[k + skip if k >= ellipsis_at >= 0 else k]
        if d and rng.random() < 0.3:
            items.append(int(rng.integers(-d, d)))
        else:
            bound = [None, *range(-6, 7)]
            step = [None, 1, 2, 3, -1, -2, -3][int(rng.integers(0, 7))]
            items.append(slice(bound[int(rng.integers(0, 14))], bound[int(rng.integers(0, 14))], step))
    if use_ellipsis and ellipsis_at == consumed:
        items.append(Ellipsis)
    if rng.random() < 0.2:
        items.append(None)
    return tuple(items)


def static_shape_of_index(ndim: int, index: tuple) -> tuple:
    """The static shape ``x[index]`` has when every dim of the rank-``ndim`` ``x`` is unknown."""
    consumed = sum(1 for i in index if i is not None and i is not Ellipsis)
    out: list[Any] = []
    for item in index:
        if item is Ellipsis:
            out += [None] * (ndim - consumed)
        elif item is None:
            out.append(1)
        elif isinstance(item, slice):
            out.append(None)
    if Ellipsis not in index:
        out += [None] * (ndim - consumed)
    return tuple(out)


def test_getitem_random_indices():
    rng = np.random.default_rng(1234)
    for _ in range(150):
        shape = tuple(int(d) for d in rng.integers(0, 5, size=int(rng.integers(0, 4))))
        x = random_array(rng, shape, "int16")
        index = random_index(rng, shape)
        want = x[index]
        check(gc.constant(x)[index], want)
        p = gc.placeholder("int16", (None,) * len(shape))
        check(p[index], want, {p: x}, static_shape_of_index(len(shape), index))


@pytest.mark.parametrize("index", [S[:0], S[1:, ::-1], S[..., 1:]])
def test_getitem_unknown_dims_size_zero(rng, index):
    p = gc.placeholder("float32", (None, None))
    for fed in [(0, 3), (2, 0), (0, 0)]:
        x = np.zeros(fed, np.float32)
        check(p[index], x[index], {p: x}, (None, None))


@pytest.mark.parametrize("index", [S[4], S[-5], S[0, 5], S[0, -6], S[..., 6], S[None, :, :, -7], S[:, 9, 0]])
def test_getitem_out_of_range_static(index):
    x = gc.placeholder("float32", (4, 5, 6))
    with pytest.raises(IndexError):
        np.zeros((4, 5, 6))[index]
    with pytest.raises(gc.ShapeError):
        x[index]


def test_getitem_out_of_range_static_size_zero():
    with pytest.raises(gc.ShapeError):
        gc.constant(np.zeros((0, 3)))[0]
    with pytest.raises(gc.ShapeError):
        gc.constant(np.zeros((2, 0)))[:, -1]


@pytest.mark.parametrize("index,fed", [(S[4], (4, 5, 6)), (S[-5], (4, 5, 6)), (S[0], (0, 5, 6)),
                                       (S[:, :, 6], (4, 5, 6)), (S[..., -2], (4, 5, 1))])
def test_getitem_out_of_range_unknown_dim_at_run_time(index, fed):
    p = gc.placeholder("float32", (None, 5, None))
    y = p[index]  # the size is unknown here: checked when the graph runs
    with pytest.raises(gc.ExecutionError) as info:
        run(y, {p: np.zeros(fed, np.float32)})
    assert THIS_FILE in str(info.value)


@pytest.mark.parametrize("index", [
    [0, 1],
    np.array([0, 1]),
    np.array([True, False, True, False]),
    S[[0, 1], :],
    S[:, np.array([1, 2])],
    True,
    S[0, False],
])
def test_advanced_indexing_refused(index):
    x = gc.constant(np.zeros((4, 5)))
    with pytest.raises(gc.GraphcError, match="take"):
        x[index]


def test_tensor_index_refused():
    x = gc.constant(np.zeros((4, 5)))
    i = gc.constant(np.array([0, 1]))
    with pytest.raises(gc.GraphcError, match="take"):
        x[i]
    with pytest.raises(gc.GraphcError, match="take"):
        x[:, i]


def test_getitem_variable(rng):
    x = random_array(rng, (3, 4), "float32")
    v = gc.Variable(x)
    check(v[1:, ::-1], x[1:, ::-1])
    check(v[-1], x[-1])
    rows = list(v)
    assert len(rows) == 3
    for value, want in zip(run(rows), x):
        assert_same(value, want)


def test_getitem_bad_indices():
    x = gc.constant(np.zeros((4, 5)))
    with pytest.raises(gc.ArgumentError):
        x[..., 0, ...]
    with pytest.raises(gc.ArgumentError):
        x[::0]
    with pytest.raises(gc.ArgumentError):
        x[1.0]
    with pytest.raises(gc.ArgumentError):
        x[0.5:2]
    with pytest.raises(gc.ShapeError):
        x[0, 0, 0]
    with pytest.raises(gc.ShapeError):
        gc.constant(np.float32(1))[0]


# ---- iteration ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3,), (3, 2), (1, 2, 2), (0, 4)])
def test_iteration(rng, shape):
    x = random_array(rng, shape, "float32")
    t = gc.constant(x)
    rows = list(t)
    assert len(rows) == len(t) == shape[0]
    for row, want in zip(rows, x):
        assert row.shape == want.shape
    values = run(rows)
    assert len(values) == shape[0]
    for value, want in zip(values, x):
        assert_same(value, want)


def test_iteration_placeholder_with_known_first_dim(rng):
    p = gc.placeholder("int32", (2, None))
    x = random_array(rng, (2, 3), "int32")
    a, b = p
    assert a.shape == b.shape == (None,)
    check(b - a, x[1] - x[0], {p: x}, (None,))


def test_iteration_needs_a_known_first_dim():
    with pytest.raises(gc.GraphcError):
        list(gc.placeholder("float32", (None, 3)))
    with pytest.raises(gc.GraphcError):
        list(gc.constant(np.float32(1)))
    with pytest.raises(gc.GraphcError):
        len(gc.placeholder("float32", (None, 3)))


def test_concat_and_stack_convert_python_values_like_numpy_arrays() -> None:
    # np.concatenate / np.stack turn Python scalars and lists into float64 arrays (not weak scalars)
    assert_same(run(gc.stack([1.0, np.float32(2)])), np.stack([1.0, np.float32(2)]))
    assert_same(run(gc.concat([np.zeros(2, np.float32), [1.5]])), np.concatenate([np.zeros(2, np.float32), [1.5]]))


def test_pad_constant_that_does_not_fit_the_dtype_is_refused() -> None:
    with pytest.raises(gc.DTypeError, match="300.*int8"):
        gc.pad(gc.constant(np.zeros(2, np.int8)), 1, constant_values=300)
    assert_same(run(gc.pad(gc.constant(np.zeros(1, np.int8)), 1, constant_values=-5)),
                np.pad(np.zeros(1, np.int8), 1, constant_values=-5))


def test_expand_dims_and_squeeze_nodes_are_named_after_the_call() -> None:
    x = gc.placeholder("float32", (2, 1), name="named")
    assert gc.expand_dims(x, 0).name.startswith("expand_dims")
    assert gc.squeeze(x, 1).name.startswith("squeeze")
