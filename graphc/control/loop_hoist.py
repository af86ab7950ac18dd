"""Work moved out of loop bodies onto whole sequences, where it runs as a few large operations.

* **Hoisting rows**: a step's matrix product of a sequence's row by a tensor the loop captures (``x_t @ W``
  in every recurrent network) depends on no loop variable, so all of them are computed before the loop as
  one product of the whole sequence, ``X @ W``, with as many rows as the steps' products together; the body
  reads its row of that product as a new sequence.  Float elementwise work feeding such a product comes along.
* **Sinking sums**: a loop variable that only accumulates, ``acc <- acc + g_t`` (a weight's gradient in a
  backward pass, ``acc + h_t^T dz_t``), where ``g_t`` is a product, a multiplication or a sum of values of the
  step, becomes those values stacked over the steps and, after the loop, ``acc_0 + sum_t g_t`` computed from
  the stacks at once (which canonicalize's ``sum_of_products`` makes one product).  ``g`` is zero wherever
  one of those values is, so the rows of steps that did not run (zero) add nothing.

Registered as the loop op's ``rewrite`` fact (``rewrite(node) -> (what it did, a replacement for each of its
outputs) | None``), which graphc/passes/bodies.py applies; each application is in the rewrite log under
``hoist_rows``, ``transpose_once`` and ``sink_sums``.
"""

from __future__ import annotations

from collections.abc import Sequence

from graphc.control.layout import output_part, split_inputs, stacked_part, trip_part
from graphc.control.loop_prune import with_states
from graphc.control.part import part
from graphc.ir.body import Body, rebind
from graphc.ir.build import attributed_to, make_node, rebuild
from graphc.ir.graph import topological_order
from graphc.ir.registry import REGISTRY, AbstractValue
from graphc.ir.tensor import Tensor
from graphc.ops.linalg import flags, matmul_flags


def _batchable(node: Tensor, stacked: Sequence[bool]) -> bool:
    """Whether ``node`` applied to whole stacks (a leading axis more on its ``stacked`` inputs) is ``node`` of
    each row, stacked, by NumPy's broadcasting rules."""
    if node.op == "matmul":
        a, b = (len(i.shape) for i in node.inputs)
        if stacked[1]:  # a stack of right operands: each must be a matrix
            return b >= 2 and (not stacked[0] or a >= 2)
        return True
    if node.opdef.family == "elementwise" and node.dtype.kind == "f":
        return all(len(i.shape) == len(node.shape) for i, s in zip(node.inputs, stacked) if s)
    return node.op == "sum" and stacked[0]


def _batched(node: Tensor, inputs: list[Tensor]) -> Tensor:
    """``node`` of each row of its stacked ``inputs`` (see :func:`_batchable`), as one node."""
    if node.op == "sum":
        return make_node("sum", inputs, axes=tuple(a + 1 for a in node.attrs["axes"]), keepdims=node.attrs["keepdims"])
    return rebuild(node, inputs)


def _row_parameter(like: Tensor, index: int) -> Tensor:
    return Tensor(REGISTRY["parameter"], (), {"index": index, "dtype": like.dtype, "shape": like.shape},
                  AbstractValue(like.dtype, like.shape), f"{like.name.rsplit('/', 1)[-1]}_row", like.location)


