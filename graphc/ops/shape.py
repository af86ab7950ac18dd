"""Shape ops: reshape transpose expand_dims squeeze broadcast_to concat stack split pad take one_hot."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc import dtypes
from graphc.errors import ArgumentError, DTypeError, ShapeError
from graphc.ir.registry import AbstractValue, OpDef, register
from graphc.ir.shapes import (
    Shape,
    dims_equal,
    format_shape,
    normalize_axes,
    normalize_axis,
    num_elements,
)
from graphc.ir.tensor import Tensor
from graphc.ops._common import check_python_int_fits, make_node, promote, reporting, to_arrays, to_tensors
from graphc.ops.like import fill_like, reshape_like, sum_to


def _int_tuple(values: Any, what: str) -> tuple[int, ...]:
    seq = values if isinstance(values, (tuple, list)) else (values,)
    out = []
    for v in seq:
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise ArgumentError(f"{what} must be integers, got {values!r}")
        out.append(v.__index__())
    return tuple(out)


# ---- reshape ------------------------------------------------------------------------------------

def _infer_reshape(inputs: Sequence[AbstractValue], *, shape: tuple[int, ...]) -> AbstractValue:
    (x,) = inputs
    if sum(1 for d in shape if d == -1) > 1:
        raise ArgumentError(f"reshape: at most one -1 in the new shape, got {shape}")
    if any(d < -1 for d in shape):
        raise ArgumentError(f"reshape: invalid dimension in new shape {shape}")
    total = num_elements(x.shape)
    known = math.prod(d for d in shape if d != -1)
    if -1 in shape:
        if total is None:
            out: Shape = tuple(None if d == -1 else d for d in shape)
        elif known == 0 or total % known:
            raise ShapeError(f"cannot reshape {format_shape(x.shape)} ({total} elements) into {shape}")
        else:
            out = tuple(total // known if d == -1 else d for d in shape)
    else:
        if total is not None and total != known:
            raise ShapeError(f"cannot reshape {format_shape(x.shape)} ({total} elements) into {shape}")
        out = tuple(shape)
    return AbstractValue(x.dtype, out)


def _reshape_grad(node: Tensor, g: Tensor) -> list[Any]:
    return [reshape_like(g, node.inputs[0])]


register(OpDef("reshape", "shape", _infer_reshape, lambda x, *, shape: np.reshape(x, shape), num_inputs=1,
               grad=_reshape_grad, data_unchanged="always",
               doc="same elements, new shape (row-major); one dimension may be -1"))


def reshape(x: Any, shape: Any) -> Tensor:
    """``x`` with a new shape; one entry may be -1 (inferred)."""
    return reporting("reshape", [x], lambda: make_node(
        "reshape", to_tensors([x]), shape=_int_tuple(shape, "reshape's shape")))


# ---- transpose ----------------------------------------------------------------------------------

def _infer_transpose(inputs: Sequence[AbstractValue], *, perm: tuple[int, ...]) -> AbstractValue:
    (x,) = inputs
    return AbstractValue(x.dtype, tuple(x.shape[p] for p in perm))


def _transpose_grad(node: Tensor, g: Tensor) -> list[Any]:
    return [make_node("transpose", [g], perm=tuple(np.argsort(node.attrs["perm"]).tolist()))]


register(OpDef("transpose", "shape", _infer_transpose, lambda x, *, perm: np.transpose(x, perm),
               num_inputs=1, grad=_transpose_grad, doc="permute axes (reverse them by default)"))


def transpose(x: Any, axes: Any = None) -> Tensor:
    """Permute the axes of ``x``; ``axes=None`` reverses them."""

    def build() -> Tensor:
        (t,) = to_tensors([x])
        if axes is None:
            perm = tuple(reversed(range(t.ndim)))
        else:
            raw = _int_tuple(axes, "transpose's axes")
            perm = tuple(normalize_axis(a, t.ndim) for a in raw)
            if sorted(perm) != list(range(t.ndim)):
                raise ArgumentError(f"transpose: axes {raw} are not a permutation of {t.ndim} axes")
        return make_node("transpose", [t], perm=perm)

    return reporting("transpose", [x], build)


# ---- expand_dims / squeeze ----------------------------------------------------------------------

def expand_dims(x: Any, axis: Any) -> Tensor:
    """Insert size-1 axes at positions ``axis`` (int or tuple) of the result."""

    def build() -> Tensor:
        (t,) = to_tensors([x])
        raw = _int_tuple(axis, "expand_dims's axis")
        axes = normalize_axes(raw, t.ndim + len(raw))
        return make_node("reshape_dims", [t], name="expand_dims", kind="expand_dims", axis=axes)

    return reporting("expand_dims", [x], build)


def squeeze(x: Any, axis: Any = None) -> Tensor:
    """Remove size-1 axes (all of them if ``axis`` is None; these must then be known statically)."""

    def build() -> Tensor:
        (t,) = to_tensors([x])
        if axis is None:
            if any(d is None for d in t.shape):
                raise ShapeError(f"squeeze without axis needs a fully known shape, got {format_shape(t.shape)}; "
                                 "pass axis=")
            axes = tuple(i for i, d in enumerate(t.shape) if d == 1)
        else:
            axes = normalize_axes(_int_tuple(axis, "squeeze's axis"), t.ndim)
        return make_node("reshape_dims", [t], name="squeeze", kind="squeeze", axis=axes)

    return reporting("squeeze", [x], build)


def _infer_reshape_dims(inputs: Sequence[AbstractValue], *, kind: str, axis: tuple[int, ...]) -> AbstractValue:
    (x,) = inputs
    if kind == "squeeze":
        for a in axis:
            if not dims_equal(x.shape[a], 1):
                raise ShapeError(f"squeeze: axis {a} has size {x.shape[a]}, expected 1")
        return AbstractValue(x.dtype, tuple(d for i, d in enumerate(x.shape) if i not in axis))
    shape = list(x.shape)
    for a in axis:
        shape.insert(a, 1)
    return AbstractValue(x.dtype, tuple(shape))


def _reshape_dims_reference(x: np.ndarray, *, kind: str, axis: tuple[int, ...]) -> np.ndarray:
    return np.squeeze(x, axis) if kind == "squeeze" else np.expand_dims(x, axis)


def _reshape_dims_grad(node: Tensor, g: Tensor) -> list[Any]:
    inverse = "squeeze" if node.attrs["kind"] == "expand_dims" else "expand_dims"
    return [make_node("reshape_dims", [g], kind=inverse, axis=node.attrs["axis"])]


register(OpDef("reshape_dims", "shape", _infer_reshape_dims, _reshape_dims_reference, num_inputs=1,
               grad=_reshape_dims_grad, data_unchanged="always",
               doc="insert (expand_dims) or remove (squeeze) size-1 axes; works with unknown dims"))


# ---- broadcast_to -------------------------------------------------------------------------------

def _infer_broadcast_to(inputs: Sequence[AbstractValue], *, shape: tuple[int, ...]) -> AbstractValue:
    (x,) = inputs
    if any(s < 0 for s in shape):
        raise ArgumentError(f"broadcast_to: the target shape {shape} has a negative dimension")
    lead = len(shape) - len(x.shape)
    # an unknown dim may turn out to be 1 or the target size: it is checked again with the fed shapes
    if lead < 0 or not all(d is None or d in (1, s) for d, s in zip(x.shape, shape[lead:])):
        raise ShapeError(f"cannot broadcast {format_shape(x.shape)} to {format_shape(shape)}")
    return AbstractValue(x.dtype, shape)


register(OpDef("broadcast_to", "shape", _infer_broadcast_to,
               lambda x, *, shape: np.broadcast_to(x, shape), num_inputs=1, data_unchanged="same shape",
               grad=lambda node, g: [sum_to(g, node.inputs[0])],
               doc="repeat size-1 (and new leading) axes to a larger shape"))


def broadcast_to(x: Any, shape: Any) -> Tensor:
    """``x`` broadcast to ``shape`` (NumPy rules)."""
    return reporting("broadcast_to", [x], lambda: make_node(
        "broadcast_to", to_tensors([x]), shape=_int_tuple(shape, "broadcast_to's shape")))


# ---- concat / stack / split ---------------------------------------------------------------------

def _infer_concat(inputs: Sequence[AbstractValue], *, axis: int) -> AbstractValue:
    first = inputs[0]
    if len({a.dtype for a in inputs}) != 1:
        raise DTypeError("concat inputs must share a dtype")
    total: int | None = 0
    out = list(first.shape)
    for i, a in enumerate(inputs):
        if len(a.shape) != len(first.shape):
            raise ShapeError(f"concat: input {i} has rank {len(a.shape)}, input 0 has rank {len(first.shape)}")
        for d in range(len(out)):
            if d == axis:
                continue
            if not dims_equal(out[d], a.shape[d]):
                raise ShapeError(f"concat along axis {axis}: input {i} has shape {format_shape(a.shape)}, "
                                 f"input 0 has {format_shape(first.shape)} (axis {d} differs)")
            out[d] = out[d] if out[d] is not None else a.shape[d]
        total = None if total is None or a.shape[axis] is None else total + a.shape[axis]
    out[axis] = total
    return AbstractValue(first.dtype, tuple(out))


def _concat_grad(node: Tensor, g: Tensor) -> list[Any]:
    return [make_node("concat_part", [g, *node.inputs], axis=node.attrs["axis"], index=i)
            for i in range(len(node.inputs))]


register(OpDef("concat", "shape", _infer_concat, lambda *xs, axis: np.concatenate(xs, axis=axis),
               num_inputs=None, grad=_concat_grad, doc="join tensors along an existing axis"))


def _infer_concat_part(inputs: Sequence[AbstractValue], *, axis: int, index: int) -> AbstractValue:
    return AbstractValue(inputs[0].dtype, inputs[1 + index].shape)


def _concat_part_reference(g: np.ndarray, *parts: np.ndarray, axis: int, index: int) -> np.ndarray:
    start = int(sum(p.shape[axis] for p in parts[:index]))
    where = [slice(None)] * g.ndim
    where[axis] = slice(start, start + parts[index].shape[axis])
    return g[tuple(where)]


def _concat_part_grad(node: Tensor, g: Tensor) -> list[Any]:
    parts, index = node.inputs[1:], node.attrs["index"]
    pieces = [g if i == index else fill_like(p, 0, g.dtype) for i, p in enumerate(parts)]
    return [make_node("concat", pieces, axis=node.attrs["axis"]), *[None] * len(parts)]


register(OpDef("concat_part", "shape", _infer_concat_part, _concat_part_reference, num_inputs=None,
               grad=_concat_part_grad,
               doc="the slice of a concatenation that came from one input (gradient of concat); "
                   "inputs: the concatenation, then the original parts (only their shapes are read)"))


def concat(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join ``tensors`` along ``axis``; dtypes are promoted as in NumPy."""

    def build() -> Tensor:
        ts = to_arrays(list(tensors))
        if not ts:
            raise ArgumentError("concat needs at least one tensor")
        if ts[0].ndim == 0:
            raise ShapeError("concat: zero-dimensional tensors cannot be concatenated (use stack)")
        ts, _ = promote(ts)
        return make_node("concat", ts, axis=normalize_axis(axis, ts[0].ndim))

    return reporting("concat", list(tensors), build)


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join ``tensors`` (all of one shape) along a new axis."""

    def build() -> Tensor:
        ts = to_arrays(list(tensors))
        if not ts:
            raise ArgumentError("stack needs at least one tensor")
        a = normalize_axis(axis, ts[0].ndim + 1)
        for i, t in enumerate(ts):
            if t.ndim != ts[0].ndim or not all(dims_equal(p, q) for p, q in zip(t.shape, ts[0].shape)):
                raise ShapeError(f"stack: input {i} has shape {format_shape(t.shape)}, "
                                 f"input 0 has {format_shape(ts[0].shape)}")
        return concat([expand_dims(t, a) for t in ts], axis=a)

    return reporting("stack", list(tensors), build)


def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Tensor]:
    """Split ``x`` along ``axis`` into equal sections (an int) or at the given indices (a list)."""

    def build() -> list[Tensor]:
        (t,) = to_tensors([x])
        a = normalize_axis(axis, t.ndim)
        size = t.shape[a]
        if isinstance(indices_or_sections, (tuple, list)):
            cuts = list(_int_tuple(indices_or_sections, "split indices"))
        else:
            (n,) = _int_tuple(indices_or_sections, "split sections")
            if n <= 0:
                raise ArgumentError(f"split: number of sections must be positive, got {n}")
            if size is None:
                raise ShapeError(f"split into {n} equal sections needs axis {a} to be known; "
                                 "it is unknown until run time (give split indices instead)")
            if size % n:
                raise ShapeError(f"split: axis {a} of size {size} does not divide into {n} equal sections")
            cuts = [size // n * i for i in range(1, n)]
        bounds = [None, *cuts, None]
        index: list[Any] = [slice(None)] * a
        return [getitem(t, (*index, slice(lo, hi))) for lo, hi in itertools.pairwise(bounds)]

    return reporting("split", [x], build)


# ---- pad ----------------------------------------------------------------------------------------

_PAD_MODES = ("constant", "edge", "reflect", "symmetric")


def _infer_pad(inputs: Sequence[AbstractValue], *, pad_width: tuple[tuple[int, int], ...], mode: str,
               constant_value: Any) -> AbstractValue:
    (x,) = inputs
    out = []
    for axis, (d, (lo, hi)) in enumerate(zip(x.shape, pad_width)):
        if mode in ("reflect", "symmetric", "edge") and d == 0 and (lo or hi):
            raise ShapeError(f"pad mode {mode!r} cannot pad axis {axis} of size 0")
        if mode == "reflect" and d is not None and (lo or hi) and d == 1:
            raise ShapeError(f"pad mode 'reflect' cannot pad axis {axis} of size 1")
        out.append(None if d is None else d + lo + hi)
    return AbstractValue(x.dtype, tuple(out))


def _pad_reference(x: np.ndarray, *, pad_width: tuple[tuple[int, int], ...], mode: str,
                   constant_value: Any) -> np.ndarray:
    if not pad_width:  # a scalar: nothing to pad (np.pad rejects an empty pad_width)
        return x
    if mode == "constant":
        return np.pad(x, pad_width, mode="constant", constant_values=constant_value)
    return np.pad(x, pad_width, mode=mode)


def _pad_grad(node: Tensor, g: Tensor) -> list[Any]:
    if node.attrs["mode"] == "constant":
        from graphc.ops.indexing import getitem

        return [getitem(g, tuple(slice(lo, -hi if hi else None) for lo, hi in node.attrs["pad_width"]))]
    return [make_node("pad_grad", [g, node.inputs[0]], pad_width=node.attrs["pad_width"], mode=node.attrs["mode"])]


register(OpDef("pad", "shape", _infer_pad, _pad_reference, num_inputs=1, grad=_pad_grad,
               doc="pad with a constant, the edge value, or a reflection"))


def _infer_pad_grad(inputs: Sequence[AbstractValue], *, pad_width: tuple[tuple[int, int], ...], mode: str
                    ) -> AbstractValue:
    return AbstractValue(inputs[0].dtype, inputs[1].shape)


def _pad_grad_reference(g: np.ndarray, like: np.ndarray, *, pad_width: tuple[tuple[int, int], ...], mode: str
                        ) -> np.ndarray:
    # each padded position copies one input position: add the gradient back to where it came from
    sources = [np.pad(np.arange(n), widths, mode=mode) for n, widths in zip(like.shape, pad_width)]
    out = np.zeros(like.shape, g.dtype)
    np.add.at(out, np.ix_(*sources), g)
    return out


def _pad_grad_grad(node: Tensor, g: Tensor) -> list[Any]:
    return [make_node("pad", [g], pad_width=node.attrs["pad_width"], mode=node.attrs["mode"], constant_value=0),
            None]


register(OpDef("pad_grad", "shape", _infer_pad_grad, _pad_grad_reference, num_inputs=2, grad=_pad_grad_grad,
               doc="gradient of edge/reflect/symmetric pad: sums each padded copy back into its source"))


def _pad_width(pad_width: Any, ndim: int) -> tuple[tuple[int, int], ...]:
    arr = np.asarray(pad_width)
    if arr.dtype.kind not in "iu" or arr.ndim > 2 or (arr.ndim == 2 and arr.shape[1] != 2):
        raise ArgumentError(f"pad_width must be an int, a (before, after) pair, or one pair per axis; "
                            f"got {pad_width!r}")
    try:
        full = np.broadcast_to(arr, (ndim, 2)) if arr.ndim < 2 or arr.shape[0] == 1 else arr
    except ValueError:
        full = arr
    if full.shape != (ndim, 2):
        raise ArgumentError(f"pad_width {pad_width!r} does not match a tensor of rank {ndim}")
    if (full < 0).any():
        raise ArgumentError(f"pad_width must be non-negative, got {pad_width!r}")
    return tuple((int(lo), int(hi)) for lo, hi in full)


def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: Any = 0) -> Tensor:
    """Pad ``x`` as ``np.pad``: ``pad_width`` an int, a pair, or one pair per axis;
    ``mode`` one of constant, edge, reflect, symmetric."""

    def build() -> Tensor:
        (t,) = to_tensors([x])
        if mode not in _PAD_MODES:
            raise ArgumentError(f"pad mode must be one of {', '.join(_PAD_MODES)}, got {mode!r}")
        if not isinstance(constant_values, (bool, int, float, np.number, np.bool_)):
            raise ArgumentError(f"pad's constant_values must be a scalar, got {constant_values!r}")
        if not isinstance(constant_values, (np.number, np.bool_)):
            check_python_int_fits(constant_values, t.dtype)
        value = np.asarray(constant_values).astype(t.dtype).item()
        return make_node("pad", [t], pad_width=_pad_width(pad_width, t.ndim), mode=mode, constant_value=value)

    return reporting("pad", [x], build)


# ---- take / one_hot -----------------------------------------------------------------------------

def _infer_take(inputs: Sequence[AbstractValue], *, axis: int | None) -> AbstractValue:
    x, idx = inputs
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"take's indices must be integers, got {idx.dtype.name}")
    if axis is None:
        return AbstractValue(x.dtype, idx.shape)
    return AbstractValue(x.dtype, x.shape[:axis] + idx.shape + x.shape[axis + 1:])


def _take_reference(x: np.ndarray, idx: np.ndarray, *, axis: int | None) -> np.ndarray:
    return np.take(x, idx, axis=axis)


def _take_grad(node: Tensor, g: Tensor) -> list[Any]:
    x, idx = node.inputs
    return [make_node("take_grad", [g, idx, x], axis=node.attrs["axis"]), None]


def _infer_take_grad(inputs: Sequence[AbstractValue], *, axis: int | None) -> AbstractValue:
    return AbstractValue(inputs[0].dtype, inputs[2].shape)


def _take_grad_reference(g: np.ndarray, idx: np.ndarray, like: np.ndarray, *, axis: int | None) -> np.ndarray:
    out = np.zeros(like.shape, g.dtype)
    if axis is None:
        np.add.at(out.reshape(-1), idx.reshape(-1), g.reshape(-1))
    else:
        np.add.at(out, (slice(None),) * axis + (idx,), g)
    return out


def _take_grad_grad(node: Tensor, g: Tensor) -> list[Any]:
    return [make_node("take", [g, node.inputs[1]], axis=node.attrs["axis"]), None, None]


register(OpDef("take_grad", "shape", _infer_take_grad, _take_grad_reference, num_inputs=3, grad=_take_grad_grad,
               doc="scatter-add (gradient of take): zeros of the like input's shape with g added at the indices"))

register(OpDef("take", "shape", _infer_take, _take_reference, num_inputs=2, grad=_take_grad,
               doc="gather entries at integer indices along an axis (negative indices count from the end)"))


def take(x: Any, indices: Any, axis: int | None = None) -> Tensor:
    """Gather ``x``'s entries at ``indices`` along ``axis`` (of the flattened ``x`` if None), as ``np.take``.

    An index outside ``[-n, n)`` raises an ``ExecutionError`` when the graph runs.
    """

    def build() -> Tensor:
        t, idx = to_tensors([x, indices])
        return make_node("take", [t, idx], axis=None if axis is None else normalize_axis(axis, t.ndim))

    return reporting("take", [x, indices], build)


def _infer_one_hot(inputs: Sequence[AbstractValue], *, depth: int, dtype: np.dtype) -> AbstractValue:
    (idx,) = inputs
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"one_hot's indices must be integers, got {idx.dtype.name}")
    return AbstractValue(dtype, (*idx.shape, depth))


def _one_hot_reference(idx: np.ndarray, *, depth: int, dtype: np.dtype) -> np.ndarray:
    return (idx[..., None] == np.arange(depth)).astype(dtype)


register(OpDef("one_hot", "shape", _infer_one_hot, _one_hot_reference, num_inputs=1, differentiable=False,
               doc="indices -> one-hot vectors along a new last axis; out-of-range indices give all zeros"))


def one_hot(indices: Any, depth: int, dtype: Any = "float32") -> Tensor:
    """One-hot encode integer ``indices`` into a new last axis of size ``depth``.

    Indices outside ``[0, depth)`` give a row of zeros (TensorFlow's convention).
    """

    def build() -> Tensor:
        (idx,) = to_tensors([indices])
        (d,) = _int_tuple(depth, "one_hot's depth")
        if d < 0:
            raise ArgumentError(f"one_hot depth must be non-negative, got {d}")
        return make_node("one_hot", [idx], depth=d, dtype=dtypes.as_dtype(dtype))

    return reporting("one_hot", [indices], build)


from graphc.ops.indexing import getitem  # noqa: E402  (split is written with slicing)

__all__ = ["broadcast_to", "concat", "expand_dims", "one_hot", "pad", "reshape", "split", "squeeze", "stack",
           "take", "transpose"]
