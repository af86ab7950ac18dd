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
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from graphc.backends.cuda.launch import (
    AtomicAdd,
    BlockFold,
    BlockFor,
    BlockLaunch,
    Kernel,
    Lane0,
    Launch,
    fold_identity,
)
from graphc.codegen import scalar
from graphc.codegen.loops import LoopEmitter
from graphc.codegen.target import Target, initialize, new_module, optimize_parsed
from graphc.codegen.types import I64, constant, storage_type, value_type
from graphc.errors import ArgumentError
from graphc.lower.loopir import STATUS, Check, IVar, LoopKernel

TRIPLE = "nvptx64-nvidia-cuda"
DEFAULT_ARCH = "sm_80"  # Ampere: what the emitted PTX assumes unless a device or --arch says otherwise
I32 = ir.IntType(32)
WARP = 32


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


def _branching_check(emitter: LoopEmitter, s: Check) -> None:
    """Store ``s.code`` to the status word only where ``s.ok`` is false (threads never store 0 over
    another's fault)."""
    b = emitter.b
    failed = emitter.fn.append_basic_block(f"fault{s.code}")
    after = emitter.fn.append_basic_block(f"checked{s.code}")
    b.cbranch(emitter._expr(s.ok), after, failed)
    b.position_at_end(failed)
    pointer, _ = emitter.buffers[STATUS]
    b.store(ir.Constant(I64, s.code), pointer)
    b.branch(after)
    b.position_at_end(after)


BUFFER_ALIGNMENT = 16  # every kernel buffer starts on an allocation or arena boundary (256 bytes)


def _align_buffers(fn: ir.Function, count: int) -> None:
    """Tell LLVM the first ``count`` (buffer) arguments are 16-byte aligned, so that it can merge neighbouring
    accesses into 128-bit vector loads and stores."""
    for arg in fn.args[:count]:
        arg.attributes.align = BUFFER_ALIGNMENT


class _KernelEmitter(LoopEmitter):
    """A launch as a ``ptx_kernel``: its buffers (16-byte aligned pointers), then the host loop variables
    it reads (``i64`` values); checks branch around their store; atomic adds are ``atomicrmw``."""

    def __init__(self, module: ir.Module, launch: Kernel) -> None:
        kernel = LoopKernel(launch.name, list(launch.params), [])
        types = [storage_type(p.dtype).as_pointer() for p in launch.params] + [I64] * len(launch.uniforms)
        fn = ir.Function(module, ir.FunctionType(ir.VoidType(), types), launch.name)
        fn.calling_convention = "ptx_kernel"
        super().__init__(fn, kernel, LIBDEVICE)
        _align_buffers(fn, len(launch.params))
        for var, arg in zip(launch.uniforms, fn.args[len(launch.params):]):
            arg.name = var.name
            self.indices[var.name] = arg
        self.module = module

    def _check(self, s: Check) -> None:
        _branching_check(self, s)

    def _statements(self, body: Sequence[Any]) -> None:
        _statements_with_atomics(self, body, super()._statements)


class _LaunchEmitter(_KernelEmitter):
    """A :class:`Launch`: one thread per point of its space."""

    def __init__(self, module: ir.Module, launch: Launch) -> None:
        super().__init__(module, launch)
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



def _statements_with_atomics(emitter: LoopEmitter, body: Sequence[Any], base: Callable[[Sequence[Any]], None]) -> None:
    """``body`` with :class:`AtomicAdd` as ``atomicrmw add`` / ``fadd`` (relaxed ordering), the rest by ``base``."""
    for s in body:
        if isinstance(s, AtomicAdd):
            pointer, dtype = emitter.buffers[s.buffer]
            address = emitter.b.gep(pointer, [emitter._index(s.index)], inbounds=True)
            emitter.b.atomic_rmw("fadd" if dtype.kind == "f" else "add", address, emitter._expr(s.value), "monotonic")
        else:
            base([s])


_FULL_MASK = ir.Constant(I32, 0xFFFFFFFF)


