"""The backend interface and the device registry.

A backend turns an optimised graph, specialised to the dtypes and shapes of one run, into an
:class:`Executable`.  It brings three things (Numba's ``CodeLibrary`` split):

* a **lowering policy** (:class:`~graphc.lower.policy.LoweringPolicy`): the machine-dependent choices
  shared lowering leaves to it (threads, GEMM scratch, alignment);
* an **executable**: what runs the graph, one call per run;
* a **compiled-code library**: its code as bytes, so that a :class:`CodeCache` can keep it on disk
  and the backend can load it again without compiling.

Backends are registered by device name with the module path of their class, and imported on first use,
so ``import graphc`` stays quick and a backend adds files without editing others::

    register_backend("cpu", "graphc.backends.cpu.backend:CpuBackend")

A device name is the backend's name, optionally followed by ``:N`` for the N-th device of that kind
(``"cuda:1"``); the backend decides what N means.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from graphc.errors import ArgumentError
from graphc.ir.registry import AbstractValue
from graphc.ir.tensor import Tensor


@dataclass(frozen=True)
class DeviceOptions:
    """How a graph is to be run: ``device`` (the full device name), ``index`` (its ``:N``, 0 by default),
    ``threads`` (the most threads a kernel may use) and ``cpu`` (the CPU level compiled code may assume;
    ``None``: the backend's default, for the JIT the host's own)."""

    device: str
    index: int = 0
    threads: int = 1
    cpu: str | None = None


@dataclass(frozen=True)
class CachedCode:
    """What a code cache keeps for one compiled graph: the code (``code``, e.g. an object file or PTX),
    its text for inspection (``text``, e.g. optimised LLVM IR) and what the backend needs to load it
    (``meta``, JSON-serialisable)."""

    code: bytes
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


class CodeCache(Protocol):
    """A store of compiled code as bytes, keyed by graph and target (runtime/compile_cache.py is one)."""

    def key(self, *parts: Any) -> str | None:
        """A key for ``parts`` (None: the cache is off)."""

    def graph_key(self, nodes: Iterable[Tensor], avals: Mapping[int, AbstractValue], target: Sequence[str],
                  extra: Any = ()) -> str | None:
        """A key for a graph specialised to ``avals`` on ``target`` (None: off, or not describable)."""

    def has(self, key: str) -> bool:
        """Whether there is an entry under ``key``, without reading it (:meth:`load` may still refuse it)."""

    def load(self, key: str) -> CachedCode | None:
        """The entry under ``key`` (None: missing or unusable)."""

    def store(self, key: str, entry: CachedCode) -> bool:
        """Keep ``entry`` under ``key``; whether it was written."""


class DeviceArray(ABC):
    """A value in a device's memory (``device``: the full device name, e.g. ``"cuda:0"``).  Executables of
    backends with ``device_values`` return these; a Variable keeps one as its value between runs on that
    device, and ``to_host`` copies it to a NumPy array when someone reads it."""

    device: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @abstractmethod
    def to_host(self) -> np.ndarray:
        """The value copied into a new NumPy array (a new one on every call)."""


class Executable(ABC):
    """A graph compiled for one shape signature."""

    @abstractmethod
    def run(self, sources: Mapping[int, Any]) -> dict[int, Any]:
        """Run once: ``sources`` holds the values of placeholders and Variables (by node id: NumPy arrays,
        or for a backend with ``device_values`` also its own :class:`DeviceArray`); returns the value of
        every wanted node (``None`` for ``group``; a ``DeviceArray`` where the backend kept it on its device)."""

    def bind(self, source_ids: Sequence[int], wanted_ids: Sequence[int]) -> Callable[[Sequence[Any]], list[Any]]:
        """A call taking the source values in the order of ``source_ids`` and returning the values of
        ``wanted_ids`` in order: what a run does, prepared once (backends may make it cheaper than
        :meth:`run`; this default goes through it)."""
        run = self.run

        def call(values: Sequence[Any]) -> list[Any]:
            result = run(dict(zip(source_ids, values)))
            return [result[node_id] for node_id in wanted_ids]

        return call

    def source(self, kind: str) -> str:
        """The generated code as text (``kind`` is backend-specific: ``"llvm"``, ``"asm"``, ``"ptx"``)."""
        raise ArgumentError(f"this device generates no code, so there is no {kind!r} source; use device='cpu'")

    def launch_shapes(self) -> str | None:
        """Each kernel's launch shape (grid and block), one line per launch, on a GPU; None elsewhere."""
        return None