def _invariant(t: Tensor, captured: dict[int, Tensor], memo: dict[int, Tensor | None]) -> Tensor | None:
    """Body value ``t`` computed before the loop when it depends on captured tensors and constants only
    (a shape computation from a weight, say); None when it needs a row or a loop variable."""
    if t.op == "parameter":
        return captured.get(t.id)
    if not t.inputs:
        return t
    if t.id not in memo:
        operands = [_invariant(i, captured, memo) for i in t.inputs]
        memo[t.id] = None if any(o is None for o in operands) else rebuild(t, operands)  # type: ignore[arg-type]
    return memo[t.id]


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
            if index < n_seq:
                on_rows.add(n.id)
            elif index < n_seq + n_state:
                varying.add(n.id)
        elif any(i.id in varying for i in n.inputs):
            varying.add(n.id)
        elif any(i.id in on_rows for i in n.inputs) and _batchable(n, [i.id in on_rows for i in n.inputs]):
            on_rows.add(n.id)
    products = [n for n in body.nodes if n.op == "matmul" and n.id in on_rows]
    if not products:
        return None
    hoisted = {p.id for p in topological_order(products) if p.id in on_rows and p.op != "parameter"}
    readers = {i.id for n in body.nodes if n.id not in hoisted for i in n.inputs} | {o.id for o in body.outputs}
    frontier = [n for n in body.nodes if n.id in hoisted and n.id in readers]

    trip, seqs, inits, captured = split_inputs(node.inputs, a)
    outer: dict[int, Tensor] = {}  # body node id -> its value over the whole sequences, outside
    captured_params = {n.id: captured[n.attrs["index"] - n_seq - n_state] for n in body.nodes
                       if n.op == "parameter" and n.attrs["index"] >= n_seq + n_state}
    invariant: dict[int, Tensor | None] = {}
    for n in body.nodes:
        if n.op == "parameter":
            index = n.attrs["index"]
            if index < n_seq:
                outer[n.id] = seqs[index]
            elif index >= n_seq + n_state:
                outer[n.id] = captured[index - n_seq - n_state]
        elif n.id in hoisted:
            operands = [outer[i.id] if i.id in outer else _invariant(i, captured_params, invariant) for i in n.inputs]
            if any(o is None for o in operands):
                return None  # it reads a value of the step that cannot be computed before the loop
            outer[n.id] = rebuild(n, operands)  # type: ignore[arg-type]
    shift = len(frontier)
    index = {k: k if k < n_seq else k + shift for k in range(n_seq + n_state + len(captured))}
    rows = {n.id: _row_parameter(n, n_seq + k) for k, n in enumerate(frontier)}
    attrs = {**a, "n_seq": n_seq + shift, "body": rebind(body.outputs, index, rows)}
    inputs = [*([trip] if trip is not None else []), *seqs, *(outer[n.id] for n in frontier), *inits, *captured]
    return rebuild(node, inputs, attrs)


def _accumulation(body: Body, n_seq: int, j: int, cond_reads: set[int]) -> Tensor | None:
    """``g`` if loop variable ``j`` only accumulates (its new value is ``acc + g``, ``acc`` read nowhere else,
    ``g`` zero where one of its operands that the step computes is), else None."""
    new = body.outputs[j]
    if new.op != "add" or j in cond_reads:
        return None
    params = [i for i in new.inputs if i.op == "parameter" and i.attrs["index"] == n_seq + j]
    if len(params) != 1 or params[0] is new.inputs[0] is new.inputs[1]:
        return None
    acc = params[0]
    g = new.inputs[1] if new.inputs[0] is acc else new.inputs[0]
    if g.shape != new.shape or g.dtype != new.dtype or g.op not in ("matmul", "multiply", "sum"):
        return None
    if any(i is acc for n in body.nodes if n is not new for i in n.inputs) or any(o is acc for o in body.outputs):
        return None
    return g


def sink_sums(node: Tensor) -> list[Tensor] | None:
    """Loop ``node`` with its accumulating loop variables summed after the loop (None: none to sink): a
    replacement for each of its outputs."""
    a = node.attrs
    body: Body = a["body"]
    n_seq, n_state = a["n_seq"], a["n_state"]
    if n_seq == 0 and a["length"] is None:
        return None  # stacks need a bound on the steps
    cond_reads = {p.attrs["index"] for p in a["cond"].params} if a["cond"] is not None else set()
    sunk: dict[int, tuple[Tensor, list[str]]] = {}  # loop variable -> its g and the kind of each operand of g
    for j in range(n_state):
        g = _accumulation(body, n_seq, j, cond_reads) if not a["stacked"][j] else None
        if g is None:
            continue
        kinds = []  # per operand of g: "row", "captured", "step" (a value of the step) or "" (a constant)
        for i in g.inputs:
            index = i.attrs["index"] if i.op == "parameter" else None
            kinds.append("" if i.op == "constant" else "step" if index is None or n_seq <= index < n_seq + n_state
                         else "row" if index < n_seq else "captured")
        # a product, a multiplication or a sum with an operand of the step is zero where that operand is
        if "step" in kinds and _batchable(g, [k in ("row", "step") for k in kinds]):
            sunk[j] = (g, kinds)
    if not sunk:
        return None
    kept = [j for j in range(n_state) if j not in sunk]
    n_out = len(body.outputs) - n_state
    per_step = list(body.outputs[n_state:])
    stacked_at: dict[int, int] = {o.id: k for k, o in enumerate(per_step)}  # body value -> its per-step output
    for g, kinds in sunk.values():
        for i, kind in zip(g.inputs, kinds):
            if kind == "step" and i.id not in stacked_at:
                stacked_at[i.id] = len(per_step)
                per_step.append(i)
    _, seqs, inits, captured = split_inputs(node.inputs, a)
    new = with_states(node, kept, range(len(captured)), [*(body.outputs[j] for j in kept), *per_step])
    attrs = new.attrs
    first_captured = n_seq + n_state

    def stack_of(t: Tensor) -> Tensor:
        """``t``'s value over the steps, outside the loop."""
        if t.op == "parameter" and t.attrs["index"] < n_seq:
            return seqs[t.attrs["index"]]
        if t.op == "parameter" and t.attrs["index"] >= first_captured:
            return captured[t.attrs["index"] - first_captured]
        if t.op == "constant":
            return t
        return part(new, output_part(attrs, stacked_at[t.id]))

    replacements: list[Tensor] = []
    for j in range(n_state):
        if j in sunk:
            g = sunk[j][0]
            over_steps = _batched(g, [stack_of(i) for i in g.inputs])
            replacements.append(inits[j] + make_node("sum", [over_steps], axes=(0,), keepdims=False))
        else:
            replacements.append(part(new, kept.index(j)))
    for j in range(n_state):
        if a["stacked"][j]:
            replacements.append(part(new, stacked_part(attrs, kept.index(j))))  # type: ignore[arg-type]
    replacements += [part(new, output_part(attrs, k)) for k in range(n_out)]
    replacements.append(part(new, trip_part(attrs)))
    return replacements


