"""Ops whose result takes its shape from a *like* input, known only when the graph runs.

Gradients need them: the gradient of a broadcast sums back to the input's shape, whatever size
its unknown (None) dimensions turn out to have.  The like input's values are never read, so it
gets no gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc import dtypes
from graphc.errors import ShapeError
from graphc.ir.registry import AbstractValue, OpDef, register
from graphc.ir.shapes import Shape, format_shape, is_static, num_elements
from graphc.ir.tensor import Tensor
from graphc.ops._common import make_node


def _check_broadcastable(small: Shape, big: Shape, op: str) -> None:
    lead = len(big) - len(small)
    if lead < 0 or not all(s is None or b is None or s in (1, b) for s, b in zip(small, big[lead:])):
        raise ShapeError(f"{op}: {format_shape(small)} does not broadcast to {format_shape(big)}")


# ---- sum_to ---------------------------------------------------------------------------------------

def _infer_sum_to(inputs: Sequence[AbstractValue]) -> AbstractValue:
    g, like = inputs
    _check_broadcastable(like.shape, g.shape, "sum_to")
    return AbstractValue(g.dtype, like.shape)


def sum_to_axes(shape: Sequence[int], target: Sequence[int]) -> tuple[int, ...]:
    """The axes of ``shape`` to sum (keeping dims) so that it reshapes to ``target``, which broadcast to it."""
    lead = len(shape) - len(target)
    return tuple(range(lead)) + tuple(lead + i for i, d in enumerate(target) if d == 1 and shape[lead + i] != 1)


def _sum_to_reference(g: np.ndarray, like: np.ndarray) -> np.ndarray:
    axes = sum_to_axes(g.shape, like.shape)
    return np.sum(g, axis=axes, keepdims=True).reshape(like.shape) if axes else g.reshape(like.shape)


def _sum_to_grad(node: Tensor, g: Tensor) -> list[Tensor | None]:
    return [broadcast_like(g, node.inputs[0]), None]


register(OpDef("sum_to", "reduce", _infer_sum_to, _sum_to_reference, num_inputs=2, grad=_sum_to_grad,
               data_unchanged="same shape", doc="sum a broadcast value back to the shape of the like input"))


def sum_to(g: Tensor, like: Tensor) -> Tensor:
    """``g`` summed over the axes along which ``like`` was broadcast to ``g``'s shape."""
    if is_static(g.shape) and g.shape == like.shape:
        return g
    return make_node("sum_to", [g, like])


# ---- broadcast_like -------------------------------------------------------------------------------

def _infer_broadcast_like(inputs: Sequence[AbstractValue]) -> AbstractValue:
    x, like = inputs
    _check_broadcastable(x.shape, like.shape, "broadcast_like")
    return AbstractValue(x.dtype, like.shape)


def _broadcast_like_grad(node: Tensor, g: Tensor) -> list[Tensor | None]:
    return [sum_to(g, node.inputs[0]), None]


register(OpDef("broadcast_like", "shape", _infer_broadcast_like,
               lambda x, like: np.broadcast_to(x, like.shape), num_inputs=2, grad=_broadcast_like_grad,
               data_unchanged="same shape", doc="broadcast to the shape of the like input"))


def broadcast_like(x: Tensor, like: Tensor) -> Tensor:
    """``x`` broadcast to ``like``'s (run-time) shape."""
    if is_static(x.shape) and x.shape == like.shape:
        return x
    return make_node("broadcast_like", [x, like])


# ---- reshape_like ---------------------------------------------------------------------------------

def _infer_reshape_like(inputs: Sequence[AbstractValue]) -> AbstractValue:
    x, like = inputs
    a, b = num_elements(x.shape), num_elements(like.shape)
    if a is not None and b is not None and a != b:
        raise ShapeError(f"reshape_like: {format_shape(x.shape)} and {format_shape(like.shape)} differ in size")
    return AbstractValue(x.dtype, like.shape)


def _reshape_like_grad(node: Tensor, g: Tensor) -> list[Tensor | None]:
    return [reshape_like(g, node.inputs[0]), None]


register(OpDef("reshape_like", "shape", _infer_reshape_like, lambda x, like: np.reshape(x, like.shape),
               num_inputs=2, grad=_reshape_like_grad, data_unchanged="always",
               doc="reshape to the shape of the like input"))


def reshape_like(x: Tensor, like: Tensor) -> Tensor:
    """``x`` reshaped to ``like``'s (run-time) shape."""
    # identical shapes with at most one unknown dim must agree at run time too (same element count)
    if x.shape == like.shape and sum(d is None for d in x.shape) <= 1:
        return x
    return make_node("reshape_like", [x, like])


# ---- fill_like ------------------------------------------------------------------------------------

def _infer_fill_like(inputs: Sequence[AbstractValue], *, value: Any, dtype: np.dtype) -> AbstractValue:
    return AbstractValue(dtype, inputs[0].shape)


def _fill_like_reference(like: np.ndarray, *, value: Any, dtype: np.dtype) -> np.ndarray:
    return np.full(like.shape, value, dtype)


register(OpDef("fill_like", "shape", _infer_fill_like, _fill_like_reference, num_inputs=1,
               differentiable=False, doc="a tensor of the like input's shape filled with one value"))


def fill_like(like: Tensor, value: Any, dtype: Any = None) -> Tensor:
    """A tensor of ``like``'s (run-time) shape, every element ``value`` (dtype: ``like``'s by default)."""
    target = like.dtype if dtype is None else dtypes.as_dtype(dtype)
    return make_node("fill_like", [like], value=np.asarray(value, target).item(), dtype=target)


def zeros_like(x: Tensor) -> Tensor:
    """Zeros of ``x``'s shape and dtype."""
    return fill_like(x, 0)


def ones_like(x: Tensor) -> Tensor:
    """Ones of ``x``'s shape and dtype."""
    return fill_like(x, 1)


__all__ = ["broadcast_like", "fill_like", "ones_like", "reshape_like", "sum_to", "zeros_like"]
