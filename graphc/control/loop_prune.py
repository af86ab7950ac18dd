"""Dropping what no one reads from a loop: per-step outputs whose stacked result is not read, loop variables
that neither are read after the loop nor feed a value that is (through the body or the condition), and the
captured tensors no step reads any more.  The backward loop of a gradient computes the gradient of every input (each
sequence, initial state and captured tensor); this is what leaves it only the work the gradients asked for
need.  Registered as the loop op's ``prune_outputs`` fact, which graphc/passes/bodies.py applies."""

from __future__ import annotations

from collections.abc import Sequence

from graphc.control.layout import output_part, split_inputs, stacked_part, trip_part
from graphc.ir.body import rebind
from graphc.ir.build import rebuild
from graphc.ir.graph import topological_order
from graphc.ir.tensor import Tensor


def _reads(outputs: Sequence[Tensor]) -> set[int]:
    """The input indices the parameters under ``outputs`` read."""
    return {n.attrs["index"] for n in topological_order(outputs) if n.op == "parameter"}


def with_states(node: Tensor, states: Sequence[int], captured: Sequence[int], outputs: Sequence[Tensor]
                ) -> Tensor:
    """Loop ``node`` keeping only its loop variables ``states`` and captured inputs ``captured`` (indices, in
    order), with body ``outputs`` (the kept states' new values, then the per-step outputs): the body's and
    the condition's parameters renumbered to the inputs that remain."""
    a = node.attrs
    n_seq, n_state, cond = a["n_seq"], a["n_state"], a["cond"]
    first_captured = n_seq + n_state
    kept = len(states)
    body_index = {**{k: k for k in range(n_seq)}, **{n_seq + j: n_seq + k for k, j in enumerate(states)},
                  **{first_captured + c: n_seq + kept + k for k, c in enumerate(captured)}}
    attrs = {**a, "n_state": kept, "body": rebind(outputs, body_index),
             "stacked": tuple(a["stacked"][j] for j in states), "labels": tuple(a["labels"][j] for j in states)}
    if cond is not None:
        cond_index = {**{j: k for k, j in enumerate(states)},
                      **{n_state + c: kept + k for k, c in enumerate(captured)}}
        attrs["cond"] = rebind(cond.outputs, cond_index)
    trip, seqs, inits, captured_inputs = split_inputs(node.inputs, a)
    inputs = [*([trip] if trip is not None else []), *seqs, *(inits[j] for j in states),
              *(captured_inputs[c] for c in captured)]
    return rebuild(node, inputs, attrs)


def prune_loop(node: Tensor, used: set[int]) -> tuple[Tensor, dict[int, int]] | None:
    """Loop ``node`` without what no one reads, when only its outputs ``used`` are read: the new node and, for
    each used output, its index in the new node (None: nothing to drop)."""
    a = node.attrs
    body, cond, n_seq, n_state = a["body"], a["cond"], a["n_seq"], a["n_state"]
    n_out = len(body.outputs) - n_state
    states = {j for j in range(n_state) if j in used or stacked_part(a, j) in used}
    outs = {k for k in range(n_out) if output_part(a, k) in used}
    cond_reads = _reads(cond.outputs) if cond is not None else set()
    states |= {j for j in cond_reads if j < n_state}
    pending = [*states, *(n_state + k for k in outs)]
    while pending:  # a kept value keeps every loop variable it is computed from
        for index in _reads([body.outputs[pending.pop()]]):
            j = index - n_seq
            if 0 <= j < n_state and j not in states:
                states.add(j)
                pending.append(j)
    kept_states, kept_outs = sorted(states), sorted(outs)
    new_outputs = [body.outputs[j] for j in kept_states] + [body.outputs[n_state + k] for k in kept_outs]
    first_captured = n_seq + n_state
    read = _reads(new_outputs) | {first_captured + c - n_state for c in cond_reads if c >= n_state}
    kept_captured = sorted(c - first_captured for c in read if c >= first_captured)
    captured = split_inputs(node.inputs, a)[3]
    if len(states) == n_state and len(outs) == n_out and len(kept_captured) == len(captured):
        return None
    new = with_states(node, kept_states, kept_captured, new_outputs)
    attrs = new.attrs
    remap = {trip_part(a): trip_part(attrs)}
    for k, j in enumerate(kept_states):
        remap[j] = k
        if a["stacked"][j]:
            remap[stacked_part(a, j)] = stacked_part(attrs, k)  # type: ignore[index]
    for k, out in enumerate(kept_outs):
        remap[output_part(a, out)] = output_part(attrs, k)
    return new, {index: remap[index] for index in used}


__all__ = ["prune_loop", "with_states"]
