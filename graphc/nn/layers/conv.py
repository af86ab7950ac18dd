"""Convolution and pooling layers: Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D and
GlobalMaxPooling2D (and the aliases MaxPool2D, AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D), with Keras's
names and arguments.

Images are graphc's NCHW (Keras's ``data_format="channels_first"``, the only layout accepted: transpose
NHWC data with ``gc.transpose(x, (0, 3, 1, 2))``); the kernel is OIHW ``(filters, channels, kh, kw)``, so a
Keras kernel (HWIO) loads after ``kernel.transpose(3, 2, 0, 1)``.  ``padding="same"`` is TensorFlow's
(output size ``ceil(in / stride)``, any odd padding at the end), so outputs match Keras's; average pooling
with ``"same"`` averages only the real (unpadded) values, as in Keras.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.errors import ArgumentError, ShapeError
from graphc.ir.location import user_location
from graphc.ir.shapes import format_shape
from graphc.ir.tensor import Tensor
from graphc.nn import activations, initializers, regularizers
from graphc.nn.layers.base import Layer
from graphc.nn.layers.core import check_positive_int
from graphc.ops.conv import avg_pool2d, conv2d, max_pool2d
from graphc.ops.reduce import max as max_
from graphc.ops.reduce import mean
from graphc.ops.shape import reshape

Pair = tuple[int, int]


def _pair(layer: Layer, name: str, value: Any) -> Pair:
    """An int or a pair of positive ints as a pair (Keras's ``kernel_size=3`` or ``(3, 3)``)."""
    seq = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    ok = len(seq) == 2 and all(not isinstance(v, bool) and isinstance(v, (int, np.integer)) and v > 0 for v in seq)
    if not ok:
        raise layer.error(ArgumentError, f"{name} must be a positive integer or a pair of positive integers, "
                          f"got {value!r}")
    return int(seq[0]), int(seq[1])


def checked_argument(layer: Layer, getter: Callable[[Any], Any], value: Any) -> Any:
    """``getter(value)`` (``initializers.get``, ``activations.get``, ...), its ArgumentError for an unknown
    name raised now, naming the layer and the line that created it (not when the layer is first called)."""
    try:
        return getter(value)
    except ArgumentError as exc:
        raise layer.error(ArgumentError, str(exc)) from None


def _padding(layer: Layer, value: Any) -> str:
    """``"valid"`` or ``"same"`` (any case), as graphc's ``"VALID"`` / ``"SAME"``."""
    if not isinstance(value, str) or value.lower() not in ("valid", "same"):
        raise layer.error(ArgumentError, f"padding must be 'valid' or 'same', got {value!r}")
    return value.upper()


def _data_format(layer: Layer, value: Any) -> str:
    """Only ``"channels_first"`` (or None): graphc's images are NCHW."""
    if value is None or value == "channels_first":
        return "channels_first"
    if value == "channels_last":
        raise layer.error(ArgumentError, "data_format='channels_last' is not supported: graphc's images are NCHW "
                          "(channels_first); transpose NHWC data with gc.transpose(x, (0, 3, 1, 2))")
    raise layer.error(ArgumentError, f"data_format must be 'channels_first' (or None), got {value!r}")


def _check_window_fits(layer: Layer, inputs: Tensor, window: Pair, padding: str, what: str) -> None:
    """A ShapeError naming the layer when a known spatial size is smaller than a "valid" window."""
    if padding != "VALID":
        return
    for axis, k in zip((2, 3), window):
        size = inputs.shape[axis]
        if size is not None and size < k:
            raise layer.error(ShapeError, f"{what} {window} does not fit {inputs.describe()} with padding "
                              f"'valid': axis {axis} has size {size} < {k}", user_location())


class Conv2D(Layer):
    """2-D convolution (cross-correlation) of NCHW images: ``Conv2D(filters, kernel_size, strides=(1, 1),
    padding="valid", data_format=None, dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
    kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
    bias_regularizer=None)``.

    ``(N, C, H, W) -> (N, filters, OH, OW)``; the kernel is ``(filters, C, kh, kw)`` (OIHW) with fans
    ``C * kh * kw`` in and ``filters * kh * kw`` out, as Keras's.  ``dilation_rate`` and ``groups`` other
    than 1 are not supported yet (graphc's conv2d has neither): they raise an ArgumentError.
    """

    min_ndim = 4
    max_ndim = 4
    fixed_axes = (1,)

    def __init__(self, filters: int, kernel_size: int | tuple[int, int], strides: int | tuple[int, int] = (1, 1),
                 padding: str = "valid", data_format: str | None = None, dilation_rate: int | tuple[int, int] = (1, 1),
                 groups: int = 1, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = check_positive_int(self, "filters", filters)
        self.kernel_size = _pair(self, "kernel_size", kernel_size)
        self.strides = _pair(self, "strides", strides)
        self.padding = _padding(self, padding)
        self.data_format = _data_format(self, data_format)
        self.dilation_rate = _pair(self, "dilation_rate", dilation_rate)
        if self.dilation_rate != (1, 1):
            raise self.error(ArgumentError, f"dilation_rate={dilation_rate!r} is not supported yet (graphc's conv2d "
                             "has no dilation); use dilation_rate=1")
        self.groups = check_positive_int(self, "groups", groups)
        if self.groups != 1:
            raise self.error(ArgumentError, f"groups={groups!r} is not supported yet; use groups=1")
        self.activation = checked_argument(self, activations.get, activation)
        self.use_bias = bool(use_bias)
        for value in (kernel_initializer, bias_initializer):
            checked_argument(self, initializers.get, value)
        for value in (kernel_regularizer, bias_regularizer):
            checked_argument(self, regularizers.get, value)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self.kernel_regularizer, self.bias_regularizer = kernel_regularizer, bias_regularizer

    def build(self, input_shape: Any) -> None:
        channels = input_shape[1]
        if channels is None:
            raise self.error(ShapeError, f"needs the number of input channels (axis 1 of NCHW images), got shape "
                             f"{format_shape(input_shape)}", user_location())
        kh, kw = self.kernel_size
        fans = (channels * kh * kw, self.filters * kh * kw)
        self.kernel = self.add_weight("kernel", (self.filters, channels, kh, kw), self.kernel_initializer,
                                      self.kernel_regularizer, fans=fans)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer, self.bias_regularizer)
                     if self.use_bias else None)

    def call(self, inputs: Tensor, training: bool = False) -> Tensor:
        _check_window_fits(self, inputs, self.kernel_size, self.padding, "kernel_size")
        y = conv2d(inputs, self.kernel, strides=self.strides, padding=self.padding)
        if self.bias is not None:
            y = y + reshape(self.bias, (self.filters, 1, 1))
        return self.activation(y)


