"""Training steps: graphc (``device="cpu"``) against a hand-written NumPy step and jax.jit (when installed).

    python3 benchmarks/bench_training.py [--quick] [--threads N] [--only e,f]

(e) The two-layer ReLU network of ``examples/two_layer_relu.py``, same sizes (batch 32, 500 -> 50 -> 500, mean
    squared error, SGD with lr 1.0 and momentum 0.9), run as the example runs it:
    ``Session(device="cpu").run([loss, train_op], feed_dict)``.
(f) The classifier of ``examples/softmax_classifier.py`` at 784 -> 500 (tanh) -> 10 with batch 256 (softmax
    cross-entropy, SGD with lr 0.1 and momentum 0.9), run as that example runs it:
    ``gc.function([x, y], loss, updates=opt.updates(loss, params), device="cpu")``.

One step is forward, backward and the parameter update, on a fixed batch, returning the loss.  Before any
timing, three steps from the same initial weights are taken on every side and the losses and the final
weights are compared with NumPy's.  Every side is then reset to the initial weights and the sides are timed
interleaved, step by step, so all time the same trajectory (at most 300 steps).
"""

from __future__ import annotations

from _timing import early_thread_setup

early_thread_setup()  # before NumPy is imported: BLAS/OpenMP thread variables from --threads

import math  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _harness import Section, main_cli  # noqa: E402
from _timing import (  # noqa: E402
    Config,
    Row,
    above,
    check_close,
    compare,
    limit_blas,
    measure_many,
    optional,
    skip_note,
)

import graphc as gc  # noqa: E402

VERIFY_STEPS = 3
MAX_TIMED_STEPS = 300

# (e): examples/two_layer_relu.py
BATCH_E, D_IN_E, HIDDEN_E, D_OUT_E = 32, 500, 50, 500
LR_E, MOMENTUM_E = 1.0, 0.9
# (f): examples/softmax_classifier.py's model at 784-500-10, batch 256
BATCH_F, N_IN_F, HIDDEN_F, CLASSES_F = 256, 784, 500, 10
LR_F, MOMENTUM_F = 0.1, 0.9


@dataclass
class Trainer:
    """One implementation of a training step on a fixed batch."""

    step: Callable[[], float]                 # one step; returns the loss (computed before the update)
    params: Callable[[], list[np.ndarray]]    # the current parameter values
    reset: Callable[[], None]                 # back to the initial weights, zero momentum


# ---- the data and the initial weights -------------------------------------------------------------------------

def two_layer_problem() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(initial [w1, w2], x, y) with the example's initialisation."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((D_IN_E, HIDDEN_E), np.float32) * np.float32(np.sqrt(2 / D_IN_E))
    w2 = rng.standard_normal((HIDDEN_E, D_OUT_E), np.float32) * np.float32(np.sqrt(1 / HIDDEN_E))
    x = rng.standard_normal((BATCH_E, D_IN_E), np.float32)
    y = rng.standard_normal((BATCH_E, D_OUT_E), np.float32)
    return [w1, w2], x, y


def classifier_problem(batch: int = BATCH_F) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(initial [w_hidden, b_hidden, w_out, b_out], x, labels): Glorot-uniform weights as in the example, but a
    small random ``w_out`` (the example's zeros would make the first step's hidden-layer gradient zero)."""
    rng = np.random.default_rng(1234)

    def glorot(n_in: int, n_out: int) -> np.ndarray:
        bound = np.sqrt(6.0 / (n_in + n_out))
        return rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32)

    params = [glorot(N_IN_F, HIDDEN_F), np.zeros(HIDDEN_F, np.float32), glorot(HIDDEN_F, CLASSES_F),
              np.zeros(CLASSES_F, np.float32)]
    prototypes = rng.standard_normal((CLASSES_F, N_IN_F)) * 0.1
    labels = rng.integers(0, CLASSES_F, batch)
    x = (prototypes[labels] + 0.6 * rng.standard_normal((batch, N_IN_F))).astype(np.float32)
    return params, x, labels.astype(np.int64)


# ---- graphc --------------------------------------------------------------------------------------------------

def _graphc_reset(variables: list[Any], init: list[np.ndarray], opt: Any) -> Callable[[], None]:
    """A reset for graphc: the parameters back to ``init``, the optimizer's slots to zero."""
    def reset() -> None:
        for var, value in zip(variables, init):
            var.assign(value.copy())
        for slot in opt.variables():
            slot.assign(np.zeros_like(slot.value))

    return reset


