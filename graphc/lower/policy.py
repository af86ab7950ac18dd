"""What a backend decides about the loop IR it is given: the lowering policy.

The loop IR itself is backend-neutral.  The choices that depend on the machine (how many threads a
kernel may use, how large a matrix product must be before it is split across them, how much scratch
memory its GEMM needs to pack operands, how buffers are aligned) come from the backend as a
:class:`LoweringPolicy`, which lowering rules read through their :class:`~graphc.lower.builder.LoweringContext`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from graphc.ir.symbolic import Size

GemmPackElements = Callable[[Size, Size, Size, np.dtype], Size]
"""``pack_elements(m, n, k, dtype)``: elements of scratch one thread's GEMM needs for ``C[m, n] = A[m, k] B[k, n]``."""


def no_pack(m: Size, n: Size, k: Size, dtype: np.dtype) -> Size:
    """For backends whose matrix products need no packing scratch (a library call, the reference)."""
    return 0


@dataclass(frozen=True)
class LoweringPolicy:
    """A backend's lowering choices.

    ``threads``: the most threads one kernel may use (sizes per-thread scratch).
    ``gemm_pack_elements``: the scratch a GEMM call needs per thread (0: none).
    ``gemm_parallel_min_macs``: multiply-adds a product needs before it is split across threads.
    ``split_reduce_min``: elements a reduction of fewer rows than threads needs before each row is cut
    into per-thread partial reductions.
    ``convolution_groups``: groups of images a convolution (and its gradients) works on at once, each
    with its own scratch (im2col matrix, padded image, GEMM panels) and a thread of its own: the CPU's
    threads; 1 on a GPU, where each image's product is one library call.
    ``alignment``: bytes every arena buffer is aligned to.
    ``fold_in_memory_order``: a reduction that keeps the last axis (a column sum) is folded by walking
    the input in memory order into the output (vectorises on a CPU, but its reduced loop is sequential)
    rather than one row of the output per independent iteration (what a GPU's threads want).
    """

    threads: int = 1
    gemm_pack_elements: GemmPackElements = no_pack
    gemm_parallel_min_macs: int = 1 << 21
    split_reduce_min: int = 1 << 18
    convolution_groups: int = 1
    alignment: int = 64
    fold_in_memory_order: bool = True


__all__ = ["GemmPackElements", "LoweringPolicy", "no_pack"]
