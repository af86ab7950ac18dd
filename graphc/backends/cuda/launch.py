"""Loop kernels mapped onto the GPU: each :class:`LoopKernel` becomes an ordered list of :class:`Launch`.

A launch runs ``body`` once per point of its iteration ``space``, one GPU thread per point: thread
``t`` (``0 <= t < size``, counted over the whole grid) binds the space's loop variables to the
row-major digits of ``t`` (the last variable varies fastest), so neighbouring threads touch
neighbouring elements.  Threads past ``size`` (the last block's tail) do nothing.  A launch with an
empty space is *serial*: one thread runs its body.

How a kernel's top-level statements are mapped (the loop IR's ``parallel`` flag promises that, for
fixed enclosing iterations, a loop's iterations write disjoint elements and read nothing another
iteration writes, so any order, and all at once, is allowed):

* a top-level parallel loop becomes one launch; its perfectly nested parallel loops (a loop whose body
  is exactly one parallel loop) are collapsed into the space, so an elementwise kernel over a
  ``(64, 128)`` array is 8192 threads of one element each; what is inside the last one runs per thread;
* a ``Gemm`` becomes the generated GEMM: one thread per element of C, summing its K products in order
  (``c = sum_k a[i, k] * b[k, j]``, C overwritten), the fallback when no BLAS library is called;
* the other statements (accumulators, sequential loops, checks) between two of those are gathered into
  one serial launch, in order.

Launches of one kernel run one after another on one stream, so each sees what the previous wrote.
A ``Check`` writes its fault code to the status word only where it fails, so threads never overwrite
another's fault with 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from graphc.lower.loopir import (
    STATUS,
    AccInit,
    AccRef,
    AccSet,
    AccUpdate,
    BufferSpec,
    Const,
    Gemm,
    IVar,
    Load,
    Loop,
    LoopKernel,
    ScalarOp,
    Stmt,
    Store,
    has_check,
    iadd,
    imul,
)

BLOCK = 256  # threads per block: a multiple of the warp, enough to hide latency, small enough for any device


@dataclass(frozen=True)
class Launch:
    """One GPU kernel launch: ``body`` once for every point of ``space`` (``(loop variable, extent)``
    pairs, outermost first; empty for a serial launch), with ``block`` threads per block.  ``params``
    are the buffers it uses, in call order (a subset of its loop kernel's, in the same order)."""

    name: str
    params: tuple[BufferSpec, ...]
    space: tuple[tuple[IVar, int], ...]
    body: tuple[Stmt, ...]
    block: int = BLOCK

    @property
    def size(self) -> int:
        """Threads that do work: the number of points in the space (1 for a serial launch)."""
        return math.prod(extent for _, extent in self.space)

    @property
    def threads_per_block(self) -> int:
        return min(self.block, self.size) if self.space else 1

    @property
    def grid(self) -> int:
        """Blocks launched."""
        return -(-self.size // self.threads_per_block)

    def describe(self) -> str:
        """``name: grid 32 x block 256 over (i0 < 64, i1 < 128)`` (or ``serial``): its launch shape."""
        if not self.space:
            return f"{self.name}: serial (grid 1 x block 1)"
        dims = ", ".join(f"{var.name} < {extent}" for var, extent in self.space)
        return f"{self.name}: grid {self.grid} x block {self.threads_per_block} over ({dims})"


def plan_kernel(kernel: LoopKernel, block: int = BLOCK) -> list[Launch]:
    """The launches that run ``kernel`` on a GPU, in order."""
    launches: list[Launch] = []
    serial: list[Stmt] = []

    def add(space: tuple[tuple[IVar, int], ...], body: Sequence[Stmt]) -> None:
        name = f"{kernel.name}_{len(launches)}"
        launches.append(Launch(name, _params_used(kernel, body), space, tuple(body), block))

    for stmt in map(_expand_gemms, kernel.body):  # a Gemm becomes a parallel loop nest like any other
        if isinstance(stmt, Loop) and stmt.parallel and not _reads_outer_accumulators(stmt, serial):
            if serial:
                add((), serial)
                serial = []
            add(*_collapse(stmt))
        else:
            serial.append(stmt)
    if serial:
        add((), serial)
    return launches


def _collapse(loop: Loop) -> tuple[tuple[tuple[IVar, int], ...], tuple[Stmt, ...]]:
    """The perfectly nested parallel loops from ``loop`` down, and the body inside the last of them."""
    space: list[tuple[IVar, int]] = []
    current: Stmt = loop
    while True:
        assert isinstance(current, Loop)
        if not isinstance(current.extent, int):
            raise TypeError(f"GPU launches need static loop extents, got {current.extent!r}")
        space.append((current.var, current.extent))
        body = current.body
        if len(body) == 1 and isinstance(body[0], Loop) and body[0].parallel:
            current = body[0]
            continue
        return tuple(space), body


_fresh = itertools.count()


def _name(prefix: str) -> str:
    """A loop variable or accumulator name no lowering rule makes (they use ``i<n>`` and ``acc<n>``)."""
    return f"{prefix}{next(_fresh)}"


def gemm_loops(g: Gemm) -> Loop:
    """``g`` as loop IR: parallel loops over C's rows and columns, each element the sum of its K products
    in order, stored over C."""
    i, j, k = IVar(_name("gi")), IVar(_name("gj")), IVar(_name("gk"))
    acc = _name("gacc")
    a_row, a_col = g.a_strides
    b_row, b_col = g.b_strides
    a = Load(g.a, iadd(g.a_offset, iadd(imul(i, a_row), imul(k, a_col))), g.dtype)
    b = Load(g.b, iadd(g.b_offset, iadd(imul(k, b_row), imul(j, b_col))), g.dtype)
    product = ScalarOp("multiply", (a, b), g.dtype, g.dtype)
    inner = (AccInit(acc, Const(0, g.dtype)),
             Loop(k, g.k, (AccUpdate(acc, "add", product),)),
             Store(g.c, iadd(g.c_offset, iadd(imul(i, g.ldc), j)), AccRef(acc, g.dtype)))
    return Loop(i, g.m, (Loop(j, g.n, inner, parallel=True),), parallel=True)


def _expand_gemms(stmt: Stmt) -> Stmt:
    """``stmt`` with every ``Gemm`` inside it replaced by its generated loops."""
    if isinstance(stmt, Gemm):
        return gemm_loops(stmt)
    if isinstance(stmt, Loop):
        return Loop(stmt.var, stmt.extent, tuple(_expand_gemms(s) for s in stmt.body), stmt.parallel)
    return stmt


def _walk(node: object) -> Iterator[object]:
    """``node`` (a statement, an expression or a tuple of them) and everything inside it, at any depth."""
    yield node
    children = node if isinstance(node, tuple) else (
        getattr(node, name) for name in getattr(node, "__dataclass_fields__", ()))
    for child in children:
        yield from _walk(child)


def _params_used(kernel: LoopKernel, body: Sequence[Stmt]) -> tuple[BufferSpec, ...]:
    found = {n.buffer for n in _walk(tuple(body)) if isinstance(n, (Load, Store))}
    if has_check(body):
        found.add(STATUS)
    return tuple(p for p in kernel.params if p.name in found)


def _reads_outer_accumulators(loop: Loop, serial: Sequence[Stmt]) -> bool:
    """Whether ``loop`` uses an accumulator declared by a preceding top-level statement (it then has to
    run in the same thread as that statement)."""
    declared = {s.name for s in serial if isinstance(s, AccInit)}
    if not declared:
        return False
    used = {n.name for n in _walk(loop) if isinstance(n, (AccRef, AccUpdate, AccSet))}
    return bool(used & declared)


__all__ = ["BLOCK", "Launch", "gemm_loops", "plan_kernel"]
