"""Metrics with Keras's names (``metrics=["accuracy"]``): per-example values whose mean over an epoch is
reported (weighted by batch size, so the last, smaller batch counts for what it holds)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphc.errors import ArgumentError
from graphc.ir.tensor import Tensor
from graphc.nn import losses as losses_mod
from graphc.ops import elementwise as ew
from graphc.ops.reduce import argmax, mean
from graphc.ops.reduce import sum as sum_
from graphc.ops.shape import one_hot

MetricFn = Callable[[Tensor, Tensor], Tensor]


class Metric:
    """A named ``fn(y_true, y_pred) -> per-example values``."""

    def __init__(self, name: str, fn: MetricFn) -> None:
        self.name, self.fn = name, fn

    def __call__(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        values = self.fn(y_true, y_pred)
        return ew.cast(values, "float32") if values.dtype.kind != "f" else values

    def __repr__(self) -> str:
        return f"Metric({self.name!r})"


def _per_example(values: Tensor) -> Tensor:
    return mean(values, axis=-1) if values.ndim > 1 else values


def binary_accuracy(y_true: Tensor, y_pred: Tensor, threshold: float = 0.5) -> Tensor:
    """Whether ``y_pred > threshold`` matches ``y_true > 0.5``, averaged over the last axis."""
    return _per_example(ew.cast(ew.equal(y_pred > threshold, y_true > 0.5), "float32"))


def categorical_accuracy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    """Whether the highest score is the one-hot label's class."""
    return ew.cast(ew.equal(argmax(y_pred, axis=-1), argmax(y_true, axis=-1)), "float32")


def sparse_categorical_accuracy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    """Whether the highest score is the class id ``y_true``."""
    return ew.cast(ew.equal(argmax(y_pred, axis=-1), ew.cast(y_true, "int64")), "float32")


def _true_class_rank(scores: Tensor, true_onehot: Tensor) -> Tensor:
    true_score = sum_(scores * true_onehot, axis=-1, keepdims=True)
    return sum_(ew.cast(scores > true_score, "float32"), axis=-1)


def top_k_categorical_accuracy(y_true: Tensor, y_pred: Tensor, k: int = 5) -> Tensor:
    """Whether the one-hot label's class is among the ``k`` highest scores."""
    onehot = ew.cast(ew.equal(y_true, ew.cast(y_true, y_true.dtype) * 0 + 1), y_pred.dtype)
    return ew.cast(_true_class_rank(y_pred, onehot) < k, "float32")


def sparse_top_k_categorical_accuracy(y_true: Tensor, y_pred: Tensor, k: int = 5) -> Tensor:
    """Whether the class id ``y_true`` is among the ``k`` highest scores."""
    onehot = one_hot(y_true, y_pred.shape[-1], dtype=y_pred.dtype)
    return ew.cast(_true_class_rank(y_pred, onehot) < k, "float32")


def _loss_metric(name: str, loss: losses_mod.Loss) -> Metric:
    return Metric(name, lambda t, p: loss(t, p))


_BY_NAME: dict[str, Callable[[], Metric]] = {
    "binary_accuracy": lambda: Metric("binary_accuracy", binary_accuracy),
    "categorical_accuracy": lambda: Metric("categorical_accuracy", categorical_accuracy),
    "sparse_categorical_accuracy": lambda: Metric("sparse_categorical_accuracy", sparse_categorical_accuracy),
    "top_k_categorical_accuracy": lambda: Metric("top_k_categorical_accuracy", top_k_categorical_accuracy),
    "sparse_top_k_categorical_accuracy": lambda: Metric("sparse_top_k_categorical_accuracy",
                                                        sparse_top_k_categorical_accuracy),
    "mse": lambda: _loss_metric("mse", losses_mod.MeanSquaredError()),
    "mean_squared_error": lambda: _loss_metric("mean_squared_error", losses_mod.MeanSquaredError()),
    "mae": lambda: _loss_metric("mae", losses_mod.MeanAbsoluteError()),
    "mean_absolute_error": lambda: _loss_metric("mean_absolute_error", losses_mod.MeanAbsoluteError()),
}


def get(identifier: Any, loss: losses_mod.Loss) -> Metric:
    """A metric from a name, a :class:`Metric` or a callable.  ``"accuracy"`` / ``"acc"`` picks the
    accuracy that fits ``loss`` (as Keras does) and keeps the name ``accuracy``."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc"):
            if isinstance(loss, losses_mod.SparseCategoricalCrossentropy):
                fn: MetricFn = sparse_categorical_accuracy
            elif isinstance(loss, losses_mod.BinaryCrossentropy):
                threshold = 0.0 if loss.from_logits else 0.5
                fn = lambda t, p: binary_accuracy(t, p, threshold)  # noqa: E731
            else:
                fn = categorical_accuracy
            return Metric(identifier, fn)
        if identifier not in _BY_NAME:
            raise ArgumentError(f"unknown metric {identifier!r}; expected 'accuracy' or one of "
                                f"{', '.join(sorted(_BY_NAME))}")
        return _BY_NAME[identifier]()
    if callable(identifier):
        return Metric(getattr(identifier, "__name__", "metric"), identifier)
    raise ArgumentError(f"expected a metric name, a Metric or a callable, got {identifier!r}")
