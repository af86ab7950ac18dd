"""Loops: an LSTM trained with ``gc.scan`` against torch's ``nn.LSTM``, JAX's ``lax.scan`` under jit and
PyTensor's scan, its cold compile time, and the cost of a ``gc.while_loop`` iteration.

    python3 benchmarks/bench_loops.py [--quick] [--threads N] [--only o,p]

(--quick: small sizes, and graphc against NumPy only.)

(o) An LSTM layer (sequence length 50, batch 32, input 64, hidden 128; gates i, f, g, o as torch orders them)
    whose last hidden state is fitted to a target by mean squared error; one step is forward, back-propagation
    through time and SGD with momentum (lr 0.1, momentum 0.9) on the input weights, the recurrent weights and
    the bias.  graphc runs it as one ``gc.function`` with the updates; torch as ``nn.LSTM`` (its second bias
    frozen at zero, so that both have one); JAX as ``jax.jit`` of ``value_and_grad`` through ``lax.scan``;
    PyTensor as a compiled function through ``pytensor.scan``; NumPy by hand is the reference every side's
    first steps are checked against.  Targets: >= 2x PyTensor, >= 1.2x jax.jit, >= 1x torch.
    Also: the cold compile time of graphc's step (a fresh process, an empty compile cache: building the graph,
    the function, and the first call beyond a steady step), target <= 1 s.
(p) ``gc.while_loop`` of 1e5 iterations of ``i + 1`` and ``a + 1.0`` (the condition ``i < n`` read each
    iteration): time per iteration, target < 5 ns (native loop, no Python per iteration).
"""

from __future__ import annotations

from _timing import early_thread_setup

early_thread_setup()  # before NumPy is imported: BLAS/OpenMP thread variables from --threads

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _harness import Section, main_cli  # noqa: E402
from _timing import Config, Row, at_least, at_most, fmt_time, measure  # noqa: E402
from bench_training import (  # noqa: E402
    Trainer,
    graphc_reset,
    jax_trainer,
    numpy_trainer,
    pytensor_trainer,
    run_training,
    torch_sgd_update,
)

import graphc as gc  # noqa: E402

STEPS, BATCH, N_IN, HIDDEN = 50, 32, 64, 128
LR, MOMENTUM = 0.1, 0.9
WHILE_ITERATIONS = 100_000
CHILD_FLAG = "--compile-child"


def lstm_problem(steps: int = STEPS, batch: int = BATCH) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(initial [w_x, w_h, b], x of shape (steps, batch, N_IN), y of shape (batch, HIDDEN)), seeded."""
    rng = np.random.default_rng(5)
    w_x = (rng.standard_normal((N_IN, 4 * HIDDEN)) / np.sqrt(N_IN)).astype(np.float32)
    w_h = (rng.standard_normal((HIDDEN, 4 * HIDDEN)) / np.sqrt(HIDDEN)).astype(np.float32)
    b = np.zeros(4 * HIDDEN, np.float32)
    x = rng.standard_normal((steps, batch, N_IN)).astype(np.float32)
    y = (rng.standard_normal((batch, HIDDEN)) * 0.5).astype(np.float32)
    return [w_x, w_h, b], x, y


def _gates(z: Any, sigmoid: Any, tanh: Any) -> tuple[Any, Any, Any, Any]:
    """The four gates of pre-activations ``z`` (columns i, f, g, o)."""
    h = HIDDEN
    return sigmoid(z[:, :h]), sigmoid(z[:, h:2 * h]), tanh(z[:, 2 * h:3 * h]), sigmoid(z[:, 3 * h:])


# ---- graphc ---------------------------------------------------------------------------------------------------

def build_graphc_lstm(init: list[np.ndarray], steps: int, batch: int, threads: int) -> tuple[Any, list[Any], Any]:
    """graphc's training function ``train(x, y) -> loss``, its parameter Variables and its optimizer."""
    x = gc.placeholder("float32", (steps, batch, N_IN), name="x")
    y = gc.placeholder("float32", (batch, HIDDEN), name="y")
    params = [gc.Variable(v.copy(), name=name) for v, name in zip(init, ["w_x", "w_h", "b"])]
    w_x, w_h, b = params

    def cell(x_t: Any, h: Any, c: Any) -> list[Any]:
        i, f, g, o = _gates(x_t @ w_x + h @ w_h + b, gc.sigmoid, gc.tanh)
        c = f * c + i * g
        return [o * gc.tanh(c), c]

    zeros = gc.constant(np.zeros((batch, HIDDEN), np.float32))
    hs, _ = gc.scan(cell, sequences=x, outputs_info=[zeros, zeros])
    loss = gc.mean(gc.square(hs[-1] - y))
    opt = gc.optimizers.SGD(LR, momentum=MOMENTUM)
    train = gc.function([x, y], loss, updates=opt.updates(loss, params), device="cpu", threads=threads, name="lstm")
    return train, params, opt


