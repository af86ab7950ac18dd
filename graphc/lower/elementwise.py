"""Lowering of elementwise work: every elementwise op, ``fill_like`` and the Variable updates.

An elementwise subgraph becomes one scalar expression (``ScalarOp`` trees naming graphc ops, whose
scalar semantics each backend emits in one place) stored over the broadcast iteration space.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from graphc.ir.registry import AbstractValue
from graphc.ir.tensor import Tensor
from graphc.lower.builder import (
    LoweringContext,
    Unsupported,
    broadcast_strides,
    buffer_name,
    collapse,
    linear_index,
    loop_nest,
    row_major_strides,
)
from graphc.lower.loopir import Const, Expr, IVar, Load, ScalarOp, Stmt, Store
from graphc.lower.registry import lowers

Values = Callable[[Mapping[int, Load]], Expr]
"""Builds an output's scalar expression from the loads of the input buffers (keyed by node id)."""


def scalar_op(node: Tensor, args: Sequence[Expr]) -> Expr:
    """Elementwise ``node`` applied to scalar ``args``."""
    in_dtype = node.inputs[-1].dtype if node.op == "where" else node.inputs[0].dtype
    attrs = tuple((k, v) for k, v in node.attrs.items() if k == "dtype")
    return ScalarOp(node.op, tuple(args), in_dtype, node.dtype, attrs)


def elementwise_expr(node: Tensor, leaf: Callable[[Tensor], Expr | None], memo: dict[int, Expr]) -> Expr:
    """The scalar expression computing ``node`` from the leaves (loads) that ``leaf`` provides."""
    if node.id in memo:
        return memo[node.id]
    found = leaf(node)
    if found is None:
        if node.opdef.family != "elementwise" and node.op != "constant":
            raise Unsupported(f"op {node.op} cannot be computed inside an elementwise loop")
        if node.op == "constant":
            value = node.attrs["value"]
            if value.size != 1:
                raise Unsupported("array constants inside a fused kernel are not lowered yet")
            found = Const(value.reshape(()).item(), node.dtype)
        elif node.op == "stop_gradient":
            found = elementwise_expr(node.inputs[0], leaf, memo)
        else:
            found = scalar_op(node, [elementwise_expr(i, leaf, memo) for i in node.inputs])
    memo[node.id] = found
    return found


def node_values(node: Tensor) -> Values:
    """``node``'s value from the loads of the buffers it (or the elementwise work under it) reads."""
    return lambda loads: elementwise_expr(node, lambda t: loads.get(t.id), {})


def store_broadcast(outputs: Sequence[tuple[str, Values]], inputs: Mapping[int, tuple[str, AbstractValue]],
                    space: Sequence[int], ctx: LoweringContext) -> list[Stmt]:
    """Loops over ``space`` storing each output's value; ``inputs`` maps node ids to (buffer, value)."""
    leaf_ids = list(inputs)
    strides = [broadcast_strides(inputs[i][1].shape, space) for i in leaf_ids]
    dims, collapsed = collapse(space, [*strides, row_major_strides(space)])
    in_strides, store_strides = collapsed[:-1], collapsed[-1]

    def body(variables: list[IVar]) -> list[Stmt]:
        loads = {i: Load(inputs[i][0], linear_index(variables, st), inputs[i][1].dtype)
                 for i, st in zip(leaf_ids, in_strides)}
        return [Store(buffer, linear_index(variables, store_strides), values(loads)) for buffer, values in outputs]

    return loop_nest(dims, ctx, body, parallel=True)


@lowers(family="elementwise")
def elementwise(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    inputs = {i.id: ctx.operand(i) for i in node.inputs}
    return store_broadcast([(buffer_name(node), node_values(node))], inputs, ctx.aval(node).shape, ctx)


@lowers("fill_like")
def fill_like(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    out = ctx.aval(node)
    value = Const(node.attrs["value"], out.dtype)
    return store_broadcast([(buffer_name(node), lambda loads: value)], {}, out.shape, ctx)


@lowers("assign", "assign_add")
def assign(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    var, value = node.inputs
    out = ctx.aval(node)
    inputs = {i.id: ctx.operand(i) for i in (var, value)}
    if node.op == "assign":
        values: Values = lambda loads: loads[value.id]  # noqa: E731
    else:
        values = lambda loads: ScalarOp("add", (loads[var.id], loads[value.id]), out.dtype, out.dtype)  # noqa: E731
    return store_broadcast([(buffer_name(node), values)], inputs, out.shape, ctx)


__all__ = ["Values", "elementwise_expr", "node_values", "scalar_op", "store_broadcast"]
