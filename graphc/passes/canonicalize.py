"""The canonicalize phase: constant folding, common-subexpression elimination, algebraic
identities that are exact in IEEE arithmetic, collapsing reshape/transpose/broadcast chains and
removing casts that change nothing.

The identities change no result, not even by rounding: each holds for every input, inf, nan and -0.0
included.  (``x * 0 -> 0`` is not among them: inf * 0 is nan.  ``x + 0 -> x`` is not either: -0.0 + 0.0
is +0.0; ``x - 0 -> x`` and ``x + (-0.0) -> x`` are exact.)  Two restructurings are not bit for bit:
``sum_of_products`` adds the same products in another order and ``placement_sum`` keeps a -0.0 that a
sum with zeros made +0.0.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.ir.body import Body
from graphc.ir.build import constant
from graphc.ir.shapes import is_static
from graphc.ir.tensor import Tensor
from graphc.ops import elementwise as ew
from graphc.ops._common import make_node
from graphc.ops.like import sum_to_axes
from graphc.ops.linalg import flags, matmul_flags
from graphc.passes.engine import Rewrite, RewriteLog, RewriteRecord, made_by, producer
from graphc.passes.patterns import broadcasts_into, constant_value, is_constant

PHASE = "canonicalize"
FOLD_LIMIT = 1 << 16  # elements: larger results stay computed at run time rather than stored in the graph

_NOT_FOLDABLE = ("placeholder", "variable", "constant", "parameter", "fused", "kernel_output", "group")


def _fold(node: Tensor) -> Tensor | None:
    """An op whose inputs are all constants becomes a constant (stateful ops and ops with several outputs
    never)."""
    if node.op in _NOT_FOLDABLE or node.opdef.stateful or not node.inputs or node.parts is not None:
        return None
    values = [constant_value(i) for i in node.inputs]
    if any(v is None for v in values) or not is_static(node.shape) or int(np.prod(node.shape)) > FOLD_LIMIT:
        return None
    with np.errstate(all="ignore"):
        try:
            result = node.opdef.reference(*values, **node.attrs)
        except Exception:  # a fault is reported when the graph runs, with the user's line
            return None
    return constant(np.asarray(result, node.dtype), dtype=node.dtype)


def _fold_shape_only(node: Tensor) -> Tensor | None:
    """Ops that read only their like input's *shape* need no run-time value once that shape is known."""
    like = node.inputs[-1]
    if not is_static(like.shape):
        return None
    if node.op == "fill_like":
        scalar = constant(np.asarray(node.attrs["value"], node.dtype), dtype=node.dtype)
        return make_node("broadcast_to", [scalar], shape=like.shape) if like.shape else scalar
    x = node.inputs[0]
    if node.op == "broadcast_like":
        return make_node("broadcast_to", [x], shape=like.shape)
    if node.op == "reshape_like":
        return make_node("reshape", [x], shape=like.shape)
    if node.op == "sum_to" and is_static(x.shape):
        axes = sum_to_axes(x.shape, like.shape)  # type: ignore[arg-type]
        summed = make_node("sum", [x], axes=axes, keepdims=True) if axes else x
        return make_node("reshape", [summed], shape=like.shape)
    return None


def _same_as(x: Tensor, node: Tensor) -> Tensor | None:
    return x if x.shape == node.shape and x.dtype == node.dtype else None


def _identity_operand(node: Tensor) -> Tensor | None:
    """x * 1, 1 * x, x / 1, x - 0, x + (-0.0), integer x + 0, x ** 1 -> x; x * -1 -> -x; x ** 2 -> square(x)."""
    a, b = node.inputs
    floating = node.dtype.kind == "f"
    if node.op == "multiply":
        for x, c in ((a, b), (b, a)):
            if broadcasts_into(c, x):
                if is_constant(c, 1):
                    return _same_as(x, node)
                if is_constant(c, -1) and node.dtype.kind in "fi":
                    return ew.neg(x)
    if node.op == "divide" and is_constant(b, 1) and broadcasts_into(b, a):
        return _same_as(a, node)
    if node.op == "subtract" and is_constant(b, 0) and broadcasts_into(b, a):
        return _same_as(a, node)
    if node.op == "add":
        for x, c in ((a, b), (b, a)):
            zero = is_constant(c, -0.0) if floating else is_constant(c, 0)
            if zero and broadcasts_into(c, x):
                return _same_as(x, node)
    if node.op == "power" and broadcasts_into(b, a):
        if is_constant(b, 1):
            return _same_as(a, node)
        if is_constant(b, 2):
            return ew.square(a)
    return None


