"""Lowering of the softmax family and softmax cross-entropy: one row of the input at a time."""

from __future__ import annotations

from graphc.ir.tensor import Tensor
from graphc.lower.builder import (
    I64,
    LoweringContext,
    broadcast_strides,
    buffer_name,
    checked_index,
    linear_index,
    loop_nest,
    merge_index,
    row_major_strides,
)
from graphc.lower.loopir import (
    AccInit,
    AccRef,
    AccUpdate,
    Check,
    Const,
    Expr,
    IndexExpr,
    IValue,
    IVar,
    Load,
    ScalarOp,
    Stmt,
    Store,
    iadd,
    imul,
)
from graphc.lower.reduce import row_log_partition
from graphc.lower.registry import lowers


@lowers("softmax", "log_softmax")
def softmax_family(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    """Per row (the kept axes): m = max, s = sum(exp(x - m)); then softmax = exp(x - m) / s,
    log_softmax = x - m - log(s).  A row whose max is not finite uses m = 0, as the reference does
    (logsumexp = m + log(s) is a reduction: :func:`graphc.lower.reduce.logsumexp_statements`)."""
    x = node.inputs[0]
    shape, dtype = ctx.avals[x.id].shape, ctx.avals[x.id].dtype
    axes = node.attrs["axes"]
    kept = [d for d in range(len(shape)) if d not in axes]
    reduced = list(axes)
    strides = row_major_strides(shape)
    src, dst = buffer_name(x), buffer_name(node)

    def f(op: str, *args: Expr) -> Expr:
        return ScalarOp(op, tuple(args), dtype, dtype)

    def outer(outer_vars: list[IVar]) -> list[Stmt]:
        def full(inner_vars: list[IVar]) -> list[IndexExpr]:
            return merge_index(len(shape), kept, outer_vars, reduced, inner_vars)

        def load(inner_vars: list[IVar]) -> Expr:
            return Load(src, linear_index(full(inner_vars), strides), dtype)

        stmts, m, s = row_log_partition(ctx, [shape[d] for d in reduced], load, dtype)

        def write(iv: list[IVar]) -> list[Stmt]:
            shifted = f("subtract", load(iv), m)
            value = f("divide", f("exp", shifted), s) if node.op == "softmax" else f("subtract", shifted, f("log", s))
            return [Store(dst, linear_index(full(iv), strides), value)]

        return [*stmts, *loop_nest([shape[d] for d in reduced], ctx, write, parallel=True)]

    return loop_nest([shape[d] for d in kept], ctx, outer, parallel=True)


@lowers("softmax_cross_entropy")
def cross_entropy(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    """Per example: the log-softmax of its logits row, then -logp[label] (sparse; a label outside
    [0, classes) is a run-time fault) or -sum(labels * logp) (dense, labels broadcast)."""
    logits, labels = node.inputs
    shape, dtype = ctx.avals[logits.id].shape, ctx.avals[logits.id].dtype
    classes = shape[-1]
    src, dst = buffer_name(logits), buffer_name(node)
    batch_shape = list(ctx.avals[node.id].shape)
    out_strides = row_major_strides(batch_shape)
    logit_strides = broadcast_strides(shape, [*batch_shape, classes])
    label_strides = broadcast_strides(ctx.avals[labels.id].shape, [*batch_shape, classes]
                                      if not node.attrs["sparse"] else batch_shape)

    def f(op: str, *args: Expr) -> Expr:
        return ScalarOp(op, tuple(args), dtype, dtype)

    def outer(bv: list[IVar]) -> list[Stmt]:
        result = ctx.acc()

        def logit(klass: IndexExpr) -> Expr:
            return Load(src, iadd(linear_index(bv, logit_strides[:-1]), imul(klass, logit_strides[-1])), dtype)

        stmts, m, s = row_log_partition(ctx, [classes], lambda cv: logit(cv[0]), dtype)
        log_z = f("add", m, f("log", s))
        if node.attrs["sparse"]:
            label_dtype = ctx.avals[labels.id].dtype
            label = ScalarOp("cast", (Load(buffer_name(labels), linear_index(bv, label_strides), label_dtype),),
                             label_dtype, I64, (("dtype", I64),))
            inside, clamped = checked_index(label, classes)
            picked = logit(IValue(clamped))
            return [*stmts, Check(inside, ctx.fault(node, f"a class label is out of range for {classes} classes")),
                    Store(dst, linear_index(bv, out_strides), f("subtract", log_z, picked))]
        label_dtype = ctx.avals[labels.id].dtype

        def accumulate(cv: list[IVar]) -> list[Stmt]:
            p = Load(buffer_name(labels), iadd(linear_index(bv, label_strides[:-1]), imul(cv[0], label_strides[-1])),
                     label_dtype)
            return [AccUpdate(result, "add", f("multiply", p, f("subtract", log_z, logit(cv[0]))))]

        return [*stmts, AccInit(result, Const(0, dtype)), *loop_nest([classes], ctx, accumulate),
                Store(dst, linear_index(bv, out_strides), AccRef(result, dtype))]

    return loop_nest(batch_shape, ctx, outer, parallel=True)


__all__: list[str] = []
