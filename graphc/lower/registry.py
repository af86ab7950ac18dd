"""The lowering table: how each op becomes loop IR, registered as data.

A rule is registered once, for an op name or for a whole op family, with one signature::

    @lowers("softmax", "log_softmax")
    def softmax_family(node: Tensor, ctx: LoweringContext) -> list[Stmt]: ...

It returns the kernel's body; scratch buffers come from ``ctx.scratch`` and run-time faults from
``ctx.fault``.  :func:`lower_node` builds the kernel around the body: its parameters (the node's
inputs, its outputs, the scratch, and the status word when any ``Check`` can fail) and the checks
every kernel gets (:mod:`graphc.lower.checks`).  A rule for an op name takes precedence over its
family's rule; an op without either is refused with :class:`Unsupported` when a graph using it is
compiled.

Control-flow ops (a loop, a conditional) are not one kernel but a step of the program that runs other
kernels: their rules are registered with ``@lowers_program`` and build that step from the
:class:`~graphc.lower.program.LoweredProgram` being built (graphc/lower/control.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.ir.tensor import Tensor
from graphc.lower.builder import LoweringContext, Unsupported, buffer_name, kernel_output_buffers
from graphc.lower.checks import guard_integer_power
from graphc.lower.loopir import STATUS, BufferSpec, LoopKernel, Stmt, has_check

LoweringRule = Callable[[Tensor, LoweringContext], list[Stmt]]
"""``rule(node, ctx) -> the statements of node's kernel``."""

OP_RULES: dict[str, LoweringRule] = {}
FAMILY_RULES: dict[str, LoweringRule] = {}
NO_CODE = frozenset({"placeholder", "variable", "constant", "group", "kernel_output", "part"})
"""Ops whose value needs no kernel: sources, groups, and outputs of a kernel or control-flow step already run."""
NOT_LOWERED_YET: frozenset[str] = frozenset()
"""Ops the compiled backends do not lower yet: a graph using one is refused with :class:`Unsupported`
naming it and the user's line."""
ProgramRule = Callable[[Tensor, Any], Any]
"""``rule(node, program) -> the program step running node`` (a control-flow op; ``program`` is the
:class:`~graphc.lower.program.LoweredProgram` being built)."""
PROGRAM_RULES: dict[str, ProgramRule] = {}


def lowers(*ops: str, family: str | None = None) -> Callable[[LoweringRule], LoweringRule]:
    """Register the decorated rule for ``ops`` (names) or for every op of ``family``."""
    def register(rule: LoweringRule) -> LoweringRule:
        for op in ops:
            if op in OP_RULES:
                raise RuntimeError(f"op {op!r} has two lowering rules")
            OP_RULES[op] = rule
        if family is not None:
            if family in FAMILY_RULES:
                raise RuntimeError(f"op family {family!r} has two lowering rules")
            FAMILY_RULES[family] = rule
        return rule

    return register


def lowers_program(*ops: str) -> Callable[[ProgramRule], ProgramRule]:
    """Register the decorated rule as the way ``ops`` (control flow) become steps of a lowered program."""
    def register(rule: ProgramRule) -> ProgramRule:
        for op in ops:
            if op in OP_RULES or op in PROGRAM_RULES:
                raise RuntimeError(f"op {op!r} has two lowering rules")
            PROGRAM_RULES[op] = rule
        return rule

    return register


def rule_for(node: Tensor) -> LoweringRule | None:
    """The rule that lowers ``node``'s op (None: no rule)."""
    return OP_RULES.get(node.op) or FAMILY_RULES.get(node.opdef.family)


def lower_node(node: Tensor, ctx: LoweringContext) -> LoopKernel | None:
    """The loop kernel computing ``node`` (``None`` for nodes that need no code)."""
    if node.op in NO_CODE:
        return None
    rule = rule_for(node)
    if rule is None:
        raise Unsupported(f"op {node.op} has no lowering rule yet (use device='reference')")
    avals = ctx.avals
    params = [BufferSpec(buffer_name(i), avals[i.id].dtype, math.prod(avals[i.id].shape)) for i in node.inputs
              if avals[i.id].parts is None]
    if node.op == "fused":
        kernel = node.attrs["kernel"]
        inner = [avals[node.id]] if avals[node.id].parts is None else avals[node.id].parts
        params += [BufferSpec(b, a.dtype, math.prod(a.shape)) for b, a in zip(kernel_output_buffers(node), inner)]
    else:
        params.append(BufferSpec(buffer_name(node), avals[node.id].dtype, math.prod(avals[node.id].shape)))
    name = f"k{node.id}_fused_{node.attrs['kernel'].kind}" if node.op == "fused" else f"k{node.id}_{node.op}"
    body = guard_integer_power(rule(node, ctx), node, ctx)
    scratch = ctx.take_scratch()
    kernel = LoopKernel(name, params + scratch, body, scratch)
    if has_check(body):
        kernel.params.append(BufferSpec(STATUS, np.dtype(np.int64), 1))
    return kernel


__all__ = ["FAMILY_RULES", "NOT_LOWERED_YET", "NO_CODE", "OP_RULES", "PROGRAM_RULES", "LoweringRule", "ProgramRule",
           "lower_node", "lowers", "lowers_program", "rule_for"]