def _involution(node: Tensor) -> Tensor | None:
    """-(-x) -> x; not(not(x)) -> x for bool x; abs(abs(x)) and abs(-x) -> abs(x)."""
    (x,) = node.inputs
    if node.op == "neg" and made_by(x, "neg"):
        return x.inputs[0]
    if node.op == "logical_not" and made_by(x, "logical_not") and x.inputs[0].dtype.kind == "b":
        return x.inputs[0]
    if node.op == "abs" and made_by(x, "abs", "neg"):
        return ew.abs(x.inputs[0]) if x.op == "neg" else x
    return None


def _hoist_negation(node: Tensor) -> Tensor | None:
    """(-a) * b -> -(a * b): exact (rounding is symmetric in sign), and it exposes hand-written
    cross-entropies to the stabilize phase.  (sum(-x) -> -sum(x) is *not* exact: sum(-[1, -1])
    is +0.0 but -sum([1, -1]) is -0.0; the cross-entropy rewrite looks through that neg instead.)"""
    if node.op == "multiply" and node.dtype.kind == "f":
        a, b = node.inputs
        for n, o in ((a, b), (b, a)):
            if made_by(n, "neg") and n is not o:
                return ew.neg(make_node("multiply", [n.inputs[0], o]))
    return None


def _lossless(source: np.dtype, target: np.dtype) -> bool:
    """Every value of ``source`` survives a cast to ``target`` unchanged.  (NumPy's "safe" casting
    allows int64 -> float64, which rounds integers above 2**53.)"""
    if source.kind in "iu" and target.kind == "f":
        return np.iinfo(source).bits - (source.kind == "i") <= np.finfo(target).nmant + 1
    return bool(np.can_cast(source, target, casting="safe"))


def _cast(node: Tensor) -> Tensor | None:
    """cast to the same dtype -> x; cast(cast(x, B), C) -> cast(x, C) when x -> B loses nothing."""
    (x,) = node.inputs
    if x.dtype == node.dtype:
        return x
    inner = producer(x, "cast")
    if inner is not None and _lossless(inner.inputs[0].dtype, inner.dtype):
        source = inner.inputs[0]
        return source if source.dtype == node.dtype else make_node("cast", [source], dtype=node.dtype)
    return None


_KEEPDIMS_REDUCTIONS = ("sum", "mean", "prod", "max", "min")


def _shape_chain(node: Tensor) -> Tensor | None:
    """Collapse reshape(reshape), transpose(transpose), broadcast_to(broadcast_to); drop no-op shape ops; a
    reshape that drops the axes a reduction kept (``reshape(sum(x, keepdims=True))``) is the reduction
    without them."""
    (x,) = node.inputs
    if node.op == "reshape":
        if is_static(x.shape) and x.shape == node.shape:
            return x
        if made_by(x, "reshape", "reshape_dims") and is_static(node.shape):
            return make_node("reshape", [x.inputs[0]], shape=node.shape)
        if made_by(x, *_KEEPDIMS_REDUCTIONS) and x.attrs.get("keepdims") and is_static(node.shape):
            kept = set(x.attrs["axes"])
            if node.shape == tuple(d for k, d in enumerate(x.shape) if k not in kept):
                return make_node(x.op, list(x.inputs), **{**x.attrs, "keepdims": False})
    if node.op == "transpose":
        perm = node.attrs["perm"]
        if perm == tuple(range(len(perm))):
            return x
        if made_by(x, "transpose"):
            combined = tuple(x.attrs["perm"][p] for p in perm)
            return make_node("transpose", [x.inputs[0]], perm=combined)
    if node.op == "broadcast_to":
        if x.shape == node.shape:
            return x
        if made_by(x, "broadcast_to"):
            return make_node("broadcast_to", [x.inputs[0]], shape=node.shape)
    if node.op == "reshape_dims" and made_by(x, "reshape_dims") and x.attrs["axis"] == node.attrs["axis"] \
            and x.attrs["kind"] != node.attrs["kind"]:
        return x.inputs[0]
    if node.op in ("prod", "max", "min") and not node.attrs["axes"] and node.dtype == x.dtype:
        return x  # (not sum or mean: over no axes they add x to 0, and -0.0 + 0 is +0.0)
    if node.op == "slice" and all(e == ("slice", None, None, None) for e in node.attrs["index"]):
        return x
    return None


def _transpose_into_matmul(node: Tensor) -> Tensor | None:
    """matmul(transpose(x), y) -> matmul(x, y, transpose_a=True) when the transpose swaps only the last
    two axes (and likewise for y, and a flag already set is cleared): the product reads the operand with
    swapped strides instead of from a transposed copy.  Exact: the same products and sums."""
    operands, transposed, changed = list(node.inputs), list(matmul_flags(node)), False
    for i, t in enumerate(node.inputs):
        n = t.ndim
        if n >= 2 and made_by(t, "transpose") and t.attrs["perm"] == (*range(n - 2), n - 1, n - 2):
            operands[i], transposed[i], changed = t.inputs[0], not transposed[i], True
    return make_node("matmul", operands, **flags(*transposed)) if changed else None