def graphc_two_layer(init: list[np.ndarray], xb: np.ndarray, yb: np.ndarray, threads: int) -> Trainer:
    """The example's graph and its ``sess.run([loss, train_op], feed_dict)``, on the CPU backend."""
    x = gc.placeholder("float32", (None, D_IN_E), name="x")
    y = gc.placeholder("float32", (None, D_OUT_E), name="y")
    w1 = gc.Variable(init[0].copy(), name="w1")
    w2 = gc.Variable(init[1].copy(), name="w2")
    loss = gc.mean(gc.square(gc.relu(x @ w1) @ w2 - y))
    opt = gc.optimizers.SGD(LR_E, momentum=MOMENTUM_E)
    train_op = opt.minimize(loss)
    sess = gc.Session(device="cpu", threads=threads)
    feed = {x: xb, y: yb}

    def step() -> float:
        return float(sess.run([loss, train_op], feed_dict=feed)[0])

    return Trainer(step, lambda: [w1.value, w2.value], _graphc_reset([w1, w2], init, opt))


def build_classifier(init: list[np.ndarray], threads: int) -> tuple[Any, list[Any], Any]:
    """The classifier's training function ``train(x, y) -> loss`` (Theano style, as in the example), its
    parameter Variables and its optimizer.  Also used by (h) to measure compile time."""
    x = gc.placeholder("float32", (None, N_IN_F), name="x")
    y = gc.placeholder("int64", (None,), name="y")
    params = [gc.Variable(value.copy(), name=name)
              for value, name in zip(init, ["w_hidden", "b_hidden", "w_out", "b_out"])]
    w_hidden, b_hidden, w_out, b_out = params
    hidden = gc.tanh(x @ w_hidden + b_hidden)
    logits = hidden @ w_out + b_out
    loss = gc.mean(gc.softmax_cross_entropy(logits, y))
    opt = gc.optimizers.SGD(LR_F, momentum=MOMENTUM_F)
    train = gc.function([x, y], loss, updates=opt.updates(loss, params), device="cpu", threads=threads, name="train")
    return train, params, opt


def graphc_classifier(init: list[np.ndarray], xb: np.ndarray, yb: np.ndarray, threads: int) -> Trainer:
    """(f) on graphc: the example's ``train(x, y)`` on the CPU backend."""
    train, params, opt = build_classifier(init, threads)
    return Trainer(lambda: float(train(xb, yb)), lambda: [p.value for p in params], _graphc_reset(params, init, opt))


# ---- NumPy, by hand ------------------------------------------------------------------------------------------

def _numpy_trainer(init: list[np.ndarray], grads: Callable[[list[np.ndarray]], tuple[float, list[np.ndarray]]],
                   lr: float, momentum: float) -> Trainer:
    """SGD with momentum as graphc's optimizer does it: ``v <- momentum * v - lr * g``, ``p <- p + v``, in place."""
    params = [p.copy() for p in init]
    velocity = [np.zeros_like(p) for p in init]

    def step() -> float:
        loss, gs = grads(params)
        for p, v, g in zip(params, velocity, gs):
            v *= momentum
            v -= lr * g
            p += v
        return loss

    def reset() -> None:
        for p, v, p0 in zip(params, velocity, init):
            p[...] = p0
            v.fill(0)

    return Trainer(step, lambda: params, reset)


