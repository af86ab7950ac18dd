"""Helpers shared by the op families: promotion with explicit casts, and user-line error reporting."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc import dtypes
from graphc.errors import ArgumentError, DTypeError, GraphcError, GraphError, ShapeError
from graphc.ir.build import annotate, as_tensor, constant, make_node
from graphc.ir.location import user_location
from graphc.ir.tensor import Tensor

BUILD_ERRORS = (ShapeError, DTypeError, ArgumentError, GraphError)


def reporting(op_name: str, inputs: Sequence[Any], fn: Callable[[], Any]) -> Any:
    """Run ``fn``; a build error it raises is re-raised naming ``op_name``, its inputs and the user's line."""
    try:
        return fn()
    except BUILD_ERRORS as exc:
        if getattr(exc, "location", None) is not None:
            raise  # already annotated by an inner make_node
        tensors = [t for t in inputs if isinstance(t, Tensor)]
        raise annotate(exc, op_name, tensors, user_location()) from None


def cast_to(t: Tensor, dtype: np.dtype) -> Tensor:
    """``t`` converted to ``dtype``: a constant is re-typed in place, anything else gets a cast node.

    A weakly typed Python integer that does not fit the target integer type is an error, as in NumPy 2.
    """
    if t.dtype == dtype:
        return t
    if t.op == "constant":
        value = t.attrs["value"]
        if t.weak:
            check_python_int_fits(value, dtype)
        with np.errstate(all="ignore"):
            converted = value.astype(dtype)
        converted.setflags(write=False)
        return make_node("constant", [], value=converted, weak=t.weak)
    return make_node("cast", [t], dtype=dtype)


def python_int_fits(value: Any, dtype: np.dtype) -> bool:
    """Whether integer ``value`` (scalar or array) lies in integer ``dtype``'s range (other kinds: True)."""
    array = np.asarray(value)
    if dtype.kind not in "iu" or array.dtype.kind not in "iu" or not array.size:
        return True
    info = np.iinfo(dtype)
    return bool(info.min <= array.min() and array.max() <= info.max)


def check_python_int_fits(value: Any, dtype: np.dtype) -> None:
    """A Python integer converted to an integer dtype must fit (NumPy 2 raises OverflowError)."""
    if not python_int_fits(value, dtype):
        array = np.asarray(value)
        bad = array.max() if array.max() > np.iinfo(dtype).max else array.min()
        raise DTypeError(f"Python integer {bad} is out of bounds for {dtype.name}")


def to_arrays(values: Sequence[Any]) -> list[Tensor]:
    """Tensors as they are; anything else as a strongly typed constant, as NumPy's array functions
    (concatenate, stack) convert Python scalars and lists with ``np.asarray``."""
    return [_with_value(v) if isinstance(v, Tensor) else constant(np.asarray(v)) for v in values]


def promote(tensors: Sequence[Tensor]) -> tuple[list[Tensor], bool]:
    """Cast ``tensors`` to their common dtype (NumPy 2 rules, weak scalars); also whether all were weak."""
    common = dtypes.result_type(*[(t.dtype, t.weak) for t in tensors])
    return [cast_to(t, common) for t in tensors], all(t.weak for t in tensors)


def _with_value(t: Tensor) -> Tensor:
    if not t.opdef.produces_value:
        raise GraphError(f"{t.describe()} is an op without a value (group); it can only be fetched or grouped")
    return t


def to_tensors(values: Sequence[Any]) -> list[Tensor]:
    """Operands as tensors: Python and NumPy values become constants (Python scalars weakly typed)."""
    return [_with_value(as_tensor(v)) for v in values]


def require_numeric(op_name: str, dtype: np.dtype) -> None:
    if dtype.kind == "b":
        raise DTypeError(f"{op_name} expects a numeric tensor, got bool")


def float_dtype_for(dtype: np.dtype) -> np.dtype:
    """The float dtype NumPy computes transcendental functions of ``dtype`` in (``np.exp``'s rule)."""
    return dtypes.supported_result(np.exp.resolve_dtypes((dtype, None))[-1])


__all__ = [
    "BUILD_ERRORS",
    "GraphcError",
    "cast_to",
    "check_python_int_fits",
    "constant",
    "float_dtype_for",
    "make_node",
    "promote",
    "python_int_fits",
    "reporting",
    "require_numeric",
    "to_arrays",
    "to_tensors",
]
