"""``gc.aot.load``: call an ahead-of-time compiled shared object from Python (no LLVM needed).

The library's ``NAME_metadata()`` describes its signature; a call checks the arrays it is given
against it (dtype, rank, static sizes, and that the run-time dimensions agree between inputs), works
out ``dims``, allocates the outputs and calls ``NAME_run`` through ctypes.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graphc.aot.header import ABI_VERSION, default_name, shape_from_json
from graphc.errors import AotError, ExecutionError, FeedError, GraphcError
from graphc.ir.symbolic import Size, SymInt, evaluate
from graphc.ops.state import convert_value
from graphc.runtime.program import with_call_site

_copies = itertools.count()


def _load_fresh(library: Path) -> ctypes.CDLL:
    """``library`` loaded as it is on disk now.  The system loader hands back an already loaded
    library of the same path even when the file was replaced since (a recompiled model), so a
    private copy is loaded (and its file removed at once: the mapping stays)."""
    library = library.resolve()
    copy = library.with_name(f".{library.name}.{os.getpid()}.{next(_copies)}.so")
    try:
        shutil.copyfile(library, copy)
    except OSError:
        copy = library  # a read-only directory: load the file itself
    try:
        return ctypes.CDLL(str(copy))
    except OSError as exc:
        raise AotError(f"cannot load {library}: {exc}") from None
    finally:
        if copy != library:
            copy.unlink(missing_ok=True)


def _format(shape: Sequence[Size], dims: Sequence[str]) -> str:
    return "[" + ", ".join(s.format(lambda k: dims[k]) if isinstance(s, SymInt) else str(s) for s in shape) + "]"


class CompiledLibrary:
    """A loaded ``.so``: call it with one array per input (in order); returns the outputs (a list,
    or the single output when the graph was compiled with one output tensor)."""

    def __init__(self, path: str | os.PathLike[str], name: str | None = None) -> None:
        library = Path(path)
        if library.suffix != ".so" and not library.exists():
            library = library.with_name(library.name + ".so")
        if not library.exists():
            raise AotError(f"no compiled library at {library}")
        self.path = library
        self.name = name or default_name(library.with_suffix(""))
        self._lib = _load_fresh(library)
        try:
            metadata = getattr(self._lib, f"{self.name}_metadata")
            run = getattr(self._lib, f"{self.name}_run")
            error_string = getattr(self._lib, f"{self.name}_error_string")
        except AttributeError:
            raise AotError(f"{library} has no graphc entry points named {self.name}_*; pass name= (the name "
                           "given to gc.aot.compile)") from None
        metadata.restype = ctypes.c_char_p
        self.metadata: dict[str, Any] = json.loads(metadata().decode())
        if self.metadata.get("graphc_abi") != ABI_VERSION:
            raise AotError(f"{library} was made for graphc ABI {self.metadata.get('graphc_abi')}, not {ABI_VERSION}")
        run.restype = ctypes.c_int
        run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        error_string.restype = ctypes.c_char_p
        error_string.argtypes = [ctypes.c_int]
        self._run, self._error_string = run, error_string
        self.dims: list[list[str]] = self.metadata["dims"]
        self.inputs = [(t["name"], np.dtype(t["dtype"]), shape_from_json(t["shape"])) for t in self.metadata["inputs"]]
        self.outputs = [(t["name"], np.dtype(t["dtype"]), shape_from_json(t["shape"]))
                        for t in self.metadata["outputs"]]
        # where each run-time dim can be read off the inputs: (input, axis)
        self._dim_sources: list[tuple[int, int]] = []
        for k in range(len(self.dims)):
            self._dim_sources.append(next((i, axis) for i, (_, _, shape) in enumerate(self.inputs)
                                          for axis, s in enumerate(shape)
                                          if isinstance(s, SymInt) and s.as_symbol() == k))

    def error_string(self, code: int) -> str:
        return self._error_string(code).decode()

    def __call__(self, *arrays: Any) -> Any:
        try:
            return self._call(arrays)
        except GraphcError as exc:  # names the user's line that made the call, as gc.function does
            raise with_call_site(exc) from None

    def _call(self, arrays: Sequence[Any]) -> Any:
        if len(arrays) != len(self.inputs):
            raise FeedError(f"{self.name} takes {len(self.inputs)} inputs "
                            f"({', '.join(n for n, _, _ in self.inputs)}), got {len(arrays)}")
        values = [convert_value(value, dtype, tuple(None if isinstance(s, SymInt) else s for s in shape),
                                f"feeding input {name!r} of {self.name}")
                  for value, (name, dtype, shape) in zip(arrays, self.inputs)]
        dims = [values[i].shape[axis] for i, axis in self._dim_sources]
        for value, (name, _, shape) in zip(values, self.inputs):
            expected = [evaluate(s, dims) for s in shape]
            if list(value.shape) != expected:
                raise FeedError(f"feeding input {name!r} of {self.name}: expected shape "
                                f"{_format(shape, self._dim_names())} = {expected} "
                                f"(with {self._dims_text(dims)}), got {list(value.shape)}")
        outputs = [np.empty([evaluate(s, dims) for s in shape], dtype) for _, dtype, shape in self.outputs]
        dims_array = (ctypes.c_int64 * max(len(dims), 1))(*dims)
        in_table = (ctypes.c_void_p * max(len(values), 1))(*[v.ctypes.data for v in values])
        out_table = (ctypes.c_void_p * max(len(outputs), 1))(*[o.ctypes.data for o in outputs])
        code = self._run(dims_array if dims else None, in_table, out_table)
        if code:
            raise ExecutionError(f"{self.name}_run returned {code}: {self.error_string(code)}")
        return outputs[0] if self.metadata["single_output"] else outputs

    def _dim_names(self) -> list[str]:
        return [places[0] for places in self.dims]

    def _dims_text(self, dims: Sequence[int]) -> str:
        return ", ".join(f"{places[0]} = {d}" for places, d in zip(self.dims, dims)) or "no run-time dims"

    def __repr__(self) -> str:
        return f"<graphc compiled library {self.name!r} at {self.path}>"


def load(path: str | os.PathLike[str], name: str | None = None) -> CompiledLibrary:
    """Load a library made by ``gc.aot.compile``.  ``path`` may omit ``.so``; ``name`` is the C name
    prefix given to compile (default: the one compile derives from the file name)."""
    return CompiledLibrary(path, name)


__all__ = ["CompiledLibrary", "load"]