def numpy_two_layer(init: list[np.ndarray], x: np.ndarray, y: np.ndarray, threads: int) -> Trainer:
    """(e) by hand in NumPy: forward, backward (MSE, ReLU), SGD with momentum."""
    def grads(params: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        w1, w2 = params
        pre = x @ w1
        h = np.maximum(pre, 0)
        diff = h @ w2 - y
        loss = float(np.mean(np.square(diff)))
        d_pred = diff * np.float32(2 / diff.size)
        g2 = h.T @ d_pred
        dh = d_pred @ w2.T
        dh *= pre > 0
        return loss, [x.T @ dh, g2]

    return _numpy_trainer(init, grads, LR_E, MOMENTUM_E)


def numpy_classifier(init: list[np.ndarray], x: np.ndarray, labels: np.ndarray, threads: int) -> Trainer:
    """(f) by hand in NumPy: forward, stable softmax cross-entropy, backward through tanh, SGD with momentum."""
    rows = np.arange(len(labels))

    def grads(params: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        w1, b1, w2, b2 = params
        h = np.tanh(x @ w1 + b1)
        logits = h @ w2 + b2
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, labels]))
        d_logits = e / total
        d_logits[rows, labels] -= 1
        d_logits *= np.float32(1 / len(labels))
        dz = d_logits @ w2.T
        dz *= 1 - h * h
        return loss, [x.T @ dz, dz.sum(axis=0), h.T @ d_logits, d_logits.sum(axis=0)]

    return _numpy_trainer(init, grads, LR_F, MOMENTUM_F)


# ---- jax.jit -------------------------------------------------------------------------------------------------

def _jax_trainer(init: list[np.ndarray], loss_fn: Callable[..., Any], data: tuple[Any, ...], lr: float,
                 momentum: float) -> Trainer:
    """A jax.jit training step for ``loss_fn(params, *data)``: SGD with momentum as graphc's, on device arrays."""
    import jax
    import jax.numpy as jnp

    @jax.jit
    def step_fn(params: Any, velocity: Any, *batch: Any) -> Any:
        loss, gs = jax.value_and_grad(loss_fn)(params, *batch)
        velocity = [momentum * v - lr * g for v, g in zip(velocity, gs)]
        return loss, [p + v for p, v in zip(params, velocity)], velocity

    batch = tuple(jax.device_put(d) for d in data)
    state: dict[str, Any] = {}

    def reset() -> None:
        state["params"] = [jnp.asarray(p) for p in init]
        state["velocity"] = [jnp.zeros_like(p) for p in init]

    def step() -> float:
        loss, state["params"], state["velocity"] = step_fn(state["params"], state["velocity"], *batch)
        return float(loss.block_until_ready())

    reset()
    return Trainer(step, lambda: [np.asarray(p) for p in state["params"]], reset)


def jax_two_layer(init: list[np.ndarray], x: np.ndarray, y: np.ndarray, threads: int) -> Trainer:
    """(e) with jax.jit: ``value_and_grad`` of the same loss, SGD with momentum, one jitted step."""
    import jax
    import jax.numpy as jnp

    def loss_fn(params: Any, x: Any, y: Any) -> Any:
        w1, w2 = params
        return jnp.mean(jnp.square(jax.nn.relu(x @ w1) @ w2 - y))

    return _jax_trainer(init, loss_fn, (x, y), LR_E, MOMENTUM_E)


def jax_classifier(init: list[np.ndarray], x: np.ndarray, labels: np.ndarray, threads: int) -> Trainer:
    """(f) with jax.jit: ``value_and_grad`` of the same loss, SGD with momentum, one jitted step."""
    import jax
    import jax.numpy as jnp

    def loss_fn(params: Any, x: Any, labels: Any) -> Any:
        w1, b1, w2, b2 = params
        logits = jnp.tanh(x @ w1 + b1) @ w2 + b2
        logp = jax.nn.log_softmax(logits, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))

    return _jax_trainer(init, loss_fn, (x, labels), LR_F, MOMENTUM_F)


# ---- the comparison ------------------------------------------------------------------------------------------

Builder = Callable[[list[np.ndarray], np.ndarray, np.ndarray, int], Trainer]


