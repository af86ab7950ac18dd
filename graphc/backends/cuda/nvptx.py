"""Launches to PTX: LLVM IR for the ``nvptx64-nvidia-cuda`` target, built with llvmlite's IRBuilder.

Each :class:`~graphc.backends.cuda.launch.Launch` becomes one ``ptx_kernel`` function taking its
buffers as pointers and the host loop variables it reads as ``i64`` values.  Its thread's global index
``t = ctaid.x * ntid.x + tid.x`` (from the ``llvm.nvvm.read.ptx.sreg.*`` intrinsics) is checked
against the launch's size, then split into the space's loop variables (row-major digits, the last
fastest); the body is the shared loop-IR emission (codegen/loops.py).  A failing ``Check`` stores its
code only on failure (a branch), so no thread overwrites another's fault.

Transcendental functions: float32 ones are graphc's inline polynomials (codegen/mathlib.py, the CPU's
code, so the same accuracy in ulp); the rest (float64, and float32 functions mathlib lacks) call
NVIDIA's libdevice (``__nv_exp`` ...), whose bitcode ships with the CUDA toolkit and the
``nvidia-cuda-nvcc`` wheel and is linked into the module before optimisation.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import llvmlite.binding as llvm
from llvmlite import ir

from graphc.backends.cuda.launch import Launch
from graphc.codegen import scalar
from graphc.codegen.loops import LoopEmitter
from graphc.codegen.target import Target, initialize, new_module, optimize_parsed
from graphc.codegen.types import I64, storage_type
from graphc.errors import ArgumentError
from graphc.lower.loopir import Check, LoopKernel

TRIPLE = "nvptx64-nvidia-cuda"
DEFAULT_ARCH = "sm_80"  # Ampere: what the emitted PTX assumes unless a device or --arch says otherwise
I32 = ir.IntType(32)


class CudaToolkitMissing(ArgumentError):
    """A part of the CUDA toolkit the backend needs (libdevice, ptxas) is not installed."""


def check_arch(arch: object) -> str:
    """``arch`` if it names a compute capability as ``sm_XY`` (e.g. ``sm_90``), else an ArgumentError."""
    if not isinstance(arch, str) or not arch.startswith("sm_") or not arch[3:].isdigit() or int(arch[3:]) < 50:
        raise ArgumentError(f"a GPU architecture is 'sm_' and a compute capability of at least 5.0, such as "
                            f"'sm_80' or 'sm_90', got {arch!r}")
    return arch


def target(arch: str = DEFAULT_ARCH) -> Target:
    """The NVPTX target for compute capability ``arch``."""
    return Target(TRIPLE, check_arch(arch), "")


def _libdevice_symbol(name: str, ty: ir.Type) -> str:
    return f"__nv_{name}{'f' if isinstance(ty, ir.FloatType) else ''}"


LIBDEVICE = scalar.MathLibrary("libdevice", _libdevice_symbol)
"""NVIDIA's device math library (``__nv_exp``, ``__nv_log1pf``...)."""


def _sreg(b: ir.IRBuilder, name: str) -> ir.Value:
    module = b.module
    symbol = f"llvm.nvvm.read.ptx.sreg.{name}"
    fn = module.globals.get(symbol) or ir.Function(module, ir.FunctionType(I32, []), symbol)
    return b.zext(b.call(fn, []), I64)


