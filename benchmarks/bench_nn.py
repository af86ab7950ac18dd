"""Training an epoch with ``graphc.nn``'s Keras-style ``fit``, against ``tf.keras``'s ``fit`` and a hand-written
PyTorch loop (eager, CPU).

    python3 benchmarks/bench_nn.py [--quick] [--threads N] [--repeat N] [--only q,t]

(--quick: small data, and graphc against torch only: importing TensorFlow and tracing its models take longer
than the rest of the smoke run.)

Targets (issue 15), both sections: >= 3x tf.keras's fit, faster than the torch loop.

(q) An MLP 784 -> 256 (ReLU) -> 128 (ReLU) -> 10 (softmax) on 60,000 random examples (float32 inputs near one of
    ten random prototypes, int64 labels; --quick: 320).
(t) A small CNN on 1 x 28 x 28 images: Conv2D(16, 3, ReLU), MaxPool2D(2), Conv2D(32, 3, ReLU), MaxPool2D(2),
    Flatten, Dense(10, softmax), on 10,000 random images (--quick: 160); NCHW for graphc and torch, NHWC for
    tf.keras (one channel: the same memory).

Every side trains with sparse categorical cross-entropy (graphc and Keras from the softmax output, which graphc
turns into the cross-entropy of the logits; torch ``F.cross_entropy`` of the logits), Adam (lr 1e-3,
eps 1e-8: graphc's default, given to Keras, torch's default), batch 128 with the last batch holding the rest,
and a new shuffle every epoch:

* graphc: ``nn.Sequential([...])``, ``model.compile(optimizer=gc.optimizers.Adam(1e-3),
  loss="sparse_categorical_crossentropy", threads=N)``, then ``model.fit(x, y, batch_size=128,
  epochs=k + 1, initial_epoch=k, verbose=0)`` per epoch;
* tf.keras: the same model and calls (``keras.optimizers.Adam(1e-3, epsilon=1e-8)``; Keras's default
  ``jit_compile="auto"``, which on a CPU is no XLA), with TensorFlow's intra- and inter-op pools set to N threads;
* torch: ``nn.Sequential``, ``torch.optim.Adam``, ``torch.randperm`` each epoch, ``x[idx]`` batches,
  ``F.cross_entropy``, ``backward()``, ``opt.step()`` and the running loss (``loss.item()``), on
  ``torch.set_num_threads(N)``.

Before any timing, every side trains 3 steps of 32 examples (no shuffling) from the same initial weights
(graphc's, converted to each side's layout) with plain SGD (lr 0.1), on a model of its own, and its mean loss
and final weights are compared with NumPy's by hand (graphc's mismatch fails the section, another side's is
skipped).  SGD, not Adam: Adam's update hardly depends on a gradient's size, so it would hide a wrong gradient
and magnify the rounding of one that is nearly zero; graphc's Adam has its own tests.

Then each side gets a model on the full data.  graphc's is compiled with an empty compile cache and its first
epoch (which compiles the native code, for the full and the last batch's shapes) is timed apart: the compile
time is ``compile()`` + that first epoch - the best steady epoch.  The others' first epochs (tf.keras traces
its graph) are untimed warm-ups.  The steady epochs are timed interleaved (graphc, torch, tf.keras, graphc's
steps alone, graphc, ...; 7 rounds, --repeat N; quick 2) and the ratios are the other's epoch time over
graphc's (above 1: graphc is faster), best and [median].  "graphc's steps alone" calls
``model.train_function(x_batch, y_batch)`` on batches shuffled and sliced beforehand: what the native steps
cost, and so how much of ``fit``'s epoch is Python around them (gathering the shuffled batches, logs,
callbacks).
"""

from __future__ import annotations

from _timing import early_thread_setup

early_thread_setup()  # before NumPy is imported: BLAS/OpenMP thread variables from --threads

import contextlib  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported: no start-up banner on stderr

