"""(g) Call overhead: a one-element graph (``x + 1`` on shape (1,), float32) on ``device="cpu"``.

    python3 benchmarks/bench_overhead.py [--quick] [--threads N]

Microseconds per call through ``gc.function`` (target <= 3 us) and through ``Session.run`` (target <= 15 us),
with NumPy's ``x + 1`` on the same array for reference.  Each is a loop of many calls, best of several loops.

Then a breakdown of where a call's time goes, from graphc's internals (skipped with a note if they have
changed): an empty JIT-compiled native function called through ctypes (the floor for one native call),
``CpuExecutable.run`` (the output array, the pointer table, the native call), ``Program.run`` (plus the
shape signature, reading Variables, updates, handing outputs back) and the feed conversion
(``Program.convert_feeds`` for a feed dict, ``convert_positional`` for gc.function's arguments).
"""

from __future__ import annotations

from _timing import early_thread_setup

early_thread_setup()  # before NumPy is imported: BLAS/OpenMP thread variables from --threads

from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _harness import Section, main_cli  # noqa: E402
from _probe import INTERNALS_ERRORS, empty_native_call, executable_run, program_of  # noqa: E402
from _timing import Config, Row, Timing, at_most, check_close, measure_per_call_many  # noqa: E402

import graphc as gc  # noqa: E402


def _us(t: Timing) -> str:
    """The best time in microseconds."""
    return f"{t.best * 1e6:.2f} us"


def breakdown(fn: gc.Function, sess: gc.Session, x: gc.Tensor, y: gc.Tensor, value: np.ndarray, runs: int,
              loop_time: float) -> None:
    """Print the time of each part of one call, interleaved (graphc internals: raises one of INTERNALS_ERRORS
    if they have changed; ``convert_positional`` is timed where it exists).  Printed only, not summarised."""
    program = program_of(fn)
    converted = program.convert_feeds({x: value})
    parts: dict[str, Callable[[], Any]] = {
        "empty native call (ctypes)": empty_native_call(),
        "CpuExecutable.run (buffers, pointer table, native call)": executable_run(program, {x: value}),
        "Program.run (+ signature, Variables, updates, outputs)": lambda: program.run(dict(converted)),
        "Program.convert_feeds (check and convert a feed dict)": lambda: program.convert_feeds({x: value}),
    }
    if hasattr(program, "convert_positional"):
        parts["Program.convert_positional (gc.function's feeds)"] = lambda: program.convert_positional((value,))
    parts["gc.function call"] = lambda: fn(value)
    parts["Session.run call"] = lambda: sess.run(y, {x: value})
    for name, t in measure_per_call_many(parts, runs, loop_time).items():
        print(f"(g) breakdown: {name:<58} {_us(t):>10}", flush=True)


def section_g(cfg: Config) -> list[Row]:
    """(g) microseconds per call of x + 1 on one element: gc.function (<= 3 us, within 2x NumPy's own x + 1) and
    Session.run (<= 15 us, within 4x)."""
    runs, loop_time = (3, 0.01) if cfg.quick else (7, 0.05)
    x = gc.placeholder("float32", (1,), name="x")
    y = x + 1
    fn = gc.function([x], y, device="cpu", threads=cfg.threads, name="plus_one")
    sess = gc.Session(device="cpu", threads=cfg.threads)
    value = np.array([2.5], np.float32)
    check_close("(g) gc.function", fn(value), value + 1, 0, 0)
    check_close("(g) Session.run", sess.run(y, {x: value}), value + 1, 0, 0)

    timings = measure_per_call_many({"gc.function": lambda: fn(value), "Session.run": lambda: sess.run(y, {x: value}),
                                     "numpy x + 1": lambda: value + 1}, runs, loop_time)
    targets = {"gc.function": at_most(3, "us"), "Session.run": at_most(15, "us")}
    rows = []
    for name, t in timings.items():
        target = None if cfg.quick else targets.get(name)
        print(f"(g) {name:<12} {_us(t):>10} per call  [median {t.median * 1e6:.2f} us]"
              + (f"  (target {target})" if target else "  (reference)" if name.startswith("numpy") else ""),
              flush=True)
        rows.append(Row("g", f"{name} per call", t.best * 1e6, "us", target))
    numpy_time = timings["numpy x + 1"].best
    for name, bound in (("gc.function", 2.0), ("Session.run", 4.0)):  # issue 13: within 2x / 4x of NumPy's call
        ratio = timings[name].best / numpy_time
        target = None if cfg.quick else at_most(bound)
        print(f"(g) {name:<12} {ratio:.2f}x NumPy's x + 1" + (f"  (target {target})" if target else ""), flush=True)
        rows.append(Row("g", f"{name} per call / NumPy's x + 1", ratio, "x", target))
    try:
        breakdown(fn, sess, x, y, value, runs, loop_time)
    except INTERNALS_ERRORS as exc:
        print(f"(g) breakdown unavailable (graphc internals changed: {exc!r})")
    return rows


SECTIONS: dict[str, Section] = {"g": ("call overhead of a one-element graph (x + 1), device cpu", section_g)}


if __name__ == "__main__":
    raise SystemExit(main_cli(SECTIONS, __doc__))
