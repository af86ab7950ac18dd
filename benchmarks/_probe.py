"""Diagnostics that reach into graphc's runtime internals (``Function._program``, ``Program``, ``CpuExecutable``).

They split a call's time into its parts: an empty native call through ctypes, feed conversion, the
executable's run, the program's run.  Only Python-level entry points are called (never the native entry
with a hand-made pointer table, whose layout changes as the runtime does), so a changed internal raises a
Python exception: every caller catches :data:`INTERNALS_ERRORS` and prints that the diagnostic is
unavailable, and no target depends on them.
"""

from __future__ import annotations

import ctypes
import inspect
from collections.abc import Callable, Mapping
from typing import Any

INTERNALS_ERRORS = (AttributeError, KeyError, TypeError, ValueError, ImportError, IndexError, StopIteration)


def program_of(runner: Any, fetches: Any = None) -> Any:
    """The internal Program behind a ``gc.function`` (or behind ``Session.run(fetches)`` once it has run)."""
    program = getattr(runner, "_program", None)
    if program is not None:
        return program
    from graphc.ir.tensor import Tensor
    from graphc.nest import flatten

    leaves, _ = flatten(fetches, lambda n: isinstance(n, Tensor))
    return runner._programs[tuple(t.id for t in leaves)]


def executable_run(program: Any, feeds: Mapping[Any, Any]) -> Callable[[], Any]:
    """A zero-argument callable running the compiled executable of ``program`` for ``feeds`` (compiled
    already) through its own Python ``run`` method: buffers, pointer table and the native call, without
    feed conversion, plan lookup or updates."""
    converted = program.convert_feeds(feeds)
    signature = tuple(converted[p.id].shape for p in program.placeholders)
    executable = program._executables[signature]
    sources: dict[int, Any] = dict(converted)
    for var in program.variables:
        sources[var.id] = var.read()
    params = inspect.signature(executable.run).parameters
    if "wanted" in params:  # the runtime before the arena: run(sources, wanted, threads)
        wanted = [*program.outputs, *program.updates]
        return lambda: executable.run(sources, wanted, program.threads)
    return lambda: executable.run(sources)


def empty_native_call() -> Callable[[], None]:
    """A ctypes call of an empty JIT-compiled ``void f(void **)``: the floor for one native call."""
    from llvmlite import ir

    from graphc.backends.cpu.library import CompiledModule
    from graphc.codegen.target import new_module

    module = new_module("probe_noop")
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer().as_pointer()]), "noop")
    ir.IRBuilder(fn.append_basic_block()).ret_void()
    compiled = CompiledModule(module)
    entry = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_void_p))(compiled.address("noop"))
    table = (ctypes.c_void_p * 4)()

    def call() -> None:
        entry(table)

    call.keep = compiled  # type: ignore[attr-defined]  # the machine code must outlive the callable
    return call


def graphc_location() -> str:
    """Where the imported graphc comes from, and its git commit when that is a checkout."""
    import os
    import subprocess

    import graphc

    where = os.path.dirname(os.path.dirname(os.path.abspath(graphc.__file__)))
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "graphc"], cwd=where,
                               capture_output=True, text=True, timeout=10)
        commit = rev.stdout.strip() + ("+uncommitted changes in graphc/" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{where}" + (f" (commit {commit})" if commit else " (not a git checkout)")


__all__ = ["INTERNALS_ERRORS", "empty_native_call", "executable_run", "graphc_location", "program_of"]