class _Pooling2D(Layer):
    """What max and average pooling share: ``(pool_size=(2, 2), strides=None, padding="valid",
    data_format=None)``; ``strides`` None means ``pool_size``."""

    min_ndim = 4
    max_ndim = 4
    _op = staticmethod(max_pool2d)

    def __init__(self, pool_size: int | tuple[int, int] = (2, 2), strides: int | tuple[int, int] | None = None,
                 padding: str = "valid", data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_size = _pair(self, "pool_size", pool_size)
        self.strides = self.pool_size if strides is None else _pair(self, "strides", strides)
        self.padding = _padding(self, padding)
        self.data_format = _data_format(self, data_format)

    def call(self, inputs: Tensor, training: bool = False) -> Tensor:
        _check_window_fits(self, inputs, self.pool_size, self.padding, "pool_size")
        return type(self)._op(inputs, self.pool_size, strides=self.strides, padding=self.padding)


class MaxPooling2D(_Pooling2D):
    """The maximum over each window of NCHW images: ``MaxPooling2D(pool_size=(2, 2), strides=None,
    padding="valid", data_format=None)`` (``strides`` None: ``pool_size``).  Also ``MaxPool2D``."""

    _op = staticmethod(max_pool2d)


class AveragePooling2D(_Pooling2D):
    """The mean over each window of NCHW images: ``AveragePooling2D(pool_size=(2, 2), strides=None,
    padding="valid", data_format=None)`` (``strides`` None: ``pool_size``); with ``"same"`` only real
    values are averaged, as in Keras.  Also ``AvgPool2D``."""

    _op = staticmethod(avg_pool2d)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class _GlobalPooling2D(Layer):
    """A reduction over the spatial axes of NCHW images: ``(data_format=None, keepdims=False)``."""

    min_ndim = 4
    max_ndim = 4
    _reduce = staticmethod(mean)

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = _data_format(self, data_format)
        self.keepdims = bool(keepdims)

    def call(self, inputs: Tensor, training: bool = False) -> Tensor:
        return type(self)._reduce(inputs, axis=(2, 3), keepdims=self.keepdims)


class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean over H and W of NCHW images: ``GlobalAveragePooling2D(data_format=None, keepdims=False)``,
    ``(N, C, H, W) -> (N, C)`` (``(N, C, 1, 1)`` with ``keepdims``).  Also ``GlobalAvgPool2D``."""

    _reduce = staticmethod(mean)


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The maximum over H and W of NCHW images: ``GlobalMaxPooling2D(data_format=None, keepdims=False)``,
    ``(N, C, H, W) -> (N, C)`` (``(N, C, 1, 1)`` with ``keepdims``).  Also ``GlobalMaxPool2D``."""

    _reduce = staticmethod(max_)


GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

__all__ = ["AveragePooling2D", "AvgPool2D", "Conv2D", "checked_argument", "GlobalAveragePooling2D", "GlobalAvgPool2D",
           "GlobalMaxPool2D", "GlobalMaxPooling2D", "MaxPool2D", "MaxPooling2D"]
