"""Weight penalties added to a model's loss (``kernel_regularizer="l2"``, ``regularizers.l1_l2(...)``)."""

from __future__ import annotations

from typing import Any

from graphc.errors import ArgumentError
from graphc.ir.tensor import Tensor
from graphc.ops.elementwise import abs as abs_
from graphc.ops.elementwise import square
from graphc.ops.reduce import sum as sum_


class Regularizer:
    """``reg(weight) -> scalar tensor`` added to the training loss."""

    def __call__(self, weight: Tensor) -> Tensor:
        raise NotImplementedError


class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w^2)``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        for name, value in (("l1", l1), ("l2", l2)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ArgumentError(f"{type(self).__name__}: {name} must be a non-negative number, got {value!r}")
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, weight: Tensor) -> Tensor:
        terms = []
        if self.l1:
            terms.append(self.l1 * sum_(abs_(weight)))
        if self.l2:
            terms.append(self.l2 * sum_(square(weight)))
        if not terms:
            return sum_(weight) * 0.0
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]

    def __repr__(self) -> str:
        return f"L1L2(l1={self.l1}, l2={self.l2})"


class L1(L1L2):
    """``l1 * sum(|w|)``."""

    def __init__(self, l1: float = 0.01) -> None:
        super().__init__(l1=l1)


class L2(L1L2):
    """``l2 * sum(w^2)``."""

    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(l2=l2)


l1, l2, l1_l2 = L1, L2, L1L2


def get(identifier: Any) -> Regularizer | None:
    """A regularizer from None, a name (``"l1"``, ``"l2"``, ``"l1_l2"``: Keras's 0.01 defaults), a
    :class:`Regularizer` or a callable ``f(weight) -> scalar tensor``."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        makers = {"l1": L1, "l2": L2, "l1_l2": lambda: L1L2(0.01, 0.01)}
        if identifier not in makers:
            raise ArgumentError(f"unknown regularizer {identifier!r}; expected 'l1', 'l2' or 'l1_l2'")
        return makers[identifier]()
    if callable(identifier):
        class _Callable(Regularizer):
            def __call__(self, weight: Tensor) -> Tensor:
                return identifier(weight)
        return _Callable()
    raise ArgumentError(f"expected a regularizer name, a Regularizer or a callable, got {identifier!r}")
