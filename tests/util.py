"""Shared helpers for the test suite."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import graphc as gc


def _gpu_present() -> bool:
    """Whether device="cuda" can run here (pycuda installed and a GPU visible)."""
    try:
        from graphc.backends.cuda.driver import gpu_available
    except ImportError:
        return False
    return gpu_available()


COMPILED_DEVICES = ["cpu", "cuda-sim"]
"""The devices the op suites run on besides the reference (tests/conftest.py); "cuda" where a GPU and pycuda
are present (GRAPHC_TEST_CUDA=0 leaves it out)."""
if os.environ.get("GRAPHC_TEST_CUDA") != "0" and _gpu_present():
    COMPILED_DEVICES.append("cuda")

DEVICE = "reference"
"""The device ``run``, ``function`` and ``check_grad`` use unless told otherwise; the ``device`` fixture
(conftest.py) sets it for the op suites, which run on both devices."""


def run(outputs: Any, feeds: dict | None = None, device: str | None = None) -> Any:
    """Run ``outputs`` once in a fresh Session on ``device`` (default: ``DEVICE``)."""
    return gc.Session(device=device or DEVICE).run(outputs, feeds or {})


def function(inputs: Any, outputs: Any = None, **kwargs: Any) -> gc.Function:
    """``gc.function`` on ``DEVICE`` unless a device is given."""
    kwargs.setdefault("device", DEVICE)
    return gc.function(inputs, outputs, **kwargs)


def check_grad(fn: Any, inputs: Any, **kwargs: Any) -> None:
    """``graphc.testing.check_grad`` on ``DEVICE`` unless a device is given."""
    from graphc.testing import check_grad as check

    kwargs.setdefault("device", DEVICE)
    check(fn, inputs, **kwargs)


def assert_same(result: np.ndarray, expected: Any, rtol: float | None = None, atol: float = 0.0) -> None:
    """``result`` equals NumPy's ``expected`` in dtype, shape and value (nan where NumPy has nan)."""
    expected = np.asarray(expected)
    assert isinstance(result, np.ndarray), type(result)
    assert result.dtype == expected.dtype, (result.dtype, expected.dtype)
    assert result.shape == expected.shape, (result.shape, expected.shape)
    if rtol is None:
        rtol = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-13}.get(result.dtype, 0.0)
    if result.dtype.kind == "f":
        np.testing.assert_allclose(result, expected, rtol=rtol, atol=atol, equal_nan=True)
    else:
        np.testing.assert_array_equal(result, expected)


def graphc_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype graphc gives where NumPy gives ``dtype`` (documented: float16 -> float32, uint16+ -> int64)."""
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind == "u" and dtype.itemsize > 1:
        return np.dtype(np.int64)
    return dtype


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, low: float = -3, high: float = 3
                 ) -> np.ndarray:
    """Random values of ``dtype``: uniform floats, integers in [low, high], random bools."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        lo = max(int(low), np.iinfo(dtype).min)
        return rng.integers(lo, int(high) + 1, size=shape).astype(dtype)
    return rng.uniform(low, high, size=shape).astype(dtype)


# ---- the numerical promise (docs/numerics.md) ---------------------------------------------------------
#
# Two code paths (another thread count, fused or not, another CPU level, device="cpu" against the
# reference, level 0 against the rewritten graph) either give the same bits or differ by at most
# the bounds below.  ``u`` is the dtype's unit roundoff (2**-24 for float32, 2**-53 for float64).

THREADS = "threads"  # 1 thread against N (only reductions may change: few long rows are cut into parts)
FUSION = "fusion"  # level 2 (kernels) against level 1 (one op at a time)
CPU_LEVEL = "cpu level"  # another vector width / FMA: another machine, an AOT version, gc.aot.compile's cpu=
DEVICES = "devices"  # device="cpu" against device="reference" (NumPy)
REWRITES = "rewrites"  # level 0 (as built) against levels 1 and 2 (constant folding, stable forms)
EVERY_PATH = frozenset({THREADS, FUSION, CPU_LEVEL})  # any two compiled code paths of device="cpu"

