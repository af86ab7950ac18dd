"""``dprint``: a graph as readable text, one line per node.

Also where the inner graphs of a node are found and numbered (a fused node's kernel, a control-flow
node's bodies), which ``to_networkx`` and the report share so that every view numbers nodes alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphc.control.layout import input_offsets
from graphc.errors import ArgumentError
from graphc.ir.body import Body
from graphc.ir.graph import Graph
from graphc.ir.tensor import Tensor

_MAX_CONSTANT_ELEMENTS = 6

# the heading dprint prints above each body, by the attribute holding it
BODY_HEADINGS = {"body": "body", "cond": "cond", "true_body": "true branch", "false_body": "false branch"}


def format_attr(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= _MAX_CONSTANT_ELEMENTS:
            return np.array2string(value, separator=", ", threshold=_MAX_CONSTANT_ELEMENTS).replace("\n", "")
        return f"<{value.dtype.name} array of {value.size} elements>"
    if isinstance(value, np.dtype):
        return value.name
    return repr(value)


def attrs_summary(node: Tensor) -> str:
    """The node's attributes as ``dprint`` shows them: ``axes=(0,), keepdims=False``.  A kernel and the
    bodies of a control-flow node are shown by their contents instead."""
    hidden = ("weak", "kernel", "dtype", "shape") if node.opdef.family == "source" else ("weak", "kernel")
    text = ", ".join(f"{k}={format_attr(v)}" for k, v in node.attrs.items()
                     if k not in hidden and not isinstance(v, Body))
    if node.op == "fused":
        text = f"kind={node.attrs['kernel'].kind}" + (f", {text}" if text else "")
    return text


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


# ---- inner graphs: kernels and bodies -------------------------------------------------------------

@dataclass(frozen=True)
class ParamRole:
    """What a parameter of an inner graph stands for: ``source``, the input of the enclosing node it reads
    (``None`` if it reads none directly), and ``kind``: ``"input"`` (a kernel's), ``"row"`` (row of sequence
    ``number`` of a loop), ``"state"`` (loop variable ``number``: its value before the step, the input the
    first time), ``"captured"`` (a tensor the body reads, the same at every step) or, in a body of an op not
    known here, ``"input k"`` (its input ``k``)."""

    source: int | None
    kind: str
    number: int = 0

    @property
    def label(self) -> str:
        """A few words: ``row``, ``loop variable 1``, ``captured`` (``""`` for a kernel's input)."""
        return {"input": "", "row": "row", "state": f"loop variable {self.number}"}.get(self.kind, self.kind)


@dataclass(frozen=True)
class InnerGraph:
    """One inner graph of node ``owner``: its kernel (``attr == "kernel"``) or one of its bodies (``attr``
    names the attribute holding it), with ``ids`` giving each inner node its key (as ``dprint`` numbers it)."""

    owner: Tensor
    attr: str
    nodes: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    ids: dict[int, str]

    @property
    def is_kernel(self) -> bool:
        """Whether this is a fused node's kernel (else a body)."""
        return self.attr == "kernel"

    @property
    def heading(self) -> str:
        """``kernel``, ``body``, ``cond``, ``true branch``, ``false branch``."""
        return BODY_HEADINGS.get(self.attr, self.attr)

    @property
    def params(self) -> list[Tensor]:
        """The parameter nodes, by the input they read."""
        return sorted((n for n in self.nodes if n.op == "parameter"), key=lambda p: p.attrs["index"])

    def role(self, param: Tensor) -> ParamRole:
        """What ``param`` stands for."""
        index = param.attrs["index"]
        attrs = self.owner.attrs
        if self.is_kernel:
            return ParamRole(index, "input")
        if self.owner.op == "loop":
            first_seq, _, _ = input_offsets(attrs)
            n_seq, n_state = attrs["n_seq"], attrs["n_state"]
            if self.attr == "cond":  # reads [states..., captured...]
                index += n_seq
            source = first_seq + index
            if index < n_seq:
                return ParamRole(source, "row", index)
            if index < n_seq + n_state:
                return ParamRole(source, "state", index - n_seq)
            return ParamRole(source, "captured")
        if self.owner.op == "cond":  # the branches read the inputs after the predicate
            return ParamRole(index + 1, "captured")
        return ParamRole(None, f"input {index}")

    def output_role(self, k: int) -> str:
        """What output ``k`` is: ``new loop variable 0``, ``step output 1``, ``whether to run the step`` (a
        while loop's condition), ``output 0`` (a branch's)."""
        if self.owner.op == "loop" and self.attr == "body":
            n_state = self.owner.attrs["n_state"]
            return f"new loop variable {k}" if k < n_state else f"step output {k - n_state}"
        if self.owner.op == "loop" and self.attr == "cond":
            return "whether to run the step"
        return f"output {k}"

    def describe(self, outer: dict[int, str]) -> str:
        """What the body reads and gives, by key (``outer`` keys the enclosing node's inputs):
        ``%3.0 = row of %0, %3.1 = loop variable 0 (initially %1); gives %3.4 = new loop variable 0``."""
        reads = []
        for param in self.params:
            role = self.role(param)
            src = f"%{outer[self.owner.inputs[role.source].id]}" if role.source is not None else ""
            text = {"row": f"row of {src}", "state": f"loop variable {role.number} (initially {src})",
                    "captured": f"captured {src}"}.get(role.kind, f"{role.kind} {src}".rstrip())
            reads.append(f"%{self.ids[param.id]} = {text}")
        gives = [f"%{self.ids[o.id]} = {self.output_role(k)}" for k, o in enumerate(self.outputs)]
        return f"{', '.join(reads) or 'no inputs'}; gives {', '.join(gives)}"


def inner_graphs(node: Tensor, key: str) -> list[InnerGraph]:
    """The inner graphs of ``node`` (keyed ``key``): a fused node's kernel, a control-flow node's bodies (every
    attribute holding a Body, in attribute order).  Their nodes are keyed ``key.0``, ``key.1``, ... numbered on
    from one inner graph to the next, so a loop's body and condition never share a key."""
    if node.op == "fused":
        graphs: list[tuple[str, Any]] = [("kernel", node.attrs["kernel"])]
    else:
        graphs = [(name, value) for name, value in node.attrs.items() if isinstance(value, Body)]
    result, start = [], 0
    for attr, graph in graphs:
        ids = {n.id: f"{key}.{start + j}" for j, n in enumerate(graph.nodes)}
        start += len(graph.nodes)
        result.append(InnerGraph(node, attr, tuple(graph.nodes), tuple(graph.outputs), ids))
    return result


# ---- dprint --------------------------------------------------------------------------------------

_INDENT = "    |"  # one more per level of nesting


def _node_line(node: Tensor, ids: dict[int, str], mark: str, indent: str, locations: bool) -> str:
    args = ", ".join(f"%{ids[i.id]}" for i in node.inputs)
    attrs = attrs_summary(node)
    call = f"{node.op}({args})" + (f" {{{attrs}}}" if attrs else "")
    line = f"{indent}{mark} %{ids[node.id]} = {call} : {node.type_str()}  '{node.name}'"
    if locations and node.location is not None:
        line += f"  # {node.location}"
    return line


def _listing(nodes: Sequence[Tensor], outputs: Sequence[Tensor], ids: dict[int, str], indent: str,
             locations: bool, lines: list[str]) -> None:
    """Append the lines of ``nodes``, each node followed by its inner graphs one level deeper."""
    marked = {o.id for o in outputs}
    for node in nodes:
        lines.append(_node_line(node, ids, "->" if node.id in marked else "  ", indent, locations))
        for inner in inner_graphs(node, ids[node.id]):
            if not inner.is_kernel:
                lines.append(f"{indent}{_INDENT}   {inner.heading}: {inner.describe(ids)}")
            _listing(inner.nodes, inner.outputs, inner.ids, indent + _INDENT, locations, lines)


def dprint(target: Any, locations: bool = True) -> str:
    """The graph behind ``target`` (tensor, list of tensors, Graph, or gc.function) as text.

    One line per node in topological order: ``%id = op(inputs) {attrs} : dtype[shape]  'name'  # file:line``.
    Outputs are marked with ``->``.  A fused kernel is followed by its inner graph, indented, whose
    ``parameter`` nodes stand for the kernel's inputs in order and whose outputs are marked ``->``.  A loop
    or a cond is followed the same way by each of its bodies (``body``, ``cond``, ``true branch``, ``false
    branch``), each under a heading line saying what its parameters stand for (a sequence's row, a loop
    variable, a captured tensor, by the node's input they read) and what its outputs are; bodies and
    kernels inside a body are indented one level more.
    For a gc.function on a GPU device that has run, each kernel's launches (grid and block) follow.
    """
    graph = graph_of(target, "dprint")
    ids = {node.id: str(i) for i, node in enumerate(graph.nodes)}
    lines: list[str] = []
    _listing(graph.nodes, graph.outputs, ids, "", locations, lines)
    launches = getattr(target, "launch_shapes", None)
    shapes = launches() if callable(launches) else ""
    if shapes:
        lines += ["", shapes]
    return "\n".join(lines)
