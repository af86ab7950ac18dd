"""Lowering of matrix products: ``matmul``, and the products convolutions are made of.

Float products are ``Gemm`` statements (the backend's GEMM: a generated packed kernel on the CPU);
integer and bool products are loops with a dot-product accumulator.  The scratch a GEMM needs and
when it is split across threads are the backend's policy.
"""

from __future__ import annotations

import math

import numpy as np

from graphc.ir.shapes import broadcast_shapes
from graphc.ir.symbolic import Size, hint
from graphc.ir.tensor import Tensor
from graphc.lower.builder import (
    LoweringContext,
    Operand,
    broadcast_strides,
    buffer_name,
    linear_index,
    loop_nest,
    row_major_strides,
)
from graphc.lower.loopir import (
    AccInit,
    AccRef,
    AccUpdate,
    Const,
    Gemm,
    IConst,
    IndexExpr,
    IVar,
    Load,
    ScalarOp,
    Stmt,
    Store,
    iadd,
    imul,
)
from graphc.lower.registry import lowers
from graphc.ops.linalg import matmul_flags

FIRST_SLOT = IConst(0)


class MatrixProducts:
    """The matrix products of one kernel, writing ``dtype`` results: ``Gemm`` for floats (sharing one
    pack buffer named ``{prefix}_pack``, sized for the largest product), accumulator loops for integers
    and bools (operands of ``in_dtype``, default ``dtype``).  Call :meth:`finish` after the last product.

    ``slots``: the products run inside a parallel loop of that many iterations, iteration ``slot`` (the
    ``slot`` argument of :meth:`product`) with pack panels of its own, each product on one thread."""

    def __init__(self, prefix: str, dtype: np.dtype, ctx: LoweringContext, in_dtype: np.dtype | None = None,
                 slots: int = 1) -> None:
        self.dtype, self.ctx, self.slots = dtype, ctx, slots
        self.in_dtype = dtype if in_dtype is None else in_dtype
        self.pack = f"{prefix}_pack"
        self.pack_size: Size = 0
        self.gemm = dtype.kind == "f"

    def product(self, a: str, a_offset: IndexExpr, a_strides: tuple[Size, Size], b: str, b_offset: IndexExpr,
                b_strides: tuple[Size, Size], c: str, c_offset: IndexExpr, ldc: Size, m: Size, n: Size, k: Size,
                slot: IndexExpr = FIRST_SLOT) -> list[Stmt]:
        """``C[m, n] = A[m, k] @ B[k, n]`` on strided views (C row-major with row stride ``ldc``), as
        parallel iteration ``slot`` (see the class)."""
        if not m or not n:
            return []
        dtype, ctx = self.dtype, self.ctx
        if not k:
            return loop_nest([m, n], ctx, lambda v: [Store(c, iadd(c_offset, linear_index(v, [ldc, 1])),
                                                           Const(0, dtype))], parallel=True)
        if self.gemm:
            policy = ctx.policy
            threads = ctx.threads if self.slots == 1 and hint(m * n * k) >= policy.gemm_parallel_min_macs else 1
            stride = policy.gemm_pack_elements(m, n, k, dtype)
            if hint(stride * threads * self.slots) > hint(self.pack_size):
                self.pack_size = stride * threads * self.slots
            return [Gemm(a, a_offset, a_strides, b, b_offset, b_strides, c, c_offset, ldc, m, n, k, self.pack, dtype,
                         stride, threads, imul(slot, stride) if self.slots > 1 else IConst(0))]
        in_dtype = self.in_dtype

        def outer(v: list[IVar]) -> list[Stmt]:
            i, j = v
            acc = ctx.acc()

            def inner(kv: list[IVar]) -> list[Stmt]:
                x = Load(a, iadd(a_offset, linear_index([i, kv[0]], a_strides)), in_dtype)
                y = Load(b, iadd(b_offset, linear_index([kv[0], j], b_strides)), in_dtype)
                return [AccUpdate(acc, "add", ScalarOp("multiply", (x, y), in_dtype, dtype))]

            return [AccInit(acc, Const(0, dtype)), *loop_nest([k], ctx, inner),
                    Store(c, iadd(c_offset, linear_index(v, [ldc, 1])), AccRef(acc, dtype))]

        return loop_nest([m, n], ctx, outer, parallel=True)

    def finish(self) -> None:
        """Ask for the pack buffer the products need (none for integers or a backend without packing)."""
        if self.pack_size:
            self.ctx.scratch(self.dtype, self.pack_size, name=self.pack)


def matmul_statements(a: Operand, b: Operand, dst: str, dtype: np.dtype, ctx: LoweringContext,
                      transposed: tuple[bool, bool] = (False, False)) -> list[Stmt]:
    """Batched matmul with NumPy's broadcasting and 1-D rules, one product per matrix of the batch
    (``a`` and ``b`` are operands: a buffer and its abstract value).  ``transposed``: the matmul's
    ``transpose_a`` / ``transpose_b``; a transposed operand is read with its last two strides swapped."""
    (src_a, a_aval), (src_b, b_aval) = a, b
    ta, tb = transposed
    a_shape, b_shape = list(a_aval.shape), list(b_aval.shape)
    if len(a_shape) == 1:
        a_shape = [1, *a_shape]
    if len(b_shape) == 1:
        b_shape = [*b_shape, 1]
    m, k = (a_shape[-1], a_shape[-2]) if ta else (a_shape[-2], a_shape[-1])
    n = b_shape[-2] if tb else b_shape[-1]
    a_strides = (1, m) if ta else (k, 1)
    b_strides = (1, k) if tb else (n, 1)
    batch = list(broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2])))
    if batch and len(b_shape) == 2 and not ta:  # a stack of matrices times one matrix: one product of them all
        m, batch = m * math.prod(batch), []
    a_batch = [s * m * k for s in broadcast_strides(a_shape[:-2], batch)]
    b_batch = [s * k * n for s in broadcast_strides(b_shape[:-2], batch)]
    c_batch = [s * m * n for s in row_major_strides(batch)]
    products = MatrixProducts(dst, dtype, ctx, in_dtype=a_aval.dtype)
    body = loop_nest(batch, ctx, lambda bv: products.product(
        src_a, linear_index(bv, a_batch), a_strides, src_b, linear_index(bv, b_batch), b_strides, dst,
        linear_index(bv, c_batch), n, m, n, k), parallel=not products.gemm)
    products.finish()
    return body


@lowers("matmul")
def matmul(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    a, b = node.inputs
    return matmul_statements(ctx.operand(a), ctx.operand(b), buffer_name(node), ctx.aval(node).dtype, ctx,
                             matmul_flags(node))


__all__ = ["MatrixProducts", "matmul_statements"]