def _call(b: ir.IRBuilder, name: str, result: ir.Type, args: Sequence[ir.Value]) -> ir.Value:
    module = b.module
    fn = module.globals.get(name) or ir.Function(module, ir.FunctionType(result, [a.type for a in args]), name)
    return b.call(fn, list(args))


def _shuffle(b: ir.IRBuilder, mode: str, value: ir.Value, lane: int) -> ir.Value:
    """``__shfl_sync(full mask, value, lane)`` in ``mode`` ``"down"`` or ``"idx"``, for 32- and 64-bit values
    (a 64-bit value moves as two 32-bit halves)."""
    ty = value.type
    clamp = ir.Constant(I32, 31)
    arg = ir.Constant(I32, lane)
    intrinsic = f"llvm.nvvm.shfl.sync.{mode}.i32"
    if isinstance(ty, (ir.FloatType, ir.DoubleType)):
        bits = ir.IntType(32 if isinstance(ty, ir.FloatType) else 64)
        return b.bitcast(_shuffle(b, mode, b.bitcast(value, bits), lane), ty)
    if ty.width == 32:
        return _call(b, intrinsic, I32, [_FULL_MASK, value, arg, clamp])
    low = _call(b, intrinsic, I32, [_FULL_MASK, b.trunc(value, I32), arg, clamp])
    high = _call(b, intrinsic, I32, [_FULL_MASK, b.trunc(b.lshr(value, ir.Constant(ty, 32)), I32), arg, clamp])
    return b.or_(b.shl(b.zext(high, ty), ir.Constant(ty, 32)), b.zext(low, ty))


