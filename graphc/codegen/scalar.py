"""Scalar semantics of every elementwise op in LLVM IR, matching NumPy.

``emit(builder, op, args, in_dtype, out_dtype, attrs)`` computes one element.  Everything here
is branch-free (``select``), so loops over it vectorise.  Integer division and modulo follow
Python (floor) semantics and give 0 for a zero divisor, as NumPy does, without the undefined
behaviour LLVM's ``sdiv`` has for it; float floor division and modulo follow NumPy's ``divmod``.
float32 transcendental functions are the inline polynomial versions of ``mathlib.py`` (at most
2 ulp, vectorisable); float64 exp, expm1, log, log1p, tanh, sigmoid and softplus those of
``mathlib64.py`` where the target's math library asks for them (the CPU's: at most 2.5 ulp,
vectorisable), the other float64 ones LLVM intrinsics or the target's math library.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from llvmlite import ir

from graphc.codegen.mathlib import FLOAT32_FUNCTIONS
from graphc.codegen.mathlib64 import FLOAT64_FUNCTIONS
from graphc.codegen.types import I1, constant, value_type
from graphc.errors import ArgumentError


class UnsupportedScalar(ArgumentError):
    """An elementwise op (for this dtype) that code generation does not cover yet."""


def _type_suffix(ty: ir.Type) -> str:
    if isinstance(ty, ir.FloatType):
        return "f32"
    if isinstance(ty, ir.DoubleType):
        return "f64"
    return f"i{ty.width}"


def _intrinsic(builder: ir.IRBuilder, name: str, args: Sequence[ir.Value]) -> ir.Value:
    """Call LLVM intrinsic ``name`` overloaded on its arguments' type (all of one type)."""
    ty = args[0].type
    mangled = f"{name}.{_type_suffix(ty)}"
    module = builder.module
    fn = module.globals.get(mangled) or ir.Function(module, ir.FunctionType(ty, [ty] * len(args)), mangled)
    return builder.call(fn, list(args))


@dataclass(frozen=True)
class MathLibrary:
    """Where a target's transcendental functions come from when codegen has no inline code for them
    (float64 everywhere, and float32 ops mathlib.py does not cover): ``symbol(name, type)`` is the
    external function computing C function ``name`` (``"exp"``, ``"log1p"``...) on values of ``type``,
    or ``None`` to use LLVM's intrinsic ``llvm.<name>`` (which the target lowers itself).  Each backend's
    emitter picks one: the C library for CPUs (``C_MATH``); a GPU backend names its device library.
    ``inline_float64``: the float64 functions of mathlib64.py are emitted inline instead (a CPU's C
    library has no vector versions, so a call per element would keep loops from being vectorised)."""

    name: str
    symbol: Callable[[str, ir.Type], str | None]
    inline_float64: bool = False


_INTRINSIC_ON_CPU = frozenset({"exp", "log", "sin", "cos", "pow"})


def _c_symbol(name: str, ty: ir.Type) -> str | None:
    if name in _INTRINSIC_ON_CPU:
        return None  # LLVM lowers llvm.exp & co. to libm calls (or folds them)
    return name + ("f" if isinstance(ty, ir.FloatType) else "")


C_MATH = MathLibrary("libm", _c_symbol, inline_float64=True)
"""The C library's math functions (``erf``, ``sin``...; ``erff``... for float32), with the inline float64
functions of mathlib64.py in front of it."""


def _math(b: ir.IRBuilder, m: MathLibrary, name: str, args: Sequence[ir.Value]) -> ir.Value:
    """C math function ``name`` of ``args`` (all of one type), as library ``m`` provides it."""
    ty = args[0].type
    symbol = m.symbol(name, ty)
    if symbol is None:
        return _intrinsic(b, f"llvm.{name}", args)
    module = b.module
    fn = module.globals.get(symbol) or ir.Function(module, ir.FunctionType(ty, [ty] * len(args)), symbol)
    return b.call(fn, list(args))


def _f(ty: ir.Type, v: float) -> ir.Constant:
    return ir.Constant(ty, v)


# ---- floats -----------------------------------------------------------------------------------------

