"""Training steps: graphc (``device="cpu"``) against a hand-written NumPy step, and jax.jit, PyTensor and torch
(eager, CPU) when they are installed.

    python3 benchmarks/bench_training.py [--quick] [--threads N] [--only e,f,n]

(e) The two-layer ReLU network of ``examples/two_layer_relu.py``, same sizes (batch 32, 500 -> 50 -> 500, mean
    squared error, SGD with lr 1.0 and momentum 0.9), run as the example runs it:
    ``Session(device="cpu").run([loss, train_op], feed_dict)``.
(f) The classifier of ``examples/softmax_classifier.py`` at 784 -> 500 (tanh) -> 10 with batch 256 (softmax
    cross-entropy, SGD with lr 0.1 and momentum 0.9), run as that example runs it:
    ``gc.function([x, y], loss, updates=opt.updates(loss, params), device="cpu")``.
(n) LeNet-5 on 1 x 28 x 28 images (conv 6 5x5, ReLU, max pool 2, conv 16 5x5, ReLU, max pool 2, dense 120, 84, 10,
    softmax cross-entropy, SGD with lr 0.01 and momentum 0.9), batch 64, as one ``gc.function``; NumPy's side
    is written with im2col windows and tensordot (no torch or jax on it).

Every side does SGD with momentum the way graphc's optimizer does (``v <- m v - lr g``, ``p <- p + v``).

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
    SETTLE_SECONDS,
    Config,
    Row,
    Target,
    at_least,
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
# (n): LeNet-5 on 1 x 28 x 28 images: conv 6 5x5, max pool 2, conv 16 5x5, max pool 2, 120, 84, 10 (ReLU)
BATCH_N, LR_N, MOMENTUM_N = 64, 0.01, 0.9
LENET_SHAPES = [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (256, 120), (120,), (120, 84), (84,), (84, 10), (10,)]


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

def lenet_problem(batch: int = BATCH_N) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(n): He-normal weights (zero biases), a batch of standard normal images and random labels (seeded)."""
    rng = np.random.default_rng(3)
    init = []
    for shape in LENET_SHAPES:
        fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
        init.append((rng.standard_normal(shape) * np.sqrt(2 / fan_in)).astype(np.float32) if len(shape) > 1
                    else np.zeros(shape, np.float32))
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    return init, x, rng.integers(0, 10, batch).astype(np.int64)


def graphc_reset(variables: list[Any], init: list[np.ndarray], opt: Any) -> Callable[[], None]:
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

    return Trainer(step, lambda: [w1.value, w2.value], graphc_reset([w1, w2], init, opt))


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
    return Trainer(lambda: float(train(xb, yb)), lambda: [p.value for p in params], graphc_reset(params, init, opt))


def graphc_lenet(init: list[np.ndarray], xb: np.ndarray, yb: np.ndarray, threads: int) -> Trainer:
    """(n) on graphc: conv2d / max_pool2d / dense layers, one ``gc.function`` with the SGD updates."""
    x = gc.placeholder("float32", (None, 1, 28, 28), name="x")
    y = gc.placeholder("int64", (None,), name="y")
    params = [gc.Variable(v.copy(), name=f"p{i}") for i, v in enumerate(init)]
    c1, b1, c2, b2, w3, b3, w4, b4, w5, b5 = params
    h = gc.max_pool2d(gc.relu(gc.conv2d(x, c1) + gc.reshape(b1, (1, 6, 1, 1))), 2)
    h = gc.max_pool2d(gc.relu(gc.conv2d(h, c2) + gc.reshape(b2, (1, 16, 1, 1))), 2)
    h = gc.reshape(h, (-1, 256))
    h = gc.relu(gc.relu(h @ w3 + b3) @ w4 + b4)
    loss = gc.mean(gc.softmax_cross_entropy(h @ w5 + b5, y))
    opt = gc.optimizers.SGD(LR_N, momentum=MOMENTUM_N)
    train = gc.function([x, y], loss, updates=opt.updates(loss, params), device="cpu", threads=threads, name="lenet")
    return Trainer(lambda: float(train(xb, yb)), lambda: [p.value for p in params], graphc_reset(params, init, opt))


