"""Lowering of the index-map ops that need more than one affine map: pad, pad_grad, concat,
concat_part and slice_grad.

Every mode of ``pad`` is an affine map *piecewise*: along one axis, each output position copies one
input position (or holds the constant), and the positions fall into a few runs where the source index
moves by +1 (the interior, a reflection's upward half), -1 (a reflection's downward half) or 0 (an edge
repeated).  The runs are found by applying the reference's own rule (``np.pad``) to ``arange(n)``, so
every mode the reference supports is lowered the same way, and each run is one branch-free loop with
affine loads and stores.  ``pad`` fills the output axis by axis, as ``np.pad`` does (see ``_pad``).

``pad_grad`` walks the runs of every axis, nested, over the gradient in row-major order and adds each
element to the position it was copied from, so the additions happen in exactly the order of the
reference's ``np.add.at`` and the result is bit-for-bit identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from graphc.ir.tensor import Tensor
from graphc.lower.builder import (
    LoweringContext,
    buffer_name,
    copy_block,
    fill_block,
    linear_index,
    row_major_strides,
    zero_fill,
)
from graphc.lower.index_maps import slice_view
from graphc.lower.loopir import Const, IConst, IndexExpr, IVar, Load, Loop, ScalarOp, Stmt, Store
from graphc.lower.registry import lowers


@dataclass(frozen=True)
class Run:
    """Positions ``start .. start + length`` of one axis read source position ``src + step * i``
    (``step`` is None where they hold the pad constant)."""

    start: int
    length: int
    src: int
    step: int | None


def axis_runs(sources: Sequence[int]) -> list[Run]:
    """Split an axis's per-position source indices (-1: the pad constant) into maximal affine runs
    with steps -1, 0 or +1 (greedy, in order)."""
    runs: list[Run] = []
    for pos, s in enumerate(int(v) for v in sources):
        if runs:
            last = runs[-1]
            if s < 0 and last.step is None:
                runs[-1] = Run(last.start, last.length + 1, -1, None)
                continue
            if s >= 0 and last.step is not None:
                step = s - last.src if last.length == 1 else last.step
                if abs(step) <= 1 and s == last.src + step * last.length:
                    runs[-1] = Run(last.start, last.length + 1, last.src, step)
                    continue
        runs.append(Run(pos, 1, -1 if s < 0 else s, None if s < 0 else 1))
    return runs


@dataclass
class _Axis:
    runs: list[Run]
    out_stride: int
    src_stride: int
    extent: int  # positions along this (possibly merged) axis of the iteration space


def _axes(runs: Sequence[list[Run]], out_shape: Sequence[int], src_shape: Sequence[int]) -> list[_Axis]:
    """One _Axis per axis, with adjacent untouched axes (one full +1 run) merged into one."""
    out_strides, src_strides = row_major_strides(out_shape), row_major_strides(src_shape)
    axes: list[_Axis] = []
    for d, axis_r in enumerate(runs):
        axis = _Axis(list(axis_r), out_strides[d], src_strides[d], out_shape[d])
        if axes and _untouched(axes[-1]) and _untouched(axis) and \
                axes[-1].out_stride == axis.out_stride * axis.extent and \
                axes[-1].src_stride == axis.src_stride * axis.extent:
            merged = axes[-1].extent * axis.extent
            axes[-1] = _Axis([Run(0, merged, 0, 1)], axis.out_stride, axis.src_stride, merged)
            continue
        axes.append(axis)
    return axes


def _untouched(axis: _Axis) -> bool:
    return len(axis.runs) == 1 and axis.runs[0] == Run(0, axis.extent, 0, 1)


Leaf = Callable[[IndexExpr, IndexExpr], list[Stmt]]
"""Statements for one element: (its index in the iteration space's buffer, its source's index)."""


def _run_nest(axes: Sequence[_Axis], ctx: LoweringContext, leaf: Leaf, parallel: Callable[[Run], bool]) -> list[Stmt]:
    """Loops over the iteration space axis by axis, one loop per run (nested: ``for run0: for i0: for
    run1: for i1: ...``), which visits the space in row-major order.  ``parallel(run)`` says whether
    an outermost run's iterations may run on several threads."""

    def level(depth: int, out_terms: list[tuple[IVar, int]], out_offset: int, src_terms: list[tuple[IVar, int]],
              src_offset: int) -> list[Stmt]:
        if depth == len(axes):
            out = linear_index([v for v, _ in out_terms], [s for _, s in out_terms], out_offset)
            src = linear_index([v for v, _ in src_terms], [s for _, s in src_terms], src_offset)
            return leaf(out, src)
        axis = axes[depth]
        stmts: list[Stmt] = []
        for run in axis.runs:
            assert run.step is not None
            var = ctx.var()
            looped = run.length > 1
            o_terms = [*out_terms, (var, axis.out_stride)] if looped else out_terms
            s_terms = [*src_terms, (var, run.step * axis.src_stride)] if looped and run.step else src_terms
            body = level(depth + 1, o_terms, out_offset + run.start * axis.out_stride, s_terms,
                         src_offset + run.src * axis.src_stride)
            if body and looped:
                stmts.append(Loop(var, run.length, tuple(body), depth == 0 and parallel(run)))
            else:
                stmts += body
        return stmts

    return level(0, [], 0, [], 0)


def _sources(n: int, widths: tuple[int, int], mode: str, constant: int) -> np.ndarray:
    """The reference's source position of each padded position of an axis of size ``n`` (``constant``
    where the pad constant goes)."""
    if mode == "constant":
        return np.pad(np.arange(n), widths, mode="constant", constant_values=constant)
    return np.pad(np.arange(n), widths, mode=mode)  # type: ignore[call-overload]


