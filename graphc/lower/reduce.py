"""Lowering of reductions: every op with a ``Reduction`` fold (sum, prod, mean, max, min), sum_to,
argmax / argmin, and the log-partition rows logsumexp and the softmax family share.

A reduction is a loop over the kept axes around an accumulator loop over the reduced axes.  Rows are
split across threads by the outer loop; when the last axis is kept (a column sum) the input is walked
in memory order folding each element into its output element instead, so the inner loop vectorises;
when there are fewer rows than threads and the work is large, each row is cut into partial
reductions.  Float folds are reassociated by the backend (see docs/numerics.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from graphc.ir.registry import Reduction, get_op
from graphc.ir.symbolic import Size, is_symbolic
from graphc.ir.tensor import Tensor
from graphc.lower.builder import (
    LoweringContext,
    Unsupported,
    buffer_name,
    cast_to,
    finite_or_zero,
    linear_index,
    loop_nest,
    merge_index,
    row_major_strides,
    size_value,
)
from graphc.lower.loopir import (
    AccInit,
    AccRef,
    AccSet,
    AccUpdate,
    Const,
    Expr,
    IConst,
    IndexExpr,
    IndexValue,
    IVar,
    Load,
    ScalarOp,
    Stmt,
    Store,
    iadd,
    imul,
)
from graphc.lower.registry import lowers
from graphc.ops.like import sum_to_axes

Value = Callable[[list[IVar]], Expr]
"""The value reduced, as an expression of the full input index."""


def load_input(x: Tensor, ctx: LoweringContext) -> Value:
    """``x``'s elements, read from its buffer."""
    strides = row_major_strides(ctx.aval(x).shape)
    return lambda full: Load(buffer_name(x), linear_index(full, strides), ctx.aval(x).dtype)


