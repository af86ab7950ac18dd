"""Lowering graph nodes to loop IR kernels.

Supported so far (device="cpu" refuses the rest with a clear error): every elementwise op and
every fused elementwise or reduction kernel, the reductions sum/prod/mean/max/min, and the
index-map ops reshape, expand_dims/squeeze, transpose, broadcast_to and basic slicing, plus the
state ops.  Broadcasting is index arithmetic: an input's stride is 0 along a broadcast axis.
Adjacent axes along which every buffer is contiguous are merged first, so the common cases
(same-shape operands, scalars) become one flat loop that LLVM vectorises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from itertools import count
from typing import Any

import numpy as np

from graphc.errors import ArgumentError
from graphc.ir.registry import AbstractValue
from graphc.ir.shapes import broadcast_shapes
from graphc.ir.symbolic import DynamicDimError, Size, hint, is_symbolic
from graphc.ir.tensor import Tensor
from graphc.lower.loopir import (
    STATUS,
    AccInit,
    AccRef,
    AccSet,
    AccUpdate,
    BufferSpec,
    Check,
    Const,
    Expr,
    Gemm,
    IConst,
    IndexExpr,
    IndexValue,
    IValue,
    IVar,
    Load,
    Loop,
    LoopKernel,
    ScalarOp,
    Stmt,
    Store,
    iadd,
    imul,
)
from graphc.ops.kernel import Kernel, inner_avals
from graphc.ops.like import sum_to_axes

REDUCTIONS = {"sum": "add", "prod": "multiply", "mean": "add", "max": "maximum", "min": "minimum"}
INDEX_MAPS = ("reshape", "reshape_dims", "reshape_like", "transpose", "broadcast_to", "broadcast_like", "slice")


GEMM_PARALLEL_MIN_MACS = 1 << 21  # smaller products run on one thread (a pool wake-up costs ~10 us)


class Unsupported(ArgumentError):
    """An op the CPU backend cannot compile yet."""


def buffer_name(t: Tensor) -> str:
    return f"t{t.id}"


def row_major_strides(shape: Sequence[int]) -> list[int]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return strides[::-1]


def broadcast_strides(shape: Sequence[int], space: Sequence[int]) -> list[int]:
    """Element strides of a row-major ``shape`` read at each index of the broadcast ``space``."""
    own = row_major_strides(shape)
    lead = len(space) - len(shape)
    return [0] * lead + [0 if d == 1 and s != 1 else st for d, s, st in zip(shape, space[lead:], own)]


def collapse(space: Sequence[int], strides: Sequence[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """Merge adjacent axes along which every stride list is contiguous; drop size-1 axes."""
    dims: list[int] = []
    out: list[list[int]] = [[] for _ in strides]
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


class _Names:
    """Fresh loop-variable and accumulator names, and the faults kernels may report."""

    def __init__(self, threads: int = 1, target: Any = None) -> None:
        self.threads = threads  # the most threads a kernel may use (sizes per-thread scratch)
        self.target = target  # the codegen Target (GEMM blocking sizes its scratch); None: the host
        self._ids = count()
        self.faults: list[tuple[Tensor, str]] = []  # fault code k + 1 -> (node, message)
        self._scratch: list[BufferSpec] = []

    def fault(self, node: Tensor, message: str) -> int:
        self.faults.append((node, message))
        return len(self.faults)

    def var(self) -> IVar:
        return IVar(f"i{next(self._ids)}")

    def scratch(self, dtype: np.dtype, size: int) -> str:
        """A new scratch buffer for the kernel being lowered (the caller collects ``take_scratch()``)."""
        spec = BufferSpec(f"scratch{next(self._ids)}", np.dtype(dtype), size)
        self._scratch.append(spec)
        return spec.name

    def take_scratch(self) -> list[BufferSpec]:
        taken, self._scratch = self._scratch, []
        return taken

    def acc(self) -> str:
        return f"acc{next(self._ids)}"


def _loop_nest(extents: Sequence[int], names: _Names, body: Callable[[list[IVar]], list[Stmt]],
               parallel: bool = False) -> list[Stmt]:
    """Nested loops over ``extents`` around ``body(loop variables)``.  ``parallel=True`` marks the
    outermost loop safe to split across threads: the caller guarantees its iterations write disjoint
    elements."""
    variables = [names.var() for _ in extents]
    stmts = body(variables)
    for depth, (var, extent) in reversed(list(enumerate(zip(variables, extents)))):
        stmts = [Loop(var, extent, tuple(stmts), parallel and depth == 0)]
    return stmts


def _index(variables: Sequence[IndexExpr], strides: Sequence[int], offset: int = 0) -> IndexExpr:
    index: IndexExpr = IConst(offset)
    for v, s in zip(variables, strides):
        index = iadd(index, imul(v, s))
    return index


def _merge_index(ndim: int, kept: Sequence[int], outer: Sequence[IndexExpr], reduced: Sequence[int],
                 inner: Sequence[IndexExpr]) -> list[IndexExpr]:
    """The full index of an ``ndim``-axis array from the loop variables of its kept and reduced axes."""
    index: list[IndexExpr] = [IConst(0)] * ndim
    for d, v in zip(kept, outer):
        index[d] = v
    for d, v in zip(reduced, inner):
        index[d] = v
    return index


_I64, _BOOL = np.dtype(np.int64), np.dtype(bool)


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


def _finite_or_zero(m: Expr, dtype: np.dtype) -> Expr:
    return ScalarOp("where", (ScalarOp("isfinite", (m,), dtype, _BOOL), m, Const(0, dtype)), dtype, dtype)


def _checked_index(value: Expr, n: int) -> tuple[Expr, Expr]:
    """For an int64 ``value``: whether it lies in [0, n), and the value clamped to 0 when it does not
    (so a load or store with it never leaves the buffer; the caller reports the fault)."""
    inside = ScalarOp("logical_and", (ScalarOp("greater_equal", (value, Const(0, _I64)), _I64, _BOOL),
                                      ScalarOp("less", (value, Const(n, _I64)), _I64, _BOOL)), _BOOL, _BOOL)
    return inside, ScalarOp("where", (inside, value, Const(0, _I64)), _I64, _I64)


def _row_log_partition(names: _Names, extents: Sequence[int], load: Callable[[list[IVar]], Expr],
                       dtype: np.dtype) -> tuple[list[Stmt], Expr, Expr]:
    """Statements computing, over one row, m = max(x) (0 if not finite, as the reference does) and
    s = sum(exp(x - m)); returns them with the expressions for m and s."""
    top, total = names.acc(), names.acc()
    m: Expr = AccRef(top, dtype)
    shifted_exp: Callable[[list[IVar]], Expr] = lambda iv: ScalarOp(  # noqa: E731
        "exp", (ScalarOp("subtract", (load(iv), m), dtype, dtype),), dtype, dtype)
    stmts: list[Stmt] = [AccInit(top, Const(-math.inf, dtype)),
                         *_loop_nest(extents, names, lambda iv: [AccUpdate(top, "maximum", load(iv))]),
                         AccSet(top, _finite_or_zero(m, dtype)),
                         AccInit(total, Const(0, dtype)),
                         *_loop_nest(extents, names, lambda iv: [AccUpdate(total, "add", shifted_exp(iv))])]
    return stmts, m, AccRef(total, dtype)


# ---- expressions of elementwise subgraphs --------------------------------------------------------

def _scalar(node: Tensor, args: Sequence[Expr]) -> Expr:
    in_dtype = node.inputs[-1].dtype if node.op == "where" else node.inputs[0].dtype
    attrs = tuple((k, v) for k, v in node.attrs.items() if k == "dtype")
    return ScalarOp(node.op, tuple(args), in_dtype, node.dtype, attrs)


def _elementwise_expr(node: Tensor, leaf: Callable[[Tensor], Expr | None], memo: dict[int, Expr]) -> Expr:
    """The scalar expression computing ``node`` from the leaves (loads) that ``leaf`` provides."""
    if node.id in memo:
        return memo[node.id]
    found = leaf(node)
    if found is None:
        if node.opdef.family != "elementwise" and node.op != "constant":
            raise Unsupported(f"op {node.op} cannot be computed inside an elementwise loop on device 'cpu'")
        if node.op == "constant":
            value = node.attrs["value"]
            if value.size != 1:
                raise Unsupported("array constants inside a fused kernel are not lowered yet")
            found = Const(value.reshape(()).item(), node.dtype)
        elif node.op == "stop_gradient":
            found = _elementwise_expr(node.inputs[0], leaf, memo)
        else:
            found = _scalar(node, [_elementwise_expr(i, leaf, memo) for i in node.inputs])
    memo[node.id] = found
    return found


Values = Callable[[Mapping[int, Load]], Expr]
"""Builds an output's scalar expression from the loads of the input buffers (keyed by node id)."""