def _sum_of_products(node: Tensor) -> Tensor | None:
    """sum over axis 0 of a stack of products a_t^T b_t -> one product of the stacked rows, reshape(a)^T
    reshape(b), with all the rows at once (a weight's gradient over the steps of a loop or a batch of
    matrices: one large product instead of many small ones and a sum).  The same products and sums, in
    another order."""
    p = producer(node.inputs[0], "matmul")
    if p is None or node.attrs["axes"] != (0,) or matmul_flags(p) != (True, False):
        return None
    a, b = p.inputs
    if a.ndim != 3 or b.ndim != 3 or not is_static(a.shape) or not is_static(b.shape) \
            or a.shape[:2] != b.shape[:2]:
        return None
    rows = a.shape[0] * a.shape[1]
    product = make_node("matmul", [make_node("reshape", [a], shape=(rows, a.shape[2])),
                                   make_node("reshape", [b], shape=(rows, b.shape[2]))], **flags(True, False))
    return make_node("reshape", [product], shape=node.shape) if node.attrs["keepdims"] else product


def _where_same(node: Tensor) -> Tensor | None:
    """where(c, x, x) -> x when c does not widen the shape (provably: an unknown dim of c could
    be larger than x's at run time)."""
    c, a, b = node.inputs
    return _same_as(a, node) if a is b and broadcasts_into(c, a) else None


Placement = tuple[int, list[tuple[int, int, Tensor | None]]]
"""A value that is zero but for pieces along one axis: (axis, [(start, stop, piece or None for zeros)])."""


def _is_zero(t: Tensor) -> bool:
    """``t`` is +0 everywhere: a constant, or a constant broadcast (as :func:`_placement_sum` fills gaps)."""
    b = producer(t, "broadcast_to")
    return is_constant(b.inputs[0] if b is not None else t, 0)


def _placement(t: Tensor, shape: tuple[int, ...]) -> Placement | None:
    """``t`` (of static ``shape``) as pieces along one axis: a ``slice_grad`` of a step-1 range of one axis
    (every other entry ``:``), or a ``concat``."""
    sg = producer(t, "slice_grad")
    if sg is not None:
        index = sg.attrs["index"]
        if any(e[0] != "slice" or e[3] not in (None, 1) for e in index) or len(index) != len(shape):
            return None
        ranged = [(k, *slice(e[1], e[2]).indices(shape[k])[:2]) for k, e in enumerate(index)
                  if e[1] is not None or e[2] is not None]
        if len(ranged) != 1:
            return None
        axis, start, stop = ranged[0]
        return axis, [(start, stop, sg.inputs[0])] if start < stop else []
    c = producer(t, "concat")
    if c is not None and all(is_static(x.shape) for x in c.inputs):
        axis, pieces, start = c.attrs["axis"] % len(shape), [], 0
        for x in c.inputs:
            stop = start + x.shape[axis]
            if not _is_zero(x):
                pieces.append((start, stop, x))
            start = stop
        return axis, pieces
    return None


def _placement_sum(node: Tensor) -> Tensor | None:
    """a + b of two values that are zero but for disjoint pieces along one axis (the ``slice_grad`` s of
    slices of one tensor, as a gradient sums them: an LSTM's four gates) -> one ``concat`` of the pieces,
    zeros filling the gaps: one write of the result instead of a zero-padded copy per piece and a sum.
    Exact but for the sign of a zero: a -0.0 in a piece stays -0.0 (the sum made it -0.0 + 0.0 = +0.0)."""
    shape = node.shape
    if node.dtype.kind != "f" or not is_static(shape) or not shape:
        return None
    a, b = node.inputs
    if a.shape != shape or b.shape != shape or a.dtype != node.dtype or b.dtype != node.dtype:
        return None
    pa, pb = _placement(a, shape), _placement(b, shape)  # type: ignore[arg-type]
    if pa is None or pb is None or pa[0] != pb[0]:
        return None
    axis = pa[0]
    pieces = sorted(pa[1] + pb[1], key=lambda piece: piece[0])
    if any(p[1] > q[0] for p, q in itertools.pairwise(pieces)):
        return None
    parts, at = [], 0
    zero = constant(np.zeros((), node.dtype), dtype=node.dtype)
    for start, stop, piece in [*pieces, (shape[axis], shape[axis], None)]:
        if start > at:
            gap = list(shape)
            gap[axis] = start - at
            parts.append(make_node("broadcast_to", [zero], shape=tuple(gap)))
        if piece is not None:
            parts.append(piece)
        at = stop
    return parts[0] if len(parts) == 1 else make_node("concat", parts, axis=axis)


