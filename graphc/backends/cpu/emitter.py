"""Loop IR kernels to LLVM IR, and the one entry function that runs a whole compiled graph.

Each :class:`LoopKernel` becomes an internal function taking its buffers as ``noalias`` pointers;
the entry function ``graphc_entry(void **buffers)`` calls every kernel in order, so running a
graph is one native call.  LLVM inlines the kernels into the entry function and vectorises the
loops (they are branch-free and their trip counts are known).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llvmlite import ir

from graphc.backends.cpu.runtime_lib import declare_gemm, runtime_suffix
from graphc.backends.cpu.threadpool import TASK_TYPE, declare_parallel_for
from graphc.codegen import scalar
from graphc.codegen.sizes import emit_size
from graphc.codegen.target import Target
from graphc.codegen.types import I64, constant, load_value, storage_type, store_value, value_type
from graphc.ir.symbolic import Size, hint, is_symbolic
from graphc.lower.loopir import (
    DIMS,
    STATUS,
    AccInit,
    AccRef,
    AccSet,
    AccUpdate,
    Check,
    Const,
    Gemm,
    IBin,
    IConst,
    IndexValue,
    IValue,
    IVar,
    Load,
    Loop,
    LoopKernel,
    ScalarOp,
    Store,
    has_check,
)

ENTRY = "graphc_entry"
OBJECT_ENTRY = "graphc_entry_objects"
VOID_PTR = ir.IntType(8).as_pointer()
PARALLEL_MIN_WORK = 1 << 16  # innermost iterations below which a loop stays on one thread
TASKS_PER_THREAD = 4  # ranges per thread: the pool balances them when threads are uneven
MATH_LIBRARY = scalar.C_MATH  # float64 transcendental functions: the C library's (linked by name)


def _work(body: Sequence[Any]) -> int:
    """Innermost iterations of ``body``: the cost estimate that decides whether to use threads."""
    total = 0
    for s in body:
        if isinstance(s, Loop):
            total += hint(s.extent) * max(1, _work(s.body))
        elif isinstance(s, Gemm):
            total += hint(s.m * s.n * s.k)
        else:
            total += 1
    return total


class _KernelEmitter:
    """Emits one loop kernel as an internal function taking its buffers as ``noalias`` pointers.

    A top-level loop marked ``parallel`` with at least PARALLEL_MIN_WORK innermost iterations (and
    no fault checks, whose status word would be shared) is outlined into a ``chunk(buffers..., lo,
    hi)`` function and run as ``tasks`` ranges through ``graphc_parallel_for``."""

    def __init__(self, module: ir.Module, kernel: LoopKernel, runtime: str, threads: int = 1,
                 fn: ir.Function | None = None) -> None:
        types = [storage_type(p.dtype).as_pointer() for p in kernel.params]
        if fn is None:
            fn = ir.Function(module, ir.FunctionType(ir.VoidType(), types), kernel.name)
            fn.linkage = "internal"
        self.fn = fn
        for arg, param in zip(self.fn.args, kernel.params):
            arg.name = param.name
            arg.add_attribute("noalias")
        self.buffers = {p.name: (arg, p.dtype) for arg, p in zip(self.fn.args, kernel.params)}
        entry = self.fn.append_basic_block("entry")
        self.allocas = ir.IRBuilder(entry)
        body = self.fn.append_basic_block("body")
        self.b = ir.IRBuilder(body)
        self.indices: dict[str, ir.Value] = {}
        self.accumulators: dict[str, tuple[ir.Value, Any]] = {}
        self.kernel = kernel
        self.module = module
        self.threads = threads
        self.runtime = runtime  # what the runtime library's names end with (runtime_lib.runtime_suffix)
        self._chunks = 0
        self._dims: dict[int, ir.Value] = {}

    def _dim(self, symbol: int) -> ir.Value:
        """Run-time dimension ``symbol``, loaded once at the function's entry."""
        if symbol not in self._dims:
            pointer = self.buffers[DIMS][0]
            self._dims[symbol] = self.allocas.load(self.allocas.gep(pointer, [ir.Constant(I64, symbol)]),
                                                   name=f"d{symbol}")
        return self._dims[symbol]

    def _size(self, value: Size) -> ir.Value:
        return emit_size(self.b, value, self._dim)

    def emit(self) -> ir.Function:
        for s in self.kernel.body:
            if (isinstance(s, Loop) and s.parallel and self.threads > 1 and hint(s.extent) > 1
                    and _work([s]) >= PARALLEL_MIN_WORK and not has_check(s.body)):
                self._parallel(s)
            else:
                self._statements([s])
        return self._finish()

    def _finish(self) -> ir.Function:
        self.b.ret_void()
        self.allocas.branch(self.fn.blocks[1])
        return self.fn

    def _parallel(self, loop: Loop) -> None:
        """Run ``loop`` as ``tasks`` contiguous ranges on the thread pool."""
        self._chunks += 1
        kernel = self.kernel
        types = [storage_type(p.dtype).as_pointer() for p in kernel.params]
        chunk = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [*types, I64, I64]),
                            f"{kernel.name}.chunk{self._chunks}")
        chunk.linkage = "internal"
        inner = _KernelEmitter(self.module, kernel, self.runtime, fn=chunk)
        lo, hi = chunk.args[-2:]
        inner._loop(loop, lo, hi)
        inner._finish()

        tasks = TASKS_PER_THREAD * self.threads
        if not is_symbolic(loop.extent):
            tasks = min(loop.extent, tasks)
        task = ir.Function(self.module, TASK_TYPE, f"{kernel.name}.task{self._chunks}")
        task.linkage = "internal"
        tb = ir.IRBuilder(task.append_basic_block("entry"))
        table = tb.bitcast(task.args[0], VOID_PTR.as_pointer())
        args = [tb.bitcast(tb.load(tb.gep(table, [ir.Constant(I64, k)])), t) for k, t in enumerate(types)]
        i = task.args[1]
        by_name = dict(zip((p.name for p in kernel.params), args))

        def dim(symbol: int) -> ir.Value:
            return tb.load(tb.gep(by_name[DIMS], [ir.Constant(I64, symbol)]))

        extent, n = emit_size(tb, loop.extent, dim), ir.Constant(I64, tasks)
        begin = tb.sdiv(tb.mul(i, extent), n)
        end = tb.sdiv(tb.mul(tb.add(i, ir.Constant(I64, 1)), extent), n)
        tb.call(chunk, [*args, begin, end])
        tb.ret_void()

        ctx = self.allocas.alloca(VOID_PTR, len(types))
        for k, arg in enumerate(self.fn.args[: len(types)]):
            self.b.store(self.b.bitcast(arg, VOID_PTR), self.b.gep(ctx, [ir.Constant(I64, k)]))
        self.b.call(declare_parallel_for(self.module, self.runtime),
                    [task, self.b.bitcast(ctx, VOID_PTR), n, ir.Constant(I64, self.threads)])

    # ---- index and scalar expressions ----
    def _index(self, e: Any) -> ir.Value:
        if isinstance(e, IVar):
            return self.indices[e.name]
        if isinstance(e, IConst):
            return self._size(e.value)
        if isinstance(e, IValue):
            value = self._expr(e.value)
            return value if value.type == I64 else self.b.sext(value, I64)
        assert isinstance(e, IBin)
        a, c = self._index(e.a), self._index(e.b)
        return self.b.add(a, c, flags=["nsw"]) if e.op == "+" else self.b.mul(a, c, flags=["nsw"])

    def _expr(self, e: Any) -> ir.Value:
        if isinstance(e, Const):
            return constant(e.dtype, e.value)
        if isinstance(e, Load):
            pointer, dtype = self.buffers[e.buffer]
            return load_value(self.b, self.b.gep(pointer, [self._index(e.index)], inbounds=True), dtype)
        if isinstance(e, AccRef):
            return self.b.load(self.accumulators[e.name][0])
        if isinstance(e, IndexValue):
            return self._index(e.index)
        assert isinstance(e, ScalarOp)
        args = [self._expr(a) for a in e.args]
        return scalar.emit(self.b, e.op, args, e.in_dtype, e.dtype, dict(e.attrs), MATH_LIBRARY)

    # ---- statements ----
    def _statements(self, body: Sequence[Any]) -> None:
        for s in body:
            if isinstance(s, Loop):
                self._loop(s)
            elif isinstance(s, Store):
                pointer, dtype = self.buffers[s.buffer]
                store_value(self.b, self._expr(s.value), self.b.gep(pointer, [self._index(s.index)], inbounds=True),
                            dtype)
            elif isinstance(s, AccInit):
                dtype = s.init.dtype
                slot = self.allocas.alloca(value_type(dtype), name=s.name)
                self.accumulators[s.name] = (slot, dtype)
                self.b.store(self._expr(s.init), slot)
            elif isinstance(s, Gemm):
                self._gemm(s)
            elif isinstance(s, AccSet):
                self.b.store(self._expr(s.value), self.accumulators[s.name][0])
            elif isinstance(s, Check):
                pointer, _ = self.buffers[STATUS]
                current = self.b.load(pointer)
                self.b.store(self.b.select(self._expr(s.ok), current, ir.Constant(I64, s.code)), pointer)
            elif isinstance(s, AccUpdate):
                slot, dtype = self.accumulators[s.name]
                current = self.b.load(slot)
                value = self._expr(s.value)
                if s.op in ("add", "multiply") and dtype.kind == "f":  # reassoc lets LLVM vectorise the fold
                    fold = self.b.fadd if s.op == "add" else self.b.fmul
                    combined = fold(current, value, flags=["reassoc"])
                else:
                    combined = scalar.emit(self.b, s.op, [current, value], dtype, dtype, {}, MATH_LIBRARY)
                self.b.store(combined, slot)

    def _gemm(self, s: Gemm) -> None:
        fn = declare_gemm(self.module, s.dtype, self.runtime)

        def view(buffer: str, offset: Any) -> ir.Value:
            return self.b.gep(self.buffers[buffer][0], [self._index(offset)], inbounds=True)

        i64 = [self._size(v) for v in (s.m, s.n, s.k, *s.a_strides, *s.b_strides, s.ldc, s.pack_stride,
                                             s.threads)]
        m, n, k, a_row, a_col, b_row, b_col, ldc, pack_stride, threads = i64
        self.b.call(fn, [m, n, k, view(s.a, s.a_offset), a_row, a_col, view(s.b, s.b_offset), b_row, b_col,
                         view(s.c, s.c_offset), ldc, self.buffers[s.pack][0], pack_stride, threads])

    def _loop(self, loop: Loop, start: ir.Value | None = None, stop: ir.Value | None = None) -> None:
        """``for var in range(start, stop)`` (default ``0 .. loop.extent``), as a bottom-tested loop."""
        if start is None and not is_symbolic(loop.extent) and loop.extent <= 0:
            return
        start = ir.Constant(I64, 0) if start is None else start
        stop = self._size(loop.extent) if stop is None else stop
        body = self.fn.append_basic_block(f"{loop.var.name}.body")
        done = self.fn.append_basic_block(f"{loop.var.name}.done")
        before = self.b.block
        if isinstance(start, ir.Constant) and isinstance(stop, ir.Constant):
            self.b.branch(body)
        else:
            self.b.cbranch(self.b.icmp_signed("<", start, stop), body, done)
        self.b.position_at_end(body)
        index = self.b.phi(I64, name=loop.var.name)
        index.add_incoming(start, before)
        self.indices[loop.var.name] = index
        self._statements(loop.body)
        following = self.b.add(index, ir.Constant(I64, 1), flags=["nuw", "nsw"])
        index.add_incoming(following, self.b.block)
        self.b.cbranch(self.b.icmp_signed("<", following, stop), body, done)
        self.b.position_at_end(done)


