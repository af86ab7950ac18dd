"""The CUDA emulator's core: a launch's threads run in lockstep as NumPy arrays.

Every per-thread value (a variable of the launch's space, an element loaded through it, an accumulator)
is an array with one entry per thread; values the same for every thread (loop variables inside the body,
host loop variables, constants) stay scalars.  The loop IR has no branches (a choice is a ``where``) and
loop extents are static, so all threads of a launch execute the same statements in the same order and
lockstep is exact.

Each launch is translated once into a Python function (straight-line NumPy calls inside ``for`` loops,
kept with the launch), so running it costs no tree walking.  Scalar ops are computed by each op's NumPy
reference (the registry's ``reference``), never by the backend's code generator: the emulator checks
the lowering and the launch plan independently of the NVPTX emitter.  What a GPU would do wrong, the
emulator reports as an :class:`EmulatorFault` (a graphc bug, not a user error):

* a load or store outside its buffer (the compute-sanitizer's memcheck).  Indices whose range the
  translation can bound from the loop extents are checked once, when translating; the others (indices
  computed from loaded values, host loop variables) at run time;
* a data race between threads of one launch (its racecheck): two threads writing one element, or a
  thread reading or overwriting an element another thread of the launch wrote or read.  Launches run
  one after another, as on one stream, so there are no races between them.

Device memory is filled with 0xFF bytes when allocated (NaN for floats), so a value read before it is
written shows up in the results.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from graphc.backends.cuda.launch import (
    AtomicAdd,
    BlockFold,
    BlockFor,
    BlockLaunch,
    Lane0,
    Launch,
    LibraryGemm,
    affine,
    evaluate_index,
    fold_identity,
    walk,
)
from graphc.errors import GraphcError
from graphc.ir.registry import get_op
from graphc.lower.loopir import (
    STATUS,
    AccInit,
    AccRef,
    AccSet,
    AccUpdate,
    Check,
    Const,
    IBin,
    IConst,
    IndexValue,
    IValue,
    IVar,
    Load,
    Loop,
    ScalarOp,
    Store,
)


class EmulatorFault(GraphcError):
    """Generated code that would misbehave on a GPU: an access out of bounds or a data race."""


Range = tuple[int, int] | None  # the smallest and largest value an index can take (None: not known)


class _Runtime:
    """What a translated launch calls at run time: dynamic bounds checks, race tracking, faults."""

    def __init__(self, launch: Launch, buffers: Mapping[str, np.ndarray], written: set[str]) -> None:
        self.launch = launch
        self.count = launch.size
        self.tid = np.arange(self.count, dtype=np.int64)
        self.buffers = buffers
        self.tracked = self.count > 1
        self.writer = {name: np.full(buffers[name].size, -1, np.int64) for name in written} if self.tracked else {}
        self.reader = {name: np.full(buffers[name].size, -1, np.int64) for name in written} if self.tracked else {}
        self.poisoned = False

    def fault(self, message: str) -> EmulatorFault:
        return EmulatorFault(f"launch {self.launch.describe()}: {message}")

    def bounds(self, name: str, index: Any, what: str) -> None:
        size = self.buffers[name].size
        index = np.asarray(index)
        bad = (index < 0) | (index >= size)
        if bad.any():
            thread = int(np.argmax(bad)) if bad.ndim else 0
            at = int(index[thread]) if index.ndim else int(index)
            raise self.fault(f"thread {thread} {what} element {at} of buffer {name} (of {size} elements)")

    def _active(self, index: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
        full = np.broadcast_to(index, (self.count,))
        return (full, self.tid) if mask is None else (full[mask], self.tid[mask])

    def _race_of(self, name: str, index: np.ndarray, tid: np.ndarray, owners: np.ndarray, what: str) -> None:
        bad = (owners != -1) & (owners != tid)
        if bad.any():
            k = int(np.argmax(bad))
            other = int(owners[k])
            who = f"thread {other}" if other >= 0 else "other threads"
            raise self.fault(f"data race on element {int(index[k])} of buffer {name}: thread {int(tid[k])} "
                             f"{what} it after {who} of the same launch")

    def read(self, name: str, index: Any, mask: Any = None) -> None:
        """Record that every (active) thread reads element ``index`` of ``name`` (a buffer the launch writes)."""
        full, tid = self._active(index, mask)
        self._race_of(name, full, tid, self.writer[name][full], "reads")
        readers = self.reader[name]
        seen = readers[full]
        readers[full] = np.where((seen == -1) | (seen == tid), tid, -2)

    def write(self, name: str, index: Any, mask: Any = None) -> None:
        """Record that every (active) thread writes element ``index`` of ``name``."""
        full, tid = self._active(index, mask)
        writer = self.writer[name]
        self._race_of(name, full, tid, writer[full], "writes")
        self._race_of(name, full, tid, self.reader[name][full], "overwrites")
        writer[full] = tid
        lost = writer[full] != tid  # another thread of this statement wrote the same element
        if lost.any():
            k = int(np.argmax(lost))
            raise self.fault(f"data race on element {int(full[k])} of buffer {name}: threads {int(tid[k])} and "
                             f"{int(writer[full[k]])} both write it")

    def atomic(self, name: str, index: Any, mask: Any = None) -> None:
        """Record that every (active) thread adds atomically into element ``index`` of ``name``: atomic adds
        do not race with each other, but do with a plain access by another thread of the launch."""
        full, tid = self._active(index, mask)
        self._race_of(name, full, tid, self.writer[name][full], "adds into")
        self._race_of(name, full, tid, self.reader[name][full], "adds into")
        self.writer[name][full] = ATOMIC

    def block_combine(self, partial: np.ndarray, combine: Callable[..., Any], identity: Any, block: int) -> np.ndarray:
        """The block-wide fold of each thread's ``partial``, as a GPU computes it, in every thread: a warp
        shuffle tree in each warp, each warp's lane 0 writing its total to shared memory, a barrier, then
        every warp folding the shared totals with the same tree, and lane 0's result broadcast (shfl.idx)."""
        warps = block // WARP
        lanes = partial.reshape(-1, warps, WARP)  # (row, warp, lane)
        shared = _warp_fold(lanes, combine)[:, :, 0]  # lane 0 of each warp: st.shared [warp]; bar.sync
        second = np.full((lanes.shape[0], WARP), identity, dtype=partial.dtype)
        second[:, :warps] = shared  # lanes >= warps read the identity instead of shared memory
        total = _warp_fold(second, combine)[:, 0]
        return np.repeat(total, block)

    def guarded(self, fn: Callable[..., Any], dtype: np.dtype, *args: Any) -> Any:
        """``fn(*args)`` for an op whose reference raises on bad input (an integer to a negative power):
        zeros then, and the launch must end with a fault reported by a Check."""
        try:
            return np.asarray(fn(*args), dtype)
        except (ArithmeticError, ValueError, GraphcError):
            self.poisoned = True
            return np.zeros(np.broadcast(*args).shape, dtype)


