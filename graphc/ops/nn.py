"""Neural-network ops: softmax family, cross-entropies, conv2d and pooling (NCHW / OIHW).

All are computed stably: softmax and log_softmax subtract the row maximum, cross-entropies use
log_softmax / softplus forms, so logits of +-1000 neither overflow nor produce nan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc import dtypes
from graphc.errors import ArgumentError, DTypeError, ExecutionError, ShapeError
from graphc.ir.registry import AbstractValue, OpDef, register
from graphc.ir.shapes import Dim, dims_equal, format_shape, normalize_axes
from graphc.ir.tensor import Tensor
from graphc.ops._common import cast_to, float_dtype_for, make_node, promote, reporting, to_tensors
from graphc.ops.elementwise import DTypeRule, _infer_elementwise

# ---- softmax / log_softmax ----------------------------------------------------------------------


def _log_softmax(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    m = np.max(x, axis=axes, keepdims=True) if x.size else np.zeros((), x.dtype)
    m = np.where(np.isfinite(m), m, np.zeros((), x.dtype))
    shifted = x - m
    return shifted - np.log(np.sum(np.exp(shifted), axis=axes, keepdims=True))


def _softmax_reference(x: np.ndarray, *, axes: tuple[int, ...]) -> np.ndarray:
    m = np.max(x, axis=axes, keepdims=True) if x.size else np.zeros((), x.dtype)
    e = np.exp(x - np.where(np.isfinite(m), m, np.zeros((), x.dtype)))
    return e / np.sum(e, axis=axes, keepdims=True)


def _log_softmax_reference(x: np.ndarray, *, axes: tuple[int, ...]) -> np.ndarray:
    return _log_softmax(x, axes)


def _infer_softmax(inputs: Sequence[AbstractValue], *, axes: tuple[int, ...]) -> AbstractValue:
    (x,) = inputs
    if x.dtype.kind != "f":
        raise DTypeError(f"expected a floating-point tensor, got {x.dtype.name}")
    return AbstractValue(x.dtype, x.shape)


def _softmax_grad(node: Tensor, g: Tensor) -> list[Any]:
    from graphc.ops.reduce import sum as reduce_sum

    return [(g - reduce_sum(g * node, axis=node.attrs["axes"], keepdims=True)) * node]


def _log_softmax_grad(node: Tensor, g: Tensor) -> list[Any]:
    from graphc.ops.reduce import sum as reduce_sum

    probabilities = make_node("softmax", [node.inputs[0]], axes=node.attrs["axes"])
    return [g - probabilities * reduce_sum(g, axis=node.attrs["axes"], keepdims=True)]


register(OpDef("softmax", "nn", _infer_softmax, _softmax_reference, num_inputs=1, grad=_softmax_grad,
               doc="exp(x) / sum(exp(x)) over axes, computed stably"))
register(OpDef("log_softmax", "nn", _infer_softmax, _log_softmax_reference, num_inputs=1, grad=_log_softmax_grad,
               doc="x - logsumexp(x) over axes, computed stably"))


def _softmax_like(name: str, x: Any, axis: Any) -> Tensor:
    def build() -> Tensor:
        (t,) = to_tensors([x])
        t = cast_to(t, float_dtype_for(t.dtype))
        if t.ndim == 0:
            raise ShapeError(f"{name} needs at least one axis, got a scalar")
        return make_node(name, [t], axes=normalize_axes(axis, t.ndim))

    return reporting(name, [x], build)


def softmax(x: Any, axis: Any = -1) -> Tensor:
    """``exp(x) / sum(exp(x), axis)``, stable for large logits."""
    return _softmax_like("softmax", x, axis)


def log_softmax(x: Any, axis: Any = -1) -> Tensor:
    """``x - logsumexp(x, axis)``, stable for large logits."""
    return _softmax_like("log_softmax", x, axis)


# ---- cross-entropies ----------------------------------------------------------------------------

def _infer_softmax_xent(inputs: Sequence[AbstractValue], *, sparse: bool) -> AbstractValue:
    logits, labels = inputs
    if logits.dtype.kind != "f":
        raise DTypeError(f"logits must be floating point, got {logits.dtype.name}")
    if not logits.shape:
        raise ShapeError("logits need a class axis (the last one), got a scalar")
    batch = logits.shape[:-1]
    if sparse:
        if labels.dtype.kind not in "iu":
            raise DTypeError(f"integer class labels expected, got {labels.dtype.name}")
        if len(labels.shape) != len(batch) or not all(dims_equal(a, b) for a, b in zip(labels.shape, batch)):
            hint = ("; integer labels are class ids, one per example (for one-hot or probability labels, "
                    "cast them to float)") if len(labels.shape) == len(logits.shape) else ""
            raise ShapeError(f"labels of shape {format_shape(labels.shape)} do not match logits "
                             f"{format_shape(logits.shape)}: expected {format_shape(batch)}{hint}")
    elif len(labels.shape) != len(logits.shape) or not all(
            dims_equal(a, b) for a, b in zip(labels.shape, logits.shape)):
        raise ShapeError(f"probability labels of shape {format_shape(labels.shape)} must match "
                         f"logits {format_shape(logits.shape)}")
    return AbstractValue(logits.dtype, tuple(d if d is not None else e for d, e in zip(batch, labels.shape)))


def _softmax_xent_reference(logits: np.ndarray, labels: np.ndarray, *, sparse: bool) -> np.ndarray:
    logp = _log_softmax(logits, (logits.ndim - 1,))
    if not sparse:
        return -np.sum(labels * logp, axis=-1)
    classes = logits.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        bad = labels[(labels < 0) | (labels >= classes)].flat[0]
        raise ExecutionError(f"class label {bad} is out of range for {classes} classes")
    return -np.take_along_axis(logp, labels[..., None].astype(np.intp), axis=-1)[..., 0]


def _softmax_xent_grad(node: Tensor, g: Tensor) -> list[Any]:
    from graphc.ops.reduce import sum as reduce_sum
    from graphc.ops.shape import expand_dims, one_hot

    logits, labels = node.inputs
    last = logits.ndim - 1
    probabilities = make_node("softmax", [logits], axes=(last,))
    per_example = expand_dims(g, -1)
    if node.attrs["sparse"]:
        classes = logits.shape[-1]
        if classes is None:
            raise ShapeError("the gradient of softmax_cross_entropy with integer labels needs the number of "
                             "classes (the logits' last dimension) to be known")
        return [per_example * (probabilities - one_hot(labels, classes, dtype=logits.dtype)), None]
    total = reduce_sum(labels, axis=-1, keepdims=True)  # 1 for proper distributions
    log_p = make_node("log_softmax", [logits], axes=(last,))
    return [per_example * (probabilities * total - labels), -per_example * log_p]


register(OpDef("softmax_cross_entropy", "nn", _infer_softmax_xent, _softmax_xent_reference, num_inputs=2,
               grad=_softmax_xent_grad,
               doc="-log softmax(logits)[label] per example (or -sum(p * log_softmax) for dense labels)"))


def softmax_cross_entropy(logits: Any, labels: Any) -> Tensor:
    """Per-example cross-entropy of ``softmax(logits)`` (classes on the last axis) against ``labels``.

    ``labels`` are integer class ids of shape ``logits.shape[:-1]`` (out-of-range ids raise an
    ``ExecutionError`` at run time), or class probabilities of ``logits``' shape.
    """

    def build() -> Tensor:
        lg, lb = to_tensors([logits, labels])
        lg = cast_to(lg, float_dtype_for(lg.dtype))
        sparse = lb.dtype.kind in "iu"
        if not sparse:
            if lb.dtype.kind == "b":
                raise DTypeError("labels must be integer class ids or float probabilities, got bool")
            lb = cast_to(lb, lg.dtype)
        return make_node("softmax_cross_entropy", [lg, lb], sparse=sparse)

    return reporting("softmax_cross_entropy", [logits, labels], build)


def _sigmoid_xent_reference(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    # max(x, 0) - x z + log(1 + exp(-|x|)): exact rearrangement of -z log s(x) - (1-z) log(1-s(x))
    return np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))


def _sigmoid_xent_rule(operands: Sequence[Any]) -> tuple[list[np.dtype], np.dtype]:
    dts = [o if isinstance(o, np.dtype) else dtypes.float64 for o in operands]
    out = float_dtype_for(dtypes.result_type(*[(d, False) for d in dts]))
    return [out, out], out


_SIGMOID_XENT_RULE: DTypeRule = _sigmoid_xent_rule
def _sigmoid_xent_grad(node: Tensor, g: Tensor) -> list[Any]:
    from graphc.ops.elementwise import sigmoid

    logits, labels = node.inputs
    return [g * (sigmoid(logits) - labels), -g * logits]


register(OpDef("sigmoid_cross_entropy", "elementwise", _infer_elementwise(_SIGMOID_XENT_RULE),
               _sigmoid_xent_reference, num_inputs=2, extra={"dtype_rule": _SIGMOID_XENT_RULE},
               grad=_sigmoid_xent_grad,
               doc="elementwise binary cross-entropy of sigmoid(logits) against targets in [0, 1]"))


def sigmoid_cross_entropy(logits: Any, labels: Any) -> Tensor:
    """Elementwise ``-z log(sigmoid(x)) - (1 - z) log(1 - sigmoid(x))``, computed stably."""

    def build() -> Tensor:
        (lg, lb), _ = promote(to_tensors([logits, labels]))
        dt = float_dtype_for(lg.dtype)
        return make_node("sigmoid_cross_entropy", [cast_to(lg, dt), cast_to(lb, dt)])

    return reporting("sigmoid_cross_entropy", [logits, labels], build)


# ---- windows: conv2d and pooling ----------------------------------------------------------------

Padding = tuple[tuple[int, int], tuple[int, int]]


def _pair(value: Any, what: str) -> tuple[int, int]:
    seq = value if isinstance(value, (tuple, list)) else (value, value)
    if len(seq) != 2 or any(isinstance(v, bool) or not hasattr(v, "__index__") for v in seq):
        raise ArgumentError(f"{what} must be an int or a pair of ints, got {value!r}")
    a, b = (int(v) for v in seq)
    if a <= 0 or b <= 0:
        raise ArgumentError(f"{what} must be positive, got {value!r}")
    return a, b


def normalize_padding(padding: Any) -> str | Padding:
    """"VALID", "SAME", an int, or ((top, bottom), (left, right))."""
    if isinstance(padding, str):
        if padding.upper() not in ("VALID", "SAME"):
            raise ArgumentError(f"padding must be 'VALID', 'SAME', an int or ((top, bottom), (left, right)); "
                                f"got {padding!r}")
        return padding.upper()
    if isinstance(padding, int) and not isinstance(padding, bool):
        if padding < 0:
            raise ArgumentError(f"padding must be non-negative, got {padding}")
        return ((padding, padding), (padding, padding))
    try:
        (t, b), (l, r) = padding
        pads = tuple(tuple(int(v) for v in p) for p in ((t, b), (l, r)))
    except (TypeError, ValueError):
        raise ArgumentError(f"padding must be 'VALID', 'SAME', an int or ((top, bottom), (left, right)); "
                            f"got {padding!r}") from None
    if any(v < 0 for p in pads for v in p):
        raise ArgumentError(f"padding must be non-negative, got {padding!r}")
    return pads  # type: ignore[return-value]


def window_geometry(size: Dim, k: int, stride: int, padding: str | tuple[int, int]) -> tuple[Dim, tuple[int, int]]:
    """Output size and (before, after) padding of one spatial axis; ``None`` if the size is unknown."""
    if size is None:
        return None, (0, 0)
    if padding == "VALID":
        pads = (0, 0)
    elif padding == "SAME":
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        pads = (total // 2, total - total // 2)
    else:
        pads = padding  # type: ignore[assignment]
    span = size + pads[0] + pads[1]
    if span < k:
        raise ShapeError(f"window of size {k} does not fit an input of size {size} padded by {pads}")
    return (span - k) // stride + 1, pads


def _spatial(shape: Sequence[Dim], ksize: tuple[int, int], strides: tuple[int, int],
             padding: str | Padding) -> tuple[list[Dim], Padding]:
    outs, pads = [], []
    for i in range(2):
        axis_pad = padding if isinstance(padding, str) else padding[i]
        out, p = window_geometry(shape[2 + i], ksize[i], strides[i], axis_pad)
        outs.append(out)
        pads.append(p)
    return outs, (pads[0], pads[1])


def _windows(x: np.ndarray, ksize: tuple[int, int], strides: tuple[int, int], pads: Padding,
             fill: Any) -> np.ndarray:
    """(N, C, OH, OW, KH, KW) view of the padded input's windows."""
    padded = np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]), constant_values=fill)
    view = np.lib.stride_tricks.sliding_window_view(padded, ksize, axis=(2, 3))
    return view[:, :, :: strides[0], :: strides[1]]


