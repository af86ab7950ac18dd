"""LLVM targets and the optimisation pipeline every LLVM backend shares.

A :class:`Target` is where code will run: an LLVM triple, a CPU name and its feature string.  Modules
are built with llvmlite's IRBuilder (never pasted together from strings), verified, then optimised
with LLVM's standard pipeline for the target's features (:func:`optimize`), so generated loops use the
widest SIMD units the target has.  Backends turn the optimised module into code their own way (the
CPU backend with MCJIT, AOT as an object file, a GPU backend as PTX).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite import ir

_init_lock = threading.Lock()
_initialized = False


def initialize() -> None:
    """Initialise LLVM's targets once per process (every entry point below calls it): the native one
    and the others llvmlite was built with (NVPTX for the CUDA backend)."""
    global _initialized
    with _init_lock:
        if not _initialized:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            llvm.initialize_all_targets()
            llvm.initialize_all_asmprinters()
            _initialized = True


@dataclass(frozen=True)
class Target:
    """Where code will run: an LLVM triple, a CPU name and its feature string."""

    triple: str
    cpu: str
    features: str

    @staticmethod
    def host() -> Target:
        """This machine's CPU with all its features (asked of LLVM once per process)."""
        return _host()

    def machine(self, opt: int = 3, jit: bool = True) -> llvm.TargetMachine:
        initialize()
        target = llvm.Target.from_triple(self.triple)
        return target.create_target_machine(cpu=self.cpu, features=self.features, opt=opt,
                                            reloc="pic" if not jit else "default",
                                            codemodel="jitdefault" if jit else "default")


@functools.cache
def _host() -> Target:
    initialize()
    return Target(llvm.get_process_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten())


def new_module(name: str, target: Target | None = None) -> ir.Module:
    """An empty module for ``target`` (the host by default)."""
    target = target or Target.host()
    module = ir.Module(name=name)
    module.triple = target.triple
    module.data_layout = str(target.machine().target_data)
    return module


def optimize(module: ir.Module | str, target: Target | None = None, opt: int = 3) -> llvm.ModuleRef:
    """Parse, verify and optimise ``module`` with LLVM's pipeline at level ``opt``."""
    initialize()
    ref = llvm.parse_assembly(str(module))
    ref.verify()
    return optimize_parsed(ref, target, opt)


def optimize_parsed(ref: llvm.ModuleRef, target: Target | None = None, opt: int = 3) -> llvm.ModuleRef:
    """Optimise an already parsed (and linked) module in place with LLVM's pipeline at level ``opt``."""
    target = target or Target.host()
    machine = target.machine(opt)
    tuning = llvm.create_pipeline_tuning_options(speed_level=opt)
    tuning.loop_vectorization = opt >= 2
    tuning.slp_vectorization = opt >= 2
    tuning.loop_unrolling = opt >= 2
    tuning.loop_interleaving = opt >= 2
    builder = llvm.create_pass_builder(machine, tuning)
    builder.getModulePassManager().run(ref, builder)
    return ref


__all__ = ["Target", "initialize", "new_module", "optimize", "optimize_parsed"]
