"""Gradients of conv2d, max_pool2d and avg_pool2d (and of their adjoint ops) against central finite
differences, first and second order; the adjoint identities; tie and padding rules of max pooling;
unknown batch dims."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import graphc as gc
from graphc.ir.build import constant, make_node
from util import FUSION, assert_paths_agree, check_grad, function, run

pytestmark = pytest.mark.usefixtures("device")  # every test also runs on device="cpu" (see conftest.py)

RNG = np.random.default_rng(7)
ORDER2 = {"rtol": 1e-4, "atol": 1e-6}

STRIDES = [1, 2, (2, 1), 3]
PADDINGS = ["VALID", "SAME", 1, ((0, 1), (2, 0))]
KERNELS = [(1, 1), (2, 3), (3, 3)]


def normal(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape)


def distinct(*shape: int) -> np.ndarray:
    """Values at least 0.1 apart, so finite differences never cross a tie in max pooling."""
    size = int(np.prod(shape))
    return (RNG.permutation(size) * 0.1 - size * 0.05).reshape(shape)


def pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


def pads_of(padding: Any, size: int, k: int, stride: int, axis: int) -> tuple[int, int]:
    if padding == "VALID":
        return 0, 0
    if padding == "SAME":
        total = max((-(-size // stride) - 1) * stride + k - size, 0)
        return total // 2, total - total // 2
    return (padding, padding) if isinstance(padding, int) else tuple(padding[axis])  # type: ignore[return-value]


# ---- conv2d -------------------------------------------------------------------------------------

@pytest.mark.parametrize("ksize", KERNELS, ids=str)
@pytest.mark.parametrize("padding", PADDINGS, ids=str)
@pytest.mark.parametrize("strides", STRIDES, ids=str)
def test_conv2d_first_order(strides, padding, ksize):
    check_grad(lambda x, w: gc.conv2d(x, w, strides, padding), [normal(2, 2, 5, 6), normal(3, 2, *ksize)])


@pytest.mark.parametrize(("strides", "padding", "ksize"), [
    (1, "VALID", (3, 3)), (2, "SAME", (2, 3)), ((2, 1), 1, (3, 3)), (3, ((0, 1), (2, 0)), (2, 3)),
    (1, "SAME", (1, 1)), (2, ((1, 0), (0, 2)), (3, 2)),
], ids=str)
def test_conv2d_second_order(strides, padding, ksize):
    # squaring makes the second derivative non-trivial: it runs the adjoints' own gradient rules
    x, w = normal(2, 2, 5, 6), normal(3, 2, *ksize)
    check_grad(lambda x, w: gc.square(gc.conv2d(x, w, strides, padding)), [x, w], order=2, **ORDER2)
    check_grad(lambda x, w: gc.tanh(gc.conv2d(x, w, strides, padding)), [x, w], order=2, **ORDER2)


@pytest.mark.parametrize(("xshape", "wshape", "strides", "padding"), [
    ((1, 1, 1, 1), (2, 1, 1, 1), 1, "VALID"),  # size-1 spatial dims
    ((1, 2, 1, 4), (1, 2, 1, 3), 2, "SAME"),
    ((2, 1, 1, 1), (1, 1, 3, 3), 1, "SAME"),  # kernel larger than the input, SAME pads it
    ((1, 1, 7, 7), (1, 1, 2, 2), 5, "VALID"),  # strides larger than the kernel skip rows
    ((1, 1, 6, 6), (1, 1, 2, 2), 3, ((0, 1), (1, 0))),  # explicit padding the windows never reach
])
def test_conv2d_edge_shapes(xshape, wshape, strides, padding):
    check_grad(lambda x, w: gc.conv2d(x, w, strides, padding), [normal(*xshape), normal(*wshape)])
    check_grad(lambda x, w: gc.square(gc.conv2d(x, w, strides, padding)), [normal(*xshape), normal(*wshape)],
               order=2, **ORDER2)


@pytest.mark.parametrize("strides", STRIDES, ids=str)
@pytest.mark.parametrize("padding", [*PADDINGS, ((2, 0), (0, 3))], ids=str)
def test_conv2d_adjoint_identities(strides, padding):
    """<g, conv2d(x, w)> = <conv2d_grad_input(g, w), x> = <conv2d_grad_weight(x, g), w>."""
    for xshape, ksize in [((2, 3, 7, 5), (3, 2)), ((1, 2, 4, 9), (1, 4))]:
        x, w = normal(*xshape), normal(4, xshape[1], *ksize)
        y = gc.conv2d(x, w, strides, padding)
        g = normal(*y.shape)
        attrs = y.attrs
        dx = make_node("conv2d_grad_input", [constant(g), constant(w), constant(x)], **attrs)
        dw = make_node("conv2d_grad_weight", [constant(x), constant(g), constant(w)], **attrs)
        yv, dxv, dwv = run([y, dx, dw])
        assert dxv.shape == x.shape and dwv.shape == w.shape
        total = np.sum(g * yv)
        np.testing.assert_allclose([np.sum(dxv * x), np.sum(dwv * w)], [total, total], rtol=1e-12)


def test_conv2d_adjoint_ops_gradients():
    """Each adjoint op's own rule, checked directly in each argument."""
    x, w = normal(2, 2, 5, 6), normal(3, 2, 2, 3)
    attrs = {"strides": (2, 1), "padding": "SAME"}
    g = normal(*gc.conv2d(x, w, **attrs).shape)
    check_grad(lambda g, w: make_node("conv2d_grad_input", [g, w, constant(x)], **attrs), [g, w])
    check_grad(lambda x, g: make_node("conv2d_grad_weight", [x, g, constant(w)], **attrs), [x, g])
    check_grad(lambda g, w: gc.square(make_node("conv2d_grad_input", [g, w, constant(x)], **attrs)), [g, w],
               order=2, **ORDER2)
    check_grad(lambda x, g: gc.square(make_node("conv2d_grad_weight", [x, g, constant(w)], **attrs)), [x, g],
               order=2, **ORDER2)


