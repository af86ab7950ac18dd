"""Static shapes: tuples of ints, with ``None`` for a dimension known only at run time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from graphc.errors import ArgumentError, ShapeError
from graphc.ir.symbolic import SymInt, require_equal

Dim = int | SymInt | None  # SymInt: a run-time size in ahead-of-time compiled code (ir/symbolic.py)
Shape = tuple[Dim, ...]


def as_shape(shape: Iterable[Dim] | int | None) -> Shape:
    """Normalise a user-given shape: ints >= 0 and ``None`` for unknown dimensions."""
    if shape is None:
        raise ShapeError("expected a shape (a tuple of ints, None for unknown dims), got None")
    if isinstance(shape, int):
        shape = (shape,)
    result = []
    for dim in shape:
        if dim is None:
            result.append(None)
        elif isinstance(dim, bool) or not hasattr(dim, "__index__"):
            raise ShapeError(f"expected a shape of ints or None, got {tuple(shape)!r}")
        elif dim.__index__() < 0:
            raise ShapeError(f"expected non-negative dimensions, got {tuple(shape)!r}")
        else:
            result.append(dim.__index__())
    return tuple(result)


def format_shape(shape: Shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def is_static(shape: Shape) -> bool:
    return all(d is not None for d in shape)


def num_elements(shape: Shape) -> int | None:
    total = 1
    for d in shape:
        if d is None:
            return None
        total *= d
    return total


def broadcast_shapes(*shapes: Shape) -> Shape:
    """NumPy broadcasting of static shapes; an unknown dim broadcast with n > 1 is taken to be n."""
    ndim = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out: list[Dim] = []
    for axis in range(ndim):
        dims = [s[axis] for s in padded]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            require_equal(known)
            raise ShapeError(
                "cannot broadcast shapes " + " and ".join(format_shape(s) for s in shapes)
                + f" (axis {axis - ndim}: sizes {sorted(known)})"
            )
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def normalize_axis(axis: int, ndim: int) -> int:
    """An axis in ``[-ndim, ndim)`` mapped to ``[0, ndim)``."""
    if isinstance(axis, bool) or not hasattr(axis, "__index__"):
        raise ArgumentError(f"expected an integer axis, got {axis!r}")
    axis = axis.__index__()
    if not -ndim <= axis < ndim:
        raise ArgumentError(f"axis {axis} is out of range for a tensor of rank {ndim}")
    return axis % ndim if ndim else 0


def normalize_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """``None`` means every axis; ints and tuples are normalised, sorted and checked for repeats."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if not isinstance(axis, (tuple, list)) else tuple(axis)
    normalized = tuple(normalize_axis(a, ndim) for a in axes)
    if len(set(normalized)) != len(normalized):
        raise ArgumentError(f"repeated axis in {axis!r}")
    return tuple(sorted(normalized))


def dims_equal(a: Dim, b: Dim) -> bool:
    """Whether two dims may be equal: unknown matches anything."""
    if a is None or b is None or a == b:
        return True
    require_equal((a, b))
    return False


def merge_dim(a: Dim, b: Dim) -> Dim:
    return a if a is not None else b
