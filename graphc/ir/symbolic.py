"""Symbolic dimensions: sizes known only when compiled code runs (ahead-of-time compilation).

A :class:`SymInt` is a polynomial with integer coefficients over dimension symbols ``d0, d1, ...``
(the user's ``None`` dimensions).  Shape rules and lowering compute with it as with an int:
``+ - *`` give polynomials, exact division by an int works, and a result with no symbols left is a
plain ``int``, so code specialised to concrete shapes never sees a SymInt.  What cannot be decided
without the symbols' values (ordering, inexact division, use as a Python index) raises
:class:`DynamicDimError`; heuristics that only pick a strategy use :func:`hint`.

Equality is structural: ``d0 == 1`` is False, so a symbolic dimension is never taken to be a
broadcast 1.  Where shape rules require two sizes to be equal (broadcasting, a matmul's inner
dimension), an active :class:`Unifier` records that two symbols denote one size (or that a symbol
is a known constant), and shape inference is re-run with the symbols merged.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from graphc.errors import ShapeError

HINT = 64  # the size heuristics assume for a symbol (thread splitting, cost estimates)

Monomial = tuple[int, ...]  # sorted symbol numbers, repeated for powers


class DynamicDimError(ShapeError):
    """A computation needed the value of a dimension that is only known at run time."""


class SymInt:
    """An integer polynomial over dimension symbols; immutable and hashable."""

    __slots__ = ("_hash", "terms")

    def __init__(self, terms: Mapping[Monomial, int]) -> None:
        self.terms: tuple[tuple[Monomial, int], ...] = tuple(sorted((m, c) for m, c in terms.items() if c))
        self._hash = hash(self.terms)

    @staticmethod
    def symbol(number: int) -> SymInt:
        return SymInt({(number,): 1})

    # ---- construction helpers ----
    @staticmethod
    def _make(terms: Mapping[Monomial, int]) -> SymInt | int:
        terms = {m: c for m, c in terms.items() if c}
        if all(m == () for m in terms):
            return terms.get((), 0)
        return SymInt(terms)

    @staticmethod
    def _terms(value: Any) -> dict[Monomial, int] | None:
        if isinstance(value, SymInt):
            return dict(value.terms)
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                value = value.__index__()
            except (AttributeError, TypeError):
                return None
        return {(): int(value)}

    # ---- arithmetic ----
    def __add__(self, other: Any) -> SymInt | int:
        o = self._terms(other)
        if o is None:
            return NotImplemented
        terms = dict(self.terms)
        for m, c in o.items():
            terms[m] = terms.get(m, 0) + c
        return self._make(terms)

    __radd__ = __add__

    def __neg__(self) -> SymInt | int:
        return self._make({m: -c for m, c in self.terms})

    def __sub__(self, other: Any) -> SymInt | int:
        o = self._terms(other)
        if o is None:
            return NotImplemented
        return self + self._make({m: -c for m, c in o.items()})

    def __rsub__(self, other: Any) -> SymInt | int:
        return (-self) + other

    def __mul__(self, other: Any) -> SymInt | int:
        o = self._terms(other)
        if o is None:
            return NotImplemented
        terms: dict[Monomial, int] = {}
        for m1, c1 in self.terms:
            for m2, c2 in o.items():
                m = tuple(sorted(m1 + m2))
                terms[m] = terms.get(m, 0) + c1 * c2
        return self._make(terms)

    __rmul__ = __mul__

    def __floordiv__(self, other: Any) -> SymInt | int:
        divisor = self._int(other, "divide")
        if divisor == 0 or any(c % divisor for _, c in self.terms):
            raise DynamicDimError(f"{self} is not known to be divisible by {divisor}")
        return self._make({m: c // divisor for m, c in self.terms})

    def __mod__(self, other: Any) -> int:
        divisor = self._int(other, "take a remainder of")
        if divisor == 0 or any(c % divisor for _, c in self.terms):
            raise DynamicDimError(f"{self} % {divisor} depends on a run-time dimension")
        return 0

    def _int(self, other: Any, verb: str) -> int:
        if isinstance(other, (SymInt, bool)) or not hasattr(other, "__index__"):
            raise DynamicDimError(f"cannot {verb} {self} by {other} before run time")
        return other.__index__()

    # ---- comparisons: equality is structural; ordering only where it holds for every size >= 0 ----
    def __eq__(self, other: Any) -> bool:
        if isinstance(other, SymInt):
            return self.terms == other.terms
        return False  # a plain int: a SymInt always has a symbol

    def __ne__(self, other: Any) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return self._hash

    def _at_least(self, other: Any) -> bool:
        """``self >= other`` where that holds, or fails, for every size >= 0; else DynamicDimError."""
        if _always_nonnegative(self - other):
            return True
        if _always_nonnegative(other - self - 1):
            return False
        raise DynamicDimError(f"whether {self} >= {other} depends on the run-time dimensions")

    def __ge__(self, other: Any) -> bool:
        return self._at_least(other)

    def __gt__(self, other: Any) -> bool:
        return self._at_least(other + 1)

    def __le__(self, other: Any) -> bool:
        return not self._at_least(other + 1)

    def __lt__(self, other: Any) -> bool:
        return not self._at_least(other)

    def __bool__(self) -> bool:
        return True  # a nonzero polynomial: treated as possibly nonzero (loops handle size 0 at run time)

    def __index__(self) -> int:
        raise DynamicDimError(f"the size {self} is only known at run time")

    # ---- inspection ----
    def symbols(self) -> set[int]:
        return {s for m, _ in self.terms for s in m}

    def as_symbol(self) -> int | None:
        """The symbol number if this is exactly one symbol, else None."""
        if len(self.terms) == 1 and len(self.terms[0][0]) == 1 and self.terms[0][1] == 1:
            return self.terms[0][0][0]
        return None

    def format(self, name: Any = None) -> str:
        """As an expression, each symbol written by ``name(number)`` (default ``d<number>``)."""
        name = name or (lambda s: f"d{s}")
        parts = []
        for m, c in sorted(self.terms, key=lambda t: (-len(t[0]), t[0])):
            factors = [name(s) for s in m]
            if c != 1 or not factors:
                factors.insert(0, str(c))
            parts.append("*".join(factors))
        return " + ".join(parts).replace("+ -", "- ")

    def __repr__(self) -> str:
        return self.format()


Size = int | SymInt


def _always_nonnegative(value: Size) -> bool:
    if isinstance(value, SymInt):
        return all(c >= 0 for _, c in value.terms)
    return value >= 0


def is_symbolic(value: Any) -> bool:
    return isinstance(value, SymInt)


def evaluate(value: Size, dims: Sequence[int]) -> int:
    """The value of ``value`` with symbol ``k`` equal to ``dims[k]``."""
    if not isinstance(value, SymInt):
        return int(value)
    total = 0
    for m, c in value.terms:
        product = c
        for s in m:
            product *= dims[s]
        total += product
    return total


def hint(value: Size) -> int:
    """``value`` with every symbol at HINT: for choices that affect speed, never results."""
    if not isinstance(value, SymInt):
        return int(value)
    return evaluate(value, [HINT] * (max(value.symbols()) + 1))


def substitute(value: Any, mapping: Mapping[int, Size]) -> Any:
    """``value`` with symbols replaced by ``mapping`` (sizes, or SymInts over other symbols)."""
    if not isinstance(value, SymInt):
        return value
    total: Size = 0
    for m, c in value.terms:
        product: Size = c
        for s in m:
            product = product * mapping.get(s, SymInt.symbol(s))
        total = total + product
    return total


# ---- unification --------------------------------------------------------------------------------


class Restart(Exception):
    """Raised when shape inference learnt that two sizes are equal; infer again with them merged."""


class Unifier:
    """Collects which symbols must be equal (to each other, or to a constant) during inference."""

    def __init__(self) -> None:
        self.mapping: dict[int, Size] = {}  # symbol -> representative (a smaller symbol or an int)

    def resolve(self, value: Any) -> Any:
        return substitute(value, self.mapping)

    def equate(self, sizes: Iterable[Size]) -> bool:
        """Record that ``sizes`` are equal; True if that merged something (so inference restarts),
        False when they cannot be merged (not single symbols, or two different constants)."""
        sizes = list(dict.fromkeys(sizes))
        constants = [s for s in sizes if not isinstance(s, SymInt)]
        symbols = [s.as_symbol() for s in sizes if isinstance(s, SymInt)]
        if len(set(constants)) > 1 or not symbols or None in symbols:
            return False
        target: Size = constants[0] if constants else SymInt.symbol(min(symbols))  # type: ignore[type-var]
        changed = False
        for s in symbols:
            assert s is not None
            if SymInt.symbol(s) != target:
                self.mapping = {k: substitute(v, {s: target}) for k, v in self.mapping.items()}
                self.mapping[s] = target
                changed = True
        return changed


_active: contextvars.ContextVar[Unifier | None] = contextvars.ContextVar("graphc_unifier", default=None)


@contextmanager
def unifying(unifier: Unifier) -> Iterator[Unifier]:
    token = _active.set(unifier)
    try:
        yield unifier
    finally:
        _active.reset(token)


def require_equal(sizes: Iterable[Size]) -> None:
    """Called by shape rules where ``sizes`` must be one size: with a unifier active and symbols
    among them, record that and raise :class:`Restart`; otherwise return (the rule reports the
    mismatch as it always has)."""
    unifier = _active.get()
    sizes = list(sizes)
    if unifier is not None and any(isinstance(s, SymInt) for s in sizes) and unifier.equate(sizes):
        raise Restart


__all__ = ["HINT", "DynamicDimError", "Restart", "Size", "SymInt", "Unifier", "evaluate", "hint", "is_symbolic",
           "require_equal", "substitute", "unifying"]
