"""Symbolic reverse-mode differentiation: ``gc.grad`` builds gradient graphs out of ordinary ops.

Each differentiable op carries its vector-Jacobian rule (``OpDef.grad``) in its registration
block.  ``grad`` walks the graph from the output back towards the requested inputs, calls those
rules and adds up the contributions.  The result is plain graph nodes, so gradients are compiled
like anything else and can be differentiated again.

Names follow ``tf.gradients``: each call opens a new scope ``gradients`` (``gradients_1``, ...)
under the caller's name scope, and the backward work of forward node ``n`` is built in
``<that scope>/<n.name>_grad``: ``gradients/layer1/matmul_grad/transpose``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graphc.errors import ArgumentError, DTypeError, GraphError, ShapeError
from graphc.ir.build import annotate, as_tensor, where_text
from graphc.ir.graph import topological_order
from graphc.ir.location import user_location
from graphc.ir.scope import enter_scope, scoped
from graphc.ir.shapes import dims_equal, format_shape
from graphc.ir.tensor import Tensor, unique_name
from graphc.ops.like import broadcast_like, fill_like, sum_to, zeros_like


def _check_differentiable_target(x: Any, i: int) -> Tensor:
    location = user_location()
    if not isinstance(x, Tensor):
        raise ArgumentError(f"grad: xs[{i}] is {type(x).__name__}, expected a tensor{where_text(location)}")
    if x.dtype.kind != "f":
        raise DTypeError(f"grad: cannot differentiate with respect to {x.describe()}: it has integer or bool "
                         f"dtype {x.dtype.name}; only floating-point tensors have gradients{where_text(location)}")
    return x


def _seed(y: Tensor, grad_ys: Any) -> Tensor:
    location = user_location()
    if grad_ys is None:
        if y.shape != ():
            raise ShapeError(f"grad: y {y.describe()} is not a scalar; pass grad_ys (a seed of y's shape) "
                             f"to differentiate a non-scalar{where_text(location)}")
        return fill_like(y, 1)
    seed = as_tensor(grad_ys)
    if len(seed.shape) != len(y.shape) or not all(dims_equal(a, b) for a, b in zip(seed.shape, y.shape)):
        raise ShapeError(f"grad: grad_ys has shape {format_shape(seed.shape)}, y has {format_shape(y.shape)}"
                         f"{where_text(location)}")
    if seed.dtype != y.dtype:
        from graphc.ops.elementwise import cast

        seed = cast(seed, y.dtype)
    return seed


def grad(y: Tensor, xs: Tensor | Sequence[Tensor], grad_ys: Any = None) -> Any:
    """Gradients of ``y`` with respect to each of ``xs``, as graph tensors of the shapes of ``xs``.

    ``y`` must be a floating-point scalar, or give ``grad_ys`` (the gradient with respect to ``y``,
    of ``y``'s shape) to compute a vector-Jacobian product.  ``xs`` may be placeholders,
    Variables or any intermediate tensors; a list gives a list, a single tensor a single tensor.
    An ``x`` that ``y`` does not depend on gets zeros.  Gradients do not flow through
    ``stop_gradient``, integer or bool tensors, or non-differentiable ops (comparisons, argmax,
    floor, round, casts to integers), which contribute zero.
    """
    location = user_location()
    if not isinstance(y, Tensor):
        raise ArgumentError(f"grad: y must be a tensor, got {type(y).__name__}{where_text(location)}")
    if y.dtype.kind != "f":
        raise DTypeError(f"grad: y {y.describe()} must be floating point, got {y.dtype.name}{where_text(location)}")
    single = isinstance(xs, Tensor)
    targets = [_check_differentiable_target(x, i) for i, x in enumerate([xs] if single else list(xs))]
    grad_scope = unique_name(scoped("gradients"), sanitize=False)
    with enter_scope(grad_scope):
        seed = _seed(y, grad_ys)
    stable_y, stable_targets = _stabilized(y, targets)
    adjoints = backpropagate(stable_y, seed, stable_targets, grad_scope)
    with enter_scope(grad_scope):
        results = [adjoints.get(s.id) if adjoints.get(s.id) is not None else zeros_like(x)
                   for x, s in zip(targets, stable_targets)]
    return results[0] if single else results


def _stabilized(y: Tensor, targets: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """``y`` after the canonicalize and stabilize phases, and where each target is in that graph.

    Differentiating the stable form is what makes the *gradient* of a naive formula stable too:
    the gradient of log(sigmoid(x)) at x = -300 is 1 (as the derivative of -softplus(-x)), where
    differentiating the naive form divides 0 by 0.  Targets that are intermediate tensors are
    pinned: rewrites neither remove them nor look through them.
    """
    from graphc.passes.engine import RewriteLog
    from graphc.passes.pipeline import run_phases

    pinned = {t.id for t in targets if t.op not in ("placeholder", "variable", "constant")}
    (stable_y,), mapping = run_phases([y], ("canonicalize", "stabilize"), RewriteLog(), pinned=pinned)
    return stable_y, [mapping.get(t.id, t) for t in targets]


def backpropagate(ys: Tensor | Sequence[Tensor], seeds: Tensor | Sequence[Tensor], targets: Sequence[Tensor],
                  grad_scope: str = "") -> dict[int, Tensor]:
    """The summed gradient of every node between ``targets`` and ``ys``, keyed by node id, where ``seeds``
    are the gradients with respect to ``ys`` (one each; several ``ys`` give a vector-Jacobian product of
    all of them at once, as a loop body's step needs).

    The backward work of each node ``n`` (the sum of what flows into it, its gradient rule, undoing
    broadcasting) is built in the name scope ``<grad_scope>/<n.name>_grad``.  An op with several outputs
    (``Tensor.parts``: a loop, a conditional) gets the gradient of each output it has (``None`` for one
    nothing depends on) as a list, from the ``part`` nodes that read them.
    """
    ys = [ys] if isinstance(ys, Tensor) else list(ys)
    seeds = [seeds] if isinstance(seeds, Tensor) else list(seeds)
    prefix = f"{grad_scope}/" if grad_scope else ""
    order = topological_order(ys)
    target_ids = {t.id for t in targets}
    # only nodes that depend on a target can carry a gradient to one
    depends: set[int] = set()
    for node in order:
        if node.id in target_ids or any(i.id in depends for i in node.inputs):
            depends.add(node.id)
    contributions: dict[int, Any] = {}  # node id -> its gradients (per output index for a multi-output node)
    for y, seed in zip(ys, seeds):
        contributions.setdefault(y.id, []).append(seed)
    adjoints: dict[int, Tensor] = {}
    for node in reversed(order):
        parts = contributions.pop(node.id, None)
        if not parts or node.id not in depends:
            continue
        with enter_scope(f"{prefix}{node.name}_grad"):
            _backward_step(node, parts, depends, contributions, adjoints)
    return adjoints


def _backward_step(node: Tensor, parts: Any, depends: set[int], contributions: dict[int, Any],
                   adjoints: dict[int, Tensor]) -> None:
    """Sum ``node``'s incoming gradients and hand each input its contribution."""
    if node.parts is not None:  # several outputs: one summed gradient per output, None where none came
        g: Any = [add_all(parts[k]) if k in parts else None for k in range(len(node.parts))]
    else:
        g = adjoints[node.id] = add_all(parts)
    if node.op == "part":  # an output of a multi-output node: its gradient goes to that output
        source = node.inputs[0]
        if source.id in depends and node.dtype.kind == "f":
            contributions.setdefault(source.id, {}).setdefault(node.attrs["index"], []).append(g)
        return
    rule = node.opdef.grad
    if rule is None or not node.opdef.differentiable:
        return
    try:
        input_grads = rule(node, g)
    except (ShapeError, DTypeError, ArgumentError, GraphError) as exc:
        raise annotate(exc, f"gradient of {node.op}", node.inputs, node.location) from None
    for inp, gi in zip(node.inputs, input_grads):
        if gi is None or inp.id not in depends or inp.dtype.kind != "f":
            continue
        if node.opdef.family == "elementwise":
            gi = sum_to(gi, inp)  # undo broadcasting (a no-op when the shapes are known equal)
        contributions.setdefault(inp.id, []).append(gi)


def add_all(parts: Sequence[Tensor]) -> Tensor:
    """The sum of one or more tensors."""
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


__all__ = ["backpropagate", "broadcast_like", "grad"]
