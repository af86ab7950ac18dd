"""Elementwise float32 expressions through ``gc.function(..., device="cpu")`` against NumPy and friends.

    python3 benchmarks/bench_elementwise.py [--quick] [--threads N] [--only a,b,c]

(a) ``a**2 + b**2 + 2*a*b`` on 1e6 and 1e7 float32 elements (inputs uniform in [0, 1)).
(b) ``sigmoid(a*b + c) * tanh(a) + log1p(exp(-abs(c)))`` on 1e6 and 1e7 float32 (standard normal inputs); NumPy
    computes the sigmoid as ``1 / (1 + np.exp(-x))``, the other libraries with their own sigmoid.
(c) the bandwidth (a) achieves at 1e7: (bytes read + bytes written) / time, against the bandwidth of
    ``np.copyto`` of a 1e7-element float32 array (counting its read and its write), and the ratio.

Each call returns a fresh array on every side (graphc, NumPy, numexpr, jax.jit, pytensor, torch; the last
four only when importable).  Every result is checked against NumPy's (allclose) before anything is timed.
"""

from __future__ import annotations

from _timing import early_thread_setup

early_thread_setup()  # before NumPy is imported: BLAS/OpenMP/numexpr thread variables from --threads

from collections.abc import Callable  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _harness import Section, main_cli  # noqa: E402
from _timing import (  # noqa: E402
    Config,
    Row,
    Timing,
    agrees,
    at_least,
    check_close,
    compare,
    fmt_time,
    measure_many,
    optional,
    skip_note,
)

import graphc as gc  # noqa: E402

Expr = Callable[..., Any]


def expr_a(m: Any, a: Any, b: Any) -> Any:
    """(a): the same text for every library (``m`` is its namespace of functions; unused here)."""
    return a**2 + b**2 + 2 * a * b


def expr_b(m: Any, a: Any, b: Any, c: Any) -> Any:
    """(b), written with the library's functions ``m.sigmoid``, ``m.tanh``, ``m.log1p``, ``m.exp``, ``m.abs``."""
    return m.sigmoid(a * b + c) * m.tanh(a) + m.log1p(m.exp(-m.abs(c)))


NUMEXPR = {
    "a": "a**2 + b**2 + 2*a*b",
    "b": "1 / (1 + exp(-(a*b + c))) * tanh(a) + log1p(exp(-abs(c)))",
}
NUMEXPR["b64"] = NUMEXPR["b"]

NUMPY_NS = SimpleNamespace(sigmoid=lambda x: 1 / (1 + np.exp(-x)), tanh=np.tanh, log1p=np.log1p, exp=np.exp,
                           abs=np.abs)
GRAPHC_NS = SimpleNamespace(sigmoid=gc.sigmoid, tanh=gc.tanh, log1p=gc.log1p, exp=gc.exp, abs=gc.abs)

_functions: dict[str, Any] = {}


def graphc_function(name: str, expr: Expr, arity: int, threads: int, dtype: str = "float32") -> Any:
    """``gc.function`` over ``arity`` vectors of ``dtype`` of any length (compiled per length on first call)."""
    key = f"{name}/{threads}/{dtype}"
    if key not in _functions:
        xs = [gc.placeholder(dtype, (None,), name=n) for n in "abc"[:arity]]
        _functions[key] = gc.function(xs, expr(GRAPHC_NS, *xs), device="cpu", threads=threads, name=name)
    return _functions[key]