class _BlockEmitter(_KernelEmitter):
    """A :class:`BlockLaunch`: block ``ctaid.x`` is the row, ``tid.x`` the lane."""

    def __init__(self, module: ir.Module, launch: BlockLaunch) -> None:
        super().__init__(module, launch)
        self.launch = launch
        self._shared: dict[str, ir.GlobalVariable] = {}

    def emit(self) -> ir.Function:
        b = self.b
        self.lane = _sreg(b, "tid.x")
        remaining = _sreg(b, "ctaid.x")
        for var, extent in reversed(self.launch.space):
            size = ir.Constant(I64, extent)
            self.indices[var.name] = b.urem(remaining, size, name=var.name)
            remaining = b.udiv(remaining, size)
        for s in self.launch.body:
            if isinstance(s, BlockFold):
                self._fold(s)
            elif isinstance(s, BlockFor):
                self._spread(s.loops, lambda body=s.body: self._statements(body))
            elif isinstance(s, Lane0):
                first = self.fn.append_basic_block("lane0")
                after = self.fn.append_basic_block("lane0.done")
                b.cbranch(b.icmp_unsigned("==", self.lane, ir.Constant(I64, 0)), first, after)
                b.position_at_end(first)
                self._statements(s.body)
                self.b.branch(after)
                self.b.position_at_end(after)
            else:
                self._statements([s])
        return self._finish()


    def _spread(self, loops: Sequence[tuple[IVar, int]], body: Callable[[], None]) -> None:
        """``for (point = lane; point < extent; point += B)`` over the flattened ``loops``."""
        b = self.b
        extent = math.prod(e for _, e in loops)
        start = b.block
        loop = self.fn.append_basic_block("spread")
        done = self.fn.append_basic_block("spread.done")
        b.cbranch(b.icmp_unsigned("<", self.lane, ir.Constant(I64, extent)), loop, done)
        b.position_at_end(loop)
        point = b.phi(I64, name="point")
        point.add_incoming(self.lane, start)
        remaining = point
        for var, e in reversed(loops):
            self.indices[var.name] = b.urem(remaining, ir.Constant(I64, e), name=var.name)
            remaining = b.udiv(remaining, ir.Constant(I64, e))
        body()
        following = self.b.add(point, ir.Constant(I64, self.launch.block), flags=["nuw", "nsw"])
        point.add_incoming(following, self.b.block)
        self.b.cbranch(self.b.icmp_unsigned("<", following, ir.Constant(I64, extent)), loop, done)
        self.b.position_at_end(done)

    def _shared_array(self, dtype: np.dtype) -> ir.GlobalVariable:
        name = f"{self.launch.name}.shared.{dtype.name}"
        if name not in self._shared:
            array = ir.GlobalVariable(self.module, ir.ArrayType(value_type(dtype), WARP), name, addrspace=3)
            array.linkage = "internal"
            array.initializer = ir.Constant(array.value_type, ir.Undefined)
            array.align = 8
            self._shared[name] = array
        return self._shared[name]

    def _combine(self, op: str, dtype: np.dtype, x: ir.Value, y: ir.Value) -> ir.Value:
        return scalar.emit(self.b, op, [x, y], dtype, dtype, {}, self.math_library)

    def _warp_fold(self, op: str, dtype: np.dtype, value: ir.Value) -> ir.Value:
        for offset in (16, 8, 4, 2, 1):
            value = self._combine(op, dtype, value, _shuffle(self.b, "down", value, offset))
        return value

    def _fold(self, s: BlockFold) -> None:
        b = self.b
        slot, _ = self.accumulators[s.acc]
        identity = fold_identity(s.op, s.dtype)
        if s.op == "add" and s.dtype.kind == "f":
            identity = -0.0  # x + -0.0 == x for every x, -0.0 included
        ident = constant(s.dtype, identity)
        zero = ir.Constant(I64, 0)
        partial = self.allocas.alloca(value_type(s.dtype), name=f"{s.acc}.part")
        b.store(b.select(b.icmp_unsigned("==", self.lane, zero), b.load(slot), ident), partial)

        def update() -> None:
            self.b.store(self._combine(s.op, s.dtype, self.b.load(partial), self._expr(s.value)), partial)

        self._spread(s.loops, update)
        b = self.b
        warps = self.launch.block // WARP
        lane_in_warp = b.urem(self.lane, ir.Constant(I64, WARP))
        warp = b.udiv(self.lane, ir.Constant(I64, WARP))
        total = self._warp_fold(s.op, s.dtype, b.load(partial))
        shared = self._shared_array(s.dtype)
        _call(b, "llvm.nvvm.barrier0", ir.VoidType(), [])  # an earlier fold's readers are done with shared
        write = self.fn.append_basic_block("fold.share")
        shared_done = self.fn.append_basic_block("fold.shared")
        b.cbranch(b.icmp_unsigned("==", lane_in_warp, zero), write, shared_done)
        b.position_at_end(write)
        b.store(total, b.gep(shared, [ir.Constant(I32, 0), b.trunc(warp, I32)], inbounds=True))
        b.branch(shared_done)
        b.position_at_end(shared_done)
        _call(b, "llvm.nvvm.barrier0", ir.VoidType(), [])
        read = b.load(b.gep(shared, [ir.Constant(I32, 0), b.trunc(b.select(
            b.icmp_unsigned("<", lane_in_warp, ir.Constant(I64, warps)), lane_in_warp, zero), I32)], inbounds=True))
        second = b.select(b.icmp_unsigned("<", lane_in_warp, ir.Constant(I64, warps)), read, ident)
        b.store(_shuffle(b, "idx", self._warp_fold(s.op, s.dtype, second), 0), slot)


def emit_module(launches: Sequence[Kernel], arch: str = DEFAULT_ARCH, name: str = "graphc_gpu") -> ir.Module:
    """The LLVM IR of every launch, as one module for ``arch``."""
    module = new_module(name, target(arch))
    for launch in launches:
        try:
            if isinstance(launch, BlockLaunch):
                _BlockEmitter(module, launch).emit()
            else:
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


def launches_ptx(launches: Sequence[Kernel], arch: str = DEFAULT_ARCH) -> str:
    """The PTX of ``launches`` for ``arch``."""
    return compile_ptx(emit_module(launches, arch), arch)


__all__ = ["DEFAULT_ARCH", "LIBDEVICE", "TRIPLE", "CudaToolkitMissing", "check_arch", "compile_ptx", "emit_module",
           "launches_ptx", "libdevice_path", "target"]
