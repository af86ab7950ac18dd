"""The loop IR: kernels made of explicit loops, index arithmetic, loads, stores and scalar ops.

Buffers are flat, row-major arrays addressed by element index.  A kernel is a list of statements
over named buffers; codegen turns each kernel into one LLVM function.  Scalar computations are
``ScalarOp`` nodes naming a graphc elementwise op, so every backend lowers each op's scalar
semantics in one place (codegen/scalar.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphc.ir.symbolic import Size

# ---- index expressions (int64) ------------------------------------------------------------------


@dataclass(frozen=True)
class IVar:
    """A loop variable."""

    name: str


@dataclass(frozen=True)
class IConst:
    value: Size  # a SymInt in ahead-of-time code with run-time dimensions


@dataclass(frozen=True)
class IBin:
    """``a op b`` on int64 indices, op one of + * (divisions never appear: loops are nested per dim)."""

    op: str
    a: IndexExpr
    b: IndexExpr


@dataclass(frozen=True)
class IValue:
    """A scalar integer value used as an index (a gathered label, a take index)."""

    value: Expr


IndexExpr = IVar | IConst | IBin | IValue


def iadd(a: IndexExpr, b: IndexExpr) -> IndexExpr:
    if isinstance(b, IConst) and b.value == 0:
        return a
    if isinstance(a, IConst) and a.value == 0:
        return b
    return IBin("+", a, b)


def imul(a: IndexExpr, b: Size) -> IndexExpr:
    if b == 0:
        return IConst(0)
    if b == 1:
        return a
    return IBin("*", a, IConst(b))


# ---- scalar expressions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Const:
    value: Any
    dtype: np.dtype


@dataclass(frozen=True)
class Load:
    """Element ``index`` of ``buffer``."""

    buffer: str
    index: IndexExpr
    dtype: np.dtype


@dataclass(frozen=True)
class ScalarOp:
    """Elementwise op ``op`` (a graphc op name) applied to scalar ``args`` of dtype ``in_dtype``."""

    op: str
    args: tuple[Expr, ...]
    in_dtype: np.dtype
    dtype: np.dtype
    attrs: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class IndexValue:
    """The current value of an index expression, as an int64 scalar (e.g. a class number)."""

    index: IndexExpr

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.int64)


@dataclass(frozen=True)
class AccRef:
    """The current value of accumulator ``name``."""

    name: str
    dtype: np.dtype


Expr = Const | Load | ScalarOp | AccRef | IndexValue


# ---- statements --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    buffer: str
    index: IndexExpr
    value: Expr


@dataclass(frozen=True)
class Loop:
    """``for var in range(extent): body``.  ``parallel``: iterations write disjoint elements and read
    nothing another iteration writes, so codegen may split the range across threads (it does so for
    a kernel's top-level loops when the work is large enough)."""

    var: IVar
    extent: Size
    body: tuple[Stmt, ...]
    parallel: bool = False


@dataclass(frozen=True)
class AccInit:
    """Declare accumulator ``name`` with value ``init``."""

    name: str
    init: Expr


@dataclass(frozen=True)
class AccUpdate:
    """``name = combine(name, value)`` where combine is the binary elementwise op ``op``."""

    name: str
    op: str
    value: Expr


@dataclass(frozen=True)
class AccSet:
    """``name = value``."""

    name: str
    value: Expr


@dataclass(frozen=True)
class Check:
    """Report fault ``code`` in the status word where the bool ``ok`` is false.

    The promise is only that *some* failing check's code is reported when any fails (and 0 when none
    does): which one wins when several fail is the backend's choice, so a parallel backend may record
    them with atomics in any order.  A serial backend reports the last one it executed."""

    ok: Expr
    code: int


@dataclass(frozen=True)
class Gemm:
    """C[m, n] = A[m, k] @ B[k, n] on float buffers by the backend's GEMM (the CPU's: the packed,
    register-blocked GEMM of backends/cpu/gemm.py).  Operands are views: an offset and (row, column)
    element strides; C is row-major with row stride ``ldc``; ``pack`` is a scratch buffer holding
    ``threads`` panel buffers of ``pack_stride`` elements each (the size the backend's policy asks for, 0
    for none), so up to ``threads`` threads share the work; they start at element ``pack_offset`` (a
    product run by one of several threads of a parallel loop has panels of its own)."""

    a: str
    a_offset: IndexExpr
    a_strides: tuple[Size, Size]
    b: str
    b_offset: IndexExpr
    b_strides: tuple[Size, Size]
    c: str
    c_offset: IndexExpr
    ldc: Size
    m: Size
    n: Size
    k: Size
    pack: str
    dtype: np.dtype
    pack_stride: Size = 0
    threads: int = 1
    pack_offset: IndexExpr = IConst(0)


STATUS = "status"  # the int64[1] buffer every kernel with a Check writes faults to
DIMS = "dims"  # the int64 buffer of run-time dimension sizes (ahead-of-time code with SymInt sizes)

Stmt = Store | Loop | AccInit | AccUpdate | AccSet | Check | Gemm


def has_check(body: Sequence[Stmt]) -> bool:
    """Whether ``body`` (at any depth) contains a ``Check``."""
    return any(isinstance(s, Check) or (isinstance(s, Loop) and has_check(s.body)) for s in body)


@dataclass(frozen=True)
class BufferSpec:
    name: str
    dtype: np.dtype
    size: Size  # elements


@dataclass
class LoopKernel:
    """One kernel: parameters (buffers, in call order) and a body of statements."""

    name: str
    params: list[BufferSpec]
    body: list[Stmt] = field(default_factory=list)
    scratch: list[BufferSpec] = field(default_factory=list)  # temporaries the runtime allocates

    def pretty(self) -> str:
        """The kernel as indented pseudo-code (for inspection and debugging)."""
        lines = [f"kernel {self.name}(" + ", ".join(f"{p.name}: {p.dtype.name}[{p.size}]" for p in self.params) + ")"]
        _pretty(self.body, 1, lines)
        return "\n".join(lines)


def _expr(e: Any) -> str:
    if isinstance(e, IVar):
        return e.name
    if isinstance(e, IConst):
        return str(e.value)
    if isinstance(e, IBin):
        return f"({_expr(e.a)} {e.op} {_expr(e.b)})"
    if isinstance(e, Const):
        return repr(e.value)
    if isinstance(e, Load):
        return f"{e.buffer}[{_expr(e.index)}]"
    if isinstance(e, AccRef):
        return e.name
    if isinstance(e, ScalarOp):
        return f"{e.op}(" + ", ".join(_expr(a) for a in e.args) + ")"
    return repr(e)


def _pretty(body: Any, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    for s in body:
        if isinstance(s, Loop):
            lines.append(f"{pad}{'parallel ' if s.parallel else ''}for {s.var.name} in 0..{s.extent}:")
            _pretty(s.body, depth + 1, lines)
        elif isinstance(s, Store):
            lines.append(f"{pad}{s.buffer}[{_expr(s.index)}] = {_expr(s.value)}")
        elif isinstance(s, AccInit):
            lines.append(f"{pad}{s.name} = {_expr(s.init)}")
        elif isinstance(s, AccUpdate):
            lines.append(f"{pad}{s.name} = {s.op}({s.name}, {_expr(s.value)})")