def test_conv2d_gradient_dtype_and_shapes():
    x = gc.placeholder("float32", (None, 3, None, 8))
    w = gc.Variable(normal(4, 3, 3, 3).astype(np.float32))
    gx, gw = gc.grad(gc.sum(gc.conv2d(x, w, 2, "SAME")), [x, w])
    assert (gx.dtype, gx.shape, gw.dtype, gw.shape) == (np.float32, (None, 3, None, 8), np.float32, (4, 3, 3, 3))
    xv = normal(2, 3, 5, 8).astype(np.float32)
    f = function([x], [gx, gw])
    gxv, gwv = f(xv)
    f64 = function([x], gc.grad(gc.sum(gc.conv2d(gc.cast(x, "float64"), gc.cast(w, "float64"), 2, "SAME")), x))
    np.testing.assert_allclose(gxv, f64(xv), rtol=1e-5)
    assert gwv.shape == (4, 3, 3, 3)


# ---- pooling ------------------------------------------------------------------------------------

POOLS = [
    (2, None, "VALID"), (3, 2, "SAME"), (2, 1, "SAME"), ((3, 2), (1, 2), 1), (2, 3, "VALID"),  # strides > kernel
    (3, (2, 1), ((2, 0), (1, 1))), ((1, 3), 2, "SAME"), (4, 3, "SAME"),
]


@pytest.mark.parametrize(("ksize", "strides", "padding"), POOLS, ids=str)
def test_max_pool2d(ksize, strides, padding):
    x = distinct(2, 2, 6, 7)
    check_grad(lambda x: gc.max_pool2d(x, ksize, strides, padding), [x])
    check_grad(lambda x: gc.square(gc.max_pool2d(x, ksize, strides, padding)), [x], order=2, **ORDER2)


@pytest.mark.parametrize(("ksize", "strides", "padding"), POOLS, ids=str)
def test_avg_pool2d(ksize, strides, padding):
    x = normal(2, 2, 6, 7)
    check_grad(lambda x: gc.avg_pool2d(x, ksize, strides, padding), [x])
    check_grad(lambda x: gc.square(gc.avg_pool2d(x, ksize, strides, padding)), [x], order=2, **ORDER2)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 1, 1, 5), (1, 2, 3, 1)])
def test_pool_size_one_dims(shape):
    x = distinct(*shape)
    for pool in (gc.max_pool2d, gc.avg_pool2d):
        check_grad(lambda x, pool=pool: gc.square(pool(x, 2, 1, "SAME")), [x], order=2, **ORDER2)
        check_grad(lambda x, pool=pool: pool(x, (1, 1), 2, "VALID"), [x])