WARP = 32
ATOMIC = -3  # the owner recorded for an element updated by atomic adds


def shfl_down(values: np.ndarray, offset: int) -> np.ndarray:
    """CUDA's ``__shfl_down_sync`` over the last axis (a warp's lanes): lane ``i`` gets lane ``i + offset``'s
    value, and its own where that lane is outside the warp."""
    return np.concatenate([values[..., offset:], values[..., WARP - offset:]], axis=-1)


def _warp_fold(values: np.ndarray, combine: Callable[..., Any]) -> np.ndarray:
    """The shuffle-down tree (offsets 16, 8, 4, 2, 1): lane 0 ends with the fold of the warp's 32 values."""
    for offset in (16, 8, 4, 2, 1):
        values = np.asarray(combine(values, shfl_down(values, offset)), values.dtype)
    return values


def _range_add(a: Range, b: Range) -> Range:
    return None if a is None or b is None else (a[0] + b[0], a[1] + b[1])


def _range_mul(a: Range, b: Range) -> Range:
    if a is None or b is None:
        return None
    products = [x * y for x in a for y in b]
    return min(products), max(products)


class _Translator:
    """Writes one launch as the source of a Python function ``launch(B, U, R, S)``: ``B`` the buffers by
    name, ``U`` the thread and host loop variables, ``R`` the :class:`_Runtime`, ``S`` the status word."""

    def __init__(self, launch: Launch, sizes: Mapping[str, int]) -> None:
        self.launch = launch
        self.sizes = sizes
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"np": np}
        self.depth = 1
        self.temps = 0
        self.ranges: dict[str, Range] = {}
        self.varying: set[str] = set()  # variables with one value per thread
        self.threads = launch.size
        self.written = {s.buffer for s in _statements(launch.body) if isinstance(s, (Store, AtomicAdd))}
        self.tracked = self.threads > 1
        self.private = _private_buffers(launch, self.written)  # race-free by construction: not tracked
        self.mask: str | None = None  # the threads that run the statements being translated (None: all)
        self.memo: list[dict[str, str]] = [{}]  # index code -> the temporary holding it, per loop scope

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def temp(self, code: str) -> str:
        self.temps += 1
        name = f"v{self.temps}"
        self.emit(f"{name} = {code}")
        return name

    def constant(self, value: Any) -> str:
        name = f"c{len(self.names)}"
        self.names[name] = value
        return name

    def source(self) -> str:
        header = ["def launch(B, U, R, S):"]
        header += [f"    b_{p.name} = B[{p.name!r}]" for p in self.launch.params]
        for var, extent in self.launch.space:
            header.append(f"    {var.name} = U[{var.name!r}]")
            self.ranges[var.name] = (0, extent - 1)
            self.varying.add(var.name)
        for var in self.launch.uniforms:
            header.append(f"    {var.name} = U[{var.name!r}]")
            self.ranges[var.name] = None
        self.statements(self.launch.body)
        return "\n".join(header + self.lines + ["    return None"])

    # ---- indices: (code, range, varying) ----
    def index(self, e: Any) -> tuple[str, Range, bool]:
        if isinstance(e, IVar):
            return e.name, self.ranges[e.name], e.name in self.varying
        if isinstance(e, IConst):
            v = int(e.value)
            return str(v), (v, v), False
        if isinstance(e, IBin):
            a, ra, va = self.index(e.a)
            b, rb, vb = self.index(e.b)
            ranged = _range_add(ra, rb) if e.op == "+" else _range_mul(ra, rb)
            return f"({a} {e.op} {b})", ranged, va or vb
        assert isinstance(e, IValue)
        code, varying = self.expr(e.value)
        return self.temp(f"np.asarray({code}).astype(np.int64)"), None, varying

    def tracks(self, buffer: str) -> bool:
        """Whether accesses to ``buffer`` are recorded for the race check."""
        return self.tracked and buffer in self.written and buffer not in self.private

    def scope(self) -> None:
        """Entering a loop body: index temporaries computed inside it are not reused after it."""
        self.memo.append({})

    def unscope(self) -> None:
        self.memo.pop()

    def checked(self, buffer: str, e: Any, what: str) -> tuple[str, bool]:
        code, ranged, varying = self.index(e)
        size = self.sizes[buffer]
        name = next((m[code] for m in reversed(self.memo) if code in m), None)
        if name is None:
            name = self.memo[-1][code] = self.temp(code)
        if ranged is None:
            self.emit(f"R.bounds({buffer!r}, {name}, {what!r})")
        elif ranged[0] < 0 or ranged[1] >= size:
            raise EmulatorFault(f"launch {self.launch.describe()}: {what} elements {ranged[0]}..{ranged[1]} of "
                                f"buffer {buffer} (of {size} elements)")
        return name, varying

    # ---- scalar expressions: (code, varying) ----
    def expr(self, e: Any) -> tuple[str, bool]:
        if isinstance(e, Const):
            return self.constant(np.asarray(e.value, dtype=e.dtype)), False
        if isinstance(e, Load):
            index, varying = self.checked(e.buffer, e.index, "reads")
            if self.tracks(e.buffer):
                self.emit(f"R.read({e.buffer!r}, {index}, {self.mask})")
            return self.temp(f"b_{e.buffer}[{index}]"), varying
        if isinstance(e, AccRef):
            return f"a_{e.name}", bool(self.launch.space)
        if isinstance(e, IndexValue):
            code, _, varying = self.index(e.index)
            return self.temp(f"np.asarray({code}, np.int64)"), varying
        assert isinstance(e, ScalarOp)
        args = [self.expr(a) for a in e.args]
        return self.op(e.op, [code for code, _ in args], e.in_dtype, e.dtype, dict(e.attrs)), any(v for _, v in args)

    def op(self, op: str, args: list[str], in_dtype: np.dtype, dtype: np.dtype, attrs: dict[str, Any]) -> str:
        reference = get_op(op).reference
        fn = self.constant(functools.partial(reference, **attrs) if attrs else reference)
        dt = self.constant(np.dtype(dtype))
        if in_dtype.kind in "iub":  # integer references may raise (a negative power): a Check reports it
            return self.temp(f"R.guarded({fn}, {dt}, {', '.join(args)})")
        return self.temp(f"np.asarray({fn}({', '.join(args)}), {dt})")

    # ---- statements ----
    def statements(self, body: Any) -> None:
        for s in body:
            if isinstance(s, Store):
                index, _ = self.checked(s.buffer, s.index, "writes")
                value, _ = self.expr(s.value)
                if self.tracks(s.buffer):
                    self.emit(f"R.write({s.buffer!r}, {index}, {self.mask})")
                if self.mask is None:
                    self.emit(f"b_{s.buffer}[{index}] = {value}")
                else:
                    where = f"np.broadcast_to({index}, ({self.threads},))[{self.mask}]"
                    self.emit(f"b_{s.buffer}[{where}] = np.broadcast_to({value}, ({self.threads},))[{self.mask}]")
            elif isinstance(s, AtomicAdd):
                index, _ = self.checked(s.buffer, s.index, "adds into")
                value, _ = self.expr(s.value)
                if self.tracks(s.buffer):
                    self.emit(f"R.atomic({s.buffer!r}, {index}, {self.mask})")
                where = f"np.broadcast_to({index}, ({self.threads},))"
                values = f"np.broadcast_to({value}, ({self.threads},))"
                if self.mask is not None:
                    where, values = f"{where}[{self.mask}]", f"{values}[{self.mask}]"
                self.emit(f"np.add.at(b_{s.buffer}, {where}, {values})  # colliding threads take turns")
            elif isinstance(s, Loop):
                if int(s.extent) <= 0:
                    continue
                self.ranges[s.var.name] = (0, int(s.extent) - 1)
                self.emit(f"for {s.var.name} in range({int(s.extent)}):")
                self.depth += 1
                self.scope()
                self.statements(s.body)
                self.unscope()
                self.emit("pass")
                self.depth -= 1
            elif isinstance(s, AccInit):
                value, _ = self.expr(s.init)
                dt = self.constant(np.dtype(s.init.dtype))
                shape = f"({self.threads},)" if self.launch.space else "()"
                self.emit(f"a_{s.name} = np.array(np.broadcast_to({value}, {shape}), {dt})")
            elif isinstance(s, AccUpdate):
                value, _ = self.expr(s.value)
                dtype = self._acc_dtype(s.name)
                self.emit(f"a_{s.name} = {self.op(s.op, [f'a_{s.name}', value], dtype, dtype, {})}")
            elif isinstance(s, AccSet):
                value, _ = self.expr(s.value)
                dt = self.constant(self._acc_dtype(s.name))
                self.emit(f"a_{s.name} = np.array(np.broadcast_to({value}, a_{s.name}.shape), {dt})")
            elif isinstance(s, Check):
                ok, _ = self.expr(s.ok)
                if self.mask is not None:
                    ok = self.temp(f"np.broadcast_to({ok}, ({self.threads},))[{self.mask}]")
                self.emit(f"if not np.all({ok}): S[0] = {int(s.code)}")
            else:
                raise EmulatorFault(f"launch {self.launch.describe()}: cannot run statement {type(s).__name__}")

    def _acc_dtype(self, name: str) -> np.dtype:
        for s in _statements(self.launch.body):
            if isinstance(s, AccInit) and s.name == name:
                return np.dtype(s.init.dtype)
        raise EmulatorFault(f"launch {self.launch.describe()}: accumulator {name} is never declared")


