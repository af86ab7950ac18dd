"""Bodies: the graphs that control-flow ops run (a loop's step, a branch of a conditional).

A :class:`Body` is built by tracing the user's Python function once on ``parameter`` nodes
(:func:`trace`).  Whatever the function reads that does not depend on those parameters (a Variable, a
placeholder, a tensor built outside, or work inside the function that is the same on every step) is not
part of the body: it is *captured*, computed once outside the loop and read through a parameter of its
own.  So loop-invariant work is hoisted out of every body by construction, and a body refers to nothing
but its parameters.

A body is run by binding its parameters to values: :func:`evaluate_body` (NumPy, the reference) or
:func:`inline` (as graph nodes, e.g. to differentiate one step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.errors import ArgumentError, GraphError
from graphc.ir.body import Body
from graphc.ir.build import as_tensor, make_node, rebuild
from graphc.ir.graph import topological_order
from graphc.ir.interpret import evaluate
from graphc.ir.location import SourceLocation, where_text
from graphc.ir.registry import AbstractValue
from graphc.ir.tensor import Tensor
from graphc.ops.kernel import inner_avals


def parameter(index: int, aval: AbstractValue, name: str) -> Tensor:
    """Input ``index`` of a body being traced."""
    weak = {"weak": True} if aval.weak else {}  # a bare Python number: the body's ops promote it as NumPy would
    return make_node("parameter", [], name=name, index=index, dtype=aval.dtype, shape=tuple(aval.shape), **weak)


def as_tensors(values: Any, what: str, location: SourceLocation | None) -> list[Tensor]:
    """A function's results as a list of tensors (a tensor, a number or array, or a list or tuple of them)."""
    items = list(values) if isinstance(values, (list, tuple)) else [values]
    tensors = []
    for k, value in enumerate(items):
        try:
            tensors.append(as_tensor(value))
        except Exception:
            raise ArgumentError(f"{what}: result {k} is {type(value).__name__}, expected a tensor"
                                f"{where_text(location)}") from None
    return tensors


def trace(fn: Callable[..., Any], args: Sequence[tuple[AbstractValue, str]], captured: list[Tensor], offset: int,
          what: str, location: SourceLocation | None, pass_captured: bool = False) -> tuple[Body, Any]:
    """Call ``fn`` on one parameter per ``(aval, name)`` in ``args`` (indices 0, 1, ...); return the body of
    what it computes and its raw result.  Tensors it reads that do not depend on those parameters are
    appended to ``captured`` (shared between the bodies of one op, so each is captured once) and read
    through parameter ``offset + their position in captured``.  ``pass_captured``: ``fn`` also gets a
    parameter for each tensor already in ``captured`` (after the others), to compute with them as inputs
    (e.g. to differentiate with respect to them) rather than as constants of the body."""
    params = [parameter(k, aval, name) for k, (aval, name) in enumerate(args)]
    bound = [parameter(offset + k, t.aval, f"captured_{_short(t)}") for k, t in enumerate(captured)] \
        if pass_captured else []
    result = fn(*params, *bound)
    outputs = as_tensors(result, what, location)
    return capture(outputs, [*params, *bound], captured, offset, what, location), result


def _short(t: Tensor) -> str:
    return t.name.rsplit("/", 1)[-1]


_SOURCES = ("parameter", "placeholder", "variable")  # read from outside even when a branch function makes them


def capture(outputs: Sequence[Tensor], params: Sequence[Tensor], captured: list[Tensor], offset: int, what: str,
            location: SourceLocation | None, built: tuple[int, int] | None = None) -> Body:
    """The body computing ``outputs`` from ``params``: every node that does not depend on them is captured,
    except (``built``: a range of node ids) the nodes built by the body's function, which stay in the body
    even if they depend on no parameter (a branch's work runs only when the branch is taken)."""
    order = topological_order(outputs)
    param_ids = {p.id for p in params}
    varying: set[int] = set(param_ids)
    for node in order:
        if any(i.id in varying for i in node.inputs) or (built is not None and built[0] <= node.id < built[1]
                                                         and node.op not in _SOURCES):
            varying.add(node.id)
            if node.opdef.stateful:
                raise GraphError(f"{what}: {node.describe()} changes a Variable inside a loop or branch body, which "
                                 f"graphc does not support; return the new value and assign it after the loop"
                                 f"{where_text(location)}")
    memo: dict[int, Tensor] = {p.id: p for p in params}
    positions = {t.id: k for k, t in enumerate(captured)}

    def captured_param(t: Tensor) -> Tensor:
        if not t.opdef.produces_value:
            raise GraphError(f"{what}: {t.describe()} has no value and cannot be used in a body{where_text(location)}")
        if t.id not in positions:
            positions[t.id] = len(captured)
            captured.append(t)
        return parameter(offset + positions[t.id], t.aval, f"captured_{_short(t)}")

    def inner(t: Tensor) -> Tensor:  # a node as the body sees it: its own, or a captured one's parameter
        if t.id not in memo:
            memo[t.id] = captured_param(t)
        return memo[t.id]

    for node in order:
        if node.id in varying and node.id not in memo:
            memo[node.id] = rebuild(node, [inner(i) for i in node.inputs])
    new_outputs = tuple(inner(o) for o in outputs)
    # every parameter node left is one of this body's: an outer body's parameter read here is captured
    body_params = tuple(n for n in topological_order(new_outputs) if n.op == "parameter")
    return Body(body_params, new_outputs)


def body_avals(body: Body, inputs: Sequence[AbstractValue]) -> dict[int, AbstractValue]:
    """The abstract value of every node of ``body`` when its inputs are ``inputs``."""
    return inner_avals(body, inputs)  # type: ignore[arg-type]  (a Body has a kernel's params and nodes)


def evaluate_body(body: Body, avals: dict[int, AbstractValue], arrays: Sequence[np.ndarray | None]
                  ) -> list[np.ndarray]:
    """The values of ``body``'s outputs for input ``arrays`` (NumPy), with its ``avals`` for those inputs."""
    sources = {p.id: arrays[p.attrs["index"]] for p in body.params}
    values = evaluate(body.nodes, avals, sources, {o.id for o in body.outputs})
    return [values[o.id] for o in body.outputs]  # type: ignore[misc]


def inline(body: Body, inputs: Sequence[Tensor]) -> list[Tensor]:
    """``body``'s outputs as graph nodes computed from ``inputs`` (one per body input)."""
    memo: dict[int, Tensor] = {p.id: inputs[p.attrs["index"]] for p in body.params}
    for node in body.nodes:
        if node.id not in memo:
            memo[node.id] = rebuild(node, [memo[i.id] for i in node.inputs])
    return [memo[o.id] for o in body.outputs]


__all__ = ["Body", "as_tensors", "body_avals", "capture", "evaluate_body", "inline", "parameter", "trace"]
