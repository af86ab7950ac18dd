"""device="cpu" against the reference for pad (every mode), pad_grad, concat, concat_part and
slice_grad.  These ops only move (or, for the gradients, add up) elements, in the reference's order,
so every result must be identical: same dtype, shape and bits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import graphc as gc
from graphc.ir.build import constant, make_node
from graphc.lower.shape import Run, axis_runs
from util import random_array

MODES = ["constant", "edge", "reflect", "symmetric"]


def both(outputs: Any, feeds: dict) -> tuple[Any, Any]:
    return gc.Session(device="cpu").run(outputs, feeds), gc.Session(device="reference").run(outputs, feeds)


def assert_identical(got: Any, want: Any) -> None:
    for g, w in zip(got, want) if isinstance(want, list) else [(got, want)]:
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
        np.testing.assert_array_equal(g, w)


def test_axis_runs() -> None:
    # reflect: 0 1 2 1 0 1 2 1 0
    assert axis_runs(np.pad(np.arange(3), (4, 2), mode="reflect")) == [
        Run(0, 3, 0, 1), Run(3, 2, 1, -1), Run(5, 2, 1, 1), Run(7, 2, 1, -1)]
    assert axis_runs([-1, -1, 0, 1, 2, -1]) == [Run(0, 2, -1, None), Run(2, 3, 0, 1), Run(5, 1, -1, None)]
    assert axis_runs([0, 0, 0, 1, 2, 2]) == [Run(0, 3, 0, 0), Run(3, 2, 1, 1), Run(5, 1, 2, 1)]


# ---- pad and its gradient ---------------------------------------------------------------------------

@pytest.mark.parametrize("pad_width", [1, ((0, 0), (2, 1), (0, 3)), ((3, 0), (0, 0), (1, 1)), ((5, 7), (4, 4), (1, 6))],
                         ids=["all-1", "trailing", "leading", "wider-than-axes"])
@pytest.mark.parametrize("mode", MODES)
def test_pad_and_its_gradient(mode: str, pad_width: Any, rng: np.random.Generator) -> None:
    x = gc.placeholder("float64", (2, 3, 4))
    padded = gc.pad(x, pad_width, mode=mode, **({"constant_values": -2.5} if mode == "constant" else {}))
    weights = constant(random_array(rng, tuple(padded.shape), "float64"))
    grad = gc.grad(gc.sum(padded * weights), x)  # an upstream gradient that differs everywhere
    assert_identical(*both([padded, grad], {x: random_array(rng, (2, 3, 4), "float64")}))


@pytest.mark.parametrize("dtype", ["bool", "int8", "uint8", "int16", "int32", "int64", "float32"])
@pytest.mark.parametrize("mode", MODES)
def test_pad_dtypes(mode: str, dtype: str, rng: np.random.Generator) -> None:
    x = gc.placeholder(dtype, (3, 5))
    outputs = [gc.pad(x, ((1, 2), (3, 1)), mode=mode), gc.pad(x, (0, 2), mode=mode)]
    if mode == "constant":
        outputs.append(gc.pad(x, 2, constant_values=True if dtype == "bool" else 7))
    assert_identical(*both(outputs, {x: random_array(rng, (3, 5), dtype)}))


@pytest.mark.parametrize("mode", ["edge", "reflect", "symmetric", "constant"])
@pytest.mark.parametrize("dtype", ["int32", "float32", "bool"])
def test_pad_grad_adds_in_the_reference_order(mode: str, dtype: str, rng: np.random.Generator) -> None:
    """pad_grad itself, fed a gradient of many magnitudes (float sums are order-sensitive), also for
    integers, bools (logical or) and the constant mode (whose padding the reference sends to 0)."""
    like = constant(np.zeros((3, 4), dtype))
    pad_width = ((4, 2), (3, 5))
    g = gc.placeholder(dtype, (9, 12))
    values = random_array(rng, (9, 12), dtype, -100, 100)
    if dtype == "float32":
        values *= 10.0 ** rng.integers(-8, 8, (9, 12))
    out = make_node("pad_grad", [g, like], pad_width=pad_width, mode=mode)
    assert_identical(*both(out, {g: values}))


@pytest.mark.parametrize(("shape", "pad_width", "mode"), [
    ((), 1, "constant"), ((), 2, "reflect"),  # scalars pad to themselves
    ((0, 3), ((1, 2), (1, 0)), "constant"),  # an empty axis padded with the constant
    ((0, 3), ((0, 0), (1, 1)), "reflect"),  # an empty result
    ((1, 4), ((2, 2), (0, 0)), "edge"), ((1, 4), ((3, 1), (1, 2)), "symmetric"),
    ((2, 1, 3), ((0, 0), (0, 0), (0, 0)), "reflect"),
])
def test_pad_edge_shapes(shape: tuple, pad_width: Any, mode: str, rng: np.random.Generator) -> None:
    x = gc.placeholder("float64", shape)
    padded = gc.pad(x, pad_width, mode=mode)
    grad = gc.grad(gc.sum(padded * padded), x)
    assert_identical(*both([padded, grad], {x: random_array(rng, shape, "float64")}))


def test_pad_of_non_contiguous_feeds_and_fused_neighbours(rng: np.random.Generator) -> None:
    base = random_array(rng, (6, 8), "float32")
    x = gc.placeholder("float32", (None, None))
    out = gc.pad(x * 2.0, ((1, 2), (2, 0)), mode="reflect") * 3.0 + 1.0  # (exact arithmetic only)
    for view in (base[::2, 1::3], base[::-1, ::-2], base.T):
        assert_identical(*both(out, {x: view}))


# ---- concat and its gradient ----------------------------------------------------------------------------

@pytest.mark.parametrize(("shapes", "axis"), [
    ([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 0), (2, 5)], 1), ([(2, 3, 4), (2, 1, 4)], 1),
    ([(2, 3, 4), (2, 3, 2)], -1), ([(5,)], 0), ([(0, 2), (0, 2)], 1), ([(1, 2, 2)] * 4, 0),
], ids=str)
@pytest.mark.parametrize("dtype", ["float64", "int8", "bool"])
def test_concat_and_its_gradient(shapes: list, axis: int, dtype: str, rng: np.random.Generator) -> None:
    xs = [gc.placeholder(dtype, s) for s in shapes]
    feeds = {x: random_array(rng, s, dtype) for x, s in zip(xs, shapes)}
    joined = gc.concat(xs, axis=axis)
    outputs = [joined, gc.stack(xs[:1] * 2, axis=-1)]
    if dtype == "float64":
        outputs += gc.grad(gc.sum(gc.square(joined) * gc.cos(joined)), xs)
    assert_identical(*both(outputs, feeds))


def test_concat_part_directly(rng: np.random.Generator) -> None:
    g = gc.placeholder("int16", (3, 9))
    parts = [constant(np.zeros((3, n), np.int16)) for n in (2, 0, 4, 3)]
    outputs = [make_node("concat_part", [g, *parts], axis=1, index=i) for i in range(4)]
    assert_identical(*both(outputs, {g: random_array(rng, (3, 9), "int16", -1000, 1000)}))


def test_concat_of_non_contiguous_and_fused_inputs(rng: np.random.Generator) -> None:
    base = random_array(rng, (6, 8), "float64")
    x = gc.placeholder("float64", (None, None))
    out = gc.concat([x, x * 2.0 - 1.0, x[:, ::-1]], axis=1)
    for view in (base[::2, 1::3], base.T):
        assert_identical(*both([out, gc.grad(gc.sum(out * out), x)], {x: view}))


# ---- slice_grad -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("index", [
    (slice(None, None, -1),), (1, slice(1, None, 2)), (slice(None), None, -1), (Ellipsis, slice(-3, None)),
    (slice(5, 0, -2), slice(None), 0), (slice(2, 2),), (None, 0, None, 1, 2),
], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_slice_grad(index: Any, dtype: str, rng: np.random.Generator) -> None:
    x = gc.placeholder("float64", (6, 4, 3))
    picked = x[index]
    grad = gc.grad(gc.sum(picked * picked), x)
    assert_identical(*both([picked, grad], {x: random_array(rng, (6, 4, 3), "float64")}))
    g = gc.placeholder(dtype, tuple(picked.shape))
    direct = make_node("slice_grad", [g, constant(np.zeros((6, 4, 3)))], index=picked.attrs["index"])
    assert_identical(*both(direct, {g: random_array(rng, tuple(picked.shape), dtype)}))


def test_slice_grad_with_an_index_out_of_range_is_an_execution_error() -> None:
    """An int index on an axis whose size is only known when the graph runs is checked then."""
    g = gc.placeholder("float64", (3,))
    like = gc.placeholder("float64", (None, 3))
    out = make_node("slice_grad", [g, like], index=(("int", 2), ("slice", None, None, None)))
    feeds = {g: np.ones(3), like: np.zeros((2, 3))}
    for device in ("reference", "cpu"):
        with pytest.raises(gc.ExecutionError, match=r"(?s)index 2 is out of bounds.*test_cpu_lowering_shape"):
            gc.Session(device=device).run(out, feeds)
    feeds[like] = np.zeros((3, 3))
    assert_identical(*both(out, feeds))
