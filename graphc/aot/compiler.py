"""``gc.aot.compile``: a graph to ``path.so`` + ``path.h`` (and ``path.o`` on request).

The graph goes through the same optimisation passes, lowering (with the CPU backend's lowering
policy) and kernel codegen as the JIT (backends/cpu/executable.py); what differs is around the
kernels: sizes may be symbolic (run-time dimensions), constants and Variable values become read-only
globals, the runtime library (GEMM, thread pool) is linked into the module and made internal, and the
C ABI wrapper (aot/abi.py) replaces ctypes.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from graphc.aot.abi import Layout, emit_info, emit_run
from graphc.aot.dispatch import emit_dispatcher
from graphc.aot.header import default_name, render_header, render_metadata
from graphc.aot.link import aot_target, combine_objects, compiler_driver, emit_object, link_shared
from graphc.aot.signature import Signature, infer_signature
from graphc.backends.cpu.backend import cpu_policy
from graphc.backends.cpu.emitter import emit_program
from graphc.backends.cpu.executable import GRAPH_OPT
from graphc.backends.cpu.runtime_lib import emit_runtime, runtime_parts
from graphc.codegen.target import Target, new_module
from graphc.errors import AotError, ArgumentError, GraphError
from graphc.ir.interpret import execution_fault
from graphc.ir.tensor import Tensor
from graphc.lower.builder import buffer_name
from graphc.lower.loopir import DIMS
from graphc.lower.program import LoweredProgram
from graphc.runtime.program import Program, check_threads

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Artifact:
    """What :func:`compile` wrote: the shared object, the header, the object file (if asked for),
    the C name prefix and the signature (run-time dims, inputs and outputs)."""

    library: Path | None
    header: Path
    object: Path | None
    name: str
    signature: Signature
    target: Target

    def __repr__(self) -> str:
        dims = "; ".join(" = ".join(p) for p in self.signature.dims) or "none"
        return (f"<graphc AOT artifact {self.name!r}: {self.library or self.object}, {self.header}; "
                f"run-time dims: {dims}>")


def _placeholders(inputs: object) -> list[Tensor]:
    values = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    for v in values:
        if not isinstance(v, Tensor) or v.op != "placeholder":
            raise ArgumentError(f"aot.compile inputs must be placeholders, got {v!r}")
    if len({v.id for v in values}) != len(values):
        raise ArgumentError("aot.compile inputs list a placeholder twice")
    return values


def _outputs(outputs: object) -> tuple[list[Tensor], bool]:
    single = isinstance(outputs, Tensor)
    values = [outputs] if single else list(outputs)  # type: ignore[call-overload]
    if not values:
        raise ArgumentError("aot.compile needs at least one output")
    for v in values:
        if not isinstance(v, Tensor):
            raise ArgumentError(f"aot.compile outputs must be tensors, got {v!r}")
        if v.op == "group" or v.opdef.stateful:
            raise GraphError(f"an ahead-of-time compiled graph cannot update Variables: output {v.describe()} "
                             "is an update (compile the values you need; deploy a trained model's weights)")
    return values, single


def compile(inputs: Tensor | Sequence[Tensor], outputs: Tensor | Sequence[Tensor], path: str | os.PathLike[str],
            name: str | None = None, *, target: str | None = None, cpu: str | None = None, level: int = 2,
            threads: int = 1, object_file: bool = False, link: bool = True) -> Artifact:
    """See :func:`graphc.aot.compile` (the public entry point, which imports this module on first use)."""
    placeholders = _placeholders(inputs)
    outs, single = _outputs(outputs)
    base = Path(path)
    name = name if name is not None else default_name(base)
    if not NAME.match(name):
        raise ArgumentError(f"the AOT name must be a C identifier (letters, digits, _), got {name!r}")
    threads = check_threads(threads)
    tgt = aot_target(target, cpu)
    versions = [(level, aot_target(tgt.triple, f"x86-64-v{level}")) for level in (4, 3)] \
        if cpu is None and tgt.triple.startswith("x86_64") and (link or _have_compiler()) else []

    program = Program(outs, feedable=placeholders, level=level, device="cpu", threads=threads)
    output_names = [o.name for o in outs]
    signature = infer_signature(placeholders, program.outputs, program.built_nodes, program.graph.nodes,
                                output_names)
    objects: list[bytes] = []
    layout = None
    for version_level, version_target in [*versions, (1, tgt)]:
        lowered = _lower(program, signature, threads, version_target)
        layout = _layout(name, program, placeholders, signature, lowered, single)
        primary = version_level == 1  # defines the constants and the exported functions
        run_name = f"{name}_run" if not versions else f"{name}_run.x86_64_v{version_level}"
        module = new_module(name, version_target)
        entry = emit_program(module, lowered.steps, lowered.slots, version_target, threads)
        entry.linkage = "internal"
        emit_run(module, layout, entry, run_name, define_constants=primary)
        exports = [f"{name}_run", *emit_info(module, layout)] if primary else []
        if primary and versions:
            emit_dispatcher(module, f"{name}_run", [(v, f"{name}_run.x86_64_v{v}") for v, _ in versions]
                            + [(1, run_name)])
        shared = set()  # what the versions' objects use of each other: hidden, not exported
        if versions:
            shared = {run_name} | ({symbol for _, symbol, _ in layout.constants} if primary else set())
        objects.append(_object(module, version_target, threads, exports, shared))
    assert layout is not None

    base.parent.mkdir(parents=True, exist_ok=True)
    header = base.with_name(base.name + ".h")
    object_path = base.with_name(base.name + ".o") if object_file or not link else None
    library = base.with_name(base.name + ".so") if link else None
    with tempfile.TemporaryDirectory() as scratch:
        parts = [Path(scratch) / f"{name}.{k}.o" for k in range(len(objects))]
        for part, obj in zip(parts, objects):
            part.write_bytes(obj)
        if object_path is not None:
            combine_objects(parts, object_path, tgt)
        if library is not None:
            link_shared(parts, library, tgt)
    header.write_text(render_header(name, signature, layout.faults))
    return Artifact(library, header, object_path, name, signature, tgt)


def _have_compiler() -> bool:
    """Whether a C compiler can combine the versions' objects (``link=False`` works without one)."""
    try:
        compiler_driver()
        return True
    except AotError:
        return False