@lowers("pad")
def pad(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    """Axis by axis, as np.pad does: the input is copied into the interior of the output, then for
    each axis in turn its border runs are filled, each from the output's own slab at the run's source
    positions (already final along the axes before it) or with the constant.  Every element is
    written once, and the code grows with the sum of the axes' runs, not their product."""
    x = node.inputs[0]
    in_shape, out_shape = list(ctx.avals[x.id].shape), list(ctx.avals[node.id].shape)
    dtype = ctx.avals[node.id].dtype
    src, dst = buffer_name(x), buffer_name(node)
    if not out_shape:
        return [Store(dst, IConst(0), Load(src, IConst(0), dtype))]
    if not math.prod(out_shape):
        return []
    pad_width, mode = node.attrs["pad_width"], node.attrs["mode"]
    strides = row_major_strides(out_shape)
    interior = sum(lo * st for (lo, _), st in zip(pad_width, strides))
    stmts = copy_block(dst, interior, strides, src, 0, row_major_strides(in_shape), in_shape, dtype, ctx)
    constant = Const(node.attrs["constant_value"], dtype)
    for d, (n, (lo, hi)) in enumerate(zip(in_shape, pad_width)):
        sources = _sources(n, (lo, hi), mode, -1)
        border = [Run(r.start + first, r.length, r.src, r.step) for first, part in ((0, sources[:lo]),
                  (lo + n, sources[lo + n:])) for r in axis_runs(part)]
        # the slab of one border position: every position along the axes before d, the interior after it
        space = [*out_shape[:d], 1, *in_shape[d + 1:]]
        after = sum(lo_e * strides[e] for e, (lo_e, _) in enumerate(pad_width) if e > d)
        for run in border:
            space[d] = run.length
            at = run.start * strides[d] + after
            if run.step is None:
                stmts += fill_block(dst, at, strides, space, constant, ctx)
            else:
                read = [*strides[:d], run.step * strides[d], *strides[d + 1:]]
                stmts += copy_block(dst, at, strides, dst, (lo + run.src) * strides[d] + after, read, space,
                                     dtype, ctx)
    return stmts


@lowers("pad_grad")
def pad_grad(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    """Zeros of the input's shape, then every element of the padded gradient, in row-major order, added
    to the input position it was copied from (the reference's np.add.at, addition for addition)."""
    g, like = node.inputs
    g_shape, out_shape = list(ctx.avals[g.id].shape), list(ctx.avals[like.id].shape)
    dtype = ctx.avals[node.id].dtype
    src, dst = buffer_name(g), buffer_name(node)
    if not out_shape:
        return [Store(dst, IConst(0), Load(src, IConst(0), dtype))]
    stmts = zero_fill(dst, math.prod(out_shape), dtype, ctx)
    if not math.prod(g_shape):
        return stmts
    # a constant position's gradient goes to position 0, as the reference's np.add.at sends it
    mode = node.attrs["mode"]
    runs = [axis_runs(_sources(n, widths, mode, 0)) for n, widths in zip(out_shape, node.attrs["pad_width"])]

    def leaf(at: IndexExpr, back: IndexExpr) -> list[Stmt]:
        added = ScalarOp("add", (Load(dst, back, dtype), Load(src, at, dtype)), dtype, dtype)
        return [Store(dst, back, added)]

    # iterations of an outer run with a nonzero step add into distinct elements: safe to split
    return stmts + _run_nest(_axes(runs, g_shape, out_shape), ctx, leaf, lambda run: run.step != 0)


@lowers("concat")
def concat(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    axis = node.attrs["axis"]
    out_shape = ctx.avals[node.id].shape
    out_strides = row_major_strides(out_shape)
    dtype = ctx.avals[node.id].dtype
    stmts: list[Stmt] = []
    start = 0
    for x in node.inputs:
        shape = ctx.avals[x.id].shape
        stmts += copy_block(buffer_name(node), start * out_strides[axis], out_strides, buffer_name(x), 0,
                             row_major_strides(shape), shape, dtype, ctx)
        start += shape[axis]
    return stmts


@lowers("concat_part")
def concat_part(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    g, *parts = node.inputs
    axis, index = node.attrs["axis"], node.attrs["index"]
    start = sum(ctx.avals[p.id].shape[axis] for p in parts[:index])
    g_strides = row_major_strides(ctx.avals[g.id].shape)
    shape = ctx.avals[node.id].shape
    return copy_block(buffer_name(node), 0, row_major_strides(shape), buffer_name(g), start * g_strides[axis],
                       g_strides, shape, ctx.avals[node.id].dtype, ctx)


@lowers("slice_grad")
def slice_grad(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    """Zeros of the like input's shape, then g written at the sliced positions (as the slice reads them).
    An int index out of range (an axis whose size was unknown until now) is a run-time fault."""
    g, like = node.inputs
    shape = ctx.avals[like.id].shape
    dtype = ctx.avals[node.id].dtype
    view = slice_view(node, shape, ctx)
    if not isinstance(view, tuple):
        return view
    offset, strides = view
    g_shape = ctx.avals[g.id].shape
    return zero_fill(buffer_name(node), math.prod(shape), dtype, ctx) + copy_block(
        buffer_name(node), offset, strides, buffer_name(g), 0, row_major_strides(g_shape), g_shape, dtype, ctx)


__all__ = ["Run", "axis_runs"]