def graphc_lstm(init: list[np.ndarray], x: np.ndarray, y: np.ndarray, threads: int) -> Trainer:
    train, params, opt = build_graphc_lstm(init, x.shape[0], x.shape[1], threads)
    return Trainer(lambda: float(train(x, y)), lambda: [p.value for p in params], graphc_reset(params, init, opt))


# ---- NumPy by hand (the reference) ---------------------------------------------------------------------------

def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-v))


def numpy_lstm(init: list[np.ndarray], x: np.ndarray, y: np.ndarray, threads: int) -> Trainer:
    """Forward keeping every step's gates, then back-propagation through time."""
    def grads(params: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        w_x, w_h, b = params
        h = c = np.zeros((x.shape[1], HIDDEN), np.float32)
        saved = []
        for x_t in x:
            i, f, g, o = _gates(x_t @ w_x + h @ w_h + b, _sigmoid, np.tanh)
            c_new = f * c + i * g
            saved.append((x_t, h, c, i, f, g, o, c_new))
            h, c = o * np.tanh(c_new), c_new
        diff = h - y
        loss = float(np.mean(diff * diff))
        dh = (2 / diff.size * diff).astype(np.float32)
        dc = np.zeros_like(dh)
        gw_x, gw_h, gb = np.zeros_like(w_x), np.zeros_like(w_h), np.zeros_like(b)
        for x_t, h_prev, c_prev, i, f, g, o, c_new in reversed(saved):
            tc = np.tanh(c_new)
            do = dh * tc
            dc = dc + dh * o * (1 - tc * tc)
            di, df, dg = dc * g, dc * c_prev, dc * i
            dz = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], axis=1)
            gw_x += x_t.T @ dz
            gw_h += h_prev.T @ dz
            gb += dz.sum(axis=0)
            dh, dc = dz @ w_h.T, dc * f
        return loss, [gw_x, gw_h, gb]

    return numpy_trainer(init, grads, LR, MOMENTUM)


# ---- the others ------------------------------------------------------------------------------------------------

def torch_lstm(init: list[np.ndarray], x: np.ndarray, y: np.ndarray, threads: int) -> Trainer:
    """torch's ``nn.LSTM`` (its fused CPU kernels) with graphc's weights, ``bias_hh`` frozen at zero."""
    import torch

    torch.set_num_threads(threads)
    layer = torch.nn.LSTM(N_IN, HIDDEN)
    layer.bias_hh_l0.requires_grad_(False)
    params = [layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0]
    velocity = [torch.zeros_like(p) for p in params]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def reset() -> None:
        with torch.no_grad():
            for p, p0 in zip(params, [init[0].T, init[1].T, init[2]]):
                p.copy_(torch.from_numpy(np.ascontiguousarray(p0)))
            layer.bias_hh_l0.zero_()
            for v in velocity:
                v.zero_()

    def step() -> float:
        out, _ = layer(xt)
        loss = torch.mean(torch.square(out[-1] - yt))
        loss.backward()
        torch_sgd_update(params, velocity, LR, MOMENTUM)
        return float(loss.detach())

    def values() -> list[np.ndarray]:
        w_ih, w_hh, b = (p.detach().numpy() for p in params)
        return [w_ih.T.copy(), w_hh.T.copy(), b.copy()]

    reset()
    return Trainer(step, values, reset)


def jax_lstm(init: list[np.ndarray], x: np.ndarray, y: np.ndarray, threads: int) -> Trainer:
    """``jax.jit`` of ``value_and_grad`` through ``lax.scan``."""
    import jax
    import jax.numpy as jnp

    def loss_fn(params: Any, x: Any, y: Any) -> Any:
        w_x, w_h, b = params

        def cell(carry: Any, x_t: Any) -> Any:
            h, c = carry
            i, f, g, o = _gates(x_t @ w_x + h @ w_h + b, jax.nn.sigmoid, jnp.tanh)
            c = f * c + i * g
            return (o * jnp.tanh(c), c), None

        zeros = jnp.zeros((x.shape[1], HIDDEN), x.dtype)
        (h, _), _ = jax.lax.scan(cell, (zeros, zeros), x)
        return jnp.mean(jnp.square(h - y))

    return jax_trainer(init, loss_fn, (x, y), LR, MOMENTUM)


