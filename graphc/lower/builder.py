"""The loop builder: what every lowering rule builds loop IR with.

A rule gets a :class:`LoweringContext` (the shapes of this run, the backend's policy, fresh names,
scratch buffers and run-time faults) and builds statements with the helpers here: loop nests over
extents, row-major and broadcast index arithmetic, axis collapsing, strided copies and fills, casts.
Broadcasting is index arithmetic: an input's stride is 0 along a broadcast axis.  Adjacent axes along
which every buffer is contiguous are merged, so the common cases (same-shape operands, scalars)
become one flat loop that LLVM vectorises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from itertools import count

import numpy as np

from graphc.errors import ArgumentError
from graphc.ir.registry import AbstractValue
from graphc.ir.symbolic import Size, is_symbolic
from graphc.ir.tensor import Tensor
from graphc.lower.loopir import (
    BufferSpec,
    Const,
    Expr,
    IConst,
    IndexExpr,
    IndexValue,
    IVar,
    Load,
    Loop,
    ScalarOp,
    Stmt,
    Store,
    iadd,
    imul,
)
from graphc.lower.policy import LoweringPolicy
from graphc.ops.kernel import Kernel

I64, BOOL = np.dtype(np.int64), np.dtype(bool)
Operand = tuple[str, AbstractValue]
"""A buffer and the value it holds."""


class Unsupported(ArgumentError):
    """An op (or a case of one) that no lowering rule compiles yet."""


class LoweringContext:
    """What lowering one graph shares: its values' dtypes and shapes (``avals``), the backend's
    ``policy``, fresh loop-variable and accumulator names, the scratch buffers of the kernel being
    lowered, and the run-time faults kernels may report (code ``k + 1`` is ``faults[k]``)."""

    def __init__(self, avals: Mapping[int, AbstractValue], policy: LoweringPolicy | None = None) -> None:
        self.avals = avals
        self.policy = policy or LoweringPolicy()
        self._ids = count()
        self.faults: list[tuple[Tensor, str]] = []
        self._scratch: list[BufferSpec] = []

    @property
    def threads(self) -> int:
        return self.policy.threads

    def aval(self, t: Tensor) -> AbstractValue:
        return self.avals[t.id]

    def operand(self, t: Tensor) -> Operand:
        """``t``'s buffer and value."""
        return buffer_name(t), self.avals[t.id]

    def fault(self, node: Tensor, message: str) -> int:
        """A new fault code: a ``Check`` with it reports ``message`` about ``node``."""
        self.faults.append((node, message))
        return len(self.faults)

    def var(self) -> IVar:
        return IVar(f"i{next(self._ids)}")

    def acc(self) -> str:
        return f"acc{next(self._ids)}"

    def scratch(self, dtype: np.dtype, size: Size, name: str | None = None) -> str:
        """A new scratch buffer of the kernel being lowered, named ``name`` (which the caller makes
        unique, e.g. from the node's buffer name) or a fresh name."""
        spec = BufferSpec(name or f"scratch{next(self._ids)}", np.dtype(dtype), size)
        self._scratch.append(spec)
        return spec.name

    def take_scratch(self) -> list[BufferSpec]:
        """The scratch buffers asked for since the last call."""
        taken, self._scratch = self._scratch, []
        return taken


def buffer_name(t: Tensor) -> str:
    return f"t{t.id}"


def kernel_output_buffers(node: Tensor) -> list[str]:
    """The buffer of each output of fused ``node`` (the node's own buffer when it has one output)."""
    kernel: Kernel = node.attrs["kernel"]
    if len(kernel.outputs) == 1:
        return [buffer_name(node)]
    return [f"{buffer_name(node)}_{k}" for k in range(len(kernel.outputs))]


# ---- index arithmetic ----------------------------------------------------------------------------

def row_major_strides(shape: Sequence[Size]) -> list[Size]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return strides[::-1]


def broadcast_strides(shape: Sequence[Size], space: Sequence[Size]) -> list[Size]:
    """Element strides of a row-major ``shape`` read at each index of the broadcast ``space``."""
    own = row_major_strides(shape)
    lead = len(space) - len(shape)
    return [0] * lead + [0 if d == 1 and s != 1 else st for d, s, st in zip(shape, space[lead:], own)]


def collapse(space: Sequence[Size], strides: Sequence[Sequence[Size]]) -> tuple[list[Size], list[list[Size]]]:
    """Merge adjacent axes along which every stride list is contiguous; drop size-1 axes."""
    dims: list[Size] = []
    out: list[list[Size]] = [[] for _ in strides]
    for axis, extent in enumerate(space):
        if extent == 1:
            continue
        if dims and all(s[-1] == st[axis] * extent for s, st in zip(out, strides)):
            dims[-1] *= extent
            for s, st in zip(out, strides):
                s[-1] = st[axis]
            continue
        dims.append(extent)
        for s, st in zip(out, strides):
            s.append(st[axis])
    return dims, out


def linear_index(variables: Sequence[IndexExpr], strides: Sequence[Size], offset: Size = 0) -> IndexExpr:
    """``offset + sum(variable * stride)``."""
    index: IndexExpr = IConst(offset)
    for v, s in zip(variables, strides):
        index = iadd(index, imul(v, s))
    return index