def _object(module: ir.Module, target: Target, threads: int, exports: Sequence[str], shared: set[str]) -> bytes:
    """The object code of ``module`` with the runtime library it calls linked in: ``exports`` stay
    visible, ``shared`` (symbols other objects of the library use) become hidden, the rest internal
    (so each library has its own thread pool and two libraries never clash)."""
    parts = runtime_parts(module, target)
    ref = llvm.parse_assembly(str(module))
    if parts:
        runtime = new_module(f"{module.name}_runtime", target)
        emit_runtime(runtime, target, parts)
        ref.link_in(llvm.parse_assembly(str(runtime)))
    for value in [*ref.functions, *ref.global_variables]:
        if value.name in shared:  # defined here or in another version's object
            value.visibility = "hidden"
        elif not value.is_declaration and value.name not in exports:
            value.linkage = "internal"
    return emit_object(str(ref), target, GRAPH_OPT)


def _lower(program: Program, signature: Signature, threads: int, target: Target) -> LoweredProgram:
    """The graph lowered as the CPU backend lowers it for ``target``, with the signature's run-time dims."""
    return LoweredProgram(program.graph.nodes, signature.avals, program.outputs, cpu_policy(target, threads),
                          len(signature.dims))


def _layout(name: str, program: Program, placeholders: Sequence[Tensor], signature: Signature,
            lowered: LoweredProgram, single: bool) -> Layout:
    slots = lowered.slots
    inputs = [(slots.get(buffer_name(p)), math.prod(spec.shape) * spec.dtype.itemsize)
              for p, spec in zip(placeholders, signature.inputs)]
    outputs = []
    placed: set[int] = set()
    for (_, slot), spec in zip(lowered.wanted, signature.outputs):
        assert slot is not None
        in_place = slot in lowered.handed_back and slot not in placed
        placed.add(slot)
        outputs.append((slot, math.prod(spec.shape) * spec.dtype.itemsize, in_place))
    constants = [(slot, f"{name}.constant{node.id}", np.asarray(node.attrs["value"], order="C"))
                 for slot, node in lowered.constants]
    variables = {v.id: v for v in program.variables}
    for node_id, slot in lowered.sources:
        if node_id in variables:  # its current value is embedded
            var = variables[node_id]
            constants.append((slot, f"{name}.variable{node_id}", np.ascontiguousarray(var.read())))
    faults = [str(execution_fault(node, message)) for node, message in lowered.faults]
    return Layout(
        name=name, ndims=len(signature.dims), num_slots=len(slots),
        inputs=inputs,
        outputs=outputs, constants=constants, arena=lowered.arena_sizes(), lifetimes=lowered.lifetimes,
        dims_slot=slots.get(DIMS), status_slot=slots.get("status"), faults=faults,
        metadata=render_metadata(name, signature, single, faults))


__all__ = ["Artifact", "compile"]