def _store_broadcast(outputs: Sequence[tuple[str, Values]], inputs: Mapping[int, tuple[str, AbstractValue]],
                     space: Sequence[int], names: _Names) -> list[Stmt]:
    """Loops over ``space`` storing each output's value; ``inputs`` maps node ids to (buffer, value)."""
    leaf_ids = list(inputs)
    strides = [broadcast_strides(inputs[i][1].shape, space) for i in leaf_ids]
    dims, collapsed = collapse(space, [*strides, row_major_strides(space)])
    in_strides, store_strides = collapsed[:-1], collapsed[-1]

    def body(variables: list[IVar]) -> list[Stmt]:
        loads = {i: Load(inputs[i][0], _index(variables, st), inputs[i][1].dtype)
                 for i, st in zip(leaf_ids, in_strides)}
        return [Store(buffer, _index(variables, store_strides), values(loads)) for buffer, values in outputs]

    return _loop_nest(dims, names, body, parallel=True)


def _node_values(node: Tensor) -> Values:
    return lambda loads: _elementwise_expr(node, lambda t: loads.get(t.id), {})


# ---- reductions ------------------------------------------------------------------------------------

def _reduction(node: Tensor, out_buffer: str, in_shape: Sequence[int], value: Callable[[list[IVar]], Expr],
               names: _Names) -> list[Stmt]:
    """Loops storing reduction ``node`` of the ``value`` (an expression over the input index)."""
    return _reduce(node.op, node.attrs["axes"], node.dtype, out_buffer, in_shape, value, names)


