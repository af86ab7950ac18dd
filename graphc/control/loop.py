"""The ``loop`` op, which ``gc.scan`` and ``gc.while_loop`` build: a body graph run once per step.

Inputs, in order: the optional trip count (``has_trip``: an int64 scalar, the number of steps to run), the
sequences (``n_seq`` tensors with the same leading length: step ``t`` reads row ``t``), the initial states
(``n_state``) and the captured tensors (everything else the body or the condition reads).  Attributes:

* ``body``: a :class:`~graphc.control.body.Body` of inputs ``[sequence rows..., states..., captured...]``
  and outputs ``[new states..., per-step outputs...]``;
* ``cond``: ``None``, or a body of inputs ``[states..., captured...]`` giving a bool scalar, checked before
  every step: the loop stops when it is false (a while loop);
* ``length``: the number of steps when there are no sequences (``None``: until ``cond`` is false);
* ``reverse``: step ``s`` of ``T`` works on row ``T - 1 - s`` (backward passes);
* ``stacked``: per state, ``"after"`` to return its value after each step stacked over the rows (what
  ``gc.scan`` returns), ``"before"`` its value before each step (the step's input: what a backward pass
  reads), ``""`` neither.

The rows (the *capacity*) are the sequences' length, else ``length``; a loop runs at most that many steps,
fewer when the trip count or ``cond`` says so.  Its outputs (``part`` nodes read them): the final states,
the stacked states, the stacked per-step outputs (shape ``[capacity, ...]``; rows of steps that did not
run are zero) and the number of steps run (int64).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.control.body import Body, body_avals, evaluate_body
from graphc.control.layout import split_inputs
from graphc.control.loop_grad import loop_gradient
from graphc.control.loop_hoist import move_work_out
from graphc.control.loop_prune import prune_loop
from graphc.errors import ArgumentError, DTypeError, ExecutionError, ShapeError
from graphc.ir.registry import AbstractValue, OpDef, register
from graphc.ir.shapes import dims_equal, format_shape

I64 = np.dtype(np.int64)
STACKED = ("", "before", "after")  # the values of the loop op's ``stacked`` attribute


def _type(aval: AbstractValue) -> str:
    return f"{aval.dtype.name}{format_shape(aval.shape)}"


def check_state(what: str, label: str, init: AbstractValue, new: AbstractValue) -> AbstractValue:
    """A loop variable's type after a step must be its type before: the first one's, with the dimensions
    both know (raises naming the variable, what was expected and what came back)."""
    if new.dtype != init.dtype:
        raise DTypeError(f"{what}: loop variable {label} is {_type(init)} but the step makes it {_type(new)}; a "
                         f"loop variable keeps its dtype (cast the new value, or start from a {new.dtype.name} value)")
    if len(new.shape) != len(init.shape) or not all(dims_equal(a, b) for a, b in zip(init.shape, new.shape)):
        raise ShapeError(f"{what}: loop variable {label} is {_type(init)} but the step makes it {_type(new)}; a "
                         f"loop variable keeps its shape")
    return init


def _capacity(seqs: Sequence[AbstractValue], length: int | None, what: str) -> int | None:
    for k, s in enumerate(seqs):
        if not s.shape:
            raise ShapeError(f"{what}: sequence {k} is a scalar ({_type(s)}); a sequence has a leading time axis")
    known = {s.shape[0] for s in seqs if s.shape[0] is not None}
    if len(known) > 1:
        raise ShapeError(f"{what}: the sequences have different lengths "
                         f"({', '.join(_type(s) for s in seqs)}); give them the same leading length")
    if seqs:
        return known.pop() if known else None
    return length


def _infer_loop(inputs: Sequence[AbstractValue], *, body: Body, cond: Body | None, has_trip: bool, n_seq: int,
                n_state: int, length: int | None, reverse: bool, stacked: tuple[str, ...], labels: tuple[str, ...],
                what: str) -> AbstractValue:
    trip, seqs, inits, captured = split_inputs(inputs, _attrs(has_trip, n_seq, n_state))
    if trip is not None and (trip.dtype != I64 or trip.shape != ()):
        raise DTypeError(f"{what}: the trip count must be an int64 scalar, got {_type(trip)}")
    capacity = _capacity(seqs, length, what)
    if len(inits) != n_state or len(body.outputs) < n_state or len(labels) != n_state or len(stacked) != n_state:
        raise ArgumentError(f"{what}: {n_state} loop variables need as many initial values, labels and stacked modes "
                            f"and at least as many body outputs; got {len(inits)}, {len(labels)}, {len(stacked)} "
                            f"and {len(body.outputs)}")
    rows = [AbstractValue(s.dtype, s.shape[1:]) for s in seqs]
    avals = body_avals(body, [*rows, *inits, *captured])
    outs = [avals[o.id] for o in body.outputs]
    finals = [check_state(what, label, init, new) for label, init, new in zip(labels, inits, outs[:n_state])]
    if cond is not None:
        test = body_avals(cond, [*inits, *captured])[cond.outputs[0].id]
        if test.dtype.kind != "b" or test.shape != ():
            raise DTypeError(f"{what}: the condition must give a bool scalar, it gives {_type(test)}")
    if any(mode not in STACKED for mode in stacked) or len(stacked) != n_state:
        raise ArgumentError(f"{what}: stacked must give one of {STACKED} per loop variable, got {stacked!r}")
    if not seqs and length is None and (any(stacked) or len(outs) > n_state):
        raise ArgumentError(f"{what}: values stacked over the steps need a bound on their number "
                            f"(maximum_iterations)")
    steps = (capacity,)
    parts = [*finals,
             *(AbstractValue(init.dtype, steps + tuple(init.shape)) for init, keep in zip(inits, stacked) if keep),
             *(AbstractValue(o.dtype, steps + tuple(o.shape)) for o in outs[n_state:]),
             AbstractValue(I64, ())]
    first = parts[0]
    return AbstractValue(first.dtype, first.shape, parts=tuple(parts))


def _loop_reference(*arrays: np.ndarray, body: Body, cond: Body | None, has_trip: bool, n_seq: int, n_state: int,
                    length: int | None, reverse: bool, stacked: tuple[str, ...], labels: tuple[str, ...],
                    what: str) -> tuple[np.ndarray, ...]:
    trip, seqs, inits, captured = split_inputs(arrays, _attrs(has_trip, n_seq, n_state))
    capacity = len(seqs[0]) if seqs else length
    if any(len(s) != capacity for s in seqs):
        raise ExecutionError(f"the sequences have different lengths ({', '.join(str(len(s)) for s in seqs)})")
    steps = capacity
    if trip is not None:
        if trip < 0 or (capacity is not None and trip > capacity):
            raise ExecutionError(f"trip count {int(trip)} is outside 0..{capacity}")
        steps = int(trip)
    aval = [AbstractValue(a.dtype, a.shape) for a in arrays]
    _, seq_avals, init_avals, cap_avals = split_inputs(aval, _attrs(has_trip, n_seq, n_state))
    rows = [AbstractValue(s.dtype, s.shape[1:]) for s in seq_avals]
    avals = body_avals(body, [*rows, *init_avals, *cap_avals])
    cond_avals = body_avals(cond, [*init_avals, *cap_avals]) if cond is not None else None
    outs = [avals[o.id] for o in body.outputs[n_state:]]
    n = 0 if capacity is None else capacity
    kept = [k for k, mode in enumerate(stacked) if mode]
    stacks = [np.zeros((n, *inits[k].shape), inits[k].dtype) for k in kept]
    per_step = [np.zeros((n, *o.shape), o.dtype) for o in outs]
    states = list(inits)
    done = 0
    while steps is None or done < steps:
        if cond is not None and not evaluate_body(cond, cond_avals, [*states, *captured])[0]:  # type: ignore[arg-type]
            break
        row = steps - 1 - done if reverse and steps is not None else done
        before = states
        results = evaluate_body(body, avals, [*(s[row] for s in seqs), *states, *captured])
        states = results[:n_state]
        for stack, k in zip(stacks, kept):
            stack[row] = states[k] if stacked[k] == "after" else before[k]
        for stack, value in zip(per_step, results[n_state:]):
            stack[row] = value
        done += 1
    return (*states, *stacks, *per_step, np.int64(done))


def _attrs(has_trip: bool, n_seq: int, n_state: int) -> dict[str, Any]:
    return {"has_trip": has_trip, "n_seq": n_seq, "n_state": n_state}


register(OpDef("loop", "control", _infer_loop, _loop_reference, num_inputs=None, grad=loop_gradient,
               doc="runs attrs['body'] once per step over sequences and loop variables (gc.scan, gc.while_loop)",
               extra={"message_attrs": ("labels", "what"),  # only name things in errors: not in cache keys
                      "prune_outputs": prune_loop, "rewrite": move_work_out}))


__all__ = ["STACKED", "check_state"]
