"""Shared helpers for graphc's benchmarks: thread control, timing, result checks, comparison lines, targets.

Thread control.  Every benchmark takes ``--threads N`` (default: every core this process may use, which is
also graphc's default).  NumPy's BLAS (OpenBLAS) reads its thread count from the environment when it is
loaded, so :func:`early_thread_setup` must run *before NumPy is imported*: the benchmark scripts call it at
their very top, and ``run_all.py`` does the same.  It sets ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``,
``MKL_NUM_THREADS``, ``BLIS_NUM_THREADS``, ``NUMEXPR_NUM_THREADS`` (and, for one thread, XLA's flags for
jax) to N.  While timing, :func:`limit_blas` also limits the BLAS pool at run time, with threadpoolctl when
it is installed and otherwise through OpenBLAS's own ``openblas_set_num_threads``, and
:func:`blas_threads` reports what the library itself says it uses.

This module imports only the standard library at the top, so importing it does not load NumPy.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import importlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
OPTIONAL = ("numexpr", "jax", "pytensor", "torch")


# ---- threads -----------------------------------------------------------------------------------------

def default_threads() -> int:
    """Every core this process may run on (graphc's default for ``threads=None``)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_from_argv(argv: Sequence[str] | None = None) -> int:
    """The value of ``--threads N`` / ``--threads=N`` in ``argv`` (``sys.argv``), else :func:`default_threads`."""
    args = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(args):
        value = None
        if arg == "--threads" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--threads="):
            value = arg.split("=", 1)[1]
        if value is not None:
            try:
                return max(1, int(value))
            except ValueError:
                break  # argparse reports it later
    return default_threads()


def early_thread_setup(argv: Sequence[str] | None = None) -> int:
    """Set the BLAS/OpenMP/numexpr (and jax) thread variables from ``--threads``; call before importing NumPy.

    With fewer threads than cores the process is also pinned to its first ``N`` cores (XLA sizes its pool
    from the cores the process may use, whatever its flags say).  Returns the thread count.  When NumPy is
    already loaded the variables no longer reach OpenBLAS; :func:`limit_blas` still limits it at run time.
    """
    threads = threads_from_argv(argv)
    if hasattr(os, "sched_setaffinity") and threads < default_threads():
        # the process runs on its first N cores: a library that sizes its pool from the cores it may use
        # (XLA does, whatever its flags say) gets no more threads than the others
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    for var in THREAD_ENV:
        os.environ[var] = str(threads)
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        extra = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        if extra not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {extra}".strip()
    return threads


def openblas_library() -> tuple[ctypes.CDLL, str, str] | None:
    """NumPy's OpenBLAS as a ctypes library with the prefix and suffix of its symbols, if it can be found."""
    import numpy as np

    paths: list[str] = []
    with contextlib.suppress(OSError), open("/proc/self/maps") as maps:  # the copy loaded into this process
        paths = sorted({line.split()[-1] for line in maps if "openblas" in line and ".so" in line})
    if not paths:
        here = os.path.dirname(np.__file__)
        paths = sorted(glob.glob(os.path.join(here, "..", "numpy.libs", "*openblas*")))
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "64_"), ("openblas_", ""),
                               ("scipy_openblas_", "")):
            if hasattr(lib, f"{prefix}get_num_threads{suffix}"):
                return lib, prefix, suffix
    return None


def blas_threads() -> str:
    """How many threads NumPy's BLAS says it uses, and how that was found out."""
    try:
        from threadpoolctl import threadpool_info

        pools = [f"{p['internal_api']} {p.get('version', '')}: {p['num_threads']} threads"
                 for p in threadpool_info() if p["user_api"] == "blas"]
        if pools:
            return "; ".join(pools) + " (threadpoolctl)"
    except ImportError:
        pass
    found = openblas_library()
    if found is None:
        return "unknown (no threadpoolctl and no OpenBLAS found; the *_NUM_THREADS variables were set)"
    lib, prefix, suffix = found
    count = getattr(lib, f"{prefix}get_num_threads{suffix}")()
    return f"OpenBLAS: {count} threads (asked through ctypes; threadpoolctl not installed)"


