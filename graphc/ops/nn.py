"""Neural-network ops: the softmax family and cross-entropies (convolution and pooling: ``conv.py``).

All are computed stably: softmax and log_softmax subtract the row maximum, cross-entropies use
log_softmax / softplus forms, so logits of +-1000 neither overflow nor produce nan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc import dtypes
from graphc.errors import DTypeError, ExecutionError, ShapeError
from graphc.ir.registry import AbstractValue, OpDef, register
from graphc.ir.shapes import broadcast_shapes, dims_equal, format_shape, normalize_axes
from graphc.ir.tensor import Tensor
from graphc.ops._common import cast_to, float_dtype_for, make_node, promote, reporting, to_tensors
from graphc.ops.elementwise import DTypeRule, infer_elementwise
from graphc.ops.like import sum_to
from graphc.ops.reduce import stable_shift

# ---- softmax / log_softmax ----------------------------------------------------------------------


def _log_softmax(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    shifted = x - stable_shift(x, axes)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axes, keepdims=True))


def _softmax_reference(x: np.ndarray, *, axes: tuple[int, ...]) -> np.ndarray:
    e = np.exp(x - stable_shift(x, axes))
    return e / np.sum(e, axis=axes, keepdims=True)


def _log_softmax_reference(x: np.ndarray, *, axes: tuple[int, ...]) -> np.ndarray:
    return _log_softmax(x, axes)


def _infer_softmax(inputs: Sequence[AbstractValue], *, axes: tuple[int, ...]) -> AbstractValue:
    (x,) = inputs
    if x.dtype.kind != "f":
        raise DTypeError(f"expected a floating-point tensor, got {x.dtype.name}")
    return AbstractValue(x.dtype, x.shape)


def _softmax_grad(node: Tensor, g: Tensor) -> list[Any]:
    from graphc.ops.reduce import sum as reduce_sum

    return [(g - reduce_sum(g * node, axis=node.attrs["axes"], keepdims=True)) * node]


def _log_softmax_grad(node: Tensor, g: Tensor) -> list[Any]:
    from graphc.ops.reduce import sum as reduce_sum

    probabilities = make_node("softmax", [node.inputs[0]], axes=node.attrs["axes"])
    return [g - probabilities * reduce_sum(g, axis=node.attrs["axes"], keepdims=True)]


register(OpDef("softmax", "nn", _infer_softmax, _softmax_reference, num_inputs=1, grad=_softmax_grad,
               doc="exp(x) / sum(exp(x)) over axes, computed stably"))
register(OpDef("log_softmax", "nn", _infer_softmax, _log_softmax_reference, num_inputs=1, grad=_log_softmax_grad,
               doc="x - logsumexp(x) over axes, computed stably"))


def _softmax_like(name: str, x: Any, axis: Any) -> Tensor:
    def build() -> Tensor:
        (t,) = to_tensors([x])
        t = cast_to(t, float_dtype_for(t.dtype))
        if t.ndim == 0:
            raise ShapeError(f"{name} needs at least one axis, got a scalar")
        return make_node(name, [t], axes=normalize_axes(axis, t.ndim))

    return reporting(name, [x], build)


def softmax(x: Any, axis: Any = -1) -> Tensor:
    """``exp(x) / sum(exp(x), axis)``, stable for large logits."""
    return _softmax_like("softmax", x, axis)


def log_softmax(x: Any, axis: Any = -1) -> Tensor:
    """``x - logsumexp(x, axis)``, stable for large logits."""
    return _softmax_like("log_softmax", x, axis)


# ---- cross-entropies ----------------------------------------------------------------------------

def _infer_softmax_xent(inputs: Sequence[AbstractValue], *, sparse: bool) -> AbstractValue:
    logits, labels = inputs
    if logits.dtype.kind != "f":
        raise DTypeError(f"logits must be floating point, got {logits.dtype.name}")
    if not logits.shape:
        raise ShapeError("logits need a class axis (the last one), got a scalar")
    batch = logits.shape[:-1]
    if sparse:
        if labels.dtype.kind not in "iu":
            raise DTypeError(f"integer class labels expected, got {labels.dtype.name}")
        if len(labels.shape) != len(batch) or not all(dims_equal(a, b) for a, b in zip(labels.shape, batch)):
            hint = ("; integer labels are class ids, one per example (for one-hot or probability labels, "
                    "cast them to float)") if len(labels.shape) == len(logits.shape) else ""
            raise ShapeError(f"labels of shape {format_shape(labels.shape)} do not match logits "
                             f"{format_shape(logits.shape)}: expected {format_shape(batch)}{hint}")
        return AbstractValue(logits.dtype, tuple(d if d is not None else e for d, e in zip(batch, labels.shape)))
    if len(labels.shape) != len(logits.shape):
        raise ShapeError(f"probability labels of shape {format_shape(labels.shape)} must have the rank of "
                         f"logits {format_shape(logits.shape)}")
    try:
        full = broadcast_shapes(labels.shape, logits.shape)  # dense labels broadcast, as labels * log_softmax
    except ShapeError:
        raise ShapeError(f"probability labels of shape {format_shape(labels.shape)} do not broadcast with "
                         f"logits {format_shape(logits.shape)}") from None
    return AbstractValue(logits.dtype, full[:-1])


def _softmax_xent_reference(logits: np.ndarray, labels: np.ndarray, *, sparse: bool) -> np.ndarray:
    logp = _log_softmax(logits, (logits.ndim - 1,))
    if not sparse:
        return -np.sum(labels * logp, axis=-1)
    classes = logits.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        bad = labels[(labels < 0) | (labels >= classes)].flat[0]
        raise ExecutionError(f"class label {bad} is out of range for {classes} classes")
    return -np.take_along_axis(logp, labels[..., None].astype(np.intp), axis=-1)[..., 0]


def _softmax_xent_grad(node: Tensor, g: Tensor) -> list[Any]:
    from graphc.ops.reduce import sum as reduce_sum
    from graphc.ops.shape import expand_dims, one_hot

    logits, labels = node.inputs
    last = logits.ndim - 1
    probabilities = make_node("softmax", [logits], axes=(last,))
    per_example = expand_dims(g, -1)
    if node.attrs["sparse"]:
        classes = logits.shape[-1]
        if classes is None:
            raise ShapeError("the gradient of softmax_cross_entropy with integer labels needs the number of "
                             "classes (the logits' last dimension) to be known")
        return [per_example * (probabilities - one_hot(labels, classes, dtype=logits.dtype)), None]
    total = reduce_sum(labels, axis=-1, keepdims=True)  # 1 for proper distributions
    log_p = make_node("log_softmax", [logits], axes=(last,))
    # labels and logits may broadcast against each other: sum each gradient back to its input's shape
    return [sum_to(per_example * (probabilities * total - labels), logits), sum_to(-per_example * log_p, labels)]


register(OpDef("softmax_cross_entropy", "nn", _infer_softmax_xent, _softmax_xent_reference, num_inputs=2,
               grad=_softmax_xent_grad,
               doc="-log softmax(logits)[label] per example (or -sum(p * log_softmax) for dense labels)"))


def softmax_cross_entropy(logits: Any, labels: Any) -> Tensor:
    """Per-example cross-entropy of ``softmax(logits)`` (classes on the last axis) against ``labels``.

    ``labels`` are integer class ids of shape ``logits.shape[:-1]`` (out-of-range ids raise an
    ``ExecutionError`` at run time), or class probabilities of ``logits``' rank that broadcast with
    ``logits`` (as in ``-sum(labels * log_softmax(logits), -1)``).
    """

    def build() -> Tensor:
        lg, lb = to_tensors([logits, labels])
        lg = cast_to(lg, float_dtype_for(lg.dtype))
        sparse = lb.dtype.kind in "iu"
        if not sparse:
            if lb.dtype.kind == "b":
                raise DTypeError("labels must be integer class ids or float probabilities, got bool")
            lb = cast_to(lb, lg.dtype)
        return make_node("softmax_cross_entropy", [lg, lb], sparse=sparse)

    return reporting("softmax_cross_entropy", [logits, labels], build)


def _sigmoid_xent_reference(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    # max(x, 0) - x z + log(1 + exp(-|x|)): exact rearrangement of -z log s(x) - (1-z) log(1-s(x))
    return np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))


def _sigmoid_xent_rule(operands: Sequence[Any]) -> tuple[list[np.dtype], np.dtype]:
    dts = [o if isinstance(o, np.dtype) else dtypes.float64 for o in operands]
    out = float_dtype_for(dtypes.result_type(*[(d, False) for d in dts]))
    return [out, out], out


_SIGMOID_XENT_RULE: DTypeRule = _sigmoid_xent_rule
def _sigmoid_xent_grad(node: Tensor, g: Tensor) -> list[Any]:
    from graphc.ops.elementwise import sigmoid

    logits, labels = node.inputs
    return [g * (sigmoid(logits) - labels), -g * logits]


register(OpDef("sigmoid_cross_entropy", "elementwise", infer_elementwise(_SIGMOID_XENT_RULE),
               _sigmoid_xent_reference, num_inputs=2, extra={"dtype_rule": _SIGMOID_XENT_RULE},
               grad=_sigmoid_xent_grad,
               doc="elementwise binary cross-entropy of sigmoid(logits) against targets in [0, 1]"))


def sigmoid_cross_entropy(logits: Any, labels: Any) -> Tensor:
    """Elementwise ``-z log(sigmoid(x)) - (1 - z) log(1 - sigmoid(x))``, computed stably."""

    def build() -> Tensor:
        (lg, lb), _ = promote(to_tensors([logits, labels]))
        dt = float_dtype_for(lg.dtype)
        return make_node("sigmoid_cross_entropy", [cast_to(lg, dt), cast_to(lb, dt)])

    return reporting("sigmoid_cross_entropy", [logits, labels], build)


__all__ = ["log_softmax", "sigmoid_cross_entropy", "softmax", "softmax_cross_entropy"]