def pytensor_lstm(init: list[np.ndarray], x: np.ndarray, y: np.ndarray, threads: int) -> Trainer:
    """A compiled PyTensor function through ``pytensor.scan``."""
    import pytensor
    import pytensor.tensor as pt

    def loss_fn(params: Any, x: Any, y: Any) -> Any:
        w_x, w_h, b = params

        def cell(x_t: Any, h: Any, c: Any) -> Any:
            i, f, g, o = _gates(x_t @ w_x + h @ w_h + b, pt.sigmoid, pt.tanh)
            c = f * c + i * g
            return o * pt.tanh(c), c

        zeros = pt.zeros((x.shape[1], HIDDEN), dtype="float32")
        hs, _ = pytensor.scan(cell, sequences=x, outputs_info=[zeros, zeros], return_updates=False)
        return pt.mean(pt.square(hs[-1] - y))

    return pytensor_trainer(init, loss_fn, (x, y), ("x", "y"), np.float32(LR), np.float32(MOMENTUM))


# ---- (o) --------------------------------------------------------------------------------------------------------

def compile_child(threads: int, quick: bool) -> dict[str, float]:
    """In a fresh process: construct graphc's step, make the first call, time a steady call; check the loss."""
    start = time.perf_counter()
    steps, batch = (5, 4) if quick else (STEPS, BATCH)
    init, x, y = lstm_problem(steps, batch)
    train, _, _ = build_graphc_lstm(init, steps, batch, threads)
    loss = float(train(x, y))
    first = time.perf_counter() - start
    steady = measure(lambda: train(x, y), runs=5).best
    expected = numpy_lstm(init, x, y, threads).step()
    if not np.isclose(loss, expected, rtol=1e-4):
        raise AssertionError(f"first loss {loss} differs from NumPy's {expected}")
    return {"first": first, "steady": steady}


def cold_compile(cfg: Config) -> float:
    """Seconds the first call costs beyond a steady step, in a fresh process with an empty compile cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "GRAPHC_CACHE_DIR": cache}
        cmd = [sys.executable, __file__, CHILD_FLAG, str(cfg.threads)] + (["--quick"] if cfg.quick else [])
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"compile child failed:\n{result.stdout}{result.stderr}")
        times = json.loads(result.stdout.strip().splitlines()[-1])
    return times["first"] - times["steady"]


def section_o(cfg: Config) -> list[Row]:
    steps, batch = (5, 4) if cfg.quick else (STEPS, BATCH)
    sides = {"graphc": graphc_lstm, "numpy": numpy_lstm, "torch": torch_lstm, "jax.jit": jax_lstm,
             "pytensor": pytensor_lstm}
    if cfg.quick:  # a smoke run of graphc's side: compiling PyTensor's and JAX's scans takes a minute
        sides = {"graphc": graphc_lstm, "numpy": numpy_lstm}
    rows = run_training("o", f"LSTM step, T={steps} batch {batch} {N_IN}->{HIDDEN}", lstm_problem(steps, batch),
                        sides, cfg, (2e-4, 1e-5),
                        {"pytensor": at_least(2.0), "jax.jit": at_least(1.2), "torch": at_least(1.0)})
    seconds = cold_compile(cfg)
    print(f"(o) cold compile of the LSTM step (fresh process, empty cache): {fmt_time(seconds)}", flush=True)
    rows.append(Row("o", "LSTM step cold compile", seconds, "s", None if cfg.quick else at_most(1.0, "s")))
    return rows


# ---- (p) --------------------------------------------------------------------------------------------------------

def section_p(cfg: Config) -> list[Row]:
    n = gc.placeholder("int64", (), name="n")
    i, a = gc.while_loop(lambda i, a: i < n, lambda i, a: (i + 1, a + 1.0),
                         [gc.constant(np.int64(0)), gc.constant(0.0)])
    count = gc.function([n], [i, a], device="cpu", threads=cfg.threads)
    iterations = WHILE_ITERATIONS  # (a fraction of a millisecond: the quick run measures the same)
    got = count(np.int64(iterations))
    if int(got[0]) != iterations or float(got[1]) != iterations:
        raise AssertionError(f"while_loop counted {got} for {iterations} iterations")
    empty = measure(lambda: count(np.int64(0)), runs=cfg.runs).best  # the call without iterations
    full = measure(lambda: count(np.int64(iterations)), runs=cfg.runs).best
    per_iteration = (full - empty) / iterations * 1e9
    print(f"(p) while_loop: {per_iteration:.2f} ns per iteration over {iterations} iterations "
          f"(call {fmt_time(empty)} without iterations)", flush=True)
    return [Row("p", f"while_loop iteration ({iterations} iterations)", per_iteration, "ns",
                None if cfg.quick else at_most(5.0, "ns"))]


SECTIONS: dict[str, Section] = {
    "o": ("training step: an LSTM through gc.scan, and its cold compile", section_o),
    "p": ("the cost of a gc.while_loop iteration", section_p),
}


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == CHILD_FLAG:
        print(json.dumps(compile_child(int(sys.argv[2]), "--quick" in sys.argv)))
        raise SystemExit(0)
    raise SystemExit(main_cli(SECTIONS, __doc__))
