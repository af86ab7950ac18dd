"""Loop IR kernels to LLVM IR, and the one entry function that runs a whole compiled graph.

Each :class:`LoopKernel` becomes an internal function taking its buffers as ``noalias`` pointers;
the entry function ``graphc_entry(void **buffers)`` calls every kernel in order, and runs loops and
conditionals (graphc/lower/control.py) as native loops and branches around their bodies' kernels, so
running a graph is one native call.  LLVM inlines the kernels into the entry function and vectorises the
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
from graphc.ir.symbolic import Size, hint, is_symbolic
from graphc.lower.control import CondStep, LoopStep
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
                         view(s.c, s.c_offset), ldc, view(s.pack, s.pack_offset), pack_stride, threads])

def emit_program(module: ir.Module, steps: Sequence[Any], slots: Mapping[str, int], target: Target,
                 threads: int = 1) -> ir.Function:
    """Emit every kernel and ``graphc_entry(void **buffers)``, which runs the lowered program's ``steps``
    (kernels, loops, conditionals: graphc/lower/control.py) in order, for ``target`` (whose runtime library
    the kernels call).

    ``slots`` gives each buffer's position in the ``buffers`` array; large kernels use up to
    ``threads`` threads.  The entry first clears the fault status word, if there is one."""
    entry = ir.Function(module, ir.FunctionType(ir.VoidType(), [VOID_PTR.as_pointer()]), ENTRY)
    _EntryEmitter(module, entry, slots, runtime_suffix(target), threads).emit(steps)
    return entry


class _EntryEmitter:
    """The entry function's body: a call per kernel, native loops and branches for control-flow steps, the
    pointer slots of loop bodies pointed at each step's memory."""

    def __init__(self, module: ir.Module, entry: ir.Function, slots: Mapping[str, int], runtime: str,
                 threads: int) -> None:
        self.module, self.fn, self.slots, self.runtime, self.threads = module, entry, slots, runtime, threads
        self.allocas = ir.IRBuilder(entry.append_basic_block("allocas"))  # the loops' variables
        self._start = entry.append_basic_block("start")
        self.b = ir.IRBuilder(self._start)
        self.table = entry.args[0]
        self._cells: dict[int, ir.Value] = {}
        self._loops = 0

    def emit(self, steps: Sequence[Any]) -> None:
        if STATUS in self.slots:  # no fault yet in this run
            self.b.store(ir.Constant(I64, 0), self.b.bitcast(self.pointer(STATUS), I64.as_pointer()))
        self.steps(steps)
        self.b.ret_void()
        self.allocas.branch(self._start)

    def steps(self, steps: Sequence[Any]) -> None:
        for step in steps:
            if isinstance(step, LoopKernel):
                self.kernel(step)
            elif isinstance(step, LoopStep):
                self.loop(step)
            elif isinstance(step, CondStep):
                self.cond(step)
            else:
                raise TypeError(f"graphc internal error: no code for program step {step!r}")

    # ---- the pointer table ----------------------------------------------------------------------------

    def _cell(self, name: str) -> ir.Value:
        """A local variable holding slot ``name``'s address, read from the table once when the run starts:
        the table is not written while the program runs, so the addresses stay in registers (pointer slots
        are these variables, pointed anew before each loop step)."""
        slot = self.slots[name]
        cell = self._cells.get(slot)
        if cell is None:
            a = self.allocas
            cell = self._cells[slot] = a.alloca(VOID_PTR, name=f"slot{slot}")
            a.store(a.load(a.gep(self.table, [ir.Constant(I64, slot)], inbounds=True)), cell)
        return cell

    def pointer(self, name: str) -> ir.Value:
        """Buffer ``name``'s address, as it is now."""
        return self.b.load(self._cell(name))

    def point(self, name: str, address: ir.Value) -> None:
        """Point slot ``name`` at ``address``."""
        self.b.store(address, self._cell(name))

    def size(self, value: Size) -> ir.Value:
        def dim(symbol: int) -> ir.Value:
            dims = self.b.bitcast(self.pointer(DIMS), I64.as_pointer())
            return self.b.load(self.b.gep(dims, [ir.Constant(I64, symbol)]))

        return emit_size(self.b, value, dim)

    def row(self, base: ir.Value, row: ir.Value, row_bytes: Size) -> ir.Value:
        return self.b.gep(base, [self.b.mul(row, self.size(row_bytes))], inbounds=True)

    def copy(self, destination: ir.Value, source: ir.Value, nbytes: Size) -> None:
        memcpy = self.module.declare_intrinsic("llvm.memcpy", [VOID_PTR, VOID_PTR, I64])
        self.b.call(memcpy, [destination, source, self.size(nbytes), ir.Constant(ir.IntType(1), 0)])

    def clear(self, destination: ir.Value, nbytes: Size) -> None:
        memset = self.module.declare_intrinsic("llvm.memset", [VOID_PTR, I64])
        self.b.call(memset, [destination, ir.Constant(ir.IntType(8), 0), self.size(nbytes),
                             ir.Constant(ir.IntType(1), 0)])

    # ---- steps ----------------------------------------------------------------------------------------

    def kernel(self, kernel: LoopKernel) -> None:
        fn = _KernelEmitter(self.module, kernel, self.runtime, self.threads).emit()
        args = [self.b.bitcast(self.pointer(param.name), arg_type)
                for param, arg_type in zip(kernel.params, fn.function_type.args)]
        self.b.call(fn, args)

    def cond(self, step: CondStep) -> None:
        b = self.b
        taken = b.icmp_unsigned("!=", b.load(self.pointer(step.pred)), ir.Constant(ir.IntType(8), 0))
        with b.if_else(taken) as (then, otherwise):
            for branch, copies, block in zip(step.branches, step.copies, (then, otherwise)):
                with block:
                    self.steps(branch)
                    for source, destination, nbytes in copies:
                        self.copy(self.pointer(destination), self.pointer(source), nbytes)

    def loop(self, step: LoopStep) -> None:
        b = self.b
        self._loops += 1
        label = f"{step.name}.{self._loops}"
        zero, one = ir.Constant(I64, 0), ir.Constant(I64, 1)
        bound = None if step.capacity is None else self.size(step.capacity)
        if step.trip is not None:
            trip = b.load(b.bitcast(self.pointer(step.trip), I64.as_pointer()))
            ok = b.icmp_signed(">=", trip, zero)
            if bound is not None:
                ok = b.and_(ok, b.icmp_signed("<=", trip, bound))
            with b.if_then(b.not_(ok)):
                b.store(ir.Constant(I64, step.trip_fault), b.bitcast(self.pointer(STATUS), I64.as_pointer()))
            bound = b.select(ok, trip, zero)
        for stack, nbytes in step.zeroed:
            self.clear(self.pointer(stack), nbytes)
        current = []  # where each loop variable's value is now
        for state in step.states:
            where = self.allocas.alloca(VOID_PTR, name=f"{label}.{state.final}")
            b.store(self.pointer(state.init), where)
            current.append(where)
        counter = self.allocas.alloca(I64, name=f"{label}.t")
        b.store(zero, counter)
        header = self.fn.append_basic_block(f"{label}.header")
        run = self.fn.append_basic_block(f"{label}.step")
        done = self.fn.append_basic_block(f"{label}.done")
        b.branch(header)

        b.position_at_end(header)
        t = b.load(counter)
        if bound is not None:
            more = self.fn.append_basic_block(f"{label}.test")
            b.cbranch(b.icmp_signed("<", t, bound), more, done)
            b.position_at_end(more)
        if step.test is not None:
            for state, where in zip(step.states, current):
                value = b.load(where)
                for param in state.params:
                    self.point(param, value)
            self.steps(step.cond)
            test = b.load(self.pointer(step.test))
            b.cbranch(b.icmp_unsigned("!=", test, ir.Constant(ir.IntType(8), 0)), run, done)
        else:
            b.branch(run)

        b.position_at_end(run)
        row = b.sub(b.sub(bound, one), t) if step.reverse and bound is not None else t
        for read in step.rows:
            self.point(read.param, self.row(self.pointer(read.sequence), row, read.row_bytes))
        odd = b.trunc(t, ir.IntType(1))
        targets = []
        for state, where in zip(step.states, current):
            value = b.load(where)
            for param in state.params:
                self.point(param, value)
            if state.mode == "before":
                self.copy(self.row(self.pointer(state.stack), row, state.nbytes), value, state.nbytes)
            if state.mode == "after":
                target = self.row(self.pointer(state.stack), row, state.nbytes)
            else:
                a, c = state.spare  # type: ignore[misc]
                target = b.select(odd, self.pointer(c), self.pointer(a))
            targets.append(target)
        writes = [self.row(self.pointer(w.stack), row, w.row_bytes) for w in step.outputs]
        values = [(s.value, s.owned, s.nbytes) for s in step.states] + \
                 [(w.value, w.owned, w.row_bytes) for w in step.outputs]
        for (value, owned, _), target in zip(values, targets + writes):
            if owned:
                self.point(value, target)
        self.steps(step.body)
        for (value, owned, nbytes), target in zip(values, targets + writes):
            if not owned:
                self.copy(target, self.pointer(value), nbytes)
        for where, target in zip(current, targets):
            b.store(target, where)
        b.store(b.add(t, one), counter)
        b.branch(header)

        b.position_at_end(done)
        for state, where in zip(step.states, current):
            self.copy(self.pointer(state.final), b.load(where), state.nbytes)
        b.store(b.load(counter), b.bitcast(self.pointer(step.steps_run), I64.as_pointer()))


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
