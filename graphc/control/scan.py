"""``gc.scan`` (Theano / PyTensor style) and ``gc.while_loop`` (TensorFlow 1.x style): both build one
``loop`` node (graphc/control/loop.py) whose body is the user's step function, traced once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from graphc.control.body import Body, trace
from graphc.control.part import part
from graphc.errors import ArgumentError, DTypeError, ShapeError
from graphc.ir.build import as_tensor, make_node
from graphc.ir.location import SourceLocation, user_location, where_text
from graphc.ir.registry import AbstractValue
from graphc.ir.tensor import Tensor
from graphc.nest import flatten
from graphc.ops.elementwise import cast


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _tensor(value: Any, what: str, location: SourceLocation | None) -> Tensor:
    try:
        return as_tensor(value)
    except Exception:
        raise ArgumentError(f"{what} is {type(value).__name__}, expected a tensor{where_text(location)}") from None


def _steps_bound(value: Any, what: str, location: SourceLocation | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, Tensor):
        raise ArgumentError(f"{what} must be a Python int; a tensor's value is not known while the graph is "
                            f"built (for a number of steps known only when it runs, loop over a sequence of that "
                            f"length or use gc.while_loop){where_text(location)}")
    if isinstance(value, bool) or not hasattr(value, "__index__") or value.__index__() < 0:
        raise ArgumentError(f"{what} must be a non-negative int, got {value!r}{where_text(location)}")
    return value.__index__()


def _trace_states(step: Callable[..., Any], row_args: Sequence[tuple[AbstractValue, str]], inits: list[Tensor],
                  captured: list[Tensor], what: str, location: SourceLocation | None) -> tuple[Body, Any, list[Tensor]]:
    """Trace the step function on the rows and states.  A state that starts from a bare Python number (weakly
    typed) takes the dtype the step gives it, so that ``outputs_info=0.0`` works with float32 steps."""
    for _ in range(2):
        args = [*row_args, *((t.aval, f"state{k}") for k, t in enumerate(inits))]
        trial: list[Tensor] = list(captured)
        body, result = trace(step, args, trial, len(args), what, location)
        outs = [o.dtype for o in body.outputs[:len(inits)]]
        retyped = [cast(t, dtype) if t.weak and dtype != t.dtype else t for t, dtype in zip(inits, outs)]
        if all(a is b for a, b in zip(retyped, inits)):
            captured[:] = trial
            return body, result, inits
        inits = retyped
    raise DTypeError(f"{what}: the loop variables' dtypes do not settle{where_text(location)}")


def scan(fn: Callable[..., Any], sequences: Any = None, outputs_info: Any = None, non_sequences: Any = None,
         n_steps: int | None = None, go_backwards: bool = False) -> Any:
    """Run ``fn`` once per step and stack what it returns over the steps (Theano's ``scan``).

    ``fn`` receives, in order, the current row of each of ``sequences`` (tensors with a leading time axis,
    whose length may be unknown until run time), the previous value of each output whose ``outputs_info``
    entry is not ``None`` (the entry is its initial value), then ``non_sequences``; it returns the new
    value of each output (one per ``outputs_info`` entry; with ``outputs_info=None`` any number, none fed
    back).  The result is each output's values stacked over the steps, shape ``[steps, ...]`` (the initial
    value not included): one tensor for one output, else a list.

    ``n_steps`` (a Python int) runs that many steps, over the first ``n_steps`` rows of the sequences; it is
    required without sequences.  With ``go_backwards`` the sequences are read from their last row to their
    first.  The sequences must all have the same length (after ``n_steps``).  ``fn`` may read any tensor
    (Variables, placeholders, tensors built outside): what does not change from step to step is computed
    once, outside the loop.  Differentiable with ``gc.grad`` (back-propagation through time), to any order.
    """
    location = user_location()
    seqs = [_tensor(s, f"scan: sequences[{k}]", location) for k, s in enumerate(_as_list(sequences))]
    for k, s in enumerate(seqs):
        if not s.shape:
            raise ShapeError(f"scan: sequences[{k}] {s.describe()} is a scalar; a sequence has a leading time axis"
                             f"{where_text(location)}")
    if isinstance(outputs_info, dict) or any(isinstance(i, dict) for i in _as_list(outputs_info)):
        raise ArgumentError(f"scan: outputs_info entries are initial values or None; taps (dicts) are not "
                            f"supported{where_text(location)}")
    infos = _as_list(outputs_info)
    inits = [_tensor(v, f"scan: outputs_info[{k}]", location) for k, v in enumerate(infos) if v is not None]
    labels = [f"outputs_info[{k}] {infos[k].name!r}" if isinstance(infos[k], Tensor) else f"outputs_info[{k}]"
              for k in range(len(infos)) if infos[k] is not None]
    non_seqs = [_tensor(v, f"scan: non_sequences[{k}]", location)
                for k, v in enumerate(_as_list(non_sequences))]
    steps = _steps_bound(n_steps, "scan: n_steps", location)
    if go_backwards:
        seqs = [s[::-1] for s in seqs]
    if steps is not None:
        for k, s in enumerate(seqs):
            if s.shape[0] is not None and s.shape[0] < steps:
                raise ShapeError(f"scan: n_steps={steps} but sequences[{k}] {s.describe()} has only {s.shape[0]} "
                                 f"rows{where_text(location)}")
        seqs = [s[:steps] for s in seqs]
    elif not seqs:
        raise ArgumentError(f"scan: give sequences or n_steps (how many steps to run){where_text(location)}")

    def step(*params: Tensor) -> Any:
        return fn(*params, *non_seqs)

    rows = [(AbstractValue(s.dtype, s.shape[1:]), f"seq{k}_row") for k, s in enumerate(seqs)]
    what = "scan"
    captured: list[Tensor] = []
    body, result, inits = _trace_states(step, rows, inits, captured, what, location)
    count = len(body.outputs)
    if infos and count != len(infos):
        raise ArgumentError(f"scan: fn returns {count} value{'s' if count != 1 else ''} but outputs_info has "
                            f"{len(infos)} entries (one per output: its initial value, or None){where_text(location)}")
    # the body's outputs are the new states, then the per-step outputs: reorder fn's results to match
    is_state = [v is not None for v in infos] if infos else [False] * count
    order = [k for k in range(count) if is_state[k]] + [k for k in range(count) if not is_state[k]]
    body = Body(body.params, tuple(body.outputs[k] for k in order))
    n_state = len(inits)
    node = make_node("loop", [*seqs, *inits, *captured], name=what, body=body, cond=None, has_trip=False,
                      n_seq=len(seqs), n_state=n_state, length=steps if not seqs else None, reverse=False,
                      stacked=("after",) * n_state, labels=tuple(labels), what=what)
    results: list[Tensor] = []
    state_index = output_index = 0
    for k in range(count):
        if is_state[k]:
            results.append(part(node, n_state + state_index))
            state_index += 1
        else:
            results.append(part(node, 2 * n_state + output_index))
            output_index += 1
    return results[0] if count == 1 and not isinstance(result, (list, tuple)) else results


def while_loop(cond: Callable[..., Any], body: Callable[..., Any], loop_vars: Any,
               maximum_iterations: int | None = None) -> Any:
    """Repeat ``loop_vars = body(*loop_vars)`` while ``cond(*loop_vars)`` is true (TensorFlow 1.x's
    ``tf.while_loop``); return the final values, in the structure of ``loop_vars`` (a tensor, or a nested
    list / tuple / dict of them: ``cond`` and ``body`` receive its top-level items as arguments).

    ``cond`` returns a bool scalar; ``body`` returns new values of the same structure, dtypes and shapes.
    ``maximum_iterations`` (a Python int) stops the loop after that many steps even if ``cond`` still
    holds; the gradient (``gc.grad``) through a while loop needs it.
    """
    location = user_location()
    if not callable(cond) or not callable(body):
        raise ArgumentError(f"while_loop: cond and body must be functions{where_text(location)}")
    leaves, rebuild_vars = flatten(loop_vars, lambda v: not isinstance(v, (list, tuple, dict)))
    if not leaves:
        raise ArgumentError(f"while_loop: loop_vars is empty{where_text(location)}")
    inits = [_tensor(v, f"while_loop: loop_vars leaf {k}", location) for k, v in enumerate(leaves)]
    labels = [f"loop_vars leaf {k} {t.name!r}" for k, t in enumerate(inits)]
    bound = _steps_bound(maximum_iterations, "while_loop: maximum_iterations", location)
    spread = isinstance(loop_vars, (list, tuple)) and not hasattr(loop_vars, "_fields")

    def call(fn: Callable[..., Any], params: Sequence[Tensor]) -> Any:
        structured = rebuild_vars(list(params))
        return fn(*structured) if spread else fn(structured)

    def step(*params: Tensor) -> list[Tensor]:
        new = call(body, params)
        if not spread and isinstance(new, (list, tuple)) and len(new) == 1 and not isinstance(loop_vars, dict):
            new = new[0]  # body(x) may return [x_new]
        if _structure(new) != _structure(loop_vars):
            raise ArgumentError(f"while_loop: body returns {_describe_structure(new)} but loop_vars is "
                                f"{_describe_structure(loop_vars)}; body must return the loop variables' new "
                                f"values in the same structure{where_text(location)}")
        new_leaves, _ = flatten(new, lambda v: not isinstance(v, (list, tuple, dict)))
        return [as_tensor(v) for v in new_leaves]

    what = "while_loop"
    captured: list[Tensor] = []
    loop_body, _, inits = _trace_states(step, [], inits, captured, what, location)
    test, _ = trace(lambda *params: call(cond, params), [(t.aval, f"state{k}") for k, t in enumerate(inits)],
                    captured, len(inits), what, location)
    if len(test.outputs) != 1:
        raise ArgumentError(f"while_loop: cond must return one bool scalar, it returns {len(test.outputs)} values"
                            f"{where_text(location)}")
    n_state = len(inits)
    node = make_node("loop", [*inits, *captured], name=what, body=loop_body, cond=test, has_trip=False, n_seq=0,
                      n_state=n_state, length=bound, reverse=False, stacked=("",) * n_state, labels=tuple(labels),
                      what=what)
    return rebuild_vars([part(node, j) for j in range(n_state)])


def _structure(value: Any) -> Any:
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _structure(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):  # a list and a tuple of the same items are the same structure
        return ("sequence", tuple(_structure(v) for v in value))
    return "leaf"


def _describe_structure(value: Any) -> str:
    if isinstance(value, dict):
        return "a dict with keys " + ", ".join(map(repr, value))
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    return "one tensor" if isinstance(value, Tensor) else f"a {type(value).__name__}"


__all__ = ["scan", "while_loop"]
