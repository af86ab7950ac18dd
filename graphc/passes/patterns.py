"""Small helpers rewrites use to look at nodes."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.ir.shapes import is_static
from graphc.ir.tensor import Tensor
from graphc.passes.engine import producer


def constant_value(t: Tensor) -> np.ndarray | None:
    """The value of ``t`` if it is a constant rewrites may look at, else ``None``."""
    return t.attrs["value"] if producer(t, "constant") is not None else None


def is_constant(t: Tensor, value: Any) -> bool:
    """``t`` is a constant whose every element equals ``value`` (-0.0 and 0.0 are told apart)."""
    v = constant_value(t)
    if v is None or v.size == 0:
        return False
    try:
        target = np.asarray(value, v.dtype)
    except (OverflowError, ValueError):
        return False
    if target != value:  # not representable (0.5 in an integer dtype)
        return False
    same = v == target
    if v.dtype.kind == "f" and target == 0:
        same &= np.signbit(v) == np.signbit(target)
    return bool(np.all(same))


def broadcasts_into(small: Tensor, big: Tensor) -> bool:
    """Broadcasting ``small`` against ``big`` leaves ``big``'s shape unchanged."""
    lead = len(big.shape) - len(small.shape)
    return lead >= 0 and all(s == 1 or (s is not None and s == b) for s, b in zip(small.shape, big.shape[lead:]))


def other(node: Tensor, t: Tensor) -> Tensor:
    """The input of binary ``node`` that is not ``t``."""
    a, b = node.inputs
    return b if a is t else a


def static_shape(t: Tensor) -> tuple[int, ...] | None:
    return t.shape if is_static(t.shape) else None  # type: ignore[return-value]
