"""Basic slicing: ``x[...]`` with ints, slices (any step, negative too), ``None`` and ``Ellipsis``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.errors import ArgumentError, ShapeError
from graphc.ir.registry import AbstractValue, OpDef, register
from graphc.ir.shapes import Shape
from graphc.ir.tensor import Tensor
from graphc.ops._common import make_node, reporting, to_tensors

# A normalised index is a tuple with one entry per item of the user's index after Ellipsis is expanded:
#   ("int", i)                 select one position (the axis disappears)
#   ("slice", start, stop, step)  as Python's slice (None allowed for start/stop)
#   ("new",)                   insert a size-1 axis (None / np.newaxis)
IndexEntry = tuple[Any, ...]


def _as_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ArgumentError(f"slice bounds must be integers or None, got {value!r}")
    return value.__index__()


def normalize_index(index: Any, ndim: int) -> tuple[IndexEntry, ...]:
    items = index if isinstance(index, tuple) else (index,)
    for item in items:
        if isinstance(item, (Tensor, list, np.ndarray, bool, np.bool_)):
            raise ArgumentError(
                f"only basic indexing (ints, slices, None, ...) is supported, got {type(item).__name__}; "
                "use gc.take for integer-array indexing")
    if sum(1 for item in items if item is Ellipsis) > 1:
        raise ArgumentError("an index can only have a single ellipsis ('...')")
    consumed = sum(1 for item in items if item is not None and item is not Ellipsis)
    if consumed > ndim:
        raise ShapeError(f"too many indices: {consumed} given for a tensor of rank {ndim}")
    entries: list[IndexEntry] = []
    for item in items:
        if item is Ellipsis:
            entries.extend([("slice", None, None, None)] * (ndim - consumed))
        elif item is None:
            entries.append(("new",))
        elif isinstance(item, slice):
            step = _as_int(item.step)
            if step == 0:
                raise ArgumentError("slice step cannot be zero")
            entries.append(("slice", _as_int(item.start), _as_int(item.stop), step))
        elif hasattr(item, "__index__"):
            entries.append(("int", item.__index__()))
        else:
            raise ArgumentError(f"unsupported index item {item!r}")
    if Ellipsis not in items:
        entries.extend([("slice", None, None, None)] * (ndim - consumed))
    return tuple(entries)


def _to_python_index(entries: Sequence[IndexEntry]) -> tuple[Any, ...]:
    out: list[Any] = []
    for e in entries:
        if e[0] == "int":
            out.append(e[1])
        elif e[0] == "new":
            out.append(None)
        else:
            out.append(slice(e[1], e[2], e[3]))
    return tuple(out)


def _infer_slice(inputs: Sequence[AbstractValue], *, index: tuple[IndexEntry, ...]) -> AbstractValue:
    (x,) = inputs
    out: list[int | None] = []
    axis = 0
    for e in index:
        if e[0] == "new":
            out.append(1)
            continue
        dim = x.shape[axis]
        if e[0] == "slice":  # an int removes the axis; its bounds are checked by getitem or at run time
            whole = e[1] is None and e[2] is None and e[3] in (None, 1)  # ':' keeps a run-time size as it is
            out.append(dim if dim is None or whole else len(range(*slice(e[1], e[2], e[3]).indices(dim))))
        axis += 1
    shape: Shape = tuple(out)
    return AbstractValue(x.dtype, shape)


def _slice_reference(x: np.ndarray, *, index: tuple[IndexEntry, ...]) -> np.ndarray:
    return x[_to_python_index(index)]


def _slice_grad(node: Tensor, g: Tensor) -> list[Any]:
    return [make_node("slice_grad", [g, node.inputs[0]], index=node.attrs["index"])]


def _infer_slice_grad(inputs: Sequence[AbstractValue], *, index: tuple[IndexEntry, ...]) -> AbstractValue:
    return AbstractValue(inputs[0].dtype, inputs[1].shape)


def _slice_grad_reference(g: np.ndarray, like: np.ndarray, *, index: tuple[IndexEntry, ...]) -> np.ndarray:
    out = np.zeros(like.shape, g.dtype)
    out[_to_python_index(index)] = g
    return out


register(OpDef("slice_grad", "shape", _infer_slice_grad, _slice_grad_reference, num_inputs=2,
               grad=lambda node, g: [make_node("slice", [g], index=node.attrs["index"]), None],
               doc="gradient of slicing: zeros of the like input's shape with g written at the index"))

register(OpDef("slice", "shape", _infer_slice, _slice_reference, num_inputs=1, grad=_slice_grad,
               doc="basic slicing: ints, slices with any step, None and Ellipsis"))


def _check_static_bounds(shape: Shape, index: tuple[IndexEntry, ...]) -> None:
    """An int index on an axis of known size must be in range; unknown axes are checked at run time."""
    axis = 0
    for e in index:
        if e[0] == "new":
            continue
        dim = shape[axis]
        if e[0] == "int" and dim is not None and not -dim <= e[1] < dim:
            raise ShapeError(f"index {e[1]} is out of bounds for axis {axis} with size {dim}")
        axis += 1


def getitem(x: Any, index: Any) -> Tensor:
    """``x[index]`` with NumPy basic-slicing semantics.  An int index on an axis whose size is
    unknown is checked when the graph runs (``ExecutionError``)."""

    def build() -> Tensor:
        (t,) = to_tensors([x])
        entries = normalize_index(index, t.ndim)
        _check_static_bounds(t.shape, entries)
        return make_node("slice", [t], index=entries)

    return reporting("slice", [x], build)


__all__ = ["getitem"]
