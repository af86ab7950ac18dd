"""device="cpu" (LLVM codegen) against the reference interpreter, op by op and on random graphs.

What must agree is docs/numerics.md's promise (``util.assert_paths_agree(..., DEVICES)``): integer and
bool results, casts, index maps and the correctly rounded float ops (+ - * / sqrt, floor, ...) are the
same bits (the sign of a zero maximum / minimum aside); transcendental functions are a few ulps apart
(mathlib or the C library against NumPy); float reductions and matmuls add in another order, within
their bounds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.ir.registry import REGISTRY
from util import DEVICES, FUSION, assert_paths_agree, assert_within, path_bounds, random_array

DTYPES = ["bool", "int8", "uint8", "int16", "int32", "int64", "float32", "float64"]
TRANSCENDENTAL = {"exp", "expm1", "log", "log1p", "sin", "cos", "tanh", "sigmoid", "softplus", "erf", "power",
                  "sigmoid_cross_entropy", "rsqrt"}
ELEMENTWISE = sorted(n for n, op in REGISTRY.items() if op.family == "elementwise" and n not in ("cast", "where"))
def both(outputs: Any, feeds: dict) -> tuple[Any, Any]:
    return gc.Session(device="cpu").run(outputs, feeds), gc.Session(device="reference").run(outputs, feeds)


def assert_close(got: np.ndarray, want: np.ndarray, rtol32: float = 4e-7, rtol64: float = 1e-15) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.dtype.kind == "f":
        rtol = rtol32 if want.dtype == np.float32 else rtol64
        np.testing.assert_allclose(got, want, rtol=rtol, atol=np.finfo(want.dtype).tiny, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, want)


def _inputs(rng: np.random.Generator, name: str, dtype: str, arity: int) -> list[np.ndarray]:
    low, high = (0.2, 3) if name in ("log", "sqrt", "rsqrt", "log1p", "reciprocal", "power") else (-3, 3)
    arrays = [random_array(rng, (3, 4), dtype, low, high) for _ in range(arity)]
    if name in ("floor_divide", "mod") and dtype != "bool":
        arrays[1] = np.where(arrays[1] == 0, 1, arrays[1]).astype(dtype)
    return arrays


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_op(name: str, dtype: str, rng: np.random.Generator) -> None:
    op = REGISTRY[name]
    arrays = _inputs(rng, name, dtype, op.num_inputs or 1)
    placeholders = [gc.placeholder(dtype, a.shape) for a in arrays]
    try:
        out = getattr(gc, name)(*placeholders)
    except gc.DTypeError:
        return  # NumPy has no such loop either (tested in test_ops_elementwise)
    feeds = dict(zip(placeholders, arrays))
    got, want = both(out, feeds)
    assert_paths_agree(got, want, out, feeds, DEVICES)  # the same bits unless name is in TRANSCENDENTAL


@pytest.mark.parametrize("value", [0.0, -0.0, 1.5, -2.5, np.inf, -np.inf, np.nan, 1e-40, 3e38])
@pytest.mark.parametrize("name", ["abs", "neg", "sign", "floor", "ceil", "round", "relu", "isnan", "isfinite",
                                  "square", "sqrt", "exp", "log", "tanh", "sigmoid"])
def test_special_values(name: str, value: float) -> None:
    x = gc.placeholder("float32", (1,))
    out, feeds = getattr(gc, name)(x), {x: np.array([value], np.float32)}
    got, want = both(out, feeds)
    assert_paths_agree(got, want, out, feeds, DEVICES)


@pytest.mark.parametrize(("a", "b"), [(7, 3), (-7, 3), (7, -3), (-7, -3), (5, 0), (-128, -1), (0, 5)])
def test_integer_floor_division_and_modulo_follow_python(a: int, b: int) -> None:
    x, y = gc.placeholder("int8", ()), gc.placeholder("int8", ())
    got, want = both([x // y, x % y], {x: np.int8(a), y: np.int8(b)})
    for g, w in zip(got, want):
        assert_close(g, w)


@pytest.mark.parametrize(("source", "target"), [(s, t) for s in DTYPES for t in DTYPES])
def test_casts(source: str, target: str, rng: np.random.Generator) -> None:
    values = random_array(rng, (6,), source, -100, 100)
    x = gc.placeholder(source, (6,))
    out, feeds = gc.cast(x, target), {x: values}
    got, want = both(out, feeds)
    assert_paths_agree(got, want, out, feeds, DEVICES)  # the same bits


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "prod"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "bool"])
def test_reductions(name: str, dtype: str, axis: Any, keepdims: bool, rng: np.random.Generator) -> None:
    values = random_array(rng, (3, 4, 5), dtype, -2, 2)
    x = gc.placeholder(dtype, (3, 4, 5))
    out, feeds = getattr(gc, name)(x, axis=axis, keepdims=keepdims), {x: values}
    got, want = both(out, feeds)
    assert_paths_agree(got, want, out, feeds, DEVICES)


@pytest.mark.parametrize("build", [
    lambda x: gc.reshape(x, (4, -1)), lambda x: x.T, lambda x: gc.transpose(x, (1, 2, 0)),
    lambda x: x[::-1, 1:, ::2], lambda x: x[1, ..., -1], lambda x: x[:, None, 2],
    lambda x: gc.expand_dims(x, 1), lambda x: gc.squeeze(x[:, :1], 1),
    lambda x: gc.broadcast_to(x[:, :1], (5, 2, 3, 4)),
])
def test_index_maps(build: Any, rng: np.random.Generator) -> None:
    values = random_array(rng, (2, 3, 4), "float32")
    x = gc.placeholder("float32", (2, 3, 4))
    out, feeds = build(x) * 1.5, {x: values}
    got, want = both(out, feeds)
    assert_paths_agree(got, want, out, feeds, DEVICES)  # the same bits


def test_fused_kernels_multi_output_and_updates_match_reference(rng: np.random.Generator) -> None:
    x = gc.placeholder("float32", (None, 4), name="fx")
    w = gc.Variable(np.arange(4, dtype=np.float32), name="fw")
    h = gc.tanh(x * 2.0 + w)
    outputs = [gc.sum(gc.exp(h) * 3.0, axis=1), h - 1, gc.mean(gc.square(x - 1.0))]
    cpu = gc.function([x], outputs, updates={w: w - 0.1 * gc.mean(h, axis=0)}, device="cpu")
    ref = gc.function([x], outputs, device="reference")
    assert any(n.op == "fused" for n in cpu.graph.nodes)
    update = w - 0.1 * gc.mean(h, axis=0)
    for n in (1, 5, 0):
        xv = random_array(rng, (n, 4), "float32")
        w.assign(np.arange(4, dtype=np.float32))
        bound = path_bounds(update, {x: xv}, {DEVICES, FUSION})[0]  # from the value w has now
        want_w = gc.Session(device="reference").run(update, {x: xv})
        want = ref(xv)
        got = cpu(xv)
        assert_paths_agree(got, want, outputs, {x: xv}, {DEVICES, FUSION})
        expected_w = np.arange(4, dtype=np.float32) - 0.1 * np.mean(np.tanh(xv * 2 + np.arange(4)), axis=0)
        if n:
            np.testing.assert_allclose(w.value, expected_w, rtol=1e-6)
            assert_within(w.value, want_w, bound, signed_zeros=False)


def test_unsupported_ops_are_refused_naming_the_op_and_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from graphc.lower import registry

    monkeypatch.delitem(registry.OP_RULES, "pad")  # every op lowers now: pretend pad does not
    a = gc.placeholder("float32", (2, 3), name="ua")
    padded = gc.pad(a, 1)
    with pytest.raises(gc.ArgumentError, match=r"(?s)op pad has no lowering rule.*test_cpu_backend\.py"):
        gc.Session(device="cpu").run(padded, {a: np.ones((2, 3))})


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_take_and_its_gradient(axis: Any, rng: np.random.Generator) -> None:
    x = gc.placeholder("float64", (3, 4, 5), name="tk")
    idx = gc.placeholder("int32", (2, 3), name="ti")
    picked = gc.take(x, idx, axis=axis)
    grad = gc.grad(gc.sum(picked * picked), x)
    n = 60 if axis is None else (3, 4, 5)[axis]
    feeds = {x: random_array(rng, (3, 4, 5), "float64"), idx: rng.integers(-n, n, (2, 3)).astype(np.int32)}
    got, want = both([picked, grad], feeds)
    assert_paths_agree(got, want, [picked, grad], feeds, DEVICES)
    feeds[idx] = np.full((2, 3), n, np.int32)
    with pytest.raises(gc.ExecutionError, match=r"(?s)out of range.*test_cpu_backend\.py"):
        gc.Session(device="cpu").run(picked, feeds)


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_arg_extremum(name: str, axis: Any, dtype: str, rng: np.random.Generator) -> None:
    values = random_array(rng, (3, 4, 5), dtype, -2, 2)  # small ints: plenty of ties
    if dtype == "float32":
        values[1, 2, 3] = np.nan
        values[1, 2, 1] = np.nan
    x = gc.placeholder(dtype, (3, 4, 5))
    got, want = both(getattr(gc, name)(x, axis=axis, keepdims=axis is not None), {x: values})
    assert_close(got, want)


@pytest.mark.parametrize(("a_shape", "b_shape"), [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
                                                  ((2, 1, 3, 4), (5, 4, 2)), ((0, 3), (3, 2)), ((2, 0), (0, 3))])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "bool"])
def test_matmul(a_shape: tuple, b_shape: tuple, dtype: str, rng: np.random.Generator) -> None:
    av, bv = random_array(rng, a_shape, dtype), random_array(rng, b_shape, dtype)
    a, b = gc.placeholder(dtype, a_shape), gc.placeholder(dtype, b_shape)
    out, feeds = gc.matmul(a, b) * 1, {a: av, b: bv}
    got, want = both(out, feeds)
    assert_paths_agree(got, want, out, feeds, DEVICES)  # floats: 2 K u sum_k |a_ik b_kj|; integers exact


def test_non_contiguous_and_negative_stride_feeds(rng: np.random.Generator) -> None:
    base = random_array(rng, (6, 8), "float64")
    x = gc.placeholder("float64", (None, None))
    for view in (base[::2, 1::3], base[::-1, ::-2], base.T):
        got, want = both(gc.exp(x) + x, {x: view})
        assert_paths_agree(got, want, gc.exp(x) + x, {x: view}, DEVICES)


def test_generated_code_is_inspectable_and_vectorised() -> None:
    x = gc.placeholder("float32", (4096,))
    f = gc.function([x], gc.sqrt(x * x + 1.0), device="cpu")
    f(np.ones(4096, np.float32))
    executable = next(iter(f._program._executables.values()))
    assert "graphc_entry" in executable.source("llvm")
    asm = executable.source("asm")
    assert "ymm" in asm or "zmm" in asm or "xmm" in asm


UNARY = ["neg", "abs", "exp", "tanh", "sigmoid", "square", "relu", "floor"]
BINARY = ["add", "subtract", "multiply", "maximum", "minimum", "divide"]


@st.composite
def programs(draw: st.DrawFn) -> tuple[Any, dict]:
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    shapes = [(3, 4), (4,), (3, 1), ()]
    leaves = []
    feeds = {}
    for _ in range(draw(st.integers(1, 3))):
        shape = draw(st.sampled_from(shapes))
        p = gc.placeholder("float64", shape)
        feeds[p] = rng.uniform(-2, 2, shape)
        leaves.append(p)
    nodes = list(leaves)
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            nodes.append(getattr(gc, draw(st.sampled_from(UNARY)))(draw(st.sampled_from(nodes))))
        else:
            a, b = draw(st.sampled_from(nodes)), draw(st.sampled_from(nodes))
            nodes.append(getattr(gc, draw(st.sampled_from(BINARY)))(a, b))
    out = nodes[-1]
    if draw(st.booleans()) and out.ndim:
        out = gc.sum(out, axis=-1)
    return out, feeds


@settings(max_examples=60, deadline=None)
@given(program=programs())
def test_random_graphs_match_reference(program: tuple[Any, dict]) -> None:
    out, feeds = program
    got, want = both(out, feeds)
    assert_paths_agree(got, want, out, feeds, DEVICES)


def test_function_source() -> None:
    x = gc.placeholder("float32", (None,))
    f = gc.function([x], gc.exp(x) * 2.0, device="cpu")
    with pytest.raises(gc.GraphError, match="call it once"):
        f.source()
    f(np.ones(8, np.float32))
    assert "define" in f.source("llvm") and "graphc_entry" in f.source("asm")
    with pytest.raises(gc.ArgumentError, match="'llvm' or 'asm'"):
        f.source("ptx")
    with pytest.raises(gc.ArgumentError, match="device='cpu'"):
        gc.function([x], x, device="reference").source()


@pytest.mark.parametrize("build", [
    lambda x, y, q: gc.softmax(x), lambda x, y, q: gc.log_softmax(x, axis=0), lambda x, y, q: gc.logsumexp(x, axis=1),
    lambda x, y, q: gc.logsumexp(x, axis=(0, 1), keepdims=True), lambda x, y, q: gc.softmax_cross_entropy(x, y),
    lambda x, y, q: gc.softmax_cross_entropy(x, q), lambda x, y, q: gc.softmax_cross_entropy(x, q[:1]),
    lambda x, y, q: gc.one_hot(y, 5, dtype="float64"), lambda x, y, q: gc.ones_like(x) * x,
])
def test_softmax_family_cross_entropy_and_like_ops(build: Any, rng: np.random.Generator) -> None:
    x = gc.placeholder("float32", (None, 5), name="sx")
    y = gc.placeholder("int64", (None,), name="sy")
    q = gc.placeholder("float32", (None, 5), name="sq")
    xv = random_array(rng, (4, 5), "float32", -30, 30)
    xv[0, 0], xv[1] = 1000.0, -np.inf  # stability: huge logits, a row of -inf
    feeds = {x: xv, y: np.array([0, 4, 2, 1]), q: random_array(rng, (4, 5), "float32", 0, 1)}
    out = build(x, y, q)
    got, want = both(out, feeds)
    assert_paths_agree(got, want, out, feeds, DEVICES)


def test_out_of_range_label_is_an_execution_error_naming_the_line() -> None:
    x = gc.placeholder("float32", (None, 3), name="lx")
    y = gc.placeholder("int64", (None,), name="ly")
    loss = gc.softmax_cross_entropy(x, y)
    with pytest.raises(gc.ExecutionError, match=r"(?s)out of range for 3 classes.*test_cpu_backend\.py"):
        gc.Session(device="cpu").run(loss, {x: np.zeros((2, 3)), y: [0, 3]})


def test_training_steps_match_the_reference(rng: np.random.Generator) -> None:
    x = gc.placeholder("float32", (None, 20), name="tx")
    y = gc.placeholder("int64", (None,), name="ty")
    w1 = gc.Variable(random_array(rng, (20, 16), "float32") * 0.1, name="tw1")
    b1 = gc.Variable(np.zeros(16, np.float32), name="tb1")
    w2 = gc.Variable(random_array(rng, (16, 3), "float32") * 0.1, name="tw2")
    loss = gc.mean(gc.softmax_cross_entropy(gc.relu(x @ w1 + b1) @ w2, y))
    params = [w1, b1, w2]
    xb, yb = random_array(rng, (32, 20), "float32"), rng.integers(0, 3, 32)
    updates = gc.optimizers.Adam(0.01).updates(loss, params)  # both steps update the same Variables
    state = list(updates)
    steps = {device: gc.function([x, y], loss, updates=updates, device=device) for device in ("reference", "cpu")}
    losses = []
    for _ in range(15):  # each step from the same state on both devices: within the promise
        before = [v.value for v in state]
        bounds = path_bounds([loss, *updates.values()], {x: xb, y: yb}, {DEVICES, FUSION})
        want_loss = steps["reference"](xb, yb)
        want = [v.value for v in state]
        for v, value in zip(state, before):
            v.assign(value)
        losses.append(steps["cpu"](xb, yb))
        assert_within(losses[-1], want_loss, bounds[0], signed_zeros=False)
        for v, w, bound in zip(state, want, bounds[1:]):
            assert_within(v.value, w, bound, signed_zeros=False)
    assert losses[-1] < losses[0]