@lowers(family="reduce")
def reduction(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    x = node.inputs[0]
    return reduction_statements(node, ctx.aval(node).dtype, buffer_name(node), ctx.aval(x).shape, load_input(x, ctx),
                                ctx)


@lowers("sum_to")
def sum_to(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    g = node.inputs[0]
    shape, out = ctx.aval(g).shape, ctx.aval(node)
    fold = get_op("sum").reduction
    assert fold is not None
    return reduce_statements(fold, sum_to_axes(shape, out.shape), out.dtype, buffer_name(node), shape,
                             load_input(g, ctx), ctx)


def reduction_statements(node: Tensor, dtype: np.dtype, out_buffer: str, in_shape: Sequence[Size], value: Value,
                         ctx: LoweringContext) -> list[Stmt]:
    """Loops storing reduction ``node`` (an op with a ``Reduction`` fold; its result of ``dtype``) of
    ``value`` (an expression of the input index: a load, or a fused kernel's elementwise work)."""
    fold = node.opdef.reduction
    if fold is None or fold.combine is None:
        if node.op == "logsumexp":
            return logsumexp_statements(node.attrs["axes"], dtype, out_buffer, in_shape, value, ctx)
        raise Unsupported(f"reduction {node.op} has no fold to lower")
    return reduce_statements(fold, node.attrs["axes"], dtype, out_buffer, in_shape, value, ctx)


def reduce_statements(fold: Reduction, axes: Sequence[int], dtype: np.dtype, out_buffer: str,
                      in_shape: Sequence[Size], value: Value, ctx: LoweringContext) -> list[Stmt]:
    """Loops storing the reduction ``fold`` over ``axes`` of ``value`` (kept axes in order, row-major).

    Rows are split across threads by the outer (kept) loop; when there are fewer rows than threads
    and the work is large, each row is cut into partial reductions instead (see :func:`_split_reduce`)."""
    kept = [d for d in range(len(in_shape)) if d not in axes]
    rows = math.prod(in_shape[d] for d in kept)
    if (ctx.threads > 1 and not any(is_symbolic(d) for d in in_shape) and rows < ctx.threads
            and rows * math.prod(in_shape[d] for d in axes) >= ctx.policy.split_reduce_min):
        return _split_reduce(fold, axes, dtype, out_buffer, in_shape, value, ctx)
    if axes and kept and kept[-1] == len(in_shape) - 1 and ctx.policy.fold_in_memory_order:
        return _reduce_in_place(fold, axes, dtype, out_buffer, in_shape, value, ctx)
    out_strides = row_major_strides([in_shape[d] for d in kept])
    combine = fold.combine
    assert combine is not None and fold.identity is not None

    def outer(outer_vars: list[IVar]) -> list[Stmt]:
        acc = ctx.acc()
        body = _accumulate(acc, combine, dtype, in_shape, kept, outer_vars, axes, [in_shape[d] for d in axes],
                           {}, value, ctx)
        return [AccInit(acc, Const(fold.identity(dtype), dtype)), *body,
                Store(out_buffer, linear_index(outer_vars, out_strides), _finish(fold, acc, dtype, in_shape, axes))]

    return loop_nest([in_shape[d] for d in kept], ctx, outer, parallel=True)


def _reduce_in_place(fold: Reduction, axes: Sequence[int], dtype: np.dtype, out_buffer: str, in_shape: Sequence[int],
                     value: Value, ctx: LoweringContext) -> list[Stmt]:
    """A reduction whose last axis is kept (a column sum, a bias gradient): the output is filled with
    the identity, then the input is walked in memory order folding each element into its output
    element, so the innermost loop runs along contiguous rows and vectorises.  Each output element
    still sees its inputs in the same order as a row-by-row reduction would."""
    kept = [d for d in range(len(in_shape)) if d not in axes]
    out_shape = [in_shape[d] for d in kept]
    out_strides = row_major_strides(out_shape)
    size = math.prod(out_shape)
    combine = fold.combine
    assert combine is not None and fold.identity is not None

    def fold_into(full: list[IVar]) -> list[Stmt]:
        where = linear_index([full[d] for d in kept], out_strides)
        x = cast_to(value(full), dtype)
        return [Store(out_buffer, where, ScalarOp(combine, (Load(out_buffer, where, dtype), x), dtype, dtype))]

    stmts = loop_nest([size], ctx, lambda v: [Store(out_buffer, v[0], Const(fold.identity(dtype), dtype))],
                       parallel=True)
    # the leading kept dims are independent; everything from the first reduced dim in folds into shared elements
    leading = next((d for d in range(len(in_shape)) if d not in kept), len(in_shape))
    stmts += loop_nest(list(in_shape), ctx, fold_into, parallel=[d < leading for d in range(len(in_shape))])
    if fold.mean:
        n = size_value(math.prod(in_shape[d] for d in axes), dtype)
        stmts += loop_nest([size], ctx, lambda v: [
            Store(out_buffer, v[0], ScalarOp("divide", (Load(out_buffer, v[0], dtype), n), dtype, dtype))],
            parallel=True)
    return stmts


def _accumulate(acc: str, combine: str, dtype: np.dtype, in_shape: Sequence[int], kept: Sequence[int],
                outer_vars: Sequence[IndexExpr], axes: Sequence[int], extents: Sequence[int],
                offsets: Mapping[int, IndexExpr], value: Value, ctx: LoweringContext) -> list[Stmt]:
    """Loops over ``extents`` of the reduced ``axes`` folding ``value`` into ``acc``; reduced axis ``d``
    is indexed ``offsets[d] + its loop variable`` (the range of a partial reduction)."""
    def inner(inner_vars: list[IVar]) -> list[Stmt]:
        index = [iadd(offsets[d], v) if d in offsets else v for d, v in zip(axes, inner_vars)]
        x = cast_to(value(merge_index(len(in_shape), kept, outer_vars, axes, index)), dtype)
        return [AccUpdate(acc, combine, x)]

    return loop_nest(extents, ctx, inner)


def _finish(fold: Reduction, acc: str, dtype: np.dtype, in_shape: Sequence[Size], axes: Sequence[int]) -> Expr:
    result: Expr = AccRef(acc, dtype)
    if fold.mean:
        n = math.prod(in_shape[d] for d in axes)
        result = ScalarOp("divide", (result, size_value(n, dtype)), dtype, dtype)
    return result


def _split_reduce(fold: Reduction, axes: Sequence[int], dtype: np.dtype, out_buffer: str, in_shape: Sequence[int],
                  value: Value, ctx: LoweringContext) -> list[Stmt]:
    """A reduction of few long rows in two stages: the longest reduced axis is cut into ``parts``
    equal ranges reduced in parallel into a scratch buffer of partial results, then each row combines
    its parts (and the few elements left over by the equal cut)."""
    kept = [d for d in range(len(in_shape)) if d not in axes]
    kept_extents = [in_shape[d] for d in kept]
    rows = math.prod(kept_extents)
    cut = max(axes, key=lambda d: in_shape[d])
    parts = min(4 * ctx.threads, in_shape[cut])
    step = in_shape[cut] // parts
    left = in_shape[cut] - parts * step
    combine = fold.combine
    assert combine is not None and fold.identity is not None
    partials = ctx.scratch(dtype, rows * parts)
    row_strides = row_major_strides(kept_extents)
    identity = Const(fold.identity(dtype), dtype)

    def part(pv: list[IVar]) -> list[Stmt]:
        def row(outer_vars: list[IVar]) -> list[Stmt]:
            acc = ctx.acc()
            extents = [step if d == cut else in_shape[d] for d in axes]
            body = _accumulate(acc, combine, dtype, in_shape, kept, outer_vars, axes, extents,
                               {cut: imul(pv[0], step)}, value, ctx)
            row_index = linear_index(outer_vars, row_strides)
            return [AccInit(acc, identity), *body,
                    Store(partials, iadd(imul(row_index, parts), pv[0]), AccRef(acc, dtype))]

        return loop_nest(kept_extents, ctx, row)

    def total(outer_vars: list[IVar]) -> list[Stmt]:
        acc = ctx.acc()
        row_index = linear_index(outer_vars, row_strides)
        gather = loop_nest([parts], ctx, lambda p: [
            AccUpdate(acc, combine, Load(partials, iadd(imul(row_index, parts), p[0]), dtype))])
        extents = [left if d == cut else in_shape[d] for d in axes]
        rest = _accumulate(acc, combine, dtype, in_shape, kept, outer_vars, axes, extents,
                           {cut: IConst(parts * step)}, value, ctx) if left else []
        return [AccInit(acc, identity), *gather, *rest,
                Store(out_buffer, row_index, _finish(fold, acc, dtype, in_shape, axes))]

    return [*loop_nest([parts], ctx, part, parallel=True), *loop_nest(kept_extents, ctx, total)]


@lowers("argmax", "argmin")
def arg_extremum(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    """Index of the first maximum (minimum) along the axis, or of the flattened input; as NumPy,
    the first nan wins."""
    x = node.inputs[0]
    shape, dtype = list(ctx.aval(x).shape), ctx.aval(x).dtype
    axis = node.attrs["axis"]
    if axis is None:
        shape, axis = [math.prod(shape)], 0
    kept = [d for d in range(len(shape)) if d != axis]
    strides, out_strides = row_major_strides(shape), row_major_strides([shape[d] for d in kept])
    i64, flag = np.dtype(np.int64), np.dtype(bool)
    src, dst = buffer_name(x), buffer_name(node)

    extremum = "maximum" if node.op == "argmax" else "minimum"
    n = shape[axis]

    def outer(outer_vars: list[IVar]) -> list[Stmt]:
        # two vectorisable passes: the extremum (nan if any), then the first index that holds it
        best, first = ctx.acc(), ctx.acc()

        def at(k: IndexExpr) -> Expr:
            index = merge_index(len(shape), kept, outer_vars, [axis], [k])
            return Load(src, linear_index(index, strides), dtype)

        def find(kv: list[IVar]) -> list[Stmt]:
            x_k, top = at(kv[0]), AccRef(best, dtype)
            hit: Expr = ScalarOp("equal", (x_k, top), dtype, flag)
            if dtype.kind == "f":
                both_nan = ScalarOp("logical_and", (ScalarOp("isnan", (x_k,), dtype, flag),
                                                    ScalarOp("isnan", (top,), dtype, flag)), flag, flag)
                hit = ScalarOp("logical_or", (hit, both_nan), flag, flag)
            candidate = ScalarOp("where", (hit, IndexValue(kv[0]), Const(n, i64)), i64, i64)
            return [AccUpdate(first, "minimum", candidate)]

        return [AccInit(best, at(IConst(0))),
                *loop_nest([n], ctx, lambda kv: [AccUpdate(best, extremum, at(kv[0]))]),
                AccInit(first, Const(n, i64)), *loop_nest([n], ctx, find),
                Store(dst, linear_index(outer_vars, out_strides), AccRef(first, i64))]

    return loop_nest([shape[d] for d in kept], ctx, outer, parallel=True)


def row_log_partition(ctx: LoweringContext, extents: Sequence[int], load: Callable[[list[IVar]], Expr],
                       dtype: np.dtype) -> tuple[list[Stmt], Expr, Expr]:
    """Statements computing, over one row, m = max(x) (0 if not finite, as the reference does) and
    s = sum(exp(x - m)); returns them with the expressions for m and s."""
    top, total = ctx.acc(), ctx.acc()
    m: Expr = AccRef(top, dtype)
    shifted_exp: Callable[[list[IVar]], Expr] = lambda iv: ScalarOp(  # noqa: E731
        "exp", (ScalarOp("subtract", (load(iv), m), dtype, dtype),), dtype, dtype)
    stmts: list[Stmt] = [AccInit(top, Const(-math.inf, dtype)),
                         *loop_nest(extents, ctx, lambda iv: [AccUpdate(top, "maximum", load(iv))]),
                         AccSet(top, finite_or_zero(m, dtype)),
                         AccInit(total, Const(0, dtype)),
                         *loop_nest(extents, ctx, lambda iv: [AccUpdate(total, "add", shifted_exp(iv))])]
    return stmts, m, AccRef(total, dtype)


def logsumexp_statements(axes: Sequence[int], dtype: np.dtype, out_buffer: str, in_shape: Sequence[int],
                         value: Value, ctx: LoweringContext) -> list[Stmt]:
    """Loops storing logsumexp over ``axes`` of ``value`` (an expression of the full input index, e.g. a
    fused kernel's elementwise work): per row, m = max (0 if not finite) and log(sum(exp(x - m))) + m,
    as the reference computes it; the kept axes are stored in order, row-major."""
    kept = [d for d in range(len(in_shape)) if d not in axes]
    out_strides = row_major_strides([in_shape[d] for d in kept])

    def outer(outer_vars: list[IVar]) -> list[Stmt]:
        def load(inner_vars: list[IVar]) -> Expr:
            return cast_to(value(merge_index(len(in_shape), kept, outer_vars, axes, inner_vars)), dtype)

        stmts, m, total = row_log_partition(ctx, [in_shape[d] for d in axes], load, dtype)
        result = ScalarOp("add", (m, ScalarOp("log", (total,), dtype, dtype)), dtype, dtype)
        return [*stmts, Store(out_buffer, linear_index(outer_vars, out_strides), result)]

    return loop_nest([in_shape[d] for d in kept], ctx, outer, parallel=True)


__all__ = ["Value", "load_input", "logsumexp_statements", "reduce_statements", "reduction_statements",
           "row_log_partition"]
