"""Convolution and pooling (NCHW activations, OIHW weights), with their gradient (adjoint) ops.

Padding is "VALID", "SAME" (TensorFlow's: output size ceil(in / stride), any odd padding at the
end), an int, or ((top, bottom), (left, right)).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc import dtypes
from graphc.errors import ArgumentError, DTypeError, ShapeError
from graphc.ir.registry import AbstractValue, OpDef, register
from graphc.ir.shapes import Dim, dims_equal, format_shape
from graphc.ir.tensor import Tensor
from graphc.ops._common import cast_to, make_node, promote, reporting, to_tensors

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


def spatial(shape: Sequence[Dim], ksize: tuple[int, int], strides: tuple[int, int],
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
    (oh, ow), _ = spatial(x.shape, (w.shape[2], w.shape[3]), strides, padding)
    return AbstractValue(x.dtype, (x.shape[0], w.shape[0], oh, ow))


def _conv2d_reference(x: np.ndarray, w: np.ndarray, *, strides: tuple[int, int], padding: str | Padding
                      ) -> np.ndarray:
    _, pads = spatial(x.shape, (w.shape[2], w.shape[3]), strides, padding)
    win = _windows(x, (w.shape[2], w.shape[3]), strides, pads, 0)
    return np.einsum("nchwij,ocij->nohw", win, w, optimize=True).astype(x.dtype)


def _conv2d_grad(node: Tensor, g: Tensor) -> list[Any]:
    x, w = node.inputs
    return [_conv2d_grad_input(g, w, x, node.attrs), _conv2d_grad_weight(x, g, w, node.attrs)]


register(OpDef("conv2d", "nn", _infer_conv2d, _conv2d_reference, num_inputs=2, grad=_conv2d_grad,
               doc="2-D cross-correlation, NCHW input, OIHW weights", epilogue_kind="conv2d_epilogue", uses_gemm=True))


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
    (oh, ow), pads = spatial(x.shape, ksize, strides, padding)
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
    _, pads = spatial(x.shape, ksize, strides, padding)
    return _windows(x, ksize, strides, pads, _lowest(x.dtype)).max(axis=(-2, -1))


def _avg_pool_reference(x: np.ndarray, *, ksize: tuple[int, int], strides: tuple[int, int],
                        padding: str | Padding) -> np.ndarray:
    _, pads = spatial(x.shape, ksize, strides, padding)
    total = _windows(x, ksize, strides, pads, 0).sum(axis=(-2, -1))
    ones = np.ones((1, 1, *x.shape[2:]), x.dtype)
    count = _windows(ones, ksize, strides, pads, 0).sum(axis=(-2, -1))
    return (total / count).astype(x.dtype)


def _max_pool_grad(node: Tensor, g: Tensor) -> list[Any]:
    return [make_node("max_pool2d_grad", [g, node.inputs[0]], **node.attrs)]


def _avg_pool_grad(node: Tensor, g: Tensor) -> list[Any]:
    return [make_node("avg_pool2d_grad", [g, node.inputs[0]], **node.attrs)]


register(OpDef("max_pool2d", "nn", _infer_pool, _max_pool_reference, num_inputs=1, grad=_max_pool_grad,
               doc="maximum over each window; padding never wins"))
register(OpDef("avg_pool2d", "nn", _infer_pool, _avg_pool_reference, num_inputs=1, grad=_avg_pool_grad,
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



# ---- adjoint ops: gradients of conv2d and pooling -----------------------------------------------
#
# conv2d and its two adjoints are the three partial derivatives of the trilinear form
# T(x, w, g) = <g, conv2d(x, w)>: conv2d(x, w) = dT/dg, conv2d_grad_input(g, w) = dT/dx and
# conv2d_grad_weight(x, g) = dT/dw.  So each one's gradient is built from the other two.
# max_pool2d_grad (scatter g to each window's argmax) and max_pool2d_select (gather at the argmax)
# are each other's adjoints; avg_pool2d and avg_pool2d_grad are too.

def _scatter_windows(contrib: np.ndarray, shape: Sequence[int], strides: tuple[int, int], pads: Padding
                     ) -> np.ndarray:
    """Adjoint of ``_windows``: add (N, C, OH, OW, KH, KW) window values back to an (N, C, H, W) input."""
    n, c, oh, ow, kh, kw = contrib.shape
    (top, bottom), (left, right) = pads
    padded = np.zeros((n, c, shape[2] + top + bottom, shape[3] + left + right), contrib.dtype)
    sh, sw = strides
    for a in range(kh):
        for b in range(kw):
            padded[:, :, a: a + sh * (oh - 1) + 1: sh, b: b + sw * (ow - 1) + 1: sw] += contrib[..., a, b]
    return padded[:, :, top: top + shape[2], left: left + shape[3]]


def _merge(*dims: Dim) -> Dim:
    return next((d for d in dims if d is not None), None)


def _check_4d(what: str, avals: Sequence[AbstractValue], names: Sequence[str]) -> None:
    for name, aval in zip(names, avals):
        if len(aval.shape) != 4:
            raise ShapeError(f"{what}: {name} must be 4-D, got {format_shape(aval.shape)}")


def _check_same_dtype(what: str, a: AbstractValue, b: AbstractValue) -> None:
    if a.dtype != b.dtype:
        raise DTypeError(f"{what}: operands must have the same dtype, got {a.dtype.name} and {b.dtype.name}")


def _check_dims(what: str, name: str, got: Sequence[Dim], want: Sequence[Dim]) -> None:
    if not all(dims_equal(a, b) for a, b in zip(got, want)):
        raise ShapeError(f"{what}: {name} has dims {format_shape(tuple(got))}, expected {format_shape(tuple(want))}")


def _infer_conv2d_grad_input(inputs: Sequence[AbstractValue], *, strides: tuple[int, int],
                             padding: str | Padding) -> AbstractValue:
    g, w, like = inputs
    what = "conv2d_grad_input"
    _check_4d(what, inputs, ("g", "w", "x_like"))
    _check_same_dtype(what, g, w)
    if w.shape[2] is None or w.shape[3] is None:
        raise ShapeError(f"{what} needs the kernel's spatial size to be known")
    out = _infer_conv2d([like, w], strides=strides, padding=padding).shape
    _check_dims(what, "g", g.shape, out)
    return AbstractValue(g.dtype, (_merge(like.shape[0], g.shape[0]), _merge(like.shape[1], w.shape[1]),
                                   like.shape[2], like.shape[3]))


def _conv2d_grad_input_reference(g: np.ndarray, w: np.ndarray, like: np.ndarray, *, strides: tuple[int, int],
                                 padding: str | Padding) -> np.ndarray:
    _, pads = spatial(like.shape, (w.shape[2], w.shape[3]), strides, padding)
    contrib = np.einsum("nohw,ocij->nchwij", g, w, optimize=True)
    return _scatter_windows(contrib, like.shape, strides, pads).astype(g.dtype)


def _infer_conv2d_grad_weight(inputs: Sequence[AbstractValue], *, strides: tuple[int, int],
                              padding: str | Padding) -> AbstractValue:
    x, g, like = inputs
    what = "conv2d_grad_weight"
    _check_4d(what, inputs, ("x", "g", "w_like"))
    _check_same_dtype(what, x, g)
    if like.shape[2] is None or like.shape[3] is None:
        raise ShapeError(f"{what} needs the kernel's spatial size to be known")
    out = _infer_conv2d([x, like], strides=strides, padding=padding).shape
    _check_dims(what, "g", g.shape, out)
    return AbstractValue(g.dtype, (_merge(like.shape[0], g.shape[1]), _merge(like.shape[1], x.shape[1]),
                                   like.shape[2], like.shape[3]))


def _conv2d_grad_weight_reference(x: np.ndarray, g: np.ndarray, like: np.ndarray, *, strides: tuple[int, int],
                                  padding: str | Padding) -> np.ndarray:
    ksize = (like.shape[2], like.shape[3])
    _, pads = spatial(x.shape, ksize, strides, padding)
    win = _windows(x, ksize, strides, pads, 0)
    return np.einsum("nchwij,nohw->ocij", win, g, optimize=True).astype(g.dtype)


def _conv2d_grad_input(g: Tensor, w: Tensor, x_like: Tensor, attrs: dict[str, Any]) -> Tensor:
    return make_node("conv2d_grad_input", [g, w, x_like], strides=attrs["strides"], padding=attrs["padding"])


def _conv2d_grad_weight(x: Tensor, g: Tensor, w_like: Tensor, attrs: dict[str, Any]) -> Tensor:
    return make_node("conv2d_grad_weight", [x, g, w_like], strides=attrs["strides"], padding=attrs["padding"])


def _conv2d_grad_input_grad(node: Tensor, dy: Tensor) -> list[Any]:
    g, w, _ = node.inputs  # <dy, grad_input(g, w)> = T(dy, w, g)
    attrs = node.attrs
    return [make_node("conv2d", [dy, w], **attrs), _conv2d_grad_weight(dy, g, w, attrs), None]


def _conv2d_grad_weight_grad(node: Tensor, dz: Tensor) -> list[Any]:
    x, g, _ = node.inputs  # <dz, grad_weight(x, g)> = T(x, dz, g)
    attrs = node.attrs
    return [_conv2d_grad_input(g, dz, x, attrs), make_node("conv2d", [x, dz], **attrs), None]


register(OpDef("conv2d_grad_input", "nn", _infer_conv2d_grad_input, _conv2d_grad_input_reference, num_inputs=3,
               grad=_conv2d_grad_input_grad,
               doc="gradient of conv2d w.r.t. its input: (g, w, x_like) -> transposed convolution of g, "
                   "of x_like's shape", uses_gemm=True))
register(OpDef("conv2d_grad_weight", "nn", _infer_conv2d_grad_weight, _conv2d_grad_weight_reference,
               num_inputs=3, grad=_conv2d_grad_weight_grad,
               doc="gradient of conv2d w.r.t. its weights: (x, g, w_like) -> correlation of x's windows "
                   "with g, of w_like's shape", uses_gemm=True))


def _pool_argmax(x: np.ndarray, ksize: tuple[int, int], strides: tuple[int, int], pads: Padding) -> np.ndarray:
    """(N, C, OH, OW) flat in-window index of each window's first maximum (row-major; never padding)."""
    win = _windows(x, ksize, strides, pads, _lowest(x.dtype))
    valid = _windows(np.ones((1, 1, *x.shape[2:]), bool), ksize, strides, pads, False)
    top = win.max(axis=(-2, -1), keepdims=True)
    hit = win == top
    if x.dtype.kind == "f":
        hit |= np.isnan(win) & np.isnan(top)  # a nan wins its window, as in max
    hit &= valid
    return np.argmax(hit.reshape(*hit.shape[:4], ksize[0] * ksize[1]), axis=-1)


