"""The gradient of a loop: another loop, running the steps backwards (back-propagation through time).

Step ``r`` of the forward loop maps ``(sequence rows x_r, states h, captured c)`` to ``(new states, per-step
outputs)``.  The backward loop visits the rows in reverse; its step recomputes that forward step from the
rows and the state the forward step started from (so nothing but the stacked states is kept from the
forward pass), takes its vector-Jacobian product with the gradient flowing into it, and

* carries the gradient with respect to the states (the next step back receives it),
* adds up the gradient with respect to the captured tensors (they are read by every step),
* writes the gradient with respect to the sequence rows at row ``r`` of a stacked result.

The states a forward step started from are the loop's states stacked ``"after"`` shifted by one row (what
``gc.scan`` returns anyway), or, for a loop that does not stack them so (a while loop, a backward loop), a
second run of the same loop that stacks them ``"before"`` into as many rows as its bound on the number of
steps (``maximum_iterations``).  A loop without a bound keeps nothing: the backward step for forward step
``r`` recomputes the state before it by running the first ``r`` steps again from the initial state (the
number of steps recorded by the forward pass says how many there were), so its gradient costs ``n (n + 1)
/ 2`` forward steps for ``n`` steps run and no memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graphc.autodiff import add_all, backpropagate
from graphc.control.body import Body, capture, inline, parameter, trace
from graphc.control.layout import input_offsets, output_part, split_inputs, stacked_part, trip_part
from graphc.control.part import part
from graphc.ir.build import make_node
from graphc.ir.registry import AbstractValue
from graphc.ir.tensor import Tensor
from graphc.ops.like import zeros_like
from graphc.ops.shape import concat, expand_dims


def _is_float(t: Tensor | AbstractValue) -> bool:
    return t.dtype.kind == "f"


def _unbounded(node: Tensor) -> bool:
    """Whether nothing bounds the number of steps of loop ``node`` before it runs (no sequences, no length)."""
    return node.attrs["n_seq"] == 0 and node.attrs["length"] is None


def _recomputed_states(node: Tensor, step: Tensor, captured: Sequence[Tensor]) -> list[Tensor]:
    """The states of unbounded loop ``node`` before its step ``step`` (an int64 scalar tensor): its first
    ``step`` steps run again from the initial states (its condition held for all of them)."""
    a = node.attrs
    _, _, inits, _ = split_inputs(node.inputs, a)
    rerun = make_node("loop", [step, *inits, *captured], name=f"{node.name.rsplit('/', 1)[-1]}_recomputed",
                      **{**a, "cond": None, "has_trip": True, "reverse": False, "stacked": ("",) * a["n_state"]})
    return [part(rerun, j) for j in range(a["n_state"])]


def _states_before_each_step(node: Tensor) -> tuple[list[Tensor], Tensor]:
    """``(the value of each state before each step, stacked; the number of steps run)``, re-running the loop
    if it must (a loop with a bound on its steps: see :func:`_unbounded`)."""
    a = node.attrs
    n_state, stacked = a["n_state"], a["stacked"]
    if a["cond"] is None and not a["has_trip"] and not a["reverse"] and all(m == "after" for m in stacked):
        _, _, inits, _ = split_inputs(node.inputs, a)
        # before step t: the initial state, then the state after step t - 1
        before = [concat([expand_dims(init, 0), part(node, stacked_part(a, j))], 0)[:-1]
                  for j, init in enumerate(inits)]
        return before, part(node, trip_part(a))
    rerun = make_node("loop", node.inputs, name=f"{node.name.rsplit('/', 1)[-1]}_stacked",
                      **{**a, "stacked": ("before",) * n_state})
    return [part(rerun, stacked_part(rerun.attrs, j)) for j in range(n_state)], part(rerun, trip_part(rerun.attrs))


def loop_gradient(node: Tensor, g: Sequence[Tensor | None]) -> list[Tensor | None]:
    """The gradient of each input of loop ``node`` given ``g``, the gradient of each of its outputs."""
    a = node.attrs
    body: Body = a["body"]
    n_seq, n_state = a["n_seq"], a["n_state"]
    _, seqs, inits, captured = split_inputs(node.inputs, a)
    n_out = len(body.outputs) - n_state
    g_final = list(g[:n_state])
    g_stacked = {j: g[k] for j in range(n_state) if (k := stacked_part(a, j)) is not None and g[k] is not None}
    g_outputs = [g[output_part(a, k)] for k in range(n_out)]
    recompute = _unbounded(node)  # no stacks (no rows to stack into): each step's state is recomputed
    befores, steps = ([], part(node, trip_part(a))) if recompute else _states_before_each_step(node)

    float_states = [j for j in range(n_state) if _is_float(inits[j])]
    float_captured = [c for c in range(len(captured)) if _is_float(captured[c])]
    float_seqs = [i for i in range(n_seq) if _is_float(seqs[i])]
    g_stacked_seq = [j for j in float_states if j in g_stacked]
    g_output_seq = [k for k in range(n_out) if g_outputs[k] is not None and _is_float(g_outputs[k])]
    if not float_states and not g_output_seq:
        return [None] * len(node.inputs)

    sequences = [*seqs, *befores, *(g_stacked[j] for j in g_stacked_seq), *(g_outputs[k] for k in g_output_seq)]
    start = [g_final[j] if g_final[j] is not None else zeros_like(inits[j]) for j in float_states]
    start += [zeros_like(captured[c]) for c in float_captured]
    rows = [AbstractValue(s.dtype, s.shape[1:]) for s in sequences]
    args = [(aval, f"{name}_row") for aval, name in zip(rows, ["x"] * n_seq + ["h"] * n_state + ["g"] * (
        len(g_stacked_seq) + len(g_output_seq)))]
    args += [(t.aval, "dh") for t in start[:len(float_states)]] + [(t.aval, "dc") for t in start[len(float_states):]]
    if recompute:  # the forward step a backward step works on, counted down from the last
        start.append(steps - 1)
        args.append((start[-1].aval, "step"))
    backward_captured = list(captured)
    what = f"the gradient of a {a['what']}"

    def step_vjp(x_rows: Sequence[Tensor], h_rows: Sequence[Tensor], gs_rows: Sequence[Tensor],
                 go_rows: Sequence[Tensor], dh: Sequence[Tensor], dc: Sequence[Tensor],
                 c_params: Sequence[Tensor]) -> list[Tensor]:
        """One backward step: the vector-Jacobian product of the forward step at rows ``x_rows`` and states
        ``h_rows``: the new state gradients, the captured ones added up, the rows' gradients."""
        outs = inline(body, [*x_rows, *h_rows, *c_params])
        ys, seeds = [], []
        # a state stacked "after" a step adds its row's gradient to the step's new state, one stacked
        # "before" to the state the step started from
        row_grad = {j: gs_rows[k] for k, j in enumerate(g_stacked_seq)}
        for k, j in enumerate(float_states):
            extra = [row_grad[j]] if j in row_grad and a["stacked"][j] == "after" else []
            ys.append(outs[j])
            seeds.append(add_all([dh[k], *extra]))
        for k, o in zip(g_output_seq, go_rows):
            ys.append(outs[n_state + k])
            seeds.append(o)
        targets = [*x_rows, *h_rows, *c_params]
        adjoint = backpropagate(ys, seeds, targets)

        def grad_of(t: Tensor) -> Tensor:
            found = adjoint.get(t.id)
            return found if found is not None else zeros_like(t)

        new_dh = [add_all([grad_of(h_rows[j]), *([row_grad[j]] if j in row_grad and a["stacked"][j] == "before"
                                                 else [])]) for j in float_states]
        new_dc = [dc[k] + grad_of(c_params[c]) for k, c in enumerate(float_captured)]
        return [*new_dh, *new_dc, *(grad_of(x_rows[i]) for i in float_seqs)]

    def backward_step(*params: Tensor) -> list[Tensor]:
        x_rows, rest = params[:n_seq], params[n_seq:]
        h_rows, rest = (rest[:n_state], rest[n_state:]) if not recompute else ((), rest)
        gs_rows, rest = rest[:len(g_stacked_seq)], rest[len(g_stacked_seq):]
        go_rows, rest = rest[:len(g_output_seq)], rest[len(g_output_seq):]
        dh, rest = rest[:len(float_states)], rest[len(float_states):]
        dc, rest = rest[:len(float_captured)], rest[len(float_captured):]
        if not recompute:
            return step_vjp(x_rows, h_rows, gs_rows, go_rows, dh, dc, rest)
        counter, c_params = rest[0], rest[1:]
        # the step's product is taken at states standing for the recomputed ones (so that the captured
        # tensors' gradient does not also flow back through the recomputation), then bound to them (so that
        # a gradient of this gradient sees how they depend on the inputs)
        recomputed = _recomputed_states(node, counter, c_params)
        stand_ins = [parameter(k, t.aval, f"state{k}_before") for k, t in enumerate(recomputed)]
        results = step_vjp(x_rows, stand_ins, gs_rows, go_rows, dh, dc, c_params)
        held: list[Tensor] = []
        product = capture(results, stand_ins, held, len(stand_ins), what, node.location)
        return [*inline(product, [*recomputed, *held]), counter - 1]

    backward, _ = trace(backward_step, args, backward_captured, len(args), what, node.location, pass_captured=True)
    labels = tuple(f"d({a['labels'][j]})" for j in float_states) + tuple(
        f"d(captured {captured[c].name!r})" for c in float_captured) + (("the forward step",) if recompute else ())
    loop = make_node("loop", [steps, *sequences, *start, *backward_captured],
                     name=f"{node.name.rsplit('/', 1)[-1]}_grad", body=backward, cond=None, has_trip=True,
                     n_seq=len(sequences), n_state=len(start), length=None, reverse=not a["reverse"],
                     stacked=("",) * len(start), labels=labels, what=what)
    grads: list[Any] = [None] * len(node.inputs)
    first_seq, first_state, first_captured = input_offsets(a)
    for k, j in enumerate(float_states):
        grads[first_state + j] = part(loop, k)
    for k, c in enumerate(float_captured):
        grads[first_captured + c] = part(loop, len(float_states) + k)
    for k, i in enumerate(float_seqs):
        grads[first_seq + i] = part(loop, output_part(loop.attrs, k))
    return grads


__all__ = ["loop_gradient"]
