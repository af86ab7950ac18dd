"""A :class:`Program` is what one run executes: outputs, variable updates, and per-shape plans.

Session.run and gc.function both build one.  It checks the graph once (who feeds it, which
variables it updates), then for each input shape signature re-runs the shape rules with the
concrete shapes (so mismatched ``None`` dimensions are caught, with the user's line, before
anything executes) and caches the result.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from graphc.backends.base import DeviceArray, DeviceOptions, Executable, get_backend, parse_device
from graphc.errors import ArgumentError, DTypeError, FeedError, GraphcError, GraphError, ShapeError
from graphc.ir.build import annotate
from graphc.ir.graph import Graph
from graphc.ir.location import user_location
from graphc.ir.registry import AbstractValue
from graphc.ir.shapes import format_shape
from graphc.ir.tensor import Tensor
from graphc.ops.state import Variable, convert_value
from graphc.runtime import compile_cache

_update_lock = threading.Lock()

Signature = tuple[tuple[int, ...], ...]
Runner = Callable[[Sequence[np.ndarray]], "list[np.ndarray | None]"]
"""One shape signature's run: the placeholders' values in, the outputs' values out (see Program.runner)."""


def device_options(device: str, threads: int | None = None, cpu: str | None = None) -> DeviceOptions:
    """The checked options of a run on ``device`` (the backend refuses what it cannot honour)."""
    name, index = parse_device(device)
    options = DeviceOptions(device, index, check_threads(threads), cpu)
    get_backend(name).check_options(options)
    return options


def check_threads(threads: int | None) -> int:
    """The thread count to run compiled code with: ``None`` means every core this process may use."""
    if threads is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ArgumentError(f"threads must be a positive int or None (every core), got {threads!r}")
    return int(threads)


def call_site() -> str:
    """``\n  in the call at file:line``: the user's line that is running the graph (error paths only)."""
    location = user_location()
    return f"\n  in the call at {location}" if location else ""


def with_call_site(error: GraphcError) -> GraphcError:
    """The same error, its message ending with the user's line that ran the graph."""
    new = type(error)(f"{error}{call_site()}")
    new.__dict__.update(error.__dict__)  # keeps .location, the line that created the node
    return new


def _check_single_update_per_variable(updates: Sequence[Tensor]) -> None:
    seen: dict[int, Tensor] = {}
    for node in updates:
        var = node.inputs[0]
        if var.id in seen:
            first = seen[var.id]
            raise GraphError(
                f"variable {var.describe()} is updated twice in one run: by {first.op} "
                f"at {first.location} and by {node.op} at {node.location}")
        seen[var.id] = node