def emit_program(module: ir.Module, kernels: Sequence[LoopKernel], slots: Mapping[str, int], target: Target,
                 threads: int = 1) -> ir.Function:
    """Emit every kernel and ``graphc_entry(void **buffers)``, which calls them in order, for ``target``
    (whose runtime library the kernels call).

    ``slots`` gives each buffer's position in the ``buffers`` array; large kernels use up to
    ``threads`` threads.  The entry first clears the fault status word, if there is one."""
    entry = ir.Function(module, ir.FunctionType(ir.VoidType(), [VOID_PTR.as_pointer()]), ENTRY)
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    table = entry.args[0]
    runtime = runtime_suffix(target)
    if STATUS in slots:  # no fault yet in this run
        raw = b.load(b.gep(table, [ir.Constant(I64, slots[STATUS])], inbounds=True))
        b.store(ir.Constant(I64, 0), b.bitcast(raw, I64.as_pointer()))
    for kernel in kernels:
        fn = _KernelEmitter(module, kernel, runtime, threads).emit()
        args = []
        for param, arg_type in zip(kernel.params, fn.function_type.args):
            raw = b.load(b.gep(table, [ir.Constant(I64, slots[param.name])], inbounds=True))
            args.append(b.bitcast(raw, arg_type))
        b.call(fn, args)
    b.ret_void()
    return entry


def emit_object_entry(module: ir.Module, slots: Sequence[int], data_offset: int) -> ir.Function:
    """Emit ``graphc_entry_objects(void **buffers)`` for calls from Python: the entries at ``slots``
    hold the addresses of NumPy array objects rather than of their data; each is replaced by the
    data pointer stored ``data_offset`` bytes into the object, then ``graphc_entry`` runs."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [VOID_PTR.as_pointer()]), OBJECT_ENTRY)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    table = fn.args[0]
    for slot in slots:
        entry = b.gep(table, [ir.Constant(I64, slot)], inbounds=True)
        field = b.gep(b.load(entry), [ir.Constant(I64, data_offset)], inbounds=True)
        b.store(b.load(b.bitcast(field, VOID_PTR.as_pointer())), entry)
    b.call(module.globals[ENTRY], [table])
    b.ret_void()
    return fn


__all__ = ["ENTRY", "OBJECT_ENTRY", "emit_object_entry", "emit_program"]
