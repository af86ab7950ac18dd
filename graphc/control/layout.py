"""Where a ``loop`` node keeps what: its inputs (trip count, sequences, initial states, captured tensors) and
its outputs (final states, stacked states, stacked per-step outputs, the number of steps run).  Everything
that reads loop nodes (their rules, their gradient, the lowering) finds its pieces through here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def split_inputs(items: Sequence[T], attrs: Mapping[str, Any]) -> tuple[T | None, list[T], list[T], list[T]]:
    """``(trip count or None, sequences, initial states, captured)`` of a loop's inputs (or of anything
    given per input, such as their abstract values or arrays)."""
    trip = items[0] if attrs["has_trip"] else None
    rest = list(items[1:] if attrs["has_trip"] else items)
    n_seq, n_state = attrs["n_seq"], attrs["n_state"]
    return trip, rest[:n_seq], rest[n_seq:n_seq + n_state], rest[n_seq + n_state:]


def input_offsets(attrs: Mapping[str, Any]) -> tuple[int, int, int]:
    """The position of the first sequence, the first initial state and the first captured tensor."""
    first = 1 if attrs["has_trip"] else 0
    return first, first + attrs["n_seq"], first + attrs["n_seq"] + attrs["n_state"]


def stacked_part(attrs: Mapping[str, Any], state: int) -> int | None:
    """The output holding ``state`` stacked over the steps (None if the loop does not stack it)."""
    stacked = attrs["stacked"]
    if not stacked[state]:
        return None
    return attrs["n_state"] + sum(1 for mode in stacked[:state] if mode)


def output_part(attrs: Mapping[str, Any], output: int) -> int:
    """The output holding per-step output ``output`` stacked over the steps."""
    return attrs["n_state"] + sum(1 for mode in attrs["stacked"] if mode) + output


def trip_part(attrs: Mapping[str, Any]) -> int:
    """The output holding the number of steps run."""
    return output_part(attrs, len(attrs["body"].outputs) - attrs["n_state"])


__all__ = ["input_offsets", "output_part", "split_inputs", "stacked_part", "trip_part"]