# ---- NumPy, by hand ------------------------------------------------------------------------------------------

def numpy_trainer(init: list[np.ndarray], grads: Callable[[list[np.ndarray]], tuple[float, list[np.ndarray]]],
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

    return numpy_trainer(init, grads, LR_E, MOMENTUM_E)


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

    return numpy_trainer(init, grads, LR_F, MOMENTUM_F)


def _conv(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """VALID cross-correlation, NCHW by OIHW, with im2col windows (a view) and one tensordot: (out, windows)."""
    k = w.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))  # N C Ho Wo k k
    return np.tensordot(windows, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2), windows


def _conv_grads(windows: np.ndarray, w: np.ndarray, dy: np.ndarray, need_dx: bool) -> tuple[Any, np.ndarray]:
    """(dx or None, dw) of :func:`_conv`: dw by a tensordot with the windows, dx as the full correlation of dy
    with the flipped kernel."""
    k = w.shape[-1]
    dw = np.tensordot(dy, windows, axes=([0, 2, 3], [0, 2, 3]))
    if not need_dx:
        return None, dw
    padded = np.pad(dy, ((0, 0), (0, 0), (k - 1, k - 1), (k - 1, k - 1)))
    dx, _ = _conv(padded, np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)))
    return dx, dw


def _pool(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2 x 2 max pooling, stride 2: (out, where each maximum came from)."""
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // 2, 2, w // 2, 2)
    out = blocks.max(axis=(3, 5))
    return out, blocks == out[:, :, :, None, :, None]


def _unpool(dy: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n, c, h, _, w, _ = mask.shape
    return (mask * dy[:, :, :, None, :, None]).reshape(n, c, 2 * h, 2 * w)


def numpy_lenet(init: list[np.ndarray], x: np.ndarray, labels: np.ndarray, threads: int) -> Trainer:
    """(n) by hand in NumPy: im2col convolutions (tensordot), max pooling with masks, softmax cross-entropy."""
    rows = np.arange(len(labels))

    def grads(params: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        c1, b1, c2, b2, w3, b3, w4, b4, w5, b5 = params
        z1, win1 = _conv(x, c1)
        a1 = np.maximum(z1 + b1[:, None, None], 0)
        p1, m1 = _pool(a1)
        z2, win2 = _conv(p1, c2)
        a2 = np.maximum(z2 + b2[:, None, None], 0)
        p2, m2 = _pool(a2)
        f = p2.reshape(len(x), 256)
        h3 = np.maximum(f @ w3 + b3, 0)
        h4 = np.maximum(h3 @ w4 + b4, 0)
        logits = h4 @ w5 + b5
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, labels]))
        d = e / total
        d[rows, labels] -= 1
        d *= np.float32(1 / len(labels))
        g5, gb5 = h4.T @ d, d.sum(axis=0)
        d = (d @ w5.T) * (h4 > 0)
        g4, gb4 = h3.T @ d, d.sum(axis=0)
        d = (d @ w4.T) * (h3 > 0)
        g3, gb3 = f.T @ d, d.sum(axis=0)
        d = _unpool((d @ w3.T).reshape(p2.shape), m2) * (a2 > 0)
        dp1, g2 = _conv_grads(win2, c2, d, True)
        gb2 = d.sum(axis=(0, 2, 3))
        d = _unpool(dp1, m1) * (a1 > 0)
        _, g1 = _conv_grads(win1, c1, d, False)
        gb1 = d.sum(axis=(0, 2, 3))
        return loss, [g1, gb1, g2, gb2, g3, gb3, g4, gb4, g5, gb5]

    return numpy_trainer(init, grads, LR_N, MOMENTUM_N)


# ---- jax.jit -------------------------------------------------------------------------------------------------

def jax_trainer(init: list[np.ndarray], loss_fn: Callable[..., Any], data: tuple[Any, ...], lr: float,
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

    return jax_trainer(init, loss_fn, (x, y), LR_E, MOMENTUM_E)


def jax_classifier(init: list[np.ndarray], x: np.ndarray, labels: np.ndarray, threads: int) -> Trainer:
    """(f) with jax.jit: ``value_and_grad`` of the same loss, SGD with momentum, one jitted step."""
    import jax
    import jax.numpy as jnp

    def loss_fn(params: Any, x: Any, labels: Any) -> Any:
        w1, b1, w2, b2 = params
        logits = jnp.tanh(x @ w1 + b1) @ w2 + b2
        logp = jax.nn.log_softmax(logits, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))

    return jax_trainer(init, loss_fn, (x, labels), LR_F, MOMENTUM_F)


def jax_lenet(init: list[np.ndarray], x: np.ndarray, labels: np.ndarray, threads: int) -> Trainer:
    """(n) with jax.jit: lax.conv_general_dilated (NCHW, OIHW), reduce_window max pooling, SGD with momentum."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    def conv(h: Any, w: Any, b: Any) -> Any:
        out = lax.conv_general_dilated(h, w, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return jax.nn.relu(out + b[None, :, None, None])

    def pool(h: Any) -> Any:
        return lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss_fn(params: Any, x: Any, labels: Any) -> Any:
        c1, b1, c2, b2, w3, b3, w4, b4, w5, b5 = params
        h = pool(conv(pool(conv(x, c1, b1)), c2, b2)).reshape(x.shape[0], 256)
        logits = jax.nn.relu(jax.nn.relu(h @ w3 + b3) @ w4 + b4) @ w5 + b5
        logp = jax.nn.log_softmax(logits, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))

    return jax_trainer(init, loss_fn, (x, labels), LR_N, MOMENTUM_N)


# ---- torch (eager, CPU) and PyTensor ---------------------------------------------------------------------------

def torch_sgd_update(params: list[Any], velocity: list[Any], lr: float, momentum: float) -> None:
    """SGD with momentum on torch tensors after ``backward()``, in place, as graphc's optimizer does it."""
    import torch

    with torch.no_grad():
        for p, v in zip(params, velocity):
            v.mul_(momentum).sub_(p.grad, alpha=lr)
            p.add_(v)
            p.grad = None


def torch_trainer(init: list[np.ndarray], loss_fn: Callable[..., Any], data: tuple[np.ndarray, ...], lr: float,
                   momentum: float, threads: int) -> Trainer:
    """A torch eager step: ``loss_fn(params, *data)``, ``backward()``, SGD with momentum as graphc's, in place."""
    import torch

    torch.set_num_threads(threads)
    params = [torch.tensor(p, requires_grad=True) for p in init]
    velocity = [torch.zeros_like(p) for p in params]
    batch = tuple(torch.from_numpy(d) for d in data)

    def step() -> float:
        loss = loss_fn(params, *batch)
        loss.backward()
        torch_sgd_update(params, velocity, lr, momentum)
        return float(loss.detach())

    def reset() -> None:
        with torch.no_grad():
            for p, v, p0 in zip(params, velocity, init):
                p.copy_(torch.from_numpy(p0))
                v.zero_()

    return Trainer(step, lambda: [p.detach().numpy().copy() for p in params], reset)


def torch_two_layer(init: list[np.ndarray], x: np.ndarray, y: np.ndarray, threads: int) -> Trainer:
    import torch

    def loss_fn(params: Any, x: Any, y: Any) -> Any:
        w1, w2 = params
        return torch.mean(torch.square(torch.relu(x @ w1) @ w2 - y))

    return torch_trainer(init, loss_fn, (x, y), LR_E, MOMENTUM_E, threads)


def torch_classifier(init: list[np.ndarray], x: np.ndarray, labels: np.ndarray, threads: int) -> Trainer:
    import torch.nn.functional as F

    def loss_fn(params: Any, x: Any, labels: Any) -> Any:
        w1, b1, w2, b2 = params
        return F.cross_entropy((x @ w1 + b1).tanh() @ w2 + b2, labels)

    return torch_trainer(init, loss_fn, (x, labels), LR_F, MOMENTUM_F, threads)


def torch_lenet(init: list[np.ndarray], x: np.ndarray, labels: np.ndarray, threads: int) -> Trainer:
    import torch.nn.functional as F

    def loss_fn(params: Any, x: Any, labels: Any) -> Any:
        c1, b1, c2, b2, w3, b3, w4, b4, w5, b5 = params
        h = F.max_pool2d(F.relu(F.conv2d(x, c1, b1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, c2, b2)), 2).reshape(x.shape[0], 256)
        return F.cross_entropy(F.relu(F.relu(h @ w3 + b3) @ w4 + b4) @ w5 + b5, labels)

    return torch_trainer(init, loss_fn, (x, labels), LR_N, MOMENTUM_N, threads)


def pytensor_trainer(init: list[np.ndarray], loss_fn: Callable[..., Any], data: tuple[np.ndarray, ...],
                      kinds: tuple[str, ...], lr: float, momentum: float) -> Trainer:
    """A compiled PyTensor function with the SGD-with-momentum updates on shared variables."""
    import pytensor
    import pytensor.tensor as pt

    params = [pytensor.shared(p.copy(), name=f"p{i}") for i, p in enumerate(init)]
    velocity = [pytensor.shared(np.zeros_like(p)) for p in init]
    inputs = [pt.tensor(dtype=d.dtype.name, shape=(None,) * d.ndim, name=k) for d, k in zip(data, kinds)]
    loss = loss_fn(params, *inputs)
    grads = pytensor.grad(loss, params)
    updates = []
    for p, v, g in zip(params, velocity, grads):
        new_v = momentum * v - lr * g
        updates += [(v, new_v), (p, p + new_v)]
    fn = pytensor.function(inputs, loss, updates=updates)

    def reset() -> None:
        for p, v, p0 in zip(params, velocity, init):
            p.set_value(p0.copy())
            v.set_value(np.zeros_like(p0))

    return Trainer(lambda: float(fn(*data)), lambda: [p.get_value() for p in params], reset)


def pytensor_two_layer(init: list[np.ndarray], x: np.ndarray, y: np.ndarray, threads: int) -> Trainer:
    import pytensor.tensor as pt

    def loss_fn(params: Any, x: Any, y: Any) -> Any:
        w1, w2 = params
        return pt.mean(pt.square(pt.maximum(x @ w1, 0) @ w2 - y))

    return pytensor_trainer(init, loss_fn, (x, y), ("x", "y"), np.float32(LR_E), np.float32(MOMENTUM_E))


def pytensor_classifier(init: list[np.ndarray], x: np.ndarray, labels: np.ndarray, threads: int) -> Trainer:
    import pytensor.tensor as pt
    from pytensor.tensor.special import log_softmax

    def loss_fn(params: Any, x: Any, labels: Any) -> Any:
        w1, b1, w2, b2 = params
        logp = log_softmax(pt.tanh(x @ w1 + b1) @ w2 + b2, axis=1)
        return -pt.mean(logp[pt.arange(labels.shape[0]), labels])

    return pytensor_trainer(init, loss_fn, (x, labels), ("x", "labels"), np.float32(LR_F), np.float32(MOMENTUM_F))


# ---- the comparison ------------------------------------------------------------------------------------------

Builder = Callable[[list[np.ndarray], np.ndarray, np.ndarray, int], Trainer]


def _trajectory(trainer: Trainer) -> tuple[list[float], list[np.ndarray]]:
    """From the initial weights: the losses of the first steps and the parameters after them."""
    trainer.reset()
    losses = [trainer.step() for _ in range(VERIFY_STEPS)]
    return losses, [np.array(p) for p in trainer.params()]


OPTIONAL_SIDES = {"jax.jit": "jax", "pytensor": "pytensor", "torch": "torch"}  # side: the module it needs


def run_training(section: str, label: str, problem: tuple[list[np.ndarray], np.ndarray, np.ndarray],
                 builders: dict[str, Builder], cfg: Config, tol: tuple[float, float],
                 targets: dict[str, Target]) -> list[Row]:
    """Verify every side's first steps against NumPy's (graphc: raise; others: skip), then time one step each
    (``targets``: graphc's ratio against a side, judged unless --quick)."""
    init, x, y = problem
    rtol, atol = tol
    with limit_blas(cfg.threads):
        trainers: dict[str, Trainer] = {}
        for name, build in builders.items():
            module = OPTIONAL_SIDES.get(name)
            if module is not None and optional(module) is None:
                skip_note(section, module)
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
                               max_runs=MAX_TIMED_STEPS, block=1 if cfg.threads == 1 else 8,
                               settle=0 if cfg.threads == 1 or cfg.quick else SETTLE_SECONDS)
    graphc_time = timings.pop("graphc")
    targets = None if cfg.quick else targets
    rows = compare(section, label, graphc_time, timings, targets)
    for name in builders:
        if name not in timings and name != "graphc":  # a target that could not be measured stays visible
            rows.append(Row(section, f"{label} vs {name}", math.nan, "x", (targets or {}).get(name),
                            note=f"{name} skipped, see the section output"))
    return rows


