"""The fuse phase: partition the graph into kernels, each one ``fused`` node.

Rules (also in docs/passes/fuse.md):
* An elementwise op joins the kernel of the ops that consume it when it has the same shape as the
  kernel's iteration space, so nothing inside a kernel is computed more than once per element.
  A smaller (broadcast) producer is not fused: it is computed once and stored.
* A reduction (sum, mean, max, min, prod, logsumexp) is the root of a kernel that also computes
  the elementwise work feeding it (producers of the reduced input's shape).
* An elementwise chain that consumes a matmul or conv2d output takes that op in as well: the
  epilogue (bias, activation) runs on the result while it is still in the kernel.  The op's own
  operands are stored values read by the kernel, never computed inside it.
* A value used outside its kernel, or fetched, becomes one more output of the kernel: it is stored
  once, never recomputed.  A producer is only fused when doing so creates no cycle (no path from
  the kernel through an outside op, or through another kernel taken as one unit, back into it).
* Kernels of a single op are left as that op.

Names: a ``fused`` node is named in the deepest name scope that holds all of its kernel's members,
a ``kernel_output`` in the scope of the value it stands for, and a kernel's ``parameter`` nodes at
the root (``in0``, ``in1``...).
"""

from __future__ import annotations

from collections.abc import Sequence

from graphc.ir.build import attributed_to, rebuild
from graphc.ir.graph import topological_order
from graphc.ir.location import located_at
from graphc.ir.scope import enter_scope, scope_of
from graphc.ir.tensor import Tensor
from graphc.ops._common import make_node
from graphc.ops.kernel import Kernel
from graphc.passes.engine import RewriteLog, RewriteRecord

PHASE = "fuse"


def _elementwise(t: Tensor) -> bool:
    return t.opdef.family == "elementwise" and not t.opdef.stateful


def _reduction(t: Tensor) -> bool:
    """A reduction op: the root of a kernel with the elementwise work feeding it."""
    return t.opdef.reduction is not None


def _epilogue_host(t: Tensor) -> bool:
    """An op (matmul, conv2d) an elementwise chain consuming it fuses into as its epilogue."""
    return t.opdef.epilogue_kind is not None


def _consumers(order: Sequence[Tensor]) -> dict[int, list[Tensor]]:
    users: dict[int, list[Tensor]] = {n.id: [] for n in order}
    for n in order:
        for i in n.inputs:
            if all(u is not n for u in users[i.id]):  # (`in` would call Tensor.__eq__)
                users[i.id].append(n)
    return users


def _reaches(start: Tensor, targets: set[int], users: dict[int, list[Tensor]],
             kernel_of: dict[int, list[Tensor]]) -> bool:
    """Whether a path leads from ``start`` to any node in ``targets`` once the kernels already
    formed are contracted: reaching one member of such a kernel reaches all of them (the kernel
    runs as one unit, after all its inputs and before all its consumers)."""
    stack, seen = [start], set()
    while stack:
        n = stack.pop()
        if n.id in targets:
            return True
        if n.id in seen:
            continue
        seen.add(n.id)
        stack.extend(users.get(n.id, ()))
        stack.extend(kernel_of.get(n.id, ()))
    return False


def _grow(root: Tensor, users: dict[int, list[Tensor]], kernel_of: dict[int, list[Tensor]]
          ) -> tuple[list[Tensor], str]:
    """The nodes of the kernel rooted at ``root`` and the kernel's kind."""
    kind = "reduction" if _reduction(root) else "elementwise"
    space = root.inputs[0].shape if kind == "reduction" else root.shape
    group: dict[int, Tensor] = {root.id: root}
    frontier = list(root.inputs)
    while frontier:
        p = frontier.pop()
        if p.id in group or p.id in kernel_of:
            continue
        host = kind == "elementwise" and _epilogue_host(p) and p.shape == space
        if not ((_elementwise(p) and p.shape == space) or host):
            continue
        if any(c.id in group and _epilogue_host(c) for c in users[p.id]):
            continue  # an operand of the kernel's matmul / conv2d: stored before the kernel runs
        outside = [c for c in users[p.id] if c.id not in group]
        if any(_reaches(c, set(group), users, kernel_of) for c in outside):
            continue  # fusing p would make a cycle through an outside op (or another kernel)
        group[p.id] = p
        if host:
            kind = p.opdef.epilogue_kind  # the host's own inputs (x, w) stay outside: they are stored operands
        else:
            frontier.extend(p.inputs)
    return [n for n in topological_order([root]) if n.id in group], kind


