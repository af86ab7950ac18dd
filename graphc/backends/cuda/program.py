"""A graph lowered for a GPU: the shared loop IR under the GPU's lowering policy, each kernel planned
into launches (launch.py), and every buffer given a place in device memory.

Device memory is laid out as on the CPU (:func:`graphc.lower.program.plan_arena`): the values handed
back get their own allocation per call (they may live on as Variables' values on the device), the
other computed values, the scratch and the fault status word share one arena by lifetime, constants
are uploaded once, and placeholders and Variables are the caller's device buffers.  Both the CUDA
backend and its emulator run a :class:`GpuProgram`; they differ only in the device that runs the steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphc.backends.cuda.launch import HostLoop, Kernel, LibraryGemm, Step, plan_kernel
from graphc.errors import ArgumentError
from graphc.ir.registry import AbstractValue
from graphc.ir.tensor import Tensor
from graphc.lower.control import CondStep, LoopStep
from graphc.lower.loopir import DIMS, STATUS
from graphc.lower.policy import LoweringPolicy, no_pack
from graphc.lower.program import Buffer, LoweredProgram, plan_arena

ALIGNMENT = 256  # bytes: cudaMalloc's own alignment, so every buffer allows 128-bit loads
REDUCE_PARTS = 256  # a reduction of few long rows is cut into up to 4x this many partial rows
SPLIT_REDUCE_MIN = 1 << 15  # elements a reduction of few rows needs before it is cut


def gpu_policy() -> LoweringPolicy:
    """How loop IR is shaped for a GPU: no GEMM packing (cuBLAS, or one thread per element of C);
    reductions of few long rows cut into many partial rows so that they fill the device; column sums
    one thread per column rather than folded in memory order."""
    return LoweringPolicy(threads=REDUCE_PARTS, gemm_pack_elements=no_pack, gemm_parallel_min_macs=1 << 62,
                          split_reduce_min=SPLIT_REDUCE_MIN, alignment=ALIGNMENT, fold_in_memory_order=False)


@dataclass(frozen=True)
class PlannedStep:
    """A launch or library call, its position in :attr:`GpuProgram.flat` and the slot of each of its
    parameters, in order."""

    index: int
    step: Kernel | LibraryGemm
    slots: tuple[int, ...]


@dataclass(frozen=True)
class PlannedLoop:
    """A host loop and its planned body."""

    loop: HostLoop
    body: tuple[Planned, ...]


@dataclass(frozen=True)
class PlannedControlLoop:
    """A loop of the graph (graphc/lower/control.py's :class:`LoopStep`), its condition and its body planned."""

    step: LoopStep
    cond: tuple[Planned, ...]
    body: tuple[Planned, ...]


@dataclass(frozen=True)
class PlannedCond:
    """A conditional of the graph (:class:`CondStep`) and its two branches planned."""

    step: CondStep
    branches: tuple[tuple[Planned, ...], tuple[Planned, ...]]


Planned = PlannedStep | PlannedLoop | PlannedControlLoop | PlannedCond


class GpuProgram:
    """``nodes`` lowered and planned for a GPU for the shapes in ``avals``; each run returns ``wanted``.
    ``library_gemm``: matrix products go to the BLAS library where it can address their operands.
    ``schedule`` is what a run issues, in order; ``flat`` every launch and library call in it once."""

    def __init__(self, nodes: Sequence[Tensor], avals: Mapping[int, AbstractValue], wanted: Sequence[Tensor],
                 library_gemm: bool = True) -> None:
        lowered = LoweredProgram(nodes, avals, wanted, gpu_policy())
        if DIMS in lowered.slots:  # only ahead-of-time CPU code has run-time dimensions
            raise ArgumentError("the GPU backends compile graphs of concrete shapes only")
        self.lowered = lowered
        self.slots, self.faults = lowered.slots, lowered.faults
        self.sources, self.wanted = lowered.sources, lowered.wanted
        self.constants = [(slot, np.asarray(node.attrs["value"], order="C")) for slot, node in lowered.constants]
        self.fresh: list[Buffer] = [lowered.buffers[slot] for slot in sorted(lowered.handed_back)]
        self.arena_offsets, self.arena_bytes = plan_arena(lowered.arena_sizes(), lowered.lifetimes, ALIGNMENT)
        self.status_slot = lowered.slots.get(STATUS)
        self.flat: list[Kernel | LibraryGemm] = []
        self.schedule: list[Planned] = []
        self.kernel_steps: list[tuple[str, list[Step]]] = []
        self.library_gemm = library_gemm
        self.schedule = self._plan(lowered.steps)

    def _plan(self, steps: Sequence[Any]) -> list[Planned]:
        """The lowered program's ``steps`` (kernels, loops, conditionals) as what a run issues."""
        planned: list[Planned] = []
        for step in steps:
            if isinstance(step, LoopStep):
                planned.append(PlannedControlLoop(step, tuple(self._plan(step.cond)), tuple(self._plan(step.body))))
            elif isinstance(step, CondStep):
                planned.append(PlannedCond(step, (tuple(self._plan(step.branches[0])),
                                                  tuple(self._plan(step.branches[1])))))
            else:
                try:
                    launches = plan_kernel(step, library_gemm=self.library_gemm)
                except TypeError as exc:
                    raise ArgumentError(f"kernel {step.name} cannot be mapped onto GPU threads: {exc}") from None
                self.kernel_steps.append((step.name, launches))
                planned.extend(self._place(launches))
        return planned

    def _place(self, steps: Sequence[Step]) -> list[Planned]:
        planned: list[Planned] = []
        for step in steps:
            if isinstance(step, HostLoop):
                planned.append(PlannedLoop(step, tuple(self._place(step.steps))))
            else:
                planned.append(PlannedStep(len(self.flat), step, tuple(self.slots[p.name] for p in step.params)))
                self.flat.append(step)
        return planned

    @property
    def launches(self) -> list[Kernel]:
        """The generated kernels (the BLAS calls left out)."""
        return [step for step in self.flat if not isinstance(step, LibraryGemm)]

    def describe(self) -> str:
        """Every kernel's launches, one line each: what ``dprint`` shows for a GPU device."""
        lines = []

        def show(steps: Sequence[Step], depth: int) -> None:
            for step in steps:
                if isinstance(step, HostLoop):
                    lines.append(f"{'  ' * depth}{step.name}: for {step.var.name} in 0..{step.extent} (host):")
                    show(step.steps, depth + 1)
                else:
                    lines.append(f"{'  ' * depth}{step.describe()}")

        for name, steps in self.kernel_steps:
            lines.append(f"kernel {name}:")
            show(steps, 1)
        return "\n".join(lines)


__all__ = ["ALIGNMENT", "GpuProgram", "Planned", "PlannedCond", "PlannedControlLoop", "PlannedLoop", "PlannedStep",
           "gpu_policy"]
