"""What the GPU executable needs from a device: memory, copies, and running a program's steps.

Two devices implement it: a real GPU through pycuda (driver.py) and the CUDA emulator
(graphc/backends/cuda_sim), which runs the same planned steps on the CPU.  Memory is handed around as
:class:`DeviceMemory` handles (an allocation) and ``(memory, byte offset)`` views into them.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from graphc.backends.base import DeviceArray


class DeviceMemory(ABC):
    """One allocation in a device's memory, freed when the handle is dropped."""

    nbytes: int


View = tuple[DeviceMemory, int]
"""A buffer: an allocation and a byte offset into it."""


class GpuDevice(ABC):
    """One GPU (or the emulator's stand-in).  ``name`` is the full device name (``"cuda:0"``); ``lock``
    serialises runs, which share the device's one stream."""

    name: str

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()

    @abstractmethod
    def alloc(self, nbytes: int) -> DeviceMemory:
        """``nbytes`` of uninitialised device memory."""

    @abstractmethod
    def upload(self, array: np.ndarray) -> DeviceMemory:
        """A new allocation holding a copy of the C-contiguous ``array``."""

    @abstractmethod
    def download(self, view: View, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A new host array with the contents of ``view``."""

    @abstractmethod
    def fill_zero(self, view: View, nbytes: int) -> None:
        """Set ``nbytes`` at ``view`` to zero."""

    @abstractmethod
    def copy(self, destination: View, source: View, nbytes: int) -> None:
        """Copy ``nbytes`` from ``source`` to ``destination`` (device to device; they do not overlap)."""

    @abstractmethod
    def write(self, view: View, array: np.ndarray) -> None:
        """Copy the C-contiguous host ``array`` to ``view`` (a small value: a count, a fault code)."""

    @abstractmethod
    def load(self, program: Any) -> Any:
        """What ``run_step`` needs for ``program`` (a GpuProgram): compiled modules, prepared launches."""

    @abstractmethod
    def synchronize(self) -> None:
        """Wait until everything issued on the device so far has finished."""

    @abstractmethod
    def run_step(self, loaded: Any, index: int, views: Sequence[View], uniforms: Mapping[str, int]) -> None:
        """Run step ``index`` (of the program's ``flat`` list) on its parameters' buffers, in order, with
        the current values of the host loop variables it reads (``uniforms``)."""


class GpuArray(DeviceArray):
    """A value in a GPU's memory: ``shape`` and ``dtype`` at the start of ``memory``."""

    def __init__(self, device: GpuDevice, memory: DeviceMemory, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.gpu = device
        self.device = device.name
        self.memory = memory
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    def to_host(self) -> np.ndarray:
        with self.gpu.lock:
            return self.gpu.download((self.memory, 0), self.shape, self.dtype)

    def __repr__(self) -> str:
        return f"<GpuArray {self.dtype.name}{list(self.shape)} on {self.device}>"


__all__ = ["DeviceMemory", "GpuArray", "GpuDevice", "View"]