def _infer_pool_grad(inputs: Sequence[AbstractValue], *, ksize: tuple[int, int], strides: tuple[int, int],
                     padding: str | Padding) -> AbstractValue:
    g, x = inputs
    _check_4d("pooling gradient", inputs, ("g", "x"))
    out = _infer_pool([x], ksize=ksize, strides=strides, padding=padding).shape
    _check_dims("pooling gradient", "g", g.shape, out)
    return AbstractValue(g.dtype, tuple(_merge(a, b) for a, b in zip(x.shape, (g.shape[0], g.shape[1], None, None))))


def _max_pool_grad_reference(g: np.ndarray, x: np.ndarray, *, ksize: tuple[int, int], strides: tuple[int, int],
                             padding: str | Padding) -> np.ndarray:
    _, pads = spatial(x.shape, ksize, strides, padding)
    idx = _pool_argmax(x, ksize, strides, pads)
    contrib = (np.arange(ksize[0] * ksize[1]) == idx[..., None]) * g[..., None]
    return _scatter_windows(contrib.reshape(*idx.shape, *ksize).astype(g.dtype), x.shape, strides, pads)


def _infer_max_pool_select(inputs: Sequence[AbstractValue], *, ksize: tuple[int, int], strides: tuple[int, int],
                           padding: str | Padding) -> AbstractValue:
    dy, x = inputs
    _check_4d("max_pool2d_select", inputs, ("dy", "x"))
    _check_dims("max_pool2d_select", "dy", dy.shape, x.shape)
    out = _infer_pool([x], ksize=ksize, strides=strides, padding=padding).shape
    return AbstractValue(dy.dtype, (_merge(x.shape[0], dy.shape[0]), _merge(x.shape[1], dy.shape[1]), *out[2:]))