def _reduce(op: str, axes: Sequence[int], dtype: np.dtype, out_buffer: str, in_shape: Sequence[int],
            value: Callable[[list[IVar]], Expr], names: _Names) -> list[Stmt]:
    """Loops storing the ``op`` reduction over ``axes`` of ``value`` (kept axes in order, row-major).

    Rows are split across threads by the outer (kept) loop; when there are fewer rows than threads
    and the work is large, each row is cut into partial reductions instead (see :func:`_split_reduce`)."""
    kept = [d for d in range(len(in_shape)) if d not in axes]
    rows = math.prod(in_shape[d] for d in kept)
    if (names.threads > 1 and not any(is_symbolic(d) for d in in_shape) and rows < names.threads
            and rows * math.prod(in_shape[d] for d in axes) >= SPLIT_MIN):
        return _split_reduce(op, axes, dtype, out_buffer, in_shape, value, names)
    if axes and kept and kept[-1] == len(in_shape) - 1:
        return _reduce_in_place(op, axes, dtype, out_buffer, in_shape, value, names)
    out_strides = row_major_strides([in_shape[d] for d in kept])
    combine = REDUCTIONS[op]

    def outer(outer_vars: list[IVar]) -> list[Stmt]:
        acc = names.acc()
        body = _accumulate(acc, combine, dtype, in_shape, kept, outer_vars, axes, [in_shape[d] for d in axes],
                           {}, value, names)
        return [AccInit(acc, Const(_identity(op, dtype), dtype)), *body,
                Store(out_buffer, _index(outer_vars, out_strides), _finish(op, acc, dtype, in_shape, axes))]

    return _loop_nest([in_shape[d] for d in kept], names, outer, parallel=True)


SPLIT_MIN = 1 << 18  # elements a reduction needs before its rows are cut into per-thread parts


def _reduce_in_place(op: str, axes: Sequence[int], dtype: np.dtype, out_buffer: str, in_shape: Sequence[int],
                     value: Callable[[list[IVar]], Expr], names: _Names) -> list[Stmt]:
    """A reduction whose last axis is kept (a column sum, a bias gradient): the output is filled with
    the identity, then the input is walked in memory order folding each element into its output
    element, so the innermost loop runs along contiguous rows and vectorises.  Each output element
    still sees its inputs in the same order as a row-by-row reduction would."""
    kept = [d for d in range(len(in_shape)) if d not in axes]
    out_shape = [in_shape[d] for d in kept]
    out_strides = row_major_strides(out_shape)
    size = math.prod(out_shape)
    combine = REDUCTIONS[op]

    def fold(full: list[IVar]) -> list[Stmt]:
        where = _index([full[d] for d in kept], out_strides)
        x = cast_to(value(full), dtype)
        return [Store(out_buffer, where, ScalarOp(combine, (Load(out_buffer, where, dtype), x), dtype, dtype))]

    stmts = _loop_nest([size], names, lambda v: [Store(out_buffer, v[0], Const(_identity(op, dtype), dtype))],
                       parallel=True)
    stmts += _loop_nest(list(in_shape), names, fold, parallel=0 in kept)
    if op == "mean":
        n = size_value(math.prod(in_shape[d] for d in axes), dtype)
        stmts += _loop_nest([size], names, lambda v: [
            Store(out_buffer, v[0], ScalarOp("divide", (Load(out_buffer, v[0], dtype), n), dtype, dtype))],
            parallel=True)
    return stmts


def _accumulate(acc: str, combine: str, dtype: np.dtype, in_shape: Sequence[int], kept: Sequence[int],
                outer_vars: Sequence[IndexExpr], axes: Sequence[int], extents: Sequence[int],
                offsets: Mapping[int, IndexExpr], value: Callable[[list[IVar]], Expr], names: _Names) -> list[Stmt]:
    """Loops over ``extents`` of the reduced ``axes`` folding ``value`` into ``acc``; reduced axis ``d``
    is indexed ``offsets[d] + its loop variable`` (the range of a partial reduction)."""
    def inner(inner_vars: list[IVar]) -> list[Stmt]:
        index = [iadd(offsets[d], v) if d in offsets else v for d, v in zip(axes, inner_vars)]
        x = cast_to(value(_merge_index(len(in_shape), kept, outer_vars, axes, index)), dtype)
        return [AccUpdate(acc, combine, x)]

    return _loop_nest(extents, names, inner)


def _finish(op: str, acc: str, dtype: np.dtype, in_shape: Sequence[int], axes: Sequence[int]) -> Expr:
    result: Expr = AccRef(acc, dtype)
    if op == "mean":
        n = math.prod(in_shape[d] for d in axes)
        result = ScalarOp("divide", (result, size_value(n, dtype)), dtype, dtype)
    return result


