"""Elementwise ops: NumPy ufunc semantics, broadcasting and NumPy 2 dtype promotion.

Canonical form: the builder casts every operand to the dtype NumPy's ufunc loop would compute in
(``ufunc.resolve_dtypes``), so an elementwise node's inputs always share one dtype.  ``int32 + float32``
becomes ``add(cast(a, float64), cast(b, float64))``, exactly as NumPy computes it.  Backends therefore
never deal with mixed-dtype arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc import dtypes
from graphc.errors import DTypeError
from graphc.ir.registry import AbstractValue, OpDef, register
from graphc.ir.shapes import broadcast_shapes
from graphc.ir.tensor import Tensor
from graphc.ops._common import cast_to, make_node, promote, python_int_fits, reporting, to_tensors

DTypeRule = Callable[[Sequence[Any]], tuple[list[np.dtype], np.dtype]]
"""``rule(operands) -> (loop dtypes, output dtype)``; an operand is a dtype, or a Python type if weak."""


def ufunc_rule(ufunc: np.ufunc) -> DTypeRule:
    """The dtype rule of a NumPy ufunc (NEP 50 promotion), mapped onto graphc's supported dtypes."""

    def rule(operands: Sequence[Any]) -> tuple[list[np.dtype], np.dtype]:
        try:
            resolved = ufunc.resolve_dtypes((*operands, None))
        except (TypeError, np.exceptions.DTypePromotionError):
            given = ", ".join(getattr(o, "name", getattr(o, "__name__", str(o))) for o in operands)
            raise DTypeError(f"NumPy's {ufunc.__name__} has no loop for ({given})") from None
        loop = [dtypes.supported_result(np.dtype(d)) for d in resolved[: len(operands)]]
        return loop, dtypes.supported_result(np.dtype(resolved[-1]))

    return rule


def same_dtype_rule(bool_result: np.dtype | None = None) -> DTypeRule:
    """Output dtype equals the input dtype; bool inputs give ``bool_result`` (or are refused if None)."""

    def rule(operands: Sequence[Any]) -> tuple[list[np.dtype], np.dtype]:
        (dt,) = [o if isinstance(o, np.dtype) else dtypes.as_dtype(o) for o in operands]
        if dt.kind == "b":
            if bool_result is None:
                raise DTypeError("expected a numeric tensor, got bool")
            return [bool_result], bool_result
        return [dt], dt

    return rule


def infer_elementwise(rule: DTypeRule) -> Callable[..., AbstractValue]:
    def infer(inputs: Sequence[AbstractValue], **_: Any) -> AbstractValue:
        _, out = rule([a.dtype for a in inputs])
        return AbstractValue(out, broadcast_shapes(*[a.shape for a in inputs]))

    return infer


def _register(name: str, arity: int, reference: Callable[..., Any], rule: DTypeRule, doc: str,
              differentiable: bool = True) -> OpDef:
    return register(OpDef(name, "elementwise", infer_elementwise(rule), reference, num_inputs=arity,
                          differentiable=differentiable, grad=_GRADS.get(name), doc=doc,
                          extra={"dtype_rule": rule}))


_COMPARISONS = ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")


def _fits(t: Tensor, dtype: np.dtype) -> bool:
    """Whether ``t`` is not a weak integer constant whose value lies outside integer ``dtype``'s range."""
    return not (t.weak and t.op == "constant") or python_int_fits(t.attrs["value"], dtype)


def apply_elementwise(name: str, *operands: Any) -> Tensor:
    """Build elementwise op ``name`` on operands, casting each to the op's loop dtype first."""
    from graphc.ir.registry import get_op

    def build() -> Tensor:
        tensors = to_tensors(operands)
        rule: DTypeRule = get_op(name).extra["dtype_rule"]
        all_weak = all(t.weak for t in tensors)
        loop, _ = rule([dtypes.promotion_operand(t.dtype, t.weak and not all_weak) for t in tensors])
        if name in _COMPARISONS and not all(_fits(t, dt) for t, dt in zip(tensors, loop)):
            # NumPy 2 compares integers with an out-of-range Python int exactly (uint8 < 300 is true)
            loop = [dtypes.int64] * len(loop)
        return make_node(name, [cast_to(t, dt) for t, dt in zip(tensors, loop)])

    return reporting(name, operands, build)


