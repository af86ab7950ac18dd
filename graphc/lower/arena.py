"""Memory plans for a lowered program's buffers: the arena layout (byte offsets of buffers that share memory
when their lifetimes do not overlap) and, for sizes known only at run time, groups of buffers sharing bytes.

Kept apart from the lowering itself so that loading compiled code from the cache needs none of it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from graphc.ir.symbolic import Size, hint


@dataclass(frozen=True)
class Buffer:
    """A computed value or scratch buffer: its slot, shape and dtype."""

    slot: int
    shape: tuple[Size, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> Size:
        return math.prod(self.shape) * self.dtype.itemsize


def plan_arena(sizes: Mapping[int, int], lifetimes: Mapping[int, tuple[int, int]], align: int = 64
               ) -> tuple[dict[int, int], int]:
    """Byte offsets for buffers (``slot -> nbytes``) live over kernel ranges ``slot -> (first, last)``:
    two buffers share bytes only if their ranges are disjoint.  Greedy, largest first, each at the
    lowest ``align``-byte aligned offset that fits beside the already placed buffers it overlaps in time.
    Returns the offsets and the arena size."""
    offsets: dict[int, int] = {}
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    for slot in sorted(sizes, key=lambda s: (-sizes[s], s)):
        size = -(-sizes[slot] // align) * align
        first, last = lifetimes[slot]
        busy = sorted((o, e) for o, e, f, la in placed if f <= last and first <= la)
        offset = 0
        for o, e in busy:
            if offset + size <= o:
                break
            offset = max(offset, e)
        offsets[slot] = offset
        placed.append((offset, offset + size, first, last))
    return offsets, max((e for _, e, _, _ in placed), default=0)


def plan_groups(sizes: Mapping[int, Size], lifetimes: Mapping[int, tuple[int, int]]) -> list[list[int]]:
    """Arena groups for buffers whose sizes are known only at run time: buffers in one group have
    disjoint lifetimes, so they share the group's bytes (the largest member's size).  First fit,
    largest (at the size hint) first."""
    groups: list[list[int]] = []
    for slot in sorted(sizes, key=lambda s: (-hint(sizes[s]), s)):
        first, last = lifetimes[slot]
        for group in groups:
            if all(lifetimes[o][1] < first or last < lifetimes[o][0] for o in group):
                group.append(slot)
                break
        else:
            groups.append([slot])
    return groups


__all__ = ["Buffer", "plan_arena", "plan_groups"]
