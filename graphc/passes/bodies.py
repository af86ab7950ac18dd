"""Control-flow nodes in the optimisation pipeline.

* The phases applied inside their bodies (a loop's step and condition, a conditional's branches): each body is
  a graph of its own, optimised as any graph is, and the node that runs it is rebuilt around the optimised
  bodies.  Nested bodies are reached through the same phases, one level at a time.
* Each node whose op has a ``rewrite`` fact (``rewrite(node) -> (the names of what it did, a replacement for
  each of its outputs) | None``, e.g. a loop moving work out of its body) replaced by what it gives.
* Outputs no one reads dropped from nodes with several outputs, by the op's ``prune_outputs`` fact
  (``prune(node, used output indices) -> (new node, old index -> new index) | None``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from graphc.ir.body import Body
from graphc.ir.build import rebuild
from graphc.ir.graph import topological_order
from graphc.ir.tensor import Tensor
from graphc.passes.canonicalize import PHASE
from graphc.passes.engine import RewriteLog, RewriteRecord

OptimizeOutputs = Callable[[list[Tensor]], list[Tensor]]
"""``run(outputs) -> the optimised outputs``: the phases to apply to a body's graph."""


def has_control_flow(outputs: Sequence[Tensor]) -> bool:
    """Whether the graph computing ``outputs`` has a node holding a body or with a ``rewrite`` or
    ``prune_outputs`` fact: the only nodes the passes here change (a graph without any skips them)."""
    return any(any(isinstance(v, Body) for v in node.attrs.values())
               or "rewrite" in node.opdef.extra or "prune_outputs" in node.opdef.extra
               for node in topological_order(outputs))


def optimize_bodies(outputs: Sequence[Tensor], run: OptimizeOutputs) -> tuple[list[Tensor], dict[int, Tensor]]:
    """``outputs`` with every node holding bodies (an attribute that is a :class:`Body`) rebuilt around
    ``run`` applied to each of its bodies; returns the new outputs and old node id -> new node."""
    memo: dict[int, Tensor] = {}
    for node in topological_order(outputs):
        inputs = [memo.get(i.id, i) for i in node.inputs]
        bodies = {name: value for name, value in node.attrs.items() if isinstance(value, Body)}
        optimized = {name: _optimized(body, run) for name, body in bodies.items()}
        changed = any(optimized[name] is not bodies[name] for name in bodies)
        new = rebuild(node, inputs, {**node.attrs, **optimized} if changed else None)
        if new is not node:
            memo[node.id] = new
    return [memo.get(o.id, o) for o in outputs], memo


def _optimized(body: Body, run: OptimizeOutputs) -> Body:
    outputs = run(list(body.outputs))
    if all(a is b for a, b in zip(outputs, body.outputs)):
        return body
    params = tuple(n for n in topological_order(outputs) if n.op == "parameter")
    return Body(params, tuple(outputs))


def rewrite_nodes(outputs: Sequence[Tensor], log: RewriteLog) -> tuple[list[Tensor], dict[int, Tensor]]:
    """``outputs`` with each node whose op has a ``rewrite`` fact replaced: the ``part`` nodes reading it by
    the replacements the fact gives for its outputs (when it gives any), each application recorded in ``log``
    under the names of what the fact did; returns the new outputs and old node id -> new node."""
    wanted = {o.id for o in outputs}
    memo: dict[int, Tensor] = {}
    replaced: dict[int, list[Tensor]] = {}  # node id -> a replacement for each of its outputs
    for node in topological_order(outputs):
        if node.op == "part" and node.inputs[0].id in replaced:
            memo[node.id] = replaced[node.inputs[0].id][node.attrs["index"]]
            continue
        new = rebuild(node, [memo.get(i.id, i) for i in node.inputs])
        rewrite = node.opdef.extra.get("rewrite")
        if rewrite is not None and node.id not in wanted:
            result = rewrite(new)
            if result is not None:
                names, replaced[node.id] = result
                log.records.extend(RewriteRecord(name, PHASE, node.op, node.name, node.location) for name in names)
        if new is not node:
            memo[node.id] = new
    return [memo.get(o.id, o) for o in outputs], memo


def prune_outputs(outputs: Sequence[Tensor], log: RewriteLog) -> tuple[list[Tensor], dict[int, Tensor]]:
    """``outputs`` with every node whose op can drop outputs (``prune_outputs``) rebuilt without the ones no
    ``part`` node reads (recorded in ``log``); returns the new outputs and old node id -> new node."""
    order = topological_order(outputs)
    wanted = {o.id for o in outputs}
    used: dict[int, set[int]] = {}
    for node in order:
        if node.op == "part":
            used.setdefault(node.inputs[0].id, set()).add(node.attrs["index"])
    memo: dict[int, Tensor] = {}
    pruned: dict[int, dict[int, int]] = {}  # new node id -> old output index -> new index
    for node in order:
        inputs = [memo.get(i.id, i) for i in node.inputs]
        if node.op == "part" and inputs[0].id in pruned:
            new = rebuild(node, inputs, {**node.attrs, "index": pruned[inputs[0].id][node.attrs["index"]]})
        else:
            new = rebuild(node, inputs)
            prune = node.opdef.extra.get("prune_outputs")
            if prune is not None and node.id not in wanted and node.id in used:
                result = prune(new, used[node.id])
                if result is not None:
                    new, remap = result
                    pruned[new.id] = remap
                    log.records.append(RewriteRecord("prune_outputs", PHASE, node.op, node.name, node.location,
                                                     new.name))
        if new is not node:
            memo[node.id] = new
    return [memo.get(o.id, o) for o in outputs], memo


__all__ = ["OptimizeOutputs", "has_control_flow", "optimize_bodies", "prune_outputs", "rewrite_nodes"]
