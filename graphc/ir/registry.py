"""The op registry: every op is one :class:`OpDef` registration block.

An OpDef holds the op's name, its family, its shape/dtype rule (``infer``) and its NumPy
reference implementation (``reference``).  Later layers add to the same block: the gradient rule
(``grad``) and, for elementwise ops, a scalar lowering.  ``tests/test_registry.py`` walks the
registry and fails when an op lacks a rule it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphc.ir.shapes import Shape


@dataclass(frozen=True)
class AbstractValue:
    """What is known about a tensor before it runs: dtype, static shape, and weak typing.

    Only constants made from bare Python scalars are weak (NumPy 2's rule); every op's result is
    strongly typed, which ``make_node`` enforces.
    """

    dtype: np.dtype
    shape: Shape
    weak: bool = False
    parts: tuple[AbstractValue, ...] | None = None  # each output of a multi-output fused kernel


InferRule = Callable[..., AbstractValue]
"""``infer(input_avals: Sequence[AbstractValue], **attrs) -> AbstractValue``"""

ReferenceImpl = Callable[..., Any]
"""``reference(*input_arrays, **attrs) -> np.ndarray`` (``None`` for ops without a value)"""

GradRule = Callable[..., Sequence[Any]]
"""``grad(node, g) -> [gradient or None for each input]``: the vector-Jacobian product of ``node``
given ``g``, the gradient with respect to its output.  Written with ordinary graph ops, so
gradients can themselves be differentiated.  For elementwise ops an entry may have the broadcast
shape; autodiff sums it back to the input's shape."""


@dataclass(frozen=True)
class Reduction:
    """How a reduction op folds its elements: the facts fusion and lowering read from its block.

    ``combine``: the binary elementwise op folding one element into the accumulator (``None`` for a
    reduction lowered whole by a rule of its own, such as logsumexp); ``identity(dtype)``: the
    accumulator's start value; ``mean``: the result is divided by the number of elements folded.
    Every op with a ``Reduction`` may be the root of a fused reduction kernel."""

    combine: str | None
    identity: Callable[[np.dtype], Any] | None = None
    mean: bool = False


@dataclass(frozen=True)
class OpDef:
    """One op: everything the compiler needs to know about it, in one place."""

    name: str
    family: str  # "source", "elementwise", "reduce", "shape", "linalg", "nn", "state"
    infer: InferRule
    reference: ReferenceImpl
    num_inputs: int | None  # None: variadic
    differentiable: bool = True  # passes gradients to its inputs (sources have none: False)
    grad: GradRule | None = None  # required when differentiable
    stateful: bool = False  # running it changes a Variable
    produces_value: bool = True  # False for ``group``: fetching it yields None
    doc: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # family-specific data (e.g. the NumPy ufunc)
    reduction: Reduction | None = None  # a reduction's fold (fusion roots a kernel at it)
    epilogue_kind: str | None = None  # the kernel kind an elementwise epilogue fused into this op makes
    uses_gemm: bool = False  # lowered to matrix products (backends link their GEMM for it)
    # when the output holds the input's elements unchanged in row-major order, so that lowering may give it
    # the input's buffer instead of copying: "always" (reshapes) or "same shape" (identity when the concrete
    # output shape is the input's: sum_to, broadcasts)
    data_unchanged: str | None = None


REGISTRY: dict[str, OpDef] = {}

DATA_UNCHANGED = (None, "always", "same shape")  # the values of OpDef.data_unchanged

FAMILIES = ("source", "elementwise", "reduce", "shape", "linalg", "nn", "state", "kernel", "control")


def register(op: OpDef) -> OpDef:
    """Add an op to the registry; registering a name twice is a bug in graphc."""
    if op.name in REGISTRY:
        raise RuntimeError(f"op {op.name!r} is registered twice")
    if op.family not in FAMILIES:
        raise RuntimeError(f"op {op.name!r} has unknown family {op.family!r}")
    if op.data_unchanged not in DATA_UNCHANGED:
        raise RuntimeError(f"op {op.name!r}: data_unchanged must be one of {DATA_UNCHANGED}, got {op.data_unchanged!r}")
    REGISTRY[op.name] = op
    return op


def get_op(name: str) -> OpDef:
    return REGISTRY[name]


def ops_in_family(family: str) -> Sequence[OpDef]:
    return [op for op in REGISTRY.values() if op.family == family]
