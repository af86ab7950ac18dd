"""Run-time checks every kernel gets, whatever rule lowered it.

``guard_integer_power`` adds the fault NumPy raises for an integer raised to a negative integer
power ("Integers to negative integer powers are not allowed.") to any kernel that computes one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from graphc.ir.tensor import Tensor
from graphc.lower.builder import LoweringContext
from graphc.lower.loopir import (
    AccInit,
    AccSet,
    AccUpdate,
    Check,
    Const,
    Expr,
    IBin,
    IValue,
    Load,
    Loop,
    ScalarOp,
    Stmt,
    Store,
)

NEGATIVE_POWER = "ValueError: Integers to negative integer powers are not allowed."
"""The reference's message (NumPy's) for an integer raised to a negative integer power."""


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


def guard_integer_power(body: list[Stmt], node: Tensor, ctx: LoweringContext) -> list[Stmt]:
    """``body`` (of ``node``'s kernel) with a fault check before each statement computing a signed-integer
    power: a negative exponent is a run-time ``ExecutionError``, as in the reference.  The fault names
    ``node``'s first integer power (the node itself, or the first one inside a fused kernel)."""
    inner = node.attrs["kernel"].body if node.op == "fused" else (node,)
    culprit = next((n for n in inner if n.op == "power" and n.inputs[0].dtype.kind == "i"), None)
    if culprit is None:
        return body
    code = len(ctx.faults) + 1
    guarded, found = _guard(body, code)
    if not found:
        return body
    ctx.fault(culprit, NEGATIVE_POWER)
    return guarded


__all__ = ["NEGATIVE_POWER", "guard_integer_power"]
