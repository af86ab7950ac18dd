"""Control flow lowered into the program: a ``loop`` node becomes a :class:`LoopStep` and a ``cond`` node a
:class:`CondStep`, steps of the one entry function that also runs every kernel, so no Python runs per
iteration.  Their bodies are lowered like the rest of the graph, into kernels of their own.

How a loop keeps its values (no copy per step but where a body's result is not computed into memory of
its own, e.g. a state the step returns unchanged):

* a body reads a sequence's row, a loop variable and its previous value through *pointer slots* of the
  table that the entry points at the right memory before each step;
* a value the body computes is written straight where it belongs (its slot is pointed there too): a
  per-step output and a state stacked ``"after"`` each step into row ``t`` of the stacked result, any
  other state alternately into two spare buffers of the loop, so step ``t`` never overwrites what it reads;
* a state stacked ``"before"`` each step is copied into row ``t`` of its stack before the step;
* the final states are copied out once, after the last step, from wherever the last step left them.

A conditional's branches write their results straight into the conditional's outputs (both branches
share that memory: only one runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from graphc.control.layout import output_part, split_inputs, stacked_part, trip_part
from graphc.ir.body import Body
from graphc.ir.registry import AbstractValue
from graphc.ir.symbolic import Size
from graphc.ir.tensor import Tensor
from graphc.lower.builder import LoweringContext, buffer_name
from graphc.lower.loopir import BufferSpec
from graphc.lower.registry import lowers_program


class ProgramBuilder(Protocol):
    """What a control-flow rule builds its step with: the program being lowered
    (:class:`~graphc.lower.program.LoweredProgram`)."""

    avals: dict[int, AbstractValue]
    ctx: LoweringContext

    def lower_body(self, body: Body, inputs: Sequence[AbstractValue], bound: Sequence[str | None]
                   ) -> tuple[Body, list[Any], list[tuple[str, str | None]]]: ...

    def point_slot(self, storage: str | None) -> bool: ...

    def share_slot(self, name: str, target: str) -> None: ...

    def open_span(self, names: list[str]) -> list[str]: ...

    def close_span(self, names: list[str]) -> None: ...

    def internal_buffers(self, specs: Sequence[BufferSpec], span: list[str]) -> None: ...


def part_buffer(node: Tensor, index: int) -> str:
    """The buffer of output ``index`` of control-flow ``node`` (what its ``part`` nodes read)."""
    return f"{buffer_name(node)}_p{index}"


@dataclass(frozen=True)
class RowRead:
    """Before each step, pointer slot ``param`` is pointed at the step's row of ``sequence``."""

    param: str
    sequence: str
    row_bytes: Size


@dataclass(frozen=True)
class RowWrite:
    """Per-step output: the body's ``value`` goes to the step's row of ``stack`` (computed there when
    ``owned``, the value's slot being pointed at the row; else copied after the body)."""

    value: str
    owned: bool
    stack: str
    row_bytes: Size


@dataclass(frozen=True)
class StateCarry:
    """A loop variable: its ``init`` buffer, the pointer slots the body and the condition read it through,
    the body's new ``value`` (``owned``: computed where the entry points its slot), the ``final`` output,
    its ``stack`` (``mode`` "after" / "before") and the two ``spare`` buffers that unstacked ("" and
    "before") states alternate between."""

    init: str
    params: tuple[str, ...]
    value: str
    owned: bool
    final: str
    nbytes: Size
    mode: str = ""
    stack: str | None = None
    spare: tuple[str, str] | None = None


@dataclass
class LoopStep:
    """A loop: up to ``capacity`` steps (None: no bound), ``trip`` (a buffer) of them when given (fault
    ``trip_fault`` outside 0..capacity), while the condition's steps compute a true ``test`` (when there
    is a condition); each step runs ``body``.  ``reverse``: step ``t`` of ``T`` works on row ``T - 1 - t``.
    ``zeroed``: stacks cleared first (fewer steps than rows may run); ``steps_run``: the int64 output."""

    name: str
    capacity: Size | None
    trip: str | None
    trip_fault: int
    reverse: bool
    cond: list[Any]
    test: str | None
    body: list[Any]
    rows: list[RowRead]
    states: list[StateCarry]
    outputs: list[RowWrite]
    steps_run: str
    zeroed: list[tuple[str, Size]] = field(default_factory=list)


@dataclass
class CondStep:
    """Runs ``branches[0]`` where the bool buffer ``pred`` is true, else ``branches[1]``; after each,
    its ``copies`` ``(source, destination, bytes)`` (results not computed in the outputs' memory)."""

    pred: str
    branches: tuple[list[Any], list[Any]]
    copies: tuple[list[tuple[str, str, Size]], list[tuple[str, str, Size]]]


def _nbytes(aval: AbstractValue) -> Size:
    return math.prod(aval.shape) * np.dtype(aval.dtype).itemsize