def test_pool_adjoint_ops_gradients():
    x, dy = distinct(2, 2, 5, 6), normal(2, 2, 5, 6)
    attrs = {"ksize": (3, 2), "strides": (2, 1), "padding": "SAME"}
    g = normal(*gc.max_pool2d(x, **attrs).shape)
    check_grad(lambda g: make_node("max_pool2d_grad", [g, constant(x)], **attrs), [g])
    check_grad(lambda dy: make_node("max_pool2d_select", [dy, constant(x)], **attrs), [dy])
    check_grad(lambda g: make_node("avg_pool2d_grad", [g, constant(x)], **attrs), [g])
    check_grad(lambda dy: gc.square(make_node("max_pool2d_select", [dy, constant(x)], **attrs)), [dy],
               order=2, **ORDER2)
    check_grad(lambda g: gc.square(make_node("avg_pool2d_grad", [g, constant(x)], **attrs)), [g], order=2, **ORDER2)
    # the routing is piecewise constant: nothing flows to x through max_pool2d_grad
    xt = gc.placeholder("float64", x.shape)
    gx = gc.grad(gc.sum(make_node("max_pool2d_grad", [constant(g), xt], **attrs)), xt)
    np.testing.assert_array_equal(run(gx, {xt: x}), np.zeros_like(x))


@pytest.mark.parametrize(("ksize", "strides", "padding"), POOLS, ids=str)
def test_pool_adjoint_identities(ksize, strides, padding):
    x, dy = distinct(2, 3, 6, 7), normal(2, 3, 6, 7)
    attrs = gc.max_pool2d(x, ksize, strides, padding).attrs
    g = normal(*gc.max_pool2d(x, ksize, strides, padding).shape)
    pick = make_node("max_pool2d_select", [constant(dy), constant(x)], **attrs)
    scatter = make_node("max_pool2d_grad", [constant(g), constant(x)], **attrs)
    spread = make_node("avg_pool2d_grad", [constant(g), constant(x)], **attrs)
    pickv, scatterv, spreadv, avgv = run([pick, scatter, spread, gc.avg_pool2d(dy, ksize, strides, padding)])
    np.testing.assert_allclose(np.sum(g * pickv), np.sum(scatterv * dy), rtol=1e-12)
    np.testing.assert_allclose(np.sum(g * avgv), np.sum(spreadv * dy), rtol=1e-12)


def max_pool_grad_loops(g: np.ndarray, x: np.ndarray, ksize: Any, strides: Any, padding: Any) -> np.ndarray:
    """Each window's gradient to its first maximum in row-major order, skipping padding."""
    (kh, kw), (sh, sw) = pair(ksize), pair(strides)
    top, _ = pads_of(padding, x.shape[2], kh, sh, 0)
    left, _ = pads_of(padding, x.shape[3], kw, sw, 1)
    out = np.zeros_like(x)
    for n, c, i, j in itertools.product(*map(range, g.shape)):
        best = None
        for a, b in itertools.product(range(kh), range(kw)):
            r, s = i * sh + a - top, j * sw + b - left
            if 0 <= r < x.shape[2] and 0 <= s < x.shape[3] and (best is None or x[n, c, r, s] > x[n, c][best]):
                best = (r, s)
        out[n, c][best] += g[n, c, i, j]
    return out


@pytest.mark.parametrize("values", ["ties", "all_equal", "minus_inf"])
@pytest.mark.parametrize(("ksize", "strides", "padding"), [(3, 2, "SAME"), (3, 1, 1), (2, 2, ((1, 1), (0, 1)))],
                         ids=str)
def test_max_pool2d_ties_go_to_first_maximum_never_padding(values, ksize, strides, padding):
    x = {"ties": RNG.integers(0, 3, (2, 2, 5, 6)).astype(np.float64),
         "all_equal": np.zeros((2, 2, 5, 6)),
         "minus_inf": np.full((2, 2, 5, 6), -np.inf)}[values]
    xt = gc.placeholder("float64", x.shape)
    y = gc.max_pool2d(xt, ksize, strides, padding)
    g = normal(*y.shape)
    got = run(gc.grad(y, xt, grad_ys=g), {xt: x})
    # which element each window's gradient goes to is exact; the loops here add overlapping windows in
    # their own order, so sums may differ from graphc's (the reference's order) in the last bits
    np.testing.assert_allclose(got, max_pool_grad_loops(g, x, ksize, strides, padding), rtol=1e-14,
                               atol=8 * np.finfo(np.float64).eps)
    # select reads the same positions that max_pool2d_grad writes
    picked = run(make_node("max_pool2d_select", [constant(x), constant(x)], **y.attrs))
    np.testing.assert_array_equal(picked, run(y, {xt: x}))


