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

from graphc.codegen import scalar
from graphc.codegen.types import I64, constant, load_value, storage_type, store_value, value_type
from graphc.lower.loopir import (
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
)

ENTRY = "graphc_entry"
VOID_PTR = ir.IntType(8).as_pointer()


class _KernelEmitter:
    def __init__(self, module: ir.Module, kernel: LoopKernel) -> None:
        types = [storage_type(p.dtype).as_pointer() for p in kernel.params]
        self.fn = ir.Function(module, ir.FunctionType(ir.VoidType(), types), kernel.name)
        self.fn.linkage = "internal"
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

    def emit(self) -> ir.Function:
        self._statements(self.kernel.body)
        self.b.ret_void()
        self.allocas.branch(self.fn.blocks[1])
        return self.fn

    # ---- index and scalar expressions ----
    def _index(self, e: Any) -> ir.Value:
        if isinstance(e, IVar):
            return self.indices[e.name]
        if isinstance(e, IConst):
            return ir.Constant(I64, e.value)
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
        return scalar.emit(self.b, e.op, args, e.in_dtype, e.dtype, dict(e.attrs))

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
                if s.op == "add" and dtype.kind == "f":
                    combined = self.b.fadd(current, value, flags=["reassoc"])  # lets LLVM vectorise the sum
                else:
                    combined = scalar.emit(self.b, s.op, [current, value], dtype, dtype, {})
                self.b.store(combined, slot)

    def _gemm(self, s: Gemm) -> None:
        name = f"graphc_gemm_{s.dtype.name}"
        fn = self.module.globals.get(name)
        if fn is None:
            from graphc.codegen.gemm import emit_gemm

            fn = emit_gemm(self.module, name, s.dtype)

        def view(buffer: str, offset: Any) -> ir.Value:
            return self.b.gep(self.buffers[buffer][0], [self._index(offset)], inbounds=True)

        i64 = [ir.Constant(I64, v) for v in (s.m, s.n, s.k, *s.a_strides, *s.b_strides, s.ldc)]
        m, n, k, a_row, a_col, b_row, b_col, ldc = i64
        self.b.call(fn, [m, n, k, view(s.a, s.a_offset), a_row, a_col, view(s.b, s.b_offset), b_row, b_col,
                         view(s.c, s.c_offset), ldc, self.buffers[s.pack][0]])

    def _loop(self, loop: Loop) -> None:
        if loop.extent <= 0:
            return
        before = self.b.block
        body = self.fn.append_basic_block(f"{loop.var.name}.body")
        self.b.branch(body)
        self.b.position_at_end(body)
        index = self.b.phi(I64, name=loop.var.name)
        index.add_incoming(ir.Constant(I64, 0), before)
        self.indices[loop.var.name] = index
        self._statements(loop.body)
        following = self.b.add(index, ir.Constant(I64, 1), flags=["nuw", "nsw"])
        index.add_incoming(following, self.b.block)
        done = self.fn.append_basic_block(f"{loop.var.name}.done")
        self.b.cbranch(self.b.icmp_signed("<", following, ir.Constant(I64, loop.extent)), body, done)
        self.b.position_at_end(done)


def emit_program(module: ir.Module, kernels: Sequence[LoopKernel], slots: Mapping[str, int]) -> ir.Function:
    """Emit every kernel and ``graphc_entry(void **buffers)``, which calls them in order.

    ``slots`` gives each buffer's position in the ``buffers`` array."""
    entry = ir.Function(module, ir.FunctionType(ir.VoidType(), [VOID_PTR.as_pointer()]), ENTRY)
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    table = entry.args[0]
    for kernel in kernels:
        fn = _KernelEmitter(module, kernel).emit()
        args = []
        for param, arg_type in zip(kernel.params, fn.function_type.args):
            raw = b.load(b.gep(table, [ir.Constant(I64, slots[param.name])], inbounds=True))
            args.append(b.bitcast(raw, arg_type))
        b.call(fn, args)
    b.ret_void()
    return entry


__all__ = ["ENTRY", "emit_program"]