@contextlib.contextmanager
def limit_blas(threads: int) -> Iterator[None]:
    """Run the body with NumPy's BLAS limited to ``threads`` threads (threadpoolctl, else OpenBLAS's API)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
        return
    found = openblas_library()
    if found is None:
        yield
        return
    lib, prefix, suffix = found
    get, set_ = getattr(lib, f"{prefix}get_num_threads{suffix}"), getattr(lib, f"{prefix}set_num_threads{suffix}")
    before = get()
    set_(threads)
    try:
        yield
    finally:
        set_(before)


# ---- configuration and optional libraries --------------------------------------------------------------

@dataclass
class Config:
    """What every section gets: quick (smoke-test sizes and repeats) and the thread count."""

    quick: bool = False
    threads: int = field(default_factory=default_threads)
    repeat: int = 0  # timed runs per measurement; 0: the default for the mode

    @property
    def runs(self) -> int:
        """Timed rounds per comparison: ``--repeat``, else 15 (3 with ``--quick``)."""
        return self.repeat or (3 if self.quick else 15)

    @property
    def min_time(self) -> float:
        """Seconds of timing per comparison (after ``runs`` rounds, keep going until this much has passed)."""
        return 0.0 if self.quick else 0.5


_NOTED: set[str] = set()


def optional(name: str) -> ModuleType | None:
    """The module ``name`` if it is importable, else None (a failed import of an installed module too)."""
    try:
        return importlib.import_module(name)
    except Exception:
        return None


def skip_note(section: str, name: str, why: str = "not installed") -> None:
    """Print, once per section and library, that an alternative is skipped."""
    key = f"{section}:{name}"
    if key not in _NOTED:
        _NOTED.add(key)
        print(f"({section}) {name}: skipped ({why})")


# ---- timing ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Timing:
    """Seconds per call: the best and the median of the timed runs, and how many there were."""

    best: float
    median: float
    runs: int


def measure(fn: Callable[[], Any], runs: int = 15, warmup: int = 2, min_time: float = 0.0,
            max_runs: int = 10_000) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then at least ``runs`` timed calls (and until ``min_time``
    seconds have passed, at most ``max_runs``)."""
    return measure_many({"fn": fn}, runs, warmup, min_time, max_runs)["fn"]


SETTLE_SECONDS = 0.15  # OpenBLAS's workers spin for about 0.1 s after a call (OPENBLAS_THREAD_TIMEOUT)


def measure_many(fns: Mapping[str, Callable[[], Any]], runs: int = 15, warmup: int = 2, min_time: float = 0.0,
                 max_runs: int = 10_000, block: int = 1, settle: float = 0.0) -> dict[str, Timing]:
    """Time several callables *interleaved*: each round calls every one ``block`` times in a row, so that all
    of them see the same machine (a noisy neighbour slows them alike and the ratios hold).  ``warmup`` untimed
    rounds, then at least ``runs`` timed rounds, and more until ``min_time`` seconds have passed (at most
    ``max_runs``).  Multi-threaded libraries need ``block`` > 1: a BLAS's worker threads keep spinning for a
    while after a call returns, and would take the cores from whatever runs next; the first calls of a block
    pay for that, the best time comes from the later ones; ``settle`` seconds of sleep before each block (use
    :data:`SETTLE_SECONDS` on several threads) let them stop spinning altogether, as they do within about
    0.1 s, so that no side's block shares the cores with another library's idle workers."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    rounds = 0
    while rounds < max(runs, 1) or (time.perf_counter() - start < min_time and rounds < max_runs):
        for name, fn in fns.items():
            if settle:
                time.sleep(settle)
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        rounds += 1
    return {name: Timing(min(t), statistics.median(t), len(t)) for name, t in times.items()}


def measure_per_call(fn: Callable[[], Any], runs: int = 7, loop_time: float = 0.05, warmup_calls: int = 200
                     ) -> Timing:
    """Seconds per call of ``fn()``, for calls of a microsecond or so; see :func:`measure_per_call_many`."""
    return measure_per_call_many({"fn": fn}, runs, loop_time, warmup_calls)["fn"]


def measure_per_call_many(fns: Mapping[str, Callable[[], Any]], runs: int = 7, loop_time: float = 0.05,
                          warmup_calls: int = 200) -> dict[str, Timing]:
    """Seconds per call, for calls of a microsecond or so (where a perf_counter pair per call would dominate):
    after ``warmup_calls`` calls each, every callable gets a loop length that lasts about ``loop_time``
    seconds, and ``runs`` rounds time one loop of each (interleaved, as in :func:`measure_many`)."""
    calls: dict[str, int] = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        for _ in range(warmup_calls):
            fn()
        calls[name] = max(50, int(loop_time / max((time.perf_counter() - t0) / warmup_calls, 1e-8)))
    per_call: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(runs, 1)):
        for name, fn in fns.items():
            n = calls[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            per_call[name].append((time.perf_counter() - t0) / n)
    return {name: Timing(min(t), statistics.median(t), len(t)) for name, t in per_call.items()}


def fmt_time(seconds: float) -> str:
    """``12.3 ms``, ``4.56 us``, ``1.20 s``."""
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if seconds >= scale:
            value = seconds / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{seconds * 1e9:.3g} ns"


# ---- checks ------------------------------------------------------------------------------------------------

class Mismatch(AssertionError):
    """graphc's result differs from the reference: the benchmark's numbers would be meaningless."""


def check_close(what: str, got: Any, expected: Any, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Raise :class:`Mismatch` unless ``got`` and ``expected`` are allclose (same shape too)."""
    import numpy as np

    got_a, expected_a = np.asarray(got), np.asarray(expected)
    if got_a.shape != expected_a.shape:
        raise Mismatch(f"{what}: shape {got_a.shape} != expected {expected_a.shape}")
    if not np.allclose(got_a, expected_a, rtol=rtol, atol=atol, equal_nan=True):
        diff = np.abs(got_a.astype(np.float64) - expected_a.astype(np.float64))
        worst = tuple(int(i) for i in np.unravel_index(int(np.nanargmax(diff)), diff.shape)) if diff.ndim else ()
        raise Mismatch(f"{what}: not allclose (rtol={rtol}, atol={atol}); max |diff| {np.nanmax(diff):.3g} at "
                       f"{worst}: got {got_a[worst].item()!r}, expected {expected_a[worst].item()!r}")


