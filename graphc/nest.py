"""Flatten nested fetch structures (lists, tuples, namedtuples, dicts) and rebuild them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Rebuild = Callable[[list[Any]], Any]


def flatten(structure: Any, is_leaf: Callable[[Any], bool]) -> tuple[list[Any], Rebuild]:
    """The leaves of ``structure`` in order, and a function that puts new leaves back in its shape."""
    leaves: list[Any] = []

    def walk(node: Any) -> Callable[[Any], Any]:
        if is_leaf(node):
            index = len(leaves)
            leaves.append(node)
            return lambda values: values[index]
        if isinstance(node, dict):
            parts = {k: walk(v) for k, v in node.items()}
            kind = type(node)
            return lambda values: kind((k, p(values)) for k, p in parts.items())
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            tparts = [walk(v) for v in node]
            ntype = type(node)
            return lambda values: ntype(*(p(values) for p in tparts))
        if isinstance(node, (list, tuple)):
            lparts = [walk(v) for v in node]
            seq_type = type(node)
            return lambda values: seq_type(p(values) for p in lparts)
        raise TypeError(type(node).__name__)

    rebuild = walk(structure)
    return leaves, rebuild
