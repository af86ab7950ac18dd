"""What a layer call needs to know about the graph being built: training or inference, and what the
training step must do besides the gradient step (batch-norm statistics, dropout noise to feed)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from graphc.ir.tensor import Tensor
from graphc.ops.state import Variable


@dataclass
class NoiseInput:
    """A placeholder of uniform [0, 1) noise a training step is fed (dropout masks): its shape is the
    placeholder's with the batch dimension (the first, ``None``) set to the batch's size."""

    placeholder: Tensor
    dtype: np.dtype

    def sample(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        """Noise for one step of ``batch`` examples."""
        shape = (batch, *self.placeholder.shape[1:])
        return rng.random(shape, dtype=np.float64 if self.dtype == np.float64 else np.float32)


@dataclass
class BuildContext:
    """Collects what layer calls add to one graph: the state updates a training step applies after the
    gradient step (``{Variable: new value}``) and the noise inputs it is fed."""

    training: bool
    updates: dict[Variable, Tensor] = field(default_factory=dict)
    noise: list[NoiseInput] = field(default_factory=list)


_local = threading.local()


@contextlib.contextmanager
def building(training: bool) -> Iterator[BuildContext]:
    """Layer calls inside this block build a ``training`` (or inference) graph into the context yielded."""
    previous = getattr(_local, "context", None)
    context = BuildContext(training)
    _local.context = context
    try:
        yield context
    finally:
        _local.context = previous


def current_context() -> BuildContext | None:
    """The context of the innermost :func:`building` block, or None outside one (an inference call)."""
    return getattr(_local, "context", None)


def in_training(training: bool | None) -> bool:
    """A layer call's mode: ``training`` when given, else the building context's, else inference."""
    if training is not None:
        return bool(training)
    context = current_context()
    return context.training if context is not None else False
