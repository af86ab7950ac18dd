"""Linear algebra: ``matmul`` with NumPy's batch-broadcasting semantics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.registry import AbstractValue, OpDef, register
from graphc.ir.shapes import broadcast_shapes, dims_equal, format_shape
from graphc.ir.tensor import Tensor
from graphc.ops._common import make_node, promote, reporting, to_tensors


def _infer_matmul(inputs: Sequence[AbstractValue]) -> AbstractValue:
    a, b = inputs
    if not a.shape or not b.shape:
        raise ShapeError("matmul does not accept scalars (use multiply)")
    a_shape = (1, *a.shape) if len(a.shape) == 1 else a.shape
    b_shape = (*b.shape, 1) if len(b.shape) == 1 else b.shape
    if not dims_equal(a_shape[-1], b_shape[-2]):
        raise ShapeError(f"matmul: contracted dimensions differ: {format_shape(a.shape)} @ {format_shape(b.shape)} "
                         f"({a_shape[-1]} vs {b_shape[-2]})")
    try:
        batch = broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ShapeError:
        raise ShapeError(f"matmul: batch dimensions of {format_shape(a.shape)} and {format_shape(b.shape)} "
                         "do not broadcast") from None
    out = [*batch, a_shape[-2], b_shape[-1]]
    if len(b.shape) == 1:
        out.pop(-1)
    if len(a.shape) == 1:
        out.pop(-2 if len(b.shape) != 1 else -1)
    return AbstractValue(a.dtype, tuple(out))


def _swap_last(t: Tensor) -> Tensor:
    perm = (*range(t.ndim - 2), t.ndim - 1, t.ndim - 2)
    return make_node("transpose", [t], perm=perm)


def _matmul_grad(node: Tensor, g: Tensor) -> list[Any]:
    from graphc.ops.like import sum_to
    from graphc.ops.shape import expand_dims, squeeze

    a, b = node.inputs
    # treat 1-D operands as the matrices NumPy promotes them to, then undo the promotion
    a2 = expand_dims(a, 0) if a.ndim == 1 else a
    b2 = expand_dims(b, -1) if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1 and b.ndim == 1:
        g2 = expand_dims(g, (0, 1))
    elif a.ndim == 1:
        g2 = expand_dims(g, -2)
    elif b.ndim == 1:
        g2 = expand_dims(g, -1)
    da = sum_to(matmul(g2, _swap_last(b2)), a2)  # sum_to: undo batch broadcasting
    db = sum_to(matmul(_swap_last(a2), g2), b2)
    return [squeeze(da, 0) if a.ndim == 1 else da, squeeze(db, -1) if b.ndim == 1 else db]


register(OpDef("matmul", "linalg", _infer_matmul, np.matmul, num_inputs=2, grad=_matmul_grad,
               doc="matrix product with NumPy batch broadcasting; 1-D operands are promoted and removed",
               epilogue_kind="matmul_epilogue", uses_gemm=True))


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product, ``a @ b``, with NumPy semantics (batch broadcasting, 1-D operands)."""

    def build() -> Tensor:
        ts, _ = promote(to_tensors([a, b]))
        return make_node("matmul", ts)

    return reporting("matmul", [a, b], build)


__all__ = ["matmul"]
