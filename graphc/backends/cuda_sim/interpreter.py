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
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from graphc.backends.cuda.launch import Launch, LibraryGemm, evaluate_index
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

    def _race(self, name: str, index: np.ndarray, owners: np.ndarray, what: str) -> None:
        bad = (owners != -1) & (owners != self.tid)
        if bad.any():
            thread = int(np.argmax(bad))
            other = int(owners[thread])
            who = f"thread {other}" if other >= 0 else "other threads"
            raise self.fault(f"data race on element {int(index[thread])} of buffer {name}: thread {thread} "
                             f"{what} it after {who} of the same launch")

    def read(self, name: str, index: Any) -> None:
        """Record that every thread reads element ``index`` of ``name`` (a buffer the launch writes)."""
        full = np.broadcast_to(index, (self.count,))
        self._race(name, full, self.writer[name][full], "reads")
        readers = self.reader[name]
        seen = readers[full]
        readers[full] = np.where((seen == -1) | (seen == self.tid), self.tid, -2)

    def write(self, name: str, index: Any) -> None:
        """Record that every thread writes element ``index`` of ``name``."""
        full = np.broadcast_to(index, (self.count,))
        writer = self.writer[name]
        self._race(name, full, writer[full], "writes")
        self._race(name, full, self.reader[name][full], "overwrites")
        writer[full] = self.tid
        lost = writer[full] != self.tid  # another thread of this statement wrote the same element
        if lost.any():
            thread = int(np.argmax(lost))
            raise self.fault(f"data race on element {int(full[thread])} of buffer {name}: threads {thread} and "
                             f"{int(writer[full[thread]])} both write it")

    def guarded(self, fn: Callable[..., Any], dtype: np.dtype, *args: Any) -> Any:
        """``fn(*args)`` for an op whose reference raises on bad input (an integer to a negative power):
        zeros then, and the launch must end with a fault reported by a Check."""
        try:
            return np.asarray(fn(*args), dtype)
        except (ArithmeticError, ValueError, GraphcError):
            self.poisoned = True
            return np.zeros(np.broadcast(*args).shape, dtype)


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
        self.written = {s.buffer for s in _statements(launch.body) if isinstance(s, Store)}
        self.tracked = self.threads > 1

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

    def checked(self, buffer: str, e: Any, what: str) -> tuple[str, bool]:
        code, ranged, varying = self.index(e)
        size = self.sizes[buffer]
        name = self.temp(code)
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
            if self.tracked and e.buffer in self.written:
                self.emit(f"R.read({e.buffer!r}, {index})")
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
                if self.tracked:
                    self.emit(f"R.write({s.buffer!r}, {index})")
                self.emit(f"b_{s.buffer}[{index}] = {value}")
            elif isinstance(s, Loop):
                if int(s.extent) <= 0:
                    continue
                self.ranges[s.var.name] = (0, int(s.extent) - 1)
                self.emit(f"for {s.var.name} in range({int(s.extent)}):")
                self.depth += 1
                self.statements(s.body)
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
                self.emit(f"if not np.all({ok}): S[0] = {int(s.code)}")
            else:
                raise EmulatorFault(f"launch {self.launch.describe()}: cannot run statement {type(s).__name__}")

    def _acc_dtype(self, name: str) -> np.dtype:
        for s in _statements(self.launch.body):
            if isinstance(s, AccInit) and s.name == name:
                return np.dtype(s.init.dtype)
        raise EmulatorFault(f"launch {self.launch.describe()}: accumulator {name} is never declared")


def _statements(body: Any) -> Any:
    for s in body:
        yield s
        if isinstance(s, Loop):
            yield from _statements(s.body)


class Translated:
    """A launch as a Python function (``fn``), the buffers it writes, and the function's source."""

    def __init__(self, launch: Launch) -> None:
        translator = _Translator(launch, {p.name: int(p.size) for p in launch.params})
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
    c[...] = np.matmul(a, b, dtype=g.dtype) if g.k else 0


__all__ = ["EmulatorFault", "Translated", "run_launch", "run_library_gemm"]
