"""device="cpu" against the reference for conv2d, the pools and their adjoint ops, integer power and
reciprocal, and every kind of fused kernel.

What must agree is docs/numerics.md's promise (``util.assert_paths_agree(..., DEVICES)``): integer
results, max pooling and the pool gradients are the same bits (the gradients add in the reference's
order); the GEMM-based convolutions and window means add in another order than NumPy, within the
promise's bounds (2 K u sum |x w| for a convolution with K = C * KH * KW terms, 2 n u mean|x| for a mean
of n), carried through the ops that follow (tanh: NumPy's and the C library's, a few ulps apart).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import graphc as gc
from graphc.ir.build import constant, make_node
from graphc.lower.conv import window_groups
from util import DEVICES, assert_paths_agree, random_array

STRIDES = [1, 2, (2, 1), 3]
PADDINGS = ["VALID", "SAME", 1, ((2, 0), (1, 2))]


def both(outputs: Any, feeds: dict) -> tuple[Any, Any]:
    return gc.Session(device="cpu").run(outputs, feeds), gc.Session(device="reference").run(outputs, feeds)


def assert_agree(outputs: Any, feeds: dict, threads: int | None = None) -> None:
    """``outputs`` on device="cpu" (with ``threads``) and on the reference: within the promise (GEMMs and
    window sums within their bounds, everything else the same bits)."""
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    got = gc.Session(device="cpu", threads=threads).run(outputs, feeds)
    want = gc.Session(device="reference").run(outputs, feeds)
    assert_paths_agree(got, want, outputs, feeds, DEVICES)


def assert_exact(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape, want.shape)
    np.testing.assert_array_equal(got, want)


def conv_case(rng: np.random.Generator, x_shape: tuple, w_shape: tuple, dtype: str = "float64",
              strides: Any = 1, padding: Any = "VALID") -> tuple[list, dict]:
    """conv2d and both of its gradients (through gc.grad, with a non-trivial upstream gradient)."""
    x, w = gc.placeholder(dtype, x_shape, name="cx"), gc.placeholder(dtype, w_shape, name="cw")
    y = gc.conv2d(x, w, strides, padding)
    gx, gw = gc.grad(gc.sum(gc.tanh(y) * 1.5), [x, w])
    feeds = {x: random_array(rng, x_shape, dtype), w: random_array(rng, w_shape, dtype)}
    return [y, gx, gw], feeds


# ---- conv2d -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("padding", PADDINGS, ids=str)
@pytest.mark.parametrize("strides", STRIDES, ids=str)
def test_conv2d_and_gradients(strides: Any, padding: Any, rng: np.random.Generator) -> None:
    ksize = {1: (3, 3), 2: (2, 3), (2, 1): (3, 1), 3: (1, 1)}[strides]  # every kernel shape, across the strides
    outputs, feeds = conv_case(rng, (3, 3, 7, 6), (2, 3, *ksize), "float64", strides, padding)
    assert_agree(outputs, feeds)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("x_shape", "w_shape", "strides", "padding"), [
    ((0, 3, 5, 5), (2, 3, 3, 3), 1, "SAME"),  # an empty batch
    ((1, 1, 5, 4), (1, 1, 2, 2), 2, "VALID"),  # one image, one channel
    ((3, 3, 4, 4), (4, 3, 1, 1), 1, "VALID"),  # pointwise: a plain GEMM per image, no copies
    ((2, 3, 6, 5), (2, 3, 1, 1), 2, "VALID"),  # 1x1 with stride: im2col
    ((2, 3, 4, 4), (2, 3, 1, 1), 1, 1),  # 1x1 padded
    ((2, 1, 1, 1), (1, 1, 3, 3), 1, "SAME"),  # kernel larger than the input
    ((1, 2, 7, 7), (3, 2, 2, 2), 5, "VALID"),  # strides larger than the kernel skip rows
    ((2, 2, 6, 6), (1, 2, 2, 2), 3, ((0, 1), (1, 0))),  # padding the windows never reach
    ((2, 0, 4, 4), (3, 0, 2, 2), 1, "SAME"),  # no input channels: zeros
    ((2, 3, 4, 4), (0, 3, 2, 2), 1, "VALID"),  # no output channels
])
def test_conv2d_edge_shapes(x_shape: tuple, w_shape: tuple, strides: Any, padding: Any, dtype: str,
                            rng: np.random.Generator) -> None:
    outputs, feeds = conv_case(rng, x_shape, w_shape, dtype, strides, padding)
    assert_agree(outputs, feeds)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "int64"])
def test_conv2d_integers_wrap_exactly(dtype: str, rng: np.random.Generator) -> None:
    x, w = gc.placeholder(dtype, (2, 3, 6, 5)), gc.placeholder(dtype, (4, 3, 3, 2))
    low, high = (0, 255) if dtype == "uint8" else (-100, 100)
    feeds = {x: random_array(rng, (2, 3, 6, 5), dtype, low, high), w: random_array(rng, (4, 3, 3, 2), dtype, low, high)}
    attrs = {"strides": (2, 1), "padding": "SAME"}
    y = gc.conv2d(x, w, **attrs)
    g = gc.constant(random_array(rng, tuple(y.shape), dtype, low, high))
    dx = make_node("conv2d_grad_input", [g, w, x], **attrs)
    dw = make_node("conv2d_grad_weight", [x, g, w], **attrs)
    for got, want in zip(*both([y, dx, dw, y * 3 + 1], feeds)):  # the last one: a fused integer epilogue
        assert_exact(got, want)


def test_conv2d_non_contiguous_feeds(rng: np.random.Generator) -> None:
    base = random_array(rng, (6, 4, 9, 8), "float32")
    wbase = random_array(rng, (3, 8, 3, 2), "float32")
    x, w = gc.placeholder("float32", (None, 4, None, None)), gc.placeholder("float32", (3, 4, 3, 2))
    y = gc.relu(gc.conv2d(x, w, (1, 2), "SAME") + 0.5)
    for xv in (base[::2], base[:, :, ::-1, 1::2], base.transpose(0, 1, 3, 2)):
        assert_agree(y, {x: xv, w: wbase[:, ::2]})


def test_conv2d_epilogue_kernel_with_its_own_output_fetched(rng: np.random.Generator) -> None:
    x, w = gc.placeholder("float32", (2, 3, 8, 8)), gc.placeholder("float32", (4, 3, 3, 3))
    b = gc.placeholder("float32", (1, 4, 1, 1))
    y = gc.conv2d(x, w, 1, "SAME")
    out = gc.relu(y + b) * 2.0
    graph = gc.optimize([out, y])
    assert any(n.op == "fused" and n.attrs["kernel"].kind == "conv2d_epilogue" for n in graph.nodes)
    feeds = {x: random_array(rng, (2, 3, 8, 8), "float32"), w: random_array(rng, (4, 3, 3, 3), "float32"),
             b: random_array(rng, (1, 4, 1, 1), "float32")}
    assert_agree([out, y], feeds)


def test_conv2d_second_order_gradients(rng: np.random.Generator) -> None:
    x, w = gc.placeholder("float64", (2, 2, 5, 6)), gc.placeholder("float64", (3, 2, 2, 3))
    y = gc.conv2d(x, w, (2, 1), ((1, 0), (0, 2)))
    gx, gw = gc.grad(gc.sum(gc.square(y)), [x, w])
    second = gc.grad(gc.sum(gc.square(gx)) + gc.sum(gc.square(gw)), [x, w])
    feeds = {x: random_array(rng, (2, 2, 5, 6), "float64"), w: random_array(rng, (3, 2, 2, 3), "float64")}
    assert_agree([gx, gw, *second], feeds)


@pytest.mark.parametrize("batch", [1, 2, 7, 9])
@pytest.mark.parametrize(("w_shape", "strides", "padding"), [
    ((4, 3, 3, 3), 1, "VALID"), ((4, 3, 3, 2), (2, 1), "SAME"), ((4, 3, 1, 1), 1, "VALID")], ids=str)
def test_conv2d_images_in_parallel_groups(batch: int, w_shape: tuple, strides: Any, padding: Any,
                                          rng: np.random.Generator) -> None:
    """Three threads: the images split into three groups with scratch of their own, a batch that does not
    divide (7, 9 -> 2 or 3 per group and the rest one per group) or is smaller than the groups (1, 2);
    the weight gradient sums the groups' partial sums."""
    outputs, feeds = conv_case(rng, (batch, 3, 6, 5), w_shape, "float32", strides, padding)
    assert_agree(outputs, feeds, threads=3)
    single = gc.Session(device="cpu", threads=1).run(outputs, feeds)
    for got, want in zip(gc.Session(device="cpu", threads=3).run(outputs, feeds), single):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_conv2d_large_enough_for_the_threaded_gemm(rng: np.random.Generator) -> None:
    x, w = gc.placeholder("float32", (2, 16, 32, 32)), gc.placeholder("float32", (32, 16, 3, 3))
    feeds = {x: random_array(rng, (2, 16, 32, 32), "float32"), w: random_array(rng, (32, 16, 3, 3), "float32")}
    y = gc.conv2d(x, w, 1, "SAME")
    outputs = [y, *gc.grad(gc.sum(y * y), [x, w])]
    assert_agree(outputs, feeds, threads=2)


