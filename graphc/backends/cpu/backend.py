"""``device="cpu"``: the LLVM CPU backend.

Its lowering policy sizes GEMM scratch for the target's vector width and splits large kernels across
``threads`` threads; its executable is one LLVM module per graph and shape signature, called once per
run; its compiled-code library is MCJIT object code, which the compile cache keeps as bytes.  The
target is the host CPU, or a lower level of it with ``cpu=`` (``gc.function(..., cpu="x86-64-v3")``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from graphc.backends.base import Backend, CodeCache, DeviceOptions, Executable
from graphc.backends.cpu.executable import CpuExecutable, likely_runtime_parts, start_runtime_compile
from graphc.backends.cpu.gemm_config import pack_buffer_elements
from graphc.backends.cpu.target import jit_target
from graphc.codegen.target import Target
from graphc.errors import ArgumentError
from graphc.ir.registry import AbstractValue
from graphc.ir.symbolic import Size
from graphc.ir.tensor import Tensor
from graphc.lower.policy import LoweringPolicy

ALIGNMENT = 64  # bytes: every arena buffer starts on a cache line (and a full AVX-512 vector)
GEMM_PARALLEL_MIN_MACS = 1 << 21  # smaller products run on one thread (a pool wake-up costs ~10 us)
SPLIT_REDUCE_MIN = 1 << 18  # elements a reduction of few rows needs before its rows are cut into parts


def cpu_policy(target: Target, threads: int) -> LoweringPolicy:
    """How loop IR is shaped for ``target`` with up to ``threads`` threads per kernel (JIT and AOT)."""
    def pack_elements(m: Size, n: Size, k: Size, dtype: np.dtype) -> Size:
        return pack_buffer_elements(m, n, k, dtype, target)

    return LoweringPolicy(threads=threads, gemm_pack_elements=pack_elements,
                          gemm_parallel_min_macs=GEMM_PARALLEL_MIN_MACS, split_reduce_min=SPLIT_REDUCE_MIN,
                          convolution_groups=threads, alignment=ALIGNMENT)


class CpuBackend(Backend):
    name = "cpu"
    fresh_outputs = True  # values handed back are new arrays (or recycled ones nobody refers to)
    generates_code = True

    def check_options(self, options: DeviceOptions) -> None:
        if options.index:
            raise ArgumentError(f"device 'cpu' is this machine's CPU; there is no device {options.index} "
                                f"({options.device!r}); use 'cpu' and threads= for more cores")
        jit_target(options.cpu)

    def prepare(self, nodes: Sequence[Tensor], options: DeviceOptions, cache: CodeCache | None = None) -> None:
        start_runtime_compile(likely_runtime_parts(nodes), jit_target(options.cpu), cache)

    def compile(self, nodes: Sequence[Tensor], avals: Mapping[int, AbstractValue], wanted: Sequence[Tensor],
                options: DeviceOptions, cache: CodeCache | None = None) -> Executable:
        target = jit_target(options.cpu)
        return CpuExecutable(nodes, avals, wanted, target, cpu_policy(target, options.threads), cache)


__all__ = ["ALIGNMENT", "CpuBackend", "cpu_policy"]
