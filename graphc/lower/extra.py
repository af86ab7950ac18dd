"""The ops lowered outside lowering.py, and the run-time check integer ``power`` needs.

``lower_other`` fills in the kernel of a node whose op lowering.py does not handle itself: the
index maps of lowering_shape.py (pad, pad_grad, concat, concat_part, slice_grad) and the
convolutions and pools of lowering_nn.py.  Anything else is refused with ``Unsupported``.
``logsumexp_statements`` lowers a fused reduction kernel whose root is ``logsumexp``.

``guard_integer_power`` adds the fault NumPy raises for an integer raised to a negative integer
power ("Integers to negative integer powers are not allowed.") to any kernel that computes one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from graphc.ir.registry import AbstractValue
from graphc.ir.tensor import Tensor
from graphc.lower.loopir import (
    STATUS,
    AccInit,
    AccSet,
    AccUpdate,
    BufferSpec,
    Check,
    Const,
    Expr,
    IBin,
    IndexExpr,
    IValue,
    IVar,
    Load,
    Loop,
    LoopKernel,
    ScalarOp,
    Stmt,
    Store,
)
from graphc.lower.lowering import (
    Unsupported,
    _index,
    _loop_nest,
    _merge_index,
    _Names,
    _row_log_partition,
    cast_to,
    row_major_strides,
)
from graphc.lower.lowering_nn import NN_LOWERINGS
from graphc.lower.lowering_shape import SHAPE_LOWERINGS

NEGATIVE_POWER = "ValueError: Integers to negative integer powers are not allowed."
"""The reference's message (NumPy's) for an integer raised to a negative integer power."""


def lower_other(node: Tensor, avals: Mapping[int, AbstractValue], names: _Names, kernel: LoopKernel) -> None:
    """Fill ``kernel`` (its params already list the node's inputs and output) for ``node``."""
    if node.op in SHAPE_LOWERINGS:
        kernel.body = SHAPE_LOWERINGS[node.op](node, avals, names)
    elif node.op in NN_LOWERINGS:
        kernel.body, kernel.scratch = NN_LOWERINGS[node.op](node, avals, names)
        kernel.params += kernel.scratch
    else:
        raise Unsupported(f"op {node.op} is not supported on device 'cpu' yet (use device='reference')")
    if has_check(kernel.body) and all(p.name != STATUS for p in kernel.params):
        kernel.params.append(BufferSpec(STATUS, np.dtype(np.int64), 1))


def logsumexp_statements(axes: Sequence[int], dtype: np.dtype, out_buffer: str, in_shape: Sequence[int],
                         value: Callable[[list[IndexExpr]], Expr], names: _Names) -> list[Stmt]:
    """Loops storing logsumexp over ``axes`` of ``value`` (an expression of the full input index, e.g. a
    fused kernel's elementwise work): per row, m = max (0 if not finite) and log(sum(exp(x - m))) + m,
    as the reference computes it; the kept axes are stored in order, row-major."""
    kept = [d for d in range(len(in_shape)) if d not in axes]
    out_strides = row_major_strides([in_shape[d] for d in kept])

    def outer(outer_vars: list[IVar]) -> list[Stmt]:
        def load(inner_vars: list[IVar]) -> Expr:
            return cast_to(value(_merge_index(len(in_shape), kept, outer_vars, axes, inner_vars)), dtype)

        stmts, m, total = _row_log_partition(names, [in_shape[d] for d in axes], load, dtype)
        result = ScalarOp("add", (m, ScalarOp("log", (total,), dtype, dtype)), dtype, dtype)
        return [*stmts, Store(out_buffer, _index(outer_vars, out_strides), result)]

    return _loop_nest([in_shape[d] for d in kept], names, outer, parallel=True)


def has_check(body: Sequence[Stmt]) -> bool:
    """Whether ``body`` (at any depth) contains a ``Check``."""
    return any(isinstance(s, Check) or (isinstance(s, Loop) and has_check(s.body)) for s in body)


# ---- integer power ------------------------------------------------------------------------------------

def _signed_power_exponents(e: Any) -> Iterator[Expr]:
    """The exponents of every signed-integer ``power`` inside expression ``e`` (index values included)."""
    if isinstance(e, ScalarOp):
        if e.op == "power" and e.in_dtype.kind == "i":
            yield e.args[1]
        for a in e.args:
            yield from _signed_power_exponents(a)
    elif isinstance(e, Load):
        yield from _signed_power_exponents(e.index)
    elif isinstance(e, IValue):
        yield from _signed_power_exponents(e.value)
    elif isinstance(e, IBin):
        yield from _signed_power_exponents(e.a)
        yield from _signed_power_exponents(e.b)


def _exprs(s: Stmt) -> list[Any]:
    if isinstance(s, Store):
        return [s.index, s.value]
    if isinstance(s, AccInit):
        return [s.init]
    if isinstance(s, AccSet | AccUpdate):
        return [s.value]
    if isinstance(s, Check):
        return [s.ok]
    return []


def _guard(body: Sequence[Stmt], code: int) -> tuple[list[Stmt], bool]:
    out: list[Stmt] = []
    found = False
    for s in body:
        if isinstance(s, Loop):
            inner, hit = _guard(s.body, code)
            found |= hit
            out.append(replace(s, body=tuple(inner)) if hit else s)
            continue
        for exponent in dict.fromkeys(x for e in _exprs(s) for x in _signed_power_exponents(e)):
            dtype = exponent.dtype
            out.append(Check(ScalarOp("greater_equal", (exponent, Const(0, dtype)), dtype, np.dtype(bool)), code))
            found = True
        out.append(s)
    return out, found


def guard_integer_power(kernel: LoopKernel, node: Tensor, names: _Names) -> LoopKernel:
    """``kernel`` with a fault check before each statement computing a signed-integer power: a negative
    exponent is a run-time ``ExecutionError``, as in the reference.  The fault names ``node``'s first
    integer power (the node itself, or the first one inside a fused kernel)."""
    inner = node.attrs["kernel"].body if node.op == "fused" else (node,)
    culprit = next((n for n in inner if n.op == "power" and n.inputs[0].dtype.kind == "i"), None)
    if culprit is None:
        return kernel
    code = len(names.faults) + 1
    body, found = _guard(kernel.body, code)
    if not found:
        return kernel
    names.fault(culprit, NEGATIVE_POWER)
    kernel.body = body
    if all(p.name != STATUS for p in kernel.params):
        kernel.params.append(BufferSpec(STATUS, np.dtype(np.int64), 1))
    return kernel


__all__ = ["NEGATIVE_POWER", "guard_integer_power", "has_check", "logsumexp_statements", "lower_other"]
