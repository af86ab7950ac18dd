"""A body: the graph a control-flow node runs (a loop's step or condition, a branch of a conditional),
reading its inputs through ``parameter`` nodes.  How bodies are traced from the user's functions and run is
graphc/control/body.py; this is the data every layer that looks inside such nodes shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from graphc.ir.build import rebuild
from graphc.ir.graph import topological_order
from graphc.ir.tensor import Tensor


@dataclass(frozen=True, eq=False)
class Body:
    """A subgraph reading its inputs through ``parameter`` nodes (input ``attrs["index"]``; an input the
    body does not read has no parameter node) and computing ``outputs``."""

    params: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    nodes: tuple[Tensor, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(topological_order(self.outputs)))

    @property
    def body(self) -> tuple[Tensor, ...]:
        """The nodes that compute something (everything but the parameters)."""
        return tuple(n for n in self.nodes if n.op != "parameter")

    def __repr__(self) -> str:
        return f"<Body: {', '.join(n.op for n in self.body) or 'no ops'}>"


def clone(body: Body) -> tuple[Body, dict[int, Tensor]]:
    """A copy of ``body`` made of new nodes (new ids), e.g. to compile a body that two loops share twice, and
    new node id -> the node it copies."""
    memo: dict[int, Tensor] = {}
    for node in body.nodes:
        memo[node.id] = Tensor(node.opdef, tuple(memo[i.id] for i in node.inputs), node.attrs, node.aval,
                               node.name, node.location)
    copy = Body(tuple(memo[p.id] for p in body.params), tuple(memo[o.id] for o in body.outputs))
    return copy, {memo[node.id].id: node for node in body.nodes}


def rebind(outputs: Sequence[Tensor], index: Mapping[int, int], replace: Mapping[int, Tensor] | None = None) -> Body:
    """The body computing ``outputs`` (nodes of a body) with each parameter reading input ``index[k]`` instead of
    input ``k``, and the nodes in ``replace`` (by id) replaced by the given ones: how a body is rebuilt when the
    inputs of the node around it change."""
    memo: dict[int, Tensor] = dict(replace or {})
    for node in topological_order(outputs):
        if node.id in memo:
            continue
        if node.op == "parameter":
            attrs = {**node.attrs, "index": index[node.attrs["index"]]}
            memo[node.id] = Tensor(node.opdef, (), attrs, node.aval, node.name, node.location)
        else:
            memo[node.id] = rebuild(node, [memo[i.id] for i in node.inputs])
    new_outputs = tuple(memo[o.id] for o in outputs)
    return Body(tuple(n for n in topological_order(new_outputs) if n.op == "parameter"), new_outputs)


__all__ = ["Body", "clone", "rebind"]
