"""The CPU backend: a graph compiled for one shape signature into one LLVM module, run with one
native call (``graphc_entry``) through ctypes.

Buffers: placeholders, Variables and constants are passed in as they are; every computed value
gets a fresh array per call (a reusable arena is planned).  Ops the backend cannot lower yet are
refused when the graph is first compiled, naming the op and the user's line.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence

import numpy as np

from graphc.codegen.jit import CompiledModule, new_module
from graphc.codegen.llvm_cpu import ENTRY, emit_program
from graphc.codegen.scalar import UnsupportedScalar
from graphc.errors import ArgumentError
from graphc.ir.registry import AbstractValue
from graphc.ir.tensor import Tensor
from graphc.lower.loopir import STATUS
from graphc.lower.lowering import Unsupported, _Names, buffer_name, kernel_output_buffers, lower_node
from graphc.ops.kernel import inner_avals
from graphc.runtime.reference import execution_fault

_ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_void_p))


class CpuExecutable:
    """A graph's nodes compiled for the concrete dtypes and shapes in ``avals``."""

    def __init__(self, nodes: Sequence[Tensor], avals: Mapping[int, AbstractValue]) -> None:
        self.nodes = tuple(nodes)
        self.slots: dict[str, int] = {}
        self.allocations: list[tuple[int, tuple[int, ...], np.dtype]] = []  # computed buffers, made per call
        names = _Names()
        kernels = []
        for node in self.nodes:
            try:
                kernel = lower_node(node, avals, names)
            except (Unsupported, UnsupportedScalar) as exc:
                where = f" (created at {node.location})" if node.location else ""
                raise ArgumentError(f"{exc}: {node.describe()}{where}") from None
            if kernel is not None:
                kernels.append(kernel)
                for spec in kernel.scratch:
                    self.allocations.append((self._slot(spec.name), (spec.size,), spec.dtype))
        self.sources: dict[int, int] = {}  # node id -> slot of a value passed in as it is
        self.constants: dict[int, np.ndarray] = {}
        self.faults = names.faults
        self.status_slot = self._slot(STATUS) if self.faults else None
        for node in self.nodes:
            self._assign_slots(node, avals)
        module = new_module("graphc_program")
        try:
            emit_program(module, kernels, self.slots)
        except UnsupportedScalar as exc:
            raise ArgumentError(str(exc)) from None
        self.module = CompiledModule(module)
        self._entry = _ENTRY_TYPE(self.module.address(ENTRY))

    def _slot(self, name: str) -> int:
        if name not in self.slots:
            self.slots[name] = len(self.slots)
        return self.slots[name]

    def _assign_slots(self, node: Tensor, avals: Mapping[int, AbstractValue]) -> None:
        if node.op == "group":
            return
        if node.op == "kernel_output":
            fused = node.inputs[0]
            self.slots[buffer_name(node)] = self.slots[kernel_output_buffers(fused)[node.attrs["index"]]]
            return
        if node.op in ("placeholder", "variable", "constant"):
            slot = self._slot(buffer_name(node))
            self.sources[node.id] = slot
            if node.op == "constant":
                self.constants[node.id] = np.ascontiguousarray(node.attrs["value"])
            return
        if node.op == "fused" and len(node.attrs["kernel"].outputs) > 1:
            inner = inner_avals(node.attrs["kernel"], [avals[i.id] for i in node.inputs])
            for name, out in zip(kernel_output_buffers(node), node.attrs["kernel"].outputs):
                self.allocations.append((self._slot(name), inner[out.id].shape, inner[out.id].dtype))
            return
        aval = avals[node.id]
        self.allocations.append((self._slot(buffer_name(node)), aval.shape, aval.dtype))

    def run(self, sources: Mapping[int, np.ndarray], wanted: Sequence[Tensor], threads: int = 1
            ) -> dict[int, np.ndarray | None]:
        """Run once on up to ``threads`` threads; ``sources`` holds placeholder and Variable values;
        returns the ``wanted`` values."""
        arrays: list[np.ndarray | None] = [None] * len(self.slots)
        for node_id, slot in self.sources.items():
            arrays[slot] = self.constants[node_id] if node_id in self.constants else sources[node_id]
        for slot, shape, dtype in self.allocations:
            arrays[slot] = np.empty(shape, dtype)
        status = np.zeros(1, np.int64)
        if self.status_slot is not None:
            arrays[self.status_slot] = status
        table = (ctypes.c_void_p * max(len(arrays), 1))(
            *[a.ctypes.data if a is not None and a.size else 0 for a in arrays])
        self._entry(table)
        if status[0]:
            raise execution_fault(*self.faults[int(status[0]) - 1])
        return {t.id: None if t.op == "group" else arrays[self.slots[buffer_name(t)]] for t in wanted}

    def source(self, kind: str = "llvm") -> str:
        """The optimised LLVM IR (``"llvm"``) or the machine code as assembly (``"asm"``)."""
        if kind == "llvm":
            return self.module.llvm_ir()
        if kind == "asm":
            return self.module.assembly()
        raise ArgumentError(f"source kind must be 'llvm' or 'asm', got {kind!r}")


__all__ = ["CpuExecutable"]
