"""The stabilize phase: expressions written naively from primitives become their numerically
stable forms, for values and (because ``gc.grad`` stabilizes before differentiating) for the
gradients taken of them.

Each rewrite keeps the mathematical value and removes an overflow, an underflow or a
cancellation: log(1+1e-10) in float32 is 1e-10 (not 0), log(sigmoid(-300)) is -300 (not -inf) and
its gradient is 1 (not nan).
"""

from __future__ import annotations

from graphc.ir.tensor import Tensor
from graphc.ops import elementwise as ew
from graphc.ops._common import make_node
from graphc.passes.engine import Rewrite, made_by, producer
from graphc.passes.patterns import broadcasts_into, is_constant

PHASE = "stabilize"


def _one_plus(t: Tensor) -> Tensor | None:
    """``x`` if ``t`` is ``1 + x`` or ``x + 1`` (with the 1 not widening x's shape)."""
    node = producer(t, "add")
    if node is None:
        return None
    a, b = node.inputs
    for x, c in ((a, b), (b, a)):
        if is_constant(c, 1) and broadcasts_into(c, x) and x.shape == node.shape:
            return x
    return None


def _one_minus(t: Tensor) -> Tensor | None:
    """``x`` if ``t`` is ``1 - x``."""
    node = producer(t, "subtract")
    if node is None:
        return None
    c, x = node.inputs
    return x if is_constant(c, 1) and broadcasts_into(c, x) and x.shape == node.shape else None


def _softplus_of(t: Tensor) -> Tensor:
    return make_node("softplus", [t])


def _log(node: Tensor) -> Tensor | None:
    """log(1+exp(x)) -> softplus(x); log(1+x) -> log1p(x); log(1-sigmoid(x)) -> -softplus(x);
    log(1-x) -> log1p(-x); log(sigmoid(x)) -> -softplus(-x); log(softmax(x)) -> log_softmax(x);
    log(sum(exp(x))) -> logsumexp(x)."""
    (arg,) = node.inputs
    x = _one_plus(arg)
    if x is not None:
        e = producer(x, "exp")
        return _softplus_of(e.inputs[0]) if e is not None else ew.log1p(x)
    x = _one_minus(arg)
    if x is not None:
        s = producer(x, "sigmoid")
        return ew.neg(_softplus_of(s.inputs[0])) if s is not None else ew.log1p(ew.neg(x))
    if made_by(arg, "sigmoid"):
        return ew.neg(_softplus_of(ew.neg(arg.inputs[0])))
    if made_by(arg, "softmax"):
        return make_node("log_softmax", [arg.inputs[0]], axes=arg.attrs["axes"])
    total = producer(arg, "sum")
    if total is not None and made_by(total.inputs[0], "exp"):
        return make_node("logsumexp", [total.inputs[0].inputs[0]], **total.attrs)
    return None


def _log1p(node: Tensor) -> Tensor | None:
    """log1p(exp(x)) -> softplus(x); log1p(-sigmoid(x)) -> -softplus(x)."""
    (arg,) = node.inputs
    if made_by(arg, "exp"):
        return _softplus_of(arg.inputs[0])
    n = producer(arg, "neg")
    if n is not None and made_by(n.inputs[0], "sigmoid"):
        return ew.neg(_softplus_of(n.inputs[0].inputs[0]))
    return None


def _subtract(node: Tensor) -> Tensor | None:
    """exp(x) - 1 -> expm1(x); 1 - sigmoid(x) -> sigmoid(-x); x - logsumexp(x) -> log_softmax(x)."""
    a, b = node.inputs
    if made_by(a, "exp") and is_constant(b, 1) and broadcasts_into(b, a) and a.shape == node.shape:
        return ew.expm1(a.inputs[0])
    x = _one_minus(node)
    if x is not None and made_by(x, "sigmoid"):
        return ew.sigmoid(ew.neg(x.inputs[0]))
    lse = _kept_reduction(b, "logsumexp")
    if lse is not None and lse.inputs[0] is a and a.shape == node.shape:
        return make_node("log_softmax", [a], axes=lse.attrs["axes"])
    return None


