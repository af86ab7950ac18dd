"""Inline float64 transcendental functions for the LLVM CPU backend.

The double-precision counterparts of :mod:`graphc.codegen.mathlib`: every ``emit_<name>(builder, x)``
appends straight-line IR (``select`` for special cases, integer operations on the bit pattern for
exponents, only the ``llvm.fma`` / ``llvm.fabs`` / ``llvm.copysign`` intrinsics), so that loops applying
them are vectorised instead of calling the C library once per element.  No fast-math flags.

Techniques (our code; the log coefficients are fdlibm's published ones):

* exp, expm1, sigmoid, tanh, softplus: ``x = n ln2 + r``, ``|r| <= ln2/2`` (``n`` rounded with the
  1.5 * 2**52 magic number, ``n ln2`` taken off in two fma steps with fdlibm's split of ln2);
  ``e**r - 1 = r + r**2 P(r)`` with P the Taylor polynomial of degree 11 (``(e**r - 1 - r) / r**2`` to
  ``r**11 / 13!``: the first term left out is below 2**-58 relative); ``2**n`` is built in the exponent
  field and applied in two halves so that results reach the overflow threshold and the denormal range
  with one rounding.  expm1 forms ``2**n p + (2**n - 1)`` in one fma; tanh is ``m / (m + 2)`` with
  ``m = expm1(2|x|)`` and its sign put back; sigmoid ``1/(1+t)`` or ``t/(1+t)`` with ``t = e**-|x|``;
  softplus ``log1p(e**-|x|) + max(x, 0)``.
* log, log1p: ``x = 2**k (1 + f)`` with ``1 + f`` in [sqrt(1/2), sqrt(2)) from the bits (denormals
  scaled by 2**54 first); ``log(1 + f) = f - (h - s (h + R(s**2)))`` with ``s = f / (2 + f)``,
  ``h = f**2 / 2`` and fdlibm's degree-7 minimax ``R`` (``Lg1`` .. ``Lg7``), ``k ln2`` added in fdlibm's
  two parts.  log1p takes ``k`` from ``1 + x`` and forms ``f = (1 + x) 2**-k - 1`` exactly as
  ``fma(x, 2**-k, 2**-k - 1)``, so nothing is lost in ``1 + x``.

``MAX_ULP`` is the largest error in float64 ulps measured against NumPy's ``longdouble`` (x87 extended,
11 more bits) over the inputs of ``tests/test_mathlib64.py`` (the whole float64 range, the busy range
around 0, special values and the overflow / underflow edges); the test fails if a bound is exceeded.
"""

from __future__ import annotations

import math
from functools import partial

from llvmlite import ir

from graphc.codegen import mathlib
from graphc.codegen.mathlib import F64, Emit, ExpConstants, exp_value, expm1_value

_INF = math.inf
_NAN = math.nan

_LOG2E = 1.4426950408889634
_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer held in the low mantissa bits
_LN2_HI = 6.93147180369123816490e-01  # fdlibm: ln2 = _LN2_HI + _LN2_LO, _LN2_HI with 32 trailing zero bits
_LN2_LO = 1.90821492927058770002e-10
# (e**r - 1 - r) / r**2 = sum r**k / (k + 2)! for k = 0 .. 11, highest degree first
_EXPM1_P = tuple(1.0 / math.factorial(k + 2) for k in range(11, -1, -1))
_SQRTH_BITS = 0x3FE6A09E667F3BCD  # bits of sqrt(1/2)
_ONE_BITS = 0x3FF0000000000000
_MANTISSA = 0x000FFFFFFFFFFFFF
# fdlibm e_log.c: R(z) = Lg1 z + Lg2 z**2 + ... + Lg7 z**7 (highest first here, without the factor z)
_LG = (1.479819860511658591e-01, 1.531383769920937332e-01, 1.818357216161805012e-01, 2.222219843214978396e-01,
       2.857142874366239149e-01, 3.999999999940941908e-01, 6.666666666666735130e-01)
_MIN_NORMAL = 2.2250738585072014e-308


class Emit64(Emit):
    """:class:`Emit` computing in float64, with 64-bit exponent arithmetic."""

    exp_constants = ExpConstants(_MAGIC, _LN2_HI, _LN2_LO, _EXPM1_P, (-746.0, 710.0), (-40.0, 710.0), 100)
    """float64: beyond -746 / 710 exp is 0 / inf, below -37.4 expm1 is -1."""

    def c(self, v: float) -> ir.Constant:
        return self.d(v)

    def n(self, v: int) -> ir.Constant:
        return self.q(v)

    def ibits(self, a):
        return self.bits64(a)

    def pow2(self, n):
        """2**n for integer (i64) ``n`` in [-1022, 1023], built in the exponent field."""
        return self.dbl(self.b.shl(self.b.add(n, self.q(1023)), self.q(52)))

    def ldexp(self, y, n):
        """``y * 2**n`` for ``n`` in [-2044, 2046] with a single rounding (in the last multiply)."""
        n1 = self.b.ashr(n, self.q(1))
        return self.mul(self.mul(y, self.pow2(n1)), self.pow2(self.b.sub(n, n1)))

    def horner(self, x, coeffs, const=None):
        return super().horner(x, coeffs, const or self.d)


# ---- exp family: mathlib's code in float64 ----------------------------------------------------------------

emit_exp = partial(mathlib.emit_exp, emit=Emit64)
emit_expm1 = partial(mathlib.emit_expm1, emit=Emit64)
emit_sigmoid = partial(mathlib.emit_sigmoid, emit=Emit64)