class _BlockTranslator(_Translator):
    """A :class:`BlockLaunch`: thread ``t`` is lane ``t % B`` of block (row) ``t // B``."""

    def source(self) -> str:
        launch = self.launch
        assert isinstance(launch, BlockLaunch)
        header = ["def launch(B, U, R, S):"]
        header += [f"    b_{p.name} = B[{p.name!r}]" for p in launch.params]
        header.append("    lane = U['lane']")
        for var, extent in launch.space:
            header.append(f"    {var.name} = U[{var.name!r}]")
            self.ranges[var.name] = (0, extent - 1)
            self.varying.add(var.name)
        for var in launch.uniforms:
            header.append(f"    {var.name} = U[{var.name!r}]")
            self.ranges[var.name] = None
        self.varying.add("lane")
        self.emit("lane0 = lane == 0")
        for s in launch.body:
            if isinstance(s, BlockFold):
                self.fold(s)
            elif isinstance(s, BlockFor):
                self.spread(s.loops, lambda body=s.body: self.statements(body))
            elif isinstance(s, Lane0):
                self.mask = "lane0"
                self.statements(s.body)
                self.mask = None
            else:
                self.statements([s])
        return "\n".join(header + self.lines + ["    return None"])

    def spread(self, loops: tuple[tuple[IVar, int], ...], body: Callable[[], None]) -> None:
        """``body`` at points ``lane, lane + B, ...`` of the flattened ``loops`` (lanes past the end run it
        on point 0 with their stores, checks and race records masked off)."""
        block = self.launch.block
        extent = math.prod(e for _, e in loops)
        self.emit(f"for step in range({-(-extent // block)}):")
        self.depth += 1
        self.emit(f"point = step * {block} + lane")
        self.emit(f"active = point < {extent}")
        self.emit("point = np.where(active, point, 0)")
        for var, e in reversed(loops):
            self.emit(f"{var.name} = point % {e}")
            self.emit(f"point = point // {e}")
            self.ranges[var.name] = (0, e - 1)
            self.varying.add(var.name)
        previous, self.mask = self.mask, "active"
        self.scope()
        body()
        self.unscope()
        self.mask = previous
        self.depth -= 1

    def fold(self, s: BlockFold) -> None:
        fn = self.constant(get_op(s.op).reference)
        identity = fold_identity(s.op, s.dtype)
        if s.op == "add" and s.dtype.kind == "f":
            identity = -0.0  # x + -0.0 == x for every x, -0.0 included
        ident = self.constant(np.asarray(identity, s.dtype))
        self.emit(f"part = np.where(lane0, a_{s.acc}, {ident})")

        def update() -> None:
            value, _ = self.expr(s.value)
            self.emit(f"part = np.where(active, np.asarray({fn}(part, {value}), part.dtype), part)")

        self.spread(s.loops, update)
        self.emit(f"a_{s.acc} = R.block_combine(part, {fn}, {ident}, {self.launch.block})")


