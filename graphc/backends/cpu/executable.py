"""The CPU backend's executable: a graph compiled for one shape signature into one LLVM module, run
with one native call (``graphc_entry``) through ctypes.

Buffers are slots of a pointer table handed to ``graphc_entry``:

* placeholders and Variables: the caller's arrays, as they are;
* constants: arrays owned by the executable;
* values handed back (outputs and the new values of updated Variables): fresh arrays per call;
* every other value, the kernels' scratch and the fault status word: an **arena**, one block of
  memory laid out once by a memory plan (:func:`graphc.lower.program.plan_arena`) so that buffers whose lifetimes do not
  overlap share bytes.  An arena and its pointer table are made once and reused; concurrent calls
  from several Python threads each take their own arena from a free list.

So a call allocates nothing but the arrays it returns, and not even those when the caller has
dropped the ones an earlier call returned (see ``_recycled``).  Ops the backend cannot lower yet are
refused when the graph is first compiled, naming the op and the user's line.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from llvmlite import ir

from graphc.backends.base import CachedCode, CodeCache, Executable
from graphc.backends.cpu import runtime_child
from graphc.backends.cpu.entry import ENTRY, OBJECT_ENTRY
from graphc.backends.cpu.library import CompiledModule, UnresolvedSymbolError, cached_compile
from graphc.backends.cpu.runtime_lib import (
    RUNTIME_CODEGEN_OPT,
    RUNTIME_OPT,
    RUNTIME_PARTS,
    Compiler,
    is_loaded,
    load_runtime,
    runtime_part_name,
    runtime_parts,
)
from graphc.codegen.target import Target, new_module
from graphc.errors import ArgumentError
from graphc.ir.interpret import execution_fault
from graphc.ir.registry import AbstractValue
from graphc.ir.tensor import Tensor
from graphc.lower.arena import Buffer, plan_arena
from graphc.lower.policy import LoweringPolicy
from graphc.ops.kernel import nested_nodes

if TYPE_CHECKING:
    from graphc.lower.program import LoweredProgram

# the pointer table is passed as a plain address: ctypes converts an int for a c_void_p parameter in a
# third of the time it takes to convert an array for a POINTER(c_void_p) one (~0.15 us against ~0.5 us)
_ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _data_address(array: np.ndarray) -> int:
    return array.ctypes.data


def _array_data_offset() -> int | None:
    """Where an ndarray object keeps its data pointer, if it is where NumPy's public struct puts it
    (just after the object header) in this interpreter: then ``id(array)`` is all a call needs to
    pass, and the generated code reads the pointer itself (``array.ctypes.data`` costs ~1 us).
    ``None`` (use ``ctypes.data``) on interpreters where the check fails."""
    offset = 2 * ctypes.sizeof(ctypes.c_void_p)
    try:
        probes = [np.arange(5.0), np.zeros((3, 4), np.float32)[1:], np.empty(0, np.int8), np.array(3, np.int64)]
        if all(ctypes.c_void_p.from_address(id(a) + offset).value == a.ctypes.data for a in probes):
            return offset
    except (ValueError, OverflowError):
        pass
    return None


ARRAY_DATA_OFFSET = _array_data_offset()
GRAPH_OPT = 2  # LLVM's -O2 vectorises as well as -O3 here (measured) and compiles ~20% faster


def start_runtime_compile(parts: Sequence[str], target: Target, cache: CodeCache | None) -> None:
    """Start compiling, in a child process, the GEMM ``parts`` for ``target`` that are neither in this
    process nor in ``cache`` (runtime_child.py: it overlaps this process's LLVM work, which a thread
    cannot); the compiler of :func:`_runtime_compiler` collects them."""
    def cached(part: str) -> bool:
        if cache is None:
            return False
        key = cache.key(runtime_part_name(part, target))
        return key is not None and cache.has(key)

    runtime_child.start([p for p in parts if p != "pool" and not is_loaded(p, target) and not cached(p)], target)


def _runtime_compiler(cache: CodeCache | None, target: Target) -> Compiler:
    """How runtime-library parts are compiled: taken from the child compiling them when there is one
    (:func:`start_runtime_compile`), else through ``cache`` when there is one."""
    part_named = {runtime_part_name(p, target): p for p in RUNTIME_PARTS}

    def compile_part(name: str, build: Callable[[], ir.Module]) -> CompiledModule:
        key = cache.key(name) if cache is not None else None
        made = runtime_child.take(part_named[name], target) if name in part_named else None
        if made is not None:
            code, text = made
            try:
                compiled = CompiledModule.from_object(code, target, text, RUNTIME_OPT)
            except (UnresolvedSymbolError, ValueError):
                pass
            else:
                if cache is not None and key is not None:
                    cache.store(key, CachedCode(code, text))
                return compiled
        compiled, _ = cached_compile(cache, key, lambda: (build(), {}), target, opt=RUNTIME_OPT,
                                     codegen_opt=RUNTIME_CODEGEN_OPT)
        return compiled

    return compile_part


def likely_runtime_parts(nodes: Sequence[Tensor]) -> list[str]:
    """The runtime parts a graph will probably call: the pool, and GEMM for each float dtype of an op
    that ``uses_gemm`` (inside fused kernels and control-flow bodies too)."""
    parts = {"pool"}
    stack = list(nodes)
    while stack:
        node = stack.pop()
        stack.extend(nested_nodes(node))
        if node.opdef.uses_gemm and node.dtype.kind == "f":
            parts.add(f"gemm_{node.dtype.name}")
    return sorted(parts)


class _Arena:
    """One call's worth of temporaries and the pointer table that addresses them."""

    def __init__(self, executable: CpuExecutable) -> None:
        align = executable.alignment
        self.memory = np.empty(executable.arena_bytes + align, np.uint8)
        base = -self.memory.ctypes.data % align
        self.table = (ctypes.c_void_p * max(len(executable.slots), 1))()
        self.table_address = ctypes.addressof(self.table)  # what the entry is called with (the table stays alive)
        for slot, offset in executable.arena_offsets.items():
            self.table[slot] = self.memory.ctypes.data + base + offset
        for slot, array in executable.constant_arrays:
            self.table[slot] = array.ctypes.data
        status = executable.status_slot
        # the fault status word, read through ctypes after each call (cheaper than indexing a NumPy view)
        self.status = None if status is None else ctypes.c_int64.from_address(
            self.memory.ctypes.data + base + executable.arena_offsets[status])


