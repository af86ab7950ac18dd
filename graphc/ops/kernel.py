"""Fused kernels: a ``fused`` node runs a whole subgraph (a :class:`Kernel`) as one unit.

The fuse phase builds them; the reference backend interprets the kernel's inner graph, and the
compiled backends turn it into one loop nest.  A kernel's inner graph reads its inputs through
``parameter`` nodes.  A kernel with several outputs yields a tuple, read by ``kernel_output`` nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphc.errors import ArgumentError, DTypeError, GraphError, ShapeError
from graphc.ir.body import Body
from graphc.ir.graph import topological_order
from graphc.ir.interpret import evaluate
from graphc.ir.registry import AbstractValue, OpDef, register
from graphc.ir.tensor import Tensor

KERNEL_KINDS = ("elementwise", "reduction", "matmul_epilogue", "conv2d_epilogue")


@dataclass(frozen=True, eq=False)
class Kernel:
    """The subgraph one fused node runs: ``parameter`` nodes in, ``outputs`` out.

    ``kind`` says what was fused: an elementwise chain, a reduction with the elementwise work
    feeding it, or the elementwise epilogue of a matmul / conv2d.
    """

    params: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    kind: str
    nodes: tuple[Tensor, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.kind not in KERNEL_KINDS:
            raise RuntimeError(f"unknown kernel kind {self.kind!r}")
        object.__setattr__(self, "nodes", tuple(topological_order(self.outputs)))

    @property
    def body(self) -> tuple[Tensor, ...]:
        """The inner nodes that compute something (everything but the parameters)."""
        return tuple(n for n in self.nodes if n.op != "parameter")

    def __repr__(self) -> str:
        ops = ", ".join(n.op for n in self.body)
        return f"<Kernel {self.kind}: {ops}>"


def _infer_parameter(inputs: Sequence[AbstractValue], *, index: int, dtype: np.dtype, shape: tuple,
                     weak: bool = False) -> AbstractValue:
    return AbstractValue(dtype, shape, weak)


def _bound_by_kernel(*_: Any, **__: Any) -> Any:
    raise RuntimeError("kernel parameters are bound by the fused node that runs the kernel")


register(OpDef("parameter", "source", _infer_parameter, _bound_by_kernel, num_inputs=0, differentiable=False,
               doc="input number `index` of a fused kernel's or a control-flow body's inner graph (`weak`: it stands "
                   "for a bare Python number)"))


def inner_avals(kernel: Kernel, inputs: Sequence[AbstractValue]) -> dict[int, AbstractValue]:
    """The abstract value of every inner node when the kernel's inputs are ``inputs``."""
    from graphc.ir.build import annotate

    avals: dict[int, AbstractValue] = {}
    for node in kernel.nodes:
        if node.op == "parameter":
            avals[node.id] = inputs[node.attrs["index"]]
            continue
        try:
            avals[node.id] = node.opdef.infer([avals[i.id] for i in node.inputs], **node.attrs)
        except (ShapeError, DTypeError, ArgumentError) as exc:
            # report the op the user wrote, at the user's line, not the kernel around it
            raise annotate(exc, node.op, node.inputs, node.location) from None
    return avals


def _infer_fused(inputs: Sequence[AbstractValue], *, kernel: Kernel) -> AbstractValue:
    avals = inner_avals(kernel, inputs)
    outs = tuple(avals[o.id] for o in kernel.outputs)
    first = outs[0]
    return AbstractValue(first.dtype, first.shape, parts=outs if len(outs) > 1 else None)


def run_kernel(kernel: Kernel, arrays: Sequence[np.ndarray]) -> np.ndarray | tuple[np.ndarray, ...]:
    """The kernel's outputs for input ``arrays``, evaluated op by op with the NumPy references."""
    avals = inner_avals(kernel, [AbstractValue(a.dtype, a.shape) for a in arrays])
    sources = {p.id: arrays[p.attrs["index"]] for p in kernel.params}
    values = evaluate(kernel.nodes, avals, sources, {o.id for o in kernel.outputs})
    outs = tuple(values[o.id] for o in kernel.outputs)
    return outs if len(outs) > 1 else outs[0]  # type: ignore[return-value]


def _fused_reference(*arrays: np.ndarray, kernel: Kernel) -> Any:
    return run_kernel(kernel, arrays)


def _no_gradient_of_optimised_graphs(node: Tensor, g: Tensor) -> list[Any]:
    raise GraphError("cannot differentiate an optimised graph (it contains fused kernels); "
                     "take gradients of the graph you built, before optimising it")


register(OpDef("fused", "kernel", _infer_fused, _fused_reference, num_inputs=None,
               grad=_no_gradient_of_optimised_graphs,
               doc="a fused kernel: runs the subgraph in attrs['kernel'] as one unit"))


def _infer_kernel_output(inputs: Sequence[AbstractValue], *, index: int, kernel: Kernel) -> AbstractValue:
    parts = inputs[0].parts
    return parts[index] if parts is not None else kernel.outputs[index].aval


register(OpDef("kernel_output", "kernel", _infer_kernel_output, lambda outs, *, index, kernel: outs[index],
               num_inputs=1, grad=_no_gradient_of_optimised_graphs,
               doc="output `index` of a fused kernel with several outputs"))


def kernel_inputs(node: Tensor) -> Mapping[int, Tensor]:
    """For a fused node: parameter node id -> the outer tensor it stands for."""
    kernel: Kernel = node.attrs["kernel"]
    return {p.id: node.inputs[p.attrs["index"]] for p in kernel.params}


def nested_nodes(node: Tensor) -> list[Tensor]:
    """The nodes of the graphs inside ``node`` (a fused kernel's, a loop's or a conditional's bodies), in
    the order of its attributes' names: what a position inside ``node`` refers to."""
    nodes: list[Tensor] = []
    for name in sorted(node.attrs):
        value = node.attrs[name]
        if isinstance(value, (Body, Kernel)):
            nodes.extend(value.nodes)
    return nodes


__all__ = ["KERNEL_KINDS", "Kernel", "inner_avals", "kernel_inputs", "nested_nodes", "run_kernel"]
