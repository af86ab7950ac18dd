"""Models: ``Sequential`` (a stack of layers), the functional ``Model(inputs, outputs)`` and subclassed
models (a ``Model`` subclass whose ``call`` uses layers kept as attributes).

A model is a layer (it can be called on tensors and nested in another model) that also trains: see
:mod:`graphc.nn.training` for ``compile`` / ``fit`` / ``evaluate`` / ``predict`` and weight files.

A model builds its graph twice from the same layers: the inference graph (``model.outputs``, what
``predict``, ``evaluate`` and ``export`` run) and the training graph, in which dropout drops and batch
normalisation uses and updates batch statistics.  A functional model keeps the calls that built its
outputs (each layer call is recorded on the tensors it returned) and replays them in training mode;
graphc operations applied between layer calls are rebuilt on the replayed tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.errors import ArgumentError, GraphcError
from graphc.ir.build import rebuild
from graphc.ir.location import SourceLocation, located_at, user_location
from graphc.ir.shapes import format_shape
from graphc.ir.tensor import Tensor
from graphc.nn.context import building
from graphc.nn.layers.base import Input, Layer, producer_record
from graphc.nn.training import Trainer
from graphc.ops.state import Variable


def _as_list(value: Any) -> tuple[list[Any], bool]:
    """``(items, was_a_list)``."""
    if isinstance(value, (list, tuple)):
        return list(value), True
    return [value], False


def _kwarg_tensors(kwargs: tuple[tuple[str, Any], ...]) -> list[Tensor]:
    """The tensors among a layer call's keyword arguments (``initial_state=[h, c]``)."""
    found: list[Tensor] = []
    for _, value in kwargs:
        items = value if isinstance(value, (list, tuple)) else [value]
        found += [item for item in items if isinstance(item, Tensor)]
    return found


def _map_tensors(value: Any, mapped: dict[int, Tensor]) -> Any:
    if isinstance(value, Tensor):
        return mapped.get(value.id, value)
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(v, mapped) for v in value)
    return value


