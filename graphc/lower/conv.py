"""Lowering of convolution and pooling (NCHW activations, OIHW weights) and their adjoint ops.

Convolutions are matrix products, one per image, through the generated GEMM (``Gemm``) for float32
and float64 and through plain accumulator loops for integers:

* ``conv2d``: ``out[n] (O, P) = w (O, C*KH*KW) @ cols (C*KH*KW, P)`` where ``P = OH*OW`` and ``cols`` is
  the image's im2col matrix; a 1x1, stride-1, unpadded convolution multiplies by the image itself.
* ``conv2d_grad_input``: ``cols = w^T @ g[n]`` (w read transposed through its strides), then col2im adds
  each column back to the window it came from.
* ``conv2d_grad_weight``: ``dw += g[n] (O, P) @ cols^T (P, C*KH*KW)``, the im2col matrix written
  transposed so the GEMM reads it row by row.

Padding never needs a branch: a padded input is first copied into a zeroed scratch image (whose
border stays zero), so every window read is in bounds and affine.

Pooling is loops with accumulators.  Along each spatial axis the output positions fall into groups
whose windows cover the same in-window offsets of real (unpadded) input: the interior, and a few
positions at each border.  Each group is its own loop with constant bounds, so padding is never
read and no loop body branches.  The gradients of overlapping windows visit them in the order that
makes their additions happen in exactly the reference's order (bit-for-bit equal results); disjoint
windows (no larger than their strides, the usual 2x2 pool) store each position once, without reading
it back or zeroing the buffer first, which lets the window loop vectorise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphc.ir.registry import get_op
from graphc.ir.symbolic import Size, is_symbolic
from graphc.ir.tensor import Tensor
from graphc.lower.builder import (
    BOOL,
    I64,
    LoweringContext,
    Operand,
    buffer_name,
    copy_block,
    fill_block,
    linear_index,
    loop_nest,
    zero_fill,
)
from graphc.lower.linalg import MatrixProducts
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
    IValue,
    IVar,
    Load,
    Loop,
    ScalarOp,
    Stmt,
    Store,
    iadd,
    imul,
)
from graphc.lower.registry import lowers
from graphc.ops.conv import Padding, spatial


@dataclass(frozen=True)
class Aff:
    """An affine index ``offset + sum(coefficient * var)``."""

    offset: int
    terms: tuple[tuple[IVar, int], ...] = ()

    def plus(self, other: Aff | int) -> Aff:
        """``self + other``."""
        if isinstance(other, int):
            return Aff(self.offset + other, self.terms)
        return Aff(self.offset + other.offset, self.terms + other.terms)

    def times(self, k: int) -> Aff:
        """``self * k``."""
        return Aff(self.offset * k, tuple((v, c * k) for v, c in self.terms))

    def expr(self) -> IndexExpr:
        """The loop IR index expression."""
        return linear_index([v for v, _ in self.terms], [c for _, c in self.terms], self.offset)


def _var(v: IVar) -> Aff:
    return Aff(0, ((v, 1),))


def _lowest(dtype: np.dtype) -> object:
    """The identity of max for ``dtype`` (from the max op's registration block)."""
    fold = get_op("max").reduction
    assert fold is not None and fold.identity is not None
    return fold.identity(dtype)


# ---- convolutions -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _ConvShape:
    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    oh: int
    ow: int
    sh: int
    sw: int
    pads: Padding

    @property
    def p(self) -> int:
        return self.oh * self.ow

    @property
    def ckk(self) -> int:
        return self.c * self.kh * self.kw

    @property
    def padded(self) -> bool:
        return any(self.pads[0]) or any(self.pads[1])

    @property
    def hp(self) -> int:
        return self.h + sum(self.pads[0])

    @property
    def wp(self) -> int:
        return self.w + sum(self.pads[1])

    @property
    def pointwise(self) -> bool:
        """A 1x1, stride-1, unpadded convolution: a plain matrix product per image."""
        return self.kh == self.kw == self.sh == self.sw == 1 and not self.padded


def _conv_shape(x_shape: Sequence[int], w_shape: Sequence[int], attrs: Mapping[str, Any]) -> _ConvShape:
    sh, sw = attrs["strides"]
    (oh, ow), pads = spatial(x_shape, (w_shape[2], w_shape[3]), (sh, sw), attrs["padding"])
    n, c, h, w = x_shape
    return _ConvShape(n, c, h, w, w_shape[0], w_shape[2], w_shape[3], oh, ow, sh, sw, pads)


class _Groups:
    """How a convolution's kernel walks its images: in ``count`` groups of consecutive images, run as a
    parallel loop, each group with its own slot of scratch (the policy's ``convolution_groups``, at most
    the batch; one group, a plain loop over the images, when the batch is a run-time size)."""

    def __init__(self, n: Size, ctx: LoweringContext) -> None:
        wanted = ctx.policy.convolution_groups
        self.count = 1 if is_symbolic(n) else max(1, min(wanted, int(n)))
        self.n, self.ctx = n, ctx

    def scratch(self, dtype: np.dtype, size: int, name: str) -> tuple[str, Callable[[IndexExpr], IndexExpr]]:
        """A scratch buffer of ``size`` elements per group, and where a slot's part starts."""
        return self.ctx.scratch(dtype, size * self.count, name=name), lambda slot: imul(slot, size)

    def each(self, body: Callable[[IndexExpr, IndexExpr], list[Stmt]]) -> list[Stmt]:
        """``body(image, slot)`` for every image: group ``g`` of ``N // count`` images in slot ``g``, then
        the ``N % count`` left over one per slot (both loops parallel)."""
        n, count, ctx = self.n, self.count, self.ctx
        if count == 1:
            return loop_nest([n], ctx, lambda v: body(v[0], IConst(0)))
        per, rest = divmod(int(n), count)
        stmts: list[Stmt] = []
        if per:
            stmts += loop_nest([count, per], ctx, lambda v: body(iadd(imul(v[0], per), v[1]), v[0]),
                               parallel=[True, False])
        if rest:
            stmts += loop_nest([rest], ctx, lambda v: body(iadd(v[0], IConst(count * per)), v[0]), parallel=True)
        return stmts


class _Images:
    """Per-image access to an (N, C, H, W) input, through a zero-bordered scratch copy (one per group)
    when padded."""

    def __init__(self, s: _ConvShape, src: str, prefix: str, dtype: np.dtype, groups: _Groups) -> None:
        self.s, self.src, self.dtype, self.ctx = s, src, dtype, groups.ctx
        self.size = s.c * s.hp * s.wp
        self.buffer, self.slot = groups.scratch(dtype, self.size, f"{prefix}_xpad") if s.padded else (src, None)
        self.groups = groups.count

    def prepare(self) -> list[Stmt]:
        """Once per kernel: zero the scratch images (their borders are never written again)."""
        return zero_fill(self.buffer, self.size * self.groups, self.dtype, self.ctx) if self.s.padded else []

    def load(self, image: IndexExpr, slot: IndexExpr) -> tuple[list[Stmt], IndexExpr, int, int]:
        """Statements making image ``image`` readable, its offset in ``self.buffer`` and its (H, W) there."""
        s = self.s
        offset = linear_index([image], [s.c * s.h * s.w])
        if self.slot is None:
            return [], offset, s.h, s.w
        start = self.slot(slot)
        interior = iadd(start, IConst(s.pads[0][0] * s.wp + s.pads[1][0]))
        stmts = copy_block(self.buffer, interior, [s.hp * s.wp, s.wp, 1], self.src, offset, [s.h * s.w, s.w, 1],
                           [s.c, s.h, s.w], self.dtype, self.ctx)
        return stmts, start, s.hp, s.wp


def _window_space(s: _ConvShape, hs: int, ws: int, transposed: bool) -> tuple[list[int], list[int], list[int]]:
    """Loop extents, column-matrix strides and image strides of im2col / col2im over (c, i, j, oh, ow):
    cols[(c, i, j), (oh, ow)] (or its transpose) <-> image[c, oh * sh + i, ow * sw + j]."""
    space = [s.c, s.kh, s.kw, s.oh, s.ow]
    image = [hs * ws, ws, 1, s.sh * ws, s.sw]
    if transposed:  # (P, C*KH*KW), visited (oh, ow, c, i, j) so the writes are contiguous
        order = [3, 4, 0, 1, 2]
        cols = [s.kh * s.kw, s.kw, 1, s.ow * s.ckk, s.ckk]
    else:
        order = [0, 1, 2, 3, 4]
        cols = [s.kh * s.kw * s.p, s.kw * s.p, s.p, s.ow, 1]
    return [space[d] for d in order], [cols[d] for d in order], [image[d] for d in order]


def conv2d_statements(x: Operand, w: Operand, dst: str, attrs: Mapping[str, Any], ctx: LoweringContext
                      ) -> list[Stmt]:
    """``dst`` (N, O, OH, OW, row-major) = conv2d(x, w).  Also used for a conv2d hosting a fused epilogue."""
    (xb, xa), (wb, wa) = x, w
    s, dtype = _conv_shape(xa.shape, wa.shape, attrs), xa.dtype
    if not (s.n and s.o and s.p):
        return []
    groups = _Groups(s.n, ctx)
    products = MatrixProducts(dst, dtype, ctx, slots=groups.count)
    if s.pointwise:
        stmts = groups.each(lambda n, slot: products.product(
            wb, IConst(0), (s.c, 1), xb, linear_index([n], [s.c * s.p]), (s.p, 1), dst,
            linear_index([n], [s.o * s.p]), s.p, s.o, s.p, s.c, slot))
        products.finish()
        return stmts
    images = _Images(s, xb, dst, dtype, groups)
    cols, cols_at = groups.scratch(dtype, s.ckk * s.p, f"{dst}_cols")

    def image(n: IndexExpr, slot: IndexExpr) -> list[Stmt]:
        stmts, offset, hs, ws = images.load(n, slot)
        space, col_strides, image_strides = _window_space(s, hs, ws, transposed=False)
        stmts += copy_block(cols, cols_at(slot), col_strides, images.buffer, offset, image_strides, space, dtype, ctx)
        return stmts + products.product(wb, IConst(0), (s.ckk, 1), cols, cols_at(slot), (s.p, 1), dst,
                                        linear_index([n], [s.o * s.p]), s.p, s.o, s.p, s.ckk, slot)

    body = images.prepare() + groups.each(image)
    products.finish()
    return body


@lowers("conv2d")
def conv2d(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    x, w = node.inputs
    return conv2d_statements(ctx.operand(x), ctx.operand(w), buffer_name(node), node.attrs, ctx)


@lowers("conv2d_grad_input")
def conv2d_grad_input(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    """dx[n] = col2im(w^T @ g[n]); the product is written straight into dx for a pointwise conv."""
    g, w, like = node.inputs
    s, dtype = _conv_shape(ctx.avals[like.id].shape, ctx.avals[w.id].shape, node.attrs), ctx.avals[node.id].dtype
    gb, wb, dst = buffer_name(g), buffer_name(w), buffer_name(node)
    image_size = s.c * s.h * s.w
    if not (s.n and image_size):
        return []
    groups = _Groups(s.n, ctx)
    products = MatrixProducts(dst, dtype, ctx, slots=groups.count)
    if s.pointwise:
        stmts = groups.each(lambda n, slot: products.product(
            wb, IConst(0), (1, s.c), gb, linear_index([n], [s.o * s.p]), (s.p, 1), dst,
            linear_index([n], [image_size]), s.p, s.c, s.p, s.o, slot))
        products.finish()
        return stmts
    if not (s.o and s.p):  # no window reaches the input: the gradient is zero
        return zero_fill(dst, s.n * image_size, dtype, ctx)
    cols, cols_at = groups.scratch(dtype, s.ckk * s.p, f"{dst}_cols")
    pad_size = s.c * s.hp * s.wp
    pad, pad_at = groups.scratch(dtype, pad_size, f"{dst}_xpad") if s.padded else ("", None)
    stmts: list[Stmt] = [] if s.padded else zero_fill(dst, s.n * image_size, dtype, ctx)

    def image(n: IndexExpr, slot: IndexExpr) -> list[Stmt]:
        out = linear_index([n], [image_size])
        body = products.product(wb, IConst(0), (1, s.ckk), gb, linear_index([n], [s.o * s.p]), (s.p, 1), cols,
                                cols_at(slot), s.p, s.ckk, s.p, s.o, slot)
        if pad_at is not None:
            target, offset, hs, ws = pad, pad_at(slot), s.hp, s.wp
            body += zero_fill(pad, pad_size, dtype, ctx, offset, parallel=False)
        else:
            target, offset, hs, ws = dst, out, s.h, s.w
        space, col_strides, image_strides = _window_space(s, hs, ws, transposed=False)
        body += copy_block(target, offset, image_strides, cols, cols_at(slot), col_strides, space, dtype, ctx,
                           add=True, parallel=False)
        if pad_at is not None:
            interior = iadd(offset, IConst(s.pads[0][0] * s.wp + s.pads[1][0]))
            body += copy_block(dst, out, [s.h * s.w, s.w, 1], pad, interior, [s.hp * s.wp, s.wp, 1],
                               [s.c, s.h, s.w], dtype, ctx)
        return body

    stmts += groups.each(image)
    products.finish()
    return stmts


@lowers("conv2d_grad_weight")
def conv2d_grad_weight(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    """dw = sum over images of g[n] (O, P) @ cols[n]^T (P, C*KH*KW).  One group: the first image's
    product is written into dw, each later one into a scratch matrix that is then added.  Several: each
    group sums its images' products in a partial dw of its own (zeroed first), and the partials are
    added in group order."""
    x, g, like = node.inputs
    s, dtype = _conv_shape(ctx.avals[x.id].shape, ctx.avals[like.id].shape, node.attrs), ctx.avals[node.id].dtype
    xb, gb, dst = buffer_name(x), buffer_name(g), buffer_name(node)
    size = s.o * s.ckk
    if not size:
        return []
    if not (s.n and s.p):
        return zero_fill(dst, size, dtype, ctx)
    groups = _Groups(s.n, ctx)
    products = MatrixProducts(dst, dtype, ctx, slots=groups.count)
    images = _Images(s, xb, dst, dtype, groups)
    cols, cols_at = ("", None) if s.pointwise else groups.scratch(dtype, s.ckk * s.p, f"{dst}_cols")

    def product(n: IndexExpr, slot: IndexExpr, target: str, at: IndexExpr) -> list[Stmt]:
        """g[n] @ cols[n]^T written to ``target`` from ``at``."""
        g_at = linear_index([n], [s.o * s.p])
        if cols_at is None:  # B = x[n]^T read through its strides
            return products.product(gb, g_at, (s.p, 1), xb, linear_index([n], [s.c * s.p]), (1, s.p), target, at,
                                    s.ckk, s.o, s.ckk, s.p, slot)
        stmts, offset, hs, ws = images.load(n, slot)
        space, col_strides, image_strides = _window_space(s, hs, ws, transposed=True)
        stmts += copy_block(cols, cols_at(slot), col_strides, images.buffer, offset, image_strides, space, dtype, ctx)
        return stmts + products.product(gb, g_at, (s.p, 1), cols, cols_at(slot), (s.ckk, 1), target, at,
                                        s.ckk, s.o, s.ckk, s.p, slot)

    stmts = [] if s.pointwise else images.prepare()
    if groups.count == 1:
        stmts += product(IConst(0), IConst(0), dst, IConst(0))
        if s.n > 1:
            partial = ctx.scratch(dtype, size, name=f"{dst}_partial")
            stmts += loop_nest([s.n - 1], ctx, lambda v: product(iadd(v[0], IConst(1)), IConst(0), partial, IConst(0))
                               + copy_block(dst, IConst(0), [1], partial, IConst(0), [1], [size], dtype, ctx, add=True))
    else:
        sums, sum_at = groups.scratch(dtype, size, f"{dst}_sums")
        partial, partial_at = groups.scratch(dtype, size, f"{dst}_partial")
        stmts += zero_fill(sums, size * groups.count, dtype, ctx)
        stmts += groups.each(lambda n, slot: product(n, slot, partial, partial_at(slot)) + copy_block(
            sums, sum_at(slot), [1], partial, partial_at(slot), [1], [size], dtype, ctx, add=True, parallel=False))

        def total(v: list[IVar]) -> list[Stmt]:
            acc = ctx.acc()
            return [AccInit(acc, Load(sums, v[0], dtype)),
                    *loop_nest([groups.count - 1], ctx, lambda k: [AccUpdate(acc, "add", Load(
                        sums, iadd(v[0], imul(iadd(k[0], IConst(1)), size)), dtype))]),
                    Store(dst, v[0], AccRef(acc, dtype))]

        stmts += loop_nest([size], ctx, total, parallel=True)
    products.finish()
    return stmts


# ---- pooling ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Group:
    """Output positions ``start .. start + count`` of one spatial axis whose windows all cover the real
    input at in-window offsets ``first .. first + valid``."""

    start: int
    count: int
    first: int
    valid: int


def window_groups(size: int, k: int, stride: int, before: int, out: int) -> list[_Group]:
    """The output positions of one spatial axis grouped by the in-window offsets that hit real input."""
    groups: list[_Group] = []
    for o in range(out):
        lo = max(0, before - o * stride)
        hi = max(lo, min(k, size + before - o * stride))
        last = groups[-1] if groups else None
        if last is not None and (last.first, last.valid) == (lo, hi - lo):
            groups[-1] = _Group(last.start, last.count + 1, lo, hi - lo)
        else:
            groups.append(_Group(o, 1, lo, hi - lo))
    return groups


@dataclass(frozen=True)
class _Window:
    """One window: its (n, c) plane, output row and column, and the row / column groups they are in."""

    plane: Aff
    row: Aff
    column: Aff
    rows: _Group
    columns: _Group

    @property
    def empty(self) -> bool:
        """Whether the window covers padding only."""
        return not (self.rows.valid and self.columns.valid)


class _Pooling:
    """The geometry of a pooling op over an (N, C, H, W) input with (N, C, OH, OW) windows."""

    def __init__(self, shape: Sequence[int], pooled_shape: Sequence[int], attrs: Mapping[str, Any]) -> None:
        self.shape, self.oh, self.ow = tuple(shape), pooled_shape[2], pooled_shape[3]
        (self.kh, self.kw), (self.sh, self.sw) = attrs["ksize"], attrs["strides"]
        _, ((self.top, _), (self.left, _)) = spatial(shape, attrs["ksize"], attrs["strides"], attrs["padding"])

    def windows(self, ctx: LoweringContext, body: Callable[[_Window], list[Stmt]], reverse: bool = False) -> list[Stmt]:
        """Loops over every (n, c) plane and, group by group, over its windows in row-major order (or
        the reverse), with ``body(window)`` inside.  Planes are independent: the outer loop may use threads."""
        n, c, h, w = self.shape
        rows = window_groups(h, self.kh, self.sh, self.top, self.oh)
        columns = window_groups(w, self.kw, self.sw, self.left, self.ow)
        if reverse:
            rows, columns = rows[::-1], columns[::-1]
        if not (n * c and self.oh and self.ow):
            return []

        def positions(group: _Group, inner: Callable[[Aff], list[Stmt]]) -> list[Stmt]:
            if group.count == 1:
                return inner(Aff(group.start))
            var = ctx.var()
            at = Aff(group.start + group.count - 1, ((var, -1),)) if reverse else Aff(group.start, ((var, 1),))
            return [Loop(var, group.count, tuple(inner(at)))]

        def plane(v: list[IVar]) -> list[Stmt]:
            base = _var(v[0])
            return [stmt for rg in rows for stmt in positions(rg, lambda r, rg=rg: [
                s for cg in columns for s in positions(cg, lambda q, cg=cg: body(_Window(base, r, q, rg, cg)))])]

        return loop_nest([n * c], ctx, plane, parallel=True)

    @property
    def disjoint(self) -> bool:
        """Whether no input position lies in two windows (windows no larger than their strides)."""
        return self.kh <= self.sh and self.kw <= self.sw

    def _covered(self, axis: int) -> list[bool]:
        """Which input positions along spatial ``axis`` (0: rows, 1: columns) some window's real part covers."""
        size, k, stride, before, out = ((self.shape[2], self.kh, self.sh, self.top, self.oh) if axis == 0
                                        else (self.shape[3], self.kw, self.sw, self.left, self.ow))
        covered = [False] * size
        for group in window_groups(size, k, stride, before, out):
            for o in range(group.start, group.start + group.count):
                start = o * stride - before + group.first
                covered[start:start + group.valid] = [True] * group.valid
        return covered

    def fill_uncovered(self, dst: str, value: Expr, ctx: LoweringContext) -> list[Stmt]:
        """``value`` stored at every input position that no window covers (rows, then columns, of
        each plane in runs)."""
        n, c, h, w = self.shape
        rows, columns = self._covered(0), self._covered(1)

        def runs(flags: list[bool], wanted: bool) -> list[tuple[int, int]]:
            found: list[tuple[int, int]] = []
            for i, flag in enumerate(flags):
                if flag == wanted:
                    if found and found[-1][0] + found[-1][1] == i:
                        found[-1] = (found[-1][0], found[-1][1] + 1)
                    else:
                        found.append((i, 1))
            return found

        blocks = [(r, rc, 0, w) for r, rc in runs(rows, False)]
        blocks += [(r, rc, q, qc) for r, rc in runs(rows, True) for q, qc in runs(columns, False)]
        if not (blocks and n * c):
            return []
        return loop_nest([n * c], ctx, lambda v: [stmt for r, rc, q, qc in blocks for stmt in fill_block(
            dst, linear_index(v, [h * w], r * w + q), [w, 1], [rc, qc], value, ctx, parallel=False)],
            parallel=True)

    def accumulate(self, dst: str, dtype: np.dtype, ctx: LoweringContext,
                   window: Callable[[_Window, Callable[[IndexExpr, Expr], Stmt]], list[Stmt]]) -> list[Stmt]:
        """An adjoint that adds shares of each window's value to the window's input positions:
        ``window(win, add)`` gives a window's statements, ``add(at, share)`` the store adding ``share`` to
        input element ``at``.  Overlapping windows add to a zeroed ``dst`` in reverse row-major order (the
        reference's order of additions); disjoint ones store ``0 + share`` once per position, and the
        positions no window covers get their zero apart."""
        disjoint = self.disjoint

        def add(at: IndexExpr, share: Expr) -> Stmt:
            before = Const(0, dtype) if disjoint else Load(dst, at, dtype)  # 0 + share: -0.0 as the reference's
            return Store(dst, at, ScalarOp("add", (before, share), dtype, dtype))

        def body(win: _Window) -> list[Stmt]:
            return [] if win.empty else window(win, add)

        if disjoint:
            return self.windows(ctx, body) + self.fill_uncovered(dst, Const(0, dtype), ctx)
        return zero_fill(dst, math.prod(self.shape), dtype, ctx) + self.windows(ctx, body, reverse=True)

    def pooled(self, win: _Window) -> IndexExpr:
        """The window's element of a pooled (N, C, OH, OW) buffer."""
        return win.plane.times(self.oh * self.ow).plus(win.row.times(self.ow)).plus(win.column).expr()

    def over(self, ctx: LoweringContext, win: _Window, at: Callable[[IndexExpr], list[Stmt]]) -> list[Stmt]:
        """Loops over the window's real elements (rows, then columns) with ``at(input index)`` inside."""
        return loop_nest([win.rows.valid, win.columns.valid], ctx, lambda v: at(
            self.element(win, Aff(win.rows.first).plus(_var(v[0])), Aff(win.columns.first).plus(_var(v[1])))))

    def element(self, win: _Window, i: Aff, j: Aff) -> IndexExpr:
        """The input index of the window's element at in-window offsets (i, j)."""
        h, w = self.shape[2], self.shape[3]
        row = win.row.times(self.sh).plus(i).plus(-self.top)
        col = win.column.times(self.sw).plus(j).plus(-self.left)
        return win.plane.times(h * w).plus(row.times(w)).plus(col).expr()


@lowers("max_pool2d", "avg_pool2d")
def pool(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    """max_pool2d: the maximum of each window's real elements (nan wins, as in max); avg_pool2d: their
    sum divided by their count."""
    x = node.inputs[0]
    dtype, src, dst = ctx.avals[node.id].dtype, buffer_name(x), buffer_name(node)
    geometry = _Pooling(ctx.avals[x.id].shape, ctx.avals[node.id].shape, node.attrs)
    is_max = node.op == "max_pool2d"

    def window(win: _Window) -> list[Stmt]:
        acc = ctx.acc()
        stmts: list[Stmt] = [AccInit(acc, Const(_lowest(dtype) if is_max else 0, dtype))]
        stmts += geometry.over(ctx, win, lambda at: [AccUpdate(acc, "maximum" if is_max else "add",
                                                                 Load(src, at, dtype))])
        result: Expr = AccRef(acc, dtype)
        if not is_max:
            count = Const(float(win.rows.valid * win.columns.valid), dtype)
            result = ScalarOp("divide", (result, count), dtype, dtype)
        return [*stmts, Store(dst, geometry.pooled(win), result)]

    return geometry.windows(ctx, window)


def _first_maximum(ctx: LoweringContext, geometry: _Pooling, win: _Window, x: str, dtype: np.dtype
                   ) -> tuple[list[Stmt], Expr]:
    """Statements finding the input index of a window's first maximum (row-major; a nan wins and stays,
    as in the reference), and the int64 expression holding it.  The window has real elements."""
    best, where = ctx.acc(), ctx.acc()

    def step(at: IndexExpr) -> list[Stmt]:
        value, current = Load(x, at, dtype), AccRef(best, dtype)
        better: Expr = ScalarOp("greater", (value, current), dtype, BOOL)
        if dtype.kind == "f":
            first_nan = ScalarOp("logical_and", (ScalarOp("isnan", (value,), dtype, BOOL), ScalarOp(
                "logical_not", (ScalarOp("isnan", (current,), dtype, BOOL),), BOOL, BOOL)), BOOL, BOOL)
            better = ScalarOp("logical_or", (better, first_nan), BOOL, BOOL)
        return [AccSet(where, ScalarOp("where", (better, IndexValue(at), AccRef(where, I64)), I64, I64)),
                AccSet(best, ScalarOp("where", (better, value, current), dtype, dtype))]

    first = geometry.element(win, Aff(win.rows.first), Aff(win.columns.first))
    stmts: list[Stmt] = [AccInit(best, Const(_lowest(dtype), dtype)), AccInit(where, IndexValue(first)),
                         *geometry.over(ctx, win, step)]
    return stmts, AccRef(where, I64)


@lowers("max_pool2d_grad", "max_pool2d_select")
def max_pool_adjoint(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    """max_pool2d_grad (g, x): each window adds g * (position is the window's first maximum) to every
    real position of the window (so a nan or inf in g spreads as in the reference), see
    ``_Pooling.accumulate``.  max_pool2d_select (dy, x): dy at each window's first maximum (0 for a
    window of padding only)."""
    a, x = node.inputs
    grad = node.op == "max_pool2d_grad"
    shape, dtype, x_dtype = ctx.avals[x.id].shape, ctx.avals[node.id].dtype, ctx.avals[x.id].dtype
    geometry = _Pooling(shape, ctx.avals[a.id].shape if grad else ctx.avals[node.id].shape, node.attrs)
    src, dst, xb = buffer_name(a), buffer_name(node), buffer_name(x)

    if not grad:
        def select(win: _Window) -> list[Stmt]:
            if win.empty:
                return [Store(dst, geometry.pooled(win), Const(0, dtype))]
            stmts, where = _first_maximum(ctx, geometry, win, xb, x_dtype)
            return [*stmts, Store(dst, geometry.pooled(win), Load(src, IValue(where), dtype))]

        return geometry.windows(ctx, select)

    def window(win: _Window, add: Callable[[IndexExpr, Expr], Stmt]) -> list[Stmt]:
        stmts, where = _first_maximum(ctx, geometry, win, xb, x_dtype)
        g = Load(src, geometry.pooled(win), dtype)

        def share(at: IndexExpr) -> list[Stmt]:
            hit = ScalarOp("cast", (ScalarOp("equal", (IndexValue(at), where), I64, BOOL),), BOOL, dtype,
                           (("dtype", dtype),))
            return [add(at, ScalarOp("multiply", (hit, g), dtype, dtype))]

        return stmts + geometry.over(ctx, win, share)

    return geometry.accumulate(dst, dtype, ctx, window)


@lowers("avg_pool2d_grad")
def avg_pool_grad(node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    """Each window adds g / (its count of real elements) to each of its real positions
    (``_Pooling.accumulate``)."""
    g, like = node.inputs
    shape, dtype = ctx.avals[like.id].shape, ctx.avals[node.id].dtype
    geometry = _Pooling(shape, ctx.avals[g.id].shape, node.attrs)
    src, dst = buffer_name(g), buffer_name(node)

    def window(win: _Window, add: Callable[[IndexExpr, Expr], Stmt]) -> list[Stmt]:
        count = Const(float(win.rows.valid * win.columns.valid), dtype)
        share = ScalarOp("divide", (Load(src, geometry.pooled(win), dtype), count), dtype, dtype)
        return geometry.over(ctx, win, lambda at: [add(at, share)])

    return geometry.accumulate(dst, dtype, ctx, window)


__all__ = ["conv2d_statements", "window_groups"]
