"""Graphs as data: :func:`to_networkx` (a ``networkx.DiGraph``) and :func:`to_dot` (Graphviz DOT text).

Both number nodes the way :func:`graphc.dprint` does, so the three views can be read side by side:
an outer node is keyed ``"7"`` (``%7`` in ``dprint``); node ``j`` of the kernel that fused node ``7``
runs is keyed ``"7.j"`` (``%7.j``).

Fused kernels are expanded into their inner graphs.  In the networkx graph the fused node stays an
ordinary node (with its ordinary input edges) and its inner nodes join the graph next to it:

* every inner node has ``kernel`` set to the key of the fused node that runs it (``None`` for outer
  nodes), so ``G.subgraph(n for n, d in G.nodes(data=True) if d["kernel"] is None)`` is the outer graph;
* a ``"parameter"`` edge goes from each outer input of the fused node to the ``parameter`` node that
  stands for it inside the kernel;
* a ``"result"`` edge goes from each kernel output to the fused node.

The whole thing stays a DAG.  ``to_dot`` draws each kernel as a ``subgraph cluster_<key>`` holding
its inner nodes, with the parameter and result edges dashed; it leaves out the direct input edges of
an expanded fused node, which the parameter edges already show.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import networkx as nx

from graphc.inspect.printer import format_attr, graph_of
from graphc.ir.shapes import format_shape
from graphc.ir.tensor import Tensor

__all__ = ["graph_of", "to_dot", "to_networkx"]


def attrs_summary(node: Tensor) -> str:
    """The node's attributes as ``dprint`` shows them: ``axes=(0,), keepdims=False``."""
    hidden = ("weak", "kernel", "dtype", "shape") if node.opdef.family == "source" else ("weak", "kernel")
    text = ", ".join(f"{k}={format_attr(v)}" for k, v in node.attrs.items() if k not in hidden)
    if node.op == "fused":
        text = f"kind={node.attrs['kernel'].kind}" + (f", {text}" if text else "")
    return text


def _add_edge(g: nx.DiGraph, src: str, dst: str, index: int, kind: str) -> None:
    # a DiGraph holds one edge per pair: x * x gives one edge x -> multiply with indices (0, 1)
    if g.has_edge(src, dst):
        data = g.edges[src, dst]
        data["indices"] = (*data["indices"], index)
    else:
        g.add_edge(src, dst, index=index, indices=(index,), kind=kind)


def _add_node(g: nx.DiGraph, key: str, node: Tensor, output: bool, kernel: str | None) -> None:
    g.add_node(
        key,
        op=node.op,
        dtype=node.dtype.name,
        shape=tuple(node.shape),
        name=node.name,
        location=str(node.location) if node.location is not None else None,
        attrs=attrs_summary(node),
        output=output,
        kernel=kernel,
        kind=node.attrs["kernel"].kind if node.op == "fused" else None,
        tensor=node,
    )


def to_networkx(target: Any, kernels: bool = True) -> nx.DiGraph:
    """The graph behind ``target`` (tensor, list of tensors, Graph, or gc.function) as a ``networkx.DiGraph``.

    Nodes are keyed by their ``dprint`` id as a string (``"7"``, and ``"7.2"`` inside the kernel of
    fused node 7) and carry ``op``, ``dtype`` (name), ``shape`` (tuple, ``None`` for unknown dims),
    ``name``, ``location`` (``"file:line"`` or ``None``), ``attrs`` (a summary string, as in ``dprint``),
    ``output`` (bool: an output of the graph, or of its kernel), ``kernel`` (the key of the fused
    node an inner node belongs to, else ``None``), ``kind`` (a fused node's kernel kind) and
    ``tensor`` (the :class:`gc.Tensor` itself).

    Edges go from an input to its consumer with ``index`` (the input position), ``indices`` (all
    positions, when a node uses the same input twice) and ``kind``: ``"input"``, ``"parameter"``
    (outer input -> kernel parameter) or ``"result"`` (kernel output -> fused node).
    ``kernels=False`` leaves the kernels' inner graphs out.  ``G.graph`` holds ``inputs`` and
    ``outputs`` (lists of keys).
    """
    import networkx as nx  # imported on use: it takes longer to import than the rest of graphc

    graph = graph_of(target, "to_networkx")
    ids = {node.id: str(i) for i, node in enumerate(graph.nodes)}
    outputs = {o.id for o in graph.outputs}
    g = nx.DiGraph(inputs=[ids[n.id] for n in graph.inputs if n.id in ids],
                   outputs=[ids[o.id] for o in graph.outputs])
    for node in graph.nodes:
        key = ids[node.id]
        _add_node(g, key, node, node.id in outputs, None)
        for pos, inp in enumerate(node.inputs):
            _add_edge(g, ids[inp.id], key, pos, "input")
        if node.op == "fused" and kernels:
            kernel = node.attrs["kernel"]
            inner = {n.id: f"{key}.{j}" for j, n in enumerate(kernel.nodes)}
            kernel_outputs = {o.id for o in kernel.outputs}
            for n in kernel.nodes:
                _add_node(g, inner[n.id], n, n.id in kernel_outputs, key)
                for pos, inp in enumerate(n.inputs):
                    _add_edge(g, inner[inp.id], inner[n.id], pos, "input")
            for param in kernel.params:
                index = param.attrs["index"]
                _add_edge(g, ids[node.inputs[index].id], inner[param.id], index, "parameter")
            for pos, out in enumerate(kernel.outputs):
                _add_edge(g, inner[out.id], key, pos, "result")
    return g


