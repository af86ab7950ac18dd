"""The basic layers: Dense, Activation, Flatten, Reshape, Dropout, Lambda, Concatenate, Add."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.errors import ArgumentError, ShapeError
from graphc.ir.location import user_location
from graphc.ir.shapes import format_shape
from graphc.ir.tensor import Tensor
from graphc.nn import activations
from graphc.nn.context import NoiseInput, current_context
from graphc.nn.layers.base import Layer
from graphc.ops.elementwise import where
from graphc.ops.linalg import matmul
from graphc.ops.shape import concat, reshape
from graphc.ops.state import placeholder


def check_positive_int(layer: Layer, name: str, value: Any) -> int:
    """``value`` as a positive int, or an ArgumentError naming the layer, its argument and the user's line."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise layer.error(ArgumentError, f"{name} must be a positive integer, got {value!r}", user_location())
    return int(value)


class Dense(Layer):
    """``activation(x @ kernel + bias)`` over the last axis: ``Dense(units, activation=None, use_bias=True,
    kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
    bias_regularizer=None)``."""

    min_ndim = 2
    fixed_axes = (-1,)

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = check_positive_int(self, "units", units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self.kernel_regularizer, self.bias_regularizer = kernel_regularizer, bias_regularizer

    def build(self, input_shape: Any) -> None:
        features = input_shape[-1]
        if features is None:
            raise self.error(ShapeError, f"needs the size of the input's last axis, got shape "
                             f"{format_shape(input_shape)}")
        self.kernel = self.add_weight("kernel", (features, self.units), self.kernel_initializer,
                                      self.kernel_regularizer)
        self.bias = (self.add_weight("bias", (self.units,), self.bias_initializer, self.bias_regularizer)
                     if self.use_bias else None)

    def call(self, inputs: Tensor, training: bool = False) -> Tensor:
        y = matmul(inputs, self.kernel)
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y)


class Activation(Layer):
    """Applies an activation function (a Keras name or a callable)."""

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs: Tensor, training: bool = False) -> Tensor:
        return self.activation(inputs)


class Flatten(Layer):
    """Every axis but the batch axis into one: ``[N, C, H, W] -> [N, C*H*W]``."""

    min_ndim = 1

    def call(self, inputs: Tensor, training: bool = False) -> Tensor:
        rest = inputs.shape[1:]
        if any(d is None for d in rest):
            raise self.error(ShapeError, f"needs static sizes for every axis but the batch, got {inputs.describe()}")
        return reshape(inputs, (-1, math.prod(rest)) if inputs.ndim > 1 else (-1, 1))


class Reshape(Layer):
    """Reshape every example to ``target_shape`` (the batch axis is kept; one entry may be -1)."""

    min_ndim = 1

    def __init__(self, target_shape: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in self.target_shape) > 1 or any(d < -1 or d == 0 for d in self.target_shape):
            raise self.error(ArgumentError, f"target_shape must hold positive sizes and at most one -1, got "
                             f"{target_shape!r}")

    def call(self, inputs: Tensor, training: bool = False) -> Tensor:
        rest = inputs.shape[1:]
        if any(d is None for d in rest):
            raise self.error(ShapeError, f"needs static sizes for every axis but the batch, got {inputs.describe()}")
        size, known = math.prod(rest), math.prod(d for d in self.target_shape if d != -1)
        fits = size % known == 0 if -1 in self.target_shape else size == known
        if not fits:
            raise self.error(ShapeError, f"cannot reshape examples of shape {format_shape(rest)} "
                             f"({size} values) to {format_shape(self.target_shape)}")
        target = tuple(size // known if d == -1 else d for d in self.target_shape)
        return reshape(inputs, (-1, *target))


class Dropout(Layer):
    """In training, zero each value with probability ``rate`` and scale the rest by ``1 / (1 - rate)``;
    the identity at inference.  ``noise_shape`` (with 1 for axes that share a mask, None for the batch)
    as in Keras.

    The masks come from uniform noise the training step is fed (drawn in NumPy from the model's seeded
    stream: a run, and a run resumed from a checkpoint, draws the same masks)."""

    def __init__(self, rate: float, noise_shape: Sequence[int | None] | None = None, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise self.error(ArgumentError, f"rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.noise_shape = tuple(noise_shape) if noise_shape is not None else None
        self.seed = seed

    def call(self, inputs: Tensor, training: bool = False) -> Tensor:
        if not training or self.rate == 0:
            return inputs
        context = current_context()
        if context is None:
            raise self.error(ArgumentError, "a training-mode call needs a model's training step to feed its "
                             "noise (use it inside a model and train with fit)", user_location())
        shape = list(self.noise_shape or inputs.shape)
        if len(shape) != inputs.ndim:
            raise self.error(ShapeError, f"noise_shape {self.noise_shape} does not match the rank of "
                             f"{inputs.describe()}")
        shape[0] = None
        for axis in range(1, len(shape)):
            if shape[axis] is None:
                shape[axis] = inputs.shape[axis]
            if shape[axis] is None:
                raise self.error(ShapeError, f"needs static sizes for every axis but the batch, got "
                                 f"{inputs.describe()}")
        noise = placeholder(inputs.dtype, tuple(shape), name="dropout_noise")
        context.noise.append(NoiseInput(noise, inputs.dtype))
        return where(noise >= self.rate, inputs * (1.0 / (1.0 - self.rate)), 0.0)


class Lambda(Layer):
    """Wraps a function of tensors (``Lambda(lambda t: t * 2)``), so that a functional model can rebuild it."""

    multi_input = True

    def __init__(self, function: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not callable(function):
            raise self.error(ArgumentError, f"expected a function, got {function!r}")
        self.function = function

    def call(self, inputs: list[Tensor], training: bool = False) -> Any:
        return self.function(*inputs) if len(inputs) > 1 else self.function(inputs[0])


class Concatenate(Layer):
    """Joins a list of tensors along ``axis`` (default the last)."""

    multi_input = True

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = int(axis)

    def call(self, inputs: list[Tensor], training: bool = False) -> Tensor:
        if len(inputs) < 2:
            raise self.error(ArgumentError, f"needs a list of at least 2 tensors, got {len(inputs)}")
        return concat(inputs, axis=self.axis)


class Add(Layer):
    """Adds a list of tensors of the same shape (a residual connection)."""

    multi_input = True

    def call(self, inputs: list[Tensor], training: bool = False) -> Tensor:
        if len(inputs) < 2:
            raise self.error(ArgumentError, f"needs a list of at least 2 tensors, got {len(inputs)}")
        shapes = {t.shape for t in inputs}
        if len(shapes) > 1:
            raise self.error(ShapeError, "expected tensors of one shape, got "
                             + ", ".join(format_shape(s) for s in shapes))
        total = inputs[0]
        for t in inputs[1:]:
            total = total + t
        return total