REWRITES: list[Rewrite] = [
    Rewrite("constant_fold", PHASE, (), _fold, "evaluate ops whose inputs are all constants"),
    Rewrite("fold_static_shape", PHASE, ("fill_like", "broadcast_like", "reshape_like", "sum_to"),
            _fold_shape_only, "like-ops whose like input has a static shape become plain shape ops or constants"),
    Rewrite("identity_operand", PHASE, ("multiply", "divide", "subtract", "add", "power"), _identity_operand,
            "x*1, x/1, x-0, x+(-0.0), x**1 -> x; x*-1 -> -x; x**2 -> square(x)"),
    Rewrite("involution", PHASE, ("neg", "logical_not", "abs"), _involution,
            "-(-x) -> x, not(not(x)) -> x, abs(abs(x)) and abs(-x) -> abs(x)"),
    Rewrite("hoist_negation", PHASE, ("multiply",), _hoist_negation, "(-a)*b and a*(-b) -> -(a*b)"),
    Rewrite("cast_chain", PHASE, ("cast",), _cast, "drop casts to the same dtype; collapse lossless cast chains"),
    Rewrite("shape_chain", PHASE, ("reshape", "transpose", "broadcast_to", "reshape_dims", "prod", "max", "min",
                                   "slice"), _shape_chain,
            "collapse chains of shape ops; drop shape ops and reductions that change nothing"),
    Rewrite("transpose_into_matmul", PHASE, ("matmul",), _transpose_into_matmul,
            "matmul(transpose(x), y) -> matmul(x, y, transpose_a=True) (a swap of the last two axes)"),
    Rewrite("where_same_branches", PHASE, ("where",), _where_same, "where(c, x, x) -> x"),
    Rewrite("placement_sum", PHASE, ("add",), _placement_sum,
            "slice_grad(a) + slice_grad(b) of disjoint ranges of one axis -> concat of a, b and zeros"),
    Rewrite("sum_of_products", PHASE, ("sum",), _sum_of_products,
            "sum over axis 0 of matmul(a, b, transpose_a) of stacks -> one matmul of the stacked rows"),
]


# ---- common-subexpression elimination (a whole-graph pass) ---------------------------------------

def _attr_key(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, np.dtype):
        return ("dtype", value.str)
    if isinstance(value, (tuple, list)):
        return tuple(_attr_key(v) for v in value)
    if isinstance(value, float):
        return ("float", value.hex())  # 0.0 == -0.0 in Python, but they are different attributes
    if isinstance(value, (int, str, bool, type(None))):
        return (type(value).__name__, value)
    if isinstance(value, Body):  # by structure: the same loop optimised twice (for a gradient, then) is one loop
        positions = {n.id: k for k, n in enumerate(value.nodes)}
        return ("body", tuple((n.op, tuple(positions[i.id] for i in n.inputs), n.weak, n.dtype.str, tuple(n.shape),
                               tuple(sorted((k, _attr_key(v)) for k, v in n.attrs.items()))) for n in value.nodes),
                tuple(positions[o.id] for o in value.outputs))
    return ("id", id(value))


def cse(outputs: Sequence[Tensor], log: RewriteLog, pinned: set[int] | None = None
        ) -> tuple[list[Tensor], dict[int, Tensor]]:
    """Merge nodes that compute the same op on the same inputs with the same attributes.

    Stateful ops, placeholders, Variables and ``pinned`` nodes are never merged; equal constants
    are.  Returns the new outputs and old node id -> new node.
    """
    pins = set(pinned or ())
    from graphc.ir.build import rebuild
    from graphc.ir.graph import topological_order

    seen: dict[Any, Tensor] = {}
    memo: dict[int, Tensor] = {}
    for node in topological_order(outputs):
        new = rebuild(node, [memo[i.id] for i in node.inputs])
        if node.id in pins:
            pins.add(new.id)
        elif not (new.opdef.stateful or new.op in ("placeholder", "variable", "parameter")):
            key = (new.op, tuple(i.id for i in new.inputs), new.weak,
                   tuple(sorted((k, _attr_key(v)) for k, v in new.attrs.items())))
            if key in seen:
                kept = seen[key]
                log.records.append(RewriteRecord("cse", PHASE, new.op, new.name, new.location, kept.name))
                new = kept
            else:
                seen[key] = new
        memo[node.id] = new
    if pinned is not None:
        pinned |= pins  # rebuilt pinned nodes stay pinned for the phases that follow
    return [memo[o.id] for o in outputs], memo


__all__ = ["PHASE", "REWRITES", "cse"]
