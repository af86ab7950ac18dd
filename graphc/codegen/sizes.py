"""Run-time sizes in LLVM IR: a loop extent, stride or buffer size that is a ``SymInt`` (a polynomial of
run-time dimensions, in ahead-of-time code) evaluated from the dimensions' values."""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from graphc.codegen.types import I64
from graphc.ir.symbolic import Size, is_symbolic

Arithmetic = Callable[[str, ir.Value, ir.Value], ir.Value]
"""``arithmetic(op, a, b)`` with op ``"add"`` or ``"mul"``: how :func:`emit_size` combines values."""


def emit_size(b: ir.IRBuilder, value: Size, dim: Callable[[int], ir.Value],
              arithmetic: Arithmetic | None = None) -> ir.Value:
    """``value`` as an i64: a constant, or a SymInt's polynomial over the run-time sizes
    ``dim(symbol)``, combined by ``arithmetic`` (default: ``nsw`` adds and multiplies, which kernels
    may assume since the ABI checked every size for overflow)."""
    if not is_symbolic(value):
        return ir.Constant(I64, value)
    if arithmetic is None:
        def arithmetic(op: str, x: ir.Value, y: ir.Value) -> ir.Value:
            return getattr(b, op)(x, y, flags=["nsw"])
    total: ir.Value | None = None
    for monomial, coefficient in value.terms:  # type: ignore[union-attr]
        term: ir.Value | None = ir.Constant(I64, coefficient) if coefficient != 1 or not monomial else None
        for symbol in monomial:
            term = dim(symbol) if term is None else arithmetic("mul", term, dim(symbol))
        total = term if total is None else arithmetic("add", total, term)
    assert total is not None
    return total


__all__ = ["Arithmetic", "emit_size"]