def _max_pool_select_reference(dy: np.ndarray, x: np.ndarray, *, ksize: tuple[int, int], strides: tuple[int, int],
                               padding: str | Padding) -> np.ndarray:
    _, pads = spatial(x.shape, ksize, strides, padding)
    idx = _pool_argmax(x, ksize, strides, pads)
    win = _windows(dy, ksize, strides, pads, 0)
    return np.take_along_axis(win.reshape(*idx.shape, ksize[0] * ksize[1]), idx[..., None], axis=-1)[..., 0]


def _max_pool_grad_grad(node: Tensor, dy: Tensor) -> list[Any]:
    # the routing is piecewise constant in x: no gradient flows to x through it
    return [make_node("max_pool2d_select", [dy, node.inputs[1]], **node.attrs), None]


def _max_pool_select_grad(node: Tensor, g: Tensor) -> list[Any]:
    return [make_node("max_pool2d_grad", [g, node.inputs[1]], **node.attrs), None]


def _avg_pool_grad_reference(g: np.ndarray, like: np.ndarray, *, ksize: tuple[int, int], strides: tuple[int, int],
                             padding: str | Padding) -> np.ndarray:
    _, pads = spatial(like.shape, ksize, strides, padding)
    ones = np.ones((1, 1, *like.shape[2:]), g.dtype)
    count = _windows(ones, ksize, strides, pads, 0).sum(axis=(-2, -1))
    contrib = np.broadcast_to((g / count)[..., None, None], (*g.shape, *ksize))
    return _scatter_windows(contrib, like.shape, strides, pads).astype(g.dtype)


def _avg_pool_grad_grad(node: Tensor, dy: Tensor) -> list[Any]:
    return [make_node("avg_pool2d", [dy], **node.attrs), None]


register(OpDef("max_pool2d_grad", "nn", _infer_pool_grad, _max_pool_grad_reference, num_inputs=2,
               grad=_max_pool_grad_grad,
               doc="gradient of max_pool2d: (g, x) -> g added at each window's first maximum in x, of x's shape"))
register(OpDef("max_pool2d_select", "nn", _infer_max_pool_select, _max_pool_select_reference, num_inputs=2,
               grad=_max_pool_select_grad,
               doc="(dy, x) -> dy's value at each window's first maximum in x, of max_pool2d(x)'s shape"))
register(OpDef("avg_pool2d_grad", "nn", _infer_pool_grad, _avg_pool_grad_reference, num_inputs=2,
               grad=_avg_pool_grad_grad,
               doc="gradient of avg_pool2d: (g, x_like) -> g / count spread over each window, of x_like's shape"))


__all__ = ["avg_pool2d", "conv2d", "max_pool2d"]