class Backend(ABC):
    """One kind of device.  ``fresh_outputs``: the arrays its executables hand back are new ones that
    nothing else refers to (so Variables may keep them without a copy); ``generates_code``: its
    executables have generated code to show (``Executable.source``); ``device_values``: its executables
    keep values in the device's memory (see :class:`DeviceArray`), so Variables stay there between runs."""

    name: str = ""
    fresh_outputs: bool = False
    generates_code: bool = False
    device_values: bool = False

    @abstractmethod
    def compile(self, nodes: Sequence[Tensor], avals: Mapping[int, AbstractValue], wanted: Sequence[Tensor],
                options: DeviceOptions, cache: CodeCache | None = None) -> Executable:
        """``nodes`` (an optimised graph, topologically ordered) for the dtypes and shapes in ``avals``;
        each run returns the values of ``wanted``.  ``cache`` keeps compiled code between processes."""

    @abstractmethod
    def check_options(self, options: DeviceOptions) -> None:
        """Raise ``ArgumentError`` for options this backend cannot honour (called when a Session or
        function is made, before anything compiles)."""

    def prepare(self, nodes: Sequence[Tensor], options: DeviceOptions,  # noqa: B027 (optional hook)
                cache: CodeCache | None = None) -> None:
        """Called when a program for this backend is made, with its graph as built (before it is
        optimised) and the cache :meth:`compile` will be given: the place to start, in the background,
        slow one-time work the first :meth:`compile` will need (the CPU backend starts compiling the
        runtime-library parts the graph will call).  Nothing by default."""


_REGISTRY: dict[str, str] = {}
_LOADED: dict[str, Backend] = {}
_lock = threading.Lock()


def register_backend(name: str, location: str) -> None:
    """Make device ``name`` (and ``name:N``) run on the backend class at ``location``
    (``"package.module:ClassName"``, imported on first use)."""
    if ":" in name or not name:
        raise ValueError(f"a backend name is a plain word, got {name!r}")
    _REGISTRY[name] = location


def device_names() -> list[str]:
    """The registered device names."""
    return sorted(_REGISTRY)


def parse_device(device: object) -> tuple[str, int]:
    """``(backend name, index)`` for a device name such as ``"cpu"`` or ``"cuda:1"``."""
    if not isinstance(device, str):
        raise ArgumentError(f"device must be a string such as 'cpu', got {device!r}")
    name, _, index = device.partition(":")
    if name not in _REGISTRY:
        raise ArgumentError(f"unknown device {device!r}; available: {', '.join(device_names())}")
    if not index:
        return name, 0
    if not index.isdigit():
        raise ArgumentError(f"a device index must be a non-negative integer, as in '{name}:0', got {device!r}")
    return name, int(index)


def get_backend(name: str) -> Backend:
    """The backend registered as ``name`` (imported and made on first use)."""
    backend = _LOADED.get(name)
    if backend is None:
        with _lock:
            backend = _LOADED.get(name)
            if backend is None:
                module, _, cls = _REGISTRY[name].partition(":")
                backend = getattr(importlib.import_module(module), cls)()
                _LOADED[name] = backend
    return backend


__all__ = ["Backend", "CachedCode", "CodeCache", "DeviceOptions", "Executable", "device_names", "get_backend",
           "parse_device", "register_backend"]