NUMPY_ULPS = 4  # the reference's own error in transcendental functions (NumPy's SIMD versions, libm)
"""Transcendental functions on device="cpu" are within mathlib.MAX_ULP (float32) or the C library's
error (float64) of the correctly rounded result; NumPy's are within a few ulps of it too."""


def unit_roundoff(dtype: Any) -> float:
    """u: half the gap between 1 and the next number of ``dtype``."""
    return float(np.finfo(dtype).eps) / 2


def sum_bound(n: Any, magnitude: Any, dtype: Any) -> np.ndarray:
    """A float sum of ``n`` terms on two code paths: at most 2 (n - 1) u sum|x_i| apart."""
    return 2 * np.maximum(np.asarray(n, np.float64) - 1, 0) * unit_roundoff(dtype) * _capped(magnitude, dtype)


def mean_bound(n: Any, mean_magnitude: Any, dtype: Any) -> np.ndarray:
    """A float mean of ``n`` terms: at most 2 n u mean|x_i| apart (the sum's bound / n, and the division)."""
    return 2 * np.asarray(n, np.float64) * unit_roundoff(dtype) * _capped(mean_magnitude, dtype)


def prod_bound(n: Any, value: Any, dtype: Any) -> np.ndarray:
    """A float product of ``n`` factors: at most 2 (n - 1) u |prod| apart."""
    return sum_bound(n, value, dtype)


