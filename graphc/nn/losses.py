"""Losses with Keras's names: ``loss="sparse_categorical_crossentropy"``, ``losses.BinaryCrossentropy(
from_logits=True)``, or any ``f(y_true, y_pred) -> per-example tensor``.

A loss returns one value per example (the model's training loss is their mean).  Cross-entropies on
probabilities that a ``softmax`` or ``sigmoid`` produced are computed from that op's input, as Keras
does: the same value, without the log of a rounded-to-zero probability.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.errors import ArgumentError, DTypeError, ShapeError
from graphc.ir.shapes import format_shape
from graphc.ir.tensor import Tensor
from graphc.ops import elementwise as ew
from graphc.ops.nn import log_softmax, sigmoid_cross_entropy, softmax_cross_entropy
from graphc.ops.reduce import mean
from graphc.ops.reduce import sum as sum_
from graphc.ops.shape import one_hot

EPSILON = 1e-7  # Keras's clip of probabilities that no softmax/sigmoid node produced


class Loss:
    """Base class: ``loss(y_true, y_pred) -> per-example tensor`` (shape ``y_pred.shape[:1]``).

    :meth:`target` gives the dtype and shape of the labels for an output, and :meth:`check_labels`
    checks an array of labels for it (the messages name the loss)."""

    name = "loss"
    sparse = False

    def __call__(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        raise NotImplementedError

    def target(self, y_pred: Tensor) -> tuple[np.dtype, tuple[int | None, ...]]:
        """The labels' dtype and shape for outputs like ``y_pred``."""
        return y_pred.dtype, tuple(y_pred.shape)

    def check_labels(self, y: np.ndarray, y_pred: Tensor, where: str) -> np.ndarray:
        """``y`` converted for feeding as labels of ``y_pred``, or a clear error."""
        dtype, shape = self.target(y_pred)
        if y.ndim == len(shape) - 1 and shape[-1] == 1:
            y = y.reshape(*y.shape, 1)
        if y.ndim != len(shape) or any(d is not None and d != g for d, g in zip(shape[1:], y.shape[1:])):
            raise ShapeError(f"{self.name}: expected labels of shape {format_shape((len(y), *shape[1:]))} for the "
                             f"model's output {format_shape(y_pred.shape)}, got {format_shape(y.shape)}{self.hint(y)}"
                             f"{where}")
        if y.dtype.kind not in "biuf":
            raise DTypeError(f"{self.name}: expected numeric labels, got dtype {y.dtype}{where}")
        return np.ascontiguousarray(y, dtype=dtype)

    def hint(self, y: np.ndarray) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _logits_of(y_pred: Tensor, op: str) -> Tensor | None:
    """The input of ``y_pred`` when a ``softmax`` over the last axis / a ``sigmoid`` produced it."""
    if y_pred.op != op:
        return None
    if op == "softmax" and tuple(y_pred.attrs["axes"]) != (y_pred.ndim - 1,):
        return None
    return y_pred.inputs[0]


def _clipped_log(p: Tensor) -> Tensor:
    return ew.log(ew.minimum(ew.maximum(p, EPSILON), 1.0 - EPSILON))


def _last_axis_mean(values: Tensor) -> Tensor:
    return mean(values, axis=-1) if values.ndim > 1 else values