def _infer_conv2d(inputs: Sequence[AbstractValue], *, strides: tuple[int, int], padding: str | Padding
                  ) -> AbstractValue:
    x, w = inputs
    if len(x.shape) != 4 or len(w.shape) != 4:
        raise ShapeError(f"conv2d expects a 4-D input (N, C, H, W) and 4-D weights (O, C, KH, KW), "
                         f"got {format_shape(x.shape)} and {format_shape(w.shape)}")
    if not dims_equal(x.shape[1], w.shape[1]):
        raise ShapeError(f"conv2d: input has {x.shape[1]} channels, weights expect {w.shape[1]}")
    if w.shape[2] is None or w.shape[3] is None:
        raise ShapeError("conv2d needs the kernel's spatial size to be known")
    (oh, ow), _ = _spatial(x.shape, (w.shape[2], w.shape[3]), strides, padding)
    return AbstractValue(x.dtype, (x.shape[0], w.shape[0], oh, ow))


def _conv2d_reference(x: np.ndarray, w: np.ndarray, *, strides: tuple[int, int], padding: str | Padding
                      ) -> np.ndarray:
    _, pads = _spatial(x.shape, (w.shape[2], w.shape[3]), strides, padding)
    win = _windows(x, (w.shape[2], w.shape[3]), strides, pads, 0)
    return np.einsum("nchwij,ocij->nohw", win, w, optimize=True).astype(x.dtype)


