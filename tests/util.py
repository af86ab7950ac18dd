"""Shared helpers for the test suite."""

from __future__ import annotations

from typing import Any

import numpy as np

import graphc as gc

DEVICE = "reference"
"""The device ``run``, ``function`` and ``check_grad`` use unless told otherwise; the ``device`` fixture
(conftest.py) sets it for the op suites, which run on both devices."""


def run(outputs: Any, feeds: dict | None = None, device: str | None = None) -> Any:
    """Run ``outputs`` once in a fresh Session on ``device`` (default: ``DEVICE``)."""
    return gc.Session(device=device or DEVICE).run(outputs, feeds or {})


def function(inputs: Any, outputs: Any = None, **kwargs: Any) -> gc.Function:
    """``gc.function`` on ``DEVICE`` unless a device is given."""
    kwargs.setdefault("device", DEVICE)
    return gc.function(inputs, outputs, **kwargs)


def check_grad(fn: Any, inputs: Any, **kwargs: Any) -> None:
    """``graphc.testing.check_grad`` on ``DEVICE`` unless a device is given."""
    from graphc.testing import check_grad as check

    kwargs.setdefault("device", DEVICE)
    check(fn, inputs, **kwargs)


def assert_same(result: np.ndarray, expected: Any, rtol: float | None = None, atol: float = 0.0) -> None:
    """``result`` equals NumPy's ``expected`` in dtype, shape and value (nan where NumPy has nan)."""
    expected = np.asarray(expected)
    assert isinstance(result, np.ndarray), type(result)
    assert result.dtype == expected.dtype, (result.dtype, expected.dtype)
    assert result.shape == expected.shape, (result.shape, expected.shape)
    if rtol is None:
        rtol = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-13}.get(result.dtype, 0.0)
    if result.dtype.kind == "f":
        np.testing.assert_allclose(result, expected, rtol=rtol, atol=atol, equal_nan=True)
    else:
        np.testing.assert_array_equal(result, expected)


def graphc_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype graphc gives where NumPy gives ``dtype`` (documented: float16 -> float32, uint16+ -> int64)."""
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind == "u" and dtype.itemsize > 1:
        return np.dtype(np.int64)
    return dtype


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, low: float = -3, high: float = 3
                 ) -> np.ndarray:
    """Random values of ``dtype``: uniform floats, integers in [low, high], random bools."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        lo = max(int(low), np.iinfo(dtype).min)
        return rng.integers(lo, int(high) + 1, size=shape).astype(dtype)
    return rng.uniform(low, high, size=shape).astype(dtype)