def _build_kernel(members: list[Tensor], outputs: list[Tensor], kind: str) -> tuple[Kernel, list[Tensor]]:
    """The kernel computing ``outputs`` from ``members``, and the outer tensors it reads (in order)."""
    inside = {m.id for m in members}
    externals: list[Tensor] = []
    params: dict[int, Tensor] = {}
    inner: dict[int, Tensor] = {}
    for m in members:
        args = []
        for i in m.inputs:
            if i.id in inside:
                args.append(inner[i.id])
                continue
            if i.id not in params:
                # errors naming a parameter point at the value it stands for; its name is the kernel's own
                with located_at(i.location), enter_scope(""):
                    params[i.id] = make_node("parameter", [], name=f"in{len(externals)}", index=len(externals),
                                             dtype=i.dtype, shape=i.shape)
                externals.append(i)
            args.append(params[i.id])
        inner[m.id] = Tensor(m.opdef, tuple(args), m.attrs, m.aval, m.name, m.location)
    kernel = Kernel(tuple(params[e.id] for e in externals), tuple(inner[o.id] for o in outputs), kind)
    return kernel, externals


def fuse(outputs: Sequence[Tensor], log: RewriteLog) -> list[Tensor]:
    """Partition the graph of ``outputs`` into fused kernels; return the new outputs."""
    order = topological_order(outputs)
    users = _consumers(order)
    fetched = {o.id for o in outputs}
    kernel_of: dict[int, list[Tensor]] = {}  # node id -> the members of the kernel it is in
    kernels: list[tuple[list[Tensor], list[Tensor], str]] = []
    for root in reversed(order):
        if root.id in kernel_of or not (_elementwise(root) or _reduction(root)):
            continue
        members, kind = _grow(root, users, kernel_of)
        if len(members) < 2:
            continue
        ids = {m.id for m in members}
        kernel_of.update((m.id, members) for m in members)
        outs = [m for m in members if m.id in fetched or any(c.id not in ids for c in users[m.id])]
        kernels.append((members, outs, kind))
    if not kernels:
        return list(outputs)
    return _contract(outputs, kernels, log)


def _contract(outputs: Sequence[Tensor], kernels: list[tuple[list[Tensor], list[Tensor], str]],
              log: RewriteLog) -> list[Tensor]:
    """Rebuild the graph with each kernel's members replaced by one fused node."""
    owner = {m.id: k for k, (members, _, _) in enumerate(kernels) for m in members}
    built = [_build_kernel(members, outs, kind) for members, outs, kind in kernels]

    def unit(t: Tensor) -> tuple[str, int]:
        return ("kernel", owner[t.id]) if t.id in owner else ("node", t.id)

    nodes = {n.id: n for n in topological_order(outputs)}

    def unit_inputs(u: tuple[str, int]) -> list[Tensor]:
        return built[u[1]][1] if u[0] == "kernel" else list(nodes[u[1]].inputs)

    # topological order of the contracted graph (iterative depth-first search)
    order: list[tuple[str, int]] = []
    done: set[tuple[str, int]] = set()
    for out in outputs:
        stack = [(unit(out), False)]
        while stack:
            u, expanded = stack.pop()
            if u in done:
                continue
            if expanded:
                done.add(u)
                order.append(u)
                continue
            stack.append((u, True))
            stack.extend((unit(i), False) for i in unit_inputs(u) if unit(i) not in done)

    new: dict[int, Tensor] = {}  # old node id -> its tensor in the fused graph
    for kind_, key in order:
        if kind_ == "node":
            node = nodes[key]
            new[key] = rebuild(node, [new[i.id] for i in node.inputs])
            continue
        (kernel, externals), (members, outs, kind) = built[key], kernels[key]
        with located_at(outs[-1].location), enter_scope(common_scope([m.name for m in members])):
            fused = make_node("fused", [new[e.id] for e in externals], name=f"fused_{kind}", kernel=kernel)
        created = [fused.name]
        for index, out in enumerate(outs):
            if len(outs) == 1:
                new[out.id] = fused
                continue
            with attributed_to(out):  # the scope of the value it stands for, and its leaf name
                new[out.id] = make_node("kernel_output", [fused], name=out.name.rpartition("/")[2], index=index,
                                        kernel=kernel)
            created.append(new[out.id].name)
        log.records.append(RewriteRecord(f"fuse_{kind}", PHASE, "fused", fused.name, outs[-1].location,
                                         fused.name, tuple(created)))
    return [new[o.id] for o in outputs]


def common_scope(names: Sequence[str]) -> str:
    """The deepest name scope that holds every one of ``names`` (by whole path segments)."""
    paths = [scope_of(n).split("/") if scope_of(n) else [] for n in names]
    common: list[str] = []
    for segments in zip(*paths):
        if any(s != segments[0] for s in segments):
            break
        common.append(segments[0])
    return "/".join(common)


__all__ = ["PHASE", "common_scope", "fuse"]
