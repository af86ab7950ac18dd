"""The pycuda driver of the CUDA backend (graphc/backends/cuda/driver.py) against a stand-in for pycuda.

No GPU is needed: a fake ``pycuda.driver`` keeps device memory as byte arrays at made-up addresses and runs
each launched kernel with the emulator's interpreter (by the launch's name), and a fake cuBLAS computes the
column-major products with NumPy.  What this checks is graphc's side of the contract, as pycuda and cuBLAS
document it: addresses and offsets, copies, the prepared launches' argument order, grid and block sizes, the
uniforms of host loops, the fault word, and the operands, transposes and leading dimensions of every cuBLAS
call.  (With a real GPU, the device suites run on device="cuda" itself.)
"""

from __future__ import annotations

import sys
import types
from typing import Any, ClassVar

import numpy as np
import pytest

import graphc as gc
from graphc.backends.cuda import driver as cuda_driver
from graphc.backends.cuda import program as cuda_program
from graphc.backends.cuda_sim.interpreter import Translated, run_launch

KERNELS: dict[str, Any] = {}  # launch name -> the launch (registered as GpuPrograms are made)


class FakeMemory:
    """Device memory: allocations at 256-byte aligned made-up addresses."""

    def __init__(self) -> None:
        self.blocks: dict[int, np.ndarray] = {}
        self.next = 1 << 20

    def alloc(self, nbytes: int) -> int:
        address = self.next
        self.blocks[address] = np.full(nbytes, 0xFF, np.uint8)
        self.next += -(-max(nbytes, 1) // 256) * 256 + 256
        return address

    def at(self, address: int, nbytes: int) -> np.ndarray:
        for start, block in self.blocks.items():
            if start <= address and address + nbytes <= start + block.size:
                return block[address - start:address - start + nbytes]
        raise AssertionError(f"no allocation holds {nbytes} bytes at {address:#x}")


class FakeAllocation:
    def __init__(self, memory: FakeMemory, nbytes: int) -> None:
        self.address = memory.alloc(nbytes)

    def __int__(self) -> int:
        return self.address


class FakeFunction:
    def __init__(self, memory: FakeMemory, name: str) -> None:
        self.memory, self.name, self.format = memory, name, None

    def prepare(self, fmt: str) -> None:
        self.format = fmt

    def prepared_async_call(self, grid: tuple[int, int, int], block: tuple[int, int, int], stream: Any,
                            *args: int) -> None:
        launch = KERNELS[self.name]
        assert self.format == "P" * len(launch.params) + "q" * len(launch.uniforms)
        assert len(args) == len(self.format)
        assert block[0] == launch.threads_per_block and grid[0] * block[0] >= launch.size
        assert grid[1:] == (1, 1) and block[1:] == (1, 1)
        buffers = {p.name: self.memory.at(address, int(p.size) * p.dtype.itemsize).view(p.dtype)
                   for p, address in zip(launch.params, args)}
        uniforms = {v.name: value for v, value in zip(launch.uniforms, args[len(launch.params):])}
        run_launch(Translated(launch), buffers, uniforms)


def fake_pycuda(memory: FakeMemory) -> types.ModuleType:
    """A ``pycuda.driver`` with what graphc's driver uses."""
    driver = types.ModuleType("pycuda.driver")

    class Error(Exception):
        pass

    class Context:
        stack: ClassVar[list[Any]] = []

        def push(self) -> None:
            Context.stack.append(self)

        @staticmethod
        def pop() -> None:
            Context.stack.pop()

    class Device:
        @staticmethod
        def count() -> int:
            return 1

        def __init__(self, index: int) -> None:
            self.index = index

        def compute_capability(self) -> tuple[int, int]:
            return 9, 0

        def name(self) -> str:
            return "Fake H200"

        def retain_primary_context(self) -> Context:
            return Context()

    class Stream:
        handle = 1234

        def synchronize(self) -> None:
            pass

    def needs_context() -> None:
        assert Context.stack, "a CUDA call outside the device's context"

    def mem_alloc(nbytes: int) -> FakeAllocation:
        needs_context()
        return FakeAllocation(memory, nbytes)

    def memcpy_htod_async(dest: int, host: np.ndarray, stream: Any) -> None:
        needs_context()
        memory.at(dest, host.nbytes)[:] = np.ascontiguousarray(host).reshape(-1).view(np.uint8)

    def memcpy_dtoh_async(host: np.ndarray, src: int, stream: Any) -> None:
        needs_context()
        host.reshape(-1).view(np.uint8)[:] = memory.at(src, host.nbytes)

    def memset_d8_async(dest: int, value: int, nbytes: int, stream: Any) -> None:
        needs_context()
        memory.at(dest, nbytes)[:] = value

    def module_from_buffer(ptx: bytes) -> Any:
        needs_context()
        assert b".entry" in ptx and b".target sm_90" in ptx  # PTX for the device's own architecture
        module = types.SimpleNamespace()
        module.get_function = lambda name: FakeFunction(memory, name)
        return module

    for name, value in dict(locals()).items():
        if not name.startswith("_") and name != "driver":
            setattr(driver, name, value)
    driver.init = lambda: None
    return driver


class FakeCublas:
    """cuBLAS's column-major gemm on the fake memory: C (m x n, ldc) = op(A) (m x k) @ op(B) (k x n)."""

    calls: ClassVar[list[tuple[Any, ...]]] = []

    def __init__(self, memory: FakeMemory) -> None:
        self.memory = memory

    def matrix(self, address: int, rows: int, cols: int, ld: int, dtype: np.dtype) -> np.ndarray:
        """A column-major rows x cols matrix with leading dimension ld."""
        item = dtype.itemsize
        nbytes = ((cols - 1) * ld + rows) * item
        flat = self.memory.at(address, nbytes).view(dtype)
        return np.lib.stride_tricks.as_strided(flat, (rows, cols), (item, ld * item))

    def gemm(self, dtype: np.dtype, op_a: str, op_b: str, m: int, n: int, k: int, a: int, lda: int, b: int,
             ldb: int, c: int, ldc: int) -> None:
        FakeCublas.calls.append((op_a, op_b, m, n, k, lda, ldb, ldc))
        dtype = np.dtype(dtype)
        left = self.matrix(a, *((m, k) if op_a == "N" else (k, m)), lda, dtype)
        right = self.matrix(b, *((k, n) if op_b == "N" else (n, k)), ldb, dtype)
        left = left if op_a == "N" else left.T
        right = right if op_b == "N" else right.T
        assert lda >= (m if op_a == "N" else k) and ldb >= (k if op_b == "N" else n) and ldc >= m
        self.matrix(c, m, n, ldc, dtype)[...] = left @ right


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> FakeMemory:
    memory = FakeMemory()
    package = types.ModuleType("pycuda")
    package.driver = fake_pycuda(memory)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", package.driver)  # type: ignore[attr-defined]
    monkeypatch.setattr(cuda_driver, "_devices", {})
    monkeypatch.setattr(cuda_driver, "Cublas", lambda stream: FakeCublas(memory))
    FakeCublas.calls.clear()
    init = cuda_program.GpuProgram.__init__

    def register(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        KERNELS.update({launch.name: launch for launch in self.launches})

    monkeypatch.setattr(cuda_program.GpuProgram, "__init__", register)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", "off")
    return memory


def test_a_training_step_runs_through_the_driver(fake_gpu: FakeMemory) -> None:
    rng = np.random.default_rng(0)
    x, y = gc.placeholder("float32", (None, 20)), gc.placeholder("int64", (None,))
    start = [rng.standard_normal((20, 30)).astype(np.float32) * 0.3, rng.standard_normal((30, 5)).astype(np.float32)]
    xb, yb = rng.standard_normal((16, 20)).astype(np.float32), rng.integers(0, 5, 16)
    losses = {}
    for device in ("cuda", "reference"):
        w1, w2 = gc.Variable(start[0]), gc.Variable(start[1])
        loss = gc.mean(gc.softmax_cross_entropy(gc.tanh(x @ w1) @ w2, y))
        step = gc.function([x, y], loss, updates=gc.optimizers.Adam(0.05).updates(loss, [w1, w2]), device=device)
        losses[device] = [float(step(xb, yb)) for _ in range(5)]
        if device == "cuda":
            assert w1._resident is not None and w1._resident.device == "cuda:0"
            final = w1.value
        else:
            np.testing.assert_allclose(final, w1.value, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(losses["cuda"], losses["reference"], rtol=1e-4)
    assert FakeCublas.calls  # the products went to cuBLAS


@pytest.mark.parametrize("transpose", ["none", "a", "b", "both"])
def test_cublas_gets_the_operands_transposes_and_leading_dimensions_right(fake_gpu: FakeMemory,
                                                                          transpose: str) -> None:
    rng = np.random.default_rng(1)
    a0, b0 = rng.standard_normal((7, 5)), rng.standard_normal((5, 9))
    a = gc.placeholder("float64", (5, 7) if transpose in ("a", "both") else (7, 5))
    b = gc.placeholder("float64", (9, 5) if transpose in ("b", "both") else (5, 9))
    left = gc.transpose(a) if transpose in ("a", "both") else a
    right = gc.transpose(b) if transpose in ("b", "both") else b
    feeds = {a: a0.T.copy() if transpose in ("a", "both") else a0, b: b0.T.copy() if transpose in ("b", "both") else b0}
    got = gc.Session(device="cuda").run(left @ right + 1.0, feeds)
    np.testing.assert_allclose(got, a0 @ b0 + 1.0, rtol=1e-12)
    assert FakeCublas.calls


def test_host_loops_and_faults_go_through_the_driver(fake_gpu: FakeMemory) -> None:
    rng = np.random.default_rng(2)
    images, kernels = gc.placeholder("float32", (2, 3, 6, 6)), gc.placeholder("float32", (4, 3, 3, 3))
    out = gc.sum(gc.relu(gc.conv2d(images, kernels, 1, "SAME")))
    grads = gc.grad(out, [images, kernels])
    feeds = {images: rng.standard_normal((2, 3, 6, 6)).astype(np.float32),
             kernels: rng.standard_normal((4, 3, 3, 3)).astype(np.float32)}
    got = gc.Session(device="cuda").run([out, *grads], feeds)
    want = gc.Session(device="reference").run([out, *grads], feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
    table, idx = gc.placeholder("float32", (4, 2)), gc.placeholder("int64", (3,))
    with pytest.raises(gc.ExecutionError, match="out of range"):
        gc.Session(device="cuda").run(gc.take(table, idx, axis=0), {table: np.zeros((4, 2), np.float32),
                                                                    idx: np.array([0, 4, 1])})


def test_a_device_index_beyond_the_gpus_present_is_refused(fake_gpu: FakeMemory) -> None:
    with pytest.raises(gc.DeviceUnavailableError, match=r"'cuda:3' does not exist: this machine has 1 GPU"):
        gc.Session(device="cuda:3")