# ---- reference implementations NumPy lacks ------------------------------------------------------

def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(np.zeros((), x.dtype), x)


_erf_f64 = np.vectorize(math.erf, otypes=[np.float64])


def _erf(x: np.ndarray) -> np.ndarray:
    return _erf_f64(x.astype(np.float64)).astype(x.dtype) if x.size else x.copy()


def _rsqrt(x: np.ndarray) -> np.ndarray:
    return (1 / np.sqrt(x)).astype(x.dtype)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, np.zeros((), x.dtype))


def _round(x: np.ndarray) -> np.ndarray:
    return np.round(x)


# ---- gradient rules: (node, g) -> one gradient per input, written with graph ops ---------------------
# Entries may have the broadcast (output) shape; autodiff sums them back to each input's shape.
# At kinks the subgradient is chosen as TensorFlow does: abs'(0) = 0, relu'(0) = 0, and ties of
# maximum/minimum send the whole gradient to the first argument.

_Grad = Callable[[Tensor, Tensor], list[Any]]


def _unary_grads() -> dict[str, _Grad]:
    g = globals()
    return {
        "neg": lambda n, d: [-d],
        "abs": lambda n, d: [d * g["sign"](n.inputs[0])],
        "exp": lambda n, d: [d * n],
        "expm1": lambda n, d: [d * (n + 1)],
        "log": lambda n, d: [d / n.inputs[0]],
        "log1p": lambda n, d: [d / (n.inputs[0] + 1)],
        "sqrt": lambda n, d: [d / (2 * n)],
        "rsqrt": lambda n, d: [d * (-0.5) * n * n * n],
        "square": lambda n, d: [d * 2 * n.inputs[0]],
        "reciprocal": lambda n, d: [-d * n * n],
        "sin": lambda n, d: [d * g["cos"](n.inputs[0])],
        "cos": lambda n, d: [-d * g["sin"](n.inputs[0])],
        "tanh": lambda n, d: [d * (1 - n * n)],
        "sigmoid": lambda n, d: [d * n * (1 - n)],
        "relu": lambda n, d: [where(n.inputs[0] > 0, d, 0)],
        "softplus": lambda n, d: [d * g["sigmoid"](n.inputs[0])],
        "erf": lambda n, d: [d * (2 / math.sqrt(math.pi)) * g["exp"](-g["square"](n.inputs[0]))],
    }


def _power_grad(n: Tensor, d: Tensor) -> list[Any]:
    x, y = n.inputs
    dx = where(y == 0, 0, y * globals()["power"](x, y - 1))
    dy = where(x == 0, 0, globals()["log"](where(x == 0, 1, x))) * n
    return [d * dx, d * dy]


def _binary_grads() -> dict[str, _Grad]:
    g = globals()
    return {
        "add": lambda n, d: [d, d],
        "subtract": lambda n, d: [d, -d],
        "multiply": lambda n, d: [d * n.inputs[1], d * n.inputs[0]],
        "divide": lambda n, d: [d / n.inputs[1], -d * n / n.inputs[1]],
        "mod": lambda n, d: [d, -d * g["floor_divide"](*n.inputs)],
        "power": _power_grad,
        "maximum": lambda n, d: [where(n.inputs[0] >= n.inputs[1], d, 0), where(n.inputs[0] >= n.inputs[1], 0, d)],
        "minimum": lambda n, d: [where(n.inputs[0] <= n.inputs[1], d, 0), where(n.inputs[0] <= n.inputs[1], 0, d)],
    }


_GRADS: dict[str, _Grad] = {**_unary_grads(), **_binary_grads()}

_FLOAT_RULE = ufunc_rule(np.exp)  # transcendental functions: ints -> float64, bool -> float32