def _row(aval: AbstractValue) -> AbstractValue:
    return AbstractValue(aval.dtype, tuple(aval.shape[1:]))


@lowers_program("loop")
def lower_loop(node: Tensor, program: ProgramBuilder) -> LoopStep:
    attrs, avals = node.attrs, program.avals
    trip, seqs, inits, captured = split_inputs(node.inputs, attrs)
    body, cond, n_seq, n_state = attrs["body"], attrs["cond"], attrs["n_seq"], attrs["n_state"]
    parts = avals[node.id].parts
    assert parts is not None
    capacity = avals[seqs[0].id].shape[0] if seqs else attrs["length"]
    captured_names = [buffer_name(c) for c in captured]
    captured_avals = [avals[c.id] for c in captured]
    state_avals = [avals[i.id] for i in inits]
    span = program.open_span([buffer_name(t) for t in node.inputs]
                             + [part_buffer(node, k) for k in range(len(parts))])

    cond_steps: list[Any] = []
    test = None
    if cond is not None:
        cond, cond_steps, cond_outs = program.lower_body(cond, [*state_avals, *captured_avals],
                                                         [None] * n_state + captured_names)
        test = cond_outs[0][0]
    row_avals = [_row(avals[s.id]) for s in seqs]
    body, body_steps, outs = program.lower_body(body, [*row_avals, *state_avals, *captured_avals],
                                                [None] * (n_seq + n_state) + captured_names)

    def params(bound: Any, index: int) -> tuple[str, ...]:
        return tuple(buffer_name(p) for p in bound.params if p.attrs["index"] == index)

    rows = [RowRead(name, buffer_name(s), _nbytes(row_avals[k]))
            for k, s in enumerate(seqs) for name in params(body, k)]
    states = []
    for j, (init, aval) in enumerate(zip(inits, state_avals)):
        value, storage = outs[j]
        mode = attrs["stacked"][j]
        stacked = stacked_part(attrs, j)
        spare = None
        if mode != "after":
            spare = (f"{buffer_name(node)}_s{j}a", f"{buffer_name(node)}_s{j}b")
            program.internal_buffers([BufferSpec(name, aval.dtype, math.prod(aval.shape)) for name in spare], span)
        states.append(StateCarry(buffer_name(init), params(body, n_seq + j) + (params(cond, j) if cond else ()),
                                 value, program.point_slot(storage), part_buffer(node, j), _nbytes(aval), mode,
                                 None if stacked is None else part_buffer(node, stacked), spare))
    outputs = []
    for k, (value, storage) in enumerate(outs[n_state:]):
        stack = part_buffer(node, output_part(attrs, k))
        outputs.append(RowWrite(value, program.point_slot(storage), stack, _nbytes(_row(parts[output_part(attrs, k)]))))
    trip_fault = 0
    if trip is not None:
        trip_fault = program.ctx.fault(node, f"the trip count is outside 0..{capacity}")
    step = LoopStep(buffer_name(node), capacity, None if trip is None else buffer_name(trip), trip_fault,
                    attrs["reverse"], cond_steps, test, body_steps, rows, states, outputs,
                    part_buffer(node, trip_part(attrs)))
    if trip is not None or cond is not None:  # rows of steps that do not run are zero
        step.zeroed = [(w.stack, _nbytes(parts[output_part(attrs, k)])) for k, w in enumerate(outputs)]
        step.zeroed += [(s.stack, _nbytes(parts[stacked_part(attrs, j)])) for j, s in enumerate(states)  # type: ignore[index]
                        if s.stack is not None]
    program.close_span(span)
    return step


@lowers_program("cond")
def lower_cond(node: Tensor, program: ProgramBuilder) -> CondStep:
    avals = program.avals
    pred, captured = node.inputs[0], node.inputs[1:]
    parts = avals[node.id].parts
    assert parts is not None
    names = [buffer_name(c) for c in captured]
    outs = [part_buffer(node, k) for k in range(len(parts))]
    span = program.open_span([buffer_name(pred), *names, *outs])
    branches: list[list[Any]] = []
    copies: list[list[tuple[str, str, Size]]] = []
    for body in (node.attrs["true_body"], node.attrs["false_body"]):
        _, steps, results = program.lower_body(body, [avals[c.id] for c in captured], names)
        branch_copies = []
        for (value, storage), out, aval in zip(results, outs, parts):
            if storage is not None:
                program.share_slot(storage, out)  # computed straight into the conditional's output
            else:
                branch_copies.append((value, out, _nbytes(aval)))
        branches.append(steps)
        copies.append(branch_copies)
    program.close_span(span)
    return CondStep(buffer_name(pred), (branches[0], branches[1]), (copies[0], copies[1]))


__all__ = ["CondStep", "LoopStep", "ProgramBuilder", "RowRead", "RowWrite", "StateCarry", "part_buffer"]
