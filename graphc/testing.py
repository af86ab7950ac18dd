"""Testing utilities: gradient checking against central finite differences."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.autodiff import add_all, grad
from graphc.ir.tensor import Tensor
from graphc.ops.reduce import sum as reduce_sum
from graphc.ops.state import placeholder
from graphc.runtime.session import function


def check_grad(fn: Callable[..., Tensor], inputs: Sequence[Any], eps: float = 1e-6, rtol: float = 1e-5,
               atol: float = 1e-7, seed: int = 0, order: int = 1, device: str = "cpu") -> None:
    """Check ``gc.grad`` of ``fn`` against central finite differences, in float64.

    ``fn`` takes one tensor per array in ``inputs`` and returns a tensor.  A non-scalar result is
    first reduced to a scalar with fixed random weights, so the whole Jacobian is exercised.
    ``order=2`` checks the gradient of the gradient: it differentiates the (weighted) first
    gradient again, symbolically, and compares with finite differences of the first gradient.
    Raises ``AssertionError`` naming the input and the worst element on a mismatch.  ``device``
    runs both the function and its gradient ("reference" or "cpu").
    """
    arrays = [np.array(a, dtype=np.float64) for a in inputs]
    xs = [placeholder("float64", a.shape, name=f"check_grad_x{i}") for i, a in enumerate(arrays)]
    rng = np.random.default_rng(seed)
    scalar = _weighted_scalar(fn(*xs), rng)
    for _ in range(order - 1):
        grads = grad(scalar, xs)
        scalar = add_all([_weighted_scalar(g, rng) for g in grads])
    value = function(xs, scalar, device=device)
    analytic = function(xs, grad(scalar, xs), device=device)(*arrays)
    for i, a in enumerate(arrays):
        numeric = np.zeros_like(a)
        flat = numeric.reshape(-1)
        for j in range(a.size):
            plus, minus = [x.copy() for x in arrays], [x.copy() for x in arrays]
            plus[i].reshape(-1)[j] += eps
            minus[i].reshape(-1)[j] -= eps
            flat[j] = (value(*plus) - value(*minus)) / (2 * eps)
        if not np.allclose(analytic[i], numeric, rtol=rtol, atol=atol, equal_nan=False):
            worst = np.unravel_index(np.argmax(np.abs(analytic[i] - numeric)), a.shape) if a.ndim else ()
            worst = tuple(int(k) for k in worst)
            raise AssertionError(
                f"gradient mismatch for input {i} (shape {a.shape}) at {worst}: "
                f"symbolic {float(np.asarray(analytic[i])[worst])!r}, finite differences {float(numeric[worst])!r}\n"
                f"symbolic:\n{analytic[i]}\nnumeric:\n{numeric}")


def _weighted_scalar(t: Tensor, rng: np.random.Generator) -> Tensor:
    if t.shape == ():
        return t
    if any(d is None for d in t.shape):
        raise ValueError("check_grad needs outputs of static shape")
    weights = rng.uniform(0.5, 1.5, size=t.shape) * rng.choice([-1.0, 1.0], size=t.shape)
    return reduce_sum(t * weights)


__all__ = ["check_grad"]