# ---- pooling --------------------------------------------------------------------------------------

POOL_PADDINGS = ["VALID", "SAME", 1, ((1, 0), (0, 1))]


def pool_graph(kind: str, x: gc.Tensor, ksize: Any, strides: Any, padding: Any) -> list[gc.Tensor]:
    """The pool, its gradient, and the gradient of that gradient (max: max_pool2d_select)."""
    pool = gc.max_pool2d if kind == "max" else gc.avg_pool2d
    y = pool(x, ksize, strides, padding)
    gx = gc.grad(gc.sum(y * y * 0.75), x)
    ggx = gc.grad(gc.sum(gx * gx * x), x)
    return [y, gx, ggx]


@pytest.mark.parametrize("padding", POOL_PADDINGS, ids=str)
@pytest.mark.parametrize("strides", STRIDES, ids=str)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pools_and_gradients_exactly(kind: str, strides: Any, padding: Any, rng: np.random.Generator) -> None:
    ksize = {1: (3, 3), 2: (2, 3), (2, 1): (3, 2), 3: (3, 3)}[strides]
    x = gc.placeholder("float64", (3, 3, 7, 6))
    values = random_array(rng, (3, 3, 7, 6), "float64")
    values[0, 0, :3, :3] = values[0, 0, 0, 0]  # ties: the first maximum takes the gradient
    # max pooling and the gradients are exact; a window's mean is within its bound
    assert_agree(pool_graph(kind, x, ksize, strides, padding), {x: values})