class _LaunchEmitter(LoopEmitter):
    """One launch as a ``ptx_kernel``."""

    def __init__(self, module: ir.Module, launch: Launch) -> None:
        kernel = LoopKernel(launch.name, list(launch.params), list(launch.body))
        types = [storage_type(p.dtype).as_pointer() for p in launch.params] + [I64] * len(launch.uniforms)
        fn = ir.Function(module, ir.FunctionType(ir.VoidType(), types), launch.name)
        fn.calling_convention = "ptx_kernel"
        super().__init__(fn, kernel, LIBDEVICE)
        for var, arg in zip(launch.uniforms, fn.args[len(launch.params):]):
            arg.name = var.name
            self.indices[var.name] = arg
        self.launch = launch

    def emit(self) -> ir.Function:
        b = self.b
        thread = b.add(b.mul(_sreg(b, "ctaid.x"), _sreg(b, "ntid.x"), flags=["nuw", "nsw"]), _sreg(b, "tid.x"),
                       flags=["nuw", "nsw"], name="thread")
        work = self.fn.append_basic_block("work")
        tail = self.fn.append_basic_block("tail")
        b.cbranch(b.icmp_unsigned("<", thread, ir.Constant(I64, self.launch.size)), work, tail)
        b.position_at_end(tail)
        b.ret_void()
        b.position_at_end(work)
        remaining = thread
        for var, extent in reversed(self.launch.space):  # the last variable varies fastest
            size = ir.Constant(I64, extent)
            self.indices[var.name] = b.urem(remaining, size, name=var.name)
            remaining = b.udiv(remaining, size)
        self._statements(self.launch.body)
        return self._finish()

    def _check(self, s: Check) -> None:
        b = self.b
        failed = self.fn.append_basic_block(f"fault{s.code}")
        after = self.fn.append_basic_block(f"checked{s.code}")
        b.cbranch(self._expr(s.ok), after, failed)
        b.position_at_end(failed)
        pointer, _ = self.buffers["status"]
        b.store(ir.Constant(I64, s.code), pointer)
        b.branch(after)
        b.position_at_end(after)


def emit_module(launches: Sequence[Launch], arch: str = DEFAULT_ARCH, name: str = "graphc_gpu") -> ir.Module:
    """The LLVM IR of every launch, as one module for ``arch``."""
    module = new_module(name, target(arch))
    for launch in launches:
        try:
            _LaunchEmitter(module, launch).emit()
        except scalar.UnsupportedScalar as exc:
            raise ArgumentError(str(exc)) from None
    return module


def libdevice_path() -> Path | None:
    """Where NVIDIA's libdevice bitcode is: ``GRAPHC_LIBDEVICE``, the ``nvidia-cuda-nvcc`` wheel, then
    ``CUDA_HOME`` / ``CUDA_PATH`` and ``/usr/local/cuda``."""
    explicit = os.environ.get("GRAPHC_LIBDEVICE")
    if explicit:
        return Path(explicit)
    candidates = [Path(entry) / "nvidia" / "cuda_nvcc" / "nvvm" / "libdevice" for entry in sys.path if entry]
    candidates += [Path(os.environ[v]) / "nvvm" / "libdevice" for v in ("CUDA_HOME", "CUDA_PATH") if v in os.environ]
    candidates.append(Path("/usr/local/cuda/nvvm/libdevice"))
    for folder in candidates:
        found = sorted(folder.glob("libdevice*.bc")) if folder.is_dir() else []
        if found:
            return found[-1]
    return None


@functools.cache
def _libdevice_bitcode() -> bytes:
    path = libdevice_path()
    if path is None or not path.is_file():
        raise CudaToolkitMissing(
            "float64 (and some float32) math on the GPU calls NVIDIA's libdevice, which was not found: "
            "pip install nvidia-cuda-nvcc-cu12 (in graphc's 'cuda' extra), or set CUDA_HOME or GRAPHC_LIBDEVICE")
    return path.read_bytes()


def compile_ptx(module: ir.Module, arch: str = DEFAULT_ARCH, opt: int = 3) -> str:
    """``module`` verified, linked with libdevice where it calls it, optimised and emitted as PTX."""
    initialize()
    ref = llvm.parse_assembly(str(module))
    ref.verify()
    kernels = {f.name for f in module.functions if f.calling_convention == "ptx_kernel"}
    if any(f.is_declaration and f.name.startswith("__nv_") for f in ref.functions):
        library = llvm.parse_bitcode(_libdevice_bitcode())
        library.triple, library.data_layout = ref.triple, ref.data_layout
        ref.link_in(library)
        for f in ref.functions:  # unused library functions are then dropped by the optimiser
            if not f.is_declaration and f.name not in kernels:
                f.linkage = "internal"
    machine = target(arch)
    optimize_parsed(ref, machine, opt)
    return machine.machine(opt, jit=False).emit_assembly(ref)


def launches_ptx(launches: Sequence[Launch], arch: str = DEFAULT_ARCH) -> str:
    """The PTX of ``launches`` for ``arch``."""
    return compile_ptx(emit_module(launches, arch), arch)


__all__ = ["DEFAULT_ARCH", "LIBDEVICE", "TRIPLE", "CudaToolkitMissing", "check_arch", "compile_ptx", "emit_module",
           "launches_ptx", "libdevice_path", "target"]
