"""The classifier from the Theano tutorial (a multilayer perceptron), trained with ``gc.function``.

784 inputs -> 500 tanh hidden units -> 10 classes, softmax cross-entropy loss.  The data is
synthetic but learnable: 10 random class prototypes in 784 dimensions, each sample a prototype
plus a lot of noise.  Training compiles one function whose ``updates`` come from
``gc.optimizers.SGD(...).updates(loss, params)`` (Theano style: ``theano.function([x, y], cost,
updates=updates)``); a second function measures the accuracy on a held-out set.  ``--device cuda``
runs both on a GPU (the weights stay there between steps).
"""

from __future__ import annotations

import argparse

import numpy as np

import graphc as gc

N_IN, N_HIDDEN, N_CLASSES = 784, 500, 10
N_TRAIN, N_TEST, BATCH, EPOCHS = 2000, 1000, 100, 5
NOISE = 0.6   # noise std per pixel; the prototypes have std 0.1


def make_data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    prototypes = rng.standard_normal((N_CLASSES, N_IN)) * 0.1

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, N_CLASSES, n)
        images = prototypes[labels] + NOISE * rng.standard_normal((n, N_IN))
        return images.astype(np.float32), labels

    return *sample(N_TRAIN), *sample(N_TEST)


def glorot(rng: np.random.Generator, n_in: int, n_out: int) -> np.ndarray:
    """Theano tutorial initialisation for tanh layers: uniform in +-sqrt(6 / (n_in + n_out))."""
    bound = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32)


def main(device: str = "cpu") -> None:
    rng = np.random.default_rng(1234)
    x_train, y_train, x_test, y_test = make_data(rng)

    # --- the model: symbolic inputs, shared variables, the cost ---
    x = gc.placeholder("float32", (None, N_IN), name="x")
    y = gc.placeholder("int64", (None,), name="y")
    w_hidden = gc.Variable(glorot(rng, N_IN, N_HIDDEN), name="w_hidden")
    b_hidden = gc.Variable(np.zeros(N_HIDDEN, np.float32), name="b_hidden")
    w_out = gc.Variable(np.zeros((N_HIDDEN, N_CLASSES), np.float32), name="w_out")
    b_out = gc.Variable(np.zeros(N_CLASSES, np.float32), name="b_out")
    params = [w_hidden, b_hidden, w_out, b_out]

    hidden = gc.tanh(x @ w_hidden + b_hidden)
    logits = hidden @ w_out + b_out
    loss = gc.mean(gc.softmax_cross_entropy(logits, y))
    accuracy = gc.mean(gc.cast(gc.argmax(logits, axis=1) == y, "float32"))

    # --- compile: one training step (with updates) and an evaluation function ---
    opt = gc.optimizers.SGD(0.1, momentum=0.9)
    train = gc.function([x, y], loss, updates=opt.updates(loss, params), name="train", device=device)
    evaluate = gc.function([x, y], [loss, accuracy], name="evaluate", device=device)

    test_loss0, test_acc0 = evaluate(x_test, y_test)
    print(f"before training: test loss {test_loss0:.4f}, accuracy {test_acc0:.3f} (chance: {1 / N_CLASSES:.3f})")
    epoch_losses = []
    for epoch in range(EPOCHS):
        order = rng.permutation(N_TRAIN)
        batch_losses = [float(train(x_train[idx], y_train[idx]))
                        for idx in np.split(order, N_TRAIN // BATCH)]
        epoch_losses.append(float(np.mean(batch_losses)))
        print(f"epoch {epoch}  train loss {epoch_losses[-1]:.4f}  (first batch {batch_losses[0]:.4f}, "
              f"last {batch_losses[-1]:.4f})")

    test_loss, test_acc = evaluate(x_test, y_test)
    print(f"after training:  test loss {test_loss:.4f}, accuracy {test_acc:.3f}")
    assert epoch_losses[-1] < 0.5 * epoch_losses[0], epoch_losses
    assert test_loss < 0.5 * test_loss0, (test_loss0, test_loss)
    assert test_acc > 0.8, f"held-out accuracy {test_acc:.3f} is not clearly better than chance"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, cuda-sim or reference")
    main(parser.parse_args().device)