class Program:
    """Outputs plus the assignments they trigger, ready to run with fed placeholder values."""

    def __init__(self, outputs: Sequence[Tensor], feedable: Sequence[Tensor] | None = None, level: int = 2,
                 device: str | DeviceOptions = "cpu", threads: int | None = None) -> None:
        from graphc.passes.pipeline import optimize

        built = Graph(outputs)  # as the user built it: errors below are about that graph
        _check_single_update_per_variable([n for n in built.nodes if n.opdef.stateful])
        if feedable is not None:
            allowed = {p.id for p in feedable}
            for p in built.placeholders:
                if p.id not in allowed:
                    raise GraphError(f"the outputs depend on placeholder {p.describe()}, which is not among "
                                     "the inputs")
        self.built_nodes = built.nodes
        self.options = device if isinstance(device, DeviceOptions) else device_options(device, threads)
        self.device, self.threads = self.options.device, self.options.threads
        backend_name = parse_device(self.device)[0]
        self.backend = get_backend(backend_name)
        self.backend.prepare(built.nodes, self.options, compile_cache.code_cache())  # overlaps the optimiser
        self.graph = optimize(list(outputs), level=level)
        self.outputs = self.graph.outputs
        self.updates = [n for n in self.graph.nodes if n.opdef.stateful]
        # what must be fed: a function's declared inputs (used or not), else the placeholders reached
        self.placeholders = tuple(feedable) if feedable is not None else built.placeholders
        self.variables: tuple[Variable, ...] = tuple(v for v in self.graph.variables if isinstance(v, Variable))
        self.memory_space = f"{backend_name}:{self.options.index}"  # where device values live ("cuda:0")
        self._plans: dict[Signature, dict[int, AbstractValue]] = {}
        self._executables: dict[Signature, Executable] = {}
        self._runners: dict[Signature, Runner] = {}
        self._lock = threading.Lock()
        self._shape_matches = {p.id: _shape_test(p.shape) for p in self.placeholders}
        self._wanted = [*self.outputs, *self.updates]
        # outputs handed back without a copy where the backend's are fresh arrays: computed (never a
        # source), not an earlier output again and not an update (whose array becomes the Variable's
        # value); other backends (the reference interpreter may alias its inputs) have every output copied
        fresh = self.backend.fresh_outputs
        updated = {u.id for u in self.updates}
        self._fresh_outputs = [fresh and o.opdef.family != "source" and o.id not in updated
                               and all(o.id != e.id for e in self.outputs[:k]) for k, o in enumerate(self.outputs)]

    # ---- feeds -------------------------------------------------------------------------------
    def convert_feeds(self, feeds: Mapping[Tensor, Any]) -> dict[int, np.ndarray]:
        """Check and convert the values fed for this program's placeholders; FeedError on any problem."""
        for p in self.placeholders:
            if p not in feeds:
                raise FeedError(f"placeholder {p.describe()} must be fed: expected {p.type_str()}, got no value")
        return self.convert_positional([feeds[p] for p in self.placeholders])

    def convert_positional(self, values: Sequence[Any]) -> dict[int, np.ndarray]:
        """Check and convert one value per placeholder, in order.  A C-contiguous array of the exact
        dtype and a matching shape is taken as it is (the common case, checked cheaply); anything
        else goes through :func:`convert_value`."""
        converted: dict[int, np.ndarray] = {}
        for p, value in zip(self.placeholders, values):
            if (type(value) is np.ndarray and value.dtype == p.dtype and value.flags.c_contiguous
                    and self._shape_matches[p.id](value.shape)):
                converted[p.id] = value
            else:
                converted[p.id] = convert_value(value, p.dtype, p.shape, f"feeding placeholder {p.describe()}")
        return converted

    # ---- specialisation --------------------------------------------------------------------
    def signature(self, feeds: Mapping[int, np.ndarray]) -> Signature:
        """The shapes of the fed values, in placeholder order: what plans and compiled code are cached by."""
        return tuple(feeds[p.id].shape for p in self.placeholders)

    def plan(self, feeds: Mapping[int, np.ndarray], signature: Signature | None = None) -> dict[int, AbstractValue]:
        signature = self.signature(feeds) if signature is None else signature
        plan = self._plans.get(signature)
        if plan is None:
            plan = self._specialize(feeds)
            with self._lock:
                self._plans[signature] = plan
        return plan

    def _specialize(self, feeds: Mapping[int, np.ndarray]) -> dict[int, AbstractValue]:
        """Every node's concrete dtype and shape for these feeds.  Shapes that do not fit are
        reported on the graph as the user built it (rewriting and fusion may have moved the failing
        op into a kernel), so the error names the user's tensors and line."""
        try:
            return infer_all(self.graph.nodes, feeds)
        except (ShapeError, DTypeError, ArgumentError) as exc:
            failure = exc
        try:
            infer_all(self.built_nodes, feeds)
        except (ShapeError, DTypeError, ArgumentError) as exc:
            failure = exc
        fed = ", ".join(f"{p.name}: {format_shape(feeds[p.id].shape)}" for p in self.placeholders)
        node = getattr(failure, "node", None)
        if node is None:
            error = type(failure)(f"{failure}\n  with fed shapes {fed}")
            error.__dict__.update(failure.__dict__)
            raise error from None
        raise annotate(type(failure)(f"{failure} (with fed shapes {fed})"), node.op, node.inputs,
                       node.location) from None

    def _executable(self, signature: Signature, avals: dict[int, AbstractValue]) -> Executable:
        """The backend's executable for this shape signature (compiled on first use, then kept)."""
        executable = self._executables.get(signature)
        if executable is None:
            executable = self.backend.compile(self.graph.nodes, avals, self._wanted, self.options,
                                              compile_cache.code_cache())
            with self._lock:
                self._executables[signature] = executable
        return executable

    # ---- running ---------------------------------------------------------------------------
    def run_fed(self, feeds: Mapping[Tensor, Any]) -> list[np.ndarray | None]:
        """Check the feeds and run; any error names the user's line that asked for the run."""
        try:
            return self.run(self.convert_feeds(feeds))
        except GraphcError as exc:
            raise with_call_site(exc) from None

    def run_positional(self, values: Sequence[Any]) -> list[np.ndarray | None]:
        """Like :meth:`run_fed` with one value per placeholder, in order (gc.function's calls)."""
        try:
            return self.run(self.convert_positional(values))
        except GraphcError as exc:
            raise with_call_site(exc) from None

    def run(self, feeds: dict[int, np.ndarray]) -> list[np.ndarray | None]:
        """Run with converted feeds; apply updates together at the end; return the outputs' values."""
        signature = tuple([feeds[p.id].shape for p in self.placeholders])
        runner = self._runners.get(signature)
        if runner is None:
            runner = self.runner(signature, feeds)
        return runner([feeds[p.id] for p in self.placeholders])

    def remember_kind(self, values: Sequence[Any]) -> None:
        """After a run with ``values`` (one per placeholder): if they needed no conversion (C-contiguous arrays
        of the placeholders' dtypes), let :meth:`quick_runner` hand later values of the same dtypes and shapes
        straight to that signature's prepared run."""
        ndarray = np.ndarray
        if len(values) != len(self.placeholders) or not all(
                type(a) is ndarray and a.dtype is p.dtype and a.flags.c_contiguous
                for a, p in zip(values, self.placeholders)):
            return
        runner = self._runners.get(tuple(a.shape for a in values))
        if runner is not None:
            self.quick_runner = _kind_test([(p.dtype, a.shape) for a, p in zip(values, self.placeholders)], runner)

    def quick_runner(self, values: Sequence[Any]) -> Runner | None:
        """The prepared run for ``values`` if they are of the remembered kind (else None: convert them).
        Replaced by a test specialised to that kind once there is one (:meth:`remember_kind`)."""
        return None

    def runner(self, signature: Signature, feeds: Mapping[int, np.ndarray]) -> Runner:
        """The run of this shape signature as one prepared call taking the placeholders' converted values in
        order (compiling it first if needed): reads the Variables, runs the executable, applies the updates
        together at the end and returns the outputs' values."""
        executable = self._executables.get(signature)
        if executable is None:
            executable = self._executable(signature, self.plan(feeds, signature))
        variables = self.variables
        bound = executable.bind([*(p.id for p in self.placeholders), *(v.id for v in variables)],
                                [*(o.id for o in self.outputs), *(u.id for u in self.updates)])
        on_device, memory_space = self.backend.device_values, self.memory_space
        owned = self.backend.fresh_outputs  # then update values are fresh arrays nobody else holds
        outputs = len(self.outputs)
        updates = [(outputs + k, node.inputs[0]) for k, node in enumerate(self.updates)]
        fresh = self._fresh_outputs

        # nothing to add or apply: the executable's call is the whole run
        plain = bound if not (variables or updates or on_device) and all(fresh) else None

        def run(values: Sequence[np.ndarray]) -> list[np.ndarray | None]:
            if on_device:
                results = bound([*values, *(var.read_on(memory_space) for var in variables)])
            else:
                results = bound([*values, *(var.read() for var in variables)])
            if updates:
                with _update_lock:
                    for k, var in updates:
                        new = results[k]
                        if isinstance(new, DeviceArray):
                            var.set_resident(new)  # stays on the device for the next step
                        else:
                            var.set_value(new, owned=owned)
            if on_device:
                return [None if (value := results[k]) is None else value.to_host() if isinstance(value, DeviceArray)
                        else np.array(value, copy=True) for k in range(outputs)]
            return [None if (value := results[k]) is None else value if fresh[k] else np.array(value, copy=True)
                    for k in range(outputs)]

        chosen = plain or run
        with self._lock:
            self._runners[signature] = chosen
        return chosen


