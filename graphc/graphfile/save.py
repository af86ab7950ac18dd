"""Writing graph files: ``save_graph`` (the format is in docs/graph-files.md)."""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.errors import ArgumentError, GraphFileError
from graphc.graphfile.format import BODIES_VERSION, FIRST_VERSION, FIXED_TIME, FORMAT, GRAPH_ENTRY, MAX_DEPTH
from graphc.ir.body import Body
from graphc.ir.graph import topological_order
from graphc.ir.location import SourceLocation
from graphc.ir.tensor import Tensor
from graphc.ops.kernel import Kernel
from graphc.ops.state import Variable


def save_graph(path: str | os.PathLike[str], outputs: Tensor | Sequence[Tensor],
               inputs: Sequence[Tensor] | None = None) -> None:
    """Write the graph computing ``outputs`` to ``path`` (a graph file: see docs/graph-files.md).

    ``inputs``: the placeholders to record as the graph's inputs, in order; by default every
    placeholder the outputs depend on, in topological order.  The file holds every node the
    outputs (and inputs) depend on, the inner graphs of fused kernels and the bodies of loops and
    conditionals, with the values of constants and the current values of Variables.  The file is
    written to a temporary file first and then renamed, so a failed save never leaves a partial file
    behind.
    """
    outs = _tensor_list(outputs, "outputs", allow_single=True)
    if not outs:
        raise ArgumentError("save_graph needs at least one output tensor")
    if inputs is None:
        ins = [n for n in topological_order(outs) if n.op == "placeholder"]
    else:
        ins = _tensor_list(inputs, "inputs", allow_single=False)
        seen: set[int] = set()
        for i, t in enumerate(ins):
            if t.op != "placeholder":
                raise ArgumentError(f"save_graph: input {i} must be a placeholder, got {t.describe()}")
            if t.id in seen:
                raise ArgumentError(f"save_graph: input {i} {t.describe()} is given twice")
            seen.add(t.id)
    from graphc.version import __version__

    writer = Writer()
    nodes = topological_order([*outs, *ins])
    index = {n.id: k for k, n in enumerate(nodes)}
    encoded = writer.encode_nodes(nodes, index)
    # each file says the lowest version that holds it, so that a graph without control flow stays
    # readable by a graphc that predates bodies (docs/graph-files.md, version policy)
    version = BODIES_VERSION if writer.bodies else FIRST_VERSION
    document = {
        "format": FORMAT,
        "version": version,
        "graphc_version": __version__,
        "nodes": encoded,
        "kernels": writer.kernels,
        **({"bodies": writer.bodies} if version >= BODIES_VERSION else {}),
        "arrays": writer.table,
        "inputs": [index[t.id] for t in ins],
        "outputs": [index[t.id] for t in outs],
    }
    text = _dumps(document)
    _write_archive(os.fspath(path), text, writer.arrays)


def _dumps(document: dict[str, Any]) -> str:
    """JSON text with one line per top-level field and one line per item of a top-level list."""
    lines = []
    for key, value in document.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            items = ",\n  ".join(json.dumps(v, allow_nan=False) for v in value)
            lines.append(f" {json.dumps(key)}: [\n  {items}\n ]")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value, allow_nan=False)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _tensor_list(values: Any, what: str, allow_single: bool) -> list[Tensor]:
    if isinstance(values, Tensor):
        if allow_single:
            return [values]
        raise ArgumentError(f"save_graph: {what} must be a list of placeholders, got a single tensor "
                            f"{values.describe()}")
    if not isinstance(values, (list, tuple)):
        raise ArgumentError(f"save_graph: {what} must be a list of tensors, got {type(values).__name__}")
    for i, t in enumerate(values):
        if not isinstance(t, Tensor):
            raise ArgumentError(f"save_graph: {what}[{i}] is {type(t).__name__}, expected a Tensor")
    return list(values)


