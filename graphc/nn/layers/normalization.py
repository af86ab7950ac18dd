"""Normalisation layers: BatchNormalization and LayerNormalization, with Keras's names and arguments.

``BatchNormalization`` normalises over every axis but ``axis`` (default 1: the channels of NCHW images,
and the features of ``(N, C)`` inputs).  In training it uses the batch's mean and (biased) variance and
registers the update of its moving statistics, ``moving = moving * momentum + batch * (1 - momentum)``,
in the model's build context (:func:`graphc.nn.context.current_context`), which the training step applies
after the gradient step; at inference it uses the moving statistics.  A training-mode call outside a
build context raises an ``ArgumentError`` (as ``Dropout`` does): the statistics' updates would be lost
silently otherwise.  To use the layer in your own training step, build in a context and pass its
updates to ``gc.function``::

    from graphc.nn.context import building
    with building(True) as ctx:
        y = bn(x)
    step = gc.function([x], loss, updates={**opt.updates(loss, params), **ctx.updates})

``LayerNormalization`` normalises each example over ``axis`` (default -1), in training and inference alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.errors import ArgumentError, ShapeError
from graphc.ir.location import user_location
from graphc.ir.shapes import format_shape
from graphc.ir.tensor import Tensor
from graphc.nn import initializers, regularizers
from graphc.nn.context import current_context
from graphc.nn.layers.base import Layer
from graphc.nn.layers.conv import checked_argument
from graphc.ops import elementwise as ew
from graphc.ops.reduce import mean
from graphc.ops.shape import reshape
from graphc.ops.state import Variable


def _number(layer: Layer, name: str, value: Any, low: float, high: float | None = None, closed: bool = True) -> float:
    """``value`` as a float in ``[low, high]`` (``(low, ...)`` when not ``closed``), else an ArgumentError."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if ok:
        v = float(value)
        ok = (v >= low if closed else v > low) and (high is None or v <= high) and np.isfinite(v)
    if not ok:
        what = (f"a number in [{low}, {high}]" if high is not None else
                "a non-negative number" if closed else "a positive number")
        raise layer.error(ArgumentError, f"{name} must be {what}, got {value!r}")
    return float(value)


def _axes_argument(layer: Layer, axis: Any) -> tuple[int, ...]:
    """An int or a non-empty sequence of ints (checked against the input's rank at build)."""
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if not axes or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axes):
        raise layer.error(ArgumentError, f"axis must be an int or a non-empty tuple of ints, got {axis!r}")
    return tuple(int(a) for a in axes)


