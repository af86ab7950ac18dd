"""Inline float32 transcendental functions for the LLVM CPU backend.

Every ``emit_<name>(builder, x[, y])`` appends straight-line IR computing one float32 function of its
float32 operand(s) (a scalar ``float`` or a ``<N x float>`` vector) and returns the result. The code
has no branches, loops or calls to libm: special cases are handled with ``select``, exponents are
read and built with integer operations on the bit pattern, and the only calls are LLVM intrinsics
that become single instructions (``llvm.fma``, ``llvm.fabs``, ``llvm.copysign``, ``llvm.floor``,
``llvm.fshr``). So a loop that applies one of them elementwise is vectorised by LLVM's loop
vectoriser. Operations carry no fast-math flags: the rounding steps below are exactly the ones
executed. ``llvm.fma`` is assumed to be a hardware instruction (x86-64 with FMA3, AArch64); on a
target without it LLVM would call ``fmaf`` (correct, but slow and not vectorised).

Techniques (the code is ours; coefficients are Cephes' published single-precision ones where cited,
otherwise fitted here as noted):

* exp, expm1, sigmoid, tanh, softplus: Cody & Waite reduction ``x = n ln2 + r``, ``|r| <= ln2/2``,
  with ln2 split in two parts so ``n ln2`` is subtracted exactly with fma; ``n`` is rounded with the
  1.5 * 2**23 "magic number" addition; ``e**r - 1 = r + r**2 P(r)`` with Cephes ``expf``'s degree-5
  P; ``2**n`` is built in the exponent field and applied in two halves so results reach the
  overflow threshold and the whole denormal range with a single final rounding.
  expm1 combines ``2**n (e**r - 1) + (2**n - 1)`` in one fma (no cancellation); tanh is Cephes
  ``tanhf``'s ``x + x**3 P(x**2)`` for ``|x| < 0.625``, else ``expm1(2|x|) / (expm1(2|x|) + 2)``;
  sigmoid is ``1/(1+e)`` or ``e/(1+e)`` with ``e = exp(-|x|)``; softplus is
  ``log1p(exp(-|x|)) + max(x, 0)``.
* log, log1p: ``x = 2**e m`` with ``m`` in [sqrt(1/2), sqrt(2)) read from the bits (denormals are
  first scaled by 2**24); ``log(1+f) = f - f**2/2 + f**3 P(f)`` with Cephes ``logf``'s degree-8 P and
  ``e ln2`` added in two Cody-Waite parts. log1p takes ``e`` from ``1 + x`` and forms
  ``f = (1 + x) 2**-e - 1`` exactly as ``fma(x, 2**-e, 2**-e - 1)`` (the technique of SLEEF's
  log1pf), so no information is lost in ``1 + x``.
* erf: for ``|x| < 1`` Cephes ``erff``'s ``x T(x**2)`` (as ``x + x (T - 1)``); for ``1 <= |x| < 4``
  ``erf = 1 - exp(Q(|x| - 1))`` where Q is a degree-6 polynomial fitted here to ``log(erfc)`` by
  weighted minimax (linear programming on 1500 Chebyshev nodes, weight ``erfc(x)`` so the error is
  uniform in ulps of erf, coefficients rounded to float32 one by one with the rest refitted);
  ``|x| >= 4`` gives +-1 (erfc(4) < 2**-25).
* sin, cos: Payne-Hanek reduction for every ``|x| >= pi/4``, branch-free: the 96 bits of 2/pi that
  matter for ``x``'s exponent are picked from a 224-bit constant with selects and funnel shifts,
  multiplied exactly by the 24-bit mantissa in 64-bit integers, giving ``x 2/pi mod 4`` as a 2.62
  fixed-point number (the method of Payne & Hanek as used in ARM's optimized-routines sinf); the
  remainder is converted through double precision into a float ``r`` plus the float ``r_lo`` its
  rounding lost, for every float32 up to 3.4e38. Then Cephes ``sinf``'s minimax polynomials on
  [-pi/4, pi/4] (``r_lo`` and the rounding error of cos's ``1 - r**2/2`` added to first order) and
  the quadrant picks sin/cos and the sign.
* pow: ``2**(y log2|x|)`` evaluated in double precision: ``log`` via ``2 atanh(f/(2+f))`` (series
  to s**15, relative error < 2**-44) and ``2**r`` by its degree-10 Taylor polynomial on
  [-1/2, 1/2] (error < 2**-42), ``2**n`` in the exponent field, then one rounding to float32, which
  also produces overflow, denormals and underflow. C99 Annex F / NumPy special cases by select.

``MAX_ULP`` documents the largest error of each function in float32 ulps against NumPy evaluated in
float64 and rounded to float32. For the one-argument functions it is the maximum over all 2**32
float32 inputs (``tests/test_mathlib.py::test_exhaustive``, opt-in, ~3 minutes per function); the
default tests check it on ~2.1 million inputs per function (the whole float32 range, the busy range,
special values and the overflow / underflow edges). For power it is measured on 2 million pairs in
the tests (and 60 million more offline), and follows from the analysis: the double-precision value is
within ~2**-40 relative of x**y before its single rounding, so it is at most 1 ulp from the correctly
rounded result (exactly 0 unless x**y is within 2**-40 of a midpoint between two float32s).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llvmlite import ir

F32 = ir.FloatType()
F64 = ir.DoubleType()
I32 = ir.IntType(32)
I64 = ir.IntType(64)

_INF = math.inf
_NAN = math.nan


def _f32(v: float) -> float:
    """``v`` rounded to the nearest float32 (as a Python float)."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