def gemm_bound(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """matmul(a, b) on two CPU levels: element (i, j) at most 2 K u sum_k |a_ik b_kj| apart."""
    a64, b64 = _finite_abs(a), _finite_abs(b)
    k = a64.shape[-1] if a64.ndim else 1
    return 2 * k * unit_roundoff(np.result_type(a, b)) * _capped(np.matmul(a64, b64), np.result_type(a, b))


def reduction_bound(op: str, x: Any, axis: Any = None, keepdims: bool = False, dtype: Any = None) -> np.ndarray:
    """How far ``op`` (sum, mean, prod, logsumexp, max, min) of ``x`` over ``axis`` may be apart on two
    code paths: the promise for one reduction (0 for max and min, and for integer sums and products).
    ``dtype`` is the result's (default: ``x``'s if it is a float, else float64)."""
    x = np.asarray(x)
    axes = _axes(axis, x.ndim)
    out_shape = np.sum(np.zeros(x.shape), axis=axes, keepdims=keepdims).shape
    dtype = np.dtype(dtype if dtype is not None else x.dtype if x.dtype.kind == "f" else np.float64)
    n = int(np.prod([x.shape[a] for a in axes]))
    if op in ("max", "min") or dtype.kind != "f" or (n <= 1 and op != "mean"):
        return np.zeros(out_shape)
    with np.errstate(all="ignore"):
        if op == "sum":
            return sum_bound(n, np.sum(_finite_abs(x), axis=axes, keepdims=keepdims), dtype)
        if op == "mean":
            return mean_bound(n, np.mean(_finite_abs(x), axis=axes, keepdims=keepdims), dtype) if n else \
                np.zeros(out_shape)
        if op == "prod":
            return prod_bound(n, np.prod(_finite_abs(x), axis=axes, keepdims=keepdims), dtype)
        if op == "logsumexp":
            x64 = x.astype(np.float64)
            top = np.max(x64, axis=axes, keepdims=True)
            top = np.where(np.isfinite(top), top, 0.0)
            lse = np.log(np.sum(np.exp(x64 - top), axis=axes, keepdims=True)) + top
            return np.reshape(_lse_local(n, lse, dtype), out_shape)
    raise ValueError(f"no reduction bound for {op}")


def assert_within(got: Any, want: Any, bound: Any, signed_zeros: bool = True) -> None:
    """``got`` and ``want`` (two code paths' results) have the same dtype and shape and, element by
    element, differ by at most ``bound``: where the bound is 0 they are identical (nan where nan; with
    ``signed_zeros`` the same sign on every zero), where ``want`` is nan or +-inf ``got`` is the same,
    and where the bound is inf (the promise says nothing: an overflow, an ambiguous argmax) anything goes."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    bound = np.broadcast_to(np.where(np.isnan(bound), np.inf, bound), want.shape)
    checked = np.isfinite(bound)
    if want.dtype.kind != "f":
        exact = checked & (bound < 1)
        np.testing.assert_array_equal(got[exact], want[exact])
        return
    g, w = got.astype(np.float64), want.astype(np.float64)
    same = (g == w) | (np.isnan(g) & np.isnan(w))
    if signed_zeros:
        same &= np.signbit(g) == np.signbit(w)
    with np.errstate(invalid="ignore"):
        close = np.isfinite(w) & np.isfinite(g) & (np.abs(g - w) <= bound)
    bad = checked & ~same & ~(close & (bound > 0))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(f"{int(bad.sum())} of {bad.size} elements differ by more than the promise "
                             f"(docs/numerics.md); the first at {where}: got {got[where]!r}, want {want[where]!r}, "
                             f"difference {abs(g[where] - w[where])!r}, bound {bound[where]!r}")


def assert_identical(got: Any, want: Any) -> None:
    """The same dtype, shape and values: nan where nan, the same sign on every zero."""
    assert_within(got, want, 0.0)


def assert_reduction_close(got: Any, want: Any, op: str, x: Any, axis: Any = None, keepdims: bool = False,
                           signed_zeros: bool = False) -> None:
    """``got`` and ``want`` are ``op`` of ``x`` over ``axis`` from two code paths: within the promise
    (identical for max, min and integers)."""
    want = np.asarray(want)
    assert_within(got, want, reduction_bound(op, x, axis, keepdims, want.dtype), signed_zeros=signed_zeros)


def path_bounds(outputs: Any, feeds: dict, across: Any) -> list[np.ndarray]:
    """For each of ``outputs``, the most two code paths that differ in ``across`` (THREADS, FUSION,
    CPU_LEVEL, DEVICES, REWRITES) may be apart, element by element, under docs/numerics.md.

    The graph is evaluated op by op with the reference implementations, and each op's bound is its
    own (0 where the promise says identical bits; the reduction and GEMM bounds) plus what the
    differences of its inputs become through it, to first order (elementwise ops are evaluated at
    the ends of their inputs' ranges).  Ops a code path cannot change (an argmax of unequal values,
    a comparison of values far apart) keep a bound of 0; where the inputs' ranges make the result
    ambiguous the bound is inf."""
    import graphc as gc

    across = frozenset([across] if isinstance(across, str) else across)
    outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    graph = gc.optimize(outs, level=0 if REWRITES in across else 1)
    values: dict[int, Any] = {}
    bounds: dict[int, Any] = {}
    with np.errstate(all="ignore"):
        _walk(graph.nodes, values, bounds, feeds, across)
    return [bounds[o.id] for o in graph.outputs]


def _walk(nodes: Any, values: dict, bounds: dict, feeds: dict, across: frozenset) -> None:
    """Evaluate ``nodes`` (in order) into ``values`` and their bounds into ``bounds``."""
    for node in nodes:
        if node.op in ("placeholder", "variable", "constant"):
            source = feeds[node] if node.op == "placeholder" else (
                node.value if node.op == "variable" else node.attrs["value"])
            values[node.id] = np.asarray(source).astype(node.dtype, copy=False)
            bounds[node.id] = np.zeros(values[node.id].shape)
        elif node.op == "parameter":  # inside a kernel: seeded by the fused node
            continue
        elif node.op == "fused":  # a kernel given already fused: its ops one by one
            kernel = node.attrs["kernel"]
            inner_values = {p.id: values[node.inputs[p.attrs["index"]].id] for p in kernel.params}
            inner_bounds = {p.id: bounds[node.inputs[p.attrs["index"]].id] for p in kernel.params}
            _walk(kernel.body, inner_values, inner_bounds, feeds, across)
            results = [(inner_values[o.id], inner_bounds[o.id]) for o in kernel.outputs]
            values[node.id], bounds[node.id] = results[0] if len(results) == 1 else tuple(zip(*results))
        elif node.op == "kernel_output":
            (fused,) = node.inputs
            values[node.id] = values[fused.id][node.attrs["index"]]
            bounds[node.id] = bounds[fused.id][node.attrs["index"]]
        else:
            if node.op not in _RULES and node.opdef.family not in ("elementwise", "shape"):
                raise NotImplementedError(f"path_bounds has no rule for {node.op}")
            args = [values[i.id] for i in node.inputs]
            errs = [bounds[i.id] for i in node.inputs]
            values[node.id] = np.asarray(node.opdef.reference(*args, **node.attrs)).astype(node.dtype, copy=False)
            rule = _RULES.get(node.op, _elementwise if node.opdef.family == "elementwise" else _linear)
            bound = np.asarray(rule(node, args, errs, values[node.id], across), np.float64)
            bounds[node.id] = np.broadcast_to(np.where(np.isnan(bound), np.inf, bound), values[node.id].shape)


def assert_paths_agree(got: Any, want: Any, outputs: Any, feeds: dict, across: Any) -> None:
    """Each result in ``got`` is within ``path_bounds`` of the one in ``want`` (lists or single arrays)."""
    single = not isinstance(outputs, (list, tuple))
    gots, wants = ([got], [want]) if single else (list(got), list(want))
    bounds = path_bounds(outputs, feeds, across)
    assert len(gots) == len(wants) == len(bounds)
    signed = DEVICES not in across and REWRITES not in across  # NumPy's maximum(-0.0, 0.0) is -0.0, LLVM's +0.0
    for g, w, b in zip(gots, wants, bounds):
        assert_within(g, w, b, signed_zeros=signed)


# ---- path_bounds: one rule per kind of op ---------------------------------------------------------------

_TRANSCENDENTAL = {"exp", "expm1", "log", "log1p", "sin", "cos", "tanh", "sigmoid", "softplus", "erf", "power",
                   "sigmoid_cross_entropy"}
_GEMMS = {"matmul", "conv2d", "conv2d_grad_input", "conv2d_grad_weight"}  # differ only between CPU levels
_EXACT_SUMS = {"pad_grad", "slice_grad", "concat_part", "avg_pool2d_grad", "take_grad"}  # the reference's order


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in (axis if isinstance(axis, (tuple, list)) else (axis,)))


def _finite_abs(x: Any) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.where(np.isfinite(x), np.abs(x), 0.0)


def _capped(magnitude: Any, dtype: Any) -> np.ndarray:
    """``magnitude`` where the dtype can hold it; inf (no promise: partial sums may overflow) where not."""
    m = np.asarray(magnitude, np.float64)
    return np.where(m > np.finfo(dtype).max, np.inf, m)


def _diff(a: Any, b: Any) -> np.ndarray:
    """|a - b|, 0 where both are the same nan or infinity, inf where only one is finite."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = np.abs(a - b)
    return np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, np.where(np.isnan(d), np.inf, d))