class MeanSquaredError(Loss):
    """``mean((y_pred - y_true)^2)`` over the last axis."""

    name = "mean_squared_error"

    def __call__(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return _last_axis_mean(ew.square(y_pred - y_true))


class MeanAbsoluteError(Loss):
    """``mean(|y_pred - y_true|)`` over the last axis."""

    name = "mean_absolute_error"

    def __call__(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return _last_axis_mean(ew.abs(y_pred - y_true))


class BinaryCrossentropy(Loss):
    """Binary cross-entropy of targets in [0, 1], averaged over the last axis; ``from_logits``: y_pred
    is a logit (no sigmoid applied)."""

    name = "binary_crossentropy"

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    def __call__(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        logits = y_pred if self.from_logits else _logits_of(y_pred, "sigmoid")
        if logits is not None:
            return _last_axis_mean(sigmoid_cross_entropy(logits, y_true))
        return _last_axis_mean(-(y_true * _clipped_log(y_pred) + (1.0 - y_true) * _clipped_log(1.0 - y_pred)))

    def __repr__(self) -> str:
        return f"BinaryCrossentropy(from_logits={self.from_logits})"


class CategoricalCrossentropy(Loss):
    """Cross-entropy of one-hot (or probability) labels against class scores on the last axis."""

    name = "categorical_crossentropy"

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    def __call__(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        logits = y_pred if self.from_logits else _logits_of(y_pred, "softmax")
        if logits is not None:
            return -sum_(y_true * log_softmax(logits), axis=-1)
        p = y_pred / sum_(y_pred, axis=-1, keepdims=True)
        return -sum_(y_true * _clipped_log(p), axis=-1)

    def hint(self, y: np.ndarray) -> str:
        return ("; integer class ids go with sparse_categorical_crossentropy" if y.dtype.kind in "iu" else "")

    def __repr__(self) -> str:
        return f"CategoricalCrossentropy(from_logits={self.from_logits})"


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy of integer class ids against class scores on the last axis."""

    name = "sparse_categorical_crossentropy"
    sparse = True

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    def target(self, y_pred: Tensor) -> tuple[np.dtype, tuple[int | None, ...]]:
        return np.dtype(np.int64), tuple(y_pred.shape[:-1])

    def check_labels(self, y: np.ndarray, y_pred: Tensor, where: str) -> np.ndarray:
        if y_pred.ndim < 2 or y_pred.shape[-1] is None:
            raise ShapeError(f"{self.name}: needs outputs with a static class axis, got {y_pred.describe()}{where}")
        if y.ndim == y_pred.ndim and y.shape[-1] == 1:
            y = y.reshape(y.shape[:-1])
        if y.dtype.kind == "f":
            if not np.array_equal(y, np.round(y)):
                raise DTypeError(f"{self.name}: expected integer class ids, got floats that are not whole "
                                 f"numbers{self.hint(y)}{where}")
            y = y.astype(np.int64)
        y = super().check_labels(y, y_pred, where)
        classes = y_pred.shape[-1]
        if y.size and (y.min() < 0 or y.max() >= classes):
            bad = y.min() if y.min() < 0 else y.max()
            raise ArgumentError(f"{self.name}: labels must be class ids in [0, {classes}) for the model's "
                                f"{classes} outputs, got {bad}{where}")
        return y

    def hint(self, y: np.ndarray) -> str:
        return "; one-hot labels go with categorical_crossentropy" if y.ndim > 1 and y.shape[-1] > 1 else ""

    def __call__(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        logits = y_pred if self.from_logits else _logits_of(y_pred, "softmax")
        if logits is not None:
            return softmax_cross_entropy(logits, y_true)
        p = y_pred / sum_(y_pred, axis=-1, keepdims=True)
        return -sum_(one_hot(y_true, y_pred.shape[-1], dtype=y_pred.dtype) * _clipped_log(p), axis=-1)

    def __repr__(self) -> str:
        return f"SparseCategoricalCrossentropy(from_logits={self.from_logits})"


class FunctionLoss(Loss):
    """A user's ``f(y_true, y_pred) -> per-example tensor`` (a scalar is accepted too)."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "loss")

    def __call__(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return self.fn(y_true, y_pred)


_BY_NAME: dict[str, Callable[[], Loss]] = {
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy, "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


def get(identifier: Any) -> Loss:
    """A loss from a Keras name, a :class:`Loss` or a callable."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ArgumentError(f"unknown loss {identifier!r}; expected one of {', '.join(sorted(_BY_NAME))}")
        return _BY_NAME[identifier]()
    if callable(identifier):
        return FunctionLoss(identifier)
    raise ArgumentError(f"expected a loss name, a Loss or a callable, got {identifier!r}")


mean_squared_error = mse = MeanSquaredError()
mean_absolute_error = mae = MeanAbsoluteError()
binary_crossentropy = BinaryCrossentropy()
categorical_crossentropy = CategoricalCrossentropy()
sparse_categorical_crossentropy = SparseCategoricalCrossentropy()
