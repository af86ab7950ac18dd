"""(h) Compile time of (f)'s training function (the 784-500-10 classifier): cold, and from the disk cache.

    python3 benchmarks/bench_compile.py [--quick] [--threads N]

Two fresh Python processes run one after the other with ``GRAPHC_CACHE_DIR`` pointing at the same new,
empty temporary directory: the first compiles with an empty cache (cold: the runtime library too, as on a
machine's first use of graphc), the second should find the compiled code there (cached).  A third pair
measures the usual case in between: a graph compiled for the first time where the runtime library (thread
pool and GEMM, compiled once per machine and kept in the cache) is already there; a process compiling a
tiny float32 matmul puts it in a second new directory first.  Inside each child, the compile time is

    (time to construct the gc.function) + (time of the first call) - (a steady-state call, best of 5)

i.e. everything the first call costs beyond running the step.  (With --quick, (a)'s expression on 1000
elements stands in for (f): a smoke test of the mechanism.)  Each child also checks the first call's result
(for (f): the loss and the updated weights) against NumPy's, so a stale or wrong cache entry cannot post a
good time.  The parent
reports both times and what the cache directory holds after each run.
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
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from _harness import Section, main_cli  # noqa: E402
from _timing import Config, Row, at_most, fmt_time  # noqa: E402

CHILD_FLAG = "--child"


def _classifier(threads: int) -> tuple[Callable[[], Callable[[], Any]], Callable[[Any], None]]:
    """(f)'s training function: (construct it, check the first call's result against NumPy)."""
    from _timing import check_close
    from bench_training import build_classifier, classifier_problem, numpy_classifier

    init, x, y = classifier_problem()
    built: dict[str, Any] = {}

    def construct() -> Callable[[], Any]:
        train, built["params"], _ = build_classifier(init, threads)
        return lambda: train(x, y)

    def verify(loss: Any) -> None:
        reference = numpy_classifier(init, x, y, threads)
        check_close("(h) first loss vs numpy", float(loss), reference.step(), 2e-4, 1e-5)
        for i, (got, expected) in enumerate(zip([p.value for p in built["params"]], reference.params())):
            check_close(f"(h) parameter {i} after one step vs numpy", got, expected, 2e-4, 1e-5)

    return construct, verify


def _small(threads: int) -> tuple[Callable[[], Callable[[], Any]], Callable[[Any], None]]:
    """--quick: (a)'s expression on 1000 elements instead (a smoke test of the mechanism, compiled in a blink)."""
    import numpy as np
    from _timing import check_close
    from bench_elementwise import NUMPY_NS, expr_a, graphc_function

    a, b = np.random.default_rng(0).random((2, 1000), np.float32)

    def construct() -> Callable[[], Any]:
        fn = graphc_function("expr_a", expr_a, 2, threads)
        return lambda: fn(a, b)

    return construct, lambda out: check_close("(h) (a) vs numpy", out, expr_a(NUMPY_NS, a, b))


def _prime(threads: int) -> None:
    """Compile and run a 2 x 2 float32 matmul: the runtime library's pool and float32 GEMM reach the cache."""
    import numpy as np

    import graphc as gc

    x = gc.placeholder("float32", (2, 2))
    gc.function([x], x @ x, device="cpu", threads=threads)(np.eye(2, dtype=np.float32))


def child(threads: int, quick: bool) -> dict[str, float]:
    """In a fresh process: import graphc, construct and first-call the function; the times in seconds."""
    t0 = time.perf_counter()
    import graphc  # noqa: F401

    import_s = time.perf_counter() - t0
    from _timing import measure

    construct, verify = (_small if quick else _classifier)(threads)
    t0 = time.perf_counter()
    call = construct()
    construct_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = call()
    first_s = time.perf_counter() - t0
    verify(result)
    steady = measure(call, runs=5, warmup=0)
    return {"import_s": import_s, "construct_s": construct_s, "first_call_s": first_s, "steady_s": steady.best,
            "compile_s": construct_s + first_s - steady.best}


def _cache_contents(path: str) -> tuple[int, int]:
    """(number of files, total bytes) under ``path``."""
    files = [os.path.join(d, f) for d, _, names in os.walk(path) for f in names]
    return len(files), sum(os.path.getsize(f) for f in files)


def _run_child(cache_dir: str, cfg: Config, prime: bool = False) -> dict[str, float]:
    """Run :func:`child` (``prime``: :func:`_prime`) in a fresh process with ``GRAPHC_CACHE_DIR=cache_dir``; its
    times (RuntimeError on failure)."""
    env = dict(os.environ, GRAPHC_CACHE_DIR=cache_dir)
    # Python writes and reuses its bytecode cache as it does for a user; with writing turned off (some
    # sandboxes set this), every child would compile graphc's ~200 modules from source again
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmd = [sys.executable, os.path.abspath(__file__), CHILD_FLAG, "--threads", str(cfg.threads)]
    if cfg.quick:
        cmd.append("--quick")
    if prime:
        cmd.append("--prime")
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"the child process failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def section_h(cfg: Config) -> list[Row]:
    """(h) cold compile (empty GRAPHC_CACHE_DIR, target <= 0.5 s), cached compile (same dir, <= 0.03 s), and a
    first compile with the runtime library already cached (no target: context)."""
    rows = []
    what = "(a), quick" if cfg.quick else "(f)"
    with tempfile.TemporaryDirectory(prefix="graphc-bench-cache-") as cache_dir, \
            tempfile.TemporaryDirectory(prefix="graphc-bench-cache-") as primed_dir:
        _run_child(primed_dir, cfg, prime=True)
        runs = (("cold", cache_dir, 0.5, "cold compile"), ("cached", cache_dir, 0.03, "cached compile"),
                ("new graph", primed_dir, None, "compile, runtime library cached"))
        for kind, directory, bound, label in runs:
            t = _run_child(directory, cfg)
            files, size = _cache_contents(directory)
            target = None if cfg.quick or bound is None else at_most(bound, "s")
            print(f"(h) {kind:<9} compile {fmt_time(t['compile_s'])}"
                  + (f"  (target {target})" if target else "")
                  + f"  [construct {fmt_time(t['construct_s'])}, first call {fmt_time(t['first_call_s'])}, "
                  f"steady step {fmt_time(t['steady_s'])}; import graphc {fmt_time(t['import_s'])}]", flush=True)
            print(f"(h) {kind:<9} cache directory afterwards: {files} files, {size / 1e3:.0f} kB"
                  + ("  (nothing written: is GRAPHC_CACHE_DIR implemented?)" if files == 0 else ""), flush=True)
            rows.append(Row("h", f"{label} of {what}", t["compile_s"], "s", target))
    return rows


SECTIONS: dict[str, Section] = {"h": ("compile time of (f): cold and from the disk cache (fresh processes)", section_h)}


if __name__ == "__main__":
    if CHILD_FLAG in sys.argv:
        from _timing import threads_from_argv

        if "--prime" in sys.argv:
            _prime(threads_from_argv())
            print("{}")
        else:
            print(json.dumps(child(threads_from_argv(), "--quick" in sys.argv)))
        raise SystemExit(0)
    raise SystemExit(main_cli(SECTIONS, __doc__))
