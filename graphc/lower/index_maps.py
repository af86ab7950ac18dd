"""Lowering of the ops that only move elements, one output index reading one input index: reshapes,
broadcasts, transposes and basic slices."""

from __future__ import annotations

import math
from collections.abc import Sequence

from graphc.ir.symbolic import DynamicDimError, is_symbolic
from graphc.ir.tensor import Tensor
from graphc.lower.builder import (
    BOOL,
    LoweringContext,
    buffer_name,
    copy_block,
    loop_nest,
    row_major_strides,
)
from graphc.lower.elementwise import store_broadcast
from graphc.lower.loopir import Check, Const, IConst, Load, Stmt, Store
from graphc.lower.registry import lowers


@lowers("reshape", "reshape_dims", "reshape_like")
def reshape(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    """A row-major copy: element k of the output is element k of the input."""
    x = node.inputs[0]
    src, dst, dtype = buffer_name(x), buffer_name(node), ctx.aval(x).dtype
    n = math.prod(ctx.aval(node).shape)
    return loop_nest([n] if n != 1 else [], ctx, lambda v: [Store(dst, v[0] if v else IConst(0),
                                                                  Load(src, v[0] if v else IConst(0), dtype))],
                     parallel=True)


@lowers("broadcast_to", "broadcast_like")
def broadcast(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    x = node.inputs[0]
    return store_broadcast([(buffer_name(node), lambda loads: loads[x.id])], {x.id: ctx.operand(x)},
                           ctx.aval(node).shape, ctx)


@lowers("transpose")
def transpose(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    x = node.inputs[0]
    out_shape = ctx.aval(node).shape
    own = row_major_strides(ctx.aval(x).shape)
    read = [own[p] for p in node.attrs["perm"]]
    return copy_block(buffer_name(node), 0, row_major_strides(out_shape), buffer_name(x), 0, read, out_shape,
                      ctx.aval(x).dtype, ctx)


@lowers("slice")
def basic_slice(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    x = node.inputs[0]
    view = slice_view(node, ctx.aval(x).shape, ctx)
    if not isinstance(view, tuple):
        return view
    offset, strides = view
    out_shape = ctx.aval(node).shape
    return copy_block(buffer_name(node), 0, row_major_strides(out_shape), buffer_name(x), offset, strides, out_shape,
                      ctx.aval(x).dtype, ctx)


def slice_view(node: Tensor, shape: Sequence[int], ctx: LoweringContext) -> tuple[int, list[int]] | list[Stmt]:
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
                code = ctx.fault(node, f"IndexError: index {entry[1]} is out of bounds for axis {axis} "
                                         f"with size {shape[axis]}")
                return [Check(Const(False, BOOL), code)]
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


__all__ = ["slice_view"]