def alternatives(section: str, expr: Expr, arrays: list[np.ndarray], threads: int) -> dict[str, Callable[[], Any]]:
    """NumPy, and numexpr / jax.jit / pytensor / torch when importable, as zero-argument callables."""
    alts: dict[str, Callable[[], Any]] = {"numpy": lambda: expr(NUMPY_NS, *arrays)}
    names = "abc"[: len(arrays)]

    ne = optional("numexpr")
    if ne is None:
        skip_note(section, "numexpr")
    else:
        ne.set_num_threads(threads)
        local = dict(zip(names, arrays))
        alts["numexpr"] = lambda: ne.evaluate(NUMEXPR[section], local_dict=local)

    jax = optional("jax")
    if jax is None:
        skip_note(section, "jax")
    else:
        try:
            import jax.numpy as jnp

            ns = SimpleNamespace(sigmoid=jax.nn.sigmoid, tanh=jnp.tanh, log1p=jnp.log1p, exp=jnp.exp, abs=jnp.abs)
            jitted = jax.jit(lambda *xs, ns=ns: expr(ns, *xs))
            on_device = [jax.device_put(x) for x in arrays]
            alts["jax.jit"] = lambda: jitted(*on_device).block_until_ready()
        except Exception as exc:
            skip_note(section, "jax.jit", f"failed to build: {exc!r}")

    pytensor = optional("pytensor")
    if pytensor is None:
        skip_note(section, "pytensor")
    else:
        try:
            import pytensor.tensor as pt

            ns = SimpleNamespace(sigmoid=pt.sigmoid, tanh=pt.tanh, log1p=pt.log1p, exp=pt.exp, abs=pt.abs)
            symbols = [pt.vector(n, dtype=arrays[0].dtype.name) for n in names]
            compiled = pytensor.function(symbols, expr(ns, *symbols))
            alts["pytensor"] = lambda: compiled(*arrays)
        except Exception as exc:
            skip_note(section, "pytensor", f"failed to build: {exc!r}")

    torch = optional("torch")
    if torch is None:
        skip_note(section, "torch")
    else:
        torch.set_num_threads(threads)
        ns = SimpleNamespace(sigmoid=torch.sigmoid, tanh=torch.tanh, log1p=torch.log1p, exp=torch.exp,
                             abs=torch.abs)
        tensors = [torch.from_numpy(x) for x in arrays]

        def torch_call() -> Any:
            with torch.inference_mode():
                return expr(ns, *tensors)

        alts["torch"] = torch_call
    return alts


def verified_alternatives(section: str, alts: dict[str, Callable[[], Any]], expected: np.ndarray, rtol: float,
                          atol: float) -> dict[str, Callable[[], Any]]:
    """The alternatives whose result matches NumPy's (one that disagrees or fails is skipped with a note)."""
    kept = {}
    for name, call in alts.items():
        try:
            if name == "numpy" or agrees(section, name, np.asarray(call()), expected, rtol, atol):
                kept[name] = call
        except Exception as exc:
            skip_note(section, name, f"failed: {exc!r}")
    return kept


def _inputs(n: int, count: int, kind: str, dtype: str = "float32") -> list[np.ndarray]:
    """``count`` vectors of ``n`` elements of ``dtype``, ``uniform`` in [0, 1) or standard ``normal`` (seeded
    by n)."""
    rng = np.random.default_rng(n)
    if kind == "uniform":
        return [rng.random(n, dtype) for _ in range(count)]
    return [rng.standard_normal(n, dtype) for _ in range(count)]


def sizes(cfg: Config) -> dict[str, int]:
    """(a)'s sizes by label: 1e6 and 1e7 (quick: 1e4 and 1e5)."""
    return {"1e4": 10**4, "1e5": 10**5} if cfg.quick else {"1e6": 10**6, "1e7": 10**7}


def run_expression(section: str, expr: Expr, arity: int, label: str, n: int, kind: str, cfg: Config,
                   rtol: float, atol: float, dtype: str = "float32") -> tuple[dict[str, Timing], Timing]:
    """Check graphc (raise on a mismatch) and every alternative against NumPy, then time them all, interleaved:
    (the alternatives' timings, graphc's timing)."""
    arrays = _inputs(n, arity, kind, dtype)
    fn = graphc_function(f"expr_{section}", expr, arity, cfg.threads, dtype)
    expected = expr(NUMPY_NS, *arrays)
    check_close(f"({section}) {label}: graphc vs numpy", fn(*arrays), expected, rtol, atol)
    alts = verified_alternatives(section, alternatives(section, expr, arrays, cfg.threads), expected, rtol, atol)
    timings = measure_many({"graphc": lambda: fn(*arrays), **alts}, cfg.runs, min_time=cfg.min_time)
    return timings, timings.pop("graphc")


def section_a(cfg: Config) -> list[Row]:
    """(a) a**2 + b**2 + 2*a*b at two sizes; target at 1e7: >= 4x NumPy."""
    rows = []
    for label, n in sizes(cfg).items():
        others, graphc_time = run_expression("a", expr_a, 2, label, n, "uniform", cfg, 1e-5, 1e-6)
        targets = {"numpy": at_least(4)} if label == "1e7" else None
        rows += compare("a", label, graphc_time, others, targets)
    return rows


