"""``device="reference"``: the optimised graph run op by op with each op's NumPy reference
(:func:`graphc.ir.interpret.evaluate`).  It compiles nothing; it is what every other backend is
tested against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from graphc.backends.base import Backend, CodeCache, DeviceOptions, Executable
from graphc.errors import ArgumentError
from graphc.ir.interpret import evaluate
from graphc.ir.registry import AbstractValue
from graphc.ir.tensor import Tensor


class ReferenceExecutable(Executable):
    def __init__(self, nodes: Sequence[Tensor], avals: Mapping[int, AbstractValue], wanted: Sequence[Tensor]) -> None:
        self.nodes, self.avals = tuple(nodes), avals
        self.keep = {t.id for t in wanted}

    def run(self, sources: Mapping[int, np.ndarray]) -> dict[int, np.ndarray | None]:
        return evaluate(self.nodes, self.avals, sources, self.keep)


class ReferenceBackend(Backend):
    name = "reference"
    fresh_outputs = False  # the interpreter may hand back its inputs, or views of them

    def check_options(self, options: DeviceOptions) -> None:
        if options.index:
            raise ArgumentError(f"device 'reference' has no device {options.index} ({options.device!r}); "
                                "use 'reference'")
        if options.cpu is not None:
            raise ArgumentError(f"cpu={options.cpu!r} applies to compiled CPU code, not to device 'reference'")

    def compile(self, nodes: Sequence[Tensor], avals: Mapping[int, AbstractValue], wanted: Sequence[Tensor],
                options: DeviceOptions, cache: CodeCache | None = None) -> Executable:
        return ReferenceExecutable(nodes, avals, wanted)


__all__ = ["ReferenceBackend", "ReferenceExecutable"]