def _kind_test(expected: Sequence[tuple[np.dtype, tuple[int, ...]]], runner: Runner
               ) -> Callable[[Sequence[Any]], Runner | None]:
    """``runner`` for values that are C-contiguous arrays of exactly these dtypes and shapes, else None (a
    test written out for one argument, the common case, since it runs on every call)."""
    ndarray = np.ndarray
    count = len(expected)
    if count == 1:
        ((dtype, shape),) = expected

        def test_one(values: Sequence[Any]) -> Runner | None:
            if len(values) == 1:
                a = values[0]
                if type(a) is ndarray and a.dtype is dtype and a.shape == shape and a.flags.c_contiguous:
                    return runner
            return None

        return test_one

    def test(values: Sequence[Any]) -> Runner | None:
        if len(values) != count:
            return None
        for a, (dtype, shape) in zip(values, expected):
            if type(a) is not ndarray or a.dtype is not dtype or a.shape != shape or not a.flags.c_contiguous:
                return None
        return runner

    return test


def infer_all(nodes: Sequence[Tensor], feeds: Mapping[int, Any]) -> dict[int, AbstractValue]:
    """Run the shape rules over ``nodes`` with the fed shapes.  A failing rule's error gets a
    ``node`` attribute (the node it failed on) unless it already names an op inside a fused kernel."""
    avals: dict[int, AbstractValue] = {}
    for node in nodes:
        if node.id in feeds:
            avals[node.id] = AbstractValue(node.dtype, feeds[node.id].shape)
            continue
        try:
            avals[node.id] = node.opdef.infer([avals[i.id] for i in node.inputs], **node.attrs)
        except (ShapeError, DTypeError, ArgumentError) as exc:
            if getattr(exc, "location", None) is None:
                exc.node = node  # type: ignore[attr-defined]
            raise
    return avals


def _shape_test(shape: tuple[int | None, ...]) -> Any:
    """A fast test that a shape tuple matches ``shape`` (``None`` matching any size)."""
    if None not in shape:
        return shape.__eq__
    fixed = [(axis, size) for axis, size in enumerate(shape) if size is not None]
    ndim = len(shape)
    return lambda got: len(got) == ndim and all(got[axis] == size for axis, size in fixed)