def emit_tanh(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """tanh(x) = sign(x) m / (m + 2) with m = expm1(2|x|); |x| >= 19.1 rounds to +-1, and a tiny
    ``x`` gives ``x`` (m is 2x to within its rounding)."""
    E = Emit64(builder, x)
    a = E.fabs(x)
    a = E.sel(E.cmp(">", a, E.d(40.0)), E.d(40.0), a)
    m = expm1_value(E, E.add(a, a))
    res = E.copysign(E.div(m, E.add(m, E.d(2.0))), x)
    return E.sel(E.isnan(x), x, res)


# ---- log family --------------------------------------------------------------------------------------

def _split_exponent(E: Emit64, x):
    """For positive normal ``x``: (k as i64, m) with ``x = 2**k m`` and m in [sqrt(1/2), sqrt(2))."""
    ix = E.b.add(E.bits64(x), E.q(_ONE_BITS - _SQRTH_BITS))
    k = E.b.sub(E.b.ashr(ix, E.q(52)), E.q(1023))
    m = E.dbl(E.b.add(E.b.and_(ix, E.q(_MANTISSA)), E.q(_SQRTH_BITS)))
    return k, m


def _log_kernel(E: Emit64, f, k):
    """log(1 + f) + k ln2 for f in [sqrt(1/2) - 1, sqrt(2) - 1] and integer (i64) k (fdlibm's form)."""
    dk = E.b.sitofp(k, E.ty(F64))
    s = E.div(f, E.add(f, E.d(2.0)))
    z = E.mul(s, s)
    r = E.mul(z, E.horner(z, _LG))
    hfsq = E.mul(E.d(0.5), E.mul(f, f))
    inner = E.fma(s, E.add(hfsq, r), E.mul(dk, E.d(_LN2_LO)))
    return E.sub(E.mul(dk, E.d(_LN2_HI)), E.sub(E.sub(hfsq, inner), f))


def emit_log(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Natural log: log(+-0) = -inf, log(x < 0) = nan, log(inf) = inf, denormals exact-scaled."""
    E = Emit64(builder, x)
    den = E.cmp("<", x, E.d(_MIN_NORMAL))
    xs = E.sel(den, E.mul(x, E.d(2.0**54)), x)
    k, m = _split_exponent(E, xs)
    k = E.b.add(k, E.b.select(den, E.q(-54), E.q(0)))
    res = _log_kernel(E, E.sub(m, E.d(1.0)), k)
    res = E.sel(E.cmp("==", x, E.d(_INF)), x, res)
    res = E.sel(E.cmp("==", x, E.d(0.0)), E.d(-_INF), res)
    res = E.sel(E.cmp("<", x, E.d(0.0)), E.d(_NAN), res)
    return E.sel(E.isnan(x), x, res)


def _log1p_small(E: Emit64, x):
    """For x in (-1, 2**53]: (f, k) with 1 + x = 2**k (1 + f), f = fma(x, 2**-k, 2**-k - 1) exactly."""
    k, _ = _split_exponent(E, E.add(x, E.d(1.0)))
    t = E.dbl(E.b.shl(E.b.sub(E.q(1023), k), E.q(52)))  # 2**-k
    return E.fma(x, t, E.sub(t, E.d(1.0))), k


def emit_log1p(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """log(1 + x), accurate near 0 (log1p(-0.0) = -0.0); -1 gives -inf, x < -1 nan."""
    E = Emit64(builder, x)
    big = E.cmp(">", x, E.d(2.0**53))
    f, k = _log1p_small(E, E.sel(big, E.d(0.0), x))
    k_big, m_big = _split_exponent(E, x)  # beyond 2**53, 1 + x is x
    f = E.sel(big, E.sub(m_big, E.d(1.0)), f)
    k = E.b.select(big, k_big, k)
    res = _log_kernel(E, f, k)
    res = E.sel(E.cmp("==", x, E.d(_INF)), x, res)
    res = E.sel(E.cmp("==", x, E.d(-1.0)), E.d(-_INF), res)
    res = E.sel(E.cmp("<", x, E.d(-1.0)), E.d(_NAN), res)
    keep = E.b.or_(E.isnan(x), E.cmp("==", x, E.d(0.0)))
    return E.sel(keep, x, res)


def emit_softplus(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """log(1 + e**x) as log1p(e**-|x|) + max(x, 0): no overflow, denormal results for x < -708."""
    E = Emit64(builder, x)
    t = exp_value(E, E.b.fneg(E.fabs(x)))  # in [0, 1]
    f, k = _log1p_small(E, t)
    lp = _log_kernel(E, f, k)
    res = E.add(lp, E.sel(E.cmp(">", x, E.d(0.0)), x, E.d(0.0)))
    return E.sel(E.isnan(x), x, res)


FLOAT64_FUNCTIONS = {
    "exp": emit_exp,
    "expm1": emit_expm1,
    "log": emit_log,
    "log1p": emit_log1p,
    "tanh": emit_tanh,
    "sigmoid": emit_sigmoid,
    "softplus": emit_softplus,
}

# Largest error in float64 ulps against NumPy's longdouble, measured by tests/test_mathlib64.py.
MAX_ULP: dict[str, float] = {
    "exp": 1.0,  # measured 0.97
    "expm1": 2.0,  # 1.79
    "log": 1.0,  # 0.76
    "log1p": 1.5,  # 1.34
    "tanh": 2.5,  # 2.44
    "sigmoid": 2.5,  # 2.38
    "softplus": 2.0,  # 1.59
}

__all__ = ["FLOAT64_FUNCTIONS", "MAX_ULP", "Emit64", "emit_exp", "emit_expm1", "emit_log", "emit_log1p",
           "emit_sigmoid", "emit_softplus", "emit_tanh"]
