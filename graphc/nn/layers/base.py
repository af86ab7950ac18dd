"""The layer: an object that owns Variables and, called on tensors, builds graph nodes.

A layer creates its weights the first time it is called (``build(input_shape)``), from the shape of
what it is given; later calls check that they are given the same kind of input.  Every call is
recorded on its output tensors, so that a functional :class:`~graphc.nn.Model` can rebuild the graph
from its inputs, once for training and once for inference (dropout and batch normalisation differ).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphc import dtypes
from graphc.errors import ArgumentError, GraphcError, ShapeError
from graphc.ir.location import SourceLocation, located_at, user_location, where_text
from graphc.ir.scope import enter_scope, name_scope
from graphc.ir.shapes import format_shape
from graphc.ir.tensor import Tensor, unique_name
from graphc.nn import initializers, regularizers
from graphc.nn.context import in_training
from graphc.ops.elementwise import cast
from graphc.ops.shape import transpose
from graphc.ops.state import Variable, placeholder

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class CallRecord:
    """One call of a layer: what it was given and what it returned (for rebuilding a functional model)."""

    layer: Layer
    inputs: tuple[Tensor, ...]
    output_ids: tuple[int, ...]  # ids, not the tensors: a record must not keep its outputs alive
    output_shapes: tuple[tuple[int | None, ...], ...]
    multi_input: bool
    multi_output: bool
    kwargs: tuple[tuple[str, Any], ...]
    location: SourceLocation | None


# by tensor id (a WeakKeyDictionary would compare tensors with ==, which builds a symbolic node); an
# entry goes when its tensor does
_producers: dict[int, CallRecord] = {}
_layer_counts: dict[str, int] = {}


def producer_record(t: Tensor) -> CallRecord | None:
    """The layer call that returned ``t``, if one did."""
    return _producers.get(t.id)


def _distinct_from(out: Any, given: list[Any]) -> Any:
    """``out`` with every tensor that is one of the call's inputs (a layer that is the identity in this
    mode, such as Dropout at inference) replaced by a new node of the same value, so that the call can be
    recorded on its outputs; the passes remove the node."""
    def fresh(t: Any) -> Any:
        if isinstance(t, Tensor) and any(t is g for g in given):
            return transpose(t, tuple(range(t.ndim)))
        return t

    if isinstance(out, (list, tuple)):
        return type(out)(fresh(t) for t in out)
    return fresh(out)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower().replace("2_d", "2d")


def _unique_layer_name(base: str) -> str:
    count = _layer_counts.get(base, 0)
    _layer_counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def Input(shape: Sequence[int | None], dtype: Any = "float32", name: str | None = None,
          batch_size: int | None = None) -> Tensor:
    """A model input: a placeholder of shape ``(batch_size, *shape)`` (``batch_size`` None: any)."""
    location = user_location()
    try:
        shape = tuple(shape)
    except TypeError:
        raise ArgumentError(f"Input: shape must be a tuple of dimensions (without the batch), got {shape!r}"
                            f"{where_text(location)}") from None
    for d in shape:
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0):
            raise ShapeError(f"Input: dimensions must be non-negative integers or None, got {shape!r}"
                             f"{where_text(location)}")
    with located_at(location):
        return placeholder(dtype, (batch_size, *shape), name=name or unique_name("input"))


class Layer:
    """Base class of layers.

    Subclasses implement :meth:`build` (create weights with :meth:`add_weight`) and :meth:`call`.
    Class attributes describe the input a layer accepts: ``min_ndim`` / ``max_ndim`` (with the batch
    axis) and ``fixed_axes``, the axes whose size the weights depend on (checked on every call after the
    first).  ``autocast`` converts integer inputs to the layer's dtype (not for ``Embedding``).
    """

    min_ndim: int = 0
    max_ndim: int | None = None
    fixed_axes: tuple[int, ...] = ()
    autocast: bool = True
    multi_input: bool = False

    def __init__(self, name: str | None = None, trainable: bool = True, dtype: Any = "float32",
                 input_shape: Sequence[int | None] | None = None, input_dim: int | None = None) -> None:
        self._location = user_location()
        if name is not None and not isinstance(name, str):
            raise ArgumentError(f"{type(self).__name__}: name must be a string, got {name!r}{self.where}")
        self.name = name or _unique_layer_name(_snake(type(self).__name__))
        self.trainable = bool(trainable)
        self.dtype = dtypes.as_dtype(dtype)
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        self.input_shape_hint: Shape | None = tuple(input_shape) if input_shape is not None else None
        self.built = False
        self._weights: list[tuple[str, Variable]] = []
        self._regularized: list[tuple[Variable, regularizers.Regularizer]] = []
        self._build_shape: Shape | None = None

    # ---- description ------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        """`` (at file:line)`` of the line that created the layer, for error messages."""
        return where_text(self._location)

    def describe(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} '{self.name}'{' built' if self.built else ''}>"

    def error(self, cls: type[GraphcError], message: str, location: SourceLocation | None = None) -> GraphcError:
        """``cls`` with a message that names this layer and the user's line (``location``, else the line
        that created the layer)."""
        return cls(f"{self.describe()}: {message}{where_text(location or self._location)}")

    # ---- weights ----------------------------------------------------------------------------------

    def add_weight(self, name: str, shape: Sequence[int], initializer: Any = "glorot_uniform",
                   regularizer: Any = None, trainable: bool = True, dtype: Any = None,
                   fans: tuple[int, int] | None = None) -> Variable:
        """Create a Variable ``<layer>/<name>`` owned by this layer, initialised by ``initializer``."""
        dt = dtypes.as_dtype(dtype) if dtype is not None else self.dtype
        value = initializers.get(initializer)(tuple(int(d) for d in shape), dt, fans)
        with enter_scope(self.name), located_at(self._location):
            var = Variable(np.asarray(value, dt), name=name, trainable=trainable)
        self._weights.append((name, var))
        reg = regularizers.get(regularizer)
        if reg is not None:
            self._regularized.append((var, reg))
        return var

    @property
    def weights(self) -> list[Variable]:
        """Every Variable the layer owns, in creation order."""
        return [v for _, v in self._weights]

    @property
    def named_weights(self) -> list[tuple[str, Variable]]:
        """``(name within the layer, Variable)`` pairs: what checkpoints key by."""
        return list(self._weights)

    @property
    def trainable_weights(self) -> list[Variable]:
        """The weights an optimizer updates (none while ``trainable`` is False)."""
        return [v for v in self.weights if v.trainable] if self.trainable else []

    @property
    def non_trainable_weights(self) -> list[Variable]:
        """The other weights (batch-norm statistics; every weight of a frozen layer)."""
        trainable = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in trainable]

    def get_weights(self) -> list[np.ndarray]:
        """The weights' values (copies)."""
        return [v.value for v in self.weights]

    def set_weights(self, values: Sequence[Any]) -> None:
        """Set every weight, in :attr:`weights` order (shapes and dtypes checked)."""
        weights = self.weights
        if len(values) != len(weights):
            raise self.error(ArgumentError, f"set_weights expected {len(weights)} arrays, got {len(values)}",
                             user_location())
        for var, value in zip(weights, values):
            var.assign(value)

    def count_params(self) -> int:
        """The number of scalars in the weights."""
        return sum(int(np.prod(v.shape)) for v in self.weights)

    def regularization_losses(self) -> list[Tensor]:
        """The penalty of each regularized weight, as scalar tensors (built now)."""
        with name_scope(self.name):
            return [reg(var) for var, reg in self._regularized if self.trainable]

    # ---- calling ----------------------------------------------------------------------------------

    def build(self, input_shape: Any) -> None:
        """Create the weights for inputs of ``input_shape`` (a shape, or a list of them)."""

    def call(self, inputs: Any, training: bool = False) -> Any:
        """Build the layer's graph nodes for ``inputs``; ``training`` selects training behaviour."""
        raise NotImplementedError

    def _check_input(self, t: Tensor, location: SourceLocation | None) -> Tensor:
        if not isinstance(t, Tensor):
            raise self.error(ArgumentError, f"expected a tensor (a graphc placeholder, nn.Input or a layer's "
                             f"output), got {type(t).__name__}", location)
        ndim_ok = t.ndim >= self.min_ndim and (self.max_ndim is None or t.ndim <= self.max_ndim)
        if not ndim_ok:
            want = (f"{self.min_ndim}" if self.max_ndim == self.min_ndim else
                    f"at least {self.min_ndim}" if self.max_ndim is None else f"{self.min_ndim} to {self.max_ndim}")
            raise self.error(ShapeError, f"expected an input of rank {want} (batch axis included), got "
                             f"{t.describe()} of rank {t.ndim}", location)
        if self._build_shape is not None and not self.multi_input:
            built = self._build_shape
            # only the axes the weights depend on must match (a Dense built on rank 2 takes rank 3)
            bad = any(not -t.ndim <= a < t.ndim or built[a] != t.shape[a] for a in self.fixed_axes)
            if bad:
                raise self.error(ShapeError, f"was built for inputs of shape {format_shape(built)}, got "
                                 f"{t.describe()}", location)
        if self.autocast and t.dtype.kind in "biu" and self.dtype.kind == "f":
            return cast(t, self.dtype)
        return t

    def __call__(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        """Call the layer on a tensor (or a list of tensors): builds it on the first call, checks the
        input, records the call; returns the output tensor(s)."""
        location = user_location()
        return self.invoke(inputs, training, kwargs, location, record=True)

    def invoke(self, inputs: Any, training: bool | None, kwargs: dict[str, Any], location: SourceLocation | None,
               record: bool = False) -> Any:
        """The body of ``__call__`` with the call's line given (models rebuilding a graph use it)."""
        multi_in = isinstance(inputs, (list, tuple))
        if multi_in and not self.multi_input and len(inputs) != 1:
            raise self.error(ArgumentError, f"takes one input tensor, got a list of {len(inputs)}", location)
        given = list(inputs) if multi_in else [inputs]
        with located_at(location):
            items = [self._check_input(t, location) for t in given]
            if not self.built:
                shapes = [t.shape for t in items]
                self.build(shapes if self.multi_input else shapes[0])
                self._build_shape = shapes[0]
                self.built = True
            arg = items if self.multi_input else items[0]
            with name_scope(self.name):
                out = self.call(arg, training=in_training(training), **kwargs)
                out = _distinct_from(out, given)
        if record:
            outs = tuple(out) if isinstance(out, (list, tuple)) else (out,)
            rec = CallRecord(self, tuple(given), tuple(t.id for t in outs), tuple(t.shape for t in outs), multi_in,
                             isinstance(out, (list, tuple)), tuple(sorted(kwargs.items())), location)
            for t in outs:
                if t.id not in _producers:
                    weakref.finalize(t, _producers.pop, t.id, None)
                _producers[t.id] = rec
        return out