def _ulps(value: np.ndarray, k: float) -> np.ndarray:
    return k * np.spacing(np.abs(value).astype(value.dtype)).astype(np.float64)


def _lse_local(n: int, magnitude: Any, dtype: Any, device: bool = False) -> np.ndarray:
    """logsumexp, log_softmax, cross-entropy with labels: the sum of n positive terms, then a log:
    2 (n + 1) u max(1, |logsumexp|, |result|) (``magnitude`` is the larger of the two); against the
    reference 16 u max(...) more, for its exp and log."""
    k = 2 * (n + 1) + (4 * NUMPY_ULPS if device else 0)
    return k * unit_roundoff(dtype) * np.maximum(1.0, _finite_abs(magnitude))


def _float_args(args: list[np.ndarray]) -> list[np.ndarray]:
    return [a.astype(np.float64) if a.dtype.kind == "f" else a for a in args]


def _evaluate(node: Any, args: list[np.ndarray]) -> np.ndarray:
    return np.asarray(node.opdef.reference(*args, **node.attrs))


def _corners(node: Any, args: list[np.ndarray], deltas: list[np.ndarray]) -> np.ndarray:
    """max |f(args + s delta) - f(args)| over the signs s of every argument with a nonzero delta
    (a bool argument with a delta is flipped; an integer one makes the result unbounded)."""
    moved = [i for i, d in enumerate(deltas) if np.any(d > 0)]
    base = np.asarray(_evaluate(node, args), np.float64)
    if not moved:
        return np.zeros(base.shape)
    if any(args[i].dtype.kind in "iu" for i in moved):
        return np.full(base.shape, np.inf)
    worst = np.zeros(base.shape)
    for signs in range(1 << len(moved)):
        shifted = list(args)
        for bit, i in enumerate(moved):
            up = bool(signs >> bit & 1)
            if args[i].dtype.kind == "b":
                shifted[i] = np.where(deltas[i] > 0, ~args[i], args[i]) if up else args[i]
            else:
                shifted[i] = args[i] + deltas[i] if up else args[i] - deltas[i]
        worst = np.maximum(worst, _diff(_evaluate(node, shifted), base))
    return worst