def _split_reduce(op: str, axes: Sequence[int], dtype: np.dtype, out_buffer: str, in_shape: Sequence[int],
                  value: Callable[[list[IVar]], Expr], names: _Names) -> list[Stmt]:
    """A reduction of few long rows in two stages: the longest reduced axis is cut into ``parts``
    equal ranges reduced in parallel into a scratch buffer of partial results, then each row combines
    its parts (and the few elements left over by the equal cut)."""
    kept = [d for d in range(len(in_shape)) if d not in axes]
    kept_extents = [in_shape[d] for d in kept]
    rows = math.prod(kept_extents)
    cut = max(axes, key=lambda d: in_shape[d])
    parts = min(4 * names.threads, in_shape[cut])
    step = in_shape[cut] // parts
    left = in_shape[cut] - parts * step
    combine = REDUCTIONS[op]
    partials = names.scratch(dtype, rows * parts)
    row_strides = row_major_strides(kept_extents)
    identity = Const(_identity(op, dtype), dtype)

    def part(pv: list[IVar]) -> list[Stmt]:
        def row(outer_vars: list[IVar]) -> list[Stmt]:
            acc = names.acc()
            extents = [step if d == cut else in_shape[d] for d in axes]
            body = _accumulate(acc, combine, dtype, in_shape, kept, outer_vars, axes, extents,
                               {cut: imul(pv[0], step)}, value, names)
            row_index = _index(outer_vars, row_strides)
            return [AccInit(acc, identity), *body,
                    Store(partials, iadd(imul(row_index, parts), pv[0]), AccRef(acc, dtype))]

        return _loop_nest(kept_extents, names, row)

    def total(outer_vars: list[IVar]) -> list[Stmt]:
        acc = names.acc()
        row_index = _index(outer_vars, row_strides)
        gather = _loop_nest([parts], names, lambda p: [
            AccUpdate(acc, combine, Load(partials, iadd(imul(row_index, parts), p[0]), dtype))])
        extents = [left if d == cut else in_shape[d] for d in axes]
        rest = _accumulate(acc, combine, dtype, in_shape, kept, outer_vars, axes, extents,
                           {cut: IConst(parts * step)}, value, names) if left else []
        return [AccInit(acc, identity), *gather, *rest,
                Store(out_buffer, row_index, _finish(op, acc, dtype, in_shape, axes))]

    return [*_loop_nest([parts], names, part, parallel=True), *_loop_nest(kept_extents, names, total)]


def _identity(op: str, dtype: np.dtype) -> object:
    if op in ("sum", "mean"):
        return 0
    if op == "prod":
        return 1
    if dtype.kind == "f":
        return -math.inf if op == "max" else math.inf
    if dtype.kind == "b":
        return op != "max"
    info = np.iinfo(dtype)
    return int(info.min if op == "max" else info.max)


# ---- per node --------------------------------------------------------------------------------------

def lower_node(node: Tensor, avals: Mapping[int, AbstractValue], names: _Names) -> LoopKernel | None:
    """The loop kernel computing ``node`` (``None`` for nodes that need no code: sources, groups)."""
    if node.op in ("placeholder", "variable", "constant", "group", "kernel_output"):
        return None
    out = AbstractValue(avals[node.id].dtype, avals[node.id].shape)
    params = [BufferSpec(buffer_name(i), avals[i.id].dtype, math.prod(avals[i.id].shape)) for i in node.inputs
              if avals[i.id].parts is None]
    kernel = LoopKernel(f"k{node.id}_{node.op}", params)
    if node.op == "fused":
        from graphc.lower.extra import guard_integer_power  # (imports this module)

        return guard_integer_power(_lower_fused(node, avals, names), node, names)
    kernel.params.append(BufferSpec(buffer_name(node), out.dtype, math.prod(out.shape)))
    if node.opdef.family == "elementwise":
        inputs = {i.id: (buffer_name(i), avals[i.id]) for i in node.inputs}
        kernel.body = _store_broadcast([(buffer_name(node), _node_values(node))], inputs, out.shape, names)
    elif node.op in REDUCTIONS:
        x = node.inputs[0]
        shape = avals[x.id].shape
        strides = row_major_strides(shape)
        kernel.body = _reduction(node, buffer_name(node), shape,
                                 lambda full: Load(buffer_name(x), _index(full, strides), avals[x.id].dtype), names)
    elif node.op in INDEX_MAPS:
        kernel.body = _index_map(node, avals, names)
        if any(isinstance(stmt, Check) for stmt in kernel.body):
            kernel.params.append(BufferSpec(STATUS, np.dtype(np.int64), 1))
    elif node.op == "fill_like":
        constant_value = Const(node.attrs["value"], out.dtype)
        kernel.body = _store_broadcast([(buffer_name(node), lambda loads: constant_value)], {}, out.shape, names)
    elif node.op == "sum_to":
        g = node.inputs[0]
        shape = avals[g.id].shape
        strides = row_major_strides(shape)
        axes = sum_to_axes(shape, out.shape)
        kernel.body = _reduce("sum", axes, out.dtype, buffer_name(node), shape,
                              lambda full: Load(buffer_name(g), _index(full, strides), avals[g.id].dtype), names)
    elif node.op in ("take", "take_grad"):
        kernel.body = _take(node, avals, names)
        kernel.params.append(BufferSpec(STATUS, np.dtype(np.int64), 1))
    elif node.op in ("argmax", "argmin"):
        kernel.body = _arg_extremum(node, avals, names)
    elif node.op in ("softmax", "log_softmax", "logsumexp"):
        kernel.body = _softmax_family(node, avals, names)
    elif node.op == "one_hot":
        idx = node.inputs[0]
        depth = node.attrs["depth"]
        flat = math.prod(avals[idx.id].shape)

        def one_hot_body(v: list[IVar]) -> list[Stmt]:
            row, klass = v
            label = Load(buffer_name(idx), row, avals[idx.id].dtype)
            hit = ScalarOp("equal", (ScalarOp("cast", (label,), label.dtype, np.dtype(np.int64),
                                              (("dtype", np.dtype(np.int64)),)), IndexValue(klass)),
                           np.dtype(np.int64), np.dtype(bool))
            as_out = ScalarOp("cast", (hit,), np.dtype(bool), out.dtype, (("dtype", out.dtype),))
            return [Store(buffer_name(node), iadd(imul(row, depth), klass), as_out)]

        kernel.body = _loop_nest([flat, depth], names, one_hot_body, parallel=True)
    elif node.op == "softmax_cross_entropy":
        kernel.body = _cross_entropy(node, avals, names)
        if node.attrs["sparse"]:
            kernel.params.append(BufferSpec(STATUS, np.dtype(np.int64), 1))
    elif node.op == "matmul":
        a, b = node.inputs
        kernel.body, kernel.scratch = _matmul((buffer_name(a), avals[a.id]), (buffer_name(b), avals[b.id]),
                                              buffer_name(node), out.dtype, names)
        kernel.params += kernel.scratch
    elif node.op in ("assign", "assign_add"):
        var, value = node.inputs
        inputs = {i.id: (buffer_name(i), avals[i.id]) for i in (var, value)}
        if node.op == "assign":
            values: Values = lambda loads: loads[value.id]  # noqa: E731
        else:
            values = lambda loads: ScalarOp("add", (loads[var.id], loads[value.id]), out.dtype, out.dtype)  # noqa: E731
        kernel.body = _store_broadcast([(buffer_name(node), values)], inputs, out.shape, names)
    else:  # pad, concat, slice_grad, conv2d, pools... (lower/extra.py); it refuses what no module lowers
        from graphc.lower.extra import lower_other

        lower_other(node, avals, names, kernel)
    pending = names.take_scratch()
    kernel.scratch += pending
    kernel.params += pending
    from graphc.lower.extra import guard_integer_power

    return guard_integer_power(kernel, node, names)


