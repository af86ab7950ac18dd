"""The emulated GPU: device memory as NumPy byte arrays, steps run by the interpreter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from graphc.backends.cuda.device import DeviceMemory, GpuDevice, View
from graphc.backends.cuda.launch import LibraryGemm
from graphc.backends.cuda.program import GpuProgram
from graphc.backends.cuda_sim.interpreter import EmulatorFault, Translated, run_launch, run_library_gemm

UNINITIALISED = 0xFF  # the byte fresh device memory holds: NaN in every float, -1 in every int


class SimMemory(DeviceMemory):
    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.data = np.full(nbytes, UNINITIALISED, np.uint8)


class SimDevice(GpuDevice):
    """One emulated GPU (``cuda-sim:N``)."""

    def alloc(self, nbytes: int) -> SimMemory:
        return SimMemory(int(nbytes))

    def upload(self, array: np.ndarray) -> SimMemory:
        memory = SimMemory(array.nbytes)
        memory.data[:] = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        return memory

    def _bytes(self, view: View, nbytes: int) -> np.ndarray:
        memory, offset = view
        assert isinstance(memory, SimMemory)
        if offset < 0 or offset + nbytes > memory.nbytes:
            raise EmulatorFault(f"bytes {offset}..{offset + nbytes} of an allocation of {memory.nbytes}")
        return memory.data[offset:offset + nbytes]

    def download(self, view: View, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        return self._bytes(view, count * dtype.itemsize).view(dtype).reshape(shape).copy()

    def fill_zero(self, view: View, nbytes: int) -> None:
        self._bytes(view, nbytes)[:] = 0

    def copy(self, destination: View, source: View, nbytes: int) -> None:
        self._bytes(destination, nbytes)[:] = self._bytes(source, nbytes)

    def write(self, view: View, array: np.ndarray) -> None:
        self._bytes(view, array.nbytes)[:] = np.ascontiguousarray(array).reshape(-1).view(np.uint8)

    def synchronize(self) -> None:
        pass  # the emulator runs each step when it is issued

    def load(self, program: GpuProgram) -> SimModule:
        return SimModule(program)

    def run_step(self, loaded: Any, index: int, views: Sequence[View], uniforms: Mapping[str, int]) -> None:
        step = loaded.program.flat[index]
        buffers = {p.name: self._bytes(view, int(p.size) * p.dtype.itemsize).view(p.dtype)
                   for p, view in zip(step.params, views)}
        if not isinstance(step, LibraryGemm):
            run_launch(loaded.translated(index), buffers, {v.name: uniforms[v.name] for v in step.uniforms})
        else:
            run_library_gemm(step, buffers, uniforms)


class SimModule:
    """A program's launches translated for the emulator, each on its first run."""

    def __init__(self, program: GpuProgram) -> None:
        self.program = program
        self._translated: dict[int, Translated] = {}

    def translated(self, index: int) -> Translated:
        found = self._translated.get(index)
        if found is None:
            step = self.program.flat[index]
            assert not isinstance(step, LibraryGemm)
            found = self._translated[index] = Translated(step)
        return found


__all__ = ["SimDevice"]