def _f32_from_bits(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


@dataclass(frozen=True)
class ExpConstants:
    """What the exp family needs of a precision: the rounding magic number, ln2 split in two, the
    polynomial of ``(e**r - 1 - r) / r**2`` (highest degree first), the inputs beyond which exp is 0 / inf
    and expm1 is -1 / inf, and the ``n`` above which expm1's ``-1`` is negligible."""

    magic: float
    ln2_hi: float
    ln2_lo: float
    poly: tuple[float, ...]
    exp_range: tuple[float, float]
    expm1_range: tuple[float, float]
    big_n: int


class Emit:
    """Small typed helpers over an IRBuilder for scalar or vector operands of one lane count, computing in
    float32 (:class:`graphc.codegen.mathlib64.Emit64` computes in float64): ``c`` makes a constant of the
    working precision, ``n`` an integer of its width, ``ibits`` reinterprets a value as that integer."""

    exp_constants: ExpConstants  # set below, once the float32 constants are defined

    def __init__(self, builder: ir.IRBuilder, like: ir.Value) -> None:
        self.b = builder
        ty = like.type
        self.lanes = ty.count if isinstance(ty, ir.VectorType) else None

    # -- types and constants --------------------------------------------------------------------
    def ty(self, elem: ir.Type) -> ir.Type:
        return ir.VectorType(elem, self.lanes) if self.lanes else elem

    def const(self, elem: ir.Type, value: float | int) -> ir.Constant:
        c = ir.Constant(elem, value)
        return ir.Constant(self.ty(elem), [c] * self.lanes) if self.lanes else c

    def f(self, v: float) -> ir.Constant:
        return self.const(F32, _f32(v))

    def d(self, v: float) -> ir.Constant:
        return self.const(F64, v)

    def i(self, v: int) -> ir.Constant:
        return self.const(I32, v)

    def c(self, v: float) -> ir.Constant:
        return self.f(v)

    def n(self, v: int) -> ir.Constant:
        return self.i(v)

    def ibits(self, a):
        return self.bits(a)

    def q(self, v: int) -> ir.Constant:
        return self.const(I64, v)

    # -- intrinsics ----------------------------------------------------------------------------
    @staticmethod
    def _mangle(ty: ir.Type) -> str:
        if isinstance(ty, ir.VectorType):
            return f"v{ty.count}{ty.element.intrinsic_name}"
        return ty.intrinsic_name

    def intrinsic(self, name: str, args: Sequence[ir.Value]) -> ir.Value:
        ty = args[0].type
        full = f"{name}.{self._mangle(ty)}"
        module = self.b.module
        try:
            fn = module.get_global(full)
        except KeyError:
            fn = ir.Function(module, ir.FunctionType(ty, [a.type for a in args]), name=full)
        return self.b.call(fn, list(args))

    def fma(self, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
        return self.intrinsic("llvm.fma", [a, b, c])

    def fabs(self, a: ir.Value) -> ir.Value:
        return self.intrinsic("llvm.fabs", [a])

    def copysign(self, mag: ir.Value, sign: ir.Value) -> ir.Value:
        return self.intrinsic("llvm.copysign", [mag, sign])

    def floor(self, a: ir.Value) -> ir.Value:
        return self.intrinsic("llvm.floor", [a])

    def fshr(self, hi: ir.Value, lo: ir.Value, amount: ir.Value) -> ir.Value:
        return self.intrinsic("llvm.fshr", [hi, lo, amount])

    # -- arithmetic ----------------------------------------------------------------------------
    def add(self, a, b):
        return self.b.fadd(a, b)

    def sub(self, a, b):
        return self.b.fsub(a, b)

    def mul(self, a, b):
        return self.b.fmul(a, b)

    def div(self, a, b):
        return self.b.fdiv(a, b)

    def sel(self, cond, a, b):
        return self.b.select(cond, a, b)

    def cmp(self, op: str, a, b):
        """Ordered comparison (false when either side is nan)."""
        return self.b.fcmp_ordered(op, a, b)

    def ucmp(self, op: str, a, b):
        """Unordered comparison (true when either side is nan)."""
        return self.b.fcmp_unordered(op, a, b)

    def isnan(self, a):
        return self.b.fcmp_unordered("uno", a, a)

    def bits(self, a):
        return self.b.bitcast(a, self.ty(I32))

    def bits64(self, a):
        return self.b.bitcast(a, self.ty(I64))

    def flt(self, a):
        return self.b.bitcast(a, self.ty(F32))

    def dbl(self, a):
        return self.b.bitcast(a, self.ty(F64))

    def clamp(self, x, lo: ir.Value, hi: ir.Value):
        """``x`` limited to [lo, hi]; nan stays nan."""
        x = self.sel(self.cmp("<", x, lo), lo, x)
        return self.sel(self.cmp(">", x, hi), hi, x)

    def horner(self, x, coeffs: Sequence[float], const=None):
        """``c0 x**k + c1 x**(k-1) + ... + ck`` by fma (coefficients highest degree first)."""
        const = const or self.f
        acc = const(coeffs[0])
        for c in coeffs[1:]:
            acc = self.fma(acc, x, const(c))
        return acc

    def pow2(self, n):
        """2**n for integer ``n`` in [-126, 127], built in the exponent field."""
        return self.flt(self.b.shl(self.b.add(n, self.i(127)), self.i(23)))

    def ldexp(self, y, n):
        """``y * 2**n`` for ``n`` in [-252, 254] with a single rounding (in the last multiply)."""
        n1 = self.b.ashr(n, self.i(1))
        n2 = self.b.sub(n, n1)
        return self.mul(self.mul(y, self.pow2(n1)), self.pow2(n2))


# ---- exp family ----------------------------------------------------------------------------------

_LOG2E = 1.4426950408889634
_MAGIC = 12582912.0  # 1.5 * 2**23: adding it rounds to an integer held in the low mantissa bits
_L2U = 0.693145751953125  # ln2 = _L2U + _L2L; _L2U has 16 significant bits so n * _L2U is exact
_L2L = 1.428606765330187045e-06
# Cephes expf: e**r = 1 + r + r**2 P(r) on [-ln2/2, ln2/2]
_EXP_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
          5.0000001201e-1)


Emit.exp_constants = ExpConstants(_MAGIC, _L2U, _L2L, _EXP_P, (-104.0, 89.0), (-18.0, 89.0), 64)
"""float32: beyond -104 / 89 exp is 0 / inf, below -17.33 expm1 is -1."""


def _exp_reduce(E: Emit, x):
    """For finite ``x`` well inside the precision's range: ``(n, p)`` with ``e**x = 2**n (1 + p)``, ``n`` an
    integer of the precision's width."""
    k = E.exp_constants
    t = E.fma(x, E.c(_LOG2E), E.c(k.magic))
    n_f = E.sub(t, E.c(k.magic))
    n = E.b.sub(E.ibits(t), E.ibits(E.c(k.magic)))
    r = E.fma(n_f, E.c(-k.ln2_hi), x)
    r = E.fma(n_f, E.c(-k.ln2_lo), r)
    p = E.fma(E.mul(r, r), E.horner(r, k.poly), r)
    return n, p


def exp_value(E: Emit, x):
    """exp without the nan fix-up (nan in gives nan out anyway)."""
    lo, hi = E.exp_constants.exp_range
    n, p = _exp_reduce(E, E.clamp(x, E.c(lo), E.c(hi)))
    return E.ldexp(E.add(p, E.c(1.0)), n)


def emit_exp(builder: ir.IRBuilder, x: ir.Value, emit: type[Emit] = Emit) -> ir.Value:
    """e**x. float32: overflows to inf above 88.7228, reaches denormals below -87.34 and 0 at -103.97."""
    E = emit(builder, x)
    return E.sel(E.isnan(x), x, exp_value(E, x))


def expm1_value(E: Emit, x):
    """expm1 without the -0.0 / nan fix-ups."""
    lo, hi = E.exp_constants.expm1_range
    big_n = E.n(E.exp_constants.big_n)
    n, p = _exp_reduce(E, E.clamp(x, E.c(lo), E.c(hi)))
    one = E.c(1.0)
    y = E.add(p, one)
    big = E.b.icmp_signed(">", n, big_n)
    s = E.pow2(E.b.select(big, big_n, n))
    # 2**n (1 + p) - 1 = 2**n p + (2**n - 1), one rounding; 2**n - 1 is exact while 2**n has no more bits
    # than the precision, and negligible next to 2**n p beyond
    mid = E.fma(s, p, E.sub(s, one))
    # for n < -2 the result is within [-1, -0.75]: fma(2**n, 1 + p, -1) avoids the inexact 2**n - 1
    low = E.fma(s, y, E.c(-1.0))
    res = E.sel(E.b.icmp_signed("<", n, E.n(-2)), low, mid)
    # for large n the -1 is negligible and 2**n may exceed the float range: scale in two steps
    return E.sel(big, E.ldexp(y, n), res)


def emit_expm1(builder: ir.IRBuilder, x: ir.Value, emit: type[Emit] = Emit) -> ir.Value:
    """e**x - 1, accurate near 0 (expm1(-0.0) = -0.0, expm1(denormal) = denormal)."""
    E = emit(builder, x)
    res = expm1_value(E, x)
    keep = E.b.or_(E.isnan(x), E.cmp("==", x, E.c(0.0)))
    return E.sel(keep, x, res)


def emit_sigmoid(builder: ir.IRBuilder, x: ir.Value, emit: type[Emit] = Emit) -> ir.Value:
    """1 / (1 + e**-x) as 1/(1+t) for x >= 0 and t/(1+t) for x < 0, with t = e**-|x|."""
    E = emit(builder, x)
    t = exp_value(E, E.b.fneg(E.fabs(x)))
    num = E.sel(E.cmp(">=", x, E.c(0.0)), E.c(1.0), t)
    return E.div(num, E.add(t, E.c(1.0)))


# Cephes tanhf: tanh(x) = x + x z P(z), z = x**2, for |x| < 0.625
_TANH_P = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1)