# ---- DOT ------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MAX_ATTRS_IN_LABEL = 48
_FILL = {"placeholder": "#dbeafe", "variable": "#fef3c7", "constant": "#f3f4f6", "parameter": "#e0e7ff",
         "fused": "#dcfce7", "assign": "#fee2e2", "assign_add": "#fee2e2"}


def dot_quote(text: str) -> str:
    """``text`` as a DOT double-quoted string: backslashes and quotes escaped, newlines as ``\\n``
    (Graphviz renders ``\\\\`` as one backslash in labels), other control characters dropped."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n").replace("\t", " ")
    return '"' + _CONTROL.sub("", text) + '"'


def _dot_attrs(**attrs: Any) -> str:
    return "[" + ", ".join(f"{k}={dot_quote(str(v))}" for k, v in attrs.items() if v is not None) + "]"


def _label(key: str, data: dict[str, Any]) -> str:
    lines = [f"%{key} {data['op']}  '{data['name']}'", f"{data['dtype']}{format_shape(data['shape'])}"]
    attrs = data["attrs"]
    if attrs:
        lines.append(attrs if len(attrs) <= _MAX_ATTRS_IN_LABEL else attrs[: _MAX_ATTRS_IN_LABEL - 3] + "...")
    return "\n".join(lines)


def _node_stmt(key: str, data: dict[str, Any]) -> str:
    tooltip = f"{data['name']}: {data['op']} {data['attrs']}".rstrip()
    if data["location"]:
        tooltip += f"\ncreated at {data['location']}"
    return (f"{dot_quote(key)} " + _dot_attrs(
        label=_label(key, data), tooltip=tooltip, fillcolor=_FILL.get(data["op"], "white"),
        penwidth="2" if data["output"] else None) + ";")


def to_dot(target: Any, kernels: bool = True, name: str = "graphc") -> str:
    """The graph behind ``target`` (tensor, list of tensors, Graph, or gc.function) as Graphviz DOT text.

    Each node is labelled with its ``dprint`` id, op and name, dtype and shape, and its attributes;
    outputs have a thick border; the tooltip gives the user's line that created the node.  Each
    fused kernel is a ``subgraph "cluster_<id>"`` holding its inner nodes, with dashed edges from the
    fused node's inputs to the kernel's parameters and from the kernel's outputs to the fused node.
    Edges into a node with several inputs are labelled with the input position.  Render with
    ``dot -Tsvg graph.dot -o graph.svg``.
    """
    g = to_networkx(graph_of(target, "to_dot"), kernels=kernels)
    lines = [
        f"digraph {dot_quote(name)} {{",
        '  graph [rankdir="TB", fontname="Helvetica", fontsize="10"];',
        '  node [shape="box", style="rounded,filled", fontname="Helvetica", fontsize="10"];',
        '  edge [fontname="Helvetica", fontsize="8", arrowsize="0.7"];',
    ]
    clusters: dict[str, list[str]] = {}
    for key, data in g.nodes(data=True):
        if data["kernel"] is None:
            lines.append("  " + _node_stmt(key, data))
        else:
            clusters.setdefault(data["kernel"], []).append(key)
    for fused_key, members in clusters.items():
        fused = g.nodes[fused_key]
        lines.append(f"  subgraph {dot_quote('cluster_' + fused_key)} {{")
        label = f"%{fused_key} {fused['name']}: {fused['kind']} kernel"
        lines.append(f"    graph {_dot_attrs(label=label, style='dashed,rounded', color='#16a34a')};")
        lines.extend("    " + _node_stmt(key, g.nodes[key]) for key in members)
        lines.append("  }")
    for src, dst, data in g.edges(data=True):
        if data["kind"] == "input" and g.nodes[dst]["op"] == "fused" and dst in clusters:
            continue  # shown by the parameter edges into the kernel
        consumer = g.nodes[dst]["tensor"]
        if data["kind"] == "input":
            label = ",".join(map(str, data["indices"])) if len(consumer.inputs) > 1 else None
            style = None
        else:
            label = ",".join(map(str, data["indices"])) if data["kind"] == "result" and \
                len(consumer.attrs["kernel"].outputs) > 1 else None
            style = "dashed"
        attrs = _dot_attrs(label=label, style=style)
        lines.append(f"  {dot_quote(src)} -> {dot_quote(dst)}" + (f" {attrs}" if attrs != "[]" else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"
