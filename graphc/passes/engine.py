"""The rewrite engine: rewrites are data, applied to a graph until none fires.

A :class:`Rewrite` names the ops it may apply to and a function from a matched node to its
replacement (or ``None`` when it does not apply).  :func:`rewrite_to_fixed_point` sweeps the graph
bottom-up, rebuilding nodes whose inputs changed, tries the rewrites on each node, and repeats until
a sweep changes nothing.  Every application is recorded with the user's line of the node it
rewrote, and nodes built by a rewrite carry that line too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from graphc.ir.build import rebuild
from graphc.ir.graph import topological_order
from graphc.ir.location import SourceLocation, located_at
from graphc.ir.tensor import Tensor

RewriteFn = Callable[[Tensor], "Tensor | None"]

MAX_SWEEPS = 100


@dataclass(frozen=True)
class Rewrite:
    """One rewrite: on a node whose op is in ``ops`` (any op if empty), ``fn(node)`` gives its
    replacement or ``None``.  A replacement must have the node's dtype and static shape."""

    name: str
    phase: str
    ops: tuple[str, ...]
    fn: RewriteFn
    doc: str


@dataclass(frozen=True)
class RewriteRecord:
    """One application of a rewrite: which, in which phase, on which node, from which user line."""

    rewrite: str
    phase: str
    op: str
    node: str
    location: SourceLocation | None

    def __str__(self) -> str:
        where = f" at {self.location}" if self.location else ""
        return f"{self.phase}/{self.rewrite}: {self.op} '{self.node}'{where}"


@dataclass
class RewriteLog:
    """Every rewrite applied while optimising one graph, in order."""

    records: list[RewriteRecord] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How often each rewrite fired."""
        out: dict[str, int] = {}
        for r in self.records:
            out[r.rewrite] = out.get(r.rewrite, 0) + 1
        return out

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __str__(self) -> str:
        return "\n".join(str(r) for r in self.records) or "(no rewrites fired)"


# Nodes rewrites must treat as opaque: neither replaced nor looked through (see ``producer``).
_pinned = threading.local()


def is_pinned(t: Tensor) -> bool:
    return t.id in getattr(_pinned, "ids", ())


def made_by(t: Tensor, *ops: str) -> bool:
    """Whether ``t`` was made by one of ``ops`` and rewrites may look into it."""
    return t.op in ops and not is_pinned(t)


def producer(t: Tensor, *ops: str) -> Tensor | None:
    """``t`` if it was made by one of ``ops`` and rewrites may look into it, else ``None``."""
    return t if t.op in ops and not is_pinned(t) else None


def rewrite_to_fixed_point(outputs: Sequence[Tensor], rewrites: Sequence[Rewrite], log: RewriteLog,
                           pinned: set[int] | None = None) -> tuple[list[Tensor], dict[int, Tensor]]:
    """Apply ``rewrites`` until none fires; return the new outputs and old node id -> new node."""
    by_op: dict[str, list[Rewrite]] = {}
    generic: list[Rewrite] = []
    for rw in rewrites:
        if rw.ops:
            for op in rw.ops:
                by_op.setdefault(op, []).append(rw)
        else:
            generic.append(rw)
    pins = set(pinned or ())
    _pinned.ids = pins
    mapping: dict[int, Tensor] = {}
    current = list(outputs)
    try:
        for _ in range(MAX_SWEEPS):
            changed = False
            memo: dict[int, Tensor] = {}
            for node in topological_order(current):
                new = rebuild(node, [memo[i.id] for i in node.inputs])
                if node.id in pins:
                    pins.add(new.id)
                else:
                    for rw in (*by_op.get(new.op, ()), *generic):
                        with located_at(new.location):
                            replacement = rw.fn(new)
                        if replacement is not None and replacement is not new:
                            _check_replacement(rw, new, replacement)
                            log.records.append(RewriteRecord(rw.name, rw.phase, new.op, new.name, new.location))
                            new, changed = replacement, True
                            break
                memo[node.id] = new
            # original node id -> its node after this sweep
            mapping = dict(memo) if not mapping else {k: memo.get(v.id, v) for k, v in mapping.items()}
            current = [memo[o.id] for o in current]
            if not changed:
                if pinned is not None:
                    pinned |= pins  # rebuilt pinned nodes stay pinned for the passes that follow
                return current, mapping
        raise RuntimeError(f"graphc internal error: rewrites did not settle after {MAX_SWEEPS} sweeps")
    finally:
        _pinned.ids = ()


def _check_replacement(rw: Rewrite, old: Tensor, new: Tensor) -> None:
    same_shape = len(new.shape) == len(old.shape) and all(o is None or o == n for o, n in zip(old.shape, new.shape))
    if new.dtype != old.dtype or not same_shape:
        raise RuntimeError(f"graphc internal error: rewrite {rw.name} turned {old.type_str()} into {new.type_str()}")