class Model(Trainer, Layer):
    """A model: ``Model(inputs, outputs, name=None)`` from :func:`~graphc.nn.Input` placeholders and the
    tensors that layer calls built from them, or a subclass that defines ``call(inputs, training=False)``
    with layers set as attributes in ``__init__`` (built on the first data it sees, or ``build(shape)``).

    ``model.layers`` lists the layers in the order they are first called; ``model.inputs`` /
    ``model.outputs`` are the inference graph's placeholders and outputs.
    """

    autocast = False

    def __init__(self, inputs: Any = None, outputs: Any = None, name: str | None = None,
                 trainable: bool = True, **kwargs: Any) -> None:
        Layer.__init__(self, name=name, trainable=trainable, **kwargs)
        Trainer.__init__(self)
        self.inputs: list[Tensor] = []
        self.outputs: list[Tensor] = []
        self._single_input = True
        self._single_output = True
        self._layers: list[Layer] = []
        self._output_shapes: dict[int, list[tuple[int | None, ...]]] = {}
        self._functional = inputs is not None or outputs is not None
        if self._functional:
            self._init_functional(inputs, outputs)

    # ---- functional construction ------------------------------------------------------------------

    def _init_functional(self, inputs: Any, outputs: Any) -> None:
        if inputs is None or outputs is None:
            raise self.error(ArgumentError, "a functional model needs both inputs and outputs")
        ins, listed_in = _as_list(inputs)
        outs, listed_out = _as_list(outputs)
        self._single_input, self._single_output = not listed_in, not listed_out
        for role, items in (("inputs", ins), ("outputs", outs)):
            for t in items:
                if not isinstance(t, Tensor):
                    raise self.error(ArgumentError, f"{role} must be tensors (nn.Input placeholders and layer "
                                     f"outputs), got {type(t).__name__}")
        for t in ins:
            if t.op != "placeholder":
                raise self.error(ArgumentError, f"inputs must be placeholders (nn.Input), got {t.describe()} "
                                 f"made by {t.op}")
        if not outs:
            raise self.error(ArgumentError, "a functional model needs at least one output")
        self.inputs, self.outputs = ins, outs
        self.multi_input = len(ins) > 1
        self._layers = self._trace_layers()
        self.built = True

    def _trace_layers(self) -> list[Layer]:
        """The layers whose calls lead from the inputs to the outputs, in call order; checks that every
        placeholder the outputs read is one of the inputs."""
        input_ids = {t.id for t in self.inputs}
        seen: set[int] = set()
        layers: list[Layer] = []
        for t in self._walk(self.outputs, input_ids, seen):
            record = producer_record(t)
            if record is not None:
                if all(record.layer is not layer for layer in layers):
                    layers.append(record.layer)
                self._output_shapes.setdefault(id(record.layer), list(record.output_shapes))
            elif t.op == "placeholder" and t.id not in input_ids:
                raise self.error(ArgumentError,
                                 f"the outputs depend on {t.describe()}, which is not one of the model's inputs "
                                 f"({', '.join(i.describe() for i in self.inputs)})")
        return layers

    @staticmethod
    def _walk(outputs: Sequence[Tensor], stop: set[int], seen: set[int]) -> list[Tensor]:
        """The tensors that lead to ``outputs``, producers first, seen through layer calls (a layer call's
        outputs come after its inputs; the nodes inside a layer are not visited)."""
        order: list[Tensor] = []
        stack: list[tuple[Tensor, bool]] = [(t, False) for t in reversed(outputs)]
        while stack:
            t, expanded = stack.pop()
            if expanded:
                order.append(t)
                continue
            if t.id in seen:
                continue
            seen.add(t.id)
            stack.append((t, True))
            if t.id in stop:
                continue
            record = producer_record(t)
            parents = (*record.inputs, *_kwarg_tensors(record.kwargs)) if record is not None else t.inputs
            stack.extend((p, False) for p in reversed(parents) if p.id not in seen)
        return order

    def _replay(self, new_inputs: Sequence[Tensor], training: bool | None) -> list[Tensor]:
        """The outputs rebuilt on ``new_inputs``: each recorded layer call made again (in the mode of the
        graph being built), each other node rebuilt on its replayed inputs."""
        mapped: dict[int, Tensor] = {old.id: new for old, new in zip(self.inputs, new_inputs)}
        for t in self._walk(self.outputs, set(mapped), set()):
            if t.id in mapped:
                continue
            record = producer_record(t)
            if record is None:
                mapped[t.id] = rebuild(t, [mapped.get(p.id, p) for p in t.inputs]) if t.inputs else t
                continue
            args = [mapped[i.id] for i in record.inputs]
            kwargs = {k: _map_tensors(v, mapped) for k, v in record.kwargs}
            out = record.layer.invoke(args if record.multi_input else args[0], training, kwargs, record.location)
            outs = list(out) if record.multi_output else [out]
            for old_id, new in zip(record.output_ids, outs):
                mapped[old_id] = new
        return [mapped[t.id] for t in self.outputs]

    # ---- subclassed and sequential models: building from a shape ------------------------------------

    def _tracked_layers(self) -> list[Layer]:
        """The layers a subclassed model keeps as attributes (alone or in lists), in assignment order."""
        found: list[Layer] = []
        for value in vars(self).values():
            items = value if isinstance(value, (list, tuple)) else [value]
            for item in items:
                if isinstance(item, Layer) and item is not self and all(item is not f for f in found):
                    found.append(item)
        return found

    def build(self, input_shape: Any = None, dtype: Any = None) -> None:
        """Build the model for inputs of ``input_shape`` (with the batch axis, e.g. ``(None, 784)``; a list
        of shapes for several inputs): creates the layers' weights and the inference graph."""
        if self.built and self.inputs:
            return
        if input_shape is None:
            raise self.error(ArgumentError, "build needs the input shape (with the batch axis), e.g. (None, 784)",
                             user_location())
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        dtypes_ = dtype if isinstance(dtype, list) else [dtype] * len(shapes)
        location = user_location()
        with located_at(location):
            placeholders = [Input(tuple(s)[1:], d or self._default_input_dtype(), batch_size=next(iter(s)))
                            for s, d in zip(shapes, dtypes_)]
        self._single_input = not isinstance(input_shape, list)
        self.multi_input = len(placeholders) > 1
        self._build_graph(placeholders, location)

    def _default_input_dtype(self) -> str:
        first = self.layers[0] if self.layers else None
        return getattr(first, "input_dtype", None) or "float32"

    def _build_graph(self, placeholders: list[Tensor], location: SourceLocation | None) -> None:
        """Build the inference graph on ``placeholders``; the layers get their weights."""
        self.inputs = placeholders
        arg: Any = placeholders if not self._single_input else placeholders[0]
        with located_at(location):
            out = self._forward(arg, False, record_shapes=True)
        outs, listed = _as_list(out)
        self.outputs, self._single_output = outs, not listed
        if not self._functional and not isinstance(self, Sequential):
            self._layers = self._tracked_layers()
        self.built = True

    def _forward(self, inputs: Any, training: bool, record_shapes: bool = False) -> Any:
        """A subclassed model's graph: its ``call``."""
        return type(self).call(self, inputs, training=training)

    def build_from_data(self, x: Sequence[np.ndarray]) -> None:
        """Build an unbuilt model from the first data it is given (shape and, for integer inputs, dtype)."""
        if self.built and self.inputs:
            return
        shapes = [(None, *a.shape[1:]) for a in x]
        dtypes_ = [a.dtype.name if a.dtype.kind in "iu" and self._default_input_dtype() != "float32"
                   else None for a in x]
        self.build(shapes if len(shapes) > 1 else shapes[0], dtypes_ if len(x) > 1 else dtypes_[0])

    # ---- as a layer ---------------------------------------------------------------------------------

    def call(self, inputs: Any, training: bool = False) -> Any:
        """The model applied to new tensors (a nested model): its graph rebuilt on them."""
        if self._functional:
            given, _ = _as_list(inputs)
            if len(given) != len(self.inputs):
                raise self.error(ArgumentError, f"takes {len(self.inputs)} inputs, got {len(given)}")
            outs = self._replay(given, training)
            return outs[0] if self._single_output else outs
        raise NotImplementedError(f"{type(self).__name__} must define call(inputs, training=False)")

    def invoke(self, inputs: Any, training: bool | None, kwargs: dict[str, Any], location: SourceLocation | None,
               record: bool = False) -> Any:
        if not self.built or not self.inputs:
            given, _ = _as_list(inputs)
            with located_at(location):
                self._single_input = not isinstance(inputs, (list, tuple))
                self.build([t.shape for t in given] if not self._single_input else given[0].shape,
                           [t.dtype for t in given] if not self._single_input else given[0].dtype)
        return Layer.invoke(self, inputs, training, kwargs, location, record)

    def graph(self, training: bool) -> tuple[list[Tensor], Any]:
        """``(outputs, build context)`` of the inference graph (``training`` False: ``self.outputs``) or of
        a new training graph on the same input placeholders."""
        if not training:
            with building(False) as context:
                return list(self.outputs), context
        with building(True) as context:
            arg: Any = self.inputs if not self._single_input else self.inputs[0]
            if self._functional:
                outs = self._replay(self.inputs, True)
            else:
                outs, _ = _as_list(self._forward(arg, True))
        return outs, context

    # ---- layers and weights -------------------------------------------------------------------------

    @property
    def layers(self) -> list[Layer]:
        """The model's layers (not the inputs), in the order they are called."""
        if not self._functional and not isinstance(self, Sequential) and not self._layers:
            return self._tracked_layers()
        return list(self._layers)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or by index."""
        if index is not None:
            try:
                return self.layers[index]
            except (IndexError, TypeError):
                raise self.error(ArgumentError, f"has {len(self.layers)} layers; no index {index!r}",
                                 user_location()) from None
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise self.error(ArgumentError, f"has no layer named {name!r}; its layers are "
                         f"{', '.join(layer.name for layer in self.layers)}", user_location())

    @property
    def named_weights(self) -> list[tuple[str, Variable]]:
        """``("layers.<i>.<weight name>", Variable)`` for every weight, keyed by the layer's position (what
        weight files use: a model built the same way in another process has the same keys)."""
        result: list[tuple[str, Variable]] = []
        seen: set[int] = set()
        for i, layer in enumerate(self.layers):
            for name, var in layer.named_weights:
                if var.id not in seen:
                    seen.add(var.id)
                    result.append((f"layers.{i}.{name}", var))
        return result

    @property
    def weights(self) -> list[Variable]:
        return [v for _, v in self.named_weights]

    @property
    def trainable_weights(self) -> list[Variable]:
        if not self.trainable:
            return []
        result: list[Variable] = []
        seen: set[int] = set()
        for layer in self.layers:
            for var in layer.trainable_weights:
                if var.id not in seen:
                    seen.add(var.id)
                    result.append(var)
        return result

    def regularization_losses(self) -> list[Tensor]:
        return [loss for layer in self.layers for loss in layer.regularization_losses()] if self.trainable else []

    # ---- summary ------------------------------------------------------------------------------------

    def _require_built(self, what: str) -> None:
        if not self.built or not self.inputs:
            raise self.error(GraphcError, f"{what} needs a built model: give the first layer input_shape=, start "
                             f"with nn.Input(shape), call model.build((None, ...)), or fit it on data first",
                             user_location())

    def summary(self, line_length: int = 80, print_fn: Callable[[str], Any] | None = None) -> None:
        """Print a table of the layers: name (type), output shape and parameter count, then the totals."""
        self._require_built("summary")
        widths = (int(line_length * 0.42), int(line_length * 0.36))
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer in self.layers:
            shapes = self._output_shapes.get(id(layer), [])
            shown = ", ".join(format_shape(s) for s in shapes) if shapes else "?"
            rows.append((f"{layer.name} ({type(layer).__name__})", shown, f"{layer.count_params():,}"))
        trainable = sum(int(np.prod(v.shape)) for v in self.trainable_weights)
        total = self.count_params()
        rule, heavy = "-" * line_length, "=" * line_length
        lines = [f'Model: "{self.name}"', rule]
        for k, (a, b, c) in enumerate(rows):
            lines.append(f"{a:<{widths[0]}}{b:<{widths[1]}}{c}")
            lines.append(heavy if k == 0 else rule if k == len(rows) - 1 else "")
        lines = [line for line in lines if line]
        lines += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", rule]
        (print_fn or print)("\n".join(lines))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} '{self.name}' with {len(self.layers)} layers>"


class Sequential(Model):
    """A stack of layers, each called on the previous one's output: ``Sequential([Dense(64,
    activation="relu"), Dense(10)], name=None)``; ``add(layer)`` appends one.  The model is built as soon
    as its input shape is known: an ``nn.Input(shape)`` as the first entry, ``input_shape=`` on the first
    layer, ``build((None, ...))``, or the first data given to ``fit`` / ``predict``."""

    def __init__(self, layers: Sequence[Any] | None = None, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self._input_spec: Tensor | None = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer: Any) -> None:
        """Append a layer (or, first, an ``nn.Input`` placeholder giving the input shape)."""
        location = user_location()
        if isinstance(layer, Tensor):
            if self._layers or self._input_spec is not None or layer.op != "placeholder":
                raise self.error(ArgumentError, f"only the first entry may be an input (nn.Input), got "
                                 f"{layer.describe()}", location)
            self._input_spec = layer
            return
        if not isinstance(layer, Layer):
            raise self.error(ArgumentError, f"add expects a layer, got {type(layer).__name__}", location)
        if any(layer is existing for existing in self._layers):
            raise self.error(ArgumentError, f"{layer.describe()} is already in the model", location)
        if self.inputs:
            with located_at(location):
                out = layer.invoke(self.outputs[0], False, {}, location)
            self._output_shapes[id(layer)] = [o.shape for o in _as_list(out)[0]]
            self._layers.append(layer)
            self.outputs = [out]
            return
        self._layers.append(layer)
        first = self._layers[0]
        if self._input_spec is not None:
            self._build_graph([self._input_spec], location)
        elif first.input_shape_hint is not None:
            self.build((None, *first.input_shape_hint), getattr(first, "input_dtype", None))

    def pop(self) -> Layer:
        """Remove the last layer (the model is rebuilt on the same input)."""
        if not self._layers:
            raise self.error(ArgumentError, "has no layers to pop", user_location())
        layer = self._layers.pop()
        self._output_shapes.pop(id(layer), None)
        if self.inputs and self._layers:
            self._build_graph(self.inputs, user_location())
        return layer

    def _forward(self, inputs: Any, training: bool, record_shapes: bool = False) -> Any:
        if not self._layers:
            raise self.error(ArgumentError, "has no layers", user_location())
        t = inputs
        for layer in self._layers:
            t = layer.invoke(t, training, {}, layer._location)
            if record_shapes:
                self._output_shapes[id(layer)] = [o.shape for o in _as_list(t)[0]]
        return t

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self._forward(inputs, training)