def transpose_once(node: Tensor) -> Tensor | None:
    """Loop ``node`` with each captured matrix its body multiplies by transposed (``x @ w.T``: a backward
    pass's ``dz @ W_h.T``) transposed once before the loop, so that each step's product reads it with
    contiguous rows (a product reads such an operand in place, where a transposed one is repacked every
    step).  None: no such product."""
    a = node.attrs
    body: Body = a["body"]
    first_captured = a["n_seq"] + a["n_state"]
    trip, seqs, inits, captured = split_inputs(node.inputs, a)
    transposed: dict[int, Tensor] = {}  # captured index -> the parameter reading its transpose
    replace: dict[int, Tensor] = {}
    for n in body.nodes:
        w = n.inputs[1] if n.op == "matmul" else None
        if w is None or not matmul_flags(n)[1] or w.op != "parameter" or w.attrs["index"] < first_captured \
                or w.ndim != 2:
            continue
        c = w.attrs["index"] - first_captured
        if c not in transposed:
            shape = (w.shape[1], w.shape[0])
            index = first_captured + len(captured) + len(transposed)  # a new captured input, after the others
            transposed[c] = Tensor(REGISTRY["parameter"], (), {"index": index, "dtype": w.dtype, "shape": shape},
                                   AbstractValue(w.dtype, shape), f"{w.name.rsplit('/', 1)[-1]}_t", w.location)
        replace[n.id] = n  # rebuilt below, once its left operand is
    if not transposed:
        return None
    memo: dict[int, Tensor] = {}
    for n in body.nodes:
        inputs = [memo.get(i.id, i) for i in n.inputs]
        if n.id in replace:
            c = n.inputs[1].attrs["index"] - first_captured
            with attributed_to(n):
                memo[n.id] = make_node("matmul", [inputs[0], transposed[c]], **flags(matmul_flags(n)[0], False))
        elif n.op != "parameter":
            memo[n.id] = rebuild(n, inputs)
    outputs = tuple(memo.get(o.id, o) for o in body.outputs)
    new_body = Body(tuple(n for n in topological_order(outputs) if n.op == "parameter"), outputs)
    extra = [make_node("transpose", [captured[c]], perm=(1, 0)) for c in transposed]
    inputs = [*([trip] if trip is not None else []), *seqs, *inits, *captured, *extra]
    return rebuild(node, inputs, {**a, "body": new_body})


def move_work_out(node: Tensor) -> tuple[list[str], list[Tensor]] | None:
    """The loop op's ``rewrite`` fact: rows hoisted, transposed operands transposed once, then sums sunk; returns
    the names of what was done and a replacement for each of the loop's outputs (None: nothing moved)."""
    current, done = node, []
    for rewrite in (hoist_rows, transpose_once):
        rewritten = rewrite(current)
        if rewritten is not None:
            current = rewritten
            done.append(rewrite.__name__)
    sunk = sink_sums(current)
    if sunk is not None:
        return [*done, "sink_sums"], sunk
    if current is node:
        return None
    parts = current.parts
    assert parts is not None
    return done, [part(current, k) for k in range(len(parts))]


__all__ = ["hoist_rows", "move_work_out", "sink_sums"]
