"""The two ways to run a graph: ``Session.run`` (TensorFlow 1.x) and ``gc.function`` (Theano)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from graphc.errors import ArgumentError, FeedError, GraphcError, GraphError
from graphc.ir.build import where_text
from graphc.ir.location import user_location
from graphc.ir.scope import current_scope, enter_scope, scope_of
from graphc.ir.tensor import Tensor
from graphc.nest import flatten
from graphc.ops.state import Variable, assign
from graphc.passes.engine import RewriteLog
from graphc.passes.pipeline import OptimizedGraph
from graphc.runtime.program import Program, call_site, device_options, with_call_site


def _flatten_tensors(structure: Any, what: str) -> tuple[list[Tensor], Any]:
    try:
        return flatten(structure, lambda n: isinstance(n, Tensor))
    except TypeError as exc:
        raise GraphError(f"{what} must be tensors in (nested) lists, tuples or dicts; found a {exc}"
                         f"{where_text(user_location())}") from None


def _fetch_key(fetches: Any) -> object:
    """A cheap key for the common fetch structures (one tensor, a flat list or tuple of tensors); None for
    others (they take the general path every time)."""
    if isinstance(fetches, Tensor):
        return fetches.id
    if type(fetches) in (list, tuple) and all(isinstance(t, Tensor) for t in fetches):
        return (type(fetches), *(t.id for t in fetches))
    return None


class Session:
    """Runs fetches with fed values: ``Session().run(fetches, feed_dict)`` (``device="cpu"`` by default).

    Only the part of the graph the fetches need is run.  Plans are cached per set of fetches and
    per shape signature of the feeds, so repeated ``run`` calls do not re-check the graph.
    ``threads`` and ``cpu`` are as for :func:`function`.
    """

    def __init__(self, device: str = "cpu", level: int = 2, threads: int | None = None,
                 cpu: str | None = None) -> None:
        from graphc.passes.pipeline import check_level

        self.options = device_options(device, threads, cpu)
        self.device, self.threads = self.options.device, self.options.threads
        self.level = check_level(level)
        self._programs: dict[tuple[int, ...], Program] = {}
        self._quick: dict[object, tuple[Program, Callable[[Sequence[Any]], Any]]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def run(self, fetches: Any, feed_dict: Mapping[Tensor, Any] | None = None) -> Any:
        """Compute ``fetches`` (a tensor, or nested lists/tuples/dicts of them) as NumPy arrays.

        Fetching an op without a value (``group``) gives ``None``.  Assignments among the fetched
        ops (or that they depend on) are applied together after the values are computed.
        """
        if self._closed:
            raise GraphError("this Session is closed")
        fetch_key = _fetch_key(fetches)
        quick = self._quick.get(fetch_key) if feed_dict is not None else None
        if quick is not None:  # fetches seen before, fed values of the last run's kind: no conversion needed
            program, rebuild = quick
            values = [feed_dict.get(p) for p in program.placeholders] if len(feed_dict) == len(
                program.placeholders) else None
            runner = program.quick_runner(values) if values is not None else None
            if runner is not None:
                try:
                    return rebuild(runner(values))
                except GraphcError as exc:
                    raise with_call_site(exc) from None
        leaves, rebuild = _flatten_tensors(fetches, "fetches")
        feed_dict = dict(feed_dict or {})
        for key in feed_dict:
            if not isinstance(key, Tensor) or key.op != "placeholder":
                what = key.describe() if isinstance(key, Tensor) else repr(key)
                raise FeedError(f"feed_dict keys must be placeholders, got {what}{call_site()}")
        key = tuple(t.id for t in leaves)
        program = self._programs.get(key)
        if program is None:
            program = Program(leaves, level=self.level, device=self.options)
            with self._lock:
                self._programs[key] = program
        result = rebuild(program.run_fed(feed_dict))
        if fetch_key is not None:
            program.remember_kind([feed_dict[p] for p in program.placeholders])
            self._quick[fetch_key] = (program, rebuild)
        return result

    def close(self) -> None:
        self._closed = True
        self._programs.clear()
        self._quick.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Function:
    """A compiled callable over a graph; see :func:`function`."""

    def __init__(self, inputs: Sequence[Tensor], outputs: Any, updates: Any = None,
                 device: str = "cpu", name: str | None = None, level: int = 2,
                 threads: int | None = None, cpu: str | None = None) -> None:
        from graphc.passes.pipeline import check_level

        location = user_location()
        self.options = device_options(device, threads, cpu)
        self.device, self.threads = self.options.device, self.options.threads
        self.level = check_level(level)
        if isinstance(inputs, Tensor) or not isinstance(inputs, Sequence):
            raise ArgumentError(f"function inputs must be a list of placeholders, got {type(inputs).__name__}"
                                f"{where_text(location)}")
        self.inputs = tuple(inputs)
        for i, p in enumerate(self.inputs):
            if not isinstance(p, Tensor) or p.op != "placeholder":
                what = p.describe() if isinstance(p, Tensor) else type(p).__name__
                raise ArgumentError(f"function inputs must be placeholders; input {i} is {what}"
                                    f"{where_text(location)}")
        if len({p.id for p in self.inputs}) != len(self.inputs):
            raise ArgumentError(f"function inputs contain the same placeholder twice{where_text(location)}")
        self._returns_none = outputs is None
        leaves, self._rebuild = _flatten_tensors(outputs if outputs is not None else [], "outputs")
        self.outputs = tuple(leaves)
        self.updates = self._update_ops(updates)
        self.name = name or "function"
        self._program = Program([*self.outputs, *self.updates], feedable=self.inputs, level=self.level,
                                device=self.options)
        self.graph: OptimizedGraph = self._program.graph
        # one tensor as the outputs, and nothing else wanted: a call returns the one value itself
        self._plain = isinstance(outputs, Tensor) and not self.updates

    def source(self, kind: str | None = None) -> str:
        """The generated code of the most recently compiled shape signature, after a first call: on
        ``device="cpu"``, ``"llvm"`` (the optimised LLVM IR, the default) or ``"asm"`` (the machine code);
        on ``"cuda"`` and ``"cuda-sim"``, ``"ptx"`` (the default) or ``"launches"`` (the launch shapes)."""
        if not self._program.backend.generates_code:
            raise ArgumentError(f"{self.name} runs on device {self.device!r}, which generates no code; "
                                "use device='cpu'")
        if not self._program._executables:
            raise GraphError(f"{self.name} has not been compiled yet: call it once first (code is generated "
                             "per shape signature)")
        executable = list(self._program._executables.values())[-1]
        return executable.source() if kind is None else executable.source(kind)

    def launch_shapes(self) -> str:
        """On a GPU device, after a call: every compiled shape signature's kernels with the grid and block
        of each launch (what ``gc.dprint`` appends); an empty string on other devices."""
        parts = []
        for signature, executable in list(self._program._executables.items()):
            shapes = executable.launch_shapes()
            if shapes:
                fed = ", ".join(f"{p.name}: {list(shape)}" for p, shape in zip(self.inputs, signature))
                parts.append(f"launches on {self.device} for ({fed}):\n{shapes}")
        return "\n".join(parts)

    @property
    def rewrites(self) -> RewriteLog:
        """Every rewrite that fired while optimising this function: ``.counts()``, or iterate the records
        (rewrite name, phase, node, and the user's line of the node it rewrote)."""
        return self.graph.rewrites

    @staticmethod
    def _update_ops(updates: Any) -> list[Tensor]:
        if updates is None:
            return []
        pairs = list(updates.items()) if isinstance(updates, Mapping) else list(updates)
        ops = []
        for pair in pairs:
            try:
                var, value = pair
            except (TypeError, ValueError):
                raise ArgumentError(f"updates must be a dict {{Variable: new value}} or (Variable, value) pairs, "
                                    f"got {pair!r}{where_text(user_location())}") from None
            if not isinstance(var, Variable):
                what = var.describe() if isinstance(var, Tensor) else type(var).__name__
                raise ArgumentError(f"updates keys must be Variables, got {what}{where_text(user_location())}")
            # the assign joins the scope of the value it stores (an optimizer's updates stay in its scope)
            with enter_scope(scope_of(value.name) if isinstance(value, Tensor) else current_scope()):
                ops.append(assign(var, value))
        return ops

    def __call__(self, *args: Any) -> Any:
        """Run with one value per input, in the order of ``inputs``; return the outputs."""
        program = self._program
        runner = program.quick_runner(args)  # arguments of the last call's kind: no conversion needed
        if runner is not None:
            try:
                values = runner(args)
            except GraphcError as exc:
                raise with_call_site(exc) from None
            if self._plain:
                return values[0]
        else:
            if len(args) != len(self.inputs):
                expected = ", ".join(p.describe() for p in self.inputs) or "none"
                raise FeedError(f"{self.name} takes {len(self.inputs)} inputs ({expected}), got {len(args)}"
                                f"{call_site()}")
            values = program.run_positional(args)
            program.remember_kind(args)
        return None if self._returns_none else self._rebuild(values[: len(self.outputs)])

    def __repr__(self) -> str:
        ins = ", ".join(p.name for p in self.inputs)
        return f"<graphc.Function {self.name}({ins}) -> {len(self.outputs)} outputs, {len(self.updates)} updates>"


def function(inputs: Sequence[Tensor], outputs: Any = None, updates: Any = None, device: str = "cpu",
             name: str | None = None, level: int = 2, threads: int | None = None, cpu: str | None = None) -> Function:
    """Compile a callable: ``f = gc.function([x, y], loss, updates={w: w - lr * gw})``; ``f(xb, yb)``.

    ``outputs`` may be a tensor (the call returns an array) or nested lists/tuples/dicts of tensors
    (the call returns the same structure).  ``updates`` maps Variables to new values; they are
    applied after the outputs are computed, and every update reads the old values.  ``level`` is the
    optimisation level (0: none, 1: canonicalize and stabilize, 2: all phases, the default).
    ``threads`` caps the threads compiled code runs large kernels on (``None``: every core).  ``cpu``
    is the CPU level compiled code may assume: ``None`` (this machine's CPU), ``"native"``, or a lower
    level of this architecture such as ``"x86-64"`` (baseline SSE2), ``"x86-64-v3"`` (AVX2 + FMA) or
    ``"x86-64-v4"`` (AVX-512), to get the code (and results) another machine would run.
    """
    return Function(inputs, outputs, updates=updates, device=device, name=name, level=level, threads=threads,
                    cpu=cpu)


__all__ = ["Function", "Session", "function"]
