"""Looking at what graphc did to a training step: an interactive report in the browser.

    python3 examples/inspect_report.py [OUT.html] [--device DEVICE]

A small classifier (16 inputs, 32 hidden ReLU units, 4 classes) is built in name scopes (``dense``,
``logits``, ``loss``), with the loss written by hand as ``-sum(log(softmax(z)) * one_hot(y))``; Adam
trains it.  ``gc.report`` writes one HTML file (default: ``report.html`` in the system's temporary
folder) that opens offline in any browser: the graph after each phase, name scopes and fused kernels as
boxes to open, a click on a node for its facts and the rewrites that made it.  The first loss is
checked against NumPy, and training must lower the loss.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

import graphc as gc

BATCH, D_IN, HIDDEN, CLASSES, STEPS = 64, 16, 32, 4, 40


def main(device: str = "cpu", out: str | None = None) -> None:
    rng = np.random.default_rng(0)
    x = gc.placeholder("float32", (None, D_IN), name="x")
    labels = gc.placeholder("int64", (None,), name="labels")
    w1_0 = (rng.standard_normal((D_IN, HIDDEN)) * np.sqrt(2 / D_IN)).astype(np.float32)
    w2_0 = (rng.standard_normal((HIDDEN, CLASSES)) * np.sqrt(1 / HIDDEN)).astype(np.float32)
    with gc.name_scope("dense"):
        w1 = gc.Variable(w1_0, name="w")
        b1 = gc.Variable(np.zeros(HIDDEN, np.float32), name="b")
        h = gc.relu(x @ w1 + b1)
    with gc.name_scope("logits"):
        w2 = gc.Variable(w2_0, name="w")
        b2 = gc.Variable(np.zeros(CLASSES, np.float32), name="b")
        logits = h @ w2 + b2
    with gc.name_scope("loss"):
        # the naive formula on purpose: the stabilize phase rewrites it into the stable fused op
        loss = gc.mean(-gc.sum(gc.log(gc.softmax(logits)) * gc.one_hot(labels, CLASSES), axis=1))
    step = gc.function([x, labels], loss, updates=gc.optimizers.Adam(0.01).updates(loss, [w1, b1, w2, b2]),
                       device=device)

    xs = rng.standard_normal((BATCH, D_IN)).astype(np.float32)
    ys = (xs[:, :CLASSES].argmax(axis=1)).astype(np.int64)  # a learnable rule

    z = np.maximum(xs @ w1_0, 0) @ w2_0
    z = z - z.max(axis=1, keepdims=True)
    expected = -np.mean(z[np.arange(BATCH), ys] - np.log(np.exp(z).sum(axis=1)))
    first = float(step(xs, ys))
    assert abs(first - expected) <= 1e-5 * max(1.0, abs(expected)), (first, expected)
    for _ in range(STEPS):
        last = float(step(xs, ys))
    assert last < 0.5 * first, (first, last)
    print(f"loss {first:.4f} -> {last:.4f} after {STEPS + 1} Adam steps")

    out = out or os.path.join(tempfile.gettempdir(), "report.html")
    gc.report(step, out, title="graphc report: a small classifier's Adam step")
    print(f"wrote {out}: open it in a browser")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", help="where to write the report (default: report.html in the temp folder)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, cuda-sim or reference")
    arguments = parser.parse_args()
    main(arguments.device, arguments.out)
