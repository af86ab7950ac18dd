"""``device="cuda"`` (and ``"cuda:N"``): graphs run on an NVIDIA GPU.

The graph is lowered and planned once per shape signature (program.py), its launches compiled to PTX
for the GPU's compute capability (nvptx.py; kept in the on-disk compile cache, keyed by graph and
architecture), loaded with pycuda and run on one stream (driver.py), with cuBLAS for matrix products.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from graphc.backends.base import Backend, CachedCode, CodeCache, DeviceOptions, Executable
from graphc.backends.cuda.executable import GpuExecutable
from graphc.backends.cuda.program import GpuProgram
from graphc.errors import ArgumentError
from graphc.ir.registry import AbstractValue
from graphc.ir.tensor import Tensor

PTX_SETTINGS = ("cuda-ptx", 1)  # bump when the PTX made from the same launches changes


class CudaBackend(Backend):
    name = "cuda"
    device_values = True
    generates_code = True

    def check_options(self, options: DeviceOptions) -> None:
        if options.cpu is not None:
            raise ArgumentError(f"cpu={options.cpu!r} applies to compiled CPU code, not to device {options.device!r}")
        from graphc.backends.cuda.driver import cuda_device

        cuda_device(options.index)  # DeviceUnavailableError now, when the Session or function is made

    def compile(self, nodes: Sequence[Tensor], avals: Mapping[int, AbstractValue], wanted: Sequence[Tensor],
                options: DeviceOptions, cache: CodeCache | None = None) -> Executable:
        from graphc.backends.cuda.driver import cuda_device
        from graphc.backends.cuda.nvptx import TRIPLE, launches_ptx

        device = cuda_device(options.index)
        program = GpuProgram(nodes, avals, wanted)
        key = cache.graph_key(nodes, avals, (TRIPLE, device.arch, ""), PTX_SETTINGS) if cache is not None else None
        entry = cache.load(key) if key is not None and cache is not None else None
        if entry is not None:
            ptx = entry.code.decode()
        else:
            ptx = launches_ptx(program.launches, device.arch)
            if key is not None and cache is not None:
                cache.store(key, CachedCode(ptx.encode(), "", {"arch": device.arch}))
        return GpuExecutable(program, device, device.load(program, ptx), lambda: ptx)


__all__ = ["CudaBackend"]