def agrees(section: str, name: str, got: Any, expected: Any, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """For an alternative library: True if its result matches NumPy's, else print why it is skipped."""
    try:
        check_close(name, got, expected, rtol, atol)
    except Mismatch as exc:
        skip_note(section, name, f"result disagrees with NumPy: {exc}")
        return False
    return True


# ---- targets, rows, lines -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A goal for one measured value: ``value >= bound`` (``at_least``), ``value > bound`` (``above``) or
    ``value <= bound`` (``at_most``)."""

    op: str
    bound: float
    unit: str = "x"

    def met(self, value: float) -> bool:
        """Whether ``value`` meets this target."""
        return {">=": value >= self.bound, ">": value > self.bound, "<=": value <= self.bound}[self.op]

    def __str__(self) -> str:
        return f"{self.op} {self.bound:g}{self.unit if self.unit == 'x' else ' ' + self.unit}"


def at_least(bound: float, unit: str = "x") -> Target:
    """Target: the value must be at least ``bound``."""
    return Target(">=", bound, unit)


def above(bound: float, unit: str = "x") -> Target:
    """Target: the value must exceed ``bound`` (``above(1)``: faster than the other side)."""
    return Target(">", bound, unit)


def at_most(bound: float, unit: str = "x") -> Target:
    """Target: the value must be at most ``bound`` (times, microseconds)."""
    return Target("<=", bound, unit)


@dataclass
class Row:
    """One line of run_all's summary: a measured value, with its target if it has one."""

    section: str
    what: str
    value: float
    unit: str = "x"
    target: Target | None = None
    note: str = ""

    def formatted(self) -> str:
        """The value with its unit, as the summary prints it (``n/a`` when not measured)."""
        if self.value != self.value:  # NaN: not measured
            return "n/a"
        if self.unit == "x":
            return f"{self.value:.2f}x"
        if self.unit == "us":
            return f"{self.value:.1f} us"
        if self.unit == "s":
            return f"{self.value:.3f} s"
        return f"{self.value:.3g} {self.unit}"


def ratio_line(section: str, label: str, graphc: Timing, name: str, other: Timing,
               target: Target | None = None) -> tuple[str, float]:
    """``(a) 1e7  graphc 3.1 ms  numpy 14.2 ms  ratio 4.6x  (target >= 4x)``; the ratio is the other's best
    time over graphc's best time (above 1: graphc is faster); the medians' ratio follows in brackets."""
    ratio = other.best / graphc.best
    median_ratio = other.median / graphc.median
    line = (f"({section}) {label}  graphc {fmt_time(graphc.best)}  {name} {fmt_time(other.best)}  "
            f"ratio {ratio:.2f}x  [median {median_ratio:.2f}x]")
    if target is not None:
        line += f"  (target {target})"
    if unstable(ratio, median_ratio):
        line += "  UNSTABLE: best and median ratios disagree (a busy machine?)"
    return line, ratio


def unstable(ratio: float, median_ratio: float) -> bool:
    """Whether the best-time ratio and the median ratio differ by more than 1.5x either way."""
    return max(ratio / median_ratio, median_ratio / ratio) > 1.5


def compare(section: str, label: str, graphc: Timing, others: dict[str, Timing],
            targets: dict[str, Target] | None = None, what: str | None = None) -> list[Row]:
    """Print one ratio line per alternative and return summary rows (every alternative gets one; those named
    in ``targets`` carry their target)."""
    rows = []
    for name, timing in others.items():
        target = (targets or {}).get(name)
        line, ratio = ratio_line(section, label, graphc, name, timing, target)
        print(line, flush=True)
        shaky = unstable(ratio, timing.median / graphc.median)
        rows.append(Row(section, f"{what or label} vs {name}", ratio, "x", target,
                        note=f"UNSTABLE, median ratio {timing.median / graphc.median:.2f}x" if shaky else ""))
    return rows


def library_versions() -> str:
    """``numpy 2.4.6, llvmlite 0.50.0; numexpr -, jax -, ...`` (a dash: not importable)."""
    parts = []
    for name in ("numpy", "llvmlite", *OPTIONAL, "threadpoolctl"):
        module = optional(name)
        parts.append(f"{name} {getattr(module, '__version__', '?') if module else '-'}")
    return ", ".join(parts)


__all__ = ["Config", "Mismatch", "Row", "Target", "Timing", "above", "agrees", "at_least", "at_most", "blas_threads",
           "check_close", "compare", "default_threads", "early_thread_setup", "fmt_time", "library_versions",
           "openblas_library",
           "limit_blas", "measure", "measure_many", "measure_per_call", "measure_per_call_many", "optional",
           "SETTLE_SECONDS", "ratio_line", "skip_note", "threads_from_argv", "unstable"]