import numpy as np  # noqa: E402
from _harness import Section, main_cli  # noqa: E402
from _timing import (  # noqa: E402
    SETTLE_SECONDS,
    Config,
    Row,
    above,
    at_least,
    check_close,
    compare,
    fmt_time,
    limit_blas,
    measure,
    measure_many,
    optional,
    skip_note,
)
from bench_training import _conv, _conv_grads, _pool, _unpool  # noqa: E402

import graphc as gc  # noqa: E402
import graphc.nn as nn  # noqa: E402

BATCH, LR, BETA1, BETA2, EPS = 128, 1e-3, 0.9, 0.999, 1e-8
CLASSES = 10
MLP_EXAMPLES, MLP_EXAMPLES_QUICK = 60_000, 320  # quick: batches of 128, 128 and 64 (the last batch's shape too)
CNN_EXAMPLES, CNN_EXAMPLES_QUICK = 10_000, 160
ROUNDS, ROUNDS_QUICK = 7, 2  # timed epochs per side (--repeat N)
VERIFY_STEPS, VERIFY_BATCH = 3, 32
VERIFY_LR = 0.1  # the verification's plain SGD
TOLERANCE = (2e-4, 1e-5)  # rtol, atol of the verification (float32 sums in other orders)
SEED = 0


@dataclass
class Side:
    """One implementation: ``epoch()`` trains one epoch and returns its mean loss; ``weights()`` in graphc's
    layout."""

    epoch: Callable[[], float]
    weights: Callable[[], list[np.ndarray]]


@dataclass(frozen=True)
class Problem:
    """(q) or (t): the model's kind, the data, the common initial weights (graphc's layout)."""

    kind: str  # "mlp" or "cnn"
    x: np.ndarray  # (n, 784) or (n, 1, 28, 28), float32
    y: np.ndarray  # (n,), int64
    init: list[np.ndarray]


# ---- the data and the initial weights -------------------------------------------------------------------------

