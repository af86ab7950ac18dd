"""The CPU backend on several threads: the same values as on one thread (the same bits but for float
reductions, which may be cut into per-thread parts: docs/numerics.md) and as the reference, large
kernels split through the thread pool, small ones not, the arena reused across calls."""

from __future__ import annotations

import gc as python_gc
import threading
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest

import graphc as gc
from graphc.lower.program import plan_arena
from util import DEVICES, THREADS, assert_identical, assert_paths_agree

BIG = 1 << 18  # above the work threshold for splitting a loop


def _cases() -> dict[str, tuple[Callable[..., object], list[tuple[tuple[int, ...], str]]]]:
    return {
        "elementwise": (lambda a, b: gc.sigmoid(a * b + 1.0) * gc.tanh(a), [((BIG,), "float32")] * 2),
        "broadcast": (lambda a, b: a + b, [((512, 600), "float32"), ((600,), "float32")]),
        "row_sum": (lambda a: gc.sum(a * a, axis=1), [((600, 512), "float64")]),
        "column_max": (lambda a: gc.max(a, axis=0), [((600, 512), "float32")]),
        "softmax": (lambda a: gc.softmax(a), [((600, 512), "float32")]),
        "transpose": (lambda a: gc.transpose(a) * 2.0, [((300, 1000), "float32")]),
        "matmul": (lambda a, b: gc.relu(gc.matmul(a, b) + 1.0), [((300, 200), "float32"), ((200, 400), "float32")]),
        "matmul_wide": (lambda a, b: gc.matmul(a, b), [((5, 700), "float64"), ((700, 900), "float64")]),
        "int_matmul": (lambda a, b: gc.matmul(a, b), [((100, 80), "int64"), ((80, 90), "int64")]),
        "argmax": (lambda a: gc.argmax(a, axis=1), [((600, 512), "float32")]),
        "mean_all": (lambda a: gc.mean(a), [((BIG,), "float64")]),
        "few_long_rows": (lambda a: gc.sum(gc.exp(a), axis=1), [((3, BIG + 5), "float64")]),
        "max_all_odd": (lambda a: gc.max(a * 3.0), [((BIG + 7,), "float32")]),
        "min_two_axes": (lambda a: gc.min(a, axis=(0, 2)), [((7, 2, 40001), "float64")]),
    }


def _graph(name: str) -> tuple[gc.Tensor, list[gc.Tensor], list[np.ndarray]]:
    build, specs = _cases()[name]
    rng = np.random.default_rng(7)
    xs = [gc.placeholder(dtype, shape) for shape, dtype in specs]
    values = [rng.integers(-5, 5, shape).astype(dtype) if dtype.startswith("int")
              else rng.standard_normal(shape).astype(dtype) for shape, dtype in specs]
    return build(*xs), xs, values


def _run(name: str, threads: int, device: str = "cpu") -> list[np.ndarray]:
    out, xs, values = _graph(name)
    f = gc.function(xs, out, device=device, threads=threads)
    return [f(*values), f(*values)]


@pytest.mark.parametrize("name", sorted(_cases()))
def test_threads_agree_with_one_thread_and_reference(name: str) -> None:
    one, reference = _run(name, 1)[0], _run(name, 1, "reference")[0]
    out, xs, values = _graph(name)
    feeds = dict(zip(xs, values))
    for threads in (2, 3, 4):
        first, second = _run(name, threads)
        assert first.dtype == reference.dtype and first.shape == reference.shape
        assert_identical(first, second)  # the split is deterministic
        # the same graph built again, so path_bounds sees the placeholders the values are fed to
        assert_paths_agree(first, one, out, feeds, THREADS)
        assert_paths_agree(first, reference, out, feeds, {THREADS, DEVICES})


def test_large_loops_use_the_pool_and_small_ones_do_not() -> None:
    a = gc.placeholder("float32", (None,))
    f = gc.function([a], gc.exp(a) + 1.0, device="cpu", threads=4)
    f(np.ones(BIG, np.float32))
    assert "graphc_parallel_for" in f.source("llvm")
    f(np.ones(16, np.float32))
    assert "graphc_parallel_for" not in f.source("llvm")
    single = gc.function([a], gc.exp(a) + 1.0, device="cpu", threads=1)
    single(np.ones(BIG, np.float32))
    assert "graphc_parallel_for" not in single.source("llvm")


def test_concurrent_calls_on_many_threads() -> None:
    a = gc.placeholder("float32", (None,))
    f = gc.function([a], gc.sum(gc.square(a)) + gc.max(a * 2.0), device="cpu", threads=2)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(BIG + k).astype(np.float32) for k in range(4)]
    expected = [float((x.astype(np.float64) ** 2).sum() + 2 * x.max()) for x in inputs]
    errors: list[str] = []

    def worker(k: int) -> None:
        for _ in range(20):
            got = float(f(inputs[k]))
            if abs(got - expected[k]) > 1e-3 * abs(expected[k]):
                errors.append(f"{k}: {got} != {expected[k]}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def test_ten_thousand_calls_do_not_grow_memory() -> None:
    x = gc.placeholder("float32", (64, 32))
    w = gc.Variable(np.full((32, 16), 0.01, np.float32), name="w")
    h = gc.tanh(gc.matmul(x, w)) * 2.0 + 1.0
    loss = gc.mean(gc.square(h))
    step = gc.function([x], loss, updates={w: w - 0.001 * gc.grad(loss, [w])[0]}, device="cpu")
    data = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    for _ in range(200):  # warm up: compile, arena, caches
        step(data)
    python_gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(10_000):
        step(data)
    python_gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert growth < 64 * 1024, f"memory grew by {growth} bytes over 10,000 calls"
    assert len(step._program._executables) == 1
    executable = next(iter(step._program._executables.values()))
    assert len(executable._free) == 1  # one arena, reused


def test_arena_plan_shares_bytes_only_between_disjoint_lifetimes() -> None:
    sizes = {0: 1000, 1: 1000, 2: 64, 3: 5000}
    lifetimes = {0: (0, 1), 1: (2, 3), 2: (1, 2), 3: (0, 3)}
    offsets, total = plan_arena(sizes, lifetimes)
    spans = {s: (offsets[s], offsets[s] + sizes[s]) for s in sizes}
    for a in sizes:
        for b in sizes:
            overlap_in_time = lifetimes[a][0] <= lifetimes[b][1] and lifetimes[b][0] <= lifetimes[a][1]
            overlap_in_memory = spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]
            if a != b and overlap_in_time:
                assert not overlap_in_memory, (a, b)
        assert offsets[a] % 64 == 0
    assert spans[0] == (offsets[1], offsets[1] + 1000)  # 0 and 1 never live together: same bytes
    assert total < sum(-(-s // 64) * 64 for s in sizes.values())


def test_threads_argument_is_checked() -> None:
    x = gc.placeholder("float32", (2,))
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(gc.ArgumentError, match="threads"):
            gc.function([x], x + 1.0, device="cpu", threads=bad)
        with pytest.raises(gc.ArgumentError, match="threads"):
            gc.Session(device="cpu", threads=bad)
    assert gc.function([x], x, threads=None).threads >= 1
