"""A :class:`Graph` is the set of nodes that some outputs depend on, in topological order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from graphc.ir.tensor import Tensor


def topological_order(outputs: Iterable[Tensor]) -> list[Tensor]:
    """Every node the outputs depend on, each after its inputs (iterative: deep graphs are fine)."""
    order: list[Tensor] = []
    visited: set[int] = set()
    for root in outputs:
        if root.id in visited:
            continue
        stack: list[tuple[Tensor, int]] = [(root, 0)]
        visited.add(root.id)
        while stack:
            node, next_input = stack[-1]
            if next_input < len(node.inputs):
                stack[-1] = (node, next_input + 1)
                child = node.inputs[next_input]
                if child.id not in visited:
                    visited.add(child.id)
                    stack.append((child, 0))
            else:
                stack.pop()
                order.append(node)
    return order


class Graph:
    """The nodes ``outputs`` depend on: ``.nodes`` (topological), ``.inputs`` (placeholders), ``.outputs``."""

    def __init__(self, outputs: Sequence[Tensor], inputs: Sequence[Tensor] | None = None) -> None:
        self.outputs: tuple[Tensor, ...] = tuple(outputs)
        self.nodes: tuple[Tensor, ...] = tuple(topological_order(self.outputs))
        found = [n for n in self.nodes if n.op == "placeholder"]
        self.inputs: tuple[Tensor, ...] = tuple(inputs) if inputs is not None else tuple(found)

    @property
    def placeholders(self) -> tuple[Tensor, ...]:
        return tuple(n for n in self.nodes if n.op == "placeholder")

    @property
    def variables(self) -> tuple[Tensor, ...]:
        return tuple(n for n in self.nodes if n.op == "variable")

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.nodes)

    def __repr__(self) -> str:
        return f"<Graph: {len(self.nodes)} nodes, {len(self.outputs)} outputs>"
