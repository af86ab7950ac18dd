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


def _operand_matrix_shape(shape: tuple, transposed: bool, which: str) -> tuple:
    """An operand's shape as the product sees it: its last two axes swapped when it is ``transposed``."""
    if not transposed:
        return shape
    if len(shape) < 2:
        raise ShapeError(f"matmul: transpose_{which} needs an operand of at least 2 dimensions, "
                         f"got shape {format_shape(shape)}")
    return (*shape[:-2], shape[-1], shape[-2])


def _infer_matmul(inputs: Sequence[AbstractValue], transpose_a: bool = False,
                  transpose_b: bool = False) -> AbstractValue:
    a, b = inputs
    if not a.shape or not b.shape:
        raise ShapeError("matmul does not accept scalars (use multiply)")
    a_seen = _operand_matrix_shape(a.shape, transpose_a, "a")
    b_seen = _operand_matrix_shape(b.shape, transpose_b, "b")
    a_shape = (1, *a_seen) if len(a_seen) == 1 else a_seen
    b_shape = (*b_seen, 1) if len(b_seen) == 1 else b_seen
    if not dims_equal(a_shape[-1], b_shape[-2]):
        shown = f"{format_shape(a.shape)}{'^T' if transpose_a else ''} @ {format_shape(b.shape)}" \
                f"{'^T' if transpose_b else ''}"
        raise ShapeError(f"matmul: contracted dimensions differ: {shown} ({a_shape[-1]} vs {b_shape[-2]})")
    try:
        batch = broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ShapeError:
        raise ShapeError(f"matmul: batch dimensions of {format_shape(a.shape)} and {format_shape(b.shape)} "
                         "do not broadcast") from None
    out = [*batch, a_shape[-2], b_shape[-1]]
    if len(b_seen) == 1:
        out.pop(-1)
    if len(a_seen) == 1:
        out.pop(-2 if len(b_seen) != 1 else -1)
    return AbstractValue(a.dtype, tuple(out))


def _matmul_reference(a: np.ndarray, b: np.ndarray, transpose_a: bool = False,
                      transpose_b: bool = False) -> np.ndarray:
    return np.matmul(np.swapaxes(a, -1, -2) if transpose_a else a, np.swapaxes(b, -1, -2) if transpose_b else b)


def _matmul_grad(node: Tensor, g: Tensor) -> list[Any]:
    from graphc.ops.like import sum_to
    from graphc.ops.shape import expand_dims, squeeze

    a, b = node.inputs
    ta, tb = matmul_flags(node)
    # treat 1-D operands as the matrices NumPy promotes them to, then undo the promotion
    # (a transposed operand has at least 2 dimensions)
    a2 = expand_dims(a, 0) if a.ndim == 1 else a
    b2 = expand_dims(b, -1) if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1 and b.ndim == 1:
        g2 = expand_dims(g, (0, 1))
    elif a.ndim == 1:
        g2 = expand_dims(g, -2)
    elif b.ndim == 1:
        g2 = expand_dims(g, -1)
    # C = op(A) op(B): d op(A) = G op(B)^T, d op(B) = op(A)^T G, each written as one product with flags
    # (no transposed copies); sum_to undoes batch broadcasting
    da = matmul(b2, g2, transpose_a=tb, transpose_b=True) if ta else matmul(g2, b2, transpose_b=not tb)
    db = matmul(g2, a2, transpose_a=True, transpose_b=ta) if tb else matmul(a2, g2, transpose_a=not ta)
    da, db = sum_to(da, a2), sum_to(db, b2)
    return [squeeze(da, 0) if a.ndim == 1 else da, squeeze(db, -1) if b.ndim == 1 else db]


register(OpDef("matmul", "linalg", _infer_matmul, _matmul_reference, num_inputs=2, grad=_matmul_grad,
               doc="matrix product with NumPy batch broadcasting; 1-D operands are promoted and removed; "
                   "transpose_a / transpose_b swap an operand's last two axes first",
               epilogue_kind="matmul_epilogue", uses_gemm=True))


def matmul(a: Any, b: Any, transpose_a: bool = False, transpose_b: bool = False) -> Tensor:
    """Matrix product, ``a @ b``, with NumPy semantics (batch broadcasting, 1-D operands).

    ``transpose_a`` / ``transpose_b`` (as in TensorFlow) multiply by an operand with its last two axes
    swapped, without a transposed copy: ``matmul(x, w, transpose_b=True)`` is ``x @ swapaxes(w, -1, -2)``.
    The optimiser folds ``matmul(transpose(x), y)`` into the same form by itself.
    """

    def build() -> Tensor:
        ts, _ = promote(to_tensors([a, b]))
        return make_node("matmul", ts, **flags(bool(transpose_a), bool(transpose_b)))

    return reporting("matmul", [a, b], build)


def flags(transpose_a: bool, transpose_b: bool) -> dict[str, bool]:
    """A matmul node's attributes for these flags: only the flags that are set, so that a product
    without them has no attributes (as graphs saved before the flags existed)."""
    return {k: True for k, v in (("transpose_a", transpose_a), ("transpose_b", transpose_b)) if v}


def matmul_flags(node: Tensor) -> tuple[bool, bool]:
    """(transpose_a, transpose_b) of a matmul node."""
    return bool(node.attrs.get("transpose_a", False)), bool(node.attrs.get("transpose_b", False))


__all__ = ["matmul", "matmul_flags"]