RECYCLE_MIN_BYTES = 1 << 16  # outputs this large are reused once the caller drops them (no fresh page faults)


def _recycled(shape: tuple[int, ...], dtype: np.dtype, returned: list[np.ndarray]) -> np.ndarray:
    """An array for a value handed back: one this executable returned earlier if nothing but this
    executable refers to it any more (the caller dropped it, and no view, Variable or buffer export keeps
    it), else a new one.  Large outputs thus skip the page faults of fresh memory in loops that discard
    each result.  ``list.pop`` is atomic, so concurrent calls never share an array."""
    while returned:
        try:
            array = returned.pop()
        except IndexError:
            break
        if sys.getrefcount(array) == 2:  # this local and getrefcount's argument
            return array
    return np.empty(shape, dtype)


LAYOUT_VERSION = 2  # bump when program_layout's form changes
STATUS_BUFFER = "status"  # the loop IR's fault status word (graphc.lower.loopir.STATUS)


def program_layout(lowered: LoweredProgram, nodes: Sequence[Tensor], wanted: Sequence[Tensor], alignment: int
                   ) -> dict[str, Any]:
    """What running a lowered program needs besides its code, as JSON data that refers to nodes by their
    position in ``nodes`` (a fault raised inside a fused kernel or a loop's body by the path of positions
    down to it, each inside the previous one's :func:`~graphc.ops.kernel.nested_nodes`): kept with the
    code in the compile cache."""
    positions = {node.id: k for k, node in enumerate(nodes)}
    found = _node_paths(nodes)
    paths = {**found, **{copy: found[node.id] for copy, node in lowered.originals.items()}}
    fresh = [lowered.buffers[slot] for slot in sorted(lowered.handed_back)]
    offsets, arena_bytes = plan_arena(lowered.arena_sizes(), lowered.lifetimes, alignment)
    return {
        "slots": [[name, slot] for name, slot in lowered.slots.items()],
        "sources": [[positions[node_id], slot] for node_id, slot in lowered.sources],
        "wanted": [slot for _, slot in lowered.wanted],
        "constants": [[slot, paths[node.id]] for slot, node in lowered.constants],
        "fresh": [[b.slot, [int(d) for d in b.shape], b.dtype.name] for b in fresh],
        "faults": [[paths[node.id], message] for node, message in lowered.faults],
        "arena": [[slot, offset] for slot, offset in offsets.items()],
        "arena_bytes": arena_bytes,
        "per_call": sorted({slot for _, slot in lowered.sources} | {b.slot for b in fresh}),
        "status": lowered.slots.get(STATUS_BUFFER),
    }