def _take(node: Tensor, avals: Mapping[int, AbstractValue], names: _Names) -> list[Stmt]:
    """take: out[p, j, q] = x[p, idx[j], q]; take_grad: out (zeroed) [p, idx[j], q] += g[p, j, q].
    Negative indices count from the end; an index outside [-n, n) is a run-time fault (the load or
    store uses a clamped index, so memory is never touched out of bounds)."""
    if node.op == "take":
        source, idx = node.inputs
        gathered_shape = list(avals[source.id].shape)
    else:
        source, idx, like = node.inputs
        gathered_shape = list(avals[like.id].shape)
    axis = node.attrs["axis"]
    if axis is None:
        gathered_shape, axis = [math.prod(gathered_shape)], 0
    pre, n, post = math.prod(gathered_shape[:axis]), gathered_shape[axis], math.prod(gathered_shape[axis + 1:])
    count_j = math.prod(avals[idx.id].shape)
    i64, flag, dtype = np.dtype(np.int64), np.dtype(bool), avals[node.id].dtype
    code = names.fault(node, f"an index is out of range for an axis of size {n}")
    dst = buffer_name(node)
    stmts: list[Stmt] = []
    if node.op == "take_grad":
        total = pre * n * post
        stmts += _loop_nest([total] if total else [], names, lambda v: [Store(dst, v[0], Const(0, dtype))],
                            parallel=True)

    def body(v: list[IVar]) -> list[Stmt]:
        p, j, q = v
        raw = Load(buffer_name(idx), j, avals[idx.id].dtype)
        as64 = ScalarOp("cast", (raw,), raw.dtype, i64, (("dtype", i64),))
        wrapped = ScalarOp("where", (ScalarOp("less", (as64, Const(0, i64)), i64, flag),
                                     ScalarOp("add", (as64, Const(n, i64)), i64, i64), as64), i64, i64)
        inside, in_range = _checked_index(wrapped, n)
        clamped = IValue(in_range)
        gathered = iadd(imul(iadd(imul(p, n), clamped), post), q)
        compact = iadd(imul(iadd(imul(p, count_j), j), post), q)
        if node.op == "take":
            return [Check(inside, code), Store(dst, compact, Load(buffer_name(source), gathered, dtype))]
        added = ScalarOp("add", (Load(dst, gathered, dtype), Load(buffer_name(source), compact, dtype)), dtype, dtype)
        return [Check(inside, code), Store(dst, gathered, added)]

    if pre and count_j and post:
        stmts += _loop_nest([pre, count_j, post], names, body, parallel=True)
    return stmts


