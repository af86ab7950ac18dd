"""The specialize phase: general forms replaced by cheaper special ops with identical results."""

from __future__ import annotations

import numpy as np

from graphc.ir.tensor import Tensor
from graphc.ops import elementwise as ew
from graphc.ops._common import make_node
from graphc.passes.engine import Rewrite, producer
from graphc.passes.patterns import broadcasts_into, constant_value, is_constant

PHASE = "specialize"


def _multiply_self(node: Tensor) -> Tensor | None:
    """x * x -> square(x) (the same single rounding)."""
    a, b = node.inputs
    return ew.square(a) if a is b else None


def _reciprocal_sqrt(node: Tensor) -> Tensor | None:
    """1 / sqrt(x) and reciprocal(sqrt(x)) -> rsqrt(x) (rsqrt is defined as 1 / sqrt(x))."""
    if node.op == "divide":
        one, root = node.inputs
        if not (is_constant(one, 1) and broadcasts_into(one, root)):
            return None
    else:
        (root,) = node.inputs
    s = producer(root, "sqrt")
    return make_node("rsqrt", [s.inputs[0]]) if s is not None and s.shape == node.shape else None


def _divide_by_power_of_two(node: Tensor) -> Tensor | None:
    """x / c -> x * (1/c) when c is a power of two, so 1/c is exact and the product rounds the same."""
    x, c = node.inputs
    value = constant_value(c)
    if value is None or node.dtype.kind != "f" or not broadcasts_into(c, x) or value.size == 0:
        return None
    mantissa, _ = np.frexp(value)
    if not np.all((np.abs(mantissa) == 0.5) & np.isfinite(value)):
        return None
    inverse = (1 / value).astype(value.dtype)
    if not np.all(np.isfinite(inverse)) or np.any(inverse == 0):
        return None
    from graphc.ir.build import constant

    return make_node("multiply", [x, constant(inverse, dtype=value.dtype)])


def _drop_stop_gradient(node: Tensor) -> Tensor | None:
    """stop_gradient(x) -> x.  It only matters to gc.grad, which runs the canonicalize and stabilize
    phases but never this one, so it is removed only from graphs about to run."""
    return node.inputs[0]


REWRITES: list[Rewrite] = [
    Rewrite("square", PHASE, ("multiply",), _multiply_self, "x * x -> square(x)"),
    Rewrite("rsqrt", PHASE, ("divide", "reciprocal"), _reciprocal_sqrt, "1 / sqrt(x) -> rsqrt(x)"),
    Rewrite("divide_by_power_of_two", PHASE, ("divide",), _divide_by_power_of_two,
            "x / 2**k -> x * 2**-k (exact)"),
    Rewrite("drop_stop_gradient", PHASE, ("stop_gradient",), _drop_stop_gradient,
            "stop_gradient(x) -> x (it is the identity when the graph runs)"),
]

__all__ = ["PHASE", "REWRITES"]