def _elementwise(node: Any, args: list[np.ndarray], errs: list[np.ndarray], value: np.ndarray,
                 across: frozenset) -> np.ndarray:
    """Identical bits on identical inputs between compiled code paths; against the reference (and
    constant folding) transcendental functions are a few ulps apart; a rewritten formula (REWRITES)
    differs as if each of its inputs were rounded once more."""
    wide = _float_args(args)
    bound = _corners(node, wide, errs)
    if value.dtype.kind == "f":
        transcendental = node.op in _TRANSCENDENTAL
        if np.any(bound > 0):  # the two results round (or approximate) different values
            bound = bound + (8 if transcendental else 2) * unit_roundoff(value.dtype) * np.abs(value)
        if transcendental and (DEVICES in across or REWRITES in across):
            from graphc.codegen.mathlib import MAX_ULP

            k = MAX_ULP.get(node.op, 2.0) + NUMPY_ULPS
            scale = np.maximum(np.abs(value), 1).astype(value.dtype) if node.op == "sigmoid_cross_entropy" else value
            bound = bound + _ulps(scale, k)
        if REWRITES in across:
            rounding = [2 * unit_roundoff(a.dtype) * np.abs(w) if a.dtype.kind == "f" else np.zeros(a.shape)
                        for a, w in zip(args, wide)]
            bound = bound + _corners(node, wide, rounding)
    return bound


def _linear(node: Any, args: list[np.ndarray], errs: list[np.ndarray], value: np.ndarray, across: frozenset,
            local: Any = None) -> np.ndarray:
    """Sums of products with coefficients 1 (index maps, sums, matmul, convolutions and their gradients):
    f(|x| + e) - f(|x|), plus the op's own bound ``local(magnitude, terms)`` (the op applied to |x|
    and to ones: how many terms each element adds)."""
    if any(a.dtype.kind != "f" and np.any(e > 0) for a, e in zip(args, errs)):
        return np.full(value.shape, np.inf)
    magnitude = [np.abs(a.astype(np.float64)) if a.dtype.kind == "f" else a for a in args]
    widened = [m + e if a.dtype.kind == "f" else m for a, m, e in zip(args, magnitude, errs)]
    bound = _diff(_evaluate(node, widened), _evaluate(node, magnitude))
    if local is not None and value.dtype.kind == "f":
        finite = [_finite_abs(a) if a.dtype.kind == "f" else a for a in args]
        ones = [np.ones(a.shape) if a.dtype.kind == "f" else a for a in args]
        bound = bound + local(_capped(_evaluate(node, finite), value.dtype), _evaluate(node, ones))
    return bound


