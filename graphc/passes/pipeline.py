"""The optimisation pipeline: named phases run in order, each to a fixed point.

    canonicalize -> stabilize -> specialize -> fuse

Level 0 changes nothing; level 1 runs the cheap phases (canonicalize, stabilize); level 2 (the
default for Session and gc.function) runs all four.  Each later phase also re-applies the
canonicalize rewrites, so the clean-ups they enable happen in the same fixed point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from graphc.errors import ArgumentError
from graphc.ir.graph import Graph, topological_order
from graphc.ir.scope import enter_scope
from graphc.ir.tensor import Tensor
from graphc.passes import canonicalize, specialize, stabilize
from graphc.passes.bodies import has_control_flow, optimize_bodies, prune_outputs, rewrite_nodes
from graphc.passes.engine import Rewrite, RewriteLog, RewriteRecord, rewrite_to_fixed_point

PHASES: tuple[str, ...] = ("canonicalize", "stabilize", "specialize", "fuse")
LEVELS = {0: (), 1: ("canonicalize", "stabilize"), 2: PHASES}

REWRITES_BY_PHASE: dict[str, list[Rewrite]] = {
    "canonicalize": canonicalize.REWRITES,
    "stabilize": stabilize.REWRITES,
    "specialize": specialize.REWRITES,
}


def all_rewrites() -> list[Rewrite]:
    """Every rewrite graphc has, phase by phase (the fuse phase partitions rather than rewrites)."""
    return [rw for phase in PHASES for rw in REWRITES_BY_PHASE.get(phase, [])]


@dataclass
class OptimizedGraph(Graph):
    """A :class:`Graph` after the pipeline, with what the pipeline did to it.

    ``rewrites``: the :class:`RewriteLog` (rewrite, phase, node, user line, result and created
    nodes of every application); ``phases``: the graph after each phase that ran, as
    ``(phase name, Graph)`` pairs; ``phase_rewrites``: for each phase that ran, the records of the
    rewrites that fired while it ran (a canonicalize rewrite re-applied during stabilize counts for
    stabilize, though its record's ``phase`` is ``"canonicalize"``), so that they partition
    ``rewrites`` in order.
    """

    rewrites: RewriteLog = field(default_factory=RewriteLog)
    phases: list[tuple[str, Graph]] = field(default_factory=list)
    level: int = 2
    phase_rewrites: dict[str, list[RewriteRecord]] = field(default_factory=dict)

    def __init__(self, outputs: Sequence[Tensor], rewrites: RewriteLog, phases: list[tuple[str, Graph]],
                 level: int, phase_rewrites: dict[str, list[RewriteRecord]] | None = None) -> None:
        Graph.__init__(self, outputs)
        self.rewrites, self.phases, self.level = rewrites, phases, level
        self.phase_rewrites = {} if phase_rewrites is None else phase_rewrites


def check_level(level: int) -> int:
    if level not in LEVELS:
        raise ArgumentError(f"optimisation level must be 0, 1 or 2, got {level!r}")
    return level


def run_phases(outputs: Sequence[Tensor], phases: Sequence[str], log: RewriteLog,
               pinned: set[int] | None = None, snapshots: list[tuple[str, Graph]] | None = None,
               phase_rewrites: dict[str, list[RewriteRecord]] | None = None
               ) -> tuple[list[Tensor], dict[int, Tensor]]:
    """Run ``phases`` on ``outputs``; return the new outputs and original node id -> new node.

    ``snapshots`` (if given) gets ``(phase, graph after it)`` per phase, ``phase_rewrites`` the
    records ``log`` gained while each phase ran.  The phases run at the root name scope: the nodes
    they build are named in the scope of the node they serve, never in the caller's scope.
    """
    with enter_scope(""):
        return _run_phases(outputs, phases, log, pinned, snapshots, phase_rewrites)


def _run_phases(outputs: Sequence[Tensor], phases: Sequence[str], log: RewriteLog, pinned: set[int] | None,
                snapshots: list[tuple[str, Graph]] | None, phase_rewrites: dict[str, list[RewriteRecord]] | None
                ) -> tuple[list[Tensor], dict[int, Tensor]]:
    current = list(outputs)
    mapping: dict[int, Tensor] = {n.id: n for n in topological_order(current)}

    def follow(step: dict[int, Tensor]) -> None:
        for k, v in mapping.items():
            mapping[k] = step.get(v.id, v)

    for phase in phases:
        start = len(log.records)
        if phase == "fuse":
            from graphc.passes.fusion import fuse

            current = fuse(current, log)
        else:
            rewrites = REWRITES_BY_PHASE[phase] + ([] if phase == "canonicalize" else canonicalize.REWRITES)
            if phase == "canonicalize":
                current, step = canonicalize.cse(current, log, pinned)
                follow(step)
            current, step = rewrite_to_fixed_point(current, rewrites, log, pinned)
            follow(step)
            current, step = canonicalize.cse(current, log, pinned)
            follow(step)
        if has_control_flow(current):
            # the same phase inside loop and branch bodies (each body a graph of its own)
            current, step = optimize_bodies(current, lambda outs, ph=phase: _run_phases(outs, [ph], log, None,
                                                                                           None, None)[0])
            follow(step)
            if phase == "canonicalize":  # then the control-flow nodes' own rewrites, and what no one reads dropped
                for clean_up in (rewrite_nodes, prune_outputs):
                    current, step = clean_up(current, log)
                    follow(step)
        if snapshots is not None:
            snapshots.append((phase, Graph(current)))
        if phase_rewrites is not None:
            phase_rewrites.setdefault(phase, []).extend(log.records[start:])
    return current, mapping


def optimize(outputs: Tensor | Sequence[Tensor], level: int = 2) -> OptimizedGraph:
    """The optimised graph of ``outputs`` (the same passes Session and gc.function run), without
    running it.  Its ``.outputs`` correspond one to one to ``outputs``; ``.rewrites`` lists every
    rewrite that fired (``.phase_rewrites``: the same records, by the phase that was running),
    and ``.phases`` holds the graph after each phase."""
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    log = RewriteLog()
    snapshots: list[tuple[str, Graph]] = [("input", Graph(outs))]
    by_phase: dict[str, list[RewriteRecord]] = {}
    optimized, _ = run_phases(outs, LEVELS[check_level(level)], log, snapshots=snapshots, phase_rewrites=by_phase)
    return OptimizedGraph(optimized, log, snapshots, level, by_phase)


__all__ = ["LEVELS", "PHASES", "OptimizedGraph", "all_rewrites", "optimize", "run_phases"]