def _injective(e: Any, space: tuple[tuple[IVar, int], ...]) -> bool:
    """Whether index ``e`` takes a different value at every point of ``space`` (and depends on nothing else):
    an affine index whose coefficients, smallest first, each exceed the span of the ones before."""
    found = affine(e)
    if found is None:
        return False
    terms, _ = found
    extents = {var.name: extent for var, extent in space}
    if set(terms) - set(extents) or any(extents[v] > 1 and terms.get(v, 0) <= 0 for v in extents):
        return False
    reach = 0
    for coefficient, extent in sorted((terms[v], extents[v]) for v in terms if extents[v] > 1):
        if coefficient <= reach:
            return False
        reach += coefficient * (extent - 1)
    return True


def _private_buffers(launch: Launch | BlockLaunch, written: set[str]) -> set[str]:
    """Buffers the launch writes whose every access uses one index, injective over the launch's threads: each
    thread then touches its own elements only, so no race is possible and none needs recording."""
    if not isinstance(launch, Launch):
        return set()
    indices: dict[str, set[Any]] = {name: set() for name in written}
    for n in walk(launch.body):
        if isinstance(n, (Load, Store, AtomicAdd)) and n.buffer in indices:
            indices[n.buffer].add(n.index)
    return {name for name, found in indices.items() if _disjoint_per_thread(found, launch.space)}


