"""The NumPy reference interpreter: a graph run op by op with each op's reference implementation.

It is the ground truth every compiled backend is tested against (``device="reference"`` runs it), and
what a fused kernel's own reference evaluates its inner graph with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from graphc.errors import ExecutionError, GraphcError
from graphc.ir.registry import AbstractValue
from graphc.ir.tensor import Tensor


def execution_fault(node: Tensor, message: str) -> ExecutionError:
    """The error for a fault found while running ``node``: names the op and the user's line."""
    where = f"\n  created at {node.location}" if node.location else ""
    error = ExecutionError(f"{node.op} {node.describe()} failed while running: {message}{where}")
    error.location = node.location  # type: ignore[attr-defined]
    return error


def evaluate(
    nodes: Sequence[Tensor],
    avals: Mapping[int, AbstractValue],
    sources: Mapping[int, np.ndarray],
    keep: set[int],
) -> dict[int, np.ndarray | None]:
    """Run ``nodes`` (topologically ordered) op by op with each op's NumPy reference implementation.

    ``sources`` holds the values of placeholders and variables; ``avals`` the concrete dtype and
    shape of every node for this run.  Returns the values of the nodes in ``keep``; others are
    dropped as soon as their last consumer has run.
    """
    remaining_uses: dict[int, int] = {}
    for node in nodes:
        for inp in node.inputs:
            remaining_uses[inp.id] = remaining_uses.get(inp.id, 0) + 1
    values: dict[int, np.ndarray | None] = {}
    with np.errstate(all="ignore"):
        for node in nodes:
            if node.id in sources:
                values[node.id] = sources[node.id]
                continue
            args = [values[i.id] for i in node.inputs]
            try:
                result = node.opdef.reference(*args, **node.attrs)
            except ExecutionError as exc:
                if hasattr(exc, "location"):
                    raise  # already names the op that failed (inside a fused kernel: the inner op)
                raise execution_fault(node, str(exc)) from None
            except GraphcError as exc:
                raise execution_fault(node, str(exc)) from None
            except (ValueError, IndexError, TypeError, ArithmeticError, MemoryError) as exc:
                raise execution_fault(node, f"{type(exc).__name__}: {exc}") from None
            if result is None or isinstance(result, tuple):  # group; a fused kernel's several outputs
                values[node.id] = result
            else:
                values[node.id] = _conform(node, result, avals[node.id])
            for inp in node.inputs:
                remaining_uses[inp.id] -= 1
                if remaining_uses[inp.id] == 0 and inp.id not in keep:
                    del values[inp.id]
    return {k: values[k] for k in keep}


def _conform(node: Tensor, result: object, aval: AbstractValue) -> np.ndarray:
    array = np.asarray(result)
    if array.dtype != aval.dtype:
        array = array.astype(aval.dtype)
    if array.shape != aval.shape:
        raise RuntimeError(
            f"graphc internal error: {node.op} produced shape {array.shape}, its shape rule says {aval.shape}"
        )
    return array


__all__ = ["evaluate", "execution_fault"]
