"""Dtypes graphc supports, and NumPy 2 promotion with weakly typed Python scalars.

A tensor is *weakly typed* when it comes from a bare Python scalar (``x * 2.5``,
``gc.constant(2.0)``).  As in NumPy 2 (NEP 50) and JAX, a weak operand takes the dtype of the
strongly typed operand it meets, so ``float32 * 2.5`` stays float32, while ``int32 * 2.5`` becomes
float64 because the scalar's *kind* (float) outranks the tensor's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.errors import DTypeError

bool_ = np.dtype(np.bool_)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)

SUPPORTED_DTYPES: tuple[np.dtype, ...] = (bool_, int8, int16, int32, int64, uint8, float32, float64)
_SUPPORTED_NAMES = ", ".join(d.name for d in SUPPORTED_DTYPES)

# The Python type NumPy treats as the weak stand-in for each kind of dtype.  (A Python bool is the
# lowest type anyway, so it is simply bool.)
_WEAK_PYTHON_TYPE: dict[str, Any] = {"b": bool_, "i": int, "u": int, "f": float}


def as_dtype(dtype: Any) -> np.dtype:
    """Normalise ``"float32"``, ``np.float32``, ``np.dtype(...)`` or ``gc.float32`` to a supported dtype."""
    if dtype is bool:
        return bool_
    if dtype is int:
        return int64
    if dtype is float:
        return float64
    try:
        result = np.dtype(dtype)
    except TypeError as exc:
        raise DTypeError(f"expected a dtype (one of {_SUPPORTED_NAMES}), got {dtype!r}") from exc
    if result not in SUPPORTED_DTYPES:
        raise DTypeError(f"dtype {result.name} is not supported; expected one of {_SUPPORTED_NAMES}")
    return result


def is_floating(dtype: np.dtype) -> bool:
    return dtype.kind == "f"


def is_integer(dtype: np.dtype) -> bool:
    return dtype.kind in "iu"


def is_bool(dtype: np.dtype) -> bool:
    return dtype.kind == "b"


def promotion_operand(dtype: np.dtype, weak: bool) -> Any:
    """What to hand NumPy's promotion machinery for an operand: a dtype, or a Python type if weak."""
    return _WEAK_PYTHON_TYPE[dtype.kind] if weak else dtype


def result_type(*operands: tuple[np.dtype, bool]) -> np.dtype:
    """NumPy 2 promotion of ``(dtype, weak)`` operands, as ``np.result_type`` does for Python scalars."""
    strong = [dt for dt, weak in operands if not weak]
    if not strong:
        return np.result_type(*[dt for dt, _ in operands])
    # np.result_type treats Python scalar *values* (not types) as weak.
    samples = [dt if not weak or dt.kind == "b" else _WEAK_PYTHON_TYPE[dt.kind](0) for dt, weak in operands]
    return supported_result(np.result_type(*samples))


def supported_result(dtype: np.dtype) -> np.dtype:
    """The supported dtype that stands for a NumPy result dtype graphc lacks.

    graphc has no float16 and no unsigned types wider than uint8: where NumPy would produce
    float16 (``exp`` of a bool) graphc gives float32; where it would give uint16/32/64 (``sum`` of
    uint8) graphc gives int64.
    """
    if dtype in SUPPORTED_DTYPES:
        return dtype
    if dtype.kind == "f" and dtype.itemsize < 4:
        return float32
    if dtype.kind in "iu":
        return int64
    raise DTypeError(f"dtype {dtype} is not supported; expected one of {_SUPPORTED_NAMES}")


def can_cast_value(given: np.dtype, expected: np.dtype) -> bool:
    """Whether a fed or assigned value of dtype ``given`` converts to ``expected`` without changing kind.

    float64 -> float32 and any integer -> any integer are allowed (the caller checks integer range
    and float overflow on the values); float -> int, int -> bool, strings and objects are not.
    """
    if given.kind not in "biuf":
        return False
    if given.kind in "iu" and expected.kind in "iu":
        return True
    return bool(np.can_cast(given, expected, casting="same_kind"))
