"""The CUDA backend's kernels as PTX: emitted through LLVM's NVPTX target and assembled by NVIDIA's
``ptxas`` for sm_80 (Ampere) and sm_90 (Hopper), without a GPU.

The graphs below cover every op kind the op suites run (every elementwise op on every dtype it takes,
every reduction over every kind of axis set, the split reduction, shape ops, gathers and scatters,
the softmax family, convolutions and pools with first and second order gradients, matrix products
through cuBLAS and through the generated fallback, and an optimizer step).  All their launches go into
one module per group and architecture.  ``GRAPHC_TEST_PTXAS=all`` assembles every graph the
device suites compile on ``cuda-sim`` too (slow; see tests/conftest.py).
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest

import graphc as gc
from graphc.backends.cuda.launch import Launch
from graphc.backends.cuda.nvptx import emit_module, launches_ptx
from graphc.backends.cuda.program import GpuProgram
from graphc.backends.cuda.ptxas import assemble, find_ptxas
from graphc.ir.registry import ops_in_family
from graphc.runtime.program import Program, infer_all

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "float32", "float64"]
ARCHS = ["sm_80", "sm_90"]
SKIP_ELEMENTWISE = {"cast", "where", "stop_gradient"}

needs_ptxas = pytest.mark.skipif(find_ptxas() is None, reason="ptxas not installed (pip install nvidia-cuda-nvcc-cu12)")


def _elementwise() -> list[gc.Tensor]:
    outs: list[gc.Tensor] = []
    for opdef in ops_in_family("elementwise"):
        fn = getattr(gc, opdef.name, None)
        if opdef.name in SKIP_ELEMENTWISE or fn is None or opdef.num_inputs not in (1, 2):
            continue
        for dtype in DTYPES:
            args = [gc.placeholder(dtype, (3, 5)) for _ in range(opdef.num_inputs)]
            try:
                outs.append(fn(*args))
            except gc.GraphcError:  # not defined for this dtype
                continue
    a = gc.placeholder("float32", (3, 5))
    for target in DTYPES:
        outs.append(gc.cast(a, target))
        outs.append(gc.cast(gc.placeholder(target, (3, 5)), "float64"))
    outs.append(gc.where(a > 0, a, gc.placeholder("float32", (1, 5))))
    return outs


def _reductions() -> list[gc.Tensor]:
    outs: list[gc.Tensor] = []
    for dtype in DTYPES:
        x = gc.placeholder(dtype, (3, 4, 5))
        for name in ("sum", "mean", "max", "min", "prod", "argmax", "argmin", "logsumexp"):
            for axis in (None, 0, -1, (0, 2)):
                if name.startswith("arg") and isinstance(axis, tuple):
                    continue
                try:
                    outs.append(getattr(gc, name)(x, axis=axis))
                except gc.GraphcError:
                    continue
    big = gc.placeholder("float32", (3, 40000))
    outs += [gc.sum(big), gc.max(big, axis=1), gc.sum(big, axis=0)]  # the split reduction, a column sum
    return outs


def _shapes_and_gathers() -> list[gc.Tensor]:
    x = gc.placeholder("float32", (4, 6))
    y = gc.placeholder("float32", (4, 6))
    idx = gc.placeholder("int32", (5,))
    labels = gc.placeholder("int64", (4,))
    outs = [gc.transpose(x), gc.reshape(x, (6, 4)), gc.concat([x, y], axis=1), gc.stack([x, y]),
            *gc.split(x, 2, axis=1), gc.pad(x, ((1, 0), (2, 1))), x[1:3, ::2], gc.broadcast_to(x[:1], (4, 6)),
            gc.take(x, idx, axis=0), gc.take(x, idx, axis=1), gc.one_hot(labels, 6), gc.expand_dims(x, 0)]
    (gx,) = gc.grad(gc.sum(gc.take(x, idx, axis=0) * 2.0), [x])  # take_grad: a scatter-add
    return [*outs, gx]


def _nn() -> list[gc.Tensor]:
    logits = gc.placeholder("float32", (8, 10))
    labels = gc.placeholder("int64", (8,))
    outs = [gc.softmax(logits), gc.log_softmax(logits), gc.mean(gc.softmax_cross_entropy(logits, labels))]
    outs += gc.grad(gc.mean(gc.softmax_cross_entropy(logits, labels)), [logits])
    for dtype in ("float32", "float64"):
        x = gc.placeholder(dtype, (2, 3, 7, 6))
        w = gc.placeholder(dtype, (4, 3, 3, 2))
        for stride, padding in ((1, "SAME"), (2, "VALID"), ((2, 1), ((1, 0), (0, 2)))):
            h = gc.relu(gc.conv2d(x, w, stride, padding))
            loss = gc.mean(gc.square(gc.max_pool2d(h, 3, 2, "SAME"))) + gc.mean(gc.avg_pool2d(gc.tanh(h), 2, 1, 1))
            gx, gw = gc.grad(loss, [x, w])
            outs += [loss, gx, gw, *gc.grad(gc.sum(gc.square(gx)) + gc.sum(gc.square(gw)), [x, w])]
        outs.append(gc.conv2d(x, gc.placeholder(dtype, (5, 3, 1, 1)), 1, "VALID"))  # pointwise
    return outs


def _products() -> list[gc.Tensor]:
    outs = []
    for dtype in ("float32", "float64", "int32", "int64"):
        a, b = gc.placeholder(dtype, (6, 5)), gc.placeholder(dtype, (5, 7))
        outs += [a @ b, gc.transpose(b) @ gc.transpose(a), gc.placeholder(dtype, (3, 6, 5)) @ b]
    return outs


def _training_step() -> list[gc.Tensor]:
    rng = np.random.default_rng(0)
    x, y = gc.placeholder("float32", (16, 12)), gc.placeholder("float32", (16, 3))
    w1 = gc.Variable(rng.standard_normal((12, 8)).astype(np.float32))
    w2 = gc.Variable(rng.standard_normal((8, 3)).astype(np.float32))
    loss = gc.mean(gc.square(gc.sigmoid(x @ w1) @ w2 - y))
    step = gc.optimizers.Adam(0.01).minimize(loss)
    return [loss, step]


GROUPS = {"elementwise": _elementwise, "reductions": _reductions, "shapes": _shapes_and_gathers, "nn": _nn,
          "products": _products, "training": _training_step}


def _launches(outputs: list[gc.Tensor], library_gemm: bool = True) -> list[Launch]:
    """The launches of the GPU program for ``outputs`` (and the Variable updates they trigger)."""
    program = Program(outputs)
    avals = infer_all(program.graph.nodes, {p.id: np.zeros(p.shape, p.dtype) for p in program.placeholders})
    return GpuProgram(program.graph.nodes, avals, [*program.outputs, *program.updates], library_gemm).launches


@functools.cache
def group_launches(group: str) -> tuple[Launch, ...]:
    build = GROUPS[group]
    launches: dict[str, Launch] = {}
    for library_gemm in (True, False) if group == "products" else (True,):
        for launch in _launches(build(), library_gemm):
            launches.setdefault(launch.name, launch)
    return tuple(launches.values())


@needs_ptxas
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_kernel_kind_assembles(group: str, arch: str) -> None:
    launches = group_launches(group)
    ptx = launches_ptx(launches, arch)
    assert f".target {arch}" in ptx
    entries = set(re.findall(r"\.entry\s+(\w+)\(", ptx))
    assert entries == {launch.name for launch in launches}
    assert not re.search(r"\.extern\s+\.func", ptx)  # libdevice linked in: nothing left to resolve at load time
    cubin = assemble(ptx, arch)
    assert cubin[:4] == b"\x7fELF"


def test_most_launches_are_parallel() -> None:
    launches = [launch for group in GROUPS for launch in group_launches(group)]
    assert len(launches) > 300
    assert sum(1 for launch in launches if launch.space) > 0.8 * len(launches)


def test_kernels_are_ptx_kernels_reading_the_thread_index() -> None:
    x = gc.placeholder("float32", (300,))
    (launch,) = _launches([gc.exp(x) + 1.0])
    module = emit_module([launch])
    text = str(module)
    assert "ptx_kernel" in text
    assert "llvm.nvvm.read.ptx.sreg.tid.x" in text and "llvm.nvvm.read.ptx.sreg.ctaid.x" in text
    assert "icmp ult i64 %\"thread\", 300" in text  # the last block's extra threads do nothing


def test_float32_math_is_inline_and_float64_math_comes_from_libdevice() -> None:
    x32, x64 = gc.placeholder("float32", (4,)), gc.placeholder("float64", (4,))
    f32 = str(emit_module(_launches([gc.tanh(gc.exp(x32))])))
    f64 = str(emit_module(_launches([gc.tanh(gc.exp(x64))])))
    assert "__nv_" not in f32  # graphc's polynomials, as on the CPU
    assert "__nv_exp" in f64 and "__nv_tanh" in f64


@needs_ptxas
def test_a_check_stores_its_fault_only_where_it_fails() -> None:
    x = gc.placeholder("float32", (4, 3))
    idx = gc.placeholder("int64", (5,))
    (launch,) = _launches([gc.take(x, idx, axis=0)])
    ptx = launches_ptx([launch])
    assert "st.global.b64" in ptx or "st.global.u64" in ptx
    assert re.search(r"@%p\d+ bra", ptx)  # the store of the code is behind a branch
    assemble(ptx, "sm_90")


def test_bad_arch_is_refused() -> None:
    x = gc.placeholder("float32", (4,))
    with pytest.raises(gc.ArgumentError, match="sm_80"):
        launches_ptx(_launches([x + 1.0]), "compute_90")