class _Normalization(Layer):
    """What the two layers share: the axes, gamma and beta, and ``(x - mean) / sqrt(var + eps) * gamma + beta``."""

    min_ndim = 1

    def __init__(self, axis: int | Sequence[int], epsilon: float, center: bool, scale: bool,
                 beta_initializer: Any, gamma_initializer: Any, beta_regularizer: Any, gamma_regularizer: Any,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _axes_argument(self, axis)
        self.axis = axis  # as given (Keras's attribute); ``axes`` holds them normalised once built
        self.epsilon = _number(self, "epsilon", epsilon, 0.0, closed=False)
        self.center, self.scale = bool(center), bool(scale)
        for value in (beta_initializer, gamma_initializer):
            checked_argument(self, initializers.get, value)
        for value in (beta_regularizer, gamma_regularizer):
            checked_argument(self, regularizers.get, value)
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        self.beta_regularizer, self.gamma_regularizer = beta_regularizer, gamma_regularizer
        self.axes: tuple[int, ...] = ()
        self.param_shape: tuple[int, ...] = ()
        self.broadcast_shape: tuple[int, ...] = ()

    def _resolve_axes(self, input_shape: Any) -> None:
        """The normalised axes, the weights' shape (the sizes of those axes) and the shape they broadcast as."""
        ndim = len(input_shape)
        axes = _axes_argument(self, self.axis)
        if any(not -ndim <= a < ndim for a in axes):
            raise self.error(ShapeError, f"axis {self.axis!r} is out of range for inputs of rank {ndim} "
                             f"(shape {format_shape(input_shape)})", user_location())
        normalized = tuple(sorted({a % ndim for a in axes}))
        if len(normalized) != len(axes):
            raise self.error(ArgumentError, f"axis {self.axis!r} repeats an axis", user_location())
        unknown = [a for a in normalized if input_shape[a] is None]
        if unknown:
            raise self.error(ShapeError, f"needs the size of axis {unknown[0]} (the normalised axis), got shape "
                             f"{format_shape(input_shape)}", user_location())
        self.axes = normalized
        self.fixed_axes = normalized  # checked on every later call
        self.param_shape = tuple(int(input_shape[a]) for a in normalized)
        self.broadcast_shape = tuple(int(input_shape[a]) if a in normalized else 1 for a in range(ndim))

    def _add_gamma_beta(self) -> None:
        self.gamma = (self.add_weight("gamma", self.param_shape, self.gamma_initializer, self.gamma_regularizer)
                      if self.scale else None)
        self.beta = (self.add_weight("beta", self.param_shape, self.beta_initializer, self.beta_regularizer)
                     if self.center else None)

    def _broadcast(self, t: Tensor) -> Tensor:
        """A weight-shaped tensor reshaped to broadcast against the input."""
        return reshape(t, self.broadcast_shape)

    def _normalize(self, inputs: Tensor, mu: Tensor, var: Tensor) -> Tensor:
        """``(x - mu) * rsqrt(var + eps) * gamma + beta``, with ``mu`` and ``var`` broadcastable."""
        inv = ew.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            inv = inv * self._broadcast(self.gamma)
        y = (inputs - mu) * inv
        if self.beta is not None:
            y = y + self._broadcast(self.beta)
        return y


class BatchNormalization(_Normalization):
    """Batch normalisation: ``BatchNormalization(axis=1, momentum=0.99, epsilon=1e-3, center=True,
    scale=True, beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
    moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None)``.

    ``axis`` (an int or a tuple of ints) holds the features that get their own statistics; the default
    is 1, the channels of NCHW images and the features of ``(N, C)`` inputs (Keras's default, -1, is the
    channels of NHWC images).  Weights, in Keras's order: ``gamma``, ``beta`` (trainable, if ``scale`` /
    ``center``), ``moving_mean``, ``moving_variance`` (not trainable).

    Training: ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta`` with the batch's mean and biased
    variance over every axis but ``axis``, and the moving statistics' updates registered in the build
    context (a training call needs one: see the module's documentation).  Inference: the same with the
    moving statistics.  A layer with ``trainable=False`` always runs in inference mode (as Keras 2+).
    """

    def __init__(self, axis: int | Sequence[int] = 1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", moving_mean_initializer: Any = "zeros",
                 moving_variance_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, **kwargs: Any) -> None:
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                         gamma_regularizer, **kwargs)
        self.momentum = _number(self, "momentum", momentum, 0.0, 1.0)
        for value in (moving_mean_initializer, moving_variance_initializer):
            checked_argument(self, initializers.get, value)
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer

    def build(self, input_shape: Any) -> None:
        if len(input_shape) < 2:
            raise self.error(ShapeError, f"needs inputs with a batch axis and a feature axis, got shape "
                             f"{format_shape(input_shape)}", user_location())
        self._resolve_axes(input_shape)
        self._add_gamma_beta()
        self.moving_mean: Variable = self.add_weight("moving_mean", self.param_shape, self.moving_mean_initializer,
                                                     trainable=False)
        self.moving_variance: Variable = self.add_weight("moving_variance", self.param_shape,
                                                         self.moving_variance_initializer, trainable=False)

    def call(self, inputs: Tensor, training: bool = False) -> Tensor:
        if not training or not self.trainable:
            return self._normalize(inputs, self._broadcast(self.moving_mean), self._broadcast(self.moving_variance))
        context = current_context()
        if context is None:
            raise self.error(ArgumentError, "a training-mode call needs a model's training step to apply the "
                             "moving statistics' updates (use it inside a model and train with fit, or build "
                             "inside graphc.nn.context.building(True) and pass the context's updates to "
                             "gc.function)", user_location())
        reduce_axes = tuple(a for a in range(inputs.ndim) if a not in self.axes)
        mu = mean(inputs, axis=reduce_axes, keepdims=True)
        var = mean(ew.square(inputs - mu), axis=reduce_axes, keepdims=True)
        m = self.momentum
        batch_mean, batch_var = reshape(mu, self.param_shape), reshape(var, self.param_shape)
        context.updates[self.moving_mean] = self.moving_mean * m + batch_mean * (1.0 - m)
        context.updates[self.moving_variance] = self.moving_variance * m + batch_var * (1.0 - m)
        return self._normalize(inputs, mu, var)


class LayerNormalization(_Normalization):
    """Layer normalisation: ``LayerNormalization(axis=-1, epsilon=1e-3, center=True, scale=True,
    beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None)``.

    Each example is normalised over ``axis`` (an int or a tuple of ints) with its own mean and biased
    variance: ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta``; ``gamma`` and ``beta`` have the
    shape of those axes (Keras's weight order: ``gamma``, ``beta``).  The same in training and inference.
    """

    def __init__(self, axis: int | Sequence[int] = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: Any = "zeros", gamma_initializer: Any = "ones",
                 beta_regularizer: Any = None, gamma_regularizer: Any = None, **kwargs: Any) -> None:
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                         gamma_regularizer, **kwargs)

    def build(self, input_shape: Any) -> None:
        self._resolve_axes(input_shape)
        self._add_gamma_beta()

    def call(self, inputs: Tensor, training: bool = False) -> Tensor:
        mu = mean(inputs, axis=self.axes, keepdims=True)
        var = mean(ew.square(inputs - mu), axis=self.axes, keepdims=True)
        return self._normalize(inputs, mu, var)


__all__ = ["BatchNormalization", "LayerNormalization"]