def test_avg_pool2d_grad_counts_only_real_elements():
    x = gc.placeholder("float64", (1, 1, 3, 3))
    gx = run(gc.grad(gc.sum(gc.avg_pool2d(x, 3, 1, 1)), x), {x: np.zeros((1, 1, 3, 3))})
    # windows (centred on each element) hold 4 (corner), 6 (edge) or 9 (centre) real elements
    counts = np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4.0]])
    want = np.array([[sum(1 / counts[r, s] for r in range(3) for s in range(3)
                          if abs(r - i) <= 1 and abs(s - j) <= 1) for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(gx[0, 0], want, rtol=1e-12)


# ---- composition and unknown dims -----------------------------------------------------------------

def test_conv_relu_pool_mean_composes():
    def net(x, w):
        return gc.mean(gc.max_pool2d(gc.relu(gc.conv2d(x, w, 1, "SAME")), 2, 2, "SAME"))

    x, w = normal(2, 3, 5, 5), normal(4, 3, 3, 3)
    check_grad(net, [x, w])
    check_grad(lambda x, w: gc.mean(gc.avg_pool2d(gc.tanh(gc.conv2d(x, w, 2, 1)), 2, 1, "SAME")), [x, w],
               order=2, **ORDER2)
    check_grad(lambda x, w: gc.mean(gc.max_pool2d(gc.tanh(gc.conv2d(x, w, 1, "SAME")), 3, 2, "SAME")), [x, w],
               order=2, **ORDER2)


def _network(x: gc.Tensor, w: gc.Tensor) -> list[gc.Tensor]:
    h = gc.relu(gc.conv2d(x, w, (2, 1), "SAME"))
    loss = gc.mean(gc.square(gc.max_pool2d(h, 3, 2, "SAME"))) + gc.mean(gc.avg_pool2d(gc.tanh(h), 2, 1, 1))
    gx, gw = gc.grad(loss, [x, w])
    second = gc.grad(gc.sum(gc.square(gx)) + gc.sum(gc.square(gw)), [x, w])  # second order too
    return [loss, gx, gw, *second]


def test_gradients_with_unknown_batch_match_static_shapes():
    xv, wv = normal(3, 2, 7, 6), normal(4, 2, 3, 2)
    x, w = gc.placeholder("float64", (None, 2, 7, 6)), gc.placeholder("float64", (4, 2, 3, 2))
    dynamic = _network(x, w)
    assert dynamic[1].shape == (None, 2, 7, 6) and dynamic[3].shape == (None, 2, 7, 6)
    assert dynamic[2].shape == dynamic[4].shape == (4, 2, 3, 2)
    xs, ws = gc.placeholder("float64", xv.shape), gc.placeholder("float64", wv.shape)
    static = _network(xs, ws)
    want = function([xs, ws], static)(xv, wv)
    got = function([x, w], dynamic)(xv, wv)
    # another graph (static shapes fold sum_to into sums...), so other kernels: within the promise
    assert_paths_agree(got, want, static, {xs: xv, ws: wv}, FUSION)
    # another batch size through the same compiled function
    got = function([x, w], dynamic)(xv[:1], wv)
    want = function([xs, ws], _network(xs, ws))(np.concatenate([xv[:1]] * 3), wv)
    np.testing.assert_allclose(got[1], want[1][:1] * 3, rtol=1e-12)  # mean over 3x the batch
    empty = function([x, w], dynamic[1:])(xv[:0], wv)  # an empty batch
    assert [a.shape for a in empty] == [(0, 2, 7, 6), (4, 2, 3, 2), (0, 2, 7, 6), (4, 2, 3, 2)]


def test_adjoint_shape_errors():
    g, w, x = (constant(np.zeros(s)) for s in [(1, 4, 3, 3), (4, 3, 3, 3), (1, 3, 5, 5)])
    make_node("conv2d_grad_input", [g, w, x], strides=(1, 1), padding="VALID")
    with pytest.raises(gc.ShapeError):
        make_node("conv2d_grad_input", [g, w, x], strides=(2, 2), padding="VALID")  # g is not conv2d's output
    with pytest.raises(gc.ShapeError):
        make_node("conv2d_grad_weight", [x, g, constant(np.zeros((4, 3, 2, 2)))], strides=(1, 1), padding="VALID")
    with pytest.raises(gc.DTypeError):
        make_node("conv2d_grad_input", [constant(np.zeros((1, 4, 3, 3), np.float32)), w, x], strides=(1, 1),
                  padding="VALID")
    with pytest.raises(gc.ShapeError):
        make_node("max_pool2d_grad", [g, x], ksize=(2, 2), strides=(2, 2), padding="VALID")
    with pytest.raises(gc.ShapeError):
        make_node("max_pool2d_select", [g, x], ksize=(2, 2), strides=(2, 2), padding="VALID")