@pytest.mark.parametrize("dtype", ["float32", "int8", "uint8", "int32", "bool"])
def test_max_pool_dtypes_exactly(dtype: str, rng: np.random.Generator) -> None:
    x = gc.placeholder(dtype, (2, 3, 6, 7))
    values = random_array(rng, (2, 3, 6, 7), dtype, -2, 2)  # narrow ranges: many ties
    outputs = [gc.max_pool2d(x, 3, 2, "SAME"), gc.max_pool2d(x, (2, 3), (1, 2), 1)]
    for got, want in zip(*both(outputs, {x: values})):
        assert_exact(got, want)
    if dtype != "bool":  # ints average in float64
        assert_agree(gc.avg_pool2d(x, 2, 1, "SAME"), {x: values})


def test_max_pool_nan_and_inf_rules(rng: np.random.Generator) -> None:
    x = gc.placeholder("float32", (1, 2, 5, 5))
    values = random_array(rng, (1, 2, 5, 5), "float32")
    values[0, 0, 1, 1] = np.nan  # a nan wins its windows, the first nan takes the gradient
    values[0, 0, 1, 2] = np.nan
    values[0, 1] = -np.inf  # all -inf: the first real element is the maximum
    outputs = pool_graph("max", x, 3, 1, "SAME")
    g = gc.placeholder("float32", (1, 2, 5, 5))
    # a nan or inf in the upstream gradient spreads over its window (0 * nan), as in the reference
    spread = make_node("max_pool2d_grad", [g, x], ksize=(3, 3), strides=(1, 1), padding="SAME")
    gv = random_array(rng, (1, 2, 5, 5), "float32")
    gv[0, 1, 2, 2] = np.inf
    for got, want in zip(*both([*outputs, spread], {x: values, g: gv})):
        assert_exact(got, want)