def section_b(cfg: Config) -> list[Row]:
    """(b) sigmoid(a*b + c) * tanh(a) + log1p(exp(-abs(c))) at 1e6 and 1e7; targets: at 1e6 >= 1.2x jax.jit,
    at 1e7 >= 6x NumPy."""
    rows = []
    for label, n in sizes(cfg).items():
        others, graphc_time = run_expression("b", expr_b, 3, label, n, "normal", cfg, 1e-5, 1e-5)
        targets = None if cfg.quick else {"numpy": at_least(6)} if label == "1e7" else {"jax.jit": at_least(1.2)}
        rows += compare("b", label, graphc_time, others, targets)
    return rows


def section_b64(cfg: Config) -> list[Row]:
    """(b64) (b)'s expression in float64 at 1e7 (quick: 1e5); target >= 4x NumPy.  An alternative that
    computes in float32 (jax without ``jax_enable_x64``) fails the float64 check and is skipped."""
    label, n = list(sizes(cfg).items())[-1]
    others, graphc_time = run_expression("b64", expr_b, 3, label, n, "normal", cfg, 1e-12, 1e-12, "float64")
    return compare("b64", label, graphc_time, others, None if cfg.quick else {"numpy": at_least(4)},
                   what=f"{label} float64")


def section_c(cfg: Config) -> list[Row]:
    """(c) GB/s of (a) at the largest size against np.copyto's GB/s; target: within 1.5x (ratio >= 0.67)."""
    label, n = list(sizes(cfg).items())[-1]
    a, b = _inputs(n, 2, "uniform")
    fn = graphc_function("expr_a", expr_a, 2, cfg.threads)
    check_close(f"(c) {label}: graphc vs numpy", fn(a, b), expr_a(NUMPY_NS, a, b))
    dst = np.empty_like(a)
    np.copyto(dst, a)
    check_close("(c) np.copyto", dst, a, 0, 0)
    timings = measure_many({"graphc": lambda: fn(a, b), "copy": lambda: np.copyto(dst, a),
                            "numpy": lambda: expr_a(NUMPY_NS, a, b), "fresh": lambda: np.empty_like(a).fill(0)},
                           cfg.runs, min_time=cfg.min_time)
    graphc_time, copy_time, numpy_time, fresh = (timings[k] for k in ("graphc", "copy", "numpy", "fresh"))
    moved = 3 * a.nbytes  # two inputs read, one output written
    copy_gbs = 2 * a.nbytes / copy_time.best / 1e9
    graphc_gbs = moved / graphc_time.best / 1e9
    ratio = graphc_gbs / copy_gbs
    target = None if cfg.quick else at_least(round(1 / 1.5, 2))
    print(f"(c) {label}  graphc {fmt_time(graphc_time.best)} = {graphc_gbs:.1f} GB/s  copy {fmt_time(copy_time.best)}"
          f" = {copy_gbs:.1f} GB/s  ratio {ratio:.2f} of copy bandwidth"
          + (f"  (target {target}, i.e. within 1.5x)" if target else ""), flush=True)
    print(f"(c) {label}  numpy {fmt_time(numpy_time.best)} = {moved / numpy_time.best / 1e9:.1f} GB/s "
          f"(counting only the same {moved / 1e6:.0f} MB; NumPy's temporaries move more)", flush=True)
    rows = [Row("c", f"{label} GB/s / copy GB/s", ratio, "x", target,
                note=f"{graphc_gbs:.1f} of {copy_gbs:.1f} GB/s")]
    print(f"(c) {label}  context: a fresh {a.nbytes / 1e6:.0f} MB array written once (np.empty + fill, page faults "
          f"included) takes {fmt_time(fresh.best)}; a runtime that allocates each output pays about that on top of "
          "the kernel", flush=True)
    return rows


SECTIONS: dict[str, Section] = {
    "a": ("a**2 + b**2 + 2*a*b, float32", section_a),
    "b": ("sigmoid(a*b + c) * tanh(a) + log1p(exp(-abs(c))), float32", section_b),
    "b64": ("(b) in float64", section_b64),
    "c": ("bandwidth of (a) against np.copyto", section_c),
}


if __name__ == "__main__":
    raise SystemExit(main_cli(SECTIONS, __doc__))
