"""(i)-(m) The CUDA backend on a GPU, against PyTorch (eager and torch.compile) and JAX on the same GPU.

    python3 benchmarks/bench_gpu.py [--quick] [--only i,j,...]      (the device: $GRAPHC_BENCH_DEVICE, "cuda")
    python3 benchmarks/run_all.py --device cuda

Sections and targets (docs/cuda-backend.md):
  (i) fused elementwise a * b + c, 1e8 float32            target: >= 85% of the device's copy bandwidth
  (j) row softmax 8192 x 8192 float32                     target: >= 80% of the copy bandwidth
  (k) float32 matmul 4096 x 4096                          target: >= 0.9x cuBLAS through PyTorch
  (l) two_layer_relu.py and the classifier training steps target: faster than PyTorch eager
  (m) call overhead of x + 1 on one element               target: <= 20 us per gc.function call

graphc's values stay on the GPU (Variables updated in place of an output), and every timed call ends with the
device synchronised, as PyTorch's do.  With ``GRAPHC_BENCH_DEVICE=cuda-sim`` the same code runs on the CUDA
emulator at smoke sizes (what the tests use: nothing is judged, the numbers say nothing about a GPU).
"""

from __future__ import annotations

from _timing import early_thread_setup

early_thread_setup()

import os  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _harness import Section, main_cli  # noqa: E402
from _timing import (  # noqa: E402
    Config,
    Row,
    Timing,
    at_least,
    at_most,
    check_close,
    measure_many,
    optional,
    skip_note,
)

import graphc as gc  # noqa: E402

DEVICE = os.environ.get("GRAPHC_BENCH_DEVICE", "cuda")
EMULATED = DEVICE.startswith("cuda-sim")


def _gpu() -> Any:
    """The graphc device object, to synchronise with."""
    index = int(DEVICE.partition(":")[2] or 0)
    if EMULATED:
        from graphc.backends.cuda_sim.backend import sim_device

        return sim_device(index)
    from graphc.backends.cuda.driver import cuda_device

    return cuda_device(index)


def _synchronised(fn: Callable[[], Any]) -> Callable[[], Any]:
    device = _gpu()

    def call() -> Any:
        result = fn()
        device.synchronize()
        return result

    return call


def _torch() -> Any:
    torch = optional("torch")
    if torch is None or EMULATED or not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 products in float32, as graphc's
    return torch


def _torch_call(torch: Any, fn: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        result = fn()
        torch.cuda.synchronize()
        return result

    return call


def _bandwidth(section: str, nbytes: int, timing: Timing) -> float:
    rate = nbytes / timing.best / 1e9
    print(f"({section}) {nbytes / 1e6:.0f} MB moved in {timing.best * 1e3:.3f} ms: {rate:.0f} GB/s")
    return rate


def _copy_bandwidth(cfg: Config, n: int) -> float:
    """GB/s of a device-to-device copy of ``n`` float32 (bytes read plus bytes written): PyTorch's, else graphc's."""
    torch = _torch()
    if torch is not None:
        src = torch.rand(n, device="cuda")
        dst = torch.empty_like(src)
        timing = measure_many({"copy": _torch_call(torch, lambda: dst.copy_(src))}, cfg.runs, min_time=cfg.min_time)
        return _bandwidth("copy", 8 * n, timing["copy"])
    a, out = gc.Variable(np.ones(n, np.float32)), gc.Variable(np.zeros(n, np.float32))
    copy = gc.function([], None, updates={out: a * 1.0}, device=DEVICE)
    return _bandwidth("copy", 8 * n, measure_many({"copy": _synchronised(copy)}, cfg.runs)["copy"])


def elementwise(cfg: Config) -> list[Row]:
    n = 10**5 if cfg.quick or EMULATED else 10**8
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]
    a, b, c = (gc.Variable(v) for v in values)
    out = gc.Variable(np.zeros(n, np.float32))
    fused = gc.function([], None, updates={out: a * b + c}, device=DEVICE)
    fused()
    check_close("a * b + c", out.value, values[0] * values[1] + values[2])
    timing = measure_many({"graphc": _synchronised(fused)}, cfg.runs, min_time=cfg.min_time)["graphc"]
    ratio = _bandwidth("i", 16 * n, timing) / _copy_bandwidth(cfg, n)
    print(f"(i) graphc's bandwidth / the copy's: {ratio:.2f}")
    return [Row("i", f"a*b+c {n:.0e} float32, of copy bandwidth", ratio, "x", at_least(0.85))]


