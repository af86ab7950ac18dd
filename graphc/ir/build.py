"""Creating nodes: run the op's shape/dtype rule and attach the user's source line to any error."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from graphc.errors import ArgumentError, DTypeError, GraphcError, GraphError, ShapeError
from graphc.ir.location import SourceLocation, located_at, user_location, where_text
from graphc.ir.registry import AbstractValue, OpDef, get_op
from graphc.ir.scope import enter_scope, scope_of, scoped
from graphc.ir.tensor import Tensor, unique_name


@contextlib.contextmanager
def attributed_to(node: Tensor) -> Iterator[None]:
    """Nodes built inside this block carry ``node``'s user line and are named in ``node``'s scope.

    The compiler builds its nodes (rewrites, gradients of a node) inside it, so that what replaces
    or serves a node is reported at the user's line and grouped under the scope that node is in.
    """
    with located_at(node.location), enter_scope(scope_of(node.name)):
        yield


def annotate(
    error: GraphcError, op_name: str, inputs: Sequence[Tensor], location: SourceLocation | None
) -> GraphcError:
    """The same error type, its message extended with the op, its inputs and the user's line."""
    message = str(error)
    lines = [message if message.startswith(op_name) else f"{op_name}: {message}"]
    lines += [f"  input {i}: {t.describe()}" for i, t in enumerate(inputs)]
    if location is not None:
        lines.append(f"  created at {location}")
    new = type(error)("\n".join(lines))
    new.location = location  # type: ignore[attr-defined]
    return new


def make_node(op: str | OpDef, inputs: Sequence[Tensor], name: str | None = None, **attrs: Any) -> Tensor:
    """Build a node: check the inputs with the op's ``infer`` rule and record the user's line.

    The node is named ``name`` (default: the op's name) in the current name scope
    (``gc.name_scope``), made unique in the process: ``"layer1/matmul"``, ``"layer1/matmul_1"``...
    """
    opdef = get_op(op) if isinstance(op, str) else op
    location = user_location()
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise GraphError(f"{opdef.name}: input {i} is {type(t).__name__}, expected a Tensor{where_text(location)}")
        if not t.opdef.produces_value and opdef.name != "group":
            raise GraphError(
                f"{opdef.name}: input {i} {t.describe()} is an op without a value (group); "
                f"it can only be fetched or grouped{where_text(location)}"
            )
    if opdef.num_inputs is not None and len(inputs) != opdef.num_inputs:
        raise ArgumentError(f"{opdef.name} takes {opdef.num_inputs} inputs, got {len(inputs)}{where_text(location)}")
    try:
        aval = opdef.infer([t.aval for t in inputs], **attrs)
    except (ShapeError, DTypeError, ArgumentError, GraphError) as exc:
        raise annotate(exc, opdef.name, inputs, location) from None
    if aval.weak and opdef.name not in ("constant", "parameter"):
        # NumPy 2: only Python scalars (and the body parameters standing for them) are weak; the result of any
        # op is strongly typed
        aval = AbstractValue(aval.dtype, aval.shape, weak=False)
    return Tensor(opdef, tuple(inputs), attrs, aval, unique_name(scoped(name or opdef.name)), location)


def rebuild(node: Tensor, inputs: Sequence[Tensor], attrs: Mapping[str, Any] | None = None) -> Tensor:
    """``node`` applied to new inputs (and, given ``attrs``, new attributes): same op, name and user line; the
    rule is re-run."""
    if attrs is None:
        if all(a is b for a, b in zip(inputs, node.inputs)):
            return node
        attrs = node.attrs
    aval = node.opdef.infer([t.aval for t in inputs], **attrs)
    if aval.weak and node.op not in ("constant", "parameter"):
        aval = AbstractValue(aval.dtype, aval.shape, weak=False, parts=aval.parts)
    return Tensor(node.opdef, tuple(inputs), attrs, aval, node.name, node.location)


def constant(value: Any, dtype: Any = None, name: str | None = None) -> Tensor:
    """A constant tensor.  A bare Python scalar with no ``dtype`` is weakly typed (see ``graphc.dtypes``)."""
    from graphc.dtypes import as_dtype

    weak = dtype is None and isinstance(value, (bool, int, float)) and not isinstance(value, np.generic)
    if isinstance(value, Tensor):
        raise ArgumentError(f"constant() expects a Python or NumPy value, got tensor {value.describe()}")
    if weak and isinstance(value, int) and not np.iinfo(np.int64).min <= value <= np.iinfo(np.int64).max:
        raise DTypeError(f"constant(): Python int {value} does not fit in int64")
    try:
        array = np.asarray(value)
    except Exception as exc:
        raise DTypeError(f"constant(): cannot convert {type(value).__name__} to an array: {exc}") from None
    if array.dtype.kind not in "biuf":
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise DTypeError(f"expected a tensor, number, bool or array of them, got {type(value).__name__} {shown}")
    if dtype is not None:
        target = as_dtype(dtype)
    elif weak:
        target = {bool: np.dtype(bool), int: np.dtype(np.int64), float: np.dtype(np.float64)}[type(value)]
    else:
        target = _supported_equivalent(array.dtype)
    array = np.array(array, dtype=target, copy=True)
    array.setflags(write=False)
    return make_node("constant", [], name=name, value=array, weak=weak)


def _supported_equivalent(dtype: np.dtype) -> np.dtype:
    """The supported dtype an arbitrary NumPy array becomes (float16 -> float32, uint32 -> int64)."""
    from graphc.dtypes import SUPPORTED_DTYPES, as_dtype

    if dtype in SUPPORTED_DTYPES:
        return dtype
    if dtype.kind == "f":
        return np.dtype(np.float32) if dtype.itemsize < 4 else np.dtype(np.float64)
    if dtype.kind in "iu":
        return np.dtype(np.int64) if dtype.itemsize >= 2 else np.dtype(np.int16)
    return as_dtype(dtype)  # raises the DTypeError that names what is supported


def as_tensor(value: Any) -> Tensor:
    """A Tensor as is; anything else (Python scalars, lists, NumPy arrays) as a constant."""
    if isinstance(value, Tensor):
        return value
    return constant(value)


def abstract(dtype: np.dtype, shape: Sequence[int | None], weak: bool = False) -> AbstractValue:
    return AbstractValue(np.dtype(dtype), tuple(shape), weak)
