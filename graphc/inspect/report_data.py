"""What the interactive report shows, as plain JSON-ready data (no HTML here; see ``html_report``).

The page's script draws every graph from this data.  Its shape, kept compact because a training
step's gradient graph has thousands of nodes and appears once per phase:

* ``table``: one row per distinct node (a node unchanged from one phase to the next is stored once):
  ``[op, name, "dtype[shape]", attrs, "file:line" or "", family, kernel kind or "", kernel ops]``.
* ``phases``: per phase ``{"name", "nodes", "edges", "rewrites", "dprint"}``:
  ``nodes`` is ``[key, row, kernel key or "", output 0/1]`` in topological order (keys as ``dprint``
  numbers nodes: ``"7"``, ``"7.2"`` inside the kernel of fused node 7); ``edges`` is
  ``[src, dst, kind, label, inner src]`` with kind ``"i"`` (input), ``"p"`` (outer input -> kernel
  parameter) or ``"r"`` (kernel output -> fused node), and for an edge out of a fused node the key of the
  kernel output it carries (drawn from there when the kernel is expanded); ``rewrites`` are indices
  into ``rewrites`` of the records that fired while the phase ran.
* ``rewrites``: every record: ``{"rewrite", "phase", "op", "node", "result", "created", "loc"}``.
* ``made_by``: node name -> indices of the rewrites that built a node of that name.
"""

from __future__ import annotations

from typing import Any

from graphc.inspect.export import to_networkx
from graphc.inspect.printer import dprint
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


def _edge_label(consumer: Tensor, kind: str, indices: tuple[int, ...]) -> str:
    """The input positions, shown when they tell something: the consumer has several inputs."""
    count = len(consumer.attrs["kernel"].outputs) if kind == "result" else len(consumer.inputs)
    return ",".join(map(str, indices)) if count > 1 and kind != "parameter" else ""


def _kernel_outputs(g: Any, fused_key: str) -> list[str]:
    """The keys of the kernel outputs of fused node ``fused_key``, in output order."""
    kernel = g.nodes[fused_key]["tensor"].attrs["kernel"]
    inner = {n.id: f"{fused_key}.{j}" for j, n in enumerate(kernel.nodes)}
    return [inner[o.id] for o in kernel.outputs]


def _phase(name: str, graph: Graph, table: _Table, rewrites: list[int]) -> dict[str, Any]:
    g = to_networkx(graph)
    nodes = [[key, table.row(data["tensor"], data), data["kernel"] or "", int(data["output"])]
             for key, data in g.nodes(data=True)]
    outputs = {key: _kernel_outputs(g, key) for key, data in g.nodes(data=True) if data["op"] == "fused"}
    edges = []
    for src, dst, data in g.edges(data=True):
        consumer = g.nodes[dst]["tensor"]
        inner = ""
        if data["kind"] == "input" and src in outputs:  # an edge out of a fused node: the output it carries
            inner = outputs[src][consumer.attrs["index"] if consumer.op == "kernel_output" else 0]
        edges.append([src, dst, _EDGE_KINDS[data["kind"]], _edge_label(consumer, data["kind"], data["indices"]),
                      inner])
    return {"name": name, "nodes": nodes, "edges": edges, "rewrites": rewrites, "dprint": dprint(graph)}


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