def _arg_extremum(node: Tensor, avals: Mapping[int, AbstractValue], names: _Names) -> list[Stmt]:
    """Index of the first maximum (minimum) along the axis, or of the flattened input; as NumPy,
    the first nan wins."""
    x = node.inputs[0]
    shape, dtype = list(avals[x.id].shape), avals[x.id].dtype
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
        best, first = names.acc(), names.acc()

        def at(k: IndexExpr) -> Expr:
            index = _merge_index(len(shape), kept, outer_vars, [axis], [k])
            return Load(src, _index(index, strides), dtype)

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
                *_loop_nest([n], names, lambda kv: [AccUpdate(best, extremum, at(kv[0]))]),
                AccInit(first, Const(n, i64)), *_loop_nest([n], names, find),
                Store(dst, _index(outer_vars, out_strides), AccRef(first, i64))]

    return _loop_nest([shape[d] for d in kept], names, outer, parallel=True)


def _rows(shape: Sequence[int], axes: Sequence[int]) -> tuple[list[int], list[int]]:
    kept = [d for d in range(len(shape)) if d not in axes]
    return kept, list(axes)


def _softmax_family(node: Tensor, avals: Mapping[int, AbstractValue], names: _Names) -> list[Stmt]:
    """Per row (the kept axes): m = max, s = sum(exp(x - m)); then softmax = exp(x - m) / s,
    log_softmax = x - m - log(s), logsumexp = m + log(s).  A row whose max is not finite uses m = 0,
    as the reference does."""
    x = node.inputs[0]
    shape, dtype = avals[x.id].shape, avals[x.id].dtype
    axes = node.attrs["axes"]
    kept, reduced = _rows(shape, axes)
    strides = row_major_strides(shape)
    src, dst = buffer_name(x), buffer_name(node)
    out_strides = row_major_strides([shape[d] for d in kept])

    def f(op: str, *args: Expr) -> Expr:
        return ScalarOp(op, tuple(args), dtype, dtype)

    def outer(outer_vars: list[IVar]) -> list[Stmt]:
        def full(inner_vars: list[IVar]) -> list[IndexExpr]:
            return _merge_index(len(shape), kept, outer_vars, reduced, inner_vars)

        def load(inner_vars: list[IVar]) -> Expr:
            return Load(src, _index(full(inner_vars), strides), dtype)

        stmts, m, s = _row_log_partition(names, [shape[d] for d in reduced], load, dtype)
        if node.op == "logsumexp":  # keepdims or not, a row's result has the kept axes' layout
            return [*stmts, Store(dst, _index(outer_vars, out_strides), f("add", m, f("log", s)))]

        def write(iv: list[IVar]) -> list[Stmt]:
            shifted = f("subtract", load(iv), m)
            value = f("divide", f("exp", shifted), s) if node.op == "softmax" else f("subtract", shifted, f("log", s))
            return [Store(dst, _index(full(iv), strides), value)]

        return [*stmts, *_loop_nest([shape[d] for d in reduced], names, write)]

    return _loop_nest([shape[d] for d in kept], names, outer, parallel=True)


def _cross_entropy(node: Tensor, avals: Mapping[int, AbstractValue], names: _Names) -> list[Stmt]:
    """Per example: the log-softmax of its logits row, then -logp[label] (sparse; a label outside
    [0, classes) is a run-time fault) or -sum(labels * logp) (dense, labels broadcast)."""
    logits, labels = node.inputs
    shape, dtype = avals[logits.id].shape, avals[logits.id].dtype
    classes = shape[-1]
    src, dst = buffer_name(logits), buffer_name(node)
    batch_shape = list(avals[node.id].shape)
    out_strides = row_major_strides(batch_shape)
    logit_strides = broadcast_strides(shape, [*batch_shape, classes])
    label_strides = broadcast_strides(avals[labels.id].shape, [*batch_shape, classes]
                                      if not node.attrs["sparse"] else batch_shape)

    def f(op: str, *args: Expr) -> Expr:
        return ScalarOp(op, tuple(args), dtype, dtype)

    def outer(bv: list[IVar]) -> list[Stmt]:
        result = names.acc()

        def logit(klass: IndexExpr) -> Expr:
            return Load(src, iadd(_index(bv, logit_strides[:-1]), imul(klass, logit_strides[-1])), dtype)

        stmts, m, s = _row_log_partition(names, [classes], lambda cv: logit(cv[0]), dtype)
        log_z = f("add", m, f("log", s))
        if node.attrs["sparse"]:
            label_dtype = avals[labels.id].dtype
            label = ScalarOp("cast", (Load(buffer_name(labels), _index(bv, label_strides), label_dtype),),
                             label_dtype, _I64, (("dtype", _I64),))
            inside, clamped = _checked_index(label, classes)
            picked = logit(IValue(clamped))
            return [*stmts, Check(inside, names.fault(node, f"a class label is out of range for {classes} classes")),
                    Store(dst, _index(bv, out_strides), f("subtract", log_z, picked))]
        label_dtype = avals[labels.id].dtype

        def accumulate(cv: list[IVar]) -> list[Stmt]:
            p = Load(buffer_name(labels), iadd(_index(bv, label_strides[:-1]), imul(cv[0], label_strides[-1])),
                     label_dtype)
            return [AccUpdate(result, "add", f("multiply", p, f("subtract", log_z, logit(cv[0]))))]

        return [*stmts, AccInit(result, Const(0, dtype)), *_loop_nest([classes], names, accumulate),
                Store(dst, _index(bv, out_strides), AccRef(result, dtype))]

    return _loop_nest(batch_shape, names, outer, parallel=True)


