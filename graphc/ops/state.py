"""Graph sources (placeholder, constant, Variable) and state ops (assign, assign_add, group)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc import dtypes
from graphc.errors import ArgumentError, DTypeError, FeedError, GraphcError, ShapeError
from graphc.ir.build import where_text
from graphc.ir.location import user_location
from graphc.ir.registry import AbstractValue, OpDef, register
from graphc.ir.scope import scoped
from graphc.ir.shapes import as_shape, broadcast_shapes, format_shape
from graphc.ir.tensor import Tensor, unique_name
from graphc.ops._common import cast_to, make_node, reporting, to_tensors


def _fed_by_runtime(*_: Any, **__: Any) -> Any:
    raise RuntimeError("placeholders and variables are read by the executor, never evaluated as ops")


def _infer_placeholder(inputs: Sequence[AbstractValue], *, dtype: np.dtype, shape: tuple) -> AbstractValue:
    return AbstractValue(dtype, shape)


register(OpDef("placeholder", "source", _infer_placeholder, _fed_by_runtime, num_inputs=0,
               differentiable=False, doc="a value fed at run time"))


def placeholder(dtype: Any, shape: Any = (), name: str | None = None) -> Tensor:
    """A graph input fed at run time.  ``None`` in ``shape`` marks a dimension of any size."""
    return reporting("placeholder", [], lambda: make_node(
        "placeholder", [], name=name or "placeholder", dtype=dtypes.as_dtype(dtype), shape=as_shape(shape)))


def _infer_constant(inputs: Sequence[AbstractValue], *, value: np.ndarray, weak: bool) -> AbstractValue:
    return AbstractValue(value.dtype, value.shape, weak)


def _constant_reference(*, value: np.ndarray, weak: bool) -> np.ndarray:
    return value


register(OpDef("constant", "source", _infer_constant, _constant_reference, num_inputs=0,
               differentiable=False, doc="a fixed value stored in the graph"))


def _infer_variable(inputs: Sequence[AbstractValue], *, dtype: np.dtype, shape: tuple) -> AbstractValue:
    return AbstractValue(dtype, shape)


VARIABLE_OP = register(OpDef("variable", "source", _infer_variable, _fed_by_runtime, num_inputs=0, differentiable=False,
                             doc="a value owned by a Variable, read at the start of each run"))


def convert_value(value: Any, dtype: np.dtype, shape: tuple, what: str,
                  shape_error: type[GraphcError] = FeedError,
                  dtype_error: type[GraphcError] = FeedError) -> np.ndarray:
    """``value`` as a contiguous array of ``dtype`` and (partly ``None``) ``shape``, or a clear error.

    Used for feeds and Variable assignment.  The conversion must not change kind (float -> int,
    int -> bool and strings are refused); integers must fit the target type.
    """
    try:
        array = np.asarray(value)
    except Exception as exc:
        raise dtype_error(f"{what}: cannot convert {type(value).__name__} to an array ({exc})") from None
    if not dtypes.can_cast_value(array.dtype, dtype):
        raise dtype_error(f"{what}: expected dtype {dtype.name}, got {array.dtype}, "
                          "which does not convert safely")
    if array.ndim != len(shape) or any(e is not None and e != g for e, g in zip(shape, array.shape)):
        raise shape_error(f"{what}: expected shape {format_shape(shape)}, got {format_shape(array.shape)}")
    if array.dtype.kind in "iu" and dtype.kind in "iu" and array.size and array.dtype != dtype:
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise dtype_error(f"{what}: values in [{array.min()}, {array.max()}] do not fit in {dtype.name}")
    with np.errstate(over="ignore"):
        converted = np.asarray(array, dtype=dtype, order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
    if array.dtype.kind == "f" and dtype.itemsize < array.dtype.itemsize and array.size:
        overflowed = np.isinf(converted) & np.isfinite(array)
        if overflowed.any():
            raise dtype_error(f"{what}: value {array[overflowed].flat[0].item()!r} overflows {dtype.name}")
    return converted


_live_variables: weakref.WeakValueDictionary[int, Variable] = weakref.WeakValueDictionary()
_live_lock = threading.Lock()


def live_variables() -> list[Variable]:
    """Every Variable that still exists, in creation order (what ``gc.save_checkpoint`` saves by default)."""
    with _live_lock:
        items = list(_live_variables.items())  # (strong references from here on)
    return [var for _, var in sorted(items, key=lambda item: item[0])]


class Variable(Tensor):
    """A tensor that owns a value which persists across runs (Theano's shared variable).

    ``Variable(initial_value, name=None, dtype=None, trainable=True)``.  Read ``.value`` (a copy);
    set it with ``.assign(array)``, or inside a graph with ``gc.assign`` / function ``updates``.
    Like every node, it is named in the current ``gc.name_scope``.
    """

    __slots__ = ("_lock", "_resident", "_value", "trainable")

    def __init__(self, initial_value: Any, name: str | None = None, dtype: Any = None,
                 trainable: bool = True) -> None:
        location = user_location()
        if isinstance(initial_value, Tensor):
            raise ArgumentError(f"Variable needs a concrete initial value, got tensor "
                                f"{initial_value.describe()}{where_text(location)}")
        array = np.asarray(initial_value)
        if array.dtype.kind not in "biuf":
            raise DTypeError(f"Variable: expected numbers or booleans, got dtype {array.dtype}{where_text(location)}")
        if dtype is None and array.dtype not in dtypes.SUPPORTED_DTYPES:
            dtype = dtypes.supported_result(array.dtype)
        target = dtypes.as_dtype(dtype) if dtype is not None else array.dtype
        array = convert_value(array, target, array.shape, f"Variable{where_text(location)}",
                              shape_error=ShapeError, dtype_error=DTypeError)
        aval = AbstractValue(target, array.shape)
        attrs = {"dtype": target, "shape": array.shape}
        super().__init__(VARIABLE_OP, (), attrs, aval, unique_name(scoped(name or "variable")), location)
        set_ = object.__setattr__
        set_(self, "_lock", threading.Lock())
        set_(self, "_value", np.array(array, dtype=target, copy=True))
        set_(self, "_resident", None)  # the value in a device's memory, when a run left it there
        set_(self, "trainable", bool(trainable))
        with _live_lock:
            _live_variables[self.id] = self

    @property
    def value(self) -> np.ndarray:
        """A copy of the current value."""
        return self.read().copy()

    def read(self) -> np.ndarray:
        """The current value itself (no copy; never written in place).  For executors.  A value that a
        run left in a device's memory is copied to the host once, on the first read."""
        value = self._value
        if value is None:
            with self._lock:
                value = self._value
                if value is None:
                    value = self._resident.to_host()
                    object.__setattr__(self, "_value", value)
        return value

    def read_on(self, device: str) -> Any:
        """The current value as ``device`` holds it (a device array a run on it left there), else the
        host array: what a backend that keeps values on its device is given."""
        resident = self._resident
        if resident is not None and resident.device == device:
            return resident
        return self.read()

    def set_resident(self, value: Any) -> None:
        """Replace the value with one in a device's memory (an object with ``device`` and ``to_host()``,
        e.g. a GPU array a training step computed): it stays there for the next run on that device and
        is copied to the host only when read."""
        with self._lock:
            object.__setattr__(self, "_value", None)
            object.__setattr__(self, "_resident", value)

    def assign(self, value: Any) -> None:
        """Set the value; it must have this variable's shape and convert safely to its dtype."""
        self.set_value(convert_value(value, self.dtype, self.shape, f"assigning to Variable {self.describe()}",
                                     shape_error=ShapeError, dtype_error=DTypeError))

    def set_value(self, new: np.ndarray, owned: bool = False) -> None:
        """Replace the value with an already-checked array (used by executors for updates).  With
        ``owned=True`` the caller hands over a contiguous array of this dtype that nothing else
        refers to, and it is kept without a copy."""
        if not owned:
            new = np.array(new, dtype=self.dtype, copy=True)
        with self._lock:
            object.__setattr__(self, "_value", new)
            object.__setattr__(self, "_resident", None)

    def __repr__(self) -> str:
        return f"<Variable '{self.name}' {self.type_str()}>"


def _infer_assign(inputs: Sequence[AbstractValue]) -> AbstractValue:
    var, value = inputs
    if value.dtype != var.dtype:  # the builder converts values; a mismatch here is an unchecked rewrite
        raise DTypeError(f"cannot assign a {value.dtype.name} value to a {var.dtype.name} variable")
    if broadcast_shapes(var.shape, value.shape) != var.shape:
        raise ShapeError(f"cannot assign a value of shape {format_shape(value.shape)} "
                         f"to a variable of shape {format_shape(var.shape)}")
    return AbstractValue(var.dtype, var.shape)


def _assign_reference(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    return np.broadcast_to(new, old.shape).astype(old.dtype)


def _assign_add_reference(old: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return (old + delta).astype(old.dtype)


register(OpDef("assign", "state", _infer_assign, _assign_reference, num_inputs=2, stateful=True,
               differentiable=False, doc="set a variable; the value is the new value"))
register(OpDef("assign_add", "state", _infer_assign, _assign_add_reference, num_inputs=2, stateful=True,
               differentiable=False, doc="add to a variable; the value is the new value"))


def _check_variable(op: str, var: Any) -> Variable:
    if not isinstance(var, Variable):
        what = var.describe() if isinstance(var, Tensor) else type(var).__name__
        raise ArgumentError(f"{op} expects a Variable as its first argument, got {what}")
    return var


def _update_value(target: Variable, value: Any) -> Tensor:
    """``value`` in ``target``'s dtype, never silently wrapped, truncated or overflowed.

    Literal values (Python or NumPy values, constants) are converted now under the feeding rules,
    with integer range and float overflow checked.  Computed tensors must convert without loss
    (NumPy's "safe" casting); anything else needs an explicit ``gc.cast``.
    """
    if not isinstance(value, Tensor) or value.op == "constant":
        array = value.attrs["value"] if isinstance(value, Tensor) else value
        converted = convert_value(array, target.dtype, np.shape(array), "the new value",
                                  shape_error=ShapeError, dtype_error=DTypeError)
        return make_node("constant", [], value=converted, weak=False)
    (v,) = to_tensors([value])
    if v.dtype != target.dtype and not np.can_cast(v.dtype, target.dtype, casting="safe"):
        raise DTypeError(f"a {v.dtype.name} value does not convert to the {target.dtype.name} variable without "
                         f"loss; convert it explicitly with gc.cast(value, \"{target.dtype.name}\")")
    return cast_to(v, target.dtype)


def _state_update(op: str, var: Any, value: Any) -> Tensor:
    def build() -> Tensor:
        target = _check_variable(op, var)
        return make_node(op, [target, _update_value(target, value)])

    return reporting(op, [var, value], build)


def assign(var: Variable, value: Any) -> Tensor:
    """An op that sets ``var`` to ``value`` when run; its value is the new value.

    All variable reads in one run see the values from the start of the run; updates are applied
    together at its end.
    """
    return _state_update("assign", var, value)


def assign_add(var: Variable, delta: Any) -> Tensor:
    """An op that adds ``delta`` to ``var`` when run; its value is the new value."""
    return _state_update("assign_add", var, delta)


def _infer_group(inputs: Sequence[AbstractValue]) -> AbstractValue:
    return AbstractValue(dtypes.bool_, ())


register(OpDef("group", "state", _infer_group, lambda *_: None, num_inputs=None, differentiable=False,
               produces_value=False, doc="run several ops together; fetching it yields None"))


def group(*ops: Any, name: str | None = None) -> Tensor:
    """An op that runs all ``ops`` (tensors or lists of them); fetching it yields ``None``."""
    flat: list[Any] = []
    for op in ops:
        flat.extend(op if isinstance(op, (list, tuple)) else [op])
    for i, op in enumerate(flat):
        if not isinstance(op, Tensor):
            raise ArgumentError(f"group: argument {i} is {type(op).__name__}, expected a tensor or op"
                                f"{where_text(user_location())}")
    return make_node("group", flat, name=name)


__all__ = ["Variable", "assign", "assign_add", "convert_value", "group", "live_variables", "placeholder"]