# name: (reference, dtype rule, differentiable, doc)
_UNARY: dict[str, tuple[Callable[..., Any], DTypeRule, bool, str]] = {
    "neg": (np.negative, ufunc_rule(np.negative), True, "-x"),
    "abs": (np.absolute, ufunc_rule(np.absolute), True, "|x|"),
    "sign": (np.sign, ufunc_rule(np.sign), False, "-1, 0 or 1 (nan for nan)"),
    "exp": (np.exp, _FLOAT_RULE, True, "e**x"),
    "expm1": (np.expm1, ufunc_rule(np.expm1), True, "e**x - 1, accurate near 0"),
    "log": (np.log, ufunc_rule(np.log), True, "natural logarithm"),
    "log1p": (np.log1p, ufunc_rule(np.log1p), True, "log(1 + x), accurate near 0"),
    "sqrt": (np.sqrt, ufunc_rule(np.sqrt), True, "square root"),
    "rsqrt": (_rsqrt, _FLOAT_RULE, True, "1 / sqrt(x)"),
    "square": (np.square, ufunc_rule(np.square), True, "x * x"),
    "reciprocal": (np.reciprocal, ufunc_rule(np.reciprocal), True, "1 / x (integer reciprocal for ints, as NumPy)"),
    "sin": (np.sin, ufunc_rule(np.sin), True, "sine"),
    "cos": (np.cos, ufunc_rule(np.cos), True, "cosine"),
    "tanh": (np.tanh, ufunc_rule(np.tanh), True, "hyperbolic tangent"),
    "sigmoid": (_sigmoid, _FLOAT_RULE, True, "1 / (1 + exp(-x)), computed without overflow"),
    "relu": (_relu, same_dtype_rule(), True, "max(x, 0); nan stays nan"),
    "softplus": (_softplus, _FLOAT_RULE, True, "log(1 + exp(x)), computed without overflow"),
    "erf": (_erf, _FLOAT_RULE, True, "the error function"),
    "floor": (np.floor, ufunc_rule(np.floor), False, "round towards -inf"),
    "ceil": (np.ceil, ufunc_rule(np.ceil), False, "round towards +inf"),
    "round": (_round, same_dtype_rule(bool_result=dtypes.float32), False, "round half to even"),
    "isnan": (np.isnan, ufunc_rule(np.isnan), False, "x is nan"),
    "isfinite": (np.isfinite, ufunc_rule(np.isfinite), False, "x is neither inf nor nan"),
    "logical_not": (np.logical_not, ufunc_rule(np.logical_not), False, "not x (nonzero is true)"),
}

_BINARY: dict[str, tuple[Callable[..., Any], DTypeRule, bool, str]] = {
    "add": (np.add, ufunc_rule(np.add), True, "x + y"),
    "subtract": (np.subtract, ufunc_rule(np.subtract), True, "x - y"),
    "multiply": (np.multiply, ufunc_rule(np.multiply), True, "x * y"),
    "divide": (np.true_divide, ufunc_rule(np.true_divide), True, "x / y (true division: ints give float64)"),
    "floor_divide": (np.floor_divide, ufunc_rule(np.floor_divide), False, "x // y, rounding towards -inf"),
    "mod": (np.remainder, ufunc_rule(np.remainder), True, "x % y with the sign of y (Python semantics)"),
    "power": (np.power, ufunc_rule(np.power), True, "x ** y"),
    "maximum": (np.maximum, ufunc_rule(np.maximum), True, "elementwise max; nan wins"),
    "minimum": (np.minimum, ufunc_rule(np.minimum), True, "elementwise min; nan wins"),
    "equal": (np.equal, ufunc_rule(np.equal), False, "x == y"),
    "not_equal": (np.not_equal, ufunc_rule(np.not_equal), False, "x != y"),
    "less": (np.less, ufunc_rule(np.less), False, "x < y"),
    "less_equal": (np.less_equal, ufunc_rule(np.less_equal), False, "x <= y"),
    "greater": (np.greater, ufunc_rule(np.greater), False, "x > y"),
    "greater_equal": (np.greater_equal, ufunc_rule(np.greater_equal), False, "x >= y"),
    "logical_and": (np.logical_and, ufunc_rule(np.logical_and), False, "x and y (nonzero is true)"),
    "logical_or": (np.logical_or, ufunc_rule(np.logical_or), False, "x or y (nonzero is true)"),
}

