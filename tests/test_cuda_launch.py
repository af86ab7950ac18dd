"""The CUDA backend's launch plan (graphc/backends/cuda/launch.py): which loops become GPU threads.

Only the mapping is checked here (the structure of the launches); running them needs the emulator or a GPU.
"""

from __future__ import annotations

import graphc as gc
from graphc.backends.cuda.launch import AtomicAdd, BlockLaunch, Launch, plan_kernel
from graphc.backends.cuda.program import gpu_policy
from graphc.lower.loopir import Gemm, Loop, Store
from graphc.lower.program import LoweredProgram


def launches(outputs: list[gc.Tensor]) -> list[list[Launch]]:
    opt = gc.optimize(outputs)
    program = LoweredProgram(opt.nodes, {n.id: n.aval for n in opt.nodes}, list(opt.outputs), gpu_policy())
    return [plan_kernel(k) for k in program.kernels]


def test_an_elementwise_kernel_is_one_thread_per_element() -> None:
    x = gc.placeholder("float32", (64, 100), name="x")
    (plan,) = launches([gc.relu(x * 2.0 + 1.0)])
    (launch,) = plan
    assert launch.size == 6400 and launch.threads_per_block == 256 and launch.grid == 25
    assert not any(isinstance(s, Loop) for s in launch.body)  # the whole nest became the thread space


def test_short_rows_are_a_thread_each_and_long_ones_a_block_each() -> None:
    x = gc.placeholder("float32", (8, 50), name="x")
    y = gc.placeholder("float32", (2, 200), name="y")
    rows, full, long_rows = launches([gc.sum(gc.exp(x), axis=1), gc.sum(x), gc.softmax(y)])
    assert [launch.size for launch in rows] == [8] and any(isinstance(s, Loop) for s in rows[0].body)
    (one,) = full  # 400 elements: one block shares them
    assert isinstance(one, BlockLaunch) and one.grid == 1 and one.block == 256
    assert [type(s).__name__ for s in one.body] == ["AccInit", "BlockFold", "Lane0"]
    (softmax,) = long_rows  # max, then sum of exp, then the row written by every thread of the block
    assert isinstance(softmax, BlockLaunch) and softmax.grid == 2
    assert [type(s).__name__ for s in softmax.body].count("BlockFold") == 2
    assert type(softmax.body[-1]).__name__ == "BlockFor"
    assert "grid 2 x block 256" in softmax.describe() and "2 block reductions" in softmax.describe()


def test_a_serial_launch_runs_on_one_thread() -> None:
    x = gc.placeholder("float32", (3,), name="x")
    (plan,) = launches([gc.sum(x)])
    assert [launch.space for launch in plan] == [()] and plan[0].describe().endswith("serial (grid 1 x block 1)")


def test_a_matrix_product_is_a_generated_gemm_then_its_epilogue() -> None:
    a = gc.placeholder("float32", (6, 5), name="a")
    b = gc.placeholder("float32", (5, 7), name="b")
    (plan,) = launches([gc.relu(a @ b + 1.0)])
    gemm, epilogue = plan
    assert [extent for _, extent in gemm.space] == [6, 7] and epilogue.size == 42
    assert not any(isinstance(s, Gemm) for launch in plan for s in launch.body)


def test_a_scatter_add_spreads_over_threads_with_atomic_adds() -> None:
    x = gc.placeholder("float32", (4, 3), name="x")
    idx = gc.placeholder("int64", (5,), name="idx")
    (gx,) = gc.grad(gc.sum(gc.take(x, idx, axis=0)), [x])
    plans = launches([gx])
    scatter = [launch for plan in plans for launch in plan if "status" in {p.name for p in launch.params}]
    assert len(scatter) == 1 and [extent for _, extent in scatter[0].space] == [1, 5, 3]  # every (p, j, q)
    adds = [s for s in _statements(scatter[0].body) if isinstance(s, AtomicAdd)]
    assert len(adds) == 1 and not any(isinstance(s, Store) for s in _statements(scatter[0].body))


def _statements(body: tuple) -> list:
    found = []
    for s in body:
        found.append(s)
        if isinstance(s, Loop):
            found += _statements(s.body)
    return found