def _disjoint_per_thread(indices: set[Any], space: tuple[tuple[IVar, int], ...]) -> bool:
    """Whether no element reached through ``indices`` is reached by two threads: one injective index, or
    several (a widened launch's ``w * t + k``) that differ only in constants spanning less than the smallest
    stride."""
    forms = [affine(e) for e in indices]
    if not forms or any(f is None for f in forms) or not _injective(next(iter(indices)), space):
        return False
    terms = forms[0][0]  # type: ignore[index]
    if any(f[0] != terms for f in forms):  # type: ignore[index]
        return False
    constants = [f[1] for f in forms]  # type: ignore[index]
    extents = {var.name: extent for var, extent in space}
    strides = [c for v, c in terms.items() if extents[v] > 1]
    return not strides or max(constants) - min(constants) < min(strides)


def _statements(body: Any) -> Any:
    for s in body:
        yield s
        if isinstance(s, (Loop, BlockFor, Lane0)):
            yield from _statements(s.body)


class Translated:
    """A launch as a Python function (``fn``), the buffers it writes, and the function's source."""

    def __init__(self, launch: Launch | BlockLaunch) -> None:
        kind = _BlockTranslator if isinstance(launch, BlockLaunch) else _Translator
        translator = kind(launch, {p.name: int(p.size) for p in launch.params})  # type: ignore[arg-type]
        self.launch = launch
        self.source = translator.source()
        self.written = translator.written
        namespace = dict(translator.names)
        exec(compile(self.source, f"<launch {launch.name}>", "exec"), namespace)  # our own generated code
        self.fn: Callable[..., None] = namespace["launch"]