def softmax(cfg: Config) -> list[Row]:
    rows = cols = 256 if cfg.quick or EMULATED else 8192
    x0 = np.random.default_rng(1).standard_normal((rows, cols)).astype(np.float32)
    x, out = gc.Variable(x0), gc.Variable(np.zeros_like(x0))
    fn = gc.function([], None, updates={out: gc.softmax(x)}, device=DEVICE)
    fn()
    z = np.exp(x0 - x0.max(axis=1, keepdims=True))
    check_close("softmax", out.value, z / z.sum(axis=1, keepdims=True))
    timing = measure_many({"graphc": _synchronised(fn)}, cfg.runs, min_time=cfg.min_time)["graphc"]
    ratio = _bandwidth("j", 8 * rows * cols, timing) / _copy_bandwidth(cfg, rows * cols)
    torch = _torch()
    if torch is not None:
        t = torch.from_numpy(x0).cuda()
        other = measure_many({"torch": _torch_call(torch, lambda: torch.softmax(t, dim=1))}, cfg.runs)["torch"]
        print(f"(j) torch.softmax / graphc: {other.best / timing.best:.2f}x")
    print(f"(j) graphc's bandwidth / the copy's: {ratio:.2f}")
    return [Row("j", f"row softmax {rows}x{cols}, of copy bandwidth", ratio, "x", at_least(0.8))]


def matmul(cfg: Config) -> list[Row]:
    n = 128 if cfg.quick or EMULATED else 4096
    rng = np.random.default_rng(2)
    a0, b0 = rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)
    a, b, c = gc.Variable(a0), gc.Variable(b0), gc.Variable(np.zeros((n, n), np.float32))
    fn = gc.function([], None, updates={c: a @ b}, device=DEVICE)
    fn()
    check_close("matmul", c.value, a0 @ b0, rtol=1e-3, atol=1e-3)
    timing = measure_many({"graphc": _synchronised(fn)}, cfg.runs, min_time=cfg.min_time)["graphc"]
    print(f"(k) graphc: {2 * n**3 / timing.best / 1e12:.1f} TFLOP/s")
    torch = _torch()
    if torch is None:
        skip_note("k", "torch (CUDA)")
        return [Row("k", f"matmul {n}^2 float32 vs cuBLAS via torch", float("nan"), "x", at_least(0.9))]
    ta, tb = torch.from_numpy(a0).cuda(), torch.from_numpy(b0).cuda()
    other = measure_many({"torch": _torch_call(torch, lambda: ta @ tb)}, cfg.runs, min_time=cfg.min_time)["torch"]
    ratio = other.best / timing.best
    print(f"(k) torch.matmul / graphc: {ratio:.2f}x")
    return [Row("k", f"matmul {n}^2 float32 vs cuBLAS via torch", ratio, "x", at_least(0.9))]


def _graphc_step(sizes: tuple[int, int, int, int], classifier: bool) -> tuple[Callable[[], Any], dict[str, Any]]:
    batch, d_in, hidden, d_out = sizes
    rng = np.random.default_rng(3)
    weights = {"w1": (rng.standard_normal((d_in, hidden)) * np.sqrt(2 / d_in)).astype(np.float32),
               "w2": (rng.standard_normal((hidden, d_out)) * np.sqrt(1 / hidden)).astype(np.float32)}
    xb = rng.standard_normal((batch, d_in)).astype(np.float32)
    yb = rng.integers(0, d_out, batch) if classifier else rng.standard_normal((batch, d_out)).astype(np.float32)
    x = gc.placeholder("float32", (None, d_in))
    w1, w2 = gc.Variable(weights["w1"]), gc.Variable(weights["w2"])
    if classifier:
        y = gc.placeholder("int64", (None,))
        loss = gc.mean(gc.softmax_cross_entropy(gc.tanh(x @ w1) @ w2, y))
    else:
        y = gc.placeholder("float32", (None, d_out))
        loss = gc.mean(gc.square(gc.relu(x @ w1) @ w2 - y))
    step = gc.function([x, y], loss, updates=gc.optimizers.SGD(0.01).updates(loss, [w1, w2]), device=DEVICE)
    return (lambda: step(xb, yb)), {"x": xb, "y": yb, **weights}