register(OpDef("conv2d", "nn", _infer_conv2d, _conv2d_reference, num_inputs=2,
               doc="2-D cross-correlation, NCHW input, OIHW weights"))


def conv2d(x: Any, w: Any, strides: Any = 1, padding: Any = "VALID") -> Tensor:
    """2-D convolution (cross-correlation, as in TensorFlow and PyTorch) of NCHW ``x`` with OIHW ``w``.

    ``padding``: "VALID", "SAME" (output size ceil(in / stride), extra padding at the end), an int,
    or ((top, bottom), (left, right)).
    """

    def build() -> Tensor:
        (xt, wt), _ = promote(to_tensors([x, w]))
        if xt.dtype.kind == "b":
            raise DTypeError("conv2d expects numeric tensors, got bool")
        return make_node("conv2d", [xt, wt], strides=_pair(strides, "strides"), padding=normalize_padding(padding))

    return reporting("conv2d", [x, w], build)


def _infer_pool(inputs: Sequence[AbstractValue], *, ksize: tuple[int, int], strides: tuple[int, int],
                padding: str | Padding) -> AbstractValue:
    (x,) = inputs
    if len(x.shape) != 4:
        raise ShapeError(f"pooling expects a 4-D input (N, C, H, W), got {format_shape(x.shape)}")
    (oh, ow), pads = _spatial(x.shape, ksize, strides, padding)
    for axis, (k, (lo, hi)) in enumerate(zip(ksize, pads)):
        if lo >= k or hi >= k:
            raise ShapeError(f"padding {(lo, hi)} on spatial axis {axis} must be smaller than the window {k}")
    return AbstractValue(x.dtype, (x.shape[0], x.shape[1], oh, ow))


