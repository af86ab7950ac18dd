"""The rewrite engine: rewrites are data, applied to a graph until none fires.

A :class:`Rewrite` names the ops it may apply to and a function from a matched node to its
replacement (or ``None`` when it does not apply).  :func:`rewrite_to_fixed_point` sweeps the graph
bottom-up, rebuilding nodes whose inputs changed, tries the rewrites on each node, and repeats until
a sweep changes nothing.  Every application is recorded with the user's line of the node it
rewrote, the replacement and the nodes the rewrite built; those nodes carry the user's line of
the node they replace and are named in its name scope.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from graphc.ir.build import attributed_to, rebuild
from graphc.ir.graph import topological_order
from graphc.ir.location import SourceLocation
from graphc.ir.tensor import Tensor, id_watermark

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
    """One application of a rewrite: which, in which phase, on which node, from which user line.

    ``result`` is the name of the node that took the rewritten node's place, ``created`` the names
    of every node the rewrite built (the replacement included when it is new, in the order they
    were built); a rewrite that returns a node that already existed (``x * 1 -> x``, cse) created
    nothing.
    """

    rewrite: str
    phase: str
    op: str
    node: str
    location: SourceLocation | None
    result: str = ""
    created: tuple[str, ...] = ()

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
                    rules = (*by_op.get(new.op, ()), *generic)
                    if rules:
                        new, fired = _apply_first(new, rules, log)
                        changed |= fired
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


def _apply_first(node: Tensor, rules: Sequence[Rewrite], log: RewriteLog) -> tuple[Tensor, bool]:
    """``node``'s replacement by the first of ``rules`` that fires (logged), or ``node`` itself.

    The rules build their nodes with ``node``'s user line, in ``node``'s name scope."""
    with attributed_to(node):
        for rw in rules:
            mark = id_watermark()
            replacement = rw.fn(node)
            if replacement is not None and replacement is not node:
                _check_replacement(rw, node, replacement)
                log.records.append(RewriteRecord(rw.name, rw.phase, node.op, node.name, node.location,
                                                 replacement.name, built_since(replacement, mark)))
                return replacement, True
    return node, False


def built_since(t: Tensor, mark: int) -> tuple[str, ...]:
    """The names of ``t`` and the nodes it depends on that were built after ``id_watermark()`` gave
    ``mark``, in the order they were built.  Only new nodes are descended into, so the walk stops
    at the existing graph."""
    found: dict[int, Tensor] = {}
    stack = [t]
    while stack:
        n = stack.pop()
        if n.id > mark and n.id not in found:
            found[n.id] = n
            stack.extend(n.inputs)
    return tuple(found[k].name for k in sorted(found))


def _check_replacement(rw: Rewrite, old: Tensor, new: Tensor) -> None:
    same_shape = len(new.shape) == len(old.shape) and all(o is None or o == n for o, n in zip(old.shape, new.shape))
    if new.dtype != old.dtype or not same_shape:
        raise RuntimeError(f"graphc internal error: rewrite {rw.name} turned {old.type_str()} into {new.type_str()}")
