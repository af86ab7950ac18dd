"""The backend interface: devices looked up by name, a backend added without editing graphc, the CPU
backend's ``cpu=`` levels, and op facts that lowering and fusion read from registration blocks."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import pytest

import graphc as gc
from graphc.backends import base
from graphc.backends.cpu.target import X86_LEVELS, host_target
from graphc.backends.reference import ReferenceBackend, ReferenceExecutable
from graphc.ir.build import make_node
from graphc.ir.registry import REGISTRY, AbstractValue, OpDef, Reduction
from graphc.ops.reduce import reduced_shape

X86 = host_target().triple.startswith("x86_64")
HOST_FEATURES = set(host_target().features.split(","))


def _level_runs_here(level: str) -> bool:
    return X86 and all(f in HOST_FEATURES for f in X86_LEVELS[level].split(",") if f)


# ---- the device registry --------------------------------------------------------------------------

class CountingBackend(ReferenceBackend):
    """A backend of a test's own: the reference interpreter, counting what it compiles."""

    name = "counting"
    compiled: ClassVar[list[int]] = []

    def check_options(self, options: base.DeviceOptions) -> None:
        if options.index > 1:
            raise gc.ArgumentError(f"device {options.device!r}: only counting:0 and counting:1 exist")

    def compile(self, nodes: Sequence[gc.Tensor], avals: Mapping[int, AbstractValue], wanted: Sequence[gc.Tensor],
                options: base.DeviceOptions, cache: base.CodeCache | None = None) -> base.Executable:
        self.compiled.append(len(nodes))
        return ReferenceExecutable(nodes, avals, wanted)