def _float_floor_divmod(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> tuple[ir.Value, ir.Value]:
    """NumPy's npy_divmod: (floor(x / y), x mod y with the sign of y)."""
    ty = x.type
    zero = _f(ty, 0.0)
    mod = b.frem(x, y)
    adjust = b.and_(b.fcmp_ordered("!=", mod, zero),
                    b.icmp_unsigned("!=", b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", mod, zero)))
    div = b.fdiv(b.fsub(x, mod), y)
    div = b.select(adjust, b.fsub(div, _f(ty, 1.0)), div)
    mod = b.select(adjust, b.fadd(mod, y), mod)
    mod = b.select(b.fcmp_ordered("==", mod, zero), _intrinsic(b, "llvm.copysign", [zero, y]), mod)
    floored = _intrinsic(b, "llvm.floor", [div])
    floored = b.select(b.fcmp_ordered(">", b.fsub(div, floored), _f(ty, 0.5)), b.fadd(floored, _f(ty, 1.0)), floored)
    floored = b.select(b.fcmp_ordered("==", div, zero), _intrinsic(b, "llvm.copysign", [zero, b.fdiv(x, y)]), floored)
    by_zero = b.fcmp_ordered("==", y, zero)
    return b.select(by_zero, b.fdiv(x, y), floored), mod


def _sigmoid(b: ir.IRBuilder, m: MathLibrary, x: ir.Value) -> ir.Value:
    ty = x.type
    e = _math(b, m, "exp", [b.fneg(_intrinsic(b, "llvm.fabs", [x]))])
    one = _f(ty, 1.0)
    return b.select(b.fcmp_ordered(">=", x, _f(ty, 0.0)), b.fdiv(one, b.fadd(one, e)), b.fdiv(e, b.fadd(one, e)))


def _softplus(b: ir.IRBuilder, m: MathLibrary, x: ir.Value) -> ir.Value:
    ty = x.type
    tail = _math(b, m, "log1p", [_math(b, m, "exp", [b.fneg(_intrinsic(b, "llvm.fabs", [x]))])])
    positive = b.select(b.fcmp_ordered(">", x, _f(ty, 0.0)), x, _f(ty, 0.0))
    return b.select(b.fcmp_unordered("uno", x, x), x, b.fadd(positive, tail))


def _sign_float(b: ir.IRBuilder, m: MathLibrary, x: ir.Value) -> ir.Value:
    """1, -1, +0.0 for either zero (NumPy's sign(-0.0) is 0.0), nan for nan."""
    ty = x.type
    zero = _f(ty, 0.0)
    return b.select(b.fcmp_ordered(">", x, zero), _f(ty, 1.0),
                    b.select(b.fcmp_ordered("<", x, zero), _f(ty, -1.0),
                             b.select(b.fcmp_ordered("==", x, zero), zero, x)))


_FLOAT_UNARY: dict[str, Callable[[ir.IRBuilder, MathLibrary, ir.Value], ir.Value]] = {
    "neg": lambda b, m, x: b.fneg(x),
    "abs": lambda b, m, x: _intrinsic(b, "llvm.fabs", [x]),
    "sign": _sign_float,
    "exp": lambda b, m, x: _math(b, m, "exp", [x]),
    "expm1": lambda b, m, x: _math(b, m, "expm1", [x]),
    "log": lambda b, m, x: _math(b, m, "log", [x]),
    "log1p": lambda b, m, x: _math(b, m, "log1p", [x]),
    "sqrt": lambda b, m, x: _intrinsic(b, "llvm.sqrt", [x]),
    "rsqrt": lambda b, m, x: b.fdiv(_f(x.type, 1.0), _intrinsic(b, "llvm.sqrt", [x])),
    "square": lambda b, m, x: b.fmul(x, x),
    "reciprocal": lambda b, m, x: b.fdiv(_f(x.type, 1.0), x),
    "sin": lambda b, m, x: _math(b, m, "sin", [x]),
    "cos": lambda b, m, x: _math(b, m, "cos", [x]),
    "tanh": lambda b, m, x: _math(b, m, "tanh", [x]),
    "sigmoid": _sigmoid,
    "relu": lambda b, m, x: b.select(b.fcmp_ordered("<", x, _f(x.type, 0.0)), _f(x.type, 0.0), x),
    "softplus": _softplus,
    "erf": lambda b, m, x: _math(b, m, "erf", [x]),
    "floor": lambda b, m, x: _intrinsic(b, "llvm.floor", [x]),
    "ceil": lambda b, m, x: _intrinsic(b, "llvm.ceil", [x]),
    "round": lambda b, m, x: _intrinsic(b, "llvm.roundeven", [x]),
    "stop_gradient": lambda b, m, x: x,
}

_FLOAT_BINARY: dict[str, Callable[[ir.IRBuilder, MathLibrary, ir.Value, ir.Value], ir.Value]] = {
    "add": lambda b, m, x, y: b.fadd(x, y),
    "subtract": lambda b, m, x, y: b.fsub(x, y),
    "multiply": lambda b, m, x, y: b.fmul(x, y),
    "divide": lambda b, m, x, y: b.fdiv(x, y),
    "floor_divide": lambda b, m, x, y: _float_floor_divmod(b, x, y)[0],
    "mod": lambda b, m, x, y: _float_floor_divmod(b, x, y)[1],
    "power": lambda b, m, x, y: _math(b, m, "pow", [x, y]),
    "maximum": lambda b, m, x, y: _intrinsic(b, "llvm.maximum", [x, y]),
    "minimum": lambda b, m, x, y: _intrinsic(b, "llvm.minimum", [x, y]),
    "sigmoid_cross_entropy": lambda b, m, x, z: b.fadd(
        b.fsub(b.select(b.fcmp_ordered(">", x, _f(x.type, 0.0)), x, _f(x.type, 0.0)), b.fmul(x, z)),
        _math(b, m, "log1p", [_math(b, m, "exp", [b.fneg(_intrinsic(b, "llvm.fabs", [x]))])])),
}

_FLOAT_COMPARE = {"equal": "==", "less": "<", "less_equal": "<=", "greater": ">", "greater_equal": ">="}


# ---- integers ---------------------------------------------------------------------------------------

def _int_floor_divmod(b: ir.IRBuilder, x: ir.Value, y: ir.Value, signed: bool) -> tuple[ir.Value, ir.Value]:
    """Python floor division and modulo; 0 for a zero divisor (NumPy), no undefined behaviour."""
    ty = x.type
    zero, one = ir.Constant(ty, 0), ir.Constant(ty, 1)
    by_zero = b.icmp_unsigned("==", y, zero)
    if not signed:
        safe = b.select(by_zero, one, y)
        return b.select(by_zero, zero, b.udiv(x, safe)), b.select(by_zero, zero, b.urem(x, safe))
    minus_one = b.icmp_signed("==", y, ir.Constant(ty, -1))  # MIN // -1 overflows: NumPy wraps to MIN
    safe = b.select(b.or_(by_zero, minus_one), one, y)
    q, r = b.sdiv(x, safe), b.srem(x, safe)
    adjust = b.and_(b.icmp_signed("!=", r, zero), b.icmp_unsigned("!=", b.icmp_signed("<", r, zero),
                                                                b.icmp_signed("<", y, zero)))
    q = b.select(adjust, b.sub(q, one), q)
    r = b.select(adjust, b.add(r, y), r)
    q = b.select(minus_one, b.sub(zero, x), q)
    r = b.select(minus_one, zero, r)
    return b.select(by_zero, zero, q), b.select(by_zero, zero, r)


def _int_power(b: ir.IRBuilder, x: ir.Value, y: ir.Value, signed: bool) -> ir.Value:
    """``x ** y`` wrapping like NumPy (the product modulo 2**bits does not depend on the order of the
    multiplications), by square-and-multiply.  A constant exponent is unrolled over its bits (branch-free,
    so ``x ** 3`` vectorises); otherwise a small loop runs until no bit of ``y`` is left (a loop compiles
    much faster than 63 unrolled steps).  A negative exponent is a fault the lowering checks for (see
    lower/checks.py); the value computed for one is unspecified."""
    ty = x.type
    one = ir.Constant(ty, 1)
    if isinstance(y, ir.Constant) and isinstance(y.constant, int):
        exponent = y.constant % (1 << ty.width)
        result, base = one, x
        while exponent:
            if exponent & 1:
                result = b.mul(result, base)
            exponent >>= 1
            if exponent:
                base = b.mul(base, base)
        return result
    before = b.block
    loop = b.function.append_basic_block("ipow.loop")
    done = b.function.append_basic_block("ipow.done")
    b.branch(loop)
    b.position_at_end(loop)
    result, base, rest = b.phi(ty), b.phi(ty), b.phi(ty)
    new_result = b.select(b.trunc(rest, I1), b.mul(result, base), result)
    new_base, new_rest = b.mul(base, base), b.lshr(rest, one)
    for phi, start, step in ((result, one, new_result), (base, x, new_base), (rest, y, new_rest)):
        phi.add_incoming(start, before)
        phi.add_incoming(step, loop)
    b.cbranch(b.icmp_unsigned("!=", new_rest, ir.Constant(ty, 0)), loop, done)
    b.position_at_end(done)
    return new_result


def _int_reciprocal(b: ir.IRBuilder, x: ir.Value, signed: bool) -> ir.Value:
    """NumPy's integer reciprocal, ``(T)(1.0 / x)``: 1 for 1, -1 for -1, 0 for any other nonzero ``x``.
    For 0 it converts inf, which x86-64 does as NumPy's build does: the type's minimum for 32- and
    64-bit integers, 0 for narrower ones (converted through int32, then truncated)."""
    ty = x.type
    zero, one = ir.Constant(ty, 0), ir.Constant(ty, 1)
    result = b.select(b.icmp_unsigned("==", x, one), one, zero)
    if signed:
        minus_one = ir.Constant(ty, -1)
        result = b.select(b.icmp_signed("==", x, minus_one), minus_one, result)
        if ty.width >= 32:
            result = b.select(b.icmp_signed("==", x, zero), ir.Constant(ty, -(1 << (ty.width - 1))), result)
    return result


def _int_ops(signed: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    cmp = "icmp_signed" if signed else "icmp_unsigned"

    def icmp(b: ir.IRBuilder, op: str, x: ir.Value, y: ir.Value) -> ir.Value:
        return getattr(b, cmp)(op, x, y)

    unary = {
        "neg": lambda b, x: b.sub(ir.Constant(x.type, 0), x),
        "abs": lambda b, x: b.select(icmp(b, "<", x, ir.Constant(x.type, 0)), b.sub(ir.Constant(x.type, 0), x), x)
        if signed else x,
        "sign": lambda b, x: b.select(icmp(b, ">", x, ir.Constant(x.type, 0)), ir.Constant(x.type, 1),
                                      b.select(icmp(b, "<", x, ir.Constant(x.type, 0)), ir.Constant(x.type, -1),
                                               ir.Constant(x.type, 0))),
        "square": lambda b, x: b.mul(x, x),
        "reciprocal": lambda b, x: _int_reciprocal(b, x, signed),
        "relu": lambda b, x: b.select(icmp(b, "<", x, ir.Constant(x.type, 0)), ir.Constant(x.type, 0), x),
        "floor": lambda b, x: x, "ceil": lambda b, x: x, "round": lambda b, x: x, "stop_gradient": lambda b, x: x,
    }
    binary = {
        "add": lambda b, x, y: b.add(x, y),
        "subtract": lambda b, x, y: b.sub(x, y),
        "multiply": lambda b, x, y: b.mul(x, y),
        "power": lambda b, x, y: _int_power(b, x, y, signed),
        "floor_divide": lambda b, x, y: _int_floor_divmod(b, x, y, signed)[0],
        "mod": lambda b, x, y: _int_floor_divmod(b, x, y, signed)[1],
        "maximum": lambda b, x, y: b.select(icmp(b, ">=", x, y), x, y),
        "minimum": lambda b, x, y: b.select(icmp(b, "<=", x, y), x, y),
    }
    return unary, binary


_SIGNED = _int_ops(True)
_UNSIGNED = _int_ops(False)
_INT_COMPARE = {"equal": "==", "not_equal": "!=", "less": "<", "less_equal": "<=", "greater": ">",
                "greater_equal": ">="}


# ---- casts and logic ----------------------------------------------------------------------------------

def cast(b: ir.IRBuilder, x: ir.Value, source: np.dtype, target: np.dtype) -> ir.Value:
    """NumPy ``astype`` semantics (see the float -> int note below)."""
    source, target = np.dtype(source), np.dtype(target)
    to = value_type(target)
    if source == target:
        return x
    if target.kind == "b":
        if source.kind == "f":
            return b.fcmp_unordered("!=", x, ir.Constant(x.type, 0.0))
        return b.icmp_unsigned("!=", x, ir.Constant(x.type, 0))
    if source.kind == "b":
        return b.uitofp(x, to) if target.kind == "f" else b.zext(x, to)
    if source.kind == "f" and target.kind == "f":
        return b.fpext(x, to) if target.itemsize > source.itemsize else b.fptrunc(x, to)
    if source.kind == "f":
        # NumPy's C cast converts to int64 (for int64) or int32 (for every narrower type) and keeps the
        # low bits (300.0 -> int8 44, -46.0 -> uint8 210).  Out of that range, and for nan, the result
        # is the platform's: x86-64's "integer indefinite" (INT_MIN, so 0 after narrowing) or, on other
        # CPUs (AArch64), saturation with nan -> 0.  Both are reproduced without undefined behaviour.
        bits = 64 if to.width == 64 else 32
        wide = ir.IntType(bits)
        name = f"llvm.fptosi.sat.i{bits}.{_type_suffix(x.type)}"
        fn = b.module.globals.get(name) or ir.Function(b.module, ir.FunctionType(wide, [x.type]), name)
        converted = b.call(fn, [x])
        if b.module.triple.startswith(("x86_64", "i386", "i686")):
            limit = float(2 ** (bits - 1))
            inside = b.and_(b.fcmp_ordered(">=", x, ir.Constant(x.type, -limit)),
                            b.fcmp_ordered("<", x, ir.Constant(x.type, limit)))
            converted = b.select(inside, converted, ir.Constant(wide, -(2 ** (bits - 1))))
        return converted if to.width == bits else b.trunc(converted, to)
    if target.kind == "f":
        return b.sitofp(x, to) if source.kind == "i" else b.uitofp(x, to)
    if target.itemsize < source.itemsize:
        return b.trunc(x, to)
    if target.itemsize > source.itemsize:
        return b.sext(x, to) if source.kind == "i" else b.zext(x, to)
    return x  # int8 <-> uint8: the same bits


def _truth(b: ir.IRBuilder, x: ir.Value, dtype: np.dtype) -> ir.Value:
    return cast(b, x, dtype, np.dtype(bool))


def emit(b: ir.IRBuilder, op: str, args: Sequence[ir.Value], in_dtype: np.dtype, out_dtype: np.dtype,
         attrs: dict[str, Any], math_library: MathLibrary = C_MATH) -> ir.Value:
    """One element of elementwise ``op`` applied to ``args`` (computed values of dtype ``in_dtype``);
    functions without inline code come from ``math_library``."""
    in_dtype, out_dtype = np.dtype(in_dtype), np.dtype(out_dtype)
    kind = in_dtype.kind
    if op == "cast":
        return cast(b, args[0], in_dtype, attrs["dtype"])
    if op == "where":
        return b.select(args[0], args[1], args[2])
    if op in ("logical_and", "logical_or"):
        x, y = (_truth(b, a, in_dtype) for a in args)
        return b.and_(x, y) if op == "logical_and" else b.or_(x, y)
    if op == "logical_not":
        return b.xor(_truth(b, args[0], in_dtype), ir.Constant(I1, 1))
    if op == "isnan":
        return b.fcmp_unordered("uno", args[0], args[0]) if kind == "f" else ir.Constant(I1, 0)
    if op == "isfinite":
        if kind != "f":
            return ir.Constant(I1, 1)
        return b.fcmp_ordered("<", _intrinsic(b, "llvm.fabs", [args[0]]), ir.Constant(args[0].type, math.inf))
    if in_dtype == np.float32 and op in FLOAT32_FUNCTIONS:  # inline polynomial versions (codegen/mathlib.py)
        return FLOAT32_FUNCTIONS[op](b, *args)
    if in_dtype == np.float64 and math_library.inline_float64 and op in FLOAT64_FUNCTIONS:
        return FLOAT64_FUNCTIONS[op](b, *args)
    if kind == "f":
        if op in _FLOAT_UNARY:
            return _FLOAT_UNARY[op](b, math_library, args[0])
        if op in _FLOAT_BINARY:
            return _FLOAT_BINARY[op](b, math_library, *args)
        if op in _FLOAT_COMPARE:
            return b.fcmp_ordered(_FLOAT_COMPARE[op], *args)
        if op == "not_equal":
            return b.fcmp_unordered("!=", *args)
    elif kind in "iu":
        unary, binary = _SIGNED if kind == "i" else _UNSIGNED
        if op in unary:
            return unary[op](b, args[0])
        if op in binary:
            return binary[op](b, *args)
        if op in _INT_COMPARE:
            cmp = b.icmp_signed if kind == "i" else b.icmp_unsigned
            return cmp(_INT_COMPARE[op], *args)
    elif kind == "b":
        if op in _INT_COMPARE:
            return b.icmp_unsigned(_INT_COMPARE[op], *args)
        if op in ("add", "maximum"):
            return b.or_(*args)
        if op in ("multiply", "minimum"):
            return b.and_(*args)
        if op in ("abs", "stop_gradient", "floor", "ceil"):
            return args[0]
    raise UnsupportedScalar(f"op {op} on {in_dtype.name} has no scalar code generation yet "
                            "(use device='reference')")


def constant_value(dtype: np.dtype, value: object) -> ir.Constant:
    return constant(dtype, value)


__all__ = ["C_MATH", "MathLibrary", "UnsupportedScalar", "cast", "constant_value", "emit"]
