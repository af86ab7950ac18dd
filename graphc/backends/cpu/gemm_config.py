"""The GEMM's blocking for a dtype on a target, and the scratch it needs: what lowering asks about a
matrix product (through the CPU backend's policy) without generating any code.  See gemm.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from graphc.backends.cpu.target import default_target
from graphc.codegen.target import Target
from graphc.ir.symbolic import is_symbolic

ALIGN_BYTES = 64
L1_BYTES = 32 * 1024
L2_BYTES = 1024 * 1024


@dataclass(frozen=True)
class GemmConfig:
    """Register and cache blocking for one dtype on one target."""

    dtype: np.dtype
    lanes: int  # W: elements per SIMD vector
    mr: int  # rows of the micro-tile (broadcast side)
    nv: int  # vectors per micro-tile row
    kc: int  # depth of a packed slab
    mc: int  # rows of a packed A block
    nc: int  # columns of a packed B block
    fma: bool  # the target has a fused multiply-add unit

    @property
    def nr(self) -> int:
        return self.nv * self.lanes

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize


def _features(target: Target) -> set[str]:
    return {f[1:] for f in target.features.split(",") if f.startswith("+")}


def vector_bits(target: Target) -> tuple[int, int, bool]:
    """(SIMD width in bits, number of vector registers, has FMA) of ``target``."""
    feats = _features(target)
    arch = target.triple.split("-")[0]
    if arch in ("x86_64", "i386", "i686"):
        if "avx512f" in feats:
            return 512, 32, True
        if "avx" in feats:
            return 256, 16, "fma" in feats
        return 128, 16, "fma" in feats
    if arch in ("aarch64", "arm64"):
        return 128, 32, True
    return 128, 16, "fma" in feats


def gemm_config(dtype: Any, target: Target | None = None) -> GemmConfig:
    """The blocking used for ``dtype`` on ``target`` (the host by default).

    Micro-tile: ``6 x 4`` vectors with 32 vector registers (24 accumulators, 4 ``B`` vectors, broadcasts
    folded into the FMAs; on Zen 4 it measured a little faster than 12 x 2, 8 x 3 and 14 x 2), ``6 x 2``
    vectors with 16 registers (12 accumulators: the AVX2 ``6 x 16`` float32 kernel).
    ``kc``: an ``A`` micro-panel (``kc * mr`` elements) fills about half of a 32 KiB L1 (rounded to a
    multiple of 16, at most 384). ``nc``: the packed ``B`` block (``kc * nc``) fills about 3/4 of a 1 MiB L2
    (a multiple of ``nr``). ``mc``: 1536 rows (a multiple of ``mr``), a block reused from L3.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"gemm supports float32 and float64, not {dtype}")
    target = target or default_target()
    bits, regs, fma = vector_bits(target)
    lanes = bits // (8 * dtype.itemsize)
    mr, nv = (6, 4) if regs >= 32 else (6, 2)
    nr = nv * lanes
    kc = max(16, min(384, (L1_BYTES // 2) // (mr * dtype.itemsize) // 16 * 16))
    nc = max(nr, (3 * L2_BYTES // 4) // (kc * dtype.itemsize) // nr * nr)
    mc = max(mr, 1536 // mr * mr)
    return GemmConfig(dtype, lanes, mr, nv, kc, mc, nc, fma)


def _round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def pack_buffer_elements(M: int, N: int, K: int, dtype: Any, target: Target | None = None) -> int:
    """Elements of ``dtype`` the ``pack`` argument must hold for an ``M x N x K`` product (any alignment).

    It is ``min(mc, M') * min(kc, K) + min(nc, N') * min(kc, K)`` (``M'``, ``N'`` rounded up to ``mr``,
    ``nr``), padded for alignment: one packed ``A`` block plus one packed ``B`` block. The same buffer size
    serves every ``_rows`` / ``_block`` call on a sub-range of the same problem.
    """
    cfg = gemm_config(dtype, target)
    # a size known only at run time (a SymInt) is bounded by its block size
    M, N, K = (cfg.mc if is_symbolic(M) else M), (cfg.nc if is_symbolic(N) else N), (cfg.kc if is_symbolic(K) else K)
    align = ALIGN_BYTES // cfg.itemsize
    mcb = min(cfg.mc, _round_up(max(M, 0), cfg.mr))
    ncb = min(cfg.nc, _round_up(max(N, 0), cfg.nr))
    kcb = min(cfg.kc, max(K, 0))
    return _round_up(mcb * kcb, align) + ncb * kcb + 2 * align


__all__ = ["ALIGN_BYTES", "GemmConfig", "gemm_config", "pack_buffer_elements", "vector_bits"]
