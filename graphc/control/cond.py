"""``gc.cond``: run one of two branch functions, chosen by a bool scalar when the graph runs.

The ``cond`` node's inputs are the predicate and the tensors the branches read (captured: see
graphc/control/body.py); its attributes the two traced branches, whose outputs must agree in number,
dtype and shape.  Only the taken branch runs.  Its gradient is another ``cond`` on the same predicate whose
branches are the vector-Jacobian products of the two branches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.autodiff import backpropagate
from graphc.control.body import Body, as_tensors, body_avals, capture, evaluate_body, inline, trace
from graphc.control.part import part
from graphc.errors import ArgumentError, DTypeError, ShapeError
from graphc.ir.build import as_tensor, make_node
from graphc.ir.location import user_location, where_text
from graphc.ir.registry import AbstractValue, OpDef, register
from graphc.ir.shapes import dims_equal, format_shape
from graphc.ir.tensor import Tensor, id_watermark
from graphc.nest import flatten
from graphc.ops.elementwise import cast
from graphc.ops.like import zeros_like


def _is_leaf(value: Any) -> bool:
    return not isinstance(value, (list, tuple, dict))


def _agree(k: int, a: AbstractValue, b: AbstractValue) -> AbstractValue:
    """The type of output ``k`` of both branches (dims only one branch knows become unknown)."""
    shown = (f"true branch gives {a.dtype.name}{format_shape(a.shape)}, "
             f"false branch {b.dtype.name}{format_shape(b.shape)}")
    if a.dtype != b.dtype:
        raise DTypeError(f"cond: output {k} differs between the branches: {shown}")
    if len(a.shape) != len(b.shape) or not all(dims_equal(x, y) for x, y in zip(a.shape, b.shape)):
        raise ShapeError(f"cond: output {k} differs between the branches: {shown}")
    return AbstractValue(a.dtype, tuple(x if x == y else None for x, y in zip(a.shape, b.shape)))


def _infer_cond(inputs: Sequence[AbstractValue], *, true_body: Body, false_body: Body) -> AbstractValue:
    pred, captured = inputs[0], list(inputs[1:])
    if pred.dtype.kind != "b" or pred.shape != ():
        raise DTypeError(f"cond: the predicate must be a bool scalar, got {pred.dtype.name}{format_shape(pred.shape)}")
    if len(true_body.outputs) != len(false_body.outputs) or not true_body.outputs:
        raise ArgumentError(f"cond: the branches give {len(true_body.outputs)} and {len(false_body.outputs)} "
                            f"outputs; they must give the same number, at least one")
    true_avals, false_avals = body_avals(true_body, captured), body_avals(false_body, captured)
    parts = tuple(_agree(k, true_avals[a.id], false_avals[b.id])
                  for k, (a, b) in enumerate(zip(true_body.outputs, false_body.outputs)))
    return AbstractValue(parts[0].dtype, parts[0].shape, parts=parts)


def _cond_reference(pred: np.ndarray, *captured: np.ndarray, true_body: Body, false_body: Body) -> tuple[Any, ...]:
    taken = true_body if bool(pred) else false_body
    avals = body_avals(taken, [AbstractValue(a.dtype, a.shape) for a in captured])
    return tuple(evaluate_body(taken, avals, captured))


def _cond_grad(node: Tensor, g: list[Tensor | None]) -> list[Tensor | None]:
    pred, captured = node.inputs[0], list(node.inputs[1:])
    wanted = [k for k, gk in enumerate(g) if gk is not None]
    targets = [c for c, t in enumerate(captured) if t.dtype.kind == "f"]
    if not wanted or not targets:
        return [None] * len(node.inputs)
    seeds = [g[k] for k in wanted]

    def branch_vjp(body: Body) -> Callable[..., list[Tensor]]:
        def vjp(*params: Tensor) -> list[Tensor]:
            outs = inline(body, params)
            adjoint = backpropagate([outs[k] for k in wanted], seeds, params)
            return [adjoint.get(params[c].id) if adjoint.get(params[c].id) is not None else zeros_like(params[c])
                    for c in targets]
        return vjp

    new_captured = list(captured)
    bodies = [trace(branch_vjp(b), [], new_captured, 0, "the gradient of cond", node.location, pass_captured=True)[0]
              for b in (node.attrs["true_body"], node.attrs["false_body"])]
    grad = make_node("cond", [pred, *new_captured], name=f"{node.name.rsplit('/', 1)[-1]}_grad",
                     true_body=bodies[0], false_body=bodies[1])
    grads: list[Tensor | None] = [None] * len(node.inputs)
    for k, c in enumerate(targets):
        grads[1 + c] = part(grad, k)
    return grads


register(OpDef("cond", "control", _infer_cond, _cond_reference, num_inputs=None, grad=_cond_grad,
               doc="runs attrs['true_body'] or attrs['false_body'] as the bool scalar input 0 says (gc.cond)"))


def cond(pred: Any, true_fn: Callable[[], Any], false_fn: Callable[[], Any]) -> Any:
    """``true_fn()`` if the bool scalar ``pred`` is true when the graph runs, else ``false_fn()``
    (TensorFlow 1.x's ``tf.cond``).  Only the branch taken runs.

    Both functions take no arguments (they read any tensor they need) and return the same structure (a
    tensor, or a nested list / tuple / dict of them) with the same dtypes and shapes; a bare Python number
    takes the dtype of the other branch's value.  Differentiable with ``gc.grad``.
    """
    location = user_location()
    predicate = as_tensor(pred)
    if predicate.dtype.kind != "b" or predicate.shape != ():
        raise DTypeError(f"cond: pred must be a bool scalar, got {predicate.describe()}{where_text(location)}")
    if not callable(true_fn) or not callable(false_fn):
        raise ArgumentError(f"cond: true_fn and false_fn must be functions taking no arguments{where_text(location)}")
    marks = [id_watermark()]
    results = []
    for fn in (true_fn, false_fn):
        results.append(fn())
        marks.append(id_watermark())
    flat = [flatten(r, _is_leaf) for r in results]
    structures = [f[1](list(range(len(f[0])))) for f in flat]
    if len(flat[0][0]) != len(flat[1][0]) or repr(structures[0]) != repr(structures[1]):
        raise ArgumentError(f"cond: the branches return different structures ({_shown(results[0])} and "
                            f"{_shown(results[1])}){where_text(location)}")
    if not flat[0][0]:
        raise ArgumentError(f"cond: the branches return nothing{where_text(location)}")
    outs = [as_tensors(f[0], "cond", location) for f in flat]
    for k, (a, b) in enumerate(zip(*outs)):  # a bare number takes the other branch's dtype
        if a.weak and not b.weak and a.dtype != b.dtype:
            outs[0][k] = cast(a, b.dtype)
        elif b.weak and not a.weak and a.dtype != b.dtype:
            outs[1][k] = cast(b, a.dtype)
    captured: list[Tensor] = []
    bodies = [capture(o, [], captured, 0, "cond", location, built=(marks[k], marks[k + 1]))
              for k, o in enumerate(outs)]
    node = make_node("cond", [predicate, *captured], name="cond", true_body=bodies[0], false_body=bodies[1])
    return flat[0][1]([part(node, k) for k in range(len(outs[0]))])


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, dict):
        return "a dict"
    return "one value"


__all__ = ["cond"]
