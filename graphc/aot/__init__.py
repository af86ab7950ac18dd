"""Ahead-of-time compilation: a graph to a self-contained shared object and a C header.

``gc.aot.compile(inputs, outputs, "build/model")`` writes ``build/model.so`` and ``build/model.h``;
``gc.aot.load("build/model.so")`` calls such a library from Python.  See docs/aot.md.

The submodules (LLVM, the CPU backend) are imported on first use, so ``import graphc`` stays quick.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graphc.aot.compiler import Artifact
    from graphc.aot.loader import CompiledLibrary
    from graphc.ir.tensor import Tensor


def compile(inputs: Tensor | Sequence[Tensor], outputs: Tensor | Sequence[Tensor], path: str | os.PathLike[str],
            name: str | None = None, *, target: str | None = None, cpu: str | None = None, level: int = 2,
            threads: int = 1, object_file: bool = False, link: bool = True) -> Artifact:
    """Compile the graph from placeholders ``inputs`` to ``outputs`` into ``path.so`` and ``path.h``
    (and ``path.o`` with ``object_file=True``; ``link=False`` writes the object and header only).

    ``name`` prefixes the C functions (default: the file name of ``path``).  ``target`` is an LLVM
    triple (default: this machine's); ``cpu`` an LLVM CPU name (default: the architecture's baseline,
    so the library runs on every CPU of that architecture; ``"native"``: this machine's CPU with all
    its features).  ``level`` is the optimisation level, as for gc.function.  Kernels may use up to
    ``threads`` threads per call (default 1: calls run side by side from the application's threads).
    Variables are embedded with the values they hold now; ``None`` dimensions of the inputs become
    run-time dimensions.  Returns an :class:`~graphc.aot.compiler.Artifact` naming what was written."""
    from graphc.aot.compiler import compile as compile_graph

    return compile_graph(inputs, outputs, path, name, target=target, cpu=cpu, level=level, threads=threads,
                         object_file=object_file, link=link)


def load(path: str | os.PathLike[str], name: str | None = None) -> CompiledLibrary:
    """A Python callable over a library made by :func:`compile`: see :func:`graphc.aot.loader.load`."""
    from graphc.aot.loader import load as load_library

    return load_library(path, name)


def needed_libraries(path: str | os.PathLike[str]) -> list[str]:
    """The shared libraries (``DT_NEEDED``) an ELF shared object asks the loader for."""
    from graphc.aot.link import needed_libraries as needed

    return needed(path)


__all__ = ["compile", "load", "needed_libraries"]