def _node_paths(nodes: Sequence[Tensor]) -> dict[int, list[int]]:
    """Node id -> its path: its position in ``nodes``, then its position in each enclosing node's nested nodes."""
    paths: dict[int, list[int]] = {}
    stack = [(list(nodes), [])]
    while stack:
        level, prefix = stack.pop()
        for k, node in enumerate(level):
            if node.id not in paths:
                paths[node.id] = [*prefix, k]
                inner = nested_nodes(node)
                if inner:
                    stack.append((inner, paths[node.id]))
    return paths


def _node_at(nodes: Sequence[Tensor], path: Sequence[int]) -> Tensor:
    node = nodes[path[0]]
    for k in path[1:]:
        node = nested_nodes(node)[k]
    return node


class CpuExecutable(Executable):
    """A graph's nodes compiled for the concrete dtypes and shapes in ``avals`` for ``target`` with the
    lowering ``policy``; ``wanted`` are the nodes whose values each run returns (they get fresh arrays).
    ``cache`` keeps the compiled code (and the runtime library's) between processes."""

    def __init__(self, nodes: Sequence[Tensor], avals: Mapping[int, AbstractValue], wanted: Sequence[Tensor],
                 target: Target, policy: LoweringPolicy, cache: CodeCache | None = None) -> None:
        self.nodes = tuple(nodes)
        self.threads = threads = policy.threads
        self.target = target
        self.alignment = policy.alignment
        parts = likely_runtime_parts(self.nodes)
        start_runtime_compile(parts, target, cache)  # (usually started already, by CpuBackend.prepare)
        compiler = _runtime_compiler(cache, target)
        # the runtime library compiles (in a child process, or here: LLVM releases the GIL) while this graph
        # is lowered and emitted
        loader = threading.Thread(target=load_runtime, args=(parts, target),
                                  kwargs={"compiler": compiler}, daemon=True)
        loader.start()

        def build() -> tuple[ir.Module, dict[str, Any]]:
            # only a miss lowers and emits: a cache hit needs none of these modules (tens of ms to import)
            from graphc.backends.cpu.emitter import emit_object_entry, emit_program
            from graphc.codegen.scalar import UnsupportedScalar
            from graphc.lower.program import LoweredProgram

            lowered = LoweredProgram(self.nodes, avals, wanted, policy)
            layout = program_layout(lowered, self.nodes, wanted, self.alignment)
            module = new_module("graphc_program", target)
            try:
                emit_program(module, lowered.steps, lowered.slots, target, threads)
            except UnsupportedScalar as exc:
                raise ArgumentError(str(exc)) from None
            if ARRAY_DATA_OFFSET is not None:
                emit_object_entry(module, layout["per_call"], ARRAY_DATA_OFFSET)
            # the runtime parts it calls are loaded (waiting for the loader thread, which compiles them
            # meanwhile) only after this module's code is generated: ``prepare`` below
            return module, {"runtime_parts": runtime_parts(module, target), "layout": layout}

        # the generated code and the layout depend only on the graph's structure and shapes (slots are
        # derived from them deterministically), which of its nodes are handed back, the target and these
        # settings; a cache hit restores the layout from the entry, so the graph is not lowered again
        positions = {node.id: k for k, node in enumerate(self.nodes)}
        settings = ("cpu-executable", LAYOUT_VERSION, GRAPH_OPT, threads, ARRAY_DATA_OFFSET,
                    tuple(positions.get(t.id, -1) for t in wanted))
        key = cache.graph_key(self.nodes, avals, (target.triple, target.cpu, target.features), settings) \
            if cache is not None else None
        self.module, meta = cached_compile(
            cache, key, build, target, opt=GRAPH_OPT,
            prepare=lambda meta: load_runtime(meta["runtime_parts"], target, compiler=compiler))
        self._restore(meta["layout"], wanted)
        self._by_object = ARRAY_DATA_OFFSET is not None
        self._entry = _ENTRY_TYPE(self.module.address(OBJECT_ENTRY if self._by_object else ENTRY))
        self._free: list[_Arena] = []
        self._returned: dict[int, list[np.ndarray]] = {b.slot: [] for b in self.fresh}
        self._default_call: Callable[[Sequence[Any]], list[Any]] | None = None

    def _restore(self, layout: dict[str, Any], wanted: Sequence[Tensor]) -> None:
        """Buffer slots, sources, outputs, constants, faults and the arena plan from a :func:`program_layout`."""
        nodes = self.nodes
        self.slots = dict(layout["slots"])
        self.sources = [(nodes[position].id, slot) for position, slot in layout["sources"]]
        self.wanted = [(t.id, slot) for t, slot in zip(wanted, layout["wanted"])]
        self.constant_arrays = [(slot, np.asarray(_node_at(nodes, path).attrs["value"], order="C"))
                                for slot, path in layout["constants"]]
        self.fresh = [Buffer(slot, tuple(shape), np.dtype(dtype)) for slot, shape, dtype in layout["fresh"]]
        self.faults = [(_node_at(nodes, where), message) for where, message in layout["faults"]]
        self.arena_offsets = {slot: offset for slot, offset in layout["arena"]}
        self.arena_bytes = layout["arena_bytes"]
        self.status_slot: int | None = layout["status"]

    def run(self, sources: Mapping[int, np.ndarray]) -> dict[int, np.ndarray | None]:
        """Run once; ``sources`` holds placeholder and Variable values (contiguous); returns the
        values of the ``wanted`` nodes."""
        call = self._default_call
        if call is None:
            call = self._default_call = self.bind([node_id for node_id, _ in self.sources],
                                                  [node_id for node_id, _ in self.wanted])
        values = call([sources[node_id] for node_id, _ in self.sources])
        return dict(zip((node_id for node_id, _ in self.wanted), values))

    def bind(self, source_ids: Sequence[int], wanted_ids: Sequence[int]) -> Callable[[Sequence[Any]], list[Any]]:
        """A run as one prepared call: the table slots of the sources and outputs worked out once, so a call
        fills the pointer table, makes (or recycles) the output arrays, makes one native call and picks the
        wanted values, with nothing else in Python."""
        slot_of = dict(self.sources)
        source_slots = [slot_of.get(node_id) for node_id in source_ids]  # None: a source the code never reads
        filled = [(slot, k) for k, slot in enumerate(source_slots) if slot is not None]
        wanted_slot = dict(self.wanted)
        fresh = self.fresh
        fresh_index = {b.slot: k for k, b in enumerate(fresh)}
        constant = dict(self.constant_arrays)
        # where each wanted value comes from: ("fresh", k), ("source", k), ("constant", array) or None
        picks: list[tuple[str, Any] | None] = []
        for node_id in wanted_ids:
            slot = wanted_slot[node_id]
            if slot is None:
                picks.append(None)
            elif slot in fresh_index:
                picks.append(("fresh", fresh_index[slot]))
            elif slot in constant:
                picks.append(("constant", constant[slot]))
            else:
                picks.append(("source", next(k for k, s in enumerate(source_slots) if s == slot)))
        address = id if self._by_object else _data_address
        free, entry, faults, empty = self._free, self._entry, self.faults, np.empty
        # each output: its slot, shape and dtype, and the list of arrays returned earlier that a call may
        # reuse (large outputs only: for small ones a new array is cheaper than the check)
        makers = [(b.slot, b.shape, b.dtype, self._returned[b.slot] if b.nbytes >= RECYCLE_MIN_BYTES else None)
                  for b in fresh]
        recycled = [k for k, maker in enumerate(makers) if maker[3] is not None]
        in_order = picks == [("fresh", k) for k in range(len(fresh))]  # the common case: the outputs as they come

        def pick(values: Sequence[Any], outputs: list[np.ndarray]) -> list[Any]:
            return [None if p is None else outputs[p[1]] if p[0] == "fresh" else values[p[1]] if p[0] == "source"
                    else p[1] for p in picks]

        def call(values: Sequence[Any]) -> list[Any]:
            try:
                arena = free.pop()
            except IndexError:
                arena = _Arena(self)
            try:
                table = arena.table
                for slot, k in filled:
                    table[slot] = address(values[k])
                outputs = []
                for slot, shape, dtype, returned in makers:
                    array = empty(shape, dtype) if returned is None else _recycled(shape, dtype, returned)
                    table[slot] = address(array)
                    outputs.append(array)
                entry(arena.table_address)
                status = arena.status
                fault = status.value if status is not None else 0
            finally:
                free.append(arena)
            if fault:
                raise execution_fault(*faults[int(fault) - 1])
            for k in recycled:
                makers[k][3].append(outputs[k])  # type: ignore[union-attr]
            return outputs if in_order else pick(values, outputs)

        return call

    def source(self, kind: str = "llvm") -> str:
        """The optimised LLVM IR (``"llvm"``) or the machine code as assembly (``"asm"``)."""
        if kind == "llvm":
            return self.module.llvm_ir()
        if kind == "asm":
            return self.module.assembly()
        raise ArgumentError(f"source kind must be 'llvm' or 'asm', got {kind!r}")


__all__ = ["CpuExecutable"]
