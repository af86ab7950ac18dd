"""The C entry points of an ahead-of-time compiled graph, emitted in LLVM IR.

``int NAME_run(const int64_t *dims, const void *const *inputs, void *const *outputs)`` checks its
arguments, computes every buffer's size from the run-time dimensions (refusing sizes that overflow),
allocates one arena for the intermediates (``malloc``, so concurrent calls never share memory), fills
the pointer table the graph's entry function reads, runs it, copies outputs that are not computed
in place (an input or a constant handed back, or the same value asked for twice), frees the arena
and returns 0 or an error code.  ``NAME_error_string(code)`` explains a code; ``NAME_metadata()``
returns the signature as JSON (what ``gc.aot.load`` reads).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from llvmlite import ir

from graphc.backends.cpu.backend import ALIGNMENT as ALIGN
from graphc.codegen.sizes import emit_size
from graphc.codegen.types import I64
from graphc.ir.symbolic import Size, is_symbolic
from graphc.lower.program import plan_arena, plan_groups

I8P = ir.IntType(8).as_pointer()
I32 = ir.IntType(32)
I1 = ir.IntType(1)

# (code, macro suffix, message); graph faults follow from FIRST_FAULT on
ERRORS = (
    (0, "OK", "success"),
    (1, "ERROR_NULL_POINTER", "a NULL pointer was passed for dims, inputs, outputs or a buffer that is not empty"),
    (2, "ERROR_NEGATIVE_DIM", "a run-time dimension in dims is negative"),
    (3, "ERROR_TOO_LARGE", "the run-time dimensions give a buffer size that does not fit in 64 bits"),
    (4, "ERROR_OUT_OF_MEMORY", "could not allocate the working memory"),
)
FIRST_FAULT = 16
UNKNOWN = "unknown error code"


@dataclass
class Layout:
    """What the wrapper needs to know about a lowered graph."""

    name: str
    ndims: int
    num_slots: int
    inputs: list[tuple[int | None, Size]]  # (slot, bytes) per input; no slot: the graph does not read it
    outputs: list[tuple[int, Size, bool]]  # (slot, bytes, computed in place) per output
    constants: list[tuple[int, str, np.ndarray]]  # (slot, global's name, value)
    arena: dict[int, Size]  # slot -> bytes
    lifetimes: Mapping[int, tuple[int, int]]
    dims_slot: int | None
    status_slot: int | None
    faults: list[str]
    metadata: str
    exports: list[str] = field(default_factory=list)


class _Run:
    """Emits ``NAME_run``."""

    def __init__(self, module: ir.Module, layout: Layout, entry: ir.Function, name: str,
                 define_constants: bool) -> None:
        self.layout = layout
        self.define_constants = define_constants
        fn = ir.Function(module, ir.FunctionType(I32, [I64.as_pointer(), I8P.as_pointer(), I8P.as_pointer()]), name)
        self.fn = fn
        self.dims_arg, self.inputs_arg, self.outputs_arg = fn.args
        for arg, name in zip(fn.args, ("dims", "inputs", "outputs")):
            arg.name = name
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.overflow: ir.Value = ir.Constant(I1, 0)
        self.entry = entry
        self.module = module
        self._dims: list[ir.Value] = []

    def fail_if(self, condition: ir.Value, code: int) -> None:
        fail = self.fn.append_basic_block(f"fail{code}")
        go_on = self.fn.append_basic_block("ok")
        self.b.cbranch(condition, fail, go_on)
        ir.IRBuilder(fail).ret(ir.Constant(I32, code))
        self.b.position_at_end(go_on)

    def _checked(self, op: str, a: ir.Value, c: ir.Value) -> ir.Value:
        result = getattr(self.b, f"{op}_with_overflow")(a, c)
        self.overflow = self.b.or_(self.overflow, self.b.extract_value(result, 1))
        return self.b.extract_value(result, 0)

    def nbytes(self, value: Size) -> ir.Value:
        """``value`` evaluated with overflow checks (recorded in ``self.overflow``)."""
        return emit_size(self.b, value, self._dims.__getitem__, lambda op, a, c: self._checked(f"s{op}", a, c))

    def _aligned(self, value: ir.Value) -> ir.Value:
        return self.b.and_(self._checked("sadd", value, ir.Constant(I64, ALIGN - 1)), ir.Constant(I64, -ALIGN))

    def _pointers(self, array: ir.Value, count: int, sizes: Sequence[ir.Value]) -> list[ir.Value]:
        """The ``count`` pointers of ``array``; NULL (for a buffer that is not empty) is refused."""
        if not count:
            return []
        null = self.b.icmp_unsigned("==", array, ir.Constant(array.type, None))
        self.fail_if(null, 1)
        pointers = [self.b.load(self.b.gep(array, [ir.Constant(I64, k)])) for k in range(count)]
        bad: ir.Value = ir.Constant(I1, 0)
        for p, size in zip(pointers, sizes):
            empty = self.b.icmp_signed("==", size, ir.Constant(I64, 0))
            bad = self.b.or_(bad, self.b.and_(self.b.icmp_unsigned("==", p, ir.Constant(I8P, None)),
                                              self.b.not_(empty)))
        self.fail_if(bad, 1)
        return pointers

    def emit(self) -> ir.Function:
        layout, b = self.layout, self.b
        if layout.ndims:
            self.fail_if(b.icmp_unsigned("==", self.dims_arg, ir.Constant(self.dims_arg.type, None)), 1)
            self._dims = [b.load(b.gep(self.dims_arg, [ir.Constant(I64, k)]), name=f"d{k}")
                          for k in range(layout.ndims)]
            negative: ir.Value = ir.Constant(I1, 0)
            for d in self._dims:
                negative = b.or_(negative, b.icmp_signed("<", d, ir.Constant(I64, 0)))
            self.fail_if(negative, 2)

        in_sizes = [self.nbytes(size) for _, size in layout.inputs]
        out_sizes = [self.nbytes(size) for _, size, _ in layout.outputs]
        offsets, total = self._arena_plan()
        negative = ir.Constant(I1, 0)
        for size in [*in_sizes, *out_sizes]:
            negative = b.or_(negative, b.icmp_signed("<", size, ir.Constant(I64, 0)))
        self.fail_if(b.or_(self.overflow, negative), 3)
        inputs = self._pointers(self.inputs_arg, len(layout.inputs), in_sizes)
        outputs = self._pointers(self.outputs_arg, len(layout.outputs), out_sizes)

        table = b.alloca(I8P, max(layout.num_slots, 1), name="table")

        def put(slot: int, pointer: ir.Value) -> None:
            b.store(b.bitcast(pointer, I8P), b.gep(table, [ir.Constant(I64, slot)]))

        memory = None
        if offsets:
            memory = b.call(_libc(self.module, "malloc", I8P, [I64]), [b.add(total, ir.Constant(I64, ALIGN))])
            self.fail_if(b.icmp_unsigned("==", memory, ir.Constant(I8P, None)), 4)
            address = b.ptrtoint(memory, I64)
            base = b.and_(b.add(address, ir.Constant(I64, ALIGN - 1)), ir.Constant(I64, -ALIGN))
            for slot, offset in offsets.items():
                put(slot, b.inttoptr(b.add(base, offset), I8P))
        for (slot, _), pointer in zip(layout.inputs, inputs):
            if slot is not None:
                put(slot, pointer)
        for (slot, _, in_place), pointer in zip(layout.outputs, outputs):
            if in_place:
                put(slot, pointer)
        for slot, symbol, array in layout.constants:
            put(slot, constant_global(self.module, symbol, array, self.define_constants))
        if layout.dims_slot is not None:
            put(layout.dims_slot, self.dims_arg if layout.ndims else ir.Constant(I8P, None))

        b.call(self.entry, [table])
        status: ir.Value = ir.Constant(I64, 0)
        if layout.status_slot is not None:
            raw = b.load(b.gep(table, [ir.Constant(I64, layout.status_slot)]))
            status = b.load(b.bitcast(raw, I64.as_pointer()))
        memcpy = self.module.declare_intrinsic("llvm.memcpy", [I8P, I8P, I64])
        for (slot, _, in_place), pointer, size in zip(layout.outputs, outputs, out_sizes):
            if not in_place:
                source = b.load(b.gep(table, [ir.Constant(I64, slot)]))
                b.call(memcpy, [pointer, source, size, ir.Constant(I1, 0)])
        if memory is not None:
            b.call(_libc(self.module, "free", ir.VoidType(), [I8P]), [memory])
        failed = b.icmp_signed("!=", status, ir.Constant(I64, 0))
        code = b.select(failed, b.add(status, ir.Constant(I64, FIRST_FAULT - 1)), ir.Constant(I64, 0))
        b.ret(b.trunc(code, I32))
        return self.fn

    def _arena_plan(self) -> tuple[dict[int, ir.Value], ir.Value]:
        """Each arena buffer's byte offset and the arena's size: laid out once here when every size
        is static, else by lifetime groups whose sizes are computed now."""
        layout = self.layout
        if not any(is_symbolic(size) for size in layout.arena.values()):
            static, total = plan_arena(layout.arena, layout.lifetimes, ALIGN)  # type: ignore[arg-type]
            return {s: ir.Constant(I64, o) for s, o in static.items()}, ir.Constant(I64, total)
        offsets: dict[int, ir.Value] = {}
        end: ir.Value = ir.Constant(I64, 0)
        for group in plan_groups(layout.arena, layout.lifetimes):
            largest: ir.Value = ir.Constant(I64, 0)
            for slot in group:
                offsets[slot] = end
                size = self._aligned(self.nbytes(layout.arena[slot]))
                largest = self.b.select(self.b.icmp_signed(">", size, largest), size, largest)
            end = self._checked("sadd", end, largest)
        return offsets, end


def _libc(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    existing = module.globals.get(name)
    return existing if existing is not None else ir.Function(module, ir.FunctionType(ret, args), name)


def constant_global(module: ir.Module, name: str, array: np.ndarray, define: bool = True) -> ir.Value:
    """A read-only global holding ``array``'s bytes (declared only, when ``define`` is False: another
    object of the same library defines it)."""
    existing = module.globals.get(name)
    if existing is None:
        data = bytearray(np.ascontiguousarray(array).tobytes()) or bytearray(1)
        existing = ir.GlobalVariable(module, ir.ArrayType(ir.IntType(8), len(data)), name)
        if define:
            existing.initializer = ir.Constant(existing.value_type, data)
        existing.global_constant = True
        existing.align = ALIGN
    return existing.bitcast(I8P)


def _string(module: ir.Module, name: str, text: str) -> ir.Constant:
    data = bytearray(text.encode("utf-8") + b"\0")
    g = ir.GlobalVariable(module, ir.ArrayType(ir.IntType(8), len(data)), name)
    g.initializer = ir.Constant(g.value_type, data)
    g.global_constant = True
    g.linkage = "internal"
    return g.bitcast(I8P)


def error_messages(faults: Sequence[str]) -> list[str]:
    """The message of every code from 0 up: the fixed ones, then one per graph fault."""
    messages = [UNKNOWN] * (FIRST_FAULT + len(faults))
    for code, _, message in ERRORS:
        messages[code] = message
    messages[FIRST_FAULT:] = list(faults)
    return messages


def _emit_error_string(module: ir.Module, layout: Layout) -> None:
    messages = error_messages(layout.faults)
    strings = [_string(module, f"{layout.name}.error{k}", text) for k, text in enumerate(messages)]
    table_type = ir.ArrayType(I8P, len(strings))
    table = ir.GlobalVariable(module, table_type, f"{layout.name}.errors")
    table.initializer = ir.Constant(table_type, strings)
    table.global_constant = True
    table.linkage = "internal"
    fn = ir.Function(module, ir.FunctionType(I8P, [I32]), f"{layout.name}_error_string")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    code = b.sext(fn.args[0], I64)
    known = b.icmp_unsigned("<", code, ir.Constant(I64, len(strings)))
    index = b.select(known, code, ir.Constant(I64, 0))
    found = b.load(b.gep(table, [ir.Constant(I64, 0), index]))
    b.ret(b.select(known, found, _string(module, f"{layout.name}.unknown", UNKNOWN)))


def _emit_metadata(module: ir.Module, layout: Layout) -> None:
    fn = ir.Function(module, ir.FunctionType(I8P, []), f"{layout.name}_metadata")
    ir.IRBuilder(fn.append_basic_block("entry")).ret(_string(module, f"{layout.name}.metadata", layout.metadata))


def emit_run(module: ir.Module, layout: Layout, entry: ir.Function, name: str, define_constants: bool = True) -> None:
    """Emit the run function (``NAME_run``, or one version of it) calling ``entry``."""
    _Run(module, layout, entry, name, define_constants).emit()


def emit_info(module: ir.Module, layout: Layout) -> list[str]:
    """Emit ``NAME_error_string`` and ``NAME_metadata``; returns their names."""
    _emit_error_string(module, layout)
    _emit_metadata(module, layout)
    return [f"{layout.name}_error_string", f"{layout.name}_metadata"]


__all__ = ["ERRORS", "FIRST_FAULT", "Layout", "constant_global", "emit_info", "emit_run", "error_messages",
           "plan_groups"]