def merge_index(ndim: int, kept: Sequence[int], outer: Sequence[IndexExpr], reduced: Sequence[int],
                inner: Sequence[IndexExpr]) -> list[IndexExpr]:
    """The full index of an ``ndim``-axis array from the loop variables of its kept and reduced axes."""
    index: list[IndexExpr] = [IConst(0)] * ndim
    for d, v in zip(kept, outer):
        index[d] = v
    for d, v in zip(reduced, inner):
        index[d] = v
    return index


def loop_nest(extents: Sequence[Size], ctx: LoweringContext, body: Callable[[list[IVar]], list[Stmt]],
              parallel: bool | Sequence[bool] = False) -> list[Stmt]:
    """Nested loops over ``extents`` around ``body(loop variables)``.  ``parallel=True`` marks every loop
    of the nest parallel (a sequence marks them one by one): the caller guarantees that, for fixed outer
    iterations, a marked loop's iterations write disjoint elements and read nothing another writes.  The
    CPU splits a kernel's outermost parallel loop across threads; a GPU spreads a nest of them over its
    threads."""
    flags = list(parallel) if not isinstance(parallel, bool) else [parallel] * len(extents)
    variables = [ctx.var() for _ in extents]
    stmts = body(variables)
    for var, extent, flag in reversed(list(zip(variables, extents, flags))):
        stmts = [Loop(var, extent, tuple(stmts), flag)]
    return stmts


# ---- scalar helpers --------------------------------------------------------------------------------

def cast_to(x: Expr, dtype: np.dtype) -> Expr:
    """``x`` as ``dtype`` (itself when it already is)."""
    if x.dtype == dtype:  # type: ignore[union-attr]
        return x
    return ScalarOp("cast", (x,), x.dtype, dtype, (("dtype", dtype),))  # type: ignore[union-attr]


def size_value(n: Size, dtype: np.dtype) -> Expr:
    """The element count ``n`` as a float value of ``dtype`` (computed at run time when symbolic)."""
    if is_symbolic(n):
        return cast_to(IndexValue(IConst(n)), dtype)
    return Const(float(n), dtype)


def finite_or_zero(m: Expr, dtype: np.dtype) -> Expr:
    return ScalarOp("where", (ScalarOp("isfinite", (m,), dtype, BOOL), m, Const(0, dtype)), dtype, dtype)


def checked_index(value: Expr, n: Size) -> tuple[Expr, Expr]:
    """For an int64 ``value``: whether it lies in [0, n), and the value clamped to 0 when it does not
    (so a load or store with it never leaves the buffer; the caller reports the fault)."""
    inside = ScalarOp("logical_and", (ScalarOp("greater_equal", (value, Const(0, I64)), I64, BOOL),
                                      ScalarOp("less", (value, Const(n, I64)), I64, BOOL)), BOOL, BOOL)
    return inside, ScalarOp("where", (inside, value, Const(0, I64)), I64, I64)


# ---- whole-buffer statements -------------------------------------------------------------------------

def copy_block(dst: str, dst_offset: IndexExpr | Size, dst_strides: Sequence[Size], src: str,
               src_offset: IndexExpr | Size, src_strides: Sequence[Size], space: Sequence[Size], dtype: np.dtype,
               ctx: LoweringContext, add: bool = False, parallel: bool = True) -> list[Stmt]:
    """``dst[dst_offset + i . dst_strides] (+)= src[src_offset + i . src_strides]`` for every ``i`` in ``space``."""
    if not math.prod(space):
        return []
    dims, (write, read) = collapse(space, [dst_strides, src_strides])
    dst_at = dst_offset if isinstance(dst_offset, IndexExpr) else IConst(dst_offset)
    src_at = src_offset if isinstance(src_offset, IndexExpr) else IConst(src_offset)

    def body(v: list[IVar]) -> list[Stmt]:
        at = iadd(dst_at, linear_index(v, write))
        value: Expr = Load(src, iadd(src_at, linear_index(v, read)), dtype)
        if add:
            value = ScalarOp("add", (Load(dst, at, dtype), value), dtype, dtype)
        return [Store(dst, at, value)]

    return loop_nest(dims, ctx, body, parallel=parallel)


def fill_block(dst: str, offset: IndexExpr | Size, strides: Sequence[Size], space: Sequence[Size], value: Expr,
               ctx: LoweringContext, parallel: bool = True) -> list[Stmt]:
    """``dst[offset + i . strides] = value`` for every ``i`` in ``space``."""
    if not math.prod(space):
        return []
    dims, (write,) = collapse(space, [strides])
    at = offset if isinstance(offset, IndexExpr) else IConst(offset)
    return loop_nest(dims, ctx, lambda v: [Store(dst, iadd(at, linear_index(v, write)), value)], parallel=parallel)


def zero_fill(dst: str, size: Size, dtype: np.dtype, ctx: LoweringContext, offset: IndexExpr | Size = 0,
              parallel: bool = True) -> list[Stmt]:
    """``size`` zeros written to ``dst`` from ``offset``."""
    return fill_block(dst, offset, [1], [size], Const(0, dtype), ctx, parallel)


__all__ = ["BOOL", "I64", "LoweringContext", "Operand", "Unsupported", "broadcast_strides", "buffer_name",
           "cast_to", "checked_index", "collapse", "copy_block", "fill_block", "finite_or_zero",
           "kernel_output_buffers", "linear_index", "loop_nest", "merge_index", "row_major_strides", "size_value",
           "zero_fill"]