def _sum_rule(node: Any, args: list, errs: list, value: np.ndarray, across: frozenset) -> np.ndarray:
    return _linear(node, args, errs, value, across, lambda m, terms: sum_bound(terms, m, value.dtype))


def _gemm_rule(node: Any, args: list, errs: list, value: np.ndarray, across: frozenset) -> np.ndarray:
    if not across & {CPU_LEVEL, DEVICES}:  # one micro-kernel adds each element's K products in order
        return _linear(node, args, errs, value, across)
    u = unit_roundoff(value.dtype) if value.dtype.kind == "f" else 0.0
    return _linear(node, args, errs, value, across, lambda m, terms: 2 * terms * u * m)


def _mean_rule(node: Any, args: list, errs: list, value: np.ndarray, across: frozenset) -> np.ndarray:
    (x,) = args
    n = int(np.prod([x.shape[a] for a in node.attrs["axes"]]))
    return _linear(node, args, errs, value, across, lambda m, terms: mean_bound(n, m, value.dtype))


def _avg_pool_rule(node: Any, args: list, errs: list, value: np.ndarray, across: frozenset) -> np.ndarray:
    n = int(np.prod(node.attrs["ksize"]))
    return _linear(node, args, errs, value, across, lambda m, terms: mean_bound(n, m, value.dtype))


def _prod_rule(node: Any, args: list, errs: list, value: np.ndarray, across: frozenset) -> np.ndarray:
    (x,), (e,) = args, errs
    axes, keepdims = node.attrs["axes"], node.attrs["keepdims"]
    if x.dtype.kind != "f":
        return np.zeros(value.shape) if not np.any(e > 0) else np.full(value.shape, np.inf)
    n = int(np.prod([x.shape[a] for a in axes]))
    magnitude = np.abs(x.astype(np.float64))
    moved = _diff(np.prod(magnitude + e, axis=axes, keepdims=keepdims),
                  np.prod(magnitude, axis=axes, keepdims=keepdims))
    return moved + prod_bound(n, np.prod(_finite_abs(x), axis=axes, keepdims=keepdims), x.dtype)


def _extremum_rule(node: Any, args: list, errs: list, value: np.ndarray, across: frozenset) -> np.ndarray:
    """max, min, max_pool2d: exact; a difference of the inputs passes through (the max is 1-Lipschitz)."""
    if node.op == "max_pool2d":
        return _evaluate(node, [errs[0]])
    return np.max(errs[0], axis=node.attrs["axes"], keepdims=node.attrs["keepdims"], initial=0.0)


def _arg_rule(node: Any, args: list, errs: list, value: np.ndarray, across: frozenset) -> np.ndarray:
    """argmax, argmin: exact; ambiguous (inf) where another element is within the inputs' bounds of the best."""
    (x,), (e,) = args, errs
    if not np.any(e > 0):
        return np.zeros(value.shape)
    axis, keepdims = node.attrs["axis"], node.attrs["keepdims"]
    x64, e = (x.reshape(-1), e.reshape(-1)) if axis is None else (x, e)
    axis = 0 if axis is None else axis
    sign = 1.0 if node.op == "argmax" else -1.0
    best = np.max(sign * x64, axis=axis, keepdims=True)
    reach = np.max(e, axis=axis, keepdims=True)
    near = np.sum(sign * x64 + e + reach >= best, axis=axis, keepdims=keepdims)
    return np.where(near > 1, np.inf, 0.0).reshape(value.shape)


