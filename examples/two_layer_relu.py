"""The two-layer ReLU network from the TensorFlow 1.x tutorial, trained with a Session.

A batch of 32 random inputs (500 features) goes through 50 hidden ReLU units to 500 outputs; the
loss is the mean squared error against random targets.  The graph is built once from placeholders
and Variables; ``SGD(...).minimize(loss)`` adds the gradient (``gc.grad``) and the update ops, and
each ``sess.run([loss, train_op], feed_dict)`` computes the loss and then applies one step.  The
first loss is checked against NumPy, and the network must fit the batch.  ``--device cuda`` trains
on a GPU (``--device cuda-sim``: the CUDA backend's kernels in its emulator).
"""

from __future__ import annotations

import argparse

import numpy as np

import graphc as gc

BATCH, D_IN, HIDDEN, D_OUT = 32, 500, 50, 500
STEPS, PRINT_EVERY = 300, 25


def main(device: str = "cpu") -> None:
    rng = np.random.default_rng(0)

    # --- build the graph (nothing runs here) ---
    x = gc.placeholder("float32", (None, D_IN), name="x")
    y = gc.placeholder("float32", (None, D_OUT), name="y")
    w1 = gc.Variable(rng.standard_normal((D_IN, HIDDEN), np.float32) * np.float32(np.sqrt(2 / D_IN)), name="w1")
    w2 = gc.Variable(rng.standard_normal((HIDDEN, D_OUT), np.float32) * np.float32(np.sqrt(1 / HIDDEN)), name="w2")
    h = gc.relu(x @ w1)
    y_pred = h @ w2
    loss = gc.mean(gc.square(y_pred - y))
    train_op = gc.optimizers.SGD(1.0, momentum=0.9).minimize(loss)   # updates w1, w2 and their momentum slots

    # --- run it ---
    x_batch = rng.standard_normal((BATCH, D_IN), np.float32)
    y_batch = rng.standard_normal((BATCH, D_OUT), np.float32)
    expected_first = np.mean(np.square(np.maximum(x_batch @ w1.value, 0) @ w2.value - y_batch))

    sess = gc.Session(device=device)
    losses = []
    for step in range(STEPS):
        loss_value, _ = sess.run([loss, train_op], feed_dict={x: x_batch, y: y_batch})
        losses.append(float(loss_value))
        if step % PRINT_EVERY == 0 or step == STEPS - 1:
            print(f"step {step:4d}  loss {loss_value:.6f}")

    assert np.isclose(losses[0], expected_first, rtol=1e-5), (losses[0], expected_first)
    assert w1.value.dtype == np.float32 and w2.value.dtype == np.float32
    assert losses[-1] < 0.01 * losses[0], f"the loss did not fall enough: {losses[0]:.4f} -> {losses[-1]:.4f}"
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.6f} (first loss matches NumPy: {expected_first:.4f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, cuda-sim or reference")
    main(parser.parse_args().device)
