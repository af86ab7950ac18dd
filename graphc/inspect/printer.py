"""``dprint``: a graph as readable text, one line per node."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.errors import ArgumentError
from graphc.ir.graph import Graph
from graphc.ir.tensor import Tensor

_MAX_CONSTANT_ELEMENTS = 6


def format_attr(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= _MAX_CONSTANT_ELEMENTS:
            return np.array2string(value, separator=", ", threshold=_MAX_CONSTANT_ELEMENTS).replace("\n", "")
        return f"<{value.dtype.name} array of {value.size} elements>"
    if isinstance(value, np.dtype):
        return value.name
    return repr(value)


def graph_of(target: Any, what: str = "dprint") -> Graph:
    """The graph behind ``target``: a Graph, anything with a ``.graph`` (gc.function), a tensor or a
    list of tensors (the graph as built, not optimised) -- the targets ``dprint`` accepts."""
    if isinstance(target, Graph):
        return target
    graph = getattr(target, "graph", None)
    if isinstance(graph, Graph):
        return graph
    if isinstance(target, Tensor):
        return Graph([target])
    if isinstance(target, Sequence) and not isinstance(target, str) and all(isinstance(t, Tensor) for t in target):
        return Graph(list(target))
    raise ArgumentError(
        f"{what} expects a tensor, a list of tensors, a Graph or a function, got {type(target).__name__}")


def _node_line(node: Tensor, ids: dict[int, str], mark: str, indent: str, locations: bool) -> str:
    args = ", ".join(f"%{ids[i.id]}" for i in node.inputs)
    # dtype/shape attrs of sources repeat the node's type; a kernel is shown by its contents
    hidden = ("weak", "kernel", "dtype", "shape") if node.opdef.family == "source" else ("weak", "kernel")
    attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in node.attrs.items() if k not in hidden)
    if node.op == "fused":
        attrs = f"kind={node.attrs['kernel'].kind}" + (f", {attrs}" if attrs else "")
    call = f"{node.op}({args})" + (f" {{{attrs}}}" if attrs else "")
    line = f"{indent}{mark} %{ids[node.id]} = {call} : {node.type_str()}  '{node.name}'"
    if locations and node.location is not None:
        line += f"  # {node.location}"
    return line


def dprint(target: Any, locations: bool = True) -> str:
    """The graph behind ``target`` (tensor, list of tensors, Graph, or gc.function) as text.

    One line per node in topological order: ``%id = op(inputs) {attrs} : dtype[shape]  'name'  # file:line``.
    Outputs are marked with ``->``.  A fused kernel is followed by its inner graph, indented, whose
    ``parameter`` nodes stand for the kernel's inputs in order and whose outputs are marked ``->``.
    For a gc.function on a GPU device that has run, each kernel's launches (grid and block) follow.
    """
    graph = graph_of(target, "dprint")
    ids = {node.id: str(i) for i, node in enumerate(graph.nodes)}
    outputs = {o.id for o in graph.outputs}
    lines = []
    for node in graph.nodes:
        lines.append(_node_line(node, ids, "->" if node.id in outputs else "  ", "", locations))
        if node.op == "fused":
            kernel = node.attrs["kernel"]
            inner_ids = {n.id: f"{ids[node.id]}.{k}" for k, n in enumerate(kernel.nodes)}
            kernel_outputs = {o.id for o in kernel.outputs}
            for inner in kernel.nodes:
                mark = "->" if inner.id in kernel_outputs else "  "
                lines.append(_node_line(inner, inner_ids, mark, "    |", locations))
    launches = getattr(target, "launch_shapes", None)
    shapes = launches() if callable(launches) else ""
    if shapes:
        lines += ["", shapes]
    return "\n".join(lines)
