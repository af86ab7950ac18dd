"""Weight initializers, with Keras's names and arguments (``"glorot_uniform"``, ``HeNormal()``, ...).

An initializer is called as ``init(shape, dtype, fans=None)`` and returns a NumPy array.  ``fans`` is
``(fan_in, fan_out)``; without it they are read off the shape as for a ``Dense`` kernel ``(in, out)``
or a convolution kernel in graphc's OIHW layout ``(out, in, kh, kw)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.errors import ArgumentError
from graphc.nn.random import generator

Fans = tuple[int, int]


def compute_fans(shape: tuple[int, ...]) -> Fans:
    """``(fan_in, fan_out)`` of a kernel: ``(in, out)`` for 2-D, ``(out, in, *window)`` beyond."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


class Initializer:
    """Base class: ``__call__(shape, dtype, fans=None) -> np.ndarray``."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def _rng(self) -> np.random.Generator:
        return generator(self.seed)

    def __call__(self, shape: tuple[int, ...], dtype: Any = np.float32, fans: Fans | None = None) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape: tuple[int, ...], dtype: Any = np.float32, fans: Fans | None = None) -> np.ndarray:
        return np.zeros(shape, dtype)


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape: tuple[int, ...], dtype: Any = np.float32, fans: Fans | None = None) -> np.ndarray:
        return np.ones(shape, dtype)


class Constant(Initializer):
    """Every entry ``value``."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.value = float(value)

    def __call__(self, shape: tuple[int, ...], dtype: Any = np.float32, fans: Fans | None = None) -> np.ndarray:
        return np.full(shape, self.value, dtype)


class RandomUniform(Initializer):
    """Uniform in ``[minval, maxval)``."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape: tuple[int, ...], dtype: Any = np.float32, fans: Fans | None = None) -> np.ndarray:
        return self._rng().uniform(self.minval, self.maxval, shape).astype(dtype)


class RandomNormal(Initializer):
    """Normal with ``mean`` and ``stddev``."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape: tuple[int, ...], dtype: Any = np.float32, fans: Fans | None = None) -> np.ndarray:
        return self._rng().normal(self.mean, self.stddev, shape).astype(dtype)


def _truncated_normal(rng: np.random.Generator, stddev: float, shape: tuple[int, ...]) -> np.ndarray:
    """Normal samples redrawn until within two standard deviations (Keras's truncated normal)."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2.0
    return values * stddev


class TruncatedNormal(Initializer):
    """Normal with ``mean`` and ``stddev``, redrawn beyond two standard deviations."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape: tuple[int, ...], dtype: Any = np.float32, fans: Fans | None = None) -> np.ndarray:
        return (self.mean + _truncated_normal(self._rng(), self.stddev, shape)).astype(dtype)


class VarianceScaling(Initializer):
    """Samples with variance ``scale / n`` where n is fan_in, fan_out or their mean (``mode``), from a
    ``"truncated_normal"``, ``"untruncated_normal"`` or ``"uniform"`` ``distribution``."""

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                 seed: int | None = None) -> None:
        super().__init__(seed)
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ArgumentError(f"VarianceScaling: mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ArgumentError("VarianceScaling: distribution must be 'truncated_normal', 'untruncated_normal' "
                                f"or 'uniform', got {distribution!r}")
        if not scale > 0:
            raise ArgumentError(f"VarianceScaling: scale must be positive, got {scale!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape: tuple[int, ...], dtype: Any = np.float32, fans: Fans | None = None) -> np.ndarray:
        fan_in, fan_out = fans or compute_fans(tuple(shape))
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        rng = self._rng()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            values = rng.uniform(-limit, limit, shape)
        elif self.distribution == "untruncated_normal":
            values = rng.normal(0.0, math.sqrt(variance), shape)
        else:  # a normal truncated at 2 sigma has 0.8796... of the standard deviation: scale it back
            values = _truncated_normal(rng, math.sqrt(variance) / 0.87962566103423978, shape)
        return values.astype(dtype)


class GlorotUniform(VarianceScaling):
    """Uniform in ``+-sqrt(6 / (fan_in + fan_out))`` (Xavier)."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(1.0, "fan_avg", "uniform", seed)


class GlorotNormal(VarianceScaling):
    """Truncated normal with variance ``2 / (fan_in + fan_out)``."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)


class HeUniform(VarianceScaling):
    """Uniform with variance ``2 / fan_in`` (for ReLU)."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(2.0, "fan_in", "uniform", seed)


class HeNormal(VarianceScaling):
    """Truncated normal with variance ``2 / fan_in`` (for ReLU)."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(2.0, "fan_in", "truncated_normal", seed)


class LecunUniform(VarianceScaling):
    """Uniform with variance ``1 / fan_in``."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(1.0, "fan_in", "uniform", seed)


class LecunNormal(VarianceScaling):
    """Truncated normal with variance ``1 / fan_in``."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(1.0, "fan_in", "truncated_normal", seed)


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain``, over the last axis against the others (recurrent kernels)."""

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape: tuple[int, ...], dtype: Any = np.float32, fans: Fans | None = None) -> np.ndarray:
        if len(shape) < 2:
            raise ArgumentError(f"Orthogonal: needs a shape of rank 2 or more, got {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = self._rng().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(dtype)


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only)."""

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.gain = float(gain)

    def __call__(self, shape: tuple[int, ...], dtype: Any = np.float32, fans: Fans | None = None) -> np.ndarray:
        if len(shape) != 2:
            raise ArgumentError(f"Identity: needs a 2-D shape, got {shape}")
        return (self.gain * np.eye(*shape)).astype(dtype)


_BY_NAME: dict[str, Callable[[], Initializer]] = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_uniform": RandomUniform, "uniform": RandomUniform,
    "normal": RandomNormal,
    "random_normal": RandomNormal, "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_uniform": HeUniform,
    "he_normal": HeNormal, "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal, "identity": Identity,
}


def get(identifier: Any) -> Initializer:
    """An initializer from a name (``"he_normal"``), an :class:`Initializer`, or a callable
    ``f(shape, dtype)``."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _BY_NAME:
            raise ArgumentError(f"unknown initializer {identifier!r}; expected one of {', '.join(sorted(_BY_NAME))}")
        return _BY_NAME[key]()
    if callable(identifier):
        return _Wrapped(identifier)
    raise ArgumentError(f"expected an initializer name, an Initializer or a callable, got {identifier!r}")


class _Wrapped(Initializer):
    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def __call__(self, shape: tuple[int, ...], dtype: Any = np.float32, fans: Fans | None = None) -> np.ndarray:
        return np.asarray(self.fn(shape, dtype), dtype=dtype)


glorot_uniform, glorot_normal, he_uniform, he_normal = GlorotUniform, GlorotNormal, HeUniform, HeNormal
lecun_uniform, lecun_normal, zeros, ones, orthogonal = LecunUniform, LecunNormal, Zeros, Ones, Orthogonal