def run_launch(translated: Translated, buffers: Mapping[str, np.ndarray], uniforms: Mapping[str, int]) -> None:
    """Run every thread of a translated launch over ``buffers`` (its parameters by name, as typed flat
    arrays) with the values of the host loop variables it reads."""
    launch, fn = translated.launch, translated.fn
    runtime = _Runtime(launch, buffers, translated.written)
    values: dict[str, Any] = dict(uniforms)
    remaining = runtime.tid
    if isinstance(launch, BlockLaunch):  # thread = row * B + lane
        values["lane"] = remaining % launch.block
        remaining = remaining // launch.block
    for var, extent in reversed(launch.space):  # the last variable varies fastest
        values[var.name] = remaining % extent
        remaining = remaining // extent
    status = buffers.get(STATUS)
    with np.errstate(all="ignore"):
        fn(buffers, values, runtime, status)
    if runtime.poisoned and (status is None or not status[0]):
        raise runtime.fault("a scalar op failed where no check reported a fault")


def _matrix(buffer: np.ndarray, offset: int, shape: tuple[int, int], strides: tuple[int, int], name: str,
            step: LibraryGemm) -> np.ndarray:
    """A strided view of ``buffer`` (element offset and strides), checked to lie inside it."""
    rows, cols = shape
    if rows and cols:
        last = offset + (rows - 1) * strides[0] + (cols - 1) * strides[1]
        if offset < 0 or last >= buffer.size:
            raise EmulatorFault(f"{step.describe()}: operand {name} reaches element {last} of {buffer.size}")
    item = buffer.itemsize
    return np.lib.stride_tricks.as_strided(buffer[offset:], shape, (strides[0] * item, strides[1] * item))


def run_library_gemm(step: LibraryGemm, buffers: Mapping[str, np.ndarray], uniforms: Mapping[str, int]) -> None:
    """What cuBLAS computes for ``step``: ``C = A @ B`` over the strided views."""
    g = step.gemm
    b_offset, a_offset, c_offset = (evaluate_index(e, uniforms) for e in step.offsets)
    a = _matrix(buffers[g.a], a_offset, (g.m, g.k), g.a_strides, "A", step)
    b = _matrix(buffers[g.b], b_offset, (g.k, g.n), g.b_strides, "B", step)
    c = _matrix(buffers[g.c], c_offset, (g.m, g.n), (g.ldc, 1), "C", step)
    c[...] = np.matmul(a, b) if g.k else 0  # (a dtype= argument would keep NumPy from calling its BLAS)


__all__ = ["EmulatorFault", "Translated", "run_launch", "run_library_gemm"]
