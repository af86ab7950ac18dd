"""Keras's optimizer names and arguments (``SGD(learning_rate=0.01, momentum=0.9)``), built on
``gc.optimizers``: the same update rules, so ``compile(optimizer=...)`` accepts either."""

from __future__ import annotations

from typing import Any

from graphc import optimizers as gc_optimizers


def SGD(learning_rate: Any = 0.01, momentum: Any = 0.0, nesterov: bool = False, name: str | None = None,
        lr: Any = None) -> gc_optimizers.SGD:
    """``keras.optimizers.SGD``; ``lr`` is the old Keras spelling of ``learning_rate``."""
    return gc_optimizers.SGD(learning_rate if lr is None else lr, momentum=momentum, nesterov=nesterov, name=name)


def Adam(learning_rate: Any = 1e-3, beta_1: Any = 0.9, beta_2: Any = 0.999, epsilon: Any = 1e-7,
         name: str | None = None, lr: Any = None) -> gc_optimizers.Adam:
    """``keras.optimizers.Adam`` (Keras's ``epsilon`` default, 1e-7)."""
    return gc_optimizers.Adam(learning_rate if lr is None else lr, beta1=beta_1, beta2=beta_2, eps=epsilon, name=name)


def RMSprop(learning_rate: Any = 1e-3, rho: Any = 0.9, momentum: Any = 0.0, epsilon: Any = 1e-7,
            name: str | None = None, lr: Any = None) -> gc_optimizers.RMSProp:
    """``keras.optimizers.RMSprop``."""
    return gc_optimizers.RMSProp(learning_rate if lr is None else lr, decay=rho, momentum=momentum, eps=epsilon,
                                 name=name)


RMSProp = RMSprop

__all__ = ["SGD", "Adam", "RMSProp", "RMSprop"]
