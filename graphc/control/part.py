"""``part``: one output of an op with several (a loop's final states and stacked values, a conditional's
results).  Such an op's value is a tuple; its node's ``parts`` holds each output's abstract value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graphc.errors import GraphError
from graphc.ir.build import make_node
from graphc.ir.registry import AbstractValue, OpDef, register
from graphc.ir.tensor import Tensor


def _infer_part(inputs: Sequence[AbstractValue], *, index: int) -> AbstractValue:
    parts = inputs[0].parts
    if parts is None or not 0 <= index < len(parts):
        raise GraphError(f"part {index} of a value that has {len(parts) if parts else 'no'} parts")
    return parts[index]


def _part_reference(value: tuple[Any, ...], *, index: int) -> Any:
    return value[index]


def _part_grad(node: Tensor, g: Tensor) -> list[Any]:
    raise RuntimeError("graphc internal error: autodiff routes a part's gradient to its source itself")


register(OpDef("part", "control", _infer_part, _part_reference, num_inputs=1, grad=_part_grad,
               doc="output `index` of an op with several outputs (a loop, a conditional)"))


def part(node: Tensor, index: int) -> Tensor:
    """Output ``index`` of multi-output ``node``, named after it."""
    return make_node("part", [node], name=f"{node.name.rsplit('/', 1)[-1]}_out{index}", index=index)


__all__ = ["part"]
