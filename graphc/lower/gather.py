"""Lowering of gathers by index values: take, its adjoint take_grad, and one_hot.

An index outside its axis is a run-time fault; loads and stores use a clamped index, so memory is
never touched out of bounds.
"""

from __future__ import annotations

import math

import numpy as np

from graphc.ir.tensor import Tensor
from graphc.lower.builder import LoweringContext, buffer_name, checked_index, loop_nest
from graphc.lower.loopir import Check, Const, IndexValue, IValue, IVar, Load, ScalarOp, Stmt, Store, iadd, imul
from graphc.lower.registry import lowers


@lowers("take", "take_grad")
def take(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    """take: out[p, j, q] = x[p, idx[j], q]; take_grad: out (zeroed) [p, idx[j], q] += g[p, j, q].
    Negative indices count from the end; an index outside [-n, n) is a run-time fault (the load or
    store uses a clamped index, so memory is never touched out of bounds)."""
    if node.op == "take":
        source, idx = node.inputs
        gathered_shape = list(ctx.avals[source.id].shape)
    else:
        source, idx, like = node.inputs
        gathered_shape = list(ctx.avals[like.id].shape)
    axis = node.attrs["axis"]
    if axis is None:
        gathered_shape, axis = [math.prod(gathered_shape)], 0
    pre, n, post = math.prod(gathered_shape[:axis]), gathered_shape[axis], math.prod(gathered_shape[axis + 1:])
    count_j = math.prod(ctx.avals[idx.id].shape)
    i64, flag, dtype = np.dtype(np.int64), np.dtype(bool), ctx.avals[node.id].dtype
    code = ctx.fault(node, f"an index is out of range for an axis of size {n}")
    dst = buffer_name(node)
    stmts: list[Stmt] = []
    if node.op == "take_grad":
        total = pre * n * post
        stmts += loop_nest([total] if total else [], ctx, lambda v: [Store(dst, v[0], Const(0, dtype))],
                            parallel=True)

    def body(v: list[IVar]) -> list[Stmt]:
        p, j, q = v
        raw = Load(buffer_name(idx), j, ctx.avals[idx.id].dtype)
        as64 = ScalarOp("cast", (raw,), raw.dtype, i64, (("dtype", i64),))
        wrapped = ScalarOp("where", (ScalarOp("less", (as64, Const(0, i64)), i64, flag),
                                     ScalarOp("add", (as64, Const(n, i64)), i64, i64), as64), i64, i64)
        inside, in_range = checked_index(wrapped, n)
        clamped = IValue(in_range)
        gathered = iadd(imul(iadd(imul(p, n), clamped), post), q)
        compact = iadd(imul(iadd(imul(p, count_j), j), post), q)
        if node.op == "take":
            return [Check(inside, code), Store(dst, compact, Load(buffer_name(source), gathered, dtype))]
        added = ScalarOp("add", (Load(dst, gathered, dtype), Load(buffer_name(source), compact, dtype)), dtype, dtype)
        return [Check(inside, code), Store(dst, gathered, added)]

    if pre and count_j and post:
        # take_grad adds into the gathered element: two equal indices (j) add into the same one
        stmts += loop_nest([pre, count_j, post], ctx, body, parallel=[True, node.op == "take", True])
    return stmts


@lowers("one_hot")
def one_hot(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    idx = node.inputs[0]
    depth, out = node.attrs["depth"], ctx.aval(node)
    i64 = np.dtype(np.int64)

    def body(v: list[IVar]) -> list[Stmt]:
        row, klass = v
        label = Load(buffer_name(idx), row, ctx.aval(idx).dtype)
        hit = ScalarOp("equal", (ScalarOp("cast", (label,), label.dtype, i64, (("dtype", i64),)), IndexValue(klass)),
                       i64, np.dtype(bool))
        as_out = ScalarOp("cast", (hit,), np.dtype(bool), out.dtype, (("dtype", out.dtype),))
        return [Store(buffer_name(node), iadd(imul(row, depth), klass), as_out)]

    return loop_nest([math.prod(ctx.aval(idx).shape), depth], ctx, body, parallel=True)


__all__: list[str] = []
