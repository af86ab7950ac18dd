"""The GPU executable: a :class:`GpuProgram` run on a :class:`GpuDevice`, one step after another.

Per call it uploads the fed values (and any Variable whose value is not already on this device),
allocates the values it hands back, runs the steps, reads the fault status word and returns the
values as :class:`GpuArray` handles: a Session copies fetched ones to the host and keeps the new
values of Variables on the device, so a training step copies only feeds in and fetches out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from graphc.backends.base import Executable
from graphc.backends.cuda.device import DeviceMemory, GpuArray, GpuDevice, View
from graphc.backends.cuda.program import GpuProgram, Planned, PlannedLoop
from graphc.errors import ArgumentError
from graphc.ir.interpret import execution_fault


class GpuExecutable(Executable):
    """``program`` on ``device`` (``loaded``: what the device made of it); ``ptx`` gives the PTX of its
    kernels (the device's own, or made on demand for the emulator)."""

    def __init__(self, program: GpuProgram, device: GpuDevice, loaded: Any, ptx: Callable[[], str]) -> None:
        self.program = program
        self.device = device
        self.loaded = loaded
        self._ptx = ptx
        with device.lock:
            self.constants: dict[int, DeviceMemory] = {slot: device.upload(array) for slot, array in program.constants}
        self._arena: DeviceMemory | None = None
        self._host_constants = dict(program.constants)
        self._source_of_slot = {slot: node_id for node_id, slot in program.sources}

    def _arena_memory(self) -> DeviceMemory:
        if self._arena is None:
            self._arena = self.device.alloc(self.program.arena_bytes)
        return self._arena

    def run(self, sources: Mapping[int, Any]) -> dict[int, Any]:
        program, device = self.program, self.device
        with device.lock:
            views: dict[int, View] = {slot: (memory, 0) for slot, memory in self.constants.items()}
            arena = self._arena_memory()
            for slot, offset in program.arena_offsets.items():
                views[slot] = (arena, offset)
            for node_id, slot in program.sources:
                value = sources[node_id]
                if isinstance(value, GpuArray) and value.gpu is device:
                    views[slot] = (value.memory, 0)
                else:
                    host = value.to_host() if isinstance(value, GpuArray) else value
                    views[slot] = (device.upload(np.ascontiguousarray(host)), 0)
            fresh = {b.slot: GpuArray(device, device.alloc(int(b.nbytes)), b.shape, b.dtype) for b in program.fresh}
            for slot, array in fresh.items():
                views[slot] = (array.memory, 0)
            status = program.status_slot
            if status is not None:
                device.fill_zero(views[status], 8)
            self._issue(program.schedule, views, {})
            fault = int(device.download(views[status], (1,), np.dtype(np.int64))[0]) if status is not None else 0
        if fault:
            raise execution_fault(*program.faults[fault - 1])
        values: dict[int, Any] = {}
        for node_id, slot in program.wanted:
            if slot is None:
                values[node_id] = None
            elif slot in fresh:
                values[node_id] = fresh[slot]
            elif slot in self._host_constants:
                values[node_id] = self._host_constants[slot]
            else:  # a fed value or a Variable's, handed back as it came
                values[node_id] = sources[self._source_of_slot[slot]]
        return values

    def _issue(self, schedule: Sequence[Planned], views: Mapping[int, View], uniforms: dict[str, int]) -> None:
        """Run ``schedule`` in order (host loops by iterating, with their variables as uniforms)."""
        for planned in schedule:
            if isinstance(planned, PlannedLoop):
                name = planned.loop.var.name
                for i in range(planned.loop.extent):
                    uniforms[name] = i
                    self._issue(planned.body, views, uniforms)
                uniforms.pop(name, None)
            else:
                self.device.run_step(self.loaded, planned.index, [views[s] for s in planned.slots], uniforms)

    def launch_shapes(self) -> str:
        return self.program.describe()

    def source(self, kind: str = "ptx") -> str:
        """The generated code: ``"ptx"`` (every kernel's PTX) or ``"launches"`` (each kernel's launch shapes)."""
        if kind == "launches":
            return self.program.describe()
        if kind == "ptx":
            return self._ptx()
        raise ArgumentError(f"source kind must be 'ptx' or 'launches' on device {self.device.name!r}, got {kind!r}")


__all__ = ["GpuExecutable"]
