"""A real GPU through pycuda: device memory, PTX modules, launches on one stream, cuBLAS for products.

pycuda is imported only here, when ``device="cuda"`` is first used; without it (or without a GPU, or
with an index beyond the GPUs present) :func:`cuda_device` raises :class:`DeviceUnavailableError`
saying what is missing and how to get it.  Every call runs in the device's primary context (the one
the CUDA runtime, and so cuBLAS, uses too), made current around each operation so that any Python
thread may run a graph.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from graphc.backends.cuda.cublas import Cublas
from graphc.backends.cuda.device import DeviceMemory, GpuDevice, View
from graphc.backends.cuda.launch import LibraryGemm, evaluate_index
from graphc.backends.cuda.nvptx import check_arch
from graphc.backends.cuda.program import GpuProgram
from graphc.errors import DeviceUnavailableError

INSTALL = 'pip install "graphc[cuda]" (pycuda, cuBLAS and the CUDA compiler wheels)'


def _pycuda() -> Any:
    try:
        import pycuda.driver as driver
    except ImportError as exc:
        raise DeviceUnavailableError(f"device='cuda' needs pycuda, which is not installed ({exc}): {INSTALL}; "
                                     "without a GPU, device='cuda-sim' runs the same kernels in an emulator") from None
    try:
        driver.init()
    except driver.Error as exc:
        raise DeviceUnavailableError(f"device='cuda': the CUDA driver could not start ({exc}); is an NVIDIA GPU "
                                     "and its driver present? device='cuda-sim' runs without one") from None
    return driver


def gpu_available() -> bool:
    """Whether ``device="cuda"`` can run here: pycuda imports and at least one GPU is visible."""
    try:
        return _pycuda().Device.count() > 0
    except DeviceUnavailableError:
        return False


class CudaMemory(DeviceMemory):
    def __init__(self, allocation: Any, nbytes: int) -> None:
        self.allocation = allocation
        self.nbytes = nbytes
        self.address = int(allocation)


class _Loaded:
    """A program's PTX module on one device: a prepared function per launch."""

    def __init__(self, program: GpuProgram, functions: Mapping[int, Any]) -> None:
        self.program = program
        self.functions = functions


class CudaDevice(GpuDevice):
    """GPU ``index`` of this machine."""

    def __init__(self, index: int) -> None:
        super().__init__(f"cuda:{index}")
        driver = self.driver = _pycuda()
        count = driver.Device.count()
        if index >= count:
            raise DeviceUnavailableError(f"device 'cuda:{index}' does not exist: this machine has {count} GPU(s)"
                                         + (f", cuda:0 to cuda:{count - 1}" if count else ""))
        self.gpu = driver.Device(index)
        major, minor = self.gpu.compute_capability()
        self.arch = check_arch(f"sm_{major}{minor}")
        self.context = self.gpu.retain_primary_context()
        with self.current():
            self.stream = driver.Stream()
            self._cublas: Cublas | None = None

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        self.context.push()
        try:
            yield
        finally:
            self.driver.Context.pop()

    def cublas(self) -> Cublas:
        if self._cublas is None:
            self._cublas = Cublas(self.stream.handle)
        return self._cublas

    def alloc(self, nbytes: int) -> CudaMemory:
        with self.current():
            return CudaMemory(self.driver.mem_alloc(max(int(nbytes), 1)), int(nbytes))

    def upload(self, array: np.ndarray) -> CudaMemory:
        array = np.ascontiguousarray(array)
        memory = self.alloc(array.nbytes)
        if array.nbytes:
            with self.current():
                self.driver.memcpy_htod_async(memory.address, array, self.stream)
                self.stream.synchronize()  # the host array may be changed as soon as this returns
        return memory

    def download(self, view: View, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        memory, offset = view
        assert isinstance(memory, CudaMemory)
        host = np.empty(shape, dtype)
        if host.nbytes:
            with self.current():
                self.driver.memcpy_dtoh_async(host, memory.address + offset, self.stream)
                self.stream.synchronize()
        return host

    def fill_zero(self, view: View, nbytes: int) -> None:
        memory, offset = view
        assert isinstance(memory, CudaMemory)
        with self.current():
            self.driver.memset_d8_async(memory.address + offset, 0, nbytes, self.stream)

    def copy(self, destination: View, source: View, nbytes: int) -> None:
        (dst, dst_offset), (src, src_offset) = destination, source
        assert isinstance(dst, CudaMemory) and isinstance(src, CudaMemory)
        if nbytes:
            with self.current():
                self.driver.memcpy_dtod_async(dst.address + dst_offset, src.address + src_offset, nbytes, self.stream)

    def write(self, view: View, array: np.ndarray) -> None:
        memory, offset = view
        assert isinstance(memory, CudaMemory)
        host = np.ascontiguousarray(array)
        with self.current():
            self.driver.memcpy_htod_async(memory.address + offset, host, self.stream)
            self.stream.synchronize()  # the host array may go as soon as this returns

    def synchronize(self) -> None:
        with self.current():
            self.stream.synchronize()

    def load(self, program: GpuProgram, ptx: str | None = None) -> _Loaded:
        """Load the program's PTX (compiled for this device's architecture) and prepare its launches."""
        from graphc.backends.cuda.nvptx import launches_ptx

        text = ptx if ptx is not None else launches_ptx(program.launches, self.arch)
        functions: dict[int, Any] = {}
        with self.current():
            module = self.driver.module_from_buffer(text.encode())
            for index, step in enumerate(program.flat):
                if not isinstance(step, LibraryGemm):
                    fn = module.get_function(step.name)
                    fn.prepare("P" * len(step.params) + "q" * len(step.uniforms))
                    functions[index] = fn
        loaded = _Loaded(program, functions)
        loaded.module = module  # type: ignore[attr-defined]  # keeps the module loaded
        return loaded

    def run_step(self, loaded: Any, index: int, views: Sequence[View], uniforms: Mapping[str, int]) -> None:
        step = loaded.program.flat[index]
        addresses = [memory.address + offset for memory, offset in views]  # type: ignore[attr-defined]
        with self.current():
            if not isinstance(step, LibraryGemm):
                loaded.functions[index].prepared_async_call(
                    (step.grid, 1, 1), (step.threads_per_block, 1, 1), self.stream,
                    *addresses, *(uniforms[v.name] for v in step.uniforms))
            else:
                by_name = {p.name: address for p, address in zip(step.params, addresses)}
                b_offset, a_offset, c_offset = (evaluate_index(e, uniforms) for e in step.offsets)
                g = step.gemm
                item = g.dtype.itemsize
                self.cublas().gemm(g.dtype, step.first[0], step.second[0], g.n, g.m, g.k,
                                   by_name[g.b] + b_offset * item, step.first[1],
                                   by_name[g.a] + a_offset * item, step.second[1],
                                   by_name[g.c] + c_offset * item, g.ldc)


_devices: dict[int, CudaDevice] = {}
_lock = threading.Lock()


def cuda_device(index: int) -> CudaDevice:
    """GPU ``index`` (opened once per process)."""
    with _lock:
        if index not in _devices:
            _devices[index] = CudaDevice(index)
        return _devices[index]


__all__ = ["INSTALL", "CudaDevice", "cuda_device", "gpu_available"]