for _name, (_ref, _rule, _diff, _doc) in _UNARY.items():
    _register(_name, 1, _ref, _rule, _doc, _diff)
for _name, (_ref, _rule, _diff, _doc) in _BINARY.items():
    _register(_name, 2, _ref, _rule, _doc, _diff)


def _make_public(name: str, arity: int, doc: str) -> Callable[..., Tensor]:
    if arity == 1:
        def fn(x: Any) -> Tensor:
            return apply_elementwise(name, x)
    else:
        def fn(x: Any, y: Any) -> Tensor:  # type: ignore[misc]
            return apply_elementwise(name, x, y)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Elementwise {doc}, with NumPy broadcasting and dtype promotion."
    return fn


for _name, (_, _, _, _doc) in _UNARY.items():
    globals()[_name] = _make_public(_name, 1, _doc)
for _name, (_, _, _, _doc) in _BINARY.items():
    globals()[_name] = _make_public(_name, 2, _doc)


# ---- where, cast, stop_gradient ---------------------------------------------------------------

def _infer_where(inputs: Sequence[AbstractValue]) -> AbstractValue:
    cond, a, b = inputs
    if cond.dtype.kind != "b":
        raise DTypeError(f"where's condition must be bool, got {cond.dtype.name}")
    if a.dtype != b.dtype:
        raise DTypeError(f"where's branches must share a dtype, got {a.dtype.name} and {b.dtype.name}")
    return AbstractValue(a.dtype, broadcast_shapes(cond.shape, a.shape, b.shape))


def _where_grad(n: Tensor, d: Tensor) -> list[Any]:
    cond = n.inputs[0]
    return [None, where(cond, d, 0), where(cond, 0, d)]


register(OpDef("where", "elementwise", _infer_where, np.where, num_inputs=3, grad=_where_grad,
               doc="x where condition else y"))


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """``x`` where ``condition`` is true, else ``y`` (NumPy's ``where``; nonzero conditions are true)."""

    def build() -> Tensor:
        cond, a, b = to_tensors([condition, x, y])
        (a, b), _ = promote([a, b])
        return make_node("where", [cast_to(cond, dtypes.bool_), a, b])

    return reporting("where", [condition, x, y], build)


def _infer_cast(inputs: Sequence[AbstractValue], *, dtype: np.dtype) -> AbstractValue:
    return AbstractValue(dtype, inputs[0].shape)


def _cast_reference(x: np.ndarray, *, dtype: np.dtype) -> np.ndarray:
    return x.astype(dtype)


def _cast_grad(n: Tensor, d: Tensor) -> list[Any]:
    source = n.inputs[0].dtype
    return [cast(d, source) if source.kind == "f" and n.dtype.kind == "f" else None]


register(OpDef("cast", "elementwise", _infer_cast, _cast_reference, num_inputs=1, grad=_cast_grad,
               doc="convert to another dtype (NumPy astype: floats truncate towards 0 into ints)"))


def cast(x: Any, dtype: Any) -> Tensor:
    """``x`` converted to ``dtype`` with NumPy ``astype`` semantics."""

    def build() -> Tensor:
        (t,) = to_tensors([x])
        target = dtypes.as_dtype(dtype)
        return t if t.dtype == target and not t.weak else make_node("cast", [t], dtype=target)

    return reporting("cast", [x], build)


def _infer_identity(inputs: Sequence[AbstractValue]) -> AbstractValue:
    return inputs[0]


register(OpDef("stop_gradient", "elementwise", _infer_identity, lambda x: x, num_inputs=1, differentiable=False,
               doc="identity whose gradient is zero"))


def stop_gradient(x: Any) -> Tensor:
    """``x`` unchanged, but gradients do not flow through it."""
    return reporting("stop_gradient", [x], lambda: make_node("stop_gradient", to_tensors([x])))


__all__ = [*_UNARY, *_BINARY, "cast", "stop_gradient", "where"]
