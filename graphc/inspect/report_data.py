"""What the interactive report shows, as plain JSON-ready data (no HTML here; see ``html_report``).

The page's script draws every graph from this data.  Its shape, kept compact because a training
step's gradient graph has thousands of nodes and appears once per phase:

* ``table``: one row per distinct node (a node unchanged from one phase to the next is stored once):
  ``[op, name, "dtype[shape]", attrs, "file:line" or "", family, kernel kind or "", kernel ops]``.
* ``phases``: per phase ``{"name", "nodes", "edges", "bodies", "rewrites", "dprint"}``:
  ``nodes`` is ``[key, row, owner key or "", output 0/1, inner graph or ""]`` in topological order (keys
  as ``dprint`` numbers nodes: ``"7"``, ``"7.2"`` inside the kernel of fused node 7 or a body of loop /
  cond node 7, ``"7.2.1"`` inside the kernel or body of node 7.2), a node inside a kernel or body giving
  the key of the node that runs it and which of its inner graphs holds it (``"kernel"``, ``"body"``,
  ``"cond"``, ``"true_body"``, ``"false_body"``), each inner graph's nodes following the node that runs
  it; ``edges`` is ``[src, dst, kind, label, inner src]`` with kind ``"i"`` (input), ``"p"`` (an input of
  a node -> the parameter standing for it in its kernel or body; the label says what it is for a body:
  ``"row"``, ``"loop variable 0"``, ``"captured"``) or ``"r"`` (an inner graph's output -> the node
  running it), and for an edge out of a fused or loop node the key of the inner output it carries (drawn
  from there when the node is expanded); ``bodies`` is ``[owner key, body, heading, description]`` per
  body of a loop or cond (heading ``"body"``, ``"cond"``, ``"true branch"``, ``"false branch"``;
  description as ``dprint``'s heading line says what its parameters stand for and what it gives), in
  the order of ``nodes``; ``rewrites`` are indices into ``rewrites`` of the records that fired while
  the phase ran.
* ``rewrites``: every record: ``{"rewrite", "phase", "op", "node", "result", "created", "loc"}``.
* ``made_by``: node name -> indices of the rewrites that built a node of that name.
"""

from __future__ import annotations

from typing import Any

from graphc.control.layout import output_part, stacked_part
from graphc.inspect.export import inner_outputs, to_networkx
from graphc.inspect.printer import InnerGraph, dprint, inner_graphs
from graphc.ir.graph import Graph
from graphc.ir.tensor import Tensor
from graphc.passes.engine import RewriteRecord
from graphc.passes.pipeline import OptimizedGraph

__all__ = ["report_data"]

_EDGE_KINDS = {"input": "i", "parameter": "p", "result": "r"}


class _Table:
    """Rows of node facts, one per distinct tensor."""

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []
        self._index: dict[int, int] = {}

    def row(self, node: Tensor, data: dict[str, Any]) -> int:
        index = self._index.get(node.id)
        if index is None:
            kernel = node.attrs["kernel"] if node.op == "fused" else None
            index = self._index[node.id] = len(self.rows)
            self.rows.append([node.op, node.name, node.type_str(), data["attrs"], data["location"] or "",
                              node.opdef.family, kernel.kind if kernel else "",
                              len(kernel.body) if kernel else 0])
        return index


def _edge_label(g: Any, src: str, dst: str, kind: str, indices: tuple[int, ...],
                inners: dict[tuple[str, str], InnerGraph]) -> str:
    """The input positions, shown when they tell something (the consumer has several inputs, or the
    kernel or body several outputs); for a body's parameter, what it stands for."""
    if kind == "parameter":
        data = g.nodes[dst]
        return inners[data["kernel"], data["body"]].role(data["tensor"]).label
    count = len(inner_outputs(g, src)) if kind == "result" else len(g.nodes[dst]["tensor"].inputs)
    return ",".join(map(str, indices)) if count > 1 else ""


def _carried(node: Tensor, found: list[InnerGraph]) -> dict[int, str]:
    """Output ``k`` of fused or loop node ``node`` (whose inner graphs are ``found``) -> the key of the inner
    output that carries it: a loop's final and stacked states come from the body's new states, its stacked
    outputs from the step outputs, the number of steps from no node drawn."""
    inners = {inner.attr: inner for inner in found}
    if "kernel" in inners:
        kernel = inners["kernel"]
        return {k: kernel.ids[o.id] for k, o in enumerate(kernel.outputs)}
    if node.op != "loop" or "body" not in inners:
        return {}
    body, attrs = inners["body"], node.attrs
    n_state = attrs["n_state"]
    keys = [body.ids[o.id] for o in body.outputs]
    carried = {k: keys[k] for k in range(n_state)}
    for k in range(n_state):
        stacked = stacked_part(attrs, k)
        if stacked is not None:
            carried[stacked] = keys[k]
    for j in range(len(keys) - n_state):
        carried[output_part(attrs, j)] = keys[n_state + j]
    return carried


def _phase(name: str, graph: Graph, table: _Table, rewrites: list[int]) -> dict[str, Any]:
    g = to_networkx(graph)
    nodes = [[key, table.row(data["tensor"], data), data["kernel"] or "", int(data["output"]), data["body"] or ""]
             for key, data in g.nodes(data=True)]
    inners: dict[tuple[str, str], InnerGraph] = {}
    carried: dict[str, dict[int, str]] = {}
    bodies = []
    for key, data in g.nodes(data=True):
        found = inner_graphs(data["tensor"], key)
        if not found:
            continue
        inners.update(((key, inner.attr), inner) for inner in found)
        carried[key] = _carried(data["tensor"], found)
        inputs = {g.nodes[k]["tensor"].id: k for k, _, d in g.in_edges(key, data=True) if d["kind"] == "input"}
        bodies += [[key, inner.attr, inner.heading, inner.describe(inputs)] for inner in found if not inner.is_kernel]
    edges = []
    for src, dst, data in g.edges(data=True):
        consumer = g.nodes[dst]["tensor"]
        inner = ""
        if data["kind"] == "input" and src in carried:  # an edge out of a fused or loop node: what it carries
            index = consumer.attrs["index"] if consumer.op in ("kernel_output", "part") else 0
            inner = carried[src].get(index, "")
        edges.append([src, dst, _EDGE_KINDS[data["kind"]], _edge_label(g, src, dst, data["kind"], data["indices"],
                                                                       inners), inner])
    return {"name": name, "nodes": nodes, "edges": edges, "bodies": bodies, "rewrites": rewrites,
            "dprint": dprint(graph)}


def _record(r: RewriteRecord) -> dict[str, Any]:
    return {"rewrite": r.rewrite, "phase": r.phase, "op": r.op, "node": r.node, "result": r.result,
            "created": list(r.created), "loc": str(r.location) if r.location is not None else ""}


def report_data(optimized: OptimizedGraph, title: str) -> dict[str, Any]:
    """The report's data for ``optimized`` (see the module docstring for its shape)."""
    records = list(optimized.rewrites)
    position = {id(r): i for i, r in enumerate(records)}
    phases = optimized.phases or [("optimized", optimized)]
    table = _Table()
    made_by: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        for name in dict.fromkeys((*r.created, r.result) if r.result else r.created):
            made_by.setdefault(name, []).append(i)
    return {
        "title": title,
        "level": optimized.level,
        "phases": [_phase(name, graph, table, [position[id(r)] for r in optimized.phase_rewrites.get(name, ())])
                   for name, graph in phases],
        "table": table.rows,
        "rewrites": [_record(r) for r in records],
        "made_by": made_by,
    }