def _trajectory(trainer: Trainer) -> tuple[list[float], list[np.ndarray]]:
    """From the initial weights: the losses of the first steps and the parameters after them."""
    trainer.reset()
    losses = [trainer.step() for _ in range(VERIFY_STEPS)]
    return losses, [np.array(p) for p in trainer.params()]


def run_training(section: str, label: str, problem: tuple[list[np.ndarray], np.ndarray, np.ndarray],
                 builders: dict[str, Builder], cfg: Config, tol: tuple[float, float]) -> list[Row]:
    """Verify every side's first steps against NumPy's (graphc: raise; others: skip), then time one step each."""
    init, x, y = problem
    rtol, atol = tol
    with limit_blas(cfg.threads):
        trainers: dict[str, Trainer] = {}
        for name, build in builders.items():
            if name.startswith("jax") and optional("jax") is None:
                skip_note(section, "jax")
                continue
            try:
                trainers[name] = build(init, x, y, cfg.threads)
            except Exception as exc:
                if name == "graphc":
                    raise
                skip_note(section, name, f"failed to build: {exc!r}")
        ref_losses, ref_params = _trajectory(trainers["numpy"])
        for name in list(trainers):
            if name == "numpy":
                continue
            try:
                losses, params = _trajectory(trainers[name])
                check_close(f"({section}) {name} vs numpy: losses of the first {VERIFY_STEPS} steps", losses,
                            ref_losses, rtol, atol)
                for i, (got, expected) in enumerate(zip(params, ref_params)):
                    check_close(f"({section}) {name} vs numpy: parameter {i} after {VERIFY_STEPS} steps", got,
                                expected, rtol, atol)
            except Exception as exc:
                if name == "graphc":
                    raise
                skip_note(section, name, f"disagrees with NumPy or failed: {exc}")
                del trainers[name]
        for trainer in trainers.values():
            trainer.reset()
        timings = measure_many({name: t.step for name, t in trainers.items()}, cfg.runs, min_time=cfg.min_time,
                               max_runs=MAX_TIMED_STEPS, block=1 if cfg.threads == 1 else 8)
    graphc_time = timings.pop("graphc")
    targets = None if cfg.quick else {"numpy": above(1), "jax.jit": above(1)}
    rows = compare(section, label, graphc_time, timings, targets)
    for name in builders:
        if name not in timings and name != "graphc":  # a target that could not be measured stays visible
            rows.append(Row(section, f"{label} vs {name}", math.nan, "x", (targets or {}).get(name),
                            note=f"{name} skipped, see the section output"))
    return rows


def section_e(cfg: Config) -> list[Row]:
    """(e) two_layer_relu.py's step (Session.run) vs NumPy by hand and jax.jit; target: faster than both."""
    return run_training("e", f"step {BATCH_E}x{D_IN_E}-{HIDDEN_E}-{D_OUT_E}", two_layer_problem(),
                        {"graphc": graphc_two_layer, "numpy": numpy_two_layer, "jax.jit": jax_two_layer}, cfg,
                        (2e-4, 1e-5))


def section_f(cfg: Config) -> list[Row]:
    """(f) the 784-500-10 classifier's step (gc.function) vs NumPy by hand and jax.jit; target: faster than both."""
    batch = 32 if cfg.quick else BATCH_F
    return run_training("f", f"step {batch}x{N_IN_F}-{HIDDEN_F}-{CLASSES_F}", classifier_problem(batch),
                        {"graphc": graphc_classifier, "numpy": numpy_classifier, "jax.jit": jax_classifier}, cfg,
                        (2e-4, 1e-5))


SECTIONS: dict[str, Section] = {
    "e": ("training step: two-layer ReLU network (examples/two_layer_relu.py)", section_e),
    "f": ("training step: 784-500-10 softmax classifier, batch 256 (examples/softmax_classifier.py)", section_f),
}


if __name__ == "__main__":
    raise SystemExit(main_cli(SECTIONS, __doc__))