def _lowest(dtype: np.dtype) -> Any:
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind == "b":
        return False
    return np.iinfo(dtype).min


def _max_pool_reference(x: np.ndarray, *, ksize: tuple[int, int], strides: tuple[int, int],
                        padding: str | Padding) -> np.ndarray:
    _, pads = _spatial(x.shape, ksize, strides, padding)
    return _windows(x, ksize, strides, pads, _lowest(x.dtype)).max(axis=(-2, -1))


def _avg_pool_reference(x: np.ndarray, *, ksize: tuple[int, int], strides: tuple[int, int],
                        padding: str | Padding) -> np.ndarray:
    _, pads = _spatial(x.shape, ksize, strides, padding)
    total = _windows(x, ksize, strides, pads, 0).sum(axis=(-2, -1))
    ones = np.ones((1, 1, *x.shape[2:]), x.dtype)
    count = _windows(ones, ksize, strides, pads, 0).sum(axis=(-2, -1))
    return (total / count).astype(x.dtype)


register(OpDef("max_pool2d", "nn", _infer_pool, _max_pool_reference, num_inputs=1,
               doc="maximum over each window; padding never wins"))
register(OpDef("avg_pool2d", "nn", _infer_pool, _avg_pool_reference, num_inputs=1,
               doc="mean over each window's real (unpadded) elements"))


def _pool(name: str, x: Any, ksize: Any, strides: Any, padding: Any) -> Tensor:
    def build() -> Tensor:
        (t,) = to_tensors([x])
        if name == "avg_pool2d" and t.dtype.kind != "f":
            t = cast_to(t, dtypes.float64)  # a mean: ints and bools average in float64, as np.mean
        k = _pair(ksize, "ksize")
        s = k if strides is None else _pair(strides, "strides")
        return make_node(name, [t], ksize=k, strides=s, padding=normalize_padding(padding))

    return reporting(name, [x], build)


def max_pool2d(x: Any, ksize: Any, strides: Any = None, padding: Any = "VALID") -> Tensor:
    """Max pooling of NCHW ``x``; ``strides`` default to ``ksize``."""
    return _pool("max_pool2d", x, ksize, strides, padding)


def avg_pool2d(x: Any, ksize: Any, strides: Any = None, padding: Any = "VALID") -> Tensor:
    """Average pooling of NCHW ``x``, averaging only real elements (padding is not counted)."""
    return _pool("avg_pool2d", x, ksize, strides, padding)



__all__ = ["avg_pool2d", "conv2d", "log_softmax", "max_pool2d", "sigmoid_cross_entropy", "softmax",
           "softmax_cross_entropy"]