@pytest.mark.parametrize("shape", [(0, 2, 5, 5), (2, 0, 5, 5), (1, 1, 1, 1), (2, 1, 1, 5), (1, 2, 3, 1)])
def test_pools_edge_shapes(shape: tuple, rng: np.random.Generator) -> None:
    x = gc.placeholder("float64", shape)
    values = random_array(rng, shape, "float64")
    outputs = [*pool_graph("max", x, 2, 1, "SAME"), *pool_graph("avg", x, 2, 1, "SAME"),
               gc.max_pool2d(x, (1, 1), 2, "VALID"), gc.avg_pool2d(x, (1, 1), 2, "VALID")]
    assert_agree(outputs, {x: values})


def test_pool_windows_of_padding_only(rng: np.random.Generator) -> None:
    """An input of height 0 padded to the window: the max is the lowest value, the mean nan (0 / 0)."""
    x = gc.placeholder("float64", (1, 1, 0, 3))
    attrs = {"ksize": (2, 2), "strides": (1, 1), "padding": ((1, 1), (1, 0))}
    y = gc.max_pool2d(x, **attrs)
    g = constant(np.ones(y.shape))
    outputs = [y, gc.avg_pool2d(x, **attrs), make_node("max_pool2d_grad", [g, x], **y.attrs),
               make_node("avg_pool2d_grad", [g, x], **y.attrs), make_node("max_pool2d_select", [x, x], **y.attrs)]
    for got, want in zip(*both(outputs, {x: np.zeros((1, 1, 0, 3))})):
        assert_exact(got, want)