def section_e(cfg: Config) -> list[Row]:
    """(e) two_layer_relu.py's step (Session.run) vs NumPy by hand, jax.jit, PyTensor and torch; targets:
    >= 1.5x NumPy and >= 1.3x each of the others."""
    return run_training("e", f"step {BATCH_E}x{D_IN_E}-{HIDDEN_E}-{D_OUT_E}", two_layer_problem(),
                        {"graphc": graphc_two_layer, "numpy": numpy_two_layer, "jax.jit": jax_two_layer,
                         "pytensor": pytensor_two_layer, "torch": torch_two_layer}, cfg, (2e-4, 1e-5),
                        {"numpy": at_least(1.5), "jax.jit": at_least(1.3), "pytensor": at_least(1.3),
                         "torch": at_least(1.3)})


def section_f(cfg: Config) -> list[Row]:
    """(f) the 784-500-10 classifier's step (gc.function) vs NumPy by hand, jax.jit, PyTensor and torch;
    targets: >= 1.5x NumPy, >= 1.2x jax.jit."""
    batch = 32 if cfg.quick else BATCH_F
    return run_training("f", f"step {batch}x{N_IN_F}-{HIDDEN_F}-{CLASSES_F}", classifier_problem(batch),
                        {"graphc": graphc_classifier, "numpy": numpy_classifier, "jax.jit": jax_classifier,
                         "pytensor": pytensor_classifier, "torch": torch_classifier}, cfg, (2e-4, 1e-5),
                        {"numpy": at_least(1.5), "jax.jit": at_least(1.2)})


def section_n(cfg: Config) -> list[Row]:
    """(n) a LeNet-5 step (batch 64; quick: 8) vs NumPy by hand (im2col), jax.jit and torch eager; targets:
    >= 1.2x torch, >= 1x jax.jit."""
    batch = 8 if cfg.quick else BATCH_N
    return run_training("n", f"LeNet-5 step, batch {batch}", lenet_problem(batch),
                        {"graphc": graphc_lenet, "numpy": numpy_lenet, "jax.jit": jax_lenet, "torch": torch_lenet},
                        cfg, (1e-3, 1e-5), {"torch": at_least(1.2), "jax.jit": at_least(1.0)})


SECTIONS: dict[str, Section] = {
    "e": ("training step: two-layer ReLU network (examples/two_layer_relu.py)", section_e),
    "f": ("training step: 784-500-10 softmax classifier, batch 256 (examples/softmax_classifier.py)", section_f),
    "n": ("training step: LeNet-5 (two convolutions, two max pools, three dense layers), batch 64", section_n),
}


if __name__ == "__main__":
    raise SystemExit(main_cli(SECTIONS, __doc__))