def _kept_reduction(t: Tensor, op: str) -> Tensor | None:
    """The ``op`` reduction behind ``t`` if ``t`` keeps the reduced axes (keepdims, or expand_dims of them)."""
    node = producer(t, op)
    if node is not None:
        return node if node.attrs["keepdims"] else None
    expanded = producer(t, "reshape_dims")
    if expanded is not None and expanded.attrs["kind"] == "expand_dims":
        inner = producer(expanded.inputs[0], op)
        if inner is not None and not inner.attrs["keepdims"] and inner.attrs["axes"] == expanded.attrs["axis"]:
            return inner
    return None


def _divide(node: Tensor) -> Tensor | None:
    """exp(x) / sum(exp(x), keepdims) -> softmax(x)."""
    a, b = node.inputs
    total = _kept_reduction(b, "sum")
    if made_by(a, "exp") and total is not None and total.inputs[0] is a and a.shape == node.shape:
        return make_node("softmax", [a.inputs[0]], axes=total.attrs["axes"])
    return None


def _cross_entropy(total: Tensor) -> Tensor | None:
    """sum(labels * log_softmax(x), classes) -> -softmax_cross_entropy(x, labels), with labels a
    one-hot encoding or a dense distribution; sum(-(labels * log_softmax(x))) -> the same without
    the minus sign.  (The user's minus sign then cancels with this one.)  The op's gradient is
    softmax * sum(labels) - labels.  The labels stay dense, even when they are a one_hot: the
    sparse op refuses labels outside [0, classes), where one_hot gives a row of zeros and the
    hand-written loss 0."""
    negated = producer(total.inputs[0], "neg")
    product = producer(negated.inputs[0] if negated is not None else total.inputs[0], "multiply")
    if product is None:
        return None
    for labels, logp in (product.inputs, product.inputs[::-1]):
        ls = producer(logp, "log_softmax")
        last = (logp.ndim - 1,)
        if ls is None or ls.attrs["axes"] != last or total.attrs["axes"] != last:
            continue
        logits = ls.inputs[0]
        if labels.dtype != logits.dtype or labels.ndim != logits.ndim:
            continue  # (labels that broadcast are fine: the dense op broadcasts them the same way)
        loss = make_node("softmax_cross_entropy", [logits, labels], sparse=False)
        loss = make_node("reshape_dims", [loss], kind="expand_dims", axis=last) if total.attrs["keepdims"] else loss
        return loss if negated is not None else ew.neg(loss)
    return None


REWRITES: list[Rewrite] = [
    Rewrite("stable_log", PHASE, ("log",), _log,
            "log(1+x) -> log1p(x); log(1-x) -> log1p(-x); log(1+exp(x)) -> softplus(x); "
            "log(sigmoid(x)) -> -softplus(-x); log(1-sigmoid(x)) -> -softplus(x); "
            "log(softmax(x)) -> log_softmax(x); log(sum(exp(x))) -> logsumexp(x)"),
    Rewrite("stable_log1p", PHASE, ("log1p",), _log1p,
            "log1p(exp(x)) -> softplus(x); log1p(-sigmoid(x)) -> -softplus(x)"),
    Rewrite("stable_subtract", PHASE, ("subtract",), _subtract,
            "exp(x)-1 -> expm1(x); 1-sigmoid(x) -> sigmoid(-x); x - logsumexp(x) -> log_softmax(x)"),
    Rewrite("softmax", PHASE, ("divide",), _divide, "exp(x) / sum(exp(x)) -> softmax(x)"),
    Rewrite("softmax_cross_entropy", PHASE, ("sum",), _cross_entropy,
            "-sum(labels * log_softmax(x)) -> softmax_cross_entropy(x, labels) (one-hot or dense labels)"),
]

__all__ = ["PHASE", "REWRITES"]
