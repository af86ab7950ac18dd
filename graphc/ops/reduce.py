"""Reductions: sum mean max min prod argmax argmin logsumexp, with NumPy's axis/keepdims semantics."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc import dtypes
from graphc.errors import ArgumentError, ShapeError
from graphc.ir.registry import AbstractValue, OpDef, Reduction, register
from graphc.ir.shapes import Shape, normalize_axes, normalize_axis
from graphc.ir.tensor import Tensor
from graphc.ops._common import float_dtype_for, make_node, reporting, to_tensors


def reduced_shape(shape: Shape, axes: tuple[int, ...], keepdims: bool) -> Shape:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _accumulator_dtype(dtype: np.dtype) -> np.dtype:
    """sum/prod accumulate bools and small ints in int64, as NumPy does on 64-bit platforms."""
    return dtypes.supported_result(np.add.reduce(np.zeros(1, dtype)).dtype)


def _mean_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if dtype.kind == "f" else dtypes.float64


def _same(dtype: np.dtype) -> np.dtype:
    return dtype


def _check_nonempty(name: str, shape: Shape, axes: tuple[int, ...]) -> None:
    for a in axes:
        if shape[a] == 0:
            raise ShapeError(f"{name} over axis {a} of size 0 has no identity")


def _make_infer(name: str, out_dtype: Callable[[np.dtype], np.dtype], needs_identity: bool
                ) -> Callable[..., AbstractValue]:
    def infer(inputs: Sequence[AbstractValue], *, axes: tuple[int, ...], keepdims: bool) -> AbstractValue:
        (x,) = inputs
        if needs_identity:
            _check_nonempty(name, x.shape, axes)
        return AbstractValue(out_dtype(x.dtype), reduced_shape(x.shape, axes, keepdims))

    return infer


def stable_shift(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """The max over ``axes`` (kept), replaced by 0 where it is not finite or ``x`` is empty: what the
    softmax family subtracts before exponentiating so that nothing overflows."""
    m = np.max(x, axis=axes, keepdims=True) if x.size else np.zeros((), x.dtype)
    return np.where(np.isfinite(m), m, np.zeros((), x.dtype))


def _logsumexp(x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    if x.size == 0:
        return np.log(np.sum(np.exp(x), axis=axes, keepdims=keepdims))
    m = stable_shift(x, axes)
    out = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axes)


def _mean(x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    # np.mean is this sum and division; written out so an empty axis gives nan without a warning
    count = int(np.prod([x.shape[a] for a in axes]))
    total = np.sum(x, axis=axes, keepdims=keepdims, dtype=_mean_dtype(x.dtype))
    return np.true_divide(total, count, dtype=total.dtype)


def _numpy_reduction(fn: Callable[..., Any], dtype_of: Callable[[np.dtype], np.dtype]) -> Callable[..., Any]:
    def reference(x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        return fn(x, axis=axes, keepdims=keepdims, dtype=dtype_of(x.dtype))

    return reference


def _extremum(fn: Callable[..., Any]) -> Callable[..., Any]:
    def reference(x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        return fn(x, axis=axes, keepdims=keepdims)

    return reference


# ---- gradient rules ---------------------------------------------------------------------------------

def _spread(node: Tensor, value: Tensor) -> Tensor:
    """A reduced value (of ``node``'s shape) broadcast back over the reduced input's shape."""
    from graphc.ops.like import broadcast_like
    from graphc.ops.shape import expand_dims

    axes, keepdims = node.attrs["axes"], node.attrs["keepdims"]
    kept = value if keepdims or not axes else expand_dims(value, axes)
    return broadcast_like(kept, node.inputs[0])


def _count(node: Tensor) -> Any:
    """How many elements each output of ``node`` reduces over (a number, or a tensor if unknown)."""
    from graphc.ops.like import fill_like

    x, axes = node.inputs[0], node.attrs["axes"]
    dims = [x.shape[a] for a in axes]
    if all(d is not None for d in dims):
        return int(np.prod(dims))
    return sum(fill_like(x, 1), axis=axes, keepdims=True)


def _sum_grad(node: Tensor, g: Tensor) -> list[Any]:
    return [_spread(node, g)]


def _mean_grad(node: Tensor, g: Tensor) -> list[Any]:
    return [_spread(node, g) / _count(node)]


def _extremum_grad(node: Tensor, g: Tensor) -> list[Any]:
    # the gradient goes to the elements equal to the extremum, split evenly among ties
    from graphc.ops.elementwise import cast, equal

    x = node.inputs[0]
    hits = cast(equal(x, _spread(node, node)), x.dtype)
    ties = sum(hits, axis=node.attrs["axes"], keepdims=True)
    return [_spread(node, g) * hits / ties]


def _prod_grad(node: Tensor, g: Tensor) -> list[Any]:
    # d prod / d x_i = product of the others: prod / x_i without zeros; with exactly one zero only
    # that element gets the product of the rest; with two or more zeros every derivative is 0
    from graphc.ops.elementwise import cast, equal, logical_and, where

    x, axes = node.inputs[0], node.attrs["axes"]
    is_zero = equal(x, 0)
    nonzero = where(is_zero, 1, x)
    product = prod(nonzero, axis=axes, keepdims=True)
    zeros = sum(cast(is_zero, x.dtype), axis=axes, keepdims=True)
    others = where(equal(zeros, 0), product / nonzero, where(logical_and(equal(zeros, 1), is_zero), product, 0))
    return [_spread(node, g) * others]


def _logsumexp_grad(node: Tensor, g: Tensor) -> list[Any]:
    probabilities = make_node("softmax", [node.inputs[0]], axes=node.attrs["axes"])  # (nn.py's op)
    return [_spread(node, g) * probabilities]


_GRADS = {"sum": _sum_grad, "mean": _mean_grad, "max": _extremum_grad, "min": _extremum_grad,
          "prod": _prod_grad, "logsumexp": _logsumexp_grad}


def _zero(dtype: np.dtype) -> object:
    return 0


def _one(dtype: np.dtype) -> object:
    return 1


def _lowest(dtype: np.dtype) -> object:
    """The identity of max: the smallest value of ``dtype``."""
    if dtype.kind == "f":
        return -math.inf
    if dtype.kind == "b":
        return False
    return int(np.iinfo(dtype).min)


def _highest(dtype: np.dtype) -> object:
    """The identity of min: the largest value of ``dtype``."""
    if dtype.kind == "f":
        return math.inf
    if dtype.kind == "b":
        return True
    return int(np.iinfo(dtype).max)


_FOLDS = {
    "sum": Reduction("add", _zero), "mean": Reduction("add", _zero, mean=True), "prod": Reduction("multiply", _one),
    "max": Reduction("maximum", _lowest), "min": Reduction("minimum", _highest), "logsumexp": Reduction(None),
}

# name: (reference, output dtype rule, needs a non-empty axis, differentiable, doc)
_REDUCTIONS: dict[str, tuple[Callable[..., Any], Callable[[np.dtype], np.dtype], bool, bool, str]] = {
    "sum": (_numpy_reduction(np.sum, _accumulator_dtype), _accumulator_dtype, False, True,
            "sum; bools and small ints accumulate in int64"),
    "prod": (_numpy_reduction(np.prod, _accumulator_dtype), _accumulator_dtype, False, True,
             "product; bools and small ints accumulate in int64"),
    "mean": (_mean, _mean_dtype, False, True,
             "arithmetic mean; ints give float64; empty gives nan"),
    "max": (_extremum(np.max), _same, True, True, "maximum; nan wins; an empty axis is an error"),
    "min": (_extremum(np.min), _same, True, True, "minimum; nan wins; an empty axis is an error"),
    "logsumexp": (_logsumexp, float_dtype_for, False, True, "log(sum(exp(x))) without overflow"),
}

for _name, (_ref, _dtype_rule, _needs_identity, _diff, _doc) in _REDUCTIONS.items():
    register(OpDef(_name, "reduce", _make_infer(_name, _dtype_rule, _needs_identity), _ref, num_inputs=1,
                   differentiable=_diff, grad=_GRADS[_name], doc=_doc, reduction=_FOLDS[_name]))


def _reduce(name: str, x: Any, axis: Any, keepdims: bool) -> Tensor:
    def build() -> Tensor:
        (t,) = to_tensors([x])
        if name == "logsumexp":
            from graphc.ops._common import cast_to

            t = cast_to(t, float_dtype_for(t.dtype))
        return make_node(name, [t], axes=normalize_axes(axis, t.ndim), keepdims=bool(keepdims))

    return reporting(name, [x], build)


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (None: all axes; int or tuple, negative allowed)."""
    return _reduce("sum", x, axis, keepdims)


def prod(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Product over ``axis``."""
    return _reduce("prod", x, axis, keepdims)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over ``axis``."""
    return _reduce("mean", x, axis, keepdims)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Maximum over ``axis``; nan propagates."""
    return _reduce("max", x, axis, keepdims)


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Minimum over ``axis``; nan propagates."""
    return _reduce("min", x, axis, keepdims)


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """``log(sum(exp(x), axis))`` computed stably (no overflow for large inputs)."""
    return _reduce("logsumexp", x, axis, keepdims)


def _infer_arg(name: str) -> Callable[..., AbstractValue]:
    def infer(inputs: Sequence[AbstractValue], *, axis: int | None, keepdims: bool) -> AbstractValue:
        (x,) = inputs
        axes = tuple(range(len(x.shape))) if axis is None else (axis,)
        _check_nonempty(name, x.shape, axes)
        if axis is None:
            shape: Shape = (1,) * len(x.shape) if keepdims else ()
        else:
            shape = reduced_shape(x.shape, axes, keepdims)
        return AbstractValue(dtypes.int64, shape)

    return infer


def _arg_reference(fn: Callable[..., Any]) -> Callable[..., Any]:
    def reference(x: np.ndarray, *, axis: int | None, keepdims: bool) -> np.ndarray:
        return fn(x, axis=axis, keepdims=keepdims)

    return reference


register(OpDef("argmax", "reduce", _infer_arg("argmax"), _arg_reference(np.argmax), num_inputs=1,
               differentiable=False, doc="index of the first maximum (of the flattened tensor if axis=None)"))
register(OpDef("argmin", "reduce", _infer_arg("argmin"), _arg_reference(np.argmin), num_inputs=1,
               differentiable=False, doc="index of the first minimum (of the flattened tensor if axis=None)"))


def _arg(name: str, x: Any, axis: Any, keepdims: bool) -> Tensor:
    def build() -> Tensor:
        (t,) = to_tensors([x])
        if isinstance(axis, (tuple, list)):
            raise ArgumentError(f"{name} takes a single axis or None, got {axis!r}")
        norm = None if axis is None else normalize_axis(axis, t.ndim)
        return make_node(name, [t], axis=norm, keepdims=bool(keepdims))

    return reporting(name, [x], build)


def argmax(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the maximum along ``axis`` (of the flattened tensor if None), as int64."""
    return _arg("argmax", x, axis, keepdims)


def argmin(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the minimum along ``axis`` (of the flattened tensor if None), as int64."""
    return _arg("argmin", x, axis, keepdims)


__all__ = ["argmax", "argmin", "logsumexp", "max", "mean", "min", "prod", "sum"]
