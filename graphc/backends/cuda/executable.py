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
from graphc.backends.cuda.program import GpuProgram, Planned, PlannedCond, PlannedControlLoop, PlannedLoop
from graphc.errors import ArgumentError
from graphc.ir.interpret import execution_fault
from graphc.lower.loopir import STATUS


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

    def _issue(self, schedule: Sequence[Planned], views: dict[int, View], uniforms: dict[str, int]) -> None:
        """Run ``schedule`` in order (host loops by iterating, with their variables as uniforms; the graph's
        loops and conditionals as :meth:`_loop` and :meth:`_cond`)."""
        for planned in schedule:
            if isinstance(planned, PlannedLoop):
                name = planned.loop.var.name
                for i in range(planned.loop.extent):
                    uniforms[name] = i
                    self._issue(planned.body, views, uniforms)
                uniforms.pop(name, None)
            elif isinstance(planned, PlannedControlLoop):
                self._loop(planned, views, uniforms)
            elif isinstance(planned, PlannedCond):
                self._cond(planned, views, uniforms)
            else:
                self.device.run_step(self.loaded, planned.index, [views[s] for s in planned.slots], uniforms)

    def _read(self, views: Mapping[int, View], name: str, dtype: Any) -> Any:
        return self.device.download(views[self.program.slots[name]], (), np.dtype(dtype))[()]

    def _cond(self, planned: PlannedCond, views: dict[int, View], uniforms: dict[str, int]) -> None:
        step, slots = planned.step, self.program.slots
        taken = 0 if self._read(views, step.pred, bool) else 1
        self._issue(planned.branches[taken], views, uniforms)
        for source, destination, nbytes in step.copies[taken]:
            self.device.copy(views[slots[destination]], views[slots[source]], int(nbytes))

    def _loop(self, planned: PlannedControlLoop, views: dict[int, View], uniforms: dict[str, int]) -> None:
        """A loop of the graph, as graphc/lower/control.py lays it out (the CPU's entry function does the same
        in native code): before each step the pointer slots are pointed at the step's rows, the loop
        variables' current values and where the step's results go; the steps' launches are issued from the
        host, one step after another."""
        step, slots, device = planned.step, self.program.slots, self.device

        def at(name: str, offset: int = 0) -> View:
            memory, base = views[slots[name]]
            return memory, base + offset

        def point(name: str, view: View) -> None:
            views[slots[name]] = view

        bound = step.capacity
        if step.trip is not None:
            trip = int(self._read(views, step.trip, np.int64))
            if trip < 0 or (bound is not None and trip > bound):
                device.write(at(STATUS), np.array([step.trip_fault], np.int64))
                trip = 0
            bound = trip
        for stack, nbytes in step.zeroed:
            device.fill_zero(at(stack), int(nbytes))
        current = [at(state.init) for state in step.states]
        t = 0
        while bound is None or t < bound:
            if step.test is not None:
                for state, view in zip(step.states, current):
                    for param in state.params:
                        point(param, view)
                self._issue(planned.cond, views, uniforms)
                if not self._read(views, step.test, bool):
                    break
            row = bound - 1 - t if step.reverse and bound is not None else t
            for read in step.rows:
                point(read.param, at(read.sequence, row * int(read.row_bytes)))
            targets = []
            for state, view in zip(step.states, current):
                for param in state.params:
                    point(param, view)
                nbytes = int(state.nbytes)
                if state.mode == "before":
                    device.copy(at(state.stack, row * nbytes), view, nbytes)  # type: ignore[arg-type]
                if state.mode == "after":
                    targets.append(at(state.stack, row * nbytes))  # type: ignore[arg-type]
                else:
                    targets.append(at(state.spare[t % 2]))  # type: ignore[index]
            writes = [at(w.stack, row * int(w.row_bytes)) for w in step.outputs]
            values = [(s.value, s.owned, s.nbytes) for s in step.states] + \
                     [(w.value, w.owned, w.row_bytes) for w in step.outputs]
            for (value, owned, _), target in zip(values, targets + writes):
                if owned:
                    point(value, target)
            self._issue(planned.body, views, uniforms)
            for (value, owned, nbytes), target in zip(values, targets + writes):
                if not owned:
                    device.copy(target, at(value), int(nbytes))
            current = targets
            t += 1
        for state, view in zip(step.states, current):
            device.copy(at(state.final), view, int(state.nbytes))
        device.write(at(step.steps_run), np.array([t], np.int64))

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
