"""The two-layer ReLU regression network from the TensorFlow 1.x tutorial, built with placeholders
and Variables and run with a Session.

Forward pass and loss only: the network maps 500 inputs through 50 hidden ReLU units back to
500 outputs, and the loss is the mean squared error against random targets.  The same numbers are
computed with NumPy directly to show they agree.
"""

from __future__ import annotations

import numpy as np

import graphc as gc

BATCH, D_IN, HIDDEN, D_OUT = 32, 500, 50, 500


def build(rng: np.random.Generator) -> tuple[gc.Tensor, gc.Tensor, gc.Tensor, list[gc.Variable]]:
    x = gc.placeholder("float32", (None, D_IN), name="x")
    y = gc.placeholder("float32", (None, D_OUT), name="y")
    w1 = gc.Variable(rng.standard_normal((D_IN, HIDDEN)).astype(np.float32) * 0.05, name="w1")
    w2 = gc.Variable(rng.standard_normal((HIDDEN, D_OUT)).astype(np.float32) * 0.05, name="w2")
    h = gc.relu(x @ w1)
    y_pred = h @ w2
    loss = gc.mean(gc.square(y_pred - y))
    return x, y, loss, [w1, w2]


def main() -> None:
    rng = np.random.default_rng(0)
    x, y, loss, (w1, w2) = build(rng)
    x_batch = rng.standard_normal((BATCH, D_IN)).astype(np.float32)
    y_batch = rng.standard_normal((BATCH, D_OUT)).astype(np.float32)

    sess = gc.Session()
    value = sess.run(loss, feed_dict={x: x_batch, y: y_batch})

    expected = np.mean(np.square(np.maximum(x_batch @ w1.value, 0) @ w2.value - y_batch))
    print(gc.dprint(loss))
    print(f"loss (graphc): {float(value):.6f}")
    print(f"loss (NumPy):  {float(expected):.6f}")
    assert np.isclose(value, expected, rtol=1e-5), (value, expected)


if __name__ == "__main__":
    main()