def _write_archive(path: str, text: str, arrays: list[tuple[str, np.ndarray]]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(prefix=".graphc-", suffix=".tmp", dir=directory)
        os.chmod(temporary, 0o644)  # mkstemp's 0o600 would stay with the renamed file; a saved file is a user's
    except OSError as exc:
        raise GraphFileError(f"cannot write graph file '{path}': {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w") as archive:
            info = zipfile.ZipInfo(GRAPH_ENTRY, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode("utf-8"))
            for entry, array in arrays:
                info = zipfile.ZipInfo(entry, FIXED_TIME)
                info.compress_type = zipfile.ZIP_STORED
                with archive.open(info, "w", force_zip64=array.nbytes > (1 << 30)) as stream:
                    np.lib.format.write_array(stream, array, allow_pickle=False)
        os.replace(temporary, path)
    except OSError as exc:
        raise GraphFileError(f"cannot write graph file '{path}': {exc}") from exc
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


class Writer:
    """Turns nodes into JSON-ready dicts, collecting arrays, kernels and bodies into their tables."""

    def __init__(self) -> None:
        self.arrays: list[tuple[str, np.ndarray]] = []  # (entry name, little-endian C-order array)
        self.table: list[dict[str, Any]] = []  # the "arrays" table of graph.json
        self.kernels: list[dict[str, Any]] = []
        self.bodies: list[dict[str, Any]] = []
        self._array_ids: dict[int, int] = {}
        self._kernel_ids: dict[int, int] = {}
        self._body_ids: dict[int, int] = {}
        self._in_kernel = 0  # > 0 while a kernel's inner graph is encoded
        self._keep: list[Any] = []  # keeps encoded objects alive, so their ids stay unique

    def encode_nodes(self, nodes: Sequence[Tensor], index: dict[int, int]) -> list[dict[str, Any]]:
        return [self.encode_node(node, index) for node in nodes]

    def encode_node(self, node: Tensor, index: dict[int, int]) -> dict[str, Any]:
        where = f"node '{node.name}' ({node.op})"
        entry: dict[str, Any] = {
            "op": node.op,
            "name": node.name,
            "inputs": [index[i.id] for i in node.inputs],
            "attrs": {key: self.encode_value(value, f"{where}, attribute {key!r}", 0)
                      for key, value in node.attrs.items()},
            "dtype": node.dtype.name,
            "shape": list(node.shape),
            "location": _encode_location(node.location),
        }
        if isinstance(node, Variable):
            entry["value"] = self.add_array(node.read())
            entry["trainable"] = node.trainable
        return entry

    def encode_value(self, value: Any, where: str, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise GraphFileError(f"cannot save {where}: values nested deeper than {MAX_DEPTH} levels")
        if value is None or isinstance(value, (bool, str, int)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"float": repr(value)}
        if isinstance(value, (tuple, list)):
            items = [self.encode_value(v, where, depth + 1) for v in value]
            return {"tuple": items} if isinstance(value, tuple) else {"list": items}
        if isinstance(value, np.dtype):
            return {"dtype": value.name}
        if isinstance(value, np.ndarray):
            return {"array": self.add_array(value)}
        if isinstance(value, (np.bool_, np.integer, np.floating)):
            return {"scalar": {"dtype": value.dtype.name, "value": self.encode_value(value.item(), where, depth + 1)}}
        if isinstance(value, Kernel):
            return {"kernel": self.add_kernel(value)}
        if isinstance(value, Body):
            if self._in_kernel:  # the reader reads the kernels before the bodies
                raise GraphFileError(f"cannot save {where}: a fused kernel's inner graph holding a control-flow "
                                     "body has no representation in graph files")
            return {"body": self.add_body(value)}
        raise GraphFileError(f"cannot save {where}: values of type {type(value).__name__} have no "
                             "representation in graph files")

    def add_array(self, array: np.ndarray) -> int:
        if id(array) in self._array_ids:
            return self._array_ids[id(array)]
        self._keep.append(array)
        number = len(self.table)
        entry = f"arrays/{number}.npy"
        stored = array.astype(array.dtype.newbyteorder("<"), order="C", copy=False)  # 0-d stays 0-d
        self.arrays.append((entry, stored))
        self.table.append({"entry": entry, "dtype": array.dtype.name, "shape": list(array.shape)})
        self._array_ids[id(array)] = number
        return number

    def add_kernel(self, kernel: Kernel) -> int:
        if id(kernel) in self._kernel_ids:
            return self._kernel_ids[id(kernel)]
        self._keep.append(kernel)
        # parameters that no output reads are not in kernel.nodes, but they are still the kernel's
        nodes = topological_order([*kernel.outputs, *kernel.params])
        index = {n.id: k for k, n in enumerate(nodes)}
        self._in_kernel += 1
        try:
            encoded = {  # inner kernels are added first: a kernel only refers to earlier ones
                "kind": kernel.kind,
                "nodes": self.encode_nodes(nodes, index),
                "params": [index[p.id] for p in kernel.params],
                "outputs": [index[o.id] for o in kernel.outputs],
            }
        finally:
            self._in_kernel -= 1
        self._kernel_ids[id(kernel)] = len(self.kernels)
        self.kernels.append(encoded)
        return self._kernel_ids[id(kernel)]

    def add_body(self, body: Body) -> int:
        """The row of the "bodies" table holding ``body`` (added, after the bodies it holds, if not there yet)."""
        if id(body) in self._body_ids:
            return self._body_ids[id(body)]
        self._keep.append(body)
        nodes = topological_order([*body.outputs, *body.params])
        index = {n.id: k for k, n in enumerate(nodes)}
        encoded = {  # as kernels: inner bodies (a loop in a loop's step) are added first
            "nodes": self.encode_nodes(nodes, index),
            "params": [index[p.id] for p in body.params],
            "outputs": [index[o.id] for o in body.outputs],
        }
        self._body_ids[id(body)] = len(self.bodies)
        self.bodies.append(encoded)
        return self._body_ids[id(body)]


def _encode_location(location: SourceLocation | None) -> dict[str, Any] | None:
    if location is None:
        return None
    return {"file": location.filename, "line": location.lineno, "function": location.function}


__all__ = ["Writer", "save_graph"]
