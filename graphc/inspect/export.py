"""Graphs as data: :func:`to_networkx` (a ``networkx.DiGraph``) and :func:`to_dot` (Graphviz DOT text).

Both number nodes the way :func:`graphc.dprint` does, so the three views can be read side by side:
an outer node is keyed ``"7"`` (``%7`` in ``dprint``); node ``j`` of the kernel that fused node ``7``
runs, or of the bodies of loop or cond node ``7`` (numbered on from one body to the next), is keyed
``"7.j"`` (``%7.j``), and so on down nested bodies (``"7.3.1"``).

Fused kernels and control-flow bodies are expanded into their inner graphs.  In the networkx graph the
fused (loop, cond) node stays an ordinary node (with its ordinary input edges) and its inner nodes join
the graph next to it:

* every inner node has ``kernel`` set to the key of the node that runs it, and ``body`` to which of that
  node's inner graphs holds it (``"kernel"``, ``"body"``, ``"cond"``, ``"true_body"``, ``"false_body"``);
  both are ``None`` for outer nodes, so ``G.subgraph(n for n, d in G.nodes(data=True) if d["kernel"] is
  None)`` is the outer graph;
* a ``"parameter"`` edge goes from the input of the node that each ``parameter`` node stands for (the
  sequence whose row it is, a loop variable's initial value, a captured tensor) to that parameter;
* a ``"result"`` edge goes from each output of an inner graph to the node that runs it.

The whole thing stays a DAG.  ``to_dot`` draws each kernel and body as a ``subgraph cluster_<key>``
(``cluster_<key>_<body>`` for a body), nested as the bodies are, with the parameter and result edges
dashed; it leaves out the direct input edges of an expanded node that the parameter edges already show.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import networkx as nx

from graphc.inspect.printer import BODY_HEADINGS, attrs_summary, graph_of, inner_graphs
from graphc.ir.shapes import format_shape
from graphc.ir.tensor import Tensor

__all__ = ["attrs_summary", "graph_of", "to_dot", "to_networkx"]


def _add_edge(g: nx.DiGraph, src: str, dst: str, index: int, kind: str) -> None:
    # a DiGraph holds one edge per pair: x * x gives one edge x -> multiply with indices (0, 1)
    if g.has_edge(src, dst):
        data = g.edges[src, dst]
        data["indices"] = (*data["indices"], index)
    else:
        g.add_edge(src, dst, index=index, indices=(index,), kind=kind)


def _add_node(g: nx.DiGraph, key: str, node: Tensor, output: bool, kernel: str | None, body: str | None) -> None:
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
        body=body,
        kind=node.attrs["kernel"].kind if node.op == "fused" else None,
        tensor=node,
    )


def to_networkx(target: Any, kernels: bool = True, bodies: bool = True) -> nx.DiGraph:
    """The graph behind ``target`` (tensor, list of tensors, Graph, or gc.function) as a ``networkx.DiGraph``.

    Nodes are keyed by their ``dprint`` id as a string (``"7"``, and ``"7.2"`` inside the kernel of
    fused node 7 or the bodies of loop node 7) and carry ``op``, ``dtype`` (name), ``shape`` (tuple,
    ``None`` for unknown dims), ``name``, ``location`` (``"file:line"`` or ``None``), ``attrs`` (a summary
    string, as in ``dprint``), ``output`` (bool: an output of the graph, or of its kernel or body),
    ``kernel`` (the key of the fused, loop or cond node an inner node belongs to, else ``None``), ``body``
    (which of that node's inner graphs: ``"kernel"``, ``"body"``, ``"cond"``, ``"true_body"``,
    ``"false_body"``; else ``None``), ``kind`` (a fused node's kernel kind) and ``tensor`` (the
    :class:`gc.Tensor` itself).

    Edges go from an input to its consumer with ``index`` (the input position), ``indices`` (all
    positions, when a node uses the same input twice) and ``kind``: ``"input"``, ``"parameter"``
    (an input of the node -> the parameter standing for it in its kernel or body; ``index`` is the
    input's position) or ``"result"`` (an output of a kernel or body -> the node running it; ``index``
    is the output's position).  ``kernels=False`` leaves the kernels' inner graphs out, ``bodies=False``
    the bodies of loops and conds.  ``G.graph`` holds ``inputs`` and ``outputs`` (lists of keys).
    """
    import networkx as nx  # imported on use: it takes longer to import than the rest of graphc

    graph = graph_of(target, "to_networkx")
    ids = {node.id: str(i) for i, node in enumerate(graph.nodes)}
    g = nx.DiGraph(inputs=[ids[n.id] for n in graph.inputs if n.id in ids],
                   outputs=[ids[o.id] for o in graph.outputs])
    _add_graph(g, graph.nodes, graph.outputs, ids, None, None, kernels, bodies)
    return g


def _add_graph(g: nx.DiGraph, nodes: Sequence[Tensor], outputs: Sequence[Tensor], ids: dict[int, str],
               owner: str | None, body: str | None, kernels: bool, bodies: bool) -> None:
    """Add ``nodes`` (the inner graph ``body`` of node ``owner``, or the outer graph) and, recursively, the
    kernels and bodies of those nodes that ``kernels`` / ``bodies`` ask for."""
    marked = {o.id for o in outputs}
    for node in nodes:
        key = ids[node.id]
        _add_node(g, key, node, node.id in marked, owner, body)
        for pos, inp in enumerate(node.inputs):
            _add_edge(g, ids[inp.id], key, pos, "input")
        for inner in inner_graphs(node, key):
            if not (kernels if inner.is_kernel else bodies):
                continue
            _add_graph(g, inner.nodes, inner.outputs, inner.ids, key, inner.attr, kernels, bodies)
            for param in inner.params:
                source = inner.role(param).source
                if source is not None:
                    _add_edge(g, ids[node.inputs[source].id], inner.ids[param.id], source, "parameter")
            for pos, out in enumerate(inner.outputs):
                _add_edge(g, inner.ids[out.id], key, pos, "result")


def inner_outputs(g: nx.DiGraph, key: str) -> tuple[Tensor, ...]:
    """The outputs of the kernel or body that inner node ``key`` of ``to_networkx``'s graph belongs to."""
    data = g.nodes[key]
    return g.nodes[data["kernel"]]["tensor"].attrs[data["body"]].outputs


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


def to_dot(target: Any, kernels: bool = True, name: str = "graphc", bodies: bool = True) -> str:
    """The graph behind ``target`` (tensor, list of tensors, Graph, or gc.function) as Graphviz DOT text.

    Each node is labelled with its ``dprint`` id, op and name, dtype and shape, and its attributes;
    outputs have a thick border; the tooltip gives the user's line that created the node.  Each
    fused kernel is a ``subgraph "cluster_<id>"`` holding its inner nodes, and each body of a loop or
    cond a ``subgraph "cluster_<id>_<body>"`` (nested in the cluster of the body holding that node), with
    dashed edges from the node's inputs to the parameters standing for them and from the inner graph's
    outputs to the node.  Edges into a node with several inputs are labelled with the input position.
    ``kernels=False`` / ``bodies=False`` leave the kernels / bodies out.  Render with
    ``dot -Tsvg graph.dot -o graph.svg``.
    """
    g = to_networkx(graph_of(target, "to_dot"), kernels=kernels, bodies=bodies)
    lines = [
        f"digraph {dot_quote(name)} {{",
        '  graph [rankdir="TB", fontname="Helvetica", fontsize="10"];',
        '  node [shape="box", style="rounded,filled", fontname="Helvetica", fontsize="10"];',
        '  edge [fontname="Helvetica", fontsize="8", arrowsize="0.7"];',
    ]
    members: dict[tuple[str, str] | None, list[str]] = {None: []}  # (owner key, body) -> its nodes' keys
    for key, data in g.nodes(data=True):
        where = None if data["kernel"] is None else (data["kernel"], data["body"])
        members.setdefault(where, []).append(key)
    inside: dict[str, list[tuple[str, str]]] = {}  # node key -> the clusters of its kernel / bodies
    for where in members:
        if where is not None:
            inside.setdefault(where[0], []).append(where)

    def emit(where: tuple[str, str] | None, indent: str) -> None:
        for key in members[where]:
            lines.append(indent + _node_stmt(key, g.nodes[key]))
        for key in members[where]:
            for owner, body in inside.get(key, ()):
                data = g.nodes[owner]
                if body == "kernel":
                    cluster, label, color = f"cluster_{owner}", f"%{owner} {data['name']}: {data['kind']} kernel", \
                        "#16a34a"
                else:
                    cluster, label, color = f"cluster_{owner}_{body}", \
                        f"%{owner} {data['name']}: {data['op']} {BODY_HEADINGS.get(body, body)}", "#9333ea"
                lines.append(f"{indent}subgraph {dot_quote(cluster)} {{")
                lines.append(f"{indent}  graph {_dot_attrs(label=label, style='dashed,rounded', color=color)};")
                emit((owner, body), indent + "  ")
                lines.append(f"{indent}}}")

    emit(None, "  ")
    fed = {(src, g.nodes[dst]["kernel"]) for src, dst, data in g.edges(data=True) if data["kind"] == "parameter"}
    for src, dst, data in g.edges(data=True):
        if data["kind"] == "input" and (src, dst) in fed:
            continue  # shown by the parameter edges into the kernel or body
        consumer = g.nodes[dst]["tensor"]
        if data["kind"] == "input":
            label = ",".join(map(str, data["indices"])) if len(consumer.inputs) > 1 else None
            style = None
        else:
            label = ",".join(map(str, data["indices"])) if data["kind"] == "result" and \
                len(inner_outputs(g, src)) > 1 else None
            style = "dashed"
        attrs = _dot_attrs(label=label, style=style)
        lines.append(f"  {dot_quote(src)} -> {dot_quote(dst)}" + (f" {attrs}" if attrs != "[]" else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"