def _logsumexp_rule(node: Any, args: list, errs: list, value: np.ndarray, across: frozenset) -> np.ndarray:
    (x,), (e,) = args, errs
    axes, keepdims = node.attrs["axes"], node.attrs["keepdims"]
    n = int(np.prod([x.shape[a] for a in axes]))
    moved = np.max(e, axis=axes, keepdims=keepdims, initial=0.0)  # logsumexp is 1-Lipschitz
    return moved + (_lse_local(n, value, value.dtype, DEVICES in across) if n > 1 else 0.0)


def _softmax_rule(node: Any, args: list, errs: list, value: np.ndarray, across: frozenset) -> np.ndarray:
    (x,), (e,) = args, errs
    axes = node.attrs["axes"]
    n = int(np.prod([x.shape[a] for a in axes]))
    reach = np.max(e, axis=axes, keepdims=True, initial=0.0)
    if node.op == "log_softmax":
        lse = x.astype(np.float64) - value
        magnitude = np.maximum(_finite_abs(lse), _finite_abs(value))
        return e + reach + _lse_local(n, magnitude, value.dtype, DEVICES in across)
    out = np.abs(value.astype(np.float64))
    local = (2 * (n + 2) + (4 * NUMPY_ULPS if DEVICES in across else 0)) * unit_roundoff(value.dtype)
    return out * np.expm1(e + reach) + out * local


def _cross_entropy_rule(node: Any, args: list, errs: list, value: np.ndarray, across: frozenset) -> np.ndarray:
    """-log_softmax at the label (sparse), or sum_c p_c (logsumexp - x_c): a sum of n terms (dense)."""
    (logits, labels), (e, e_labels) = args, errs
    n = logits.shape[-1]
    reach = np.max(e, axis=-1, keepdims=True, initial=0.0)
    x = logits.astype(np.float64)
    top = np.max(x, axis=-1, keepdims=True)
    lse = np.log(np.sum(np.exp(x - np.where(np.isfinite(top), top, 0)), axis=-1, keepdims=True)) + \
        np.where(np.isfinite(top), top, 0)
    local_lse = _lse_local(n, lse, value.dtype, DEVICES in across)
    if node.attrs["sparse"]:
        if np.any(e_labels > 0):
            return np.full(value.shape, np.inf)
        picked = np.take_along_axis(e, labels[..., None].astype(np.intp) % max(n, 1), axis=-1)
        local = _lse_local(n, np.maximum(_finite_abs(lse), _finite_abs(value)[..., None]), value.dtype,
                           DEVICES in across)
        return (reach + picked + local)[..., 0]
    p = np.abs(labels.astype(np.float64))
    terms = np.abs(lse - x)
    moved = np.sum((p + e_labels) * (reach + e) + e_labels * terms + p * local_lse, axis=-1)
    return moved + sum_bound(n, np.sum(_finite_abs(p * terms), axis=-1), value.dtype)


def _select_rule(node: Any, args: list, errs: list, value: np.ndarray, across: frozenset) -> np.ndarray:
    """max_pool2d_grad / _select route g by the window maxima of x: linear in g, ambiguous if x moved."""
    if np.any(errs[1] > 0):
        return np.full(value.shape, np.inf)
    return _linear(node, args, errs, value, across)


_RULES = {
    "sum": _sum_rule, "sum_to": _sum_rule, "mean": _mean_rule, "prod": _prod_rule, "max": _extremum_rule,
    "min": _extremum_rule, "max_pool2d": _extremum_rule, "argmax": _arg_rule, "argmin": _arg_rule,
    "logsumexp": _logsumexp_rule, "softmax": _softmax_rule, "log_softmax": _softmax_rule,
    "softmax_cross_entropy": _cross_entropy_rule, "avg_pool2d": _avg_pool_rule, "max_pool2d_grad": _select_rule,
    "max_pool2d_select": _select_rule, "assign": _elementwise, "assign_add": _elementwise,
    **dict.fromkeys(_GEMMS, _gemm_rule),
    **dict.fromkeys(_EXACT_SUMS, _linear),
}
