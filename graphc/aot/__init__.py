"""Ahead-of-time compilation: a graph to a self-contained shared object and a C header.

``gc.aot.compile(inputs, outputs, "build/model")`` writes ``build/model.so`` and ``build/model.h``;
``gc.aot.load("build/model.so")`` calls such a library from Python.  See docs/aot.md.
"""

from graphc.aot.compiler import Artifact, compile
from graphc.aot.link import needed_libraries
from graphc.aot.loader import CompiledLibrary, load

__all__ = ["Artifact", "CompiledLibrary", "compile", "load", "needed_libraries"]
