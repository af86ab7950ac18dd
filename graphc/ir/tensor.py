"""Graph nodes.  A :class:`Tensor` is an immutable node of the dataflow graph with one output."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from graphc.errors import DTypeError, GraphError
from graphc.ir.location import SourceLocation
from graphc.ir.registry import AbstractValue, OpDef
from graphc.ir.shapes import Shape, format_shape

if TYPE_CHECKING:
    from types import ModuleType

_ids = itertools.count()
_name_lock = threading.Lock()
_name_counts: dict[str, itertools.count] = {}
_used_names: set[str] = set()
# a name: scope segments (which may start with a digit or a dot, see graphc.ir.scope), then a part that
# starts with a letter or an underscore
_VALID_NAME = re.compile(r"^(?:[A-Za-z0-9_.][A-Za-z0-9_.\-]*/)*[A-Za-z_][A-Za-z0-9_.\-/]*$")


def id_watermark() -> int:
    """A tensor id: every tensor built after this call has a larger ``.id`` (ids only grow)."""
    return next(_ids)


def unique_name(base: str, sanitize: bool = True) -> str:
    """A process-wide unique, readable name: ``base`` itself if free, else ``base_1``, ``base_2``...

    Node names and name scopes (``gc.name_scope``) share this one namespace.  ``sanitize=False``
    takes ``base`` as it is (a scope path its caller has checked) instead of replacing characters
    a name may not have.
    """
    if sanitize and not _VALID_NAME.match(base):
        base = re.sub(r"[^A-Za-z0-9_.\-/]", "_", base) or "t"
        if not re.match(r"[A-Za-z_]", base):
            base = "t_" + base
    with _name_lock:
        if base not in _used_names:
            _used_names.add(base)
            return base
        counter = _name_counts.setdefault(base, itertools.count(1))
        while True:
            candidate = f"{base}_{next(counter)}"
            if candidate not in _used_names:
                _used_names.add(candidate)
                return candidate


_op_library: ModuleType | None = None


def bind_op_library(library: ModuleType) -> None:
    """Give Tensor's operators (``+``, ``@``, ``x[...]``, ``.sum()``...) the op library's functions.  The
    op library sits in the layer above the IR, so it binds itself here when it is imported."""
    global _op_library
    _op_library = library


def _ops() -> ModuleType:
    if _op_library is None:  # not reachable through ``import graphc``, which imports the op library
        raise RuntimeError("Tensor operators need the op library: import graphc (or graphc.ops) first")
    return _op_library


def _require_bool(operator: str, value: Any) -> Any:
    dtype = value.dtype if isinstance(value, Tensor) else np.asarray(value).dtype
    if dtype.kind != "b":
        what = value.describe() if isinstance(value, Tensor) else f"a {dtype.name} value"
        raise DTypeError(f"operator {operator} needs bool operands, got {what}; graphc has no bitwise integer "
                         f"ops (use gc.logical_and / logical_or / logical_not on comparisons)")
    return value


class Tensor:
    """A symbolic value: the output of one op applied to input tensors.

    Attributes: ``op`` (the op's name, e.g. ``"add"``), ``opdef`` (its :class:`OpDef`), ``inputs``,
    ``attrs``, ``dtype`` (a NumPy dtype), ``shape`` (ints, ``None`` where unknown until run time),
    ``parts`` (for an op with several outputs, such as a loop: the abstract value of each, read by
    ``part`` nodes; else ``None``),
    ``name`` and ``location`` (the user's file:line that created it).  Tensors never change once built.
    """

    __slots__ = ("__weakref__", "attrs", "dtype", "id", "inputs", "location", "name", "opdef", "parts", "shape",
                 "weak")
    __array_ufunc__ = None  # make NumPy defer to our reflected operators: ndarray + Tensor -> Tensor

    opdef: OpDef
    inputs: tuple[Tensor, ...]
    attrs: Mapping[str, Any]
    dtype: np.dtype
    shape: Shape
    weak: bool
    parts: tuple[AbstractValue, ...] | None
    name: str
    location: SourceLocation | None
    id: int

    def __init__(
        self,
        op: OpDef,
        inputs: tuple[Tensor, ...],
        attrs: Mapping[str, Any],
        aval: AbstractValue,
        name: str,
        location: SourceLocation | None,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "opdef", op)
        set_(self, "inputs", tuple(inputs))
        set_(self, "attrs", MappingProxyType(dict(attrs)))
        set_(self, "dtype", aval.dtype)
        set_(self, "shape", tuple(aval.shape))
        set_(self, "weak", aval.weak)
        set_(self, "parts", aval.parts)
        set_(self, "name", name)
        set_(self, "location", location)
        set_(self, "id", next(_ids))

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"tensors are immutable: cannot set {key!r} on {self.name!r}")

    __hash__ = object.__hash__

    # ---- description ---------------------------------------------------------------------
    @property
    def op(self) -> str:
        """The op's name: ``"add"``, ``"placeholder"``, ``"matmul"``..."""
        return self.opdef.name

    @property
    def aval(self) -> AbstractValue:
        return AbstractValue(self.dtype, self.shape, self.weak, self.parts)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def type_str(self) -> str:
        return f"{self.dtype.name}{format_shape(self.shape)}"

    def describe(self) -> str:
        """``'x' (float32[?, 784], placeholder at model.py:3)``: used in error messages."""
        where = f" at {self.location}" if self.location else ""
        return f"'{self.name}' ({self.type_str()}, {self.op}{where})"

    def __repr__(self) -> str:
        return f"<Tensor '{self.name}' {self.op} {self.type_str()}>"

    # ---- Python protocols that make no sense symbolically ---------------------------------
    def __bool__(self) -> bool:
        raise GraphError(
            f"the truth value of symbolic tensor {self.describe()} is not known while building the graph; "
            "use gc.where(...) for data-dependent choices, or run the graph to get a value"
        )

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise GraphError(
            f"symbolic tensor {self.describe()} has no value until the graph runs; "
            "use Session.run or gc.function to compute it"
        )

    def __len__(self) -> int:
        if not self.shape:
            raise GraphError(f"len() of a scalar tensor {self.describe()}")
        if self.shape[0] is None:
            raise GraphError(f"len() of {self.describe()}: its first dimension is unknown until run time")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]

    # ---- operators ------------------------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return _ops().add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _ops().add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _ops().subtract(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _ops().subtract(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _ops().multiply(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _ops().multiply(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _ops().divide(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _ops().divide(other, self)

    def __floordiv__(self, other: Any) -> Tensor:
        return _ops().floor_divide(self, other)

    def __rfloordiv__(self, other: Any) -> Tensor:
        return _ops().floor_divide(other, self)

    def __mod__(self, other: Any) -> Tensor:
        return _ops().mod(self, other)

    def __rmod__(self, other: Any) -> Tensor:
        return _ops().mod(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return _ops().power(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return _ops().power(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _ops().matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _ops().matmul(other, self)

    def __neg__(self) -> Tensor:
        return _ops().neg(self)

    def __pos__(self) -> Tensor:
        if self.dtype.kind == "b":
            raise DTypeError(f"unary + is not defined for bool tensor {self.describe()} (as in NumPy)")
        return self

    def __abs__(self) -> Tensor:
        return _ops().abs(self)

    # &, | and ~ are logical on bools, as in NumPy; graphc has no bitwise integer ops.
    def __invert__(self) -> Tensor:
        return _ops().logical_not(_require_bool("~", self))

    def __and__(self, other: Any) -> Tensor:
        return _ops().logical_and(_require_bool("&", self), _require_bool("&", other))

    def __rand__(self, other: Any) -> Tensor:
        return _ops().logical_and(_require_bool("&", other), _require_bool("&", self))

    def __or__(self, other: Any) -> Tensor:
        return _ops().logical_or(_require_bool("|", self), _require_bool("|", other))

    def __ror__(self, other: Any) -> Tensor:
        return _ops().logical_or(_require_bool("|", other), _require_bool("|", self))

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ops().equal(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ops().not_equal(self, other)

    def __lt__(self, other: Any) -> Tensor:
        return _ops().less(self, other)

    def __le__(self, other: Any) -> Tensor:
        return _ops().less_equal(self, other)

    def __gt__(self, other: Any) -> Tensor:
        return _ops().greater(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return _ops().greater_equal(self, other)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops().getitem(self, index)

    # ---- NumPy-style methods ----------------------------------------------------------------
    @property
    def T(self) -> Tensor:
        return _ops().transpose(self)

    def astype(self, dtype: Any) -> Tensor:
        return _ops().cast(self, dtype)

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops().reshape(self, shape)

    def transpose(self, *axes: Any) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops().transpose(self, axes or None)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops().sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops().mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops().max(self, axis=axis, keepdims=keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops().min(self, axis=axis, keepdims=keepdims)

    def prod(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops().prod(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops().argmax(self, axis=axis, keepdims=keepdims)

    def argmin(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops().argmin(self, axis=axis, keepdims=keepdims)
