"""Work on sequence rows hoisted out of a loop as work on whole sequences.

A step's matrix product of a sequence's row by a tensor the loop captures (``x_t @ W`` in every recurrent
network) depends on no loop variable: all of them can be computed before the loop as one product of the whole
sequence, ``X @ W``, with as many rows as the steps' products together, which runs far faster than one small
product per step.  The body then reads its row of that product as a new sequence.  Float elementwise work
feeding such a product (``(x_t * s) @ W``) comes along.  Registered as the loop op's ``rewrite`` fact, which
graphc/passes/bodies.py applies.
"""

from __future__ import annotations

from graphc.control.layout import split_inputs
from graphc.ir.body import Body
from graphc.ir.build import rebuild
from graphc.ir.graph import topological_order
from graphc.ir.registry import REGISTRY, AbstractValue
from graphc.ir.tensor import Tensor


def _batchable(node: Tensor, row_dependent: list[bool]) -> bool:
    """Whether ``node`` applied to whole sequences (a leading axis more on the inputs that depend on rows) is
    ``node`` of each row stacked, by NumPy's broadcasting rules."""
    if node.op == "matmul":
        a, b = (len(i.shape) for i in node.inputs)
        if row_dependent[1]:  # a stack of right operands: each must be a matrix
            return b >= 2 and (not row_dependent[0] or a >= 2)
        return True
    if node.opdef.family == "elementwise" and node.dtype.kind == "f":
        return all(len(i.shape) == len(node.shape) for i, row in zip(node.inputs, row_dependent) if row)
    return False


def hoist_rows(node: Tensor) -> Tensor | None:
    """Loop ``node`` with its body's products of sequence rows computed before the loop (None: none to hoist)."""
    a = node.attrs
    body: Body = a["body"]
    n_seq, n_state = a["n_seq"], a["n_state"]
    if n_seq == 0:
        return None
    on_rows: set[int] = set()  # body nodes computed from rows and captured tensors only, that can be batched
    varying: set[int] = set()  # body nodes that depend on a loop variable
    for n in body.nodes:
        if n.op == "parameter":
            index = n.attrs["index"]
            (on_rows if index < n_seq else varying if index < n_seq + n_state else set()).add(n.id)
            continue
        if any(i.id in varying for i in n.inputs):
            varying.add(n.id)
        elif n.op != "parameter" and any(i.id in on_rows for i in n.inputs) \
                and _batchable(n, [i.id in on_rows for i in n.inputs]):
            on_rows.add(n.id)
    products = [n for n in body.nodes if n.op == "matmul" and n.id in on_rows]
    if not products:
        return None
    hoisted = {p.id for p in topological_order(products) if p.id in on_rows and p.op != "parameter"}
    readers = {i.id for n in body.nodes if n.id not in hoisted for i in n.inputs} | {o.id for o in body.outputs}
    frontier = [n for n in body.nodes if n.id in hoisted and n.id in readers]

    trip, seqs, inits, captured = split_inputs(node.inputs, a)
    outer: dict[int, Tensor] = {}  # body node id -> the whole-sequence value outside
    for n in body.nodes:
        if n.op == "parameter":
            index = n.attrs["index"]
            if index < n_seq:
                outer[n.id] = seqs[index]
            elif index >= n_seq + n_state:
                outer[n.id] = captured[index - n_seq - n_state]
        elif n.id in hoisted:
            outer[n.id] = rebuild(n, [outer.get(i.id, i) for i in n.inputs])
    new_seqs = [outer[n.id] for n in frontier]

    shift = len(frontier)
    memo: dict[int, Tensor] = {}
    for k, n in enumerate(frontier):  # read as rows of the new sequences
        memo[n.id] = Tensor(REGISTRY["parameter"], (), {"index": n_seq + k, "dtype": n.dtype, "shape": n.shape},
                            AbstractValue(n.dtype, n.shape), f"{n.name.rsplit('/', 1)[-1]}_row", n.location)
    for n in body.nodes:
        if n.id in memo or n.id in hoisted:
            continue
        if n.op == "parameter":
            index = n.attrs["index"]
            memo[n.id] = n if index < n_seq else Tensor(n.opdef, (), {**n.attrs, "index": index + shift}, n.aval,
                                                        n.name, n.location)
        else:
            memo[n.id] = rebuild(n, [memo[i.id] for i in n.inputs])
    outputs = tuple(memo[o.id] for o in body.outputs)
    new_body = Body(tuple(n for n in topological_order(outputs) if n.op == "parameter"), outputs)
    attrs = {**a, "n_seq": n_seq + shift, "body": new_body}
    inputs = [*([trip] if trip is not None else []), *seqs, *new_seqs, *inits, *captured]
    aval = node.opdef.infer([t.aval for t in inputs], **attrs)
    return Tensor(node.opdef, tuple(inputs), attrs, AbstractValue(aval.dtype, aval.shape, parts=aval.parts),
                  node.name, node.location)


__all__ = ["hoist_rows"]
