"""Activation functions by Keras name (``activation="relu"``), built from graphc's ops."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphc.errors import ArgumentError
from graphc.ir.tensor import Tensor
from graphc.ops import elementwise as ew
from graphc.ops.nn import log_softmax, softmax


def linear(x: Tensor) -> Tensor:
    """The identity."""
    return x


def relu(x: Tensor) -> Tensor:
    """``max(x, 0)``."""
    return ew.relu(x)


def elu(x: Tensor) -> Tensor:
    """``x`` for x > 0, ``exp(x) - 1`` otherwise."""
    return ew.where(x > 0, x, ew.expm1(ew.minimum(x, 0.0)))


def selu(x: Tensor) -> Tensor:
    """Scaled ELU (Klambauer et al.)."""
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    return scale * ew.where(x > 0, x, alpha * ew.expm1(ew.minimum(x, 0.0)))


def gelu(x: Tensor) -> Tensor:
    """``x * Phi(x)`` with the exact normal CDF."""
    return 0.5 * x * (1.0 + ew.erf(x * 0.7071067811865476))


def silu(x: Tensor) -> Tensor:
    """``x * sigmoid(x)`` (swish)."""
    return x * ew.sigmoid(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.2) -> Tensor:
    """``x`` for x > 0, ``negative_slope * x`` otherwise."""
    return ew.where(x > 0, x, negative_slope * x)


def hard_sigmoid(x: Tensor) -> Tensor:
    """``clip(x / 6 + 0.5, 0, 1)``."""
    return ew.minimum(ew.maximum(x / 6.0 + 0.5, 0.0), 1.0)


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": linear, "relu": relu, "sigmoid": ew.sigmoid, "tanh": ew.tanh, "softmax": softmax,
    "log_softmax": log_softmax, "softplus": ew.softplus, "elu": elu, "selu": selu, "gelu": gelu,
    "silu": silu, "swish": silu, "leaky_relu": leaky_relu, "hard_sigmoid": hard_sigmoid, "exponential": ew.exp,
}


def get(identifier: Any) -> Callable[[Tensor], Tensor]:
    """An activation from None (linear), a name or a callable."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        if identifier not in ACTIVATIONS:
            raise ArgumentError(f"unknown activation {identifier!r}; expected one of {', '.join(sorted(ACTIVATIONS))}")
        return ACTIVATIONS[identifier]
    if callable(identifier):
        return identifier
    raise ArgumentError(f"expected an activation name or a callable, got {identifier!r}")


def name_of(fn: Callable[[Tensor], Tensor]) -> str:
    """The Keras name of an activation function (for summaries)."""
    for name, known in ACTIVATIONS.items():
        if known is fn:
            return name
    return getattr(fn, "__name__", repr(fn))