def emit_tanh(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """tanh(x): Cephes' odd polynomial for |x| < 0.625, else sign(x) m / (m + 2) with
    m = expm1(2|x|); |x| >= 9.01 rounds to +-1."""
    E = Emit(builder, x)
    a = E.fabs(x)
    z = E.mul(a, a)
    small = E.fma(E.mul(a, z), E.horner(z, _TANH_P), a)
    a = E.sel(E.cmp(">", a, E.f(10.0)), E.f(10.0), a)
    m = expm1_value(E, E.add(a, a))
    large = E.div(m, E.add(m, E.f(2.0)))
    return E.copysign(E.sel(E.cmp("<", a, E.f(0.625)), small, large), x)


# ---- log family ----------------------------------------------------------------------------------

_SQRTH_BITS = 0x3F3504F3  # bits of sqrt(1/2): mantissas are brought into [sqrt(1/2), sqrt(2))
_LOG_C1 = 0.693359375  # ln2 = _LOG_C1 + _LOG_C2 (Cephes)
_LOG_C2 = -2.12194440e-4
# Cephes logf: log(1+f) = f - f**2/2 + f**3 P(f) for f in [sqrt(1/2) - 1, sqrt(2) - 1]
_LOG_P = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
          -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)


def _split_exponent(E: Emit, x):
    """For positive normal ``x``: (e as i32, m) with ``x = 2**e m`` and m in [sqrt(1/2), sqrt(2))."""
    ix = E.b.add(E.bits(x), E.i(0x3F800000 - _SQRTH_BITS))
    e = E.b.sub(E.b.ashr(ix, E.i(23)), E.i(127))
    m = E.flt(E.b.add(E.b.and_(ix, E.i(0x007FFFFF)), E.i(_SQRTH_BITS)))
    return e, m


