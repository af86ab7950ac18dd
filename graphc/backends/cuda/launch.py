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
* a top-level ``Gemm`` whose operands a BLAS library can address (a unit stride in each, float32 or
  float64) becomes a :class:`LibraryGemm` step (cuBLAS on a GPU); every other ``Gemm`` becomes the
  generated GEMM: one thread per element of C, summing its K products in order
  (``c = sum_k a[i, k] * b[k, j]``, C overwritten).  A top-level loop holding only products into
  disjoint blocks of C (a batched matmul) is a parallel loop, so its batch index joins the space;
* the other statements (accumulators, sequential loops, checks) between two of those are gathered into
  one serial launch, in order.

Launches of one kernel run one after another on one stream, so each sees what the previous wrote.
A ``Check`` writes its fault code to the status word only where it fails, so threads never overwrite
another's fault with 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

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
    IBin,
    IConst,
    IndexExpr,
    IValue,
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
    are the buffers it uses, in call order (a subset of its loop kernel's, in the same order);
    ``uniforms`` the variables of enclosing :class:`HostLoop` s it reads, passed by value (the same
    for every thread)."""

    name: str
    params: tuple[BufferSpec, ...]
    space: tuple[tuple[IVar, int], ...]
    body: tuple[Stmt, ...]
    block: int = BLOCK
    uniforms: tuple[IVar, ...] = ()

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


@dataclass(frozen=True)
class AtomicAdd:
    """``buffer[index] += value`` as one indivisible read-modify-write (``atomicAdd``): threads adding into
    the same element each get their turn, in an order the GPU chooses."""

    buffer: str
    index: IndexExpr
    value: Expr


ATOMIC_DTYPES = frozenset({"float32", "float64", "int32", "int64"})


def atomic_form(stmt: Stmt) -> Loop | None:
    """A loop nest that only adds into buffers (read-modify-write stores ``b[i] = b[i] + v`` with ``v`` not
    reading ``b``, and checks), such as a scatter-add or col2im, as a parallel nest of :class:`AtomicAdd`:
    its iterations then commute (up to the order of float additions), whatever the loops' flags say.
    None for any other statement, and for nests that are already parallel all the way down."""
    if not isinstance(stmt, Loop) or not isinstance(stmt.extent, int):
        return None
    loops: list[Loop] = []
    current: Stmt = stmt
    while isinstance(current, Loop) and len(current.body) == 1 and isinstance(current.body[0], Loop):
        loops.append(current)
        current = current.body[0]
    if not isinstance(current, Loop):
        return None
    loops.append(current)
    if all(loop.parallel for loop in loops) or not all(isinstance(loop.extent, int) for loop in loops):
        return None
    body: list[Stmt] = []
    for s in current.body:
        add = _read_modify_add(s)
        if add is not None:
            body.append(add)
        elif isinstance(s, Check):
            body.append(s)
        else:
            return None
    if not any(isinstance(s, AtomicAdd) for s in body):
        return None
    nest: Stmt = Loop(current.var, current.extent, tuple(body), parallel=True)  # type: ignore[arg-type]
    for loop in reversed(loops[:-1]):
        nest = Loop(loop.var, loop.extent, (nest,), parallel=True)
    return nest  # type: ignore[return-value]


def _read_modify_add(s: Stmt) -> AtomicAdd | None:
    if not (isinstance(s, Store) and isinstance(s.value, ScalarOp) and s.value.op == "add"):
        return None
    old, value = s.value.args
    if not (isinstance(old, Load) and old.buffer == s.buffer and old.index == s.index) \
            or old.dtype.name not in ATOMIC_DTYPES or s.value.dtype != old.dtype:
        return None
    if any(isinstance(n, Load) and n.buffer == s.buffer for n in walk(value)):
        return None
    return AtomicAdd(s.buffer, s.index, value)


@dataclass(frozen=True)
class BlockFold:
    """``acc = op(acc, value)`` over every point of ``loops`` (a loop nest, outermost first), shared by the
    threads of a block: each thread folds the points ``lane, lane + B, ...`` of the flattened nest
    (starting from ``acc`` in lane 0 and from op's identity in the others), then the block combines the
    partial results by warp shuffles and shared memory, and every thread's ``acc`` holds the total."""

    acc: str
    op: str
    dtype: np.dtype
    loops: tuple[tuple[IVar, int], ...]
    value: Expr

    @property
    def extent(self) -> int:
        return math.prod(extent for _, extent in self.loops)


@dataclass(frozen=True)
class BlockFor:
    """The points of the parallel loop nest ``loops`` spread over a block's threads (``lane, lane + B, ...``
    of the flattened nest), each running ``body``."""

    loops: tuple[tuple[IVar, int], ...]
    body: tuple[Stmt, ...]

    @property
    def extent(self) -> int:
        return math.prod(extent for _, extent in self.loops)


@dataclass(frozen=True)
class Lane0:
    """Statements with memory effects (stores, checks) that one thread of the block runs: lane 0."""

    body: tuple[Stmt, ...]


BlockStmt = BlockFold | BlockFor | Lane0 | AccInit | AccSet | AccUpdate
"""What a block launch's body holds; accumulator statements run in every thread (the same values)."""

FOLD_IDENTITIES = {"add": 0, "multiply": 1, "maximum": -math.inf, "minimum": math.inf}
BLOCK_FOLD_DTYPES = frozenset({"float32", "float64", "int32", "int64"})
BLOCK_FOLD_MIN = 64  # points a row's reduction needs before a block of threads shares it


def fold_identity(op: str, dtype: np.dtype) -> object:
    """The value ``x`` with ``op(x, y) == y`` for every ``y`` of ``dtype``."""
    identity = FOLD_IDENTITIES[op]
    if dtype.kind == "i" and identity in (-math.inf, math.inf):
        info = np.iinfo(dtype)
        return info.min if identity < 0 else info.max
    return identity


@dataclass(frozen=True)
class BlockLaunch:
    """One block of ``block`` threads per point of ``space`` (a row): a row's long reductions and loops are
    shared by its threads (``body``, of :data:`BlockStmt`).  ``uniforms`` as for :class:`Launch`."""

    name: str
    params: tuple[BufferSpec, ...]
    space: tuple[tuple[IVar, int], ...]
    body: tuple[BlockStmt, ...]
    block: int
    uniforms: tuple[IVar, ...] = ()

    @property
    def rows(self) -> int:
        return math.prod(extent for _, extent in self.space)

    @property
    def size(self) -> int:
        return self.rows * self.block

    @property
    def threads_per_block(self) -> int:
        return self.block

    @property
    def grid(self) -> int:
        return self.rows

    def describe(self) -> str:
        dims = ", ".join(f"{var.name} < {extent}" for var, extent in self.space) or "one row"
        folds = sum(1 for s in self.body if isinstance(s, BlockFold))
        return f"{self.name}: grid {self.grid} x block {self.block} (a block per row over ({dims}), {folds} block " \
               f"reduction{'s' if folds != 1 else ''})"


def block_form(launch: Launch) -> BlockLaunch | None:
    """``launch`` with a block per point of its space sharing each row's work, when its body is a row's
    worth of reductions (accumulators folded over loop nests of at least BLOCK_FOLD_MIN points) and
    parallel loops, with nothing else but accumulator updates, stores and checks; else None."""
    body: list[BlockStmt] = []
    dtypes: dict[str, np.dtype] = {}
    longest = 0
    for s in launch.body:
        fold = _fold_nest(s)
        if isinstance(s, AccInit):
            dtypes[s.name] = np.dtype(s.init.dtype)
            body.append(s)
        elif isinstance(s, (AccSet, AccUpdate)):
            body.append(s)
        elif fold is not None:
            loops, update = fold
            dtype = dtypes.get(update.name)
            if dtype is None or dtype.name not in BLOCK_FOLD_DTYPES or update.op not in FOLD_IDENTITIES:
                return None
            folded = BlockFold(update.name, update.op, dtype, loops, update.value)
            longest = max(longest, folded.extent)
            body.append(folded)
        elif isinstance(s, Loop) and s.parallel and not _uses_accumulator_updates(s):
            loops, inner = _collapse(s)
            longest = max(longest, math.prod(extent for _, extent in loops))
            body.append(BlockFor(loops, inner))
        elif isinstance(s, (Store, Check)):
            if body and isinstance(body[-1], Lane0):
                body[-1] = Lane0((*body[-1].body, s))
            else:
                body.append(Lane0((s,)))
        else:
            return None
    if not any(isinstance(s, BlockFold) for s in body) or longest < BLOCK_FOLD_MIN:
        return None
    block = min(launch.block, max(32, 1 << (longest - 1).bit_length()))
    return BlockLaunch(launch.name, launch.params, launch.space, tuple(body), block, launch.uniforms)


def _fold_nest(s: Stmt) -> tuple[tuple[tuple[IVar, int], ...], AccUpdate] | None:
    """``(loops, update)`` when ``s`` is a loop nest (each body one statement) around one AccUpdate."""
    loops: list[tuple[IVar, int]] = []
    while isinstance(s, Loop) and len(s.body) == 1 and isinstance(s.extent, int):
        loops.append((s.var, s.extent))
        s = s.body[0]
    if not loops or not isinstance(s, AccUpdate) or _mentions(s.value, s.name):
        return None
    return tuple(loops), s


def _mentions(e: object, acc: str) -> bool:
    return any(isinstance(n, AccRef) and n.name == acc for n in walk(e))


def _uses_accumulator_updates(s: Stmt) -> bool:
    return any(isinstance(n, (AccInit, AccSet, AccUpdate)) for n in walk(s))


@dataclass(frozen=True)
class LibraryGemm:
    """``gemm`` run by a BLAS library (cuBLAS on a GPU).  BLAS is column-major, so the row-major
    ``C = A B`` is computed as the column-major ``C^T = B^T A^T``: ``first`` / ``second`` are the library
    call's operands (B's and A's buffers), each transposed or not (``"N"`` / ``"T"``) with its leading
    dimension; ``offsets`` are the element offsets of B, A and C (index expressions of enclosing host
    loop variables at most)."""

    name: str
    params: tuple[BufferSpec, ...]
    gemm: Gemm
    first: tuple[str, int]  # (op, leading dimension) of B
    second: tuple[str, int]  # (op, leading dimension) of A
    offsets: tuple[IndexExpr, IndexExpr, IndexExpr]

    def describe(self) -> str:
        g = self.gemm
        return f"{self.name}: BLAS gemm {g.dtype.name} {g.m}x{g.k} @ {g.k}x{g.n}"


@dataclass(frozen=True)
class HostLoop:
    """``for var in range(extent)``: the ``steps`` once per iteration, issued by the host in order (a
    sequential loop whose body holds parallel work, e.g. a convolution's loop over images sharing one
    scratch buffer).  Launches inside read ``var`` as a uniform."""

    name: str
    var: IVar
    extent: int
    steps: tuple[Step, ...]

    @property
    def params(self) -> tuple[BufferSpec, ...]:
        seen: dict[str, BufferSpec] = {}
        for step in self.steps:
            for p in step.params:
                seen.setdefault(p.name, p)
        return tuple(seen.values())

    def describe(self) -> str:
        inner = "; ".join(step.describe() for step in self.steps)
        return f"{self.name}: {self.extent} x [{inner}]"


Kernel = Launch | BlockLaunch
"""A launch of generated code."""
Step = Launch | BlockLaunch | LibraryGemm | HostLoop


def plan_kernel(kernel: LoopKernel, block: int = BLOCK, library_gemm: bool = False) -> list[Step]:
    """The steps that run ``kernel`` on a GPU, in order: launches of generated code and, with
    ``library_gemm``, BLAS calls for the products a library can do."""
    return _Planner(kernel, block, library_gemm).plan(kernel.body, kernel.name, ())


class _Planner:
    def __init__(self, kernel: LoopKernel, block: int, library_gemm: bool) -> None:
        self.kernel, self.block, self.library_gemm = kernel, block, library_gemm

    def plan(self, body: Sequence[Stmt], prefix: str, host: tuple[IVar, ...]) -> list[Step]:
        """Steps for ``body`` inside host loops over ``host`` (outermost first)."""
        steps: list[Step] = []
        serial: list[Stmt] = []
        live_until = _accumulator_spans(body)

        def name() -> str:
            return f"{prefix}_{len(steps)}"

        def launch(space: tuple[tuple[IVar, int], ...], stmts: Sequence[Stmt]) -> Launch | BlockLaunch:
            used = {n for n in walk(tuple(stmts)) if isinstance(n, IVar)}
            space, stmts = widen(space, stmts)
            plain = Launch(name(), self.params(stmts), space, tuple(stmts), self.block,
                           tuple(v for v in host if v in used))
            return block_form(plain) or plain

        def flush() -> None:
            if serial:
                steps.append(launch((), serial))
                serial.clear()

        for position, stmt in enumerate(body):
            if any(first < position <= last for first, last in live_until.values()):
                serial.append(_expand_gemms(stmt))  # an accumulator of the serial run is still live
                continue
            library = self._library(stmt, host) if isinstance(stmt, Gemm) else None
            if library is not None:
                flush()
                steps.append(LibraryGemm(name(), self.params([stmt]), stmt, *library))
                continue
            stmt = atomic_form(stmt) or _batched_products_parallel(stmt)
            if isinstance(stmt, Gemm):
                stmt = gemm_loops(stmt)
            if isinstance(stmt, Loop) and stmt.parallel:
                flush()
                space, inner_body = _collapse(_expand_gemms(stmt))  # type: ignore[arg-type]
                if math.prod(extent for _, extent in space):  # no threads, nothing to launch
                    steps.append(launch(space, inner_body))
            elif isinstance(stmt, Loop) and _has_parallel_work(stmt.body) and isinstance(stmt.extent, int):
                flush()
                loop_name = name()
                inner = self.plan(stmt.body, loop_name, (*host, stmt.var))
                if stmt.extent > 0 and inner:
                    steps.append(HostLoop(loop_name, stmt.var, stmt.extent, tuple(inner)))
            else:
                serial.append(_expand_gemms(stmt))
        flush()
        return steps

    def params(self, body: Sequence[Stmt]) -> tuple[BufferSpec, ...]:
        return _params_used(self.kernel, body)

    def _library(self, g: Gemm, host: tuple[IVar, ...]
                 ) -> tuple[tuple[str, int], tuple[str, int], tuple[IndexExpr, IndexExpr, IndexExpr]] | None:
        if not self.library_gemm or g.dtype.name not in ("float32", "float64"):
            return None
        sizes = (g.m, g.n, g.k, *g.a_strides, *g.b_strides, g.ldc)
        offsets = (g.b_offset, g.a_offset, g.c_offset)
        if not all(isinstance(v, int) for v in sizes) or not all(_uniform(o, host) for o in offsets) \
                or g.ldc < max(1, g.n):
            return None
        first, second = _operand(g.k, g.n, g.b_strides), _operand(g.m, g.k, g.a_strides)
        if first is None or second is None:
            return None
        return first, second, offsets


VECTOR_BYTES = 16  # a 128-bit load or store
WIDEN_MIN = 1 << 16  # elements an elementwise launch needs before each thread takes several


def widen(space: tuple[tuple[IVar, int], ...], body: Sequence[Stmt]) -> tuple[tuple[tuple[IVar, int], ...], list[Stmt]]:
    """A large one-dimensional elementwise launch with each thread doing ``w`` neighbouring points (its body
    repeated for ``var = w * t + 0 .. w - 1``), so that LLVM merges each buffer's accesses into 128-bit
    vector loads and stores (kernel buffers are 16-byte aligned).  ``w`` is 16 bytes over the widest
    element, at most 4; other launches are returned as they are."""
    if len(space) != 1 or not all(isinstance(s, Store) for s in body):
        return space, list(body)
    (var, extent), = space
    if extent < WIDEN_MIN or any(isinstance(n, (AccRef, IValue)) for n in walk(tuple(body))):
        return space, list(body)
    widest = max(n.dtype.itemsize if isinstance(n, Load) else 1 for n in walk(tuple(body)))
    widest = max([widest, *(_store_itemsize(s) for s in body)])
    width = min(4, VECTOR_BYTES // widest)
    if width < 2 or extent % width:
        return space, list(body)
    outer = IVar(_name("w"))
    widened = [_substitute(s, var, iadd(imul(outer, width), IConst(k))) for k in range(width) for s in body]
    return ((outer, extent // width),), widened  # type: ignore[return-value]


def _store_itemsize(s: Store) -> int:
    value = s.value
    return np.dtype(getattr(value, "dtype", np.int8)).itemsize


def _substitute(node: object, var: IVar, replacement: IndexExpr) -> object:
    """``node`` (a statement or expression) with loop variable ``var`` replaced by ``replacement``."""
    if node == var:
        return replacement
    if isinstance(node, tuple):
        return tuple(_substitute(n, var, replacement) for n in node)
    fields = getattr(node, "__dataclass_fields__", None)
    if not fields or isinstance(node, (IConst, Const, BufferSpec)):
        return node
    return type(node)(**{name: _substitute(getattr(node, name), var, replacement) for name in fields})


def evaluate_index(e: object, uniforms: Mapping[str, int]) -> int:
    """The value of an index expression of constants and ``uniforms`` (host loop variables)."""
    if isinstance(e, IConst):
        return int(e.value)
    if isinstance(e, IVar):
        return uniforms[e.name]
    assert isinstance(e, IBin)
    a, b = evaluate_index(e.a, uniforms), evaluate_index(e.b, uniforms)
    return a + b if e.op == "+" else a * b


def affine(e: object) -> tuple[dict[str, int], int] | None:
    """Index expression ``e`` as ``sum(coefficient * variable) + constant`` (variables by name) with static
    coefficients, or None when it is not of that form (a product of variables, a loaded value, a run-time
    size)."""
    if isinstance(e, IVar):
        return {e.name: 1}, 0
    if isinstance(e, IConst):
        return ({}, e.value) if isinstance(e.value, int) else None
    if not isinstance(e, IBin):
        return None
    a, b = affine(e.a), affine(e.b)
    if a is None or b is None:
        return None
    if e.op == "+":
        terms = dict(a[0])
        for name, c in b[0].items():
            terms[name] = terms.get(name, 0) + c
        return terms, a[1] + b[1]
    if a[0] and b[0]:
        return None
    (terms, k), scale = (a, b[1]) if a[0] else (b, a[1])
    return {name: c * scale for name, c in terms.items()}, k * scale


def _uniform(e: object, host: tuple[IVar, ...]) -> bool:
    """Whether index expression ``e`` uses nothing but constants and the host loop variables."""
    if isinstance(e, IConst):
        return isinstance(e.value, int)
    if isinstance(e, IVar):
        return e in host
    return isinstance(e, IBin) and _uniform(e.a, host) and _uniform(e.b, host)


def _has_parallel_work(body: Sequence[Stmt]) -> bool:
    """Whether ``body`` holds a parallel loop or a matrix product at its top level (then a host loop
    over it beats one thread running it all)."""
    return any(isinstance(s, Gemm) or (isinstance(s, Loop) and (s.parallel or _has_parallel_work(s.body)))
               for s in body)


def _accumulator_spans(body: Sequence[Stmt]) -> dict[str, tuple[int, int]]:
    """For each accumulator declared at the top level of ``body``: the positions of the statement declaring
    it and of the last statement using it (they must run in one thread, so in one serial launch)."""
    spans: dict[str, tuple[int, int]] = {}
    for position, stmt in enumerate(body):
        if isinstance(stmt, AccInit):
            spans[stmt.name] = (position, position)
        for n in walk(stmt):
            name = n.name if isinstance(n, (AccRef, AccUpdate, AccSet)) else None
            if name in spans:
                spans[name] = (spans[name][0], position)
    return spans


def _operand(rows: int, cols: int, strides: tuple[int, int]) -> tuple[str, int] | None:
    """How BLAS addresses a row-major view (``rows x cols``, element ``strides``) as the column-major
    transpose it needs: ``("N", ld)`` when rows are contiguous runs, ``("T", ld)`` when columns are."""
    row, col = strides
    if col == 1 and row >= max(1, cols):
        return "N", max(1, row)
    if row == 1 and col >= max(1, rows):
        return "T", max(1, col)
    if rows == 1 and col == 1:
        return "N", max(1, cols)
    if cols == 1 and row == 1:
        return "T", max(1, rows)
    return None


def _batched_products_parallel(stmt: Stmt) -> Stmt:
    """A loop whose body is only matrix products writing buffers none of them reads, each C block at an
    offset that moves with the loop variable (a batched matmul: ``c_offset = b * m * ldc``), as a
    parallel loop: its iterations write disjoint blocks of C.  (The CPU keeps such loops sequential
    because its GEMM is itself threaded.)"""
    if not (isinstance(stmt, Loop) and not stmt.parallel and stmt.body
            and all(isinstance(s, Gemm) for s in stmt.body)):
        return stmt
    written = {g.c for g in stmt.body}  # type: ignore[union-attr]
    read = {name for g in stmt.body for name in (g.a, g.b)}  # type: ignore[union-attr]
    if written & read or len(written) != len(stmt.body):
        return stmt
    for g in stmt.body:
        step = _coefficient(g.c_offset, stmt.var)  # type: ignore[union-attr]
        if step is None or step < g.m * g.ldc:  # type: ignore[union-attr]
            return stmt
    return Loop(stmt.var, stmt.extent, stmt.body, parallel=True)


def _coefficient(e: object, var: IVar) -> int | None:
    """``c`` where ``e == c * var + (terms without var)`` with static ``c`` (None if ``e`` is not affine)."""
    found = affine(e)
    return None if found is None else found[0].get(var.name, 0)


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


def walk(node: object) -> Iterator[object]:
    """``node`` (a statement, an expression or a tuple of them) and everything inside it, at any depth."""
    yield node
    children = node if isinstance(node, tuple) else (
        getattr(node, name) for name in getattr(node, "__dataclass_fields__", ()))
    for child in children:
        yield from walk(child)


def _params_used(kernel: LoopKernel, body: Sequence[Stmt]) -> tuple[BufferSpec, ...]:
    found = set()
    for n in walk(tuple(body)):
        if isinstance(n, (Load, Store, AtomicAdd)):
            found.add(n.buffer)
        elif isinstance(n, Gemm):
            found.update((n.a, n.b, n.c))
    if has_check(body):
        found.add(STATUS)
    return tuple(p for p in kernel.params if p.name in found)


__all__ = ["BLOCK", "AtomicAdd", "BlockFold", "BlockFor", "BlockLaunch", "BlockStmt", "HostLoop", "Kernel", "Lane0",
           "Launch", "LibraryGemm", "Step", "affine", "atomic_form", "block_form", "evaluate_index", "fold_identity",
           "gemm_loops", "plan_kernel", "walk", "widen"]