@pytest.mark.parametrize("padding", POOL_PADDINGS, ids=str)
def test_pool_gradients_of_disjoint_windows_with_gaps(padding: Any, rng: np.random.Generator) -> None:
    """Windows smaller than their strides leave rows and columns no window covers (gradient zero there);
    each covered position is written once, and an inf in g still spreads over its window as 0 * inf."""
    x = gc.placeholder("float32", (2, 3, 8, 7))
    y = gc.max_pool2d(x, 2, 3, padding)
    shape = tuple(y.shape)
    g = gc.placeholder("float32", shape)
    outputs = [make_node(op, [g, x], **y.attrs) for op in ("max_pool2d_grad", "avg_pool2d_grad")]
    values = random_array(rng, (2, 3, 8, 7), "float32", -1, 1)
    values[0, 0, :3] = 0.0  # ties: the first maximum takes the gradient
    gv = random_array(rng, shape, "float32")
    gv[1, 2, 1, 1] = np.inf
    gv[0, 1, 0, 0] = -0.0
    for got, want in zip(*both(outputs, {x: values, g: gv})):
        assert_exact(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_pool_adjoint_ops_directly(rng: np.random.Generator) -> None:
    x = gc.placeholder("float32", (2, 3, 7, 6))
    attrs = {"ksize": (3, 2), "strides": (2, 1), "padding": "SAME"}
    shape = tuple(gc.max_pool2d(x, **attrs).shape)
    g, dy = gc.placeholder("float32", shape), gc.placeholder("float32", (2, 3, 7, 6))
    outputs = [make_node(op, [g, x], **attrs) for op in ("max_pool2d_grad", "avg_pool2d_grad")]
    outputs.append(make_node("max_pool2d_select", [dy, x], **attrs))
    feeds = {x: random_array(rng, (2, 3, 7, 6), "float32", -1, 1), g: random_array(rng, shape, "float32"),
             dy: random_array(rng, (2, 3, 7, 6), "float32")}
    for got, want in zip(*both(outputs, feeds)):
        assert_exact(got, want)


def test_window_groups() -> None:
    # size 6, window 3, stride 1, one row of padding before: the first window misses offset 0
    assert [(gr.start, gr.count, gr.first, gr.valid) for gr in window_groups(6, 3, 1, 1, 6)] == [
        (0, 1, 1, 2), (1, 4, 0, 3), (5, 1, 0, 2)]
    assert [(gr.start, gr.count) for gr in window_groups(7, 2, 3, 0, 2)] == [(0, 2)]


# ---- integer power and reciprocal -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "int64"])
def test_integer_power_wraps_like_numpy(dtype: str, rng: np.random.Generator) -> None:
    info = np.iinfo(dtype)
    base = rng.integers(max(info.min, -1000), min(info.max, 1000), 300).astype(dtype)
    exponent = rng.integers(0, min(info.max, 200), 300).astype(dtype)
    base[:4], exponent[:4] = [0, 0, 1, 2], [0, 5, 127, info.bits - 1]
    x, y = gc.placeholder(dtype, (300,)), gc.placeholder(dtype, (300,))
    for got, want in zip(*both([x ** y, x ** 3, gc.power(2, y), (x ** y) * x + 1], {x: base, y: exponent})):
        assert_exact(got, want)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64"])
def test_negative_integer_exponent_is_an_execution_error_naming_the_line(dtype: str) -> None:
    x, y = gc.placeholder(dtype, (3,)), gc.placeholder(dtype, (3,))
    feeds = {x: np.array([2, 3, 4], dtype), y: np.array([1, -1, 2], dtype)}
    for out in (x ** y, (x ** y) * 2 + x):  # standalone, and inside a fused kernel
        for device in ("reference", "cpu"):
            with pytest.raises(gc.ExecutionError, match=r"(?s)power.*negative integer powers.*test_cpu_lowering_nn"):
                gc.Session(device=device).run(out, feeds)
    feeds[y] = np.array([1, 0, 2], dtype)
    assert_exact(*both(x ** y, feeds))


@pytest.mark.parametrize("dtype", ["bool", "int8", "uint8", "int16", "int32", "int64"])
def test_integer_reciprocal_like_numpy(dtype: str) -> None:
    values = [0, 1, 2, 3, 255] if dtype == "uint8" else [0, 1, 2, 3] if dtype == "bool" else [0, 1, -1, 2, -2, 7, -128]
    x = gc.placeholder(dtype, (len(values),))
    assert_exact(*both(gc.reciprocal(x), {x: np.array(values).astype(dtype)}))


# ---- every op and every kernel kind lowers ----------------------------------------------------------

def test_every_fused_kernel_kind_lowers(rng: np.random.Generator) -> None:
    from graphc.ops.kernel import KERNEL_KINDS

    x, w = gc.placeholder("float64", (2, 3, 5, 5)), gc.placeholder("float64", (4, 3, 3, 3))
    m = gc.placeholder("float64", (6, 5))
    outputs = [gc.exp(x) * 2 + 1, gc.sum(gc.square(x - 1), axis=(1, 2)), gc.logsumexp(x * 3.0, axis=-1),
               gc.tanh(m @ gc.transpose(m) + 1.0), gc.relu(gc.conv2d(x, w, 1, "SAME") - 0.5)]
    graph = gc.optimize(outputs)
    kinds = {n.attrs["kernel"].kind for n in graph.nodes if n.op == "fused"}
    assert kinds == set(KERNEL_KINDS)
    feeds = {x: random_array(rng, (2, 3, 5, 5), "float64"), w: random_array(rng, (4, 3, 3, 3), "float64"),
             m: random_array(rng, (6, 5), "float64")}
    assert_agree(outputs, feeds)
