"""Compiling LLVM modules for the host CPU: target machine, LLVM's optimisation pipeline, and the
MCJIT engine whose functions are called through ctypes.

Modules are built with llvmlite's IRBuilder (never pasted together from strings), verified, then
optimised with LLVM's standard O3 pipeline (loop and SLP vectorisation on) for the host CPU's
features, so the generated loops use the widest SIMD units the machine has.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite import ir

_init_lock = threading.Lock()
_initialized = False


def _initialize() -> None:
    global _initialized
    with _init_lock:
        if not _initialized:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _initialized = True


@dataclass(frozen=True)
class Target:
    """Where code will run: an LLVM triple, a CPU name and its feature string."""

    triple: str
    cpu: str
    features: str

    @staticmethod
    def host() -> Target:
        _initialize()
        return Target(llvm.get_process_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten())

    def machine(self, opt: int = 3, jit: bool = True) -> llvm.TargetMachine:
        _initialize()
        target = llvm.Target.from_triple(self.triple)
        return target.create_target_machine(cpu=self.cpu, features=self.features, opt=opt,
                                            reloc="pic" if not jit else "default", codemodel="jitdefault")


def new_module(name: str, target: Target | None = None) -> ir.Module:
    """An empty module for ``target`` (the host by default)."""
    target = target or Target.host()
    module = ir.Module(name=name)
    module.triple = target.triple
    module.data_layout = str(target.machine().target_data)
    return module


def optimize(module: ir.Module | str, target: Target | None = None, opt: int = 3) -> llvm.ModuleRef:
    """Parse, verify and optimise ``module`` with LLVM's pipeline at level ``opt``."""
    _initialize()
    target = target or Target.host()
    ref = llvm.parse_assembly(str(module))
    ref.verify()
    machine = target.machine(opt)
    tuning = llvm.create_pipeline_tuning_options(speed_level=opt)
    tuning.loop_vectorization = opt >= 2
    tuning.slp_vectorization = opt >= 2
    tuning.loop_unrolling = opt >= 2
    tuning.loop_interleaving = opt >= 2
    builder = llvm.create_pass_builder(machine, tuning)
    builder.getModulePassManager().run(ref, builder)
    return ref


class CompiledModule:
    """A module compiled into this process: ``address(name)`` of each function, its IR and assembly."""

    def __init__(self, module: ir.Module, target: Target | None = None, opt: int = 3) -> None:
        self.target = target or Target.host()
        self.ref = optimize(module, self.target, opt)
        self._machine = self.target.machine(opt)
        self.engine = llvm.create_mcjit_compiler(self.ref, self._machine)
        self.engine.finalize_object()
        self.engine.run_static_constructors()

    def address(self, name: str) -> int:
        address = self.engine.get_function_address(name)
        if not address:
            raise KeyError(f"no function {name!r} in the compiled module")
        return address

    def llvm_ir(self) -> str:
        """The optimised LLVM IR."""
        return str(self.ref)

    def assembly(self) -> str:
        """The machine code as assembly text."""
        return self._machine.emit_assembly(self.ref)


__all__ = ["CompiledModule", "Target", "new_module", "optimize"]