def _log_kernel(E: Emit, f, e):
    """log(1 + f) + e ln2 for f in [sqrt(1/2) - 1, sqrt(2) - 1] and integer (i32) e."""
    fe = E.b.sitofp(e, E.ty(F32))
    z = E.mul(f, f)
    y = E.mul(f, E.mul(z, E.horner(f, _LOG_P)))
    y = E.fma(fe, E.f(_LOG_C2), y)
    y = E.fma(z, E.f(-0.5), y)
    res = E.add(f, y)
    return E.fma(fe, E.f(_LOG_C1), res)


def emit_log(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Natural log: log(+-0) = -inf, log(x < 0) = nan, log(inf) = inf, denormals exact-scaled."""
    E = Emit(builder, x)
    den = E.cmp("<", x, E.f(_f32_from_bits(0x00800000)))
    xs = E.sel(den, E.mul(x, E.f(2.0**24)), x)
    e, m = _split_exponent(E, xs)
    e = E.b.add(e, E.b.select(den, E.i(-24), E.i(0)))
    res = _log_kernel(E, E.sub(m, E.f(1.0)), e)
    res = E.sel(E.cmp("==", x, E.f(_INF)), x, res)
    res = E.sel(E.cmp("==", x, E.f(0.0)), E.f(-_INF), res)
    res = E.sel(E.cmp("<", x, E.f(0.0)), E.f(_NAN), res)
    return E.sel(E.isnan(x), x, res)


def _log1p_small(E: Emit, x):
    """log1p for x in (-1, 2**24] (no special cases): e from 1 + x, f = fma(x, 2**-e, 2**-e - 1)."""
    e, _ = _split_exponent(E, E.add(x, E.f(1.0)))
    t = E.flt(E.b.shl(E.b.sub(E.i(127), e), E.i(23)))  # 2**-e
    f = E.fma(x, t, E.sub(t, E.f(1.0)))
    return f, e


def emit_log1p(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """log(1 + x), accurate near 0 (log1p(-0.0) = -0.0); -1 gives -inf, x < -1 nan."""
    E = Emit(builder, x)
    big = E.cmp(">", x, E.f(2.0**24))
    f, e = _log1p_small(E, E.sel(big, E.f(0.0), x))
    e_big, m_big = _split_exponent(E, x)  # for x > 2**24, log1p(x) = log(x) to within 2**-28
    f = E.sel(big, E.sub(m_big, E.f(1.0)), f)
    e = E.b.select(big, e_big, e)
    res = _log_kernel(E, f, e)
    res = E.sel(E.cmp("==", x, E.f(_INF)), x, res)
    res = E.sel(E.cmp("==", x, E.f(-1.0)), E.f(-_INF), res)
    res = E.sel(E.cmp("<", x, E.f(-1.0)), E.f(_NAN), res)
    keep = E.b.or_(E.isnan(x), E.cmp("==", x, E.f(0.0)))
    return E.sel(keep, x, res)


def emit_softplus(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """log(1 + e**x) as log1p(e**-|x|) + max(x, 0): no overflow, denormal results for x < -87.3."""
    E = Emit(builder, x)
    t = exp_value(E, E.b.fneg(E.fabs(x)))  # in [0, 1]
    f, e = _log1p_small(E, t)
    lp = _log_kernel(E, f, e)
    return E.add(lp, E.sel(E.cmp(">", x, E.f(0.0)), x, E.f(0.0)))


# ---- erf ---------------------------------------------------------------------------------------

# Cephes erff: erf(x) = x T(x**2) for |x| < 1, used as x + x (T(x**2) - 1) so that the leading
# 2/sqrt(pi) - 1 = 0.128... carries its rounding error 8x smaller than 1.128... would
_ERF_T = (7.853861353153693e-5, -8.010193625184903e-4, 5.188327685732524e-3, -2.685381193529856e-2,
          1.128358514861418e-1, -3.761262582423300e-1, 1.128379165726710e0 - 1.0)
# log(erfc(x)) ~ Q(x - 1) on [1, 4], weighted minimax fitted here (see module docstring)
_ERFC_Q = (0.00024449414922855794, -0.0019533284939825535, 0.009926719591021538, -0.04144291952252388,
           -0.8431500196456909, -2.638963222503662, -1.8496055603027344)


def emit_erf(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """The error function: odd, erf(+-inf) = +-1, erf(x) rounds to +-1 for |x| >= 3.92."""
    E = Emit(builder, x)
    a = E.fabs(x)
    small = E.fma(a, E.horner(E.mul(a, a), _ERF_T), a)
    t = E.sub(E.clamp(a, E.f(1.0), E.f(4.0)), E.f(1.0))
    e = exp_value(E, E.horner(t, _ERFC_Q))
    large = E.sub(E.f(1.0), e)
    return E.copysign(E.sel(E.cmp("<", a, E.f(1.0)), small, large), x)


# ---- sin / cos ---------------------------------------------------------------------------------

# floor(2/pi * 2**224), most significant 32-bit word first, preceded by a zero word
_TWO_OVER_PI_WORDS = (0x00000000, 0xA2F9836E, 0x4E441529, 0xFC2757D1, 0xF534DDC0, 0xDB629599, 0x3C439041,
                      0xFE5163AB)
# Cephes sinf / cosf on [-pi/4, pi/4]: sin r = r + r**3 S(r**2), cos r = 1 - r**2/2 + r**4 C(r**2)
_SIN_S = (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)
_COS_C = (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2)
_PI_OVER_4 = 0.78539816339744830962


def _reduce_pio2(E: Emit, a):
    """For ``a = |x|``: (r, r_lo, q) with ``a = q pi/2 + r + r_lo (mod 2 pi)``, |r| <= pi/4, q an i32 in 0..3.

    Payne-Hanek: with ``a = M 2**(e - 150)`` (M the 24-bit mantissa, e the biased exponent),
    ``a 2/pi mod 4`` in 2.62 fixed point is ``(M V mod 2**96) >> 32`` where V are the bits of
    ``2/pi * 2**(e - 56)`` modulo 2**96 (bits above weigh multiples of 4, bits below change the
    result by less than one unit in its last place)."""
    b = E.b
    ia = E.bits(a)
    e = b.lshr(ia, E.i(23))
    e = b.select(b.icmp_signed("<", e, E.i(126)), E.i(126), e)  # smaller a use r = a, q = 0
    e = b.select(b.icmp_signed(">", e, E.i(254)), E.i(254), e)  # inf / nan are fixed up later
    mant = b.or_(b.and_(ia, E.i(0x007FFFFF)), E.i(0x00800000))
    shift = b.sub(E.i(280), e)  # V = (2/pi * 2**224) >> shift, shift in [26, 154]
    word = b.lshr(shift, E.i(5))  # 0..4
    bit = b.and_(shift, E.i(31))
    words = []
    for k in range(4, 8):  # after dropping `word` low words, the low four are words[k - word]
        w = E.i(_TWO_OVER_PI_WORDS[k])
        for j in range(1, 5):
            w = b.select(b.icmp_signed("==", word, E.i(j)), E.i(_TWO_OVER_PI_WORDS[k - j]), w)
        words.append(w)
    w0 = E.fshr(words[0], words[1], bit)
    w1 = E.fshr(words[1], words[2], bit)
    w2 = E.fshr(words[2], words[3], bit)
    i64 = E.ty(I64)
    m64 = b.zext(mant, i64)
    p0 = b.shl(b.zext(b.mul(mant, w0), i64), E.q(32))
    p1 = b.mul(m64, b.zext(w1, i64))
    p2 = b.lshr(b.mul(m64, b.zext(w2, i64)), E.q(32))
    fix = b.add(b.add(p0, p1), p2)  # a * 2/pi mod 4, 2.62 fixed point
    quadrant = b.lshr(b.add(fix, E.q(1 << 61)), E.q(62))
    rem = b.sub(fix, b.shl(quadrant, E.q(62)))  # signed, |rem| <= 2**61
    rd = b.fmul(b.sitofp(rem, E.ty(F64)), E.d(math.pi / 2 * 2.0**-62))
    r = b.fptrunc(rd, E.ty(F32))
    r_lo = b.fptrunc(b.fsub(rd, b.fpext(r, E.ty(F64))), E.ty(F32))  # what rounding r to float lost
    q = b.trunc(quadrant, E.ty(I32))
    small = E.cmp("<", a, E.f(_PI_OVER_4))
    return E.sel(small, a, r), E.sel(small, E.f(0.0), r_lo), b.select(small, E.i(0), q)


def _sincos_poly(E: Emit, r, r_lo):
    """sin and cos of r + r_lo (|r_lo| <= ulp(r)/2, used to first order)."""
    z = E.mul(r, r)
    s = E.add(r, E.fma(E.mul(r, z), E.horner(z, _SIN_S), r_lo))
    one = E.f(1.0)
    hi = E.fma(z, E.f(-0.5), one)
    lo = E.fma(z, E.f(-0.5), E.sub(one, hi))  # the rounding error of hi
    lo = E.fma(E.b.fneg(r), r_lo, lo)
    c = E.add(hi, E.fma(E.mul(z, z), E.horner(z, _COS_C), lo))
    return s, c


def _sincos(builder: ir.IRBuilder, x: ir.Value, cosine: bool) -> ir.Value:
    E = Emit(builder, x)
    b = E.b
    a = E.fabs(x)
    r, r_lo, q = _reduce_pio2(E, a)
    s, c = _sincos_poly(E, r, r_lo)
    if cosine:
        q = b.add(q, E.i(1))  # cos(a) = sin(a + pi/2)
    odd = b.icmp_signed("!=", b.and_(q, E.i(1)), E.i(0))
    res = E.sel(odd, c, s)
    sign = b.shl(b.and_(q, E.i(2)), E.i(30))
    if not cosine:
        sign = b.xor(sign, b.and_(E.bits(x), E.i(-0x80000000)))  # sin is odd
    res = E.flt(b.xor(E.bits(res), sign))
    return E.sel(E.ucmp("==", a, E.f(_INF)), E.sub(x, x), res)  # inf and nan give nan


def emit_sin(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """sin(x) over the whole float32 range (sin(+-inf) = nan, sin(-0.0) = -0.0)."""
    return _sincos(builder, x, cosine=False)


def emit_cos(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """cos(x) over the whole float32 range (cos(+-inf) = nan)."""
    return _sincos(builder, x, cosine=True)


# ---- pow ---------------------------------------------------------------------------------------

_SQRTH_BITS64 = 0x3FE6A09E667F3BCD
_LN_SERIES = tuple(2.0 / (2 * k + 1) for k in range(7, 0, -1))  # 2/15 ... 2/3: 2 atanh(s) = 2s + s**3 (...)
_EXP2_TAYLOR = tuple(math.log(2.0) ** k / math.factorial(k) for k in range(10, -1, -1))


def emit_pow(builder: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    """x**y with C99 Annex F special cases (as NumPy's float32 power): pow(x, +-0) = 1, pow(1, y) = 1,
    pow(-1, +-inf) = 1, negative x with non-integer y is nan, odd integer y keeps the sign of x."""
    E = Emit(builder, x)
    b = E.b
    ax = E.fabs(x)
    xd = b.fpext(ax, E.ty(F64))
    yd = b.fpext(y, E.ty(F64))
    # log2|x| in double precision
    ix = b.add(E.bits64(xd), E.q(0x3FF0000000000000 - _SQRTH_BITS64))
    e = b.sub(b.ashr(ix, E.q(52)), E.q(1023))
    m = E.dbl(b.add(b.and_(ix, E.q((1 << 52) - 1)), E.q(_SQRTH_BITS64)))
    f = E.sub(m, E.d(1.0))
    s = E.div(f, E.add(f, E.d(2.0)))
    s2 = E.mul(s, s)
    ln_m = E.fma(E.mul(s, s2), E.horner(s2, _LN_SERIES, E.d), E.add(s, s))
    log2x = E.fma(ln_m, E.d(1 / math.log(2.0)), b.sitofp(e, E.ty(F64)))
    log2x = E.sel(E.cmp("==", ax, E.f(0.0)), E.d(-_INF), log2x)
    log2x = E.sel(E.cmp("==", ax, E.f(_INF)), E.d(_INF), log2x)
    log2x = E.sel(E.isnan(ax), E.d(_NAN), log2x)
    t = E.mul(yd, log2x)
    # |x| == 1: t = 0 even for y = +-inf (pow(-1, +-inf) = 1); y = nan still gives nan
    t = E.sel(b.and_(E.cmp("==", ax, E.f(1.0)), E.cmp("==", y, y)), E.d(0.0), t)
    t = E.clamp(t, E.d(-200.0), E.d(200.0))  # beyond +-150 the float32 result is inf or 0 already
    # 2**t = 2**n 2**r with n = round(t), |r| <= 1/2
    magic = 6755399441055744.0  # 1.5 * 2**52
    k = E.add(t, E.d(magic))
    n = b.sub(E.bits64(k), E.bits64(E.d(magic)))
    r = E.sub(t, E.sub(k, E.d(magic)))
    p = E.horner(r, _EXP2_TAYLOR, E.d)
    scale = E.dbl(b.shl(b.add(n, E.q(1023)), E.q(52)))
    res = b.fptrunc(E.mul(p, scale), E.ty(F32))
    # signs and special cases
    y_int = E.cmp("==", E.floor(y), y)
    half = E.mul(y, E.f(0.5))
    y_odd = b.and_(y_int, E.cmp("!=", E.floor(half), half))
    neg = b.icmp_signed("<", E.bits(x), E.i(0))  # sign bit, so -0.0 and -inf count
    res = E.sel(b.and_(neg, y_odd), b.fneg(res), res)
    finite_neg = b.and_(E.cmp("<", x, E.f(0.0)), E.cmp(">", x, E.f(-_INF)))
    res = E.sel(b.and_(finite_neg, b.not_(y_int)), E.f(_NAN), res)  # y = nan is nan already
    res = E.sel(E.cmp("==", x, E.f(1.0)), E.f(1.0), res)
    return E.sel(E.cmp("==", y, E.f(0.0)), E.f(1.0), res)


# ---- registry ----------------------------------------------------------------------------------

FLOAT32_FUNCTIONS: dict[str, Callable[..., ir.Value]] = {
    "exp": emit_exp,
    "log": emit_log,
    "log1p": emit_log1p,
    "expm1": emit_expm1,
    "tanh": emit_tanh,
    "sigmoid": emit_sigmoid,
    "erf": emit_erf,
    "sin": emit_sin,
    "cos": emit_cos,
    "softplus": emit_softplus,
    "power": emit_pow,
}

# Largest error in float32 ulps against NumPy in float64 rounded to float32: over every float32 input
# for the one-argument functions, by measurement and analysis for power (see the module docstring).
# tests/test_mathlib.py fails if a bound is exceeded or is more than 1 ulp looser than it measures.
MAX_ULP: dict[str, float] = {
    "exp": 1.0,
    "log": 1.0,
    "log1p": 1.0,
    "expm1": 1.0,
    "tanh": 1.0,
    "sigmoid": 2.0,
    "erf": 1.0,
    "sin": 1.0,
    "cos": 1.0,
    "softplus": 2.0,
    "power": 1.0,
}


def define_elementwise_kernel(module: ir.Module, name: str, emitter: Callable[..., ir.Value],
                              arity: int = 1, element: ir.Type = F32) -> ir.Function:
    """``void name(T *out, const T *in0[, const T *in1], i64 n)``: out[i] = f(in...[i]), ``T`` the
    ``element`` type (float; double for mathlib64.py's functions).

    A plain counted loop (pointers marked noalias) for LLVM to vectorise; used by the tests and
    benchmarks of this module."""
    ptr = element.as_pointer()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr] * (arity + 1) + [I64]), name=name)
    for arg in fn.args[:-1]:
        arg.add_attribute("noalias")
    out, *ins, n = fn.args
    entry, loop, done = fn.append_basic_block("entry"), fn.append_basic_block("loop"), fn.append_basic_block("done")
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(I64, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(I64)
    i.add_incoming(ir.Constant(I64, 0), entry)
    values = [b.load(b.gep(p, [i], inbounds=True)) for p in ins]
    b.store(emitter(b, *values), b.gep(out, [i], inbounds=True))
    nxt = b.add(i, ir.Constant(I64, 1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()
    return fn


emit_power = emit_pow

__all__ = ["FLOAT32_FUNCTIONS", "MAX_ULP", "define_elementwise_kernel", "emit_cos", "emit_erf", "emit_exp",
           "emit_expm1", "emit_log", "emit_log1p", "emit_pow", "emit_power", "emit_sigmoid", "emit_sin",
           "emit_softplus", "emit_tanh"]