def make_data(kind: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` examples near one of ten random prototypes (so that the loss goes down), seeded."""
    rng = np.random.default_rng(42)
    shape = (784,) if kind == "mlp" else (1, 28, 28)
    prototypes = rng.standard_normal((CLASSES, *shape), np.float32)
    y = rng.integers(0, CLASSES, n)
    x = rng.standard_normal((n, *shape), np.float32)
    x += prototypes[y]
    return x, y.astype(np.int64)


def graphc_model(kind: str) -> nn.Sequential:
    if kind == "mlp":
        return nn.Sequential([nn.Input((784,)), nn.Dense(256, activation="relu"), nn.Dense(128, activation="relu"),
                              nn.Dense(CLASSES, activation="softmax")])
    return nn.Sequential([nn.Input((1, 28, 28)), nn.Conv2D(16, 3, activation="relu"), nn.MaxPool2D(2),
                          nn.Conv2D(32, 3, activation="relu"), nn.MaxPool2D(2), nn.Flatten(),
                          nn.Dense(CLASSES, activation="softmax")])


def make_problem(kind: str, n: int) -> Problem:
    nn.set_random_seed(SEED)
    init = graphc_model(kind).get_weights()  # Glorot-uniform kernels, zero biases
    x, y = make_data(kind, n)
    return Problem(kind, x, y, init)


# ---- graphc ---------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def compile_cache_at(path: str) -> Iterator[None]:
    """graphc's compile cache in ``path`` for the body (read on every compile)."""
    before = os.environ.get("GRAPHC_CACHE_DIR")
    os.environ["GRAPHC_CACHE_DIR"] = path
    try:
        yield
    finally:
        if before is None:
            del os.environ["GRAPHC_CACHE_DIR"]
        else:
            os.environ["GRAPHC_CACHE_DIR"] = before


def graphc_fit(kind: str, init: list[np.ndarray], x: np.ndarray, y: np.ndarray, threads: int, batch: int,
               check: bool = False) -> tuple[Side, nn.Sequential]:
    """(the side, its model): ``model.fit`` one epoch a call."""
    model = graphc_model(kind)
    model.set_weights(init)
    opt = gc.optimizers.SGD(VERIFY_LR) if check else gc.optimizers.Adam(LR)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", threads=threads)
    epochs = [0]

    def epoch() -> float:
        k = epochs[0]
        epochs[0] += 1
        history = model.fit(x, y, batch_size=batch, epochs=k + 1, initial_epoch=k, shuffle=not check,
                            verbose=0)
        return float(history.history["loss"][-1])

    return Side(epoch, model.get_weights), model


def graphc_side(kind: str, init: list[np.ndarray], x: np.ndarray, y: np.ndarray, threads: int, batch: int,
                check: bool = False) -> Side:
    return graphc_fit(kind, init, x, y, threads, batch, check)[0]


def graphc_steps_only(model: nn.Sequential, x: np.ndarray, y: np.ndarray, batch: int) -> Callable[[], float]:
    """An epoch of ``model.train_function`` calls alone, on batches shuffled and sliced beforehand."""
    order = np.random.default_rng(1).permutation(len(x))
    xs, ys = x[order], y[order]
    batches = [(xs[s:s + batch], ys[s:s + batch]) for s in range(0, len(x), batch)]
    step = model.train_function
    assert step is not None

    def epoch() -> float:
        total = 0.0
        for xb, yb in batches:
            total += float(step(xb, yb)[0]) * len(xb)
        return total / len(x)

    return epoch


# ---- NumPy by hand (the reference of the verification) ---------------------------------------------------------

def _softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """(the mean loss, its gradient with respect to the logits)."""
    rows = np.arange(len(labels))
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, labels]))
    d = e / total
    d[rows, labels] -= 1
    d *= np.float32(1 / len(labels))
    return loss, d


def mlp_grads(params: list[np.ndarray], x: np.ndarray, labels: np.ndarray) -> tuple[float, list[np.ndarray]]:
    w1, b1, w2, b2, w3, b3 = params
    z1 = x @ w1 + b1
    h1 = np.maximum(z1, 0)
    z2 = h1 @ w2 + b2
    h2 = np.maximum(z2, 0)
    loss, d = _softmax_cross_entropy(h2 @ w3 + b3, labels)
    g3, gb3 = h2.T @ d, d.sum(axis=0)
    d = (d @ w3.T) * (z2 > 0)
    g2, gb2 = h1.T @ d, d.sum(axis=0)
    d = (d @ w2.T) * (z1 > 0)
    return loss, [x.T @ d, d.sum(axis=0), g2, gb2, g3, gb3]


def cnn_grads(params: list[np.ndarray], x: np.ndarray, labels: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """im2col convolutions (bench_training's helpers); the second pool drops the 11th row and column."""
    c1, b1, c2, b2, w, b = params
    z1, win1 = _conv(x, c1)
    a1 = np.maximum(z1 + b1[:, None, None], 0)  # 16 x 26 x 26
    p1, m1 = _pool(a1)  # 13 x 13
    z2, win2 = _conv(p1, c2)
    a2 = np.maximum(z2 + b2[:, None, None], 0)  # 32 x 11 x 11
    p2, m2 = _pool(np.ascontiguousarray(a2[:, :, :10, :10]))  # 32 x 5 x 5
    f = p2.reshape(len(x), -1)
    loss, d = _softmax_cross_entropy(f @ w + b, labels)
    gw, gb = f.T @ d, d.sum(axis=0)
    da2 = np.zeros_like(a2)
    da2[:, :, :10, :10] = _unpool((d @ w.T).reshape(p2.shape), m2)
    da2 *= a2 > 0
    dp1, gc2 = _conv_grads(win2, c2, da2, True)
    da1 = _unpool(dp1, m1) * (a1 > 0)
    _, gc1 = _conv_grads(win1, c1, da1, False)
    return loss, [gc1, da1.sum(axis=(0, 2, 3)), gc2, da2.sum(axis=(0, 2, 3)), gw, gb]


def numpy_reference(problem: Problem, x: np.ndarray, y: np.ndarray, batch: int) -> tuple[float, list[np.ndarray]]:
    """(the mean loss, the weights) after an epoch of plain SGD in order (no shuffling)."""
    grads = mlp_grads if problem.kind == "mlp" else cnn_grads
    params = [p.copy() for p in problem.init]
    total = 0.0
    for start in range(0, len(x), batch):
        xb, yb = x[start:start + batch], y[start:start + batch]
        loss, gs = grads(params, xb, yb)
        total += loss * len(xb)
        for p, g in zip(params, gs):
            p -= np.float32(VERIFY_LR) * g
    return total / len(x), params


# ---- torch (eager, CPU) ----------------------------------------------------------------------------------------

def torch_side(kind: str, init: list[np.ndarray], x: np.ndarray, y: np.ndarray, threads: int, batch: int,
               check: bool = False) -> Side:
    """A hand-written loop: randperm, ``x[idx]``, forward, ``F.cross_entropy`` of the logits, backward, Adam."""
    import torch
    import torch.nn.functional as F
    from torch import nn as tnn

    torch.set_num_threads(threads)
    if kind == "mlp":
        model = tnn.Sequential(tnn.Linear(784, 256), tnn.ReLU(), tnn.Linear(256, 128), tnn.ReLU(),
                               tnn.Linear(128, CLASSES))
    else:
        model = tnn.Sequential(tnn.Conv2d(1, 16, 3), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(16, 32, 3), tnn.ReLU(),
                               tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(800, CLASSES))
    params = list(model.parameters())  # weight, bias per layer: graphc's order
    with torch.no_grad():
        for p, value in zip(params, init):
            p.copy_(torch.from_numpy(np.ascontiguousarray(value.T if value.ndim == 2 else value)))
    opt = (torch.optim.SGD(params, lr=VERIFY_LR) if check
           else torch.optim.Adam(params, lr=LR, betas=(BETA1, BETA2), eps=EPS))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n = len(x)
    generator = torch.Generator().manual_seed(SEED)

    def epoch() -> float:
        order = torch.arange(n) if check else torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            xb, yb = xt[idx], yt[idx]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        return total / n

    def weights() -> list[np.ndarray]:
        values = [p.detach().numpy() for p in params]
        return [np.ascontiguousarray(v.T) if v.ndim == 2 else v.copy() for v in values]

    return Side(epoch, weights)


# ---- tf.keras ------------------------------------------------------------------------------------------------

def tensorflow(threads: int) -> ModuleType:
    """TensorFlow with its intra- and inter-op pools at ``threads`` (raises once its runtime has other counts)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return tf


def _to_keras(kind: str, init: list[np.ndarray]) -> list[np.ndarray]:
    """graphc's weights in Keras's layout: conv kernels OIHW -> HWIO; the dense kernel after Flatten reads
    (h, w, c) rows, not (c, h, w)."""
    if kind == "mlp":
        return [v.copy() for v in init]
    c1, b1, c2, b2, w, b = init
    dense = w.reshape(32, 5, 5, CLASSES).transpose(1, 2, 0, 3).reshape(800, CLASSES)
    return [c1.transpose(2, 3, 1, 0).copy(), b1.copy(), c2.transpose(2, 3, 1, 0).copy(), b2.copy(), dense, b.copy()]


def _from_keras(kind: str, values: list[np.ndarray]) -> list[np.ndarray]:
    if kind == "mlp":
        return [np.asarray(v) for v in values]
    c1, b1, c2, b2, w, b = (np.asarray(v) for v in values)
    dense = w.reshape(5, 5, 32, CLASSES).transpose(2, 0, 1, 3).reshape(800, CLASSES)
    return [c1.transpose(3, 2, 0, 1).copy(), b1, c2.transpose(3, 2, 0, 1).copy(), b2, dense, b]


def keras_side(kind: str, init: list[np.ndarray], x: np.ndarray, y: np.ndarray, threads: int, batch: int,
               check: bool = False) -> Side:
    """The same model in NHWC, ``model.fit(..., verbose=0)`` one epoch a call."""
    keras = tensorflow(threads).keras
    layers = keras.layers
    if kind == "mlp":
        model = keras.Sequential([keras.Input((784,)), layers.Dense(256, activation="relu"),
                                  layers.Dense(128, activation="relu"), layers.Dense(CLASSES, activation="softmax")])
        xk = x
    else:
        model = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(16, 3, activation="relu"),
                                  layers.MaxPooling2D(2), layers.Conv2D(32, 3, activation="relu"),
                                  layers.MaxPooling2D(2), layers.Flatten(),
                                  layers.Dense(CLASSES, activation="softmax")])
        xk = x.reshape(len(x), 28, 28, 1)  # one channel: NCHW's memory is NHWC's
    model.set_weights(_to_keras(kind, init))
    opt = (keras.optimizers.SGD(VERIFY_LR) if check
           else keras.optimizers.Adam(LR, beta_1=BETA1, beta_2=BETA2, epsilon=EPS))
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    epochs = [0]

    def epoch() -> float:
        k = epochs[0]
        epochs[0] += 1
        history = model.fit(xk, y, batch_size=batch, epochs=k + 1, initial_epoch=k, shuffle=not check,
                            verbose=0)
        return float(history.history["loss"][-1])

    return Side(epoch, lambda: _from_keras(kind, model.get_weights()))


# ---- the comparison ------------------------------------------------------------------------------------------

Builder = Callable[..., Side]
OTHERS: dict[str, tuple[str, Builder]] = {"torch": ("torch", torch_side), "tf.keras": ("tensorflow", keras_side)}
TARGETS = {"tf.keras": at_least(3.0), "torch": above(1.0)}  # issue 15: both sections
SLOW_IN_QUICK = {"tf.keras": "--quick: importing TensorFlow and tracing its models takes 10 s or more"}


def verify(section: str, problem: Problem, name: str, build: Builder, threads: int) -> None:
    """Train ``VERIFY_STEPS`` steps from the initial weights; raise Mismatch unless loss and weights match
    NumPy's."""
    x, y = problem.x[:VERIFY_STEPS * VERIFY_BATCH], problem.y[:VERIFY_STEPS * VERIFY_BATCH]
    reference = numpy_reference(problem, x, y, VERIFY_BATCH)
    side = build(problem.kind, problem.init, x, y, threads, VERIFY_BATCH, check=True)
    loss = side.epoch()
    rtol, atol = TOLERANCE
    check_close(f"({section}) {name} vs numpy: mean loss of {VERIFY_STEPS} steps", loss, reference[0], rtol, atol)
    for i, (got, expected) in enumerate(zip(side.weights(), reference[1])):
        check_close(f"({section}) {name} vs numpy: weight {i} after {VERIFY_STEPS} steps", got, expected, rtol, atol)


def run_fit(section: str, label: str, problem: Problem, cfg: Config) -> list[Row]:
    """Verify every side, build them on the full data, time graphc's compile, then the epochs interleaved."""
    threads = cfg.threads
    with limit_blas(threads):
        verify(section, problem, "graphc", graphc_side, threads)
        builders: dict[str, Builder] = {}
        for name, (module, build) in OTHERS.items():
            if cfg.quick and name in SLOW_IN_QUICK:
                skip_note(section, name, SLOW_IN_QUICK[name])
                continue
            if optional(module) is None:
                skip_note(section, module)
                continue
            try:
                verify(section, problem, name, build, threads)
            except Exception as exc:
                skip_note(section, name, f"disagrees with NumPy or failed: {exc}".splitlines()[0])
                continue
            builders[name] = build
        if "tf.keras" in builders:
            tf = optional("tensorflow")
            print(f"({section}) tensorflow {tf.__version__} (keras {tf.keras.__version__}), intra/inter-op threads "
                  f"{tf.config.threading.get_intra_op_parallelism_threads()}/"
                  f"{tf.config.threading.get_inter_op_parallelism_threads()}", flush=True)

        x, y = problem.x, problem.y
        with tempfile.TemporaryDirectory(prefix="graphc-bench-nn-") as cache, compile_cache_at(cache):
            start = time.perf_counter()
            graphc, model = graphc_fit(problem.kind, problem.init, x, y, threads, BATCH)
            compile_call = time.perf_counter() - start
            start = time.perf_counter()
            graphc.epoch()
            first_epoch = time.perf_counter() - start
        epochs: dict[str, Callable[[], Any]] = {"graphc": graphc.epoch}
        warm_ups: dict[str, float] = {}
        for name, build in builders.items():
            side = build(problem.kind, problem.init, x, y, threads, BATCH)
            start = time.perf_counter()
            side.epoch()
            warm_ups[name] = time.perf_counter() - start
            epochs[name] = side.epoch
        epochs["graphc steps"] = graphc_steps_only(model, x, y, BATCH)
        rounds = cfg.repeat or (ROUNDS_QUICK if cfg.quick else ROUNDS)
        timings = measure_many(epochs, rounds, warmup=0, block=1,
                               settle=0 if threads == 1 or cfg.quick else SETTLE_SECONDS)
        order = np.random.default_rng(SEED).permutation(len(x))
        shuffle = measure(lambda: [(x[order[s:s + BATCH]], y[order[s:s + BATCH]]) for s in range(0, len(x), BATCH)],
                          runs=rounds, warmup=0)

    steps = timings.pop("graphc steps")
    graphc_time = timings.pop("graphc")
    batches = math.ceil(len(x) / BATCH)
    compile_time = compile_call + first_epoch - graphc_time.best
    print(f"({section}) epoch, median of {rounds} interleaved: graphc {fmt_time(graphc_time.median)}"
          + "".join(f", {name} {fmt_time(t.median)}" for name, t in timings.items())
          + f"  ({batches} batches of {BATCH})", flush=True)
    print(f"({section}) graphc compile {signed_time(compile_time)} (compile() {fmt_time(compile_call)} + first epoch "
          f"{fmt_time(first_epoch)} - the best steady epoch; empty compile cache)"
          + "".join(f"; {name}'s first epoch {fmt_time(t)}" for name, t in warm_ups.items()), flush=True)
    python = graphc_time.median - steps.median
    print(f"({section}) graphc's epoch: native steps {fmt_time(steps.median)} ({fmt_time(steps.median / batches)} "
          f"a step, model.train_function on pre-sliced batches), the rest of fit {signed_time(python)} "
          f"({100 * python / graphc_time.median:.0f}%; gathering the shuffled batches alone "
          f"{fmt_time(shuffle.median)})", flush=True)
    rows = compare(section, label, graphc_time, timings, TARGETS)
    for name in OTHERS:
        if name not in timings:
            rows.append(Row(section, f"{label} vs {name}", math.nan, "x", None,
                            note=f"{name} skipped, see the section output"))
    rows.append(Row(section, f"{label}: graphc compile", compile_time, "s"))
    rows.append(Row(section, f"{label}: graphc steps alone", steps.median, "s",
                    note=f"fit's epoch {graphc_time.median:.3f} s"))
    return rows


def signed_time(seconds: float) -> str:
    """:func:`fmt_time` for a difference of times, which noise can make negative."""
    return f"-{fmt_time(-seconds)}" if seconds < 0 else fmt_time(seconds)


def section_q(cfg: Config) -> list[Row]:
    """(q) an MLP's epoch of fit (60,000 examples; quick: 320)."""
    n = MLP_EXAMPLES_QUICK if cfg.quick else MLP_EXAMPLES
    return run_fit("q", f"MLP 784-256-128-10 fit epoch, {n} examples", make_problem("mlp", n), cfg)


def section_t(cfg: Config) -> list[Row]:
    """(t) a small CNN's epoch of fit (10,000 images; quick: 160)."""
    n = CNN_EXAMPLES_QUICK if cfg.quick else CNN_EXAMPLES
    return run_fit("t", f"CNN conv16-pool-conv32-pool-10 fit epoch, {n} images", make_problem("cnn", n), cfg)


SECTIONS: dict[str, Section] = {
    "q": ("graphc.nn fit: an epoch of a 784-256-128-10 MLP (Adam, batch 128) vs tf.keras and a torch loop", section_q),
    "t": ("graphc.nn fit: an epoch of a small CNN on 28x28 images (Adam, batch 128) vs tf.keras and a torch loop",
          section_t),
}


if __name__ == "__main__":
    raise SystemExit(main_cli(SECTIONS, __doc__))

