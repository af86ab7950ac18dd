"""The random numbers of ``graphc.nn``: weight initialisation, shuffling and dropout noise.

Everything draws from one seeded stream, so that a script that calls :func:`set_random_seed` (or none:
the default seed is 0) builds the same weights and trains the same way on every run.
"""

from __future__ import annotations

import numpy as np

from graphc.errors import ArgumentError

_state = {"generator": np.random.default_rng(0)}


def set_random_seed(seed: int) -> None:
    """Restart ``graphc.nn``'s random stream from ``seed`` (a non-negative integer), as
    ``keras.utils.set_random_seed`` does: layers built afterwards get the same initial weights."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ArgumentError(f"set_random_seed: expected a non-negative integer, got {seed!r}")
    _state["generator"] = np.random.default_rng(int(seed))


def generator(seed: int | None = None) -> np.random.Generator:
    """A generator seeded with ``seed``, or the shared stream when ``seed`` is None."""
    return np.random.default_rng(seed) if seed is not None else _state["generator"]


def draw_seed() -> int:
    """A fresh seed from the shared stream (a model's training seed: shuffling and dropout)."""
    return int(_state["generator"].integers(0, 2**63 - 1))
