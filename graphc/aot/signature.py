"""The run-time signature of an ahead-of-time compiled graph: its dimensions, inputs and outputs.

Every ``None`` dimension of an input starts as its own symbol.  Shape inference then runs with
symbolic sizes (ir/symbolic.py) over the graph as the user built it and over the optimised graph;
where the shape rules need two sizes to be equal (broadcasting, a matmul's inner dimension, the
labels of a cross-entropy) the symbols are merged, and where a rule pins a symbol to a constant the
dimension is static after all.  The symbols left are the run-time dimensions ``dims[0..n)`` of the
C ABI, numbered in the order they first appear in the inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graphc.errors import ArgumentError, DTypeError, ShapeError
from graphc.ir.build import annotate
from graphc.ir.registry import AbstractValue
from graphc.ir.symbolic import DynamicDimError, Restart, Size, SymInt, Unifier, substitute, unifying
from graphc.ir.tensor import Tensor
from graphc.runtime.program import infer_all


@dataclass(frozen=True)
class TensorSpec:
    """An input or output as the C ABI sees it: a name, a dtype and a shape over the dims."""

    name: str
    dtype: np.dtype
    shape: tuple[Size, ...]


@dataclass(frozen=True)
class Signature:
    dims: tuple[tuple[str, ...], ...]  # for each run-time dimension: where it appears ("x.shape[0]")
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    avals: dict[int, AbstractValue]  # every node of the optimised graph


def infer_signature(inputs: Sequence[Tensor], outputs: Sequence[Tensor], built_nodes: Sequence[Tensor],
                    nodes: Sequence[Tensor], output_names: Sequence[str]) -> Signature:
    """Symbolic shapes for the optimised ``nodes`` (``built_nodes``: the graph as the user built it,
    whose rules also constrain the dims and name the user's line in errors)."""
    symbols: list[SymInt] = []
    declared: dict[int, tuple[Size, ...]] = {}
    for p in inputs:
        shape: list[Size] = []
        for size in p.shape:
            if size is None:
                symbols.append(SymInt.symbol(len(symbols)))
                shape.append(symbols[-1])
            else:
                shape.append(size)
        declared[p.id] = tuple(shape)

    unifier = Unifier()
    while True:
        try:
            with unifying(unifier):
                _infer(built_nodes, inputs, declared, unifier.mapping)
                _infer(nodes, inputs, declared, unifier.mapping)
            break
        except Restart:
            continue

    # number the symbols left in order of first appearance in the inputs
    renumber: dict[int, Size] = {}
    for p in inputs:
        for size in declared[p.id]:
            value = substitute(size, unifier.mapping)
            if isinstance(value, SymInt):
                symbol = value.as_symbol()
                assert symbol is not None
                renumber.setdefault(symbol, SymInt.symbol(len(renumber)))
    final = {s: substitute(substitute(SymInt.symbol(s), unifier.mapping), renumber) for s in range(len(symbols))}
    avals = _infer(nodes, inputs, declared, final)
    shapes = {p.id: tuple(substitute(size, final) for size in declared[p.id]) for p in inputs}  # used or not
    places: list[list[str]] = [[] for _ in renumber]
    for p in inputs:
        for axis, size in enumerate(shapes[p.id]):
            if isinstance(size, SymInt):
                places[size.as_symbol()].append(f"{p.name}.shape[{axis}]")  # type: ignore[index]
    return Signature(
        dims=tuple(tuple(p) for p in places),
        inputs=tuple(TensorSpec(p.name, p.dtype, shapes[p.id]) for p in inputs),
        outputs=tuple(TensorSpec(name, avals[o.id].dtype, avals[o.id].shape) for name, o in zip(output_names, outputs)),
        avals=avals,
    )


def _infer(nodes: Sequence[Tensor], inputs: Sequence[Tensor], declared: dict[int, tuple[Size, ...]],
           mapping: dict[int, Size]) -> dict[int, AbstractValue]:
    feeds = {p.id: AbstractValue(p.dtype, tuple(substitute(s, mapping) for s in declared[p.id])) for p in inputs}
    try:
        return infer_all(nodes, feeds)
    except (DynamicDimError, ShapeError, DTypeError, ArgumentError) as exc:
        node = getattr(exc, "node", None)
        if node is None:
            raise
        if isinstance(exc, DynamicDimError):
            message = f"ahead-of-time compilation needs a static size here: {exc}"
        else:
            message = f"{exc} (with the run-time dimensions of the inputs as symbols d0, d1, ...)"
        raise annotate(type(exc)(message), node.op, node.inputs, node.location) from None
    except TypeError as exc:  # a rule used a run-time size as a Python int
        raise ShapeError(f"ahead-of-time compilation needs static sizes for this graph: {exc}") from None


__all__ = ["Signature", "TensorSpec", "infer_signature"]
