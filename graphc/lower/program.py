"""A whole graph lowered to loop kernels, with every buffer given a slot of one pointer table.

Both the CPU backend's JIT (backends/cpu/executable.py) and ahead-of-time compilation (aot/) start
here; they differ only in where the buffers' memory comes from.  Slots hold:

* sources: placeholders and Variables (``sources``) and constants (``constants``);
* computed values and the kernels' scratch (``buffers``), of which the values handed back
  (``handed_back``) get memory from the caller and the rest share an arena by lifetime
  (``lifetimes``: the first and last kernel that touches each);
* the fault status word (``STATUS``) and, for run-time dimensions, their sizes (``DIMS``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

import graphc.lower.rules  # noqa: F401  (registers every lowering rule)
from graphc.errors import ArgumentError
from graphc.ir.registry import AbstractValue
from graphc.ir.symbolic import DynamicDimError, Size
from graphc.ir.tensor import Tensor
from graphc.lower.arena import Buffer, plan_arena, plan_groups
from graphc.lower.builder import LoweringContext, Unsupported, buffer_name, kernel_output_buffers
from graphc.lower.loopir import DIMS, STATUS, BufferSpec, LoopKernel
from graphc.lower.policy import LoweringPolicy
from graphc.lower.registry import lower_node
from graphc.ops.kernel import inner_avals


class LoweredProgram:
    """``nodes`` (in order) lowered for the dtypes and shapes in ``avals`` with a backend's ``policy``;
    ``wanted`` are the nodes whose values a run hands back.  ``ndims`` run-time dimensions (ahead-of-time
    code with symbolic sizes) are read by every kernel from the ``DIMS`` buffer."""

    def __init__(self, nodes: Sequence[Tensor], avals: Mapping[int, AbstractValue], wanted: Sequence[Tensor],
                 policy: LoweringPolicy | None = None, ndims: int = 0) -> None:
        self.nodes = tuple(nodes)
        self.policy = policy or LoweringPolicy()
        self.slots: dict[str, int] = {}
        self.in_place = _assigns_in_place(self.nodes, avals, wanted)
        self.aliases = _aliases(self.nodes, avals, wanted, self.in_place)
        # nodes lowered to nothing: their buffer is another node's (an assign's value, or the input they keep)
        self._shared = {**self.in_place, **self.aliases}
        ctx = LoweringContext(avals, self.policy)
        self.kernels: list[LoopKernel] = []
        for node in self.nodes:
            if node.id in self._shared:
                continue  # nothing to copy
            try:
                kernel = lower_node(node, ctx)
            except Unsupported as exc:
                where = f" (created at {node.location})" if node.location else ""
                raise ArgumentError(f"{exc}: {node.describe()}{where}") from None
            except (DynamicDimError, TypeError) as exc:  # only ahead-of-time code has run-time sizes
                where = f" (created at {node.location})" if node.location else ""
                raise DynamicDimError(f"{node.op} cannot be compiled with this run-time dimension yet ({exc}): "
                                      f"{node.describe()}{where}; give the input a static size") from exc
            if kernel is not None:
                self.kernels.append(kernel)
        if ndims:
            self.slot(DIMS)
            spec = BufferSpec(DIMS, np.dtype(np.int64), ndims)
            for kernel in self.kernels:
                kernel.params.append(spec)
        self.faults = ctx.faults  # fault code k + 1 -> (node, message)
        self.buffers = self._buffers(avals)
        self.wanted = [(t.id, None if t.op == "group" else self.slots[buffer_name(t)]) for t in wanted]
        self.handed_back = {slot for _, slot in self.wanted if slot is not None and slot in self.buffers}
        self.lifetimes = self._lifetimes()

    def slot(self, name: str) -> int:
        """The slot of buffer ``name`` (a new one the first time)."""
        if name not in self.slots:
            self.slots[name] = len(self.slots)
        return self.slots[name]

    def _buffers(self, avals: Mapping[int, AbstractValue]) -> dict[int, Buffer]:
        """Give every buffer a slot; return the computed ones.  Sources (placeholders, Variables,
        constants) are recorded in ``self.sources`` / ``self.constants``."""
        computed: dict[int, Buffer] = {}
        self.sources: list[tuple[int, int]] = []  # (node id, slot) of values passed in per call
        self.constants: list[tuple[int, Tensor]] = []  # (slot, constant node)
        for kernel in self.kernels:
            for spec in kernel.scratch:
                slot = self.slot(spec.name)
                computed[slot] = Buffer(slot, (spec.size,), spec.dtype)
        if self.faults:
            slot = self.slot(STATUS)
            computed[slot] = Buffer(slot, (1,), np.dtype(np.int64))
        for node in self.nodes:
            if node.op == "group":
                continue
            if node.op == "kernel_output":
                fused = node.inputs[0]
                self.slots[buffer_name(node)] = self.slots[kernel_output_buffers(fused)[node.attrs["index"]]]
            elif node.op == "constant":
                self.constants.append((self.slot(buffer_name(node)), node))
            elif node.op in ("placeholder", "variable"):
                self.sources.append((node.id, self.slot(buffer_name(node))))
            elif node.id in self._shared:
                self.slots[buffer_name(node)] = self.slots[buffer_name(self._shared[node.id])]
            elif node.op == "fused" and len(node.attrs["kernel"].outputs) > 1:
                inner = inner_avals(node.attrs["kernel"], [avals[i.id] for i in node.inputs])
                for name, out in zip(kernel_output_buffers(node), node.attrs["kernel"].outputs):
                    slot = self.slot(name)
                    computed[slot] = Buffer(slot, inner[out.id].shape, inner[out.id].dtype)
            else:
                slot = self.slot(buffer_name(node))
                computed[slot] = Buffer(slot, avals[node.id].shape, avals[node.id].dtype)
        return computed

    def _lifetimes(self) -> dict[int, tuple[int, int]]:
        """``slot -> (first, last)`` kernel index for every arena buffer (computed, not handed back)."""
        lifetimes: dict[int, tuple[int, int]] = {}
        for k, kernel in enumerate(self.kernels):
            for param in kernel.params:
                slot = self.slots.get(param.name)
                if slot is not None:
                    first, _ = lifetimes.get(slot, (k, k))
                    lifetimes[slot] = (first, k)
        arena = {slot: lifetimes.get(slot, (0, 0)) for slot in self.buffers if slot not in self.handed_back}
        if STATUS in self.slots:  # read after the call: it must outlive every kernel
            arena[self.slots[STATUS]] = (0, len(self.kernels))
        return arena

    def arena_sizes(self) -> dict[int, Size]:
        """Bytes of each arena buffer, by slot."""
        return {slot: self.buffers[slot].nbytes for slot in self.lifetimes}


_NOT_IN_PLACE = ("placeholder", "variable", "constant", "group")


def _assigns_in_place(nodes: Sequence[Tensor], avals: Mapping[int, AbstractValue], wanted: Sequence[Tensor]
                      ) -> dict[int, Tensor]:
    """``assign`` node id -> its value, for the assigns whose new value needs no copy: the value is computed
    here with the variable's full shape, is not itself handed back, and no other assign takes it.  The
    assign's buffer is then the value's (handed back, so it gets the caller's memory), and the kernels that
    compute the value write the Variable's next value directly (the old one, a source, is not written)."""
    handed_back = {t.id for t in wanted if t.op != "assign"}
    taken: set[int] = set()
    in_place: dict[int, Tensor] = {}
    for node in nodes:
        if node.op != "assign":
            continue
        value = node.inputs[1]
        if value.op in _NOT_IN_PLACE or value.id in handed_back or value.id in taken:
            continue
        if tuple(avals[value.id].shape) != tuple(avals[node.id].shape):
            continue  # a broadcast value: the assign writes every element
        taken.add(value.id)
        in_place[node.id] = value
    return in_place


def _aliases(nodes: Sequence[Tensor], avals: Mapping[int, AbstractValue], wanted: Sequence[Tensor],
             in_place: Mapping[int, Tensor]) -> dict[int, Tensor]:
    """Node id -> its first input, for the nodes that need no kernel at these shapes: ops whose output holds
    the input's elements unchanged (``OpDef.data_unchanged``: every reshape, and ``sum_to`` and broadcasts
    to the input's own shape) share the input's buffer.  Not for a node that is handed back or is the
    value of an assign written in place (its buffer must be memory of its own); kernels only read their
    inputs, so sharing is safe whoever made the input (a source, a constant, another kernel)."""
    handed_back = {t.id for t in wanted}
    written = {value.id for value in in_place.values()}
    aliases: dict[int, Tensor] = {}
    for node in nodes:
        kind = node.opdef.data_unchanged
        if kind is None or node.id in handed_back or node.id in written:
            continue
        x = node.inputs[0]
        if avals[x.id].dtype != avals[node.id].dtype:
            continue
        if kind == "same shape":
            shape, out = tuple(avals[x.id].shape), tuple(avals[node.id].shape)
            if not all(type(d) is int for d in (*shape, *out)) or shape != out:
                continue
        aliases[node.id] = x
    return aliases


__all__ = ["Buffer", "LoweredProgram", "plan_arena", "plan_groups"]
