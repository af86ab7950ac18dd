"""How graphc dtypes are represented in LLVM: in memory, and as computed values."""

from __future__ import annotations

import numpy as np
from llvmlite import ir

_STORAGE = {
    "bool": ir.IntType(8), "int8": ir.IntType(8), "uint8": ir.IntType(8), "int16": ir.IntType(16),
    "int32": ir.IntType(32), "int64": ir.IntType(64), "float32": ir.FloatType(), "float64": ir.DoubleType(),
}
I1 = ir.IntType(1)
I64 = ir.IntType(64)


def storage_type(dtype: np.dtype) -> ir.Type:
    """The type of one element in a buffer (bools are bytes, as in NumPy)."""
    return _STORAGE[np.dtype(dtype).name]


def value_type(dtype: np.dtype) -> ir.Type:
    """The type of a computed value (bools are i1)."""
    return I1 if np.dtype(dtype).kind == "b" else storage_type(dtype)


def constant(dtype: np.dtype, value: object) -> ir.Constant:
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return ir.Constant(I1, int(bool(value)))
    if dtype.kind == "f":
        return ir.Constant(value_type(dtype), float(value))  # type: ignore[arg-type]
    return ir.Constant(value_type(dtype), int(value))  # type: ignore[call-overload]


def load_value(builder: ir.IRBuilder, pointer: ir.Value, dtype: np.dtype) -> ir.Value:
    raw = builder.load(pointer)
    return builder.icmp_unsigned("!=", raw, ir.Constant(raw.type, 0)) if np.dtype(dtype).kind == "b" else raw


def store_value(builder: ir.IRBuilder, value: ir.Value, pointer: ir.Value, dtype: np.dtype) -> None:
    if np.dtype(dtype).kind == "b":
        value = builder.zext(value, storage_type(dtype))
    builder.store(value, pointer)