def _torch_step(torch: Any, data: dict[str, Any], classifier: bool, compiled: bool = False) -> Callable[[], Any]:
    w1, w2 = (torch.from_numpy(data[k]).cuda().requires_grad_(True) for k in ("w1", "w2"))
    optimizer = torch.optim.SGD([w1, w2], lr=0.01)

    def loss_of(xb: Any, yb: Any) -> Any:
        if classifier:
            return torch.nn.functional.cross_entropy(torch.tanh(xb @ w1) @ w2, yb)
        return torch.mean(torch.square(torch.relu(xb @ w1) @ w2 - yb))

    forward = torch.compile(loss_of) if compiled else loss_of

    def step() -> Any:
        xb, yb = torch.from_numpy(data["x"]).cuda(), torch.from_numpy(data["y"]).cuda()  # the feed, as graphc's
        optimizer.zero_grad()
        loss = forward(xb, yb)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def _jax_step(data: dict[str, Any], classifier: bool) -> Callable[[], Any] | None:
    jax = optional("jax")
    if jax is None or EMULATED or not any(d.platform == "gpu" for d in jax.devices()):
        return None
    jnp = jax.numpy

    def loss_of(params: Any, xb: Any, yb: Any) -> Any:
        w1, w2 = params
        if classifier:
            logits = jnp.tanh(xb @ w1) @ w2
            return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(xb.shape[0]), yb])
        return jnp.mean(jnp.square(jax.nn.relu(xb @ w1) @ w2 - yb))

    @jax.jit
    def update(params: Any, xb: Any, yb: Any) -> Any:
        loss, grads = jax.value_and_grad(loss_of)(params, xb, yb)
        return loss, [p - 0.01 * g for p, g in zip(params, grads)]

    state = {"params": [jnp.asarray(data["w1"]), jnp.asarray(data["w2"])]}

    def step() -> Any:
        loss, state["params"] = update(state["params"], jnp.asarray(data["x"]), jnp.asarray(data["y"]))
        return float(loss)

    return step


def training(cfg: Config) -> list[Row]:
    rows = []
    torch = _torch()
    for name, sizes, classifier in (("two-layer ReLU 32x500-50-500", (32, 500, 50, 500), False),
                                    ("classifier 256x784-500(tanh)-10", (256, 784, 500, 10), True)):
        step, data = _graphc_step(sizes, classifier)
        fns = {"graphc": step}
        if torch is not None:
            fns["torch eager"] = _torch_step(torch, data, classifier)
            try:
                fns["torch.compile"] = _torch_step(torch, data, classifier, compiled=True)
                fns["torch.compile"]()
            except Exception as exc:  # an inductor that cannot build here
                fns.pop("torch.compile")
                skip_note("l", "torch.compile", f"{type(exc).__name__}: {exc}".splitlines()[0])
        else:
            skip_note("l", "torch (CUDA)")
        jax_step = _jax_step(data, classifier)
        if jax_step is not None:
            fns["jax.jit"] = jax_step
        else:
            skip_note("l", "jax (GPU)")
        timings = measure_many(fns, cfg.runs, min_time=cfg.min_time)
        graphc = timings["graphc"]
        print(f"(l) {name}: graphc {graphc.best * 1e6:.0f} us per step")
        for other in timings:
            if other != "graphc":
                print(f"(l) {name}: {other} / graphc: {timings[other].best / graphc.best:.2f}x")
        ratio = timings["torch eager"].best / graphc.best if "torch eager" in timings else float("nan")
        rows.append(Row("l", f"{name} step vs torch eager", ratio, "x", at_least(1.0)))
    return rows


def overhead(cfg: Config) -> list[Row]:
    x = gc.placeholder("float32", (1,))
    fn = gc.function([x], x + 1.0, device=DEVICE)
    value = np.ones(1, np.float32)
    check_close("x + 1", fn(value), value + 1)
    timing = measure_many({"graphc": lambda: fn(value)}, cfg.runs * 20, min_time=cfg.min_time)["graphc"]
    print(f"(m) gc.function(x + 1) on {DEVICE}: {timing.best * 1e6:.1f} us per call")
    return [Row("m", f"1-element call on {DEVICE}", timing.best * 1e6, "us", at_most(20, "us"))]


SECTIONS: dict[str, Section] = {
    "i": ("fused elementwise a*b+c against the copy bandwidth", elementwise),
    "j": ("row softmax against the copy bandwidth", softmax),
    "k": ("float32 matmul against cuBLAS through PyTorch", matmul),
    "l": ("training steps against PyTorch eager", training),
    "m": ("call overhead of a 1-element graph", overhead),
}


if __name__ == "__main__":
    raise SystemExit(main_cli(SECTIONS, __doc__))
