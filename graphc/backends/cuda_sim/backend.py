"""The CUDA emulator as a backend: the CUDA backend's program, run on an emulated device."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from graphc.backends.base import Backend, CodeCache, DeviceOptions, Executable
from graphc.backends.cuda.executable import GpuExecutable
from graphc.backends.cuda.nvptx import launches_ptx
from graphc.backends.cuda.program import GpuProgram
from graphc.backends.cuda_sim.device import SimDevice
from graphc.errors import ArgumentError
from graphc.ir.registry import AbstractValue
from graphc.ir.tensor import Tensor

_devices: dict[int, SimDevice] = {}
_lock = threading.Lock()


def sim_device(index: int) -> SimDevice:
    """Emulated GPU ``index`` (one per index for the whole process, as a real GPU's context is)."""
    with _lock:
        if index not in _devices:
            _devices[index] = SimDevice(f"cuda-sim:{index}")
        return _devices[index]


class CudaSimBackend(Backend):
    name = "cuda-sim"
    device_values = True
    generates_code = True  # the PTX the CUDA backend would load (made on demand), and the launch shapes

    def check_options(self, options: DeviceOptions) -> None:
        if options.cpu is not None:
            raise ArgumentError(f"cpu={options.cpu!r} applies to compiled CPU code, not to device {options.device!r}")

    def compile(self, nodes: Sequence[Tensor], avals: Mapping[int, AbstractValue], wanted: Sequence[Tensor],
                options: DeviceOptions, cache: CodeCache | None = None) -> Executable:
        program = GpuProgram(nodes, avals, wanted)
        device = sim_device(options.index)
        return GpuExecutable(program, device, device.load(program), lambda: launches_ptx(program.launches))


__all__ = ["CudaSimBackend", "sim_device"]
