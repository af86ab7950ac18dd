"""The CUDA backend's launch plan (graphc/backends/cuda/launch.py): which loops become GPU threads.

Only the mapping is checked here (the structure of the launches); running them needs the emulator or a GPU.
"""

from __future__ import annotations

import graphc as gc
from graphc.backends.cuda.launch import Launch, plan_kernel
from graphc.lower.loopir import Gemm, Loop
from graphc.lower.policy import LoweringPolicy
from graphc.lower.program import LoweredProgram


def launches(outputs: list[gc.Tensor]) -> list[list[Launch]]:
    opt = gc.optimize(outputs)
    program = LoweredProgram(opt.nodes, {n.id: n.aval for n in opt.nodes}, list(opt.outputs), LoweringPolicy())
    return [plan_kernel(k) for k in program.kernels]


def test_an_elementwise_kernel_is_one_thread_per_element() -> None:
    x = gc.placeholder("float32", (64, 100), name="x")
    (plan,) = launches([gc.relu(x * 2.0 + 1.0)])
    (launch,) = plan
    assert launch.size == 6400 and launch.threads_per_block == 256 and launch.grid == 25
    assert not any(isinstance(s, Loop) for s in launch.body)  # the whole nest became the thread space


def test_a_row_reduction_is_one_thread_per_row_and_a_full_one_is_serial() -> None:
    x = gc.placeholder("float32", (8, 50), name="x")
    rows, full = launches([gc.sum(gc.exp(x), axis=1), gc.sum(x)])
    assert [launch.size for launch in rows] == [8] and any(isinstance(s, Loop) for s in rows[0].body)
    assert [launch.space for launch in full] == [()] and full[0].describe().endswith("serial (grid 1 x block 1)")


def test_a_matrix_product_is_a_generated_gemm_then_its_epilogue() -> None:
    a = gc.placeholder("float32", (6, 5), name="a")
    b = gc.placeholder("float32", (5, 7), name="b")
    (plan,) = launches([gc.relu(a @ b + 1.0)])
    gemm, epilogue = plan
    assert [extent for _, extent in gemm.space] == [6, 7] and epilogue.size == 42
    assert not any(isinstance(s, Gemm) for launch in plan for s in launch.body)


def test_a_scatter_add_does_not_spread_colliding_indices_over_threads() -> None:
    x = gc.placeholder("float32", (4, 3), name="x")
    idx = gc.placeholder("int64", (5,), name="idx")
    (gx,) = gc.grad(gc.sum(gc.take(x, idx, axis=0)), [x])
    plans = launches([gx])
    scatter = [launch for plan in plans for launch in plan if "status" in {p.name for p in launch.params}]
    assert scatter and all(len(launch.space) == 1 for launch in scatter)  # only the leading (pre) loop