@pytest.fixture
def counting_device(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(base._REGISTRY, "counting", f"{__name__}:CountingBackend")
    monkeypatch.delitem(base._LOADED, "counting", raising=False)
    CountingBackend.compiled = []
    return "counting"


def test_a_backend_plugs_in_by_registering_its_class(counting_device: str) -> None:
    x = gc.placeholder("float32", (None, 3), name="plug_x")
    y = gc.tanh(x) * 2.0 + 1.0
    f = gc.function([x], y, device="counting:1")
    xv = np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(f(xv), np.tanh(xv) * 2 + 1, rtol=1e-6)
    f(xv)
    f(np.ones((5, 3), np.float32))
    assert len(CountingBackend.compiled) == 2  # once per shape signature
    assert counting_device in base.device_names()
    np.testing.assert_allclose(gc.Session(device="counting").run(y, {x: xv}), np.tanh(xv) * 2 + 1, rtol=1e-6)
    with pytest.raises(gc.ArgumentError, match=r"only counting:0 and counting:1"):
        gc.Session(device="counting:2")


@pytest.mark.parametrize("device, message", [
    ("gpu", r"unknown device 'gpu'; available: .*cpu.*reference"),
    ("cpu:x", r"device index must be a non-negative integer"),
    ("cpu:1", r"device 'cpu' is this machine's CPU; there is no device 1"),
    ("reference:3", r"device 'reference' has no device 3"),
    (7, r"device must be a string"),
])
def test_bad_device_names_are_refused_clearly(device: object, message: str) -> None:
    with pytest.raises(gc.ArgumentError, match=message):
        gc.Session(device=device)  # type: ignore[arg-type]
    x = gc.placeholder("float32", (2,))
    with pytest.raises(gc.ArgumentError, match=message):
        gc.function([x], x + 1, device=device)  # type: ignore[arg-type]


def test_the_reference_device_has_no_code_to_show_and_no_cpu_level() -> None:
    x = gc.placeholder("float32", (2,))
    f = gc.function([x], x + 1, device="reference")
    f(np.zeros(2, np.float32))
    with pytest.raises(gc.ArgumentError, match="generates no code"):
        f.source("llvm")
    with pytest.raises(gc.ArgumentError, match="cpu='x86-64' applies to compiled CPU code"):
        gc.function([x], x + 1, device="reference", cpu="x86-64")


# ---- CPU levels -------------------------------------------------------------------------------------

def _classifier() -> tuple[list[gc.Tensor], list[gc.Tensor]]:
    x = gc.placeholder("float32", (None, 40), name="lvl_x")
    w = gc.constant(np.random.default_rng(1).standard_normal((40, 30)).astype(np.float32) * 0.2)
    h = gc.tanh(x @ w + 0.1)
    return [x], [gc.softmax(h), gc.sigmoid(x) * gc.exp(-x) + gc.log1p(gc.abs(x))]


@pytest.mark.skipif(not X86, reason="the psABI levels are x86-64's")
@pytest.mark.parametrize("level", ["x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"])
def test_compiled_code_for_a_lower_cpu_level_runs_and_keeps_the_promise(level: str) -> None:
    if not _level_runs_here(level):
        pytest.skip(f"this CPU cannot run {level} code")
    inputs, outputs = _classifier()
    xv = np.random.default_rng(2).standard_normal((33, 40)).astype(np.float32)
    host = gc.function(inputs, outputs)(xv)
    lowered = gc.function(inputs, outputs, cpu=level)
    got = lowered(xv)
    np.testing.assert_allclose(got[0], host[0], rtol=1e-5, atol=1e-7)  # a GEMM: rounding differs (FMA, blocking)
    np.testing.assert_array_equal(got[1], host[1])  # elementwise work is bitwise the same at every level
    asm = lowered.source("asm")
    if level in ("x86-64", "x86-64-v2"):
        assert not re.search(r"%ymm|%zmm", asm)  # no AVX at these levels
    if level == "x86-64-v3":
        assert "%zmm" not in asm


@pytest.mark.skipif(not X86, reason="the psABI levels are x86-64's")
def test_two_cpu_levels_live_in_one_process_with_their_own_runtime_library() -> None:
    a = gc.placeholder("float64", (70, 80), name="lvl_a")
    b = gc.placeholder("float64", (80, 90), name="lvl_b")
    av, bv = np.random.default_rng(3).standard_normal((70, 80)), np.random.default_rng(4).standard_normal((80, 90))
    base_fn, host_fn = gc.function([a, b], a @ b, cpu="x86-64"), gc.function([a, b], a @ b, cpu="native")
    for _ in range(2):  # interleaved: each keeps calling its own GEMM
        np.testing.assert_allclose(base_fn(av, bv), av @ bv, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(host_fn(av, bv), av @ bv, rtol=1e-12, atol=1e-12)
    assert "graphc_gemm_float64_mt.x86-64" in base_fn.source("llvm")
    assert "graphc_gemm_float64_mt.x86-64" not in host_fn.source("llvm")


def test_cpu_levels_the_host_cannot_run_or_does_not_know_are_refused() -> None:
    x = gc.placeholder("float32", (2,))
    missing = [level for level in X86_LEVELS if X86 and not _level_runs_here(level)]
    for level in missing:
        with pytest.raises(gc.ArgumentError, match=rf"cpu='{level}' needs CPU features this machine lacks"):
            gc.function([x], x + 1, cpu=level)
    with pytest.raises(gc.ArgumentError, match=r"cpu must be None, 'native', .*got 'pentium-9000'"):
        gc.Session(cpu="pentium-9000")
    gc.function([x], x + 1, cpu="native")(np.zeros(2, np.float32))


# ---- op facts in registration blocks -------------------------------------------------------------

def test_a_reduction_op_lowers_and_fuses_from_its_registration_block_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new reduction needs its registration block only: the generic rule lowers its fold, and the fuser
    makes it the root of a kernel with its producers."""
    def infer(inputs: Sequence[AbstractValue], *, axes: tuple[int, ...], keepdims: bool) -> AbstractValue:
        return AbstractValue(inputs[0].dtype, reduced_shape(inputs[0].shape, axes, keepdims))

    def reference(x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        return np.max(np.maximum(x, -1.0), axis=axes, keepdims=keepdims, initial=-1.0)

    op = OpDef("test_max_from_minus_one", "reduce", infer, reference, num_inputs=1, differentiable=False,
               doc="max with -1 as the start value", reduction=Reduction("maximum", lambda dtype: -1.0))
    monkeypatch.setitem(REGISTRY, op.name, op)
    x = gc.placeholder("float32", (4, 5), name="fold_x")
    y = make_node(op.name, [gc.sin(x) * 3.0], axes=(1,), keepdims=False)
    xv = np.random.default_rng(5).standard_normal((4, 5)).astype(np.float32) - 2.0
    f = gc.function([x], y)
    want = gc.function([x], y, device="reference")(xv)
    np.testing.assert_array_equal(f(xv), want)  # max is exact
    np.testing.assert_allclose(want, np.max(np.maximum(np.sin(xv) * np.float32(3), -1), axis=1), rtol=1e-6)
    kernels = [n for n in f.graph.nodes if n.op == "fused"]
    assert len(kernels) == 1 and kernels[0].attrs["kernel"].kind == "reduction"