def _matmul(a: tuple[str, AbstractValue], b: tuple[str, AbstractValue], dst: str, dtype: np.dtype,
            names: _Names) -> tuple[list[Stmt], list[BufferSpec]]:
    """Batched matmul with NumPy's broadcasting and 1-D rules: for float32/float64 one call of the
    packed GEMM per matrix of the batch; for integers and bools loops with a dot-product accumulator.
    Returns the statements and the scratch buffers they need."""
    (src_a, a_aval), (src_b, b_aval) = a, b
    a_shape, b_shape = list(a_aval.shape), list(b_aval.shape)
    if len(a_shape) == 1:
        a_shape = [1, *a_shape]
    if len(b_shape) == 1:
        b_shape = [*b_shape, 1]
    m, k, n = a_shape[-2], a_shape[-1], b_shape[-1]
    batch = list(broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2])))
    a_batch = [s * m * k for s in broadcast_strides(a_shape[:-2], batch)]
    b_batch = [s * k * n for s in broadcast_strides(b_shape[:-2], batch)]
    out_strides = row_major_strides([*batch, m, n])
    a_dtype = a_aval.dtype
    if dtype.kind == "f" and m and n:
        from graphc.codegen.gemm import pack_buffer_elements

        threads = names.threads if hint(m * n * k) >= GEMM_PARALLEL_MIN_MACS else 1
        stride = pack_buffer_elements(m, n, k, dtype, names.target)
        pack = BufferSpec(f"{dst}_pack", dtype, stride * threads)

        def call(bv: list[IVar]) -> list[Stmt]:
            return [Gemm(src_a, _index(bv, a_batch), (k, 1), src_b, _index(bv, b_batch), (n, 1),
                         dst, _index(bv, [s * m * n for s in row_major_strides(batch)]), n, m, n, k, pack.name, dtype,
                         stride, threads)]

        return _loop_nest(batch, names, call), [pack]

    def outer(v: list[IVar]) -> list[Stmt]:
        *bv, i, j = v
        acc = names.acc()

        def inner(kv: list[IVar]) -> list[Stmt]:
            (kk,) = kv
            x = Load(src_a, iadd(_index(bv, a_batch), iadd(imul(i, k), kk)), a_dtype)
            y = Load(src_b, iadd(_index(bv, b_batch), iadd(imul(kk, n), j)), a_dtype)
            return [AccUpdate(acc, "add", ScalarOp("multiply", (x, y), a_dtype, dtype))]

        return [AccInit(acc, Const(0, dtype)), *_loop_nest([k], names, inner),
                Store(dst, _index(v, out_strides), AccRef(acc, dtype))]

    return _loop_nest([*batch, m, n], names, outer, parallel=True), []


def _index_map(node: Tensor, avals: Mapping[int, AbstractValue], names: _Names) -> list[Stmt]:
    """Copy kernels for ops that only move elements: the output index maps to one input index."""
    x = node.inputs[0]
    in_shape, out_shape = avals[x.id].shape, avals[node.id].shape
    src, dst = buffer_name(x), buffer_name(node)
    dtype = avals[x.id].dtype
    if node.op in ("reshape", "reshape_dims", "reshape_like"):
        n = math.prod(out_shape)
        return _loop_nest([n] if n != 1 else [], names, lambda v: [Store(dst, v[0] if v else IConst(0),
                                                                         Load(src, v[0] if v else IConst(0), dtype))],
                          parallel=True)
    if node.op in ("broadcast_to", "broadcast_like"):
        return _store_broadcast([(dst, lambda loads: loads[x.id])], {x.id: (src, avals[x.id])}, out_shape, names)
    if node.op == "transpose":
        perm = node.attrs["perm"]
        own = row_major_strides(in_shape)
        strides = [own[p] for p in perm]
        dims, (read, write) = collapse(out_shape, [strides, row_major_strides(out_shape)])
        return _loop_nest(dims, names, lambda v: [Store(dst, _index(v, write), Load(src, _index(v, read), dtype))],
                          parallel=True)
    view = slice_view(node, in_shape, names)
    if not isinstance(view, tuple):
        return view
    offset, strides = view
    dims, (read, write) = collapse(out_shape, [strides, row_major_strides(out_shape)])
    return _loop_nest(dims, names, lambda v: [Store(dst, _index(v, write), Load(src, _index(v, read, offset), dtype))],
                      parallel=True)


