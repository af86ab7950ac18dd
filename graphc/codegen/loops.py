"""Loop IR to LLVM IR: the part every LLVM backend shares.

:class:`LoopEmitter` emits a loop kernel's statements into one LLVM function: index arithmetic, loads
and stores, scalar ops (codegen/scalar.py, with the backend's math library), accumulators and loops.
Backends subclass it for what differs: how a fault check reports (:meth:`LoopEmitter._check`), how a
``Gemm`` runs (:meth:`LoopEmitter._gemm`), and what surrounds the body (threads, a grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llvmlite import ir

from graphc.codegen import scalar
from graphc.codegen.sizes import emit_size
from graphc.codegen.types import I64, constant, load_value, store_value, value_type
from graphc.ir.symbolic import Size, is_symbolic
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
)


class LoopEmitter:
    """Emits loop IR into ``fn``, whose arguments are ``kernel``'s buffers (in ``kernel.params`` order,
    possibly followed by others the subclass uses); functions without inline code come from
    ``math_library``.  ``self.b`` builds the body; ``self.allocas`` the entry block (accumulators)."""

    def __init__(self, fn: ir.Function, kernel: LoopKernel, math_library: scalar.MathLibrary) -> None:
        self.fn = fn
        self.kernel = kernel
        self.math_library = math_library
        for arg, param in zip(fn.args, kernel.params):
            arg.name = param.name
            arg.add_attribute("noalias")
        self.buffers = {p.name: (arg, p.dtype) for arg, p in zip(fn.args, kernel.params)}
        entry = fn.append_basic_block("entry")
        self.allocas = ir.IRBuilder(entry)
        body = fn.append_basic_block("body")
        self.b = ir.IRBuilder(body)
        self.indices: dict[str, ir.Value] = {}
        self._loop_ids = 0  # loops given a loop ID of their own (see _no_unrolling)
        self.accumulators: dict[str, tuple[ir.Value, Any]] = {}
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

    def _finish(self) -> ir.Function:
        self.b.ret_void()
        self.allocas.branch(self.fn.blocks[1])
        return self.fn

    def _check(self, s: Check) -> None:
        """Report ``s.code`` where ``s.ok`` is false: a serial backend keeps the status word's value
        otherwise (so the last failing check executed wins)."""
        pointer, _ = self.buffers[STATUS]
        current = self.b.load(pointer)
        self.b.store(self.b.select(self._expr(s.ok), current, ir.Constant(I64, s.code)), pointer)

    def _gemm(self, s: Gemm) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no matrix product (lower Gemm before emitting)")

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
        return scalar.emit(self.b, e.op, args, e.in_dtype, e.dtype, dict(e.attrs), self.math_library)

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
                self._check(s)
            elif isinstance(s, AccUpdate):
                slot, dtype = self.accumulators[s.name]
                current = self.b.load(slot)
                value = self._expr(s.value)
                if s.op in ("add", "multiply") and dtype.kind == "f":  # reassoc lets LLVM vectorise the fold
                    fold = self.b.fadd if s.op == "add" else self.b.fmul
                    combined = fold(current, value, flags=["reassoc"])
                else:
                    combined = scalar.emit(self.b, s.op, [current, value], dtype, dtype, {}, self.math_library)
                self.b.store(combined, slot)

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
        latch = self.b.cbranch(self.b.icmp_signed("<", following, stop), body, done)
        if is_symbolic(loop.extent) or loop.extent > UNROLL_MAX_TRIP:
            self._loop_ids += 1
            latch.set_metadata("llvm.loop", _no_unrolling(self.fn.module, f"{self.fn.name}.loop{self._loop_ids}"))
        self.b.position_at_end(done)


UNROLL_MAX_TRIP = 16
"""Loops of more iterations than this (or of a number known only at run time) are not unrolled by LLVM: the
vectoriser already interleaves them, and unrolling them too made compiling 25-30% slower (the LSTM step of
benchmarks/bench_loops.py, LeNet-5) with no faster step (measured interleaved in one process; the two-layer
step of (e) ran 1.2x faster without).  Short loops (a 5x5 window) are still unrolled fully."""


def _no_unrolling(module: ir.Module, name: str) -> ir.NamedValue:
    """A new loop ID asking LLVM not to unroll the loop: ``!{self, !{"llvm.loop.unroll.disable"}, name}``
    (each loop needs an ID of its own, hence ``name``, unique in the module; a loop ID refers to itself)."""
    disable = module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])
    label = ir.MetaDataString(module, name)
    loop_id = module.add_metadata([None, disable, label])
    loop_id.operands = (loop_id, disable, label)
    return loop_id


__all__ = ["LoopEmitter"]
