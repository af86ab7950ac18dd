"""The op registry is complete: every op has every rule it needs (its lowering rule included), its facts are
consistent, and every API.md op exists."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import graphc as gc
import graphc.lower.rules
from graphc.ir.registry import DATA_UNCHANGED, FAMILIES, REGISTRY
from graphc.lower.registry import FAMILY_RULES, NO_CODE, NOT_LOWERED_YET, OP_RULES, PROGRAM_RULES
from graphc.ops.kernel import KERNEL_KINDS

API_OPS = """neg abs sign exp expm1 log log1p sqrt rsqrt square reciprocal sin cos tanh sigmoid relu softplus erf
floor ceil round isnan isfinite logical_not add subtract multiply divide floor_divide mod power maximum minimum equal
not_equal less less_equal greater greater_equal logical_and logical_or where cast sum mean max min prod argmax argmin
logsumexp reshape transpose expand_dims squeeze broadcast_to concat stack split pad take one_hot matmul softmax
log_softmax softmax_cross_entropy sigmoid_cross_entropy conv2d max_pool2d avg_pool2d Variable assign assign_add group
stop_gradient placeholder constant grad zeros_like ones_like scan while_loop cond""".split()


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_op_has_its_rules(name: str) -> None:
    op = REGISTRY[name]
    assert op.name == name
    assert op.family in FAMILIES
    assert callable(op.infer), f"{name} has no shape/dtype rule"
    assert callable(op.reference), f"{name} has no NumPy reference implementation"
    assert op.doc, f"{name} has no one-line description"
    if op.family == "elementwise" and name not in ("where", "cast", "stop_gradient"):
        assert callable(op.extra.get("dtype_rule")), f"elementwise {name} has no dtype rule"
    if op.differentiable:
        assert callable(op.grad), f"{name} is differentiable but has no gradient rule"
    if name not in NO_CODE | NOT_LOWERED_YET and name != "parameter":  # parameters: bound by the node around them
        assert name in OP_RULES or name in PROGRAM_RULES or op.family in FAMILY_RULES, f"{name} has no lowering rule"
    if op.reduction is not None and op.reduction.combine is not None:
        assert callable(op.reduction.identity) and REGISTRY[op.reduction.combine].family == "elementwise"
    if op.epilogue_kind is not None:
        assert op.epilogue_kind in KERNEL_KINDS, f"{name}'s epilogue kind is not a kernel kind"
    assert op.data_unchanged in DATA_UNCHANGED
    if op.data_unchanged is not None:  # the output is (a view of) its first input: no reduction, no arithmetic
        assert op.family in ("shape", "reduce") and op.reduction is None, name


def test_the_ops_not_lowered_yet_are_exactly_those_without_a_rule() -> None:
    assert set(REGISTRY) >= NOT_LOWERED_YET
    assert not any(name in OP_RULES or name in PROGRAM_RULES for name in NOT_LOWERED_YET), \
        "a lowered op is still listed as not lowered"


@pytest.mark.parametrize("name", API_OPS)
def test_api_op_is_public(name: str) -> None:
    fn = getattr(gc, name)
    assert callable(fn)
    assert inspect.getdoc(fn), f"gc.{name} has no docstring"


def test_registering_twice_is_refused() -> None:
    with pytest.raises(RuntimeError):
        gc.ir.register(REGISTRY["add"])


def test_an_unknown_data_unchanged_kind_is_refused() -> None:
    misspelt = dataclasses.replace(REGISTRY["reshape"], name="reshape_misspelt", data_unchanged="same_shape")
    with pytest.raises(RuntimeError, match="data_unchanged"):
        gc.ir.register(misspelt)
    assert "reshape_misspelt" not in REGISTRY