def slice_view(node: Tensor, shape: Sequence[int], names: _Names) -> tuple[int, list[int]] | list[Stmt]:
    """Where basic slice ``node`` (``attrs["index"]``) reads in a row-major array of ``shape``: the element
    offset of its first element and the stride of each result axis (0 for a new axis).  An int index
    outside its axis (whose size was unknown when the graph was built) instead gives the statements
    that report the run-time fault, NumPy's IndexError."""
    own = row_major_strides(shape)
    offset, strides, axis = 0, [], 0
    for entry in node.attrs["index"]:
        if entry[0] == "new":
            strides.append(0)
            continue
        if is_symbolic(shape[axis]) and not (entry[0] == "slice" and entry[1] is None and entry[2] is None
                                             and entry[3] in (None, 1)):
            raise DynamicDimError(f"only ':' can index the run-time dimension {axis}, not {_show_entry(entry)}")
        if entry[0] == "int":
            if not -shape[axis] <= entry[1] < shape[axis]:
                code = names.fault(node, f"IndexError: index {entry[1]} is out of bounds for axis {axis} "
                                         f"with size {shape[axis]}")
                return [Check(Const(False, _BOOL), code)]
            offset += (entry[1] % shape[axis]) * own[axis]
        elif is_symbolic(shape[axis]):
            strides.append(own[axis])
        else:
            start, _, step = slice(entry[1], entry[2], entry[3]).indices(shape[axis])
            offset += start * own[axis]
            strides.append(step * own[axis])
        axis += 1
    return offset, strides


def _show_entry(entry: tuple) -> str:
    if entry[0] == "int":
        return str(entry[1])
    return ":".join("" if v is None else str(v) for v in entry[1:])


def _lower_fused(node: Tensor, avals: Mapping[int, AbstractValue], names: _Names) -> LoopKernel:
    kernel: Kernel = node.attrs["kernel"]
    inner = inner_avals(kernel, [avals[i.id] for i in node.inputs])
    params = {p.id: (buffer_name(node.inputs[p.attrs["index"]]), inner[p.id]) for p in kernel.params}
    specs = [BufferSpec(buffer_name(i), avals[i.id].dtype, math.prod(avals[i.id].shape)) for i in node.inputs]
    outs = kernel_output_buffers(node)
    specs += [BufferSpec(b, inner[o.id].dtype, math.prod(inner[o.id].shape)) for b, o in zip(outs, kernel.outputs)]
    body: list[Stmt] = []
    scratch: list[BufferSpec] = []
    host_op = {"matmul_epilogue": "matmul", "conv2d_epilogue": "conv2d"}.get(kernel.kind)
    host = next((n for n in kernel.body if n.op == host_op), None)
    if host is not None:  # the matmul / conv2d fills a temporary that the epilogue then reads like an input
        a, b = host.inputs
        temp = f"{buffer_name(node)}_host"
        scratch.append(BufferSpec(temp, inner[host.id].dtype, math.prod(inner[host.id].shape)))
        operands = (params[a.id][0], inner[a.id]), (params[b.id][0], inner[b.id])
        if host.op == "matmul":
            stmts, pack = _matmul(*operands, temp, inner[host.id].dtype, names)
        else:
            from graphc.lower.lowering_nn import conv2d_statements  # (imports this module)

            stmts, pack = conv2d_statements(*operands, temp, host.attrs, names)
        body += stmts
        scratch += pack
        params = {**params, host.id: (temp, inner[host.id])}
    elementwise: dict[tuple[int, ...], list[tuple[str, Values]]] = {}  # one loop nest per output shape
    for buffer, out in zip(outs, kernel.outputs):
        if out.op not in REDUCTIONS and out.opdef.family == "elementwise":
            elementwise.setdefault(tuple(inner[out.id].shape), []).append((buffer, _node_values(out)))
    for shape, stores in elementwise.items():
        body += _store_broadcast(stores, params, shape, names)
    for buffer, out in zip(outs, kernel.outputs):
        if out.op not in REDUCTIONS and out.opdef.family == "elementwise":
            continue
        if out.op in REDUCTIONS or out.op == "logsumexp":  # (fusion.py may root a reduction at logsumexp)
            x = out.inputs[0]
            shape = inner[x.id].shape

            def value(full: list[IVar], x: Tensor = x, shape: Sequence[int] = shape) -> Expr:
                loads = {pid: Load(b, _index(full, broadcast_strides(a.shape, shape)), a.dtype)
                         for pid, (b, a) in params.items()}
                return _elementwise_expr(x, lambda t: loads.get(t.id), {})

            if out.op == "logsumexp":
                from graphc.lower.extra import logsumexp_statements  # (imports this module)

                body += logsumexp_statements(out.attrs["axes"], inner[out.id].dtype, buffer, shape, value, names)
            else:
                body += _reduction(out, buffer, shape, value, names)
        elif out is host:  # the matmul's own result is needed outside the kernel too
            body += _store_broadcast([(buffer, lambda loads, h=host: loads[h.id])], params, inner[out.id].shape, names)
        else:
            raise Unsupported(f"fused kernels of kind {kernel.kind} ({out.op}) are not supported on device 'cpu' yet")
    scratch += names.take_scratch()
    return LoopKernel(f"k{node.id}_fused_{kernel.kind}", specs + scratch, body, scratch)


def kernel_output_buffers(node: Tensor) -> list[str]:
    """The buffer of each output of fused ``node`` (the node's own buffer when it has one output)."""
    kernel: Kernel = node.attrs["kernel"]
    if len(kernel.outputs) == 1:
        return [buffer_name(node)]
    return [f"{buffer_name(node)}_{k}" for k in range(len(kernel.outputs))]


__all__ = ["INDEX_MAPS", "REDUCTIONS", "Unsupported", "buffer_name", "kernel_output_buffers", "lower_node"]
