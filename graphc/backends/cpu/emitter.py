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

from graphc.backends.cpu.entry import ENTRY, OBJECT_ENTRY
from graphc.backends.cpu.runtime_lib import declare_gemm, runtime_suffix
from graphc.backends.cpu.threadpool import TASK_TYPE, declare_parallel_for
from graphc.codegen import scalar
from graphc.codegen.loops import LoopEmitter
from graphc.codegen.sizes import emit_size
from graphc.codegen.target import Target
from graphc.codegen.types import I64, storage_type
from graphc.ir.symbolic import hint, is_symbolic
from graphc.lower.loopir import (
    DIMS,
    STATUS,
    Gemm,
    Loop,
    LoopKernel,
    has_check,
)

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


class _KernelEmitter(LoopEmitter):
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
        super().__init__(fn, kernel, MATH_LIBRARY)
        self.module = module
        self.threads = threads
        self.runtime = runtime  # what the runtime library's names end with (runtime_lib.runtime_suffix)
        self._chunks = 0

    def emit(self) -> ir.Function:
        for s in self.kernel.body:
            if (isinstance(s, Loop) and s.parallel and self.threads > 1 and hint(s.extent) > 1
                    and _work([s]) >= PARALLEL_MIN_WORK and not has_check(s.body)):
                self._parallel(s)
            else:
                self._statements([s])
        return self._finish()

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

    def _gemm(self, s: Gemm) -> None:
        fn = declare_gemm(self.module, s.dtype, self.runtime)

        def view(buffer: str, offset: Any) -> ir.Value:
            return self.b.gep(self.buffers[buffer][0], [self._index(offset)], inbounds=True)

        i64 = [self._size(v) for v in (s.m, s.n, s.k, *s.a_strides, *s.b_strides, s.ldc, s.pack_stride,
                                             s.threads)]
        m, n, k, a_row, a_col, b_row, b_col, ldc, pack_stride, threads = i64
        self.b.call(fn, [m, n, k, view(s.a, s.a_offset), a_row, a_col, view(s.b, s.b_offset), b_row, b_col,
                         view(s.c, s.c_offset), ldc, self.buffers[s.pack][0], pack_stride, threads])

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
