"""Every op in the registry runs on device="cpu" (and on the CUDA backend: its emulator "cuda-sim", and "cuda"
where a GPU is present) and agrees with the reference.

The registry is walked: each op that computes something has a sample graph here (elementwise ops are
all run, for every dtype, by test_cpu_backend.py), so an op registered without a CPU lowering, or
whose lowering breaks, fails this test by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import graphc as gc
from graphc.ir.build import constant, make_node
from graphc.ir.registry import REGISTRY
from graphc.lower.registry import NOT_LOWERED_YET
from util import COMPILED_DEVICES, DEVICES, assert_within, path_bounds, random_array

NO_CODE = {"placeholder", "variable", "constant", "parameter", "group", "kernel_output"}
RNG = np.random.default_rng(3)
X = gc.placeholder("float64", (2, 3, 5, 4), name="cov_x")
W = gc.placeholder("float64", (2, 3, 3, 2), name="cov_w")
M = gc.placeholder("float64", (4, 5), name="cov_m")
L = gc.placeholder("int64", (4,), name="cov_l")
FEEDS = {X: random_array(RNG, (2, 3, 5, 4), "float64"), W: random_array(RNG, (2, 3, 3, 2), "float64"),
         M: random_array(RNG, (4, 5), "float64"), L: np.array([0, 4, 2, 1])}
POOL = {"ksize": (2, 3), "strides": (2, 1), "padding": "SAME"}
CONV = {"strides": (2, 1), "padding": ((1, 0), (0, 1))}
Y = gc.conv2d(X, W, **CONV)
P = gc.max_pool2d(X, **POOL)


def _variable_update(op: str) -> Any:
    v = gc.Variable(np.ones((4, 5)), name=f"cov_{op}")
    return make_node(op, [v, M * 2.0])


SAMPLES: dict[str, Callable[[], Any]] = {
    "fused": lambda: gc.optimize([gc.exp(M) * 2.0 + 1.0]).outputs[0],  # (optimised anyway; here explicitly)
    "matmul": lambda: M @ gc.transpose(M),
    "conv2d": lambda: Y,
    "conv2d_grad_input": lambda: make_node("conv2d_grad_input", [Y, W, X], **CONV),
    "conv2d_grad_weight": lambda: make_node("conv2d_grad_weight", [X, Y, W], **CONV),
    "max_pool2d": lambda: P,
    "avg_pool2d": lambda: gc.avg_pool2d(X, **POOL),
    "max_pool2d_grad": lambda: make_node("max_pool2d_grad", [P, X], **POOL),
    "max_pool2d_select": lambda: make_node("max_pool2d_select", [X, X], **POOL),
    "avg_pool2d_grad": lambda: make_node("avg_pool2d_grad", [P, X], **POOL),
    "softmax": lambda: gc.softmax(M),
    "log_softmax": lambda: gc.log_softmax(M, axis=0),
    "softmax_cross_entropy": lambda: gc.softmax_cross_entropy(M, L),
    "argmax": lambda: gc.argmax(M, axis=1),
    "argmin": lambda: gc.argmin(M),
    "logsumexp": lambda: gc.logsumexp(M, axis=1),
    "max": lambda: gc.max(M, axis=0),
    "min": lambda: gc.min(M, axis=1),
    "mean": lambda: gc.mean(M),
    "prod": lambda: gc.prod(M, axis=1),
    "sum": lambda: gc.sum(M, axis=0, keepdims=True),
    "sum_to": lambda: make_node("sum_to", [M, constant(np.zeros((1, 5)))]),
    "broadcast_like": lambda: make_node("broadcast_like", [M[:1], M]),
    "broadcast_to": lambda: gc.broadcast_to(M[:, :1], (3, 4, 5)),
    "concat": lambda: gc.concat([M, M[:1]], axis=0),
    "concat_part": lambda: make_node("concat_part", [M, M[:, :2], M[:, 2:]], axis=1, index=1),
    "fill_like": lambda: gc.zeros_like(M),
    "one_hot": lambda: gc.one_hot(L, 5),
    "pad": lambda: gc.pad(M, ((1, 2), (3, 0)), mode="reflect"),
    "pad_grad": lambda: make_node("pad_grad", [M, M[1:, 2:]], pad_width=((1, 0), (2, 0)), mode="edge"),
    "reshape": lambda: gc.reshape(M, (5, 4)),
    "reshape_dims": lambda: gc.expand_dims(M, 1),
    "reshape_like": lambda: make_node("reshape_like", [M, constant(np.zeros((2, 10)))]),
    "slice": lambda: M[::-1, 1:4],
    "slice_grad": lambda: make_node("slice_grad", [M[::2], M], index=M[::2].attrs["index"]),
    "take": lambda: gc.take(M, L % 4, axis=0),
    "take_grad": lambda: gc.grad(gc.sum(gc.take(M, L % 4, axis=0) ** 2), M),
    "transpose": lambda: gc.transpose(M),
    "assign": lambda: _variable_update("assign"),
    "assign_add": lambda: _variable_update("assign_add"),
}


def test_every_op_that_computes_has_a_sample() -> None:
    needed = {name for name, op in REGISTRY.items()
              if op.family not in ("elementwise", "control") and name not in NO_CODE | NOT_LOWERED_YET}
    # control flow (loop, cond, part) runs on the CPU in tests/test_control_flow.py; the GPU backends refuse it
    assert needed - set(SAMPLES) == set(), "ops without a CPU sample graph"
    assert set(SAMPLES) - needed == set(), "samples of ops no longer registered"


@pytest.mark.parametrize("device", COMPILED_DEVICES)
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_op_runs_on_cpu_like_the_reference(name: str, device: str) -> None:
    out = SAMPLES[name]()
    assert any(n.op == name for n in gc.Graph([out]).nodes) or name == "fused"
    variables = [n for n in gc.Graph([out]).nodes if n.op == "variable"]
    start = [v.value for v in variables]
    (bound,) = path_bounds(out, FEEDS, DEVICES)  # docs/numerics.md: the same bits, or within the bounds
    got = gc.Session(device=device).run(out, FEEDS)
    for v, value in zip(variables, start):  # assign and assign_add change them: both devices start alike
        v.assign(value)
    want = gc.Session(device="reference").run(out, FEEDS)
    assert_within(got, want, bound, signed_zeros=False)
