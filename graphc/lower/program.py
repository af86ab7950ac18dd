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
from typing import Any

import numpy as np

import graphc.lower.rules  # noqa: F401  (registers every lowering rule)
from graphc.errors import ArgumentError
from graphc.ir.body import Body, clone
from graphc.ir.registry import AbstractValue
from graphc.ir.symbolic import DynamicDimError, Size
from graphc.ir.tensor import Tensor
from graphc.lower.arena import Buffer, plan_arena, plan_groups
from graphc.lower.builder import LoweringContext, Unsupported, buffer_name, kernel_output_buffers
from graphc.lower.control import part_buffer
from graphc.lower.loopir import DIMS, STATUS, BufferSpec, LoopKernel
from graphc.lower.policy import LoweringPolicy
from graphc.lower.registry import PROGRAM_RULES, lower_node
from graphc.ops.kernel import inner_avals

Step = Any
"""What the entry function runs, in order: a :class:`LoopKernel`, or a control-flow step
(:class:`~graphc.lower.control.LoopStep`, :class:`~graphc.lower.control.CondStep`) holding steps of its own."""


class LoweredProgram:
    """``nodes`` (in order) lowered for the dtypes and shapes in ``avals`` with a backend's ``policy``;
    ``wanted`` are the nodes whose values a run hands back.  ``ndims`` run-time dimensions (ahead-of-time
    code with symbolic sizes) are read by every kernel from the ``DIMS`` buffer.

    ``steps`` is what the entry function runs; ``kernels`` every kernel in it (the bodies' too), in order.
    Some slots are *pointers*: they have no memory of their own, the entry points them at memory before
    each loop step (a sequence's row, a loop variable's current value, where a step's result goes).
    ``originals`` maps the nodes of bodies lowered as copies (a body two nodes share is lowered once for
    each) to the graph's nodes they copy: what faults and constants refer to."""

    def __init__(self, nodes: Sequence[Tensor], avals: Mapping[int, AbstractValue], wanted: Sequence[Tensor],
                 policy: LoweringPolicy | None = None, ndims: int = 0) -> None:
        self.nodes = tuple(nodes)
        self.policy = policy or LoweringPolicy()
        self.slots: dict[str, int] = {}
        self.avals: dict[int, AbstractValue] = dict(avals)  # the bodies' nodes are added as they are lowered
        self.in_place = _assigns_in_place(self.nodes, avals, wanted)
        self.aliases = _aliases(self.nodes, avals, wanted, self.in_place)
        self._same_slot: dict[str, str] = {}  # buffer -> the buffer whose slot (and memory) it uses
        self.pointers: set[str] = set()
        self._internal: list[BufferSpec] = []  # memory of the control-flow steps' own (spare state buffers)
        self._lowered: list[Tensor] = []  # every node lowered, the bodies' included
        self.originals: dict[int, Tensor] = {}  # node id of a copy lowered -> the graph's node it copies
        self.timeline: list[list[str]] = []  # per kernel run (and control-flow step start / end): buffers touched
        self.kernels: list[LoopKernel] = []
        self.ctx = LoweringContext(self.avals, self.policy)
        self.steps: list[Step] = self._lower_nodes(self.nodes, {**self.in_place, **self.aliases})
        if ndims:
            self.slot(DIMS)
            spec = BufferSpec(DIMS, np.dtype(np.int64), ndims)
            for kernel in self.kernels:
                kernel.params.append(spec)
        self.faults = self.ctx.faults  # fault code k + 1 -> (node, message)
        self.buffers = self._buffers()
        self.wanted = [(t.id, None if t.op == "group" else self.slots[buffer_name(t)]) for t in wanted]
        self.handed_back = {slot for _, slot in self.wanted if slot is not None and slot in self.buffers}
        self.lifetimes = self._lifetimes()

    def slot(self, name: str) -> int:
        """The slot of buffer ``name`` (a new one the first time)."""
        if name not in self.slots:
            self.slots[name] = len(self.slots)
        return self.slots[name]

    # ---- what control-flow rules (graphc/lower/control.py) build their steps with ----------------------

    def lower_body(self, body: Body, inputs: Sequence[AbstractValue], bound: Sequence[str | None]
                   ) -> tuple[Body, list[Step], list[tuple[str, str | None]]]:
        """Lower ``body`` for input values ``inputs``: input ``k`` is read from buffer ``bound[k]`` (None: a
        pointer slot the step points).  Returns the body lowered (a copy when these nodes were lowered
        already), its steps and, per output, its buffer and the buffer whose slot could be pointed
        elsewhere for the value to be computed there (None: not computed here, or an earlier output's)."""
        if any(n.id in self.avals for n in body.nodes):  # nodes lowered already (a body two nodes share)
            body, originals = clone(body)
            self.originals.update(originals)
        self.avals.update(inner_avals(body, inputs))  # type: ignore[arg-type]  (a Body has a kernel's params and nodes)
        for p in body.params:
            name, outer = buffer_name(p), bound[p.attrs["index"]]
            if outer is None:
                self.pointers.add(name)
            else:
                self._same_slot[name] = outer
        steps = self._lower_nodes(body.body, _aliases(body.nodes, self.avals, body.outputs, {}))
        outputs: list[tuple[str, str | None]] = []
        taken: set[str] = set()
        for out in body.outputs:
            storage = None if out.op in ("parameter", "constant") else _storage(out)
            if storage in taken:
                storage = None
            if storage is not None:
                taken.add(storage)
            outputs.append((buffer_name(out), storage))
        return body, steps, outputs

    def point_slot(self, storage: str | None) -> bool:
        """Make buffer ``storage`` a pointer slot (the step points it where the value belongs); False for None."""
        if storage is None:
            return False
        self.pointers.add(storage)
        return True

    def share_slot(self, name: str, target: str) -> None:
        """Buffer ``name`` is ``target``'s memory."""
        self._same_slot[name] = target

    def open_span(self, names: list[str]) -> list[str]:
        """Start a control-flow step touching buffers ``names`` throughout (returned, to :meth:`close_span`)."""
        self.timeline.append(names)
        return names

    def close_span(self, names: list[str]) -> None:
        self.timeline.append(names)

    def internal_buffers(self, specs: Sequence[BufferSpec], span: list[str]) -> None:
        """Memory of a control-flow step's own, live over its whole ``span``."""
        self._internal.extend(specs)
        span.extend(spec.name for spec in specs)

    # ---- the program ----------------------------------------------------------------------------------

    def _lower_nodes(self, nodes: Sequence[Tensor], shared: Mapping[int, Tensor]) -> list[Step]:
        steps: list[Step] = []
        for node in nodes:
            self._lowered.append(node)
            if node.id in shared:  # nothing to copy
                self._same_slot[buffer_name(node)] = buffer_name(shared[node.id])
                continue
            where = f" (created at {node.location})" if node.location else ""
            program_rule = PROGRAM_RULES.get(node.op)
            if program_rule is not None:
                steps.append(program_rule(node, self))
                continue
            try:
                kernel = lower_node(node, self.ctx)
            except Unsupported as exc:
                raise ArgumentError(f"{exc}: {node.describe()}{where}") from None
            except (DynamicDimError, TypeError) as exc:  # only ahead-of-time code has run-time sizes
                raise DynamicDimError(f"{node.op} cannot be compiled with this run-time dimension yet ({exc}): "
                                      f"{node.describe()}{where}; give the input a static size") from exc
            if kernel is not None:
                self.kernels.append(kernel)
                self.timeline.append([p.name for p in kernel.params])
                steps.append(kernel)
        return steps

    def _buffers(self) -> dict[int, Buffer]:
        """Give every buffer a slot; return the computed ones (pointer slots and buffers sharing another's
        slot have no memory of their own).  Sources (placeholders, Variables, constants) are recorded in
        ``self.sources`` / ``self.constants``."""
        avals = self.avals
        specs: dict[str, tuple[tuple[Size, ...], np.dtype]] = {}
        self.sources: list[tuple[int, int]] = []  # (node id, slot) of values passed in per call
        self.constants: list[tuple[int, Tensor]] = []  # (slot, constant node)
        for kernel in self.kernels:
            for spec in kernel.scratch:
                specs[spec.name] = ((spec.size,), spec.dtype)
        for spec in self._internal:
            specs[spec.name] = ((spec.size,), spec.dtype)
        if self.faults:
            specs[STATUS] = ((1,), np.dtype(np.int64))
        for node in self._lowered:
            name = buffer_name(node)
            if node.op in ("group", "parameter") or name in self._same_slot:
                continue
            if node.op in ("kernel_output", "part"):  # an output of a node with several
                self._same_slot[name] = _storage(node)
            elif node.op == "constant":
                if name not in self.slots:  # (a constant two bodies share is lowered with each)
                    self.constants.append((self.slot(name), node))
            elif node.op in ("placeholder", "variable"):
                self.sources.append((node.id, self.slot(name)))
            elif node.op in PROGRAM_RULES:
                for k, part in enumerate(avals[node.id].parts or ()):
                    specs[part_buffer(node, k)] = (part.shape, part.dtype)
            elif node.op == "fused" and len(node.attrs["kernel"].outputs) > 1:
                inner = inner_avals(node.attrs["kernel"], [avals[i.id] for i in node.inputs])
                for out_name, out in zip(kernel_output_buffers(node), node.attrs["kernel"].outputs):
                    specs[out_name] = (inner[out.id].shape, inner[out.id].dtype)
            else:
                specs[name] = (avals[node.id].shape, avals[node.id].dtype)
        computed: dict[int, Buffer] = {}
        for name, (shape, dtype) in specs.items():
            if name in self._same_slot:
                continue  # its slot is the buffer's it shares (below)
            slot = self.slot(name)
            if name not in self.pointers:
                computed[slot] = Buffer(slot, shape, dtype)
        for name in list(self._same_slot):
            self.slots[name] = self.slot(self._resolve(name))
        for name in self.pointers:
            self.slot(name)
        return computed

    def _resolve(self, name: str) -> str:
        while name in self._same_slot:
            name = self._same_slot[name]
        return name

    def _lifetimes(self) -> dict[int, tuple[int, int]]:
        """``slot -> (first, last)`` step of the timeline for every arena buffer (computed, not handed back).
        A control-flow step touches its inputs, outputs and own memory at its start and its end, so they
        live throughout; its bodies' buffers live only where their kernels run (each step reruns them in
        the same order, so sharing memory by those lifetimes is safe across steps too)."""
        lifetimes: dict[int, tuple[int, int]] = {}
        for k, names in enumerate(self.timeline):
            for name in names:
                slot = self.slots.get(name)
                if slot is not None:
                    first, _ = lifetimes.get(slot, (k, k))
                    lifetimes[slot] = (first, k)
        arena = {slot: lifetimes.get(slot, (0, 0)) for slot in self.buffers if slot not in self.handed_back}
        if STATUS in self.slots:  # read after the call: it must outlive every kernel
            arena[self.slots[STATUS]] = (0, len(self.timeline))
        return arena

    def arena_sizes(self) -> dict[int, Size]:
        """Bytes of each arena buffer, by slot."""
        return {slot: self.buffers[slot].nbytes for slot in self.lifetimes}


def _storage(node: Tensor) -> str:
    """The buffer ``node``'s value is computed into."""
    if node.op == "kernel_output":
        return kernel_output_buffers(node.inputs[0])[node.attrs["index"]]
    if node.op == "part":
        return part_buffer(node.inputs[0], node.attrs["index"])
    return buffer_name(node)


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


__all__ = ["Buffer", "LoweredProgram", "Step", "plan_arena", "plan_groups"]
