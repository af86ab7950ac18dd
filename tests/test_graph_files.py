"""Graph files: gc.save_graph / gc.load_graph round-trip every op, and refuse damaged or hostile files."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import graphc as gc
from graphc.graphfile import GRAPH_ENTRY, VERSION
from graphc.graphfile.format import BODIES_VERSION, FIRST_VERSION
from graphc.ir.body import Body
from graphc.ir.graph import topological_order
from graphc.ir.registry import REGISTRY
from graphc.ops.kernel import Kernel

ROOT = Path(__file__).parent.parent
Example = tuple[list[gc.Tensor], list[gc.Tensor], list[np.ndarray]]  # outputs, inputs, values for the inputs
RNG = np.random.default_rng(0)


def _floats(*shape: int, dtype: Any = np.float32) -> np.ndarray:
    return RNG.uniform(-2, 2, size=shape).astype(dtype)


# ---- example graphs, one per op family --------------------------------------------------------------

def elementwise_graph() -> Example:
    x = gc.placeholder("float32", (None, 4), name="x")
    y = gc.placeholder("float32", (None, 4), name="y")
    n = gc.placeholder("int32", (None, 4), name="n")
    p = gc.abs(x) + 0.5
    unary = [gc.neg(x), gc.abs(x), gc.sign(x), gc.exp(x), gc.expm1(x), gc.log(p), gc.log1p(p), gc.sqrt(p),
             gc.rsqrt(p), gc.square(x), gc.reciprocal(p), gc.sin(x), gc.cos(x), gc.tanh(x), gc.sigmoid(x),
             gc.relu(x), gc.softplus(x), gc.erf(x), gc.floor(x), gc.ceil(x), gc.round(x), gc.isnan(x / y),
             gc.isfinite(x / y), gc.logical_not(x > 0), gc.stop_gradient(x)]
    binary = [x + y, x - y, x * y, x / y, x // p, x % p, p ** y, gc.maximum(x, y), gc.minimum(x, y), x == y,
              x != y, x < y, x <= y, x > y, x >= y, gc.logical_and(x > 0, y > 0), gc.logical_or(x > 0, y > 0),
              gc.where(x > y, x, y), gc.cast(x, "int16"), gc.cast(n, "float64") * 2.5, n + 1, n * np.int8(3),
              gc.sigmoid_cross_entropy(x, gc.sigmoid(y)), (x > 0) & (y < 0) | ~(x > 1)]
    values = [_floats(3, 4), _floats(3, 4), RNG.integers(-5, 5, (3, 4)).astype(np.int32)]
    values[1][0, 0] = 0.0  # a division by zero: inf and nan must survive the round trip too
    values[0][0, 0] = 0.0
    return unary + binary, [x, y, n], values


def reduction_graph() -> Example:
    x = gc.placeholder("float64", (2, None, 3), name="x")
    b = gc.placeholder("bool", (2, 3), name="b")
    outs = [gc.sum(x), gc.sum(x, axis=1), gc.mean(x, axis=(0, 2), keepdims=True), gc.max(x, axis=-1),
            gc.min(x, axis=0, keepdims=True), gc.prod(x, axis=2), gc.logsumexp(x, axis=1), gc.argmax(x, axis=1),
            gc.argmin(x), gc.argmax(x, axis=0, keepdims=True), gc.sum(b, axis=1), gc.mean(b)]
    return outs, [x, b], [_floats(2, 5, 3, dtype=np.float64), RNG.random((2, 3)) < 0.5]


def shape_graph() -> Example:
    x = gc.placeholder("float32", (None, 3, 4), name="x")
    idx = gc.placeholder("int64", (5,), name="idx")
    parts = gc.split(x, [1, 3], axis=2)
    outs = [gc.reshape(x, (-1, 12)), gc.transpose(x, (2, 0, 1)), x.T, gc.expand_dims(x, (0, 3)),
            gc.squeeze(gc.expand_dims(x, 1), 1), gc.broadcast_to(x[0], (2, 3, 4)), gc.concat([x, x * 2], axis=1),
            gc.stack([x, x], axis=-1), *parts, x[1, ::-1, 1:3], x[..., None, -1], x[:, None, 2:, ::2],
            gc.pad(x, 1, constant_values=np.nan), gc.pad(x, ((0, 0), (1, 2), (2, 0)), mode="edge"),
            gc.pad(x, ((0, 0), (1, 1), (2, 2)), mode="reflect"), gc.pad(x, 1, mode="symmetric"),
            gc.pad(x, 2, constant_values=-1.5), gc.take(x, idx % 3, axis=1), gc.take(x, idx), gc.one_hot(idx, 4),
            gc.one_hot(idx, 3, dtype="int8"), gc.zeros_like(x), gc.ones_like(idx)]
    return outs, [x, idx], [_floats(2, 3, 4), np.array([0, 3, 1, 2, 0])]


def nn_graph() -> Example:
    x = gc.placeholder("float32", (None, 2, 6, 6), name="images")
    labels = gc.placeholder("int64", (None,), name="labels")
    w = gc.Variable(_floats(3, 2, 3, 3), name="kernel")
    m = gc.Variable(_floats(12, 5), name="dense")
    outs = [gc.conv2d(x, w), gc.conv2d(x, w, strides=2, padding="SAME"), gc.conv2d(x, w, strides=(1, 2), padding=1),
            gc.conv2d(x, w, padding=((1, 0), (2, 1))), gc.max_pool2d(x, 2), gc.avg_pool2d(x, 3, strides=2,
                                                                                          padding="SAME"),
            gc.max_pool2d(x, (2, 3), strides=1, padding=((0, 1), (1, 1)))]
    flat = gc.reshape(gc.max_pool2d(gc.relu(gc.conv2d(x, w)), 2), (-1, 12))
    logits = flat @ m
    outs += [logits, gc.matmul(x, gc.transpose(x, (0, 1, 3, 2))), gc.softmax(logits), gc.log_softmax(x, axis=(2, 3)),
             gc.softmax_cross_entropy(logits, labels), gc.softmax_cross_entropy(logits, gc.softmax(logits * 2.0))]
    return outs, [x, labels], [_floats(2, 2, 6, 6), np.array([4, 1])]


def state_graph() -> Example:
    x = gc.placeholder("float64", (3,), name="x")
    v = gc.Variable(np.arange(3.0), name="v")
    steps = gc.Variable(np.int64(0), name="steps", trainable=False)
    flag = gc.Variable(np.array([True, False]), name="flag")
    total = gc.sum(v * x)
    update = gc.group(gc.assign(v, v + x), gc.assign_add(steps, 1), name="update")
    return [total, update, gc.assign(flag, gc.logical_not(flag)), steps], [x], [np.array([1.0, -2.0, 0.5])]


def gradient_graph() -> Example:
    """Gradients bring in the adjoint ops (slice_grad, pad_grad, take_grad, conv2d_grad_*, pool grads...)."""
    x = gc.placeholder("float64", (2, 2, 5, 5), name="gx")
    w = gc.Variable(_floats(2, 2, 2, 2, dtype=np.float64), name="gw")
    idx = gc.constant(np.array([2, 0, 1]))
    h = gc.conv2d(x, w, padding="SAME")
    h = gc.max_pool2d(h, 2, strides=1) + gc.avg_pool2d(h, 2, strides=1)
    h = gc.pad(h[:, :, 1:, ::-1], ((0, 0), (0, 0), (1, 0), (0, 2)), mode="reflect")
    h = gc.concat([h, gc.take(h, idx, axis=3)], axis=3) * gc.broadcast_to(w[0, 0, 0, 0], (9,))
    loss = gc.sum(gc.squeeze(gc.expand_dims(h, 0), 0) ** 2) + gc.sum(gc.reshape(h, (-1,)) * 0.5)
    gx, gw = gc.grad(loss, [x, w])
    (ggx,) = gc.grad(gc.sum(gx * gx), [x])  # second order: gradients of the adjoint ops
    return [loss, gx, gw, ggx], [x], [_floats(2, 2, 5, 5, dtype=np.float64)]


def fused_graph() -> Example:
    """An optimised graph: fused kernels (one of them with two outputs, read by kernel_output nodes)."""
    x = gc.placeholder("float32", (None, 8), name="fx")
    w = gc.Variable(_floats(8, 4), name="fw")
    h = gc.relu(x @ w + 1.0)
    shared = gc.exp(x) * 2.0
    outs = [h, gc.sum(gc.tanh(h) * 3.0, axis=1), shared + 1.0, shared - 1.0]
    return list(gc.optimize(outs).outputs), [x], [_floats(5, 8)]


def control_flow_graph() -> Example:
    """loop (gc.scan, gc.while_loop), cond and the part nodes reading their outputs."""
    x = gc.placeholder("float32", (None, 3), name="cx")
    w = gc.Variable(_floats(3), name="cw")
    scale = gc.placeholder("float32", (), name="scale")

    def step(xt: gc.Tensor, h: gc.Tensor, w_: gc.Tensor, s: gc.Tensor) -> list[gc.Tensor]:
        new = gc.tanh(h * w_ + xt * s)
        return [new, gc.sum(new * xt)]

    hs, dots = gc.scan(step, sequences=x, outputs_info=[gc.zeros_like(x[0]), None], non_sequences=[w, scale])
    steps, grown = gc.while_loop(lambda i, v: gc.sum(v * v) < 30.0, lambda i, v: (i + 1, v * 1.5 + 0.25),
                                 [0, gc.abs(x[0]) + scale], maximum_iterations=6)
    chosen = gc.cond(gc.sum(x) > 0.0, lambda: (hs[-1] * scale, gc.max(x)), lambda: (grown - w, gc.min(x)))
    return [hs, dots, steps, grown, *chosen], [x, scale], [_floats(4, 3), np.float32(0.75)]


EXAMPLES: dict[str, Callable[[], Example]] = {
    "elementwise": elementwise_graph, "reductions": reduction_graph, "shape": shape_graph, "nn": nn_graph,
    "state": state_graph, "gradients": gradient_graph, "fused": fused_graph, "control_flow": control_flow_graph,
}


def _inner_graphs(node: gc.Tensor) -> list[Kernel | Body]:
    return [v for _, v in sorted(node.attrs.items()) if isinstance(v, (Kernel, Body))]


def _all_ops(outputs: list[gc.Tensor]) -> set[str]:
    """The ops of the graph computing ``outputs``, fused kernels' and control-flow bodies' included."""
    found: set[str] = set()
    for node in topological_order(outputs):
        found.add(node.op)
        for inner in _inner_graphs(node):
            found |= _all_ops([*inner.outputs, *inner.params])
    return found


def _run(outputs: list[gc.Tensor], inputs: list[gc.Tensor], values: list[np.ndarray]) -> list[Any]:
    with np.errstate(all="ignore"):
        return gc.Session().run(outputs, dict(zip(inputs, values)))


def _assert_same_results(expected: list[Any], got: list[Any]) -> None:
    assert len(expected) == len(got)
    for e, g in zip(expected, got):
        if e is None:
            assert g is None
            continue
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_array_equal(g, e)  # the same ops on the same values: bit for bit (nan == nan)


def _round_trip(tmp_path: Path, outputs: list[gc.Tensor], inputs: list[gc.Tensor] | None = None,
                name: str = "graph.gcg") -> tuple[list[gc.Tensor], list[gc.Tensor]]:
    path = tmp_path / name
    gc.save_graph(path, outputs, inputs=inputs)
    return gc.load_graph(path)


# ---- round trips --------------------------------------------------------------------------------------

@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_round_trip_gives_the_same_results(example: str, tmp_path: Path) -> None:
    outputs, inputs, values = EXAMPLES[example]()
    loaded_inputs, loaded_outputs = _round_trip(tmp_path, outputs, inputs)
    assert [t.op for t in loaded_inputs] == ["placeholder"] * len(inputs)
    original = topological_order(outputs)
    rebuilt = topological_order(loaded_outputs)
    assert [n.op for n in rebuilt] == [n.op for n in original]
    for a, b in zip(original, rebuilt):
        assert (b.dtype, b.shape, b.weak, b.location) == (a.dtype, a.shape, a.weak, a.location)
        assert b.name == a.name or b.name.startswith(a.name + "_")  # names taken in this process get a suffix
    _assert_same_results(_run(outputs, inputs, values), _run(loaded_outputs, loaded_inputs, values))
    if example == "state":  # the updates ran on both graphs' own Variables, from the same saved values
        variables = [n for n in original if n.op == "variable"]
        for a, b in zip(variables, [n for n in rebuilt if n.op == "variable"]):
            np.testing.assert_array_equal(b.value, a.value)
            assert b.trainable == a.trainable and b is not a


def test_every_registered_op_can_be_saved(tmp_path: Path) -> None:
    covered: set[str] = set()
    for name, build in EXAMPLES.items():
        outputs, inputs, _ = build()
        covered |= _all_ops(outputs)
        _, loaded = _round_trip(tmp_path, outputs, inputs, name=f"{name}.gcg")
        assert _all_ops(loaded) == _all_ops(outputs)
    missing = sorted(set(REGISTRY) - covered)
    assert not missing, f"no example graph uses: {missing} (add them to an example above)"


# ---- control flow: loops, conditionals and the bodies they run -----------------------------------------

def _nested_scan_graph() -> Example:
    x = gc.placeholder("float32", (None, 4, 3), name="nx")
    w = gc.Variable(_floats(3) * 0.5, name="nw")

    def outer(xt: gc.Tensor, h: gc.Tensor, w_: gc.Tensor) -> gc.Tensor:
        inner = gc.scan(lambda row, g: gc.tanh(g * w_ + row), sequences=xt, outputs_info=h)  # a loop in a loop
        return inner[-1] + gc.sum(xt, axis=0)

    hs = gc.scan(outer, sequences=x, outputs_info=gc.zeros_like(x[0, 0]), non_sequences=[w])
    return [hs, gc.sum(hs * hs)], [x], [_floats(5, 4, 3)]


def _scan_gradient_graph() -> Example:
    x = gc.placeholder("float64", (None, 3), name="gx")
    h0 = gc.placeholder("float64", (3,), name="gh0")
    w = gc.Variable(_floats(3, 3, dtype=np.float64) * 0.4, name="gw")
    hs = gc.scan(lambda xt, h: gc.tanh(h @ w + xt), sequences=x, outputs_info=h0)
    loss = gc.sum(hs * hs)
    return [loss, *gc.grad(loss, [w, x, h0])], [x, h0], [_floats(6, 3, dtype=np.float64), _floats(3, dtype=np.float64)]


def _while_loop_graph() -> Example:
    x = gc.placeholder("float32", (3,), name="wx")
    limit = gc.placeholder("int64", (), name="limit")
    i, v, total = gc.while_loop(lambda i, v, t: gc.logical_and(i < limit, gc.sum(v) < 100.0),
                                lambda i, v, t: (i + 1, v * 2.0 + gc.sin(v), t + gc.max(v)),
                                [0, x, 0.0], maximum_iterations=8)
    (dx,) = gc.grad(gc.sum(v) + total, [x])  # the bounded while loop differentiated
    return [i, v, total, dx], [x, limit], [_floats(3), np.int64(5)]


def _cond_graph() -> Example:
    x = gc.placeholder("float32", (None, 2), name="kx")
    flag = gc.placeholder("bool", (), name="flag")
    w = gc.Variable(_floats(2, 2), name="kw")
    big, small = gc.cond(flag, lambda: (gc.relu(x @ w), gc.sum(x)), lambda: (x * 3.0 - 1.0, gc.max(x)))
    return [big, small], [x, flag], [_floats(5, 2), np.True_]


def _cond_gradient_graph() -> Example:
    outputs, (x, flag), values = _cond_graph()
    (w,) = gc.Graph(outputs).variables
    return [*outputs, *gc.grad(gc.sum(outputs[0]) + outputs[1], [w, x])], [x, flag], values


def _optimized_loop_graph() -> Example:
    """gc.optimize on a nested scan: fused kernels inside the bodies of loops inside bodies."""
    outputs, inputs, values = _nested_scan_graph()
    return list(gc.optimize([outputs[0] * 2.0 + 1.0, outputs[1]]).outputs), inputs, values


CONTROL_FLOW: dict[str, Callable[[], Example]] = {
    "scan": control_flow_graph, "nested_scan": _nested_scan_graph, "scan_gradient": _scan_gradient_graph,
    "while_loop": _while_loop_graph, "cond": _cond_graph, "cond_gradient": _cond_gradient_graph,
    "optimized": _optimized_loop_graph,
}
ROUND_TRIPS = [pytest.param(example, device, id=f"{example}-{device}")
               for example in sorted(CONTROL_FLOW) for device in ("reference", "cpu")]


def _bodies(outputs: list[gc.Tensor]) -> list[Body]:
    """Every body of the graph computing ``outputs``, nested ones included, in the order they are reached."""
    found: list[Body] = []
    for node in topological_order(outputs):
        for inner in _inner_graphs(node):
            if isinstance(inner, Body):
                found.append(inner)
            found += _bodies([*inner.outputs, *inner.params])
    return found


def _shown(body: Body) -> list[tuple[Any, ...]]:
    """What a body is made of: its nodes (op, exact name, type, where built; a parameter's input index) and
    which of them are its parameters and outputs."""
    position = {n.id: k for k, n in enumerate(body.nodes)}
    return [*((n.op, n.name, n.dtype, n.shape, n.weak, n.location, n.attrs.get("index") if n.op == "parameter"
               else None, [position[i.id] for i in n.inputs]) for n in body.nodes),
            ("params", [position.get(p.id) for p in body.params]), ("outputs", [position[o.id] for o in body.outputs])]


@pytest.mark.parametrize(("example", "device"), ROUND_TRIPS)
def test_control_flow_round_trips(example: str, device: str, tmp_path: Path) -> None:
    outputs, inputs, values = CONTROL_FLOW[example]()
    loaded_inputs, loaded_outputs = _round_trip(tmp_path, outputs, inputs)
    bodies, again = _bodies(outputs), _bodies(loaded_outputs)
    assert bodies and [_shown(b) for b in again] == [_shown(b) for b in bodies]
    assert len({id(b) for b in again}) == len({id(b) for b in bodies})  # a body two loops share stays shared
    with np.errstate(all="ignore"):
        expected = gc.function(inputs, outputs, device=device)(*values)
        got = gc.function(loaded_inputs, loaded_outputs, device=device)(*values)
    _assert_same_results(expected, got)


def _loops(outputs: list[gc.Tensor]) -> list[gc.Tensor]:
    found = []
    for node in topological_order(outputs):
        found += [node] if node.op == "loop" else []
        for inner in _inner_graphs(node):
            found += _loops(list(inner.outputs))
    return found


@pytest.mark.parametrize("example", ["nested_scan", "scan_gradient", "while_loop"])
def test_loops_keep_their_attributes(example: str, tmp_path: Path) -> None:
    outputs, inputs, _ = CONTROL_FLOW[example]()
    _, loaded = _round_trip(tmp_path, outputs, inputs)
    original, rebuilt = _loops(outputs), _loops(loaded)  # inner loops included

    def plain(node: gc.Tensor) -> dict[str, Any]:
        return {k: v for k, v in node.attrs.items() if not isinstance(v, Body)}

    assert [plain(n) for n in rebuilt] == [plain(n) for n in original]
    assert all(type(n.attrs["stacked"]) is tuple and type(n.attrs["labels"]) is tuple for n in rebuilt)
    assert [n.parts for n in rebuilt] == [n.parts for n in original]
    if example == "nested_scan":
        assert any(n.op == "loop" for b in _bodies(loaded) for n in b.nodes)
    else:  # the backward loop of the gradient: a trip count, run from the last row to the first
        assert any(n.attrs["has_trip"] and n.attrs["reverse"] for n in rebuilt)


def test_a_loaded_loop_differentiates_like_the_original(tmp_path: Path) -> None:
    outputs, (x, h0), values = _scan_gradient_graph()
    (lx, lh0), loaded = _round_trip(tmp_path, outputs[:1], [x, h0])
    (w,) = gc.Graph(outputs[:1]).variables
    (lw,) = gc.Graph(loaded).variables
    for device in ("reference", "cpu"):
        expected = gc.function([x, h0], gc.grad(outputs[0], [w, x]), device=device)(*values)
        got = gc.function([lx, lh0], gc.grad(loaded[0], [lw, lx]), device=device)(*values)
        _assert_same_results(expected, got)


def test_the_version_is_the_lowest_that_holds_the_graph(tmp_path: Path) -> None:
    outputs, inputs, _ = shape_graph()
    gc.save_graph(tmp_path / "plain.gcg", outputs, inputs)
    plain = _document(tmp_path / "plain.gcg")
    assert plain["version"] == FIRST_VERSION and "bodies" not in plain  # readable by a graphc without bodies
    outputs, inputs, _ = control_flow_graph()
    gc.save_graph(tmp_path / "loops.gcg", outputs, inputs)
    loops = _document(tmp_path / "loops.gcg")
    assert loops["version"] == BODIES_VERSION == VERSION and len(loops["bodies"]) >= 5


def test_a_body_inside_a_kernel_is_refused_when_saving() -> None:
    from graphc.control.body import parameter
    from graphc.graphfile.save import Writer
    from graphc.ir.registry import AbstractValue

    rows = parameter(0, AbstractValue(np.dtype("float32"), (None, 3)), "rows")
    hs = gc.scan(lambda xt, h: h + xt, sequences=rows, outputs_info=gc.zeros_like(rows[0]))
    kernel = Kernel((rows,), (hs,), "elementwise")  # never built by the fuser: the writer still says so clearly
    with pytest.raises(gc.GraphFileError, match="a fused kernel's inner graph holding a control-flow body"):
        Writer().encode_value(kernel, "test", 0)


def test_fused_kernels_round_trip(tmp_path: Path) -> None:
    outputs, inputs, _ = fused_graph()
    _, loaded = _round_trip(tmp_path, outputs, inputs)
    fused = [n for n in topological_order(outputs) if n.op == "fused"]
    again = [n for n in topological_order(loaded) if n.op == "fused"]
    assert len(fused) >= 2 and len(again) == len(fused)
    for a, b in zip(fused, again):
        ka, kb = a.attrs["kernel"], b.attrs["kernel"]
        assert kb.kind == ka.kind
        assert [(n.op, n.name, n.dtype, n.shape, n.location, dict(n.attrs) if n.op == "parameter" else None)
                for n in kb.nodes] == [(n.op, n.name, n.dtype, n.shape, n.location,
                                        dict(n.attrs) if n.op == "parameter" else None) for n in ka.nodes]
    readers = [n for n in topological_order(loaded) if n.op == "kernel_output"]
    assert readers and all(r.attrs["kernel"] is r.inputs[0].attrs["kernel"] for r in readers)  # one shared kernel
    assert "fused" in gc.dprint(loaded)


def test_names_are_kept_exactly_in_a_fresh_process(tmp_path: Path) -> None:
    outputs, inputs, _ = nn_graph()
    path = tmp_path / "nn.gcg"
    gc.save_graph(path, outputs, inputs=inputs)
    script = ("import json, sys, graphc as gc\n"
              "from graphc.ir.graph import topological_order\n"
              "ins, outs = gc.load_graph(sys.argv[1])\n"
              "print(json.dumps([[t.name for t in ins], [[n.name, n.op, n.dtype.name, list(n.shape), "
              "str(n.location.filename), n.location.lineno] for n in topological_order(outs)]]))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=env,
                          cwd=ROOT, check=True)
    names, nodes = json.loads(done.stdout)
    assert names == [t.name for t in inputs]  # exactly, not made unique: nothing else took them there
    assert nodes == [[n.name, n.op, n.dtype.name, list(n.shape), n.location.filename, n.location.lineno]
                     for n in topological_order(outputs)]


def test_default_inputs_are_the_placeholders_in_topological_order(tmp_path: Path) -> None:
    a = gc.placeholder("float32", (2,), name="a")
    b = gc.placeholder("float32", (2,), name="b")
    unused = gc.placeholder("float32", (2,), name="unused")
    ins, outs = _round_trip(tmp_path, [b * 2 + a])
    assert [t.name.split("_")[0] for t in ins] == ["b", "a"]
    ins, outs = _round_trip(tmp_path, [a + 1], inputs=[unused, a])  # an input the outputs do not use is kept
    assert [t.name.split("_")[0] for t in ins] == ["unused", "a"]
    np.testing.assert_array_equal(gc.Session().run(outs[0], {ins[1]: [1.0, 2.0]}), [2.0, 3.0])


def test_variables_load_as_new_variables_holding_the_saved_values(tmp_path: Path) -> None:
    v = gc.Variable(np.array([[1, 2]], np.int16), name="counts", trainable=False)
    path = tmp_path / "v.gcg"
    gc.save_graph(path, [v * 2])
    v.assign([[5, 6]])  # after saving: the file keeps the value it had
    _, (out,) = gc.load_graph(path)
    (loaded,) = gc.Graph([out]).variables
    assert isinstance(loaded, gc.Variable) and loaded is not v
    assert loaded.dtype == np.int16 and loaded.trainable is False
    np.testing.assert_array_equal(loaded.value, [[1, 2]])
    loaded.assign([[7, 8]])
    np.testing.assert_array_equal(v.value, [[5, 6]])


def test_a_loaded_graph_trains(tmp_path: Path) -> None:
    x = gc.placeholder("float32", (None, 4), name="tx")
    y = gc.placeholder("int64", (None,), name="ty")
    w = gc.Variable(np.zeros((4, 3), np.float32), name="tw")
    b = gc.Variable(np.zeros(3, np.float32), name="tb")
    loss = gc.mean(gc.softmax_cross_entropy(x @ w + b, y))
    (lx, ly), (lloss,) = _round_trip(tmp_path, [loss], [x, y])
    variables = list(gc.Graph([lloss]).variables)
    assert sorted(v.name.split("_")[0] for v in variables) == ["tb", "tw"]

    def trainer(loss_: gc.Tensor, inputs: list[gc.Tensor], params: list[gc.Variable]) -> gc.Function:
        grads = gc.grad(loss_, params)
        return gc.function(inputs, loss_, updates={p: p - 0.5 * g for p, g in zip(params, grads)})

    original = trainer(loss, [x, y], [w, b])
    step = trainer(lloss, [lx, ly], sorted(variables, key=lambda v: v.name.startswith("tb")))
    xb = RNG.standard_normal((64, 4)).astype(np.float32)
    yb = np.argmax(xb[:, :3], axis=1)
    losses = [step(xb, yb) for _ in range(30)]
    reference = [original(xb, yb) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    np.testing.assert_array_equal(losses, reference)  # the same training, step for step


def test_saving_is_deterministic(tmp_path: Path) -> None:
    outputs, inputs, _ = shape_graph()
    gc.save_graph(tmp_path / "a.gcg", outputs, inputs)
    gc.save_graph(tmp_path / "b.gcg", outputs, inputs)
    assert (tmp_path / "a.gcg").read_bytes() == (tmp_path / "b.gcg").read_bytes()


def test_attribute_values_round_trip() -> None:
    from graphc.graphfile.load import Reader as _Reader
    from graphc.graphfile.save import Writer as _Writer

    values = [None, True, False, 0, -7, 2**62, 2.5, -0.0, float("nan"), float("inf"), float("-inf"), "SAME", "",
              (), (1, (2, (None, "x"))), [1, 2], np.dtype("uint8"), np.float32(1.5), np.int8(-3), np.bool_(True),
              np.int64(2**40), (("slice", None, -1, -2), ("int", 3), ("new",)), ((1, 2), (0, 3))]
    writer, reader = _Writer(), _Reader("memory", None)  # type: ignore[arg-type]
    for value in values:
        text = json.dumps(writer.encode_value(value, "test", 0), allow_nan=False)
        back = reader.value(json.loads(text), "test", 0)
        assert type(back) is type(value)
        assert repr(back) == repr(value)


# ---- argument errors when saving ----------------------------------------------------------------------

def test_save_argument_errors(tmp_path: Path) -> None:
    x = gc.placeholder("float32", (2,), name="sx")
    out = gc.exp(x)
    with pytest.raises(gc.ArgumentError, match="input 0 must be a placeholder"):
        gc.save_graph(tmp_path / "g.gcg", [out], inputs=[out])
    with pytest.raises(gc.ArgumentError, match="list of placeholders"):
        gc.save_graph(tmp_path / "g.gcg", [out], inputs=x)  # type: ignore[arg-type]
    with pytest.raises(gc.ArgumentError, match="given twice"):
        gc.save_graph(tmp_path / "g.gcg", [out], inputs=[x, x])
    with pytest.raises(gc.ArgumentError, match="expected a Tensor"):
        gc.save_graph(tmp_path / "g.gcg", [out, 3])  # type: ignore[list-item]
    with pytest.raises(gc.ArgumentError, match="at least one output"):
        gc.save_graph(tmp_path / "g.gcg", [])
    gc.save_graph(tmp_path / "single.gcg", out)  # a single output tensor is fine
    assert len(gc.load_graph(tmp_path / "single.gcg")[1]) == 1


def test_a_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    x = gc.placeholder("float32", (2,), name="fx_save")
    with pytest.raises(gc.GraphFileError, match="cannot write graph file"):
        gc.save_graph(tmp_path / "missing-dir" / "g.gcg", [x + 1])
    target = tmp_path / "g.gcg"
    target.write_bytes(b"old")
    target_dir = tmp_path / "dir.gcg"
    target_dir.mkdir()
    with pytest.raises(gc.GraphFileError, match="cannot write graph file"):
        gc.save_graph(target_dir, [x + 1])  # a directory cannot be replaced by a file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.gcg", "g.gcg"]  # no temporary files left


# ---- damaged and hostile files ------------------------------------------------------------------------

@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    x = gc.placeholder("float32", (None, 3), name="ex")
    w = gc.Variable(np.arange(6, dtype=np.float32).reshape(3, 2), name="ew")
    out = gc.relu(x @ w + gc.constant(np.array([1.0, -1.0], np.float32)))
    path = tmp_path / "good.gcg"
    gc.save_graph(path, list(gc.optimize([out, gc.pad(out, 1, mode="edge")]).outputs), inputs=[x])
    return path


def _document(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(GRAPH_ENTRY))


def _rewrite(path: Path, mutate: Callable[[dict[str, Any]], Any] | None = None, text: str | None = None,
             drop: str | None = None, add: tuple[str, bytes] | None = None) -> Path:
    """A copy of the graph file at ``path`` with its graph.json changed, an entry dropped or one added."""
    out = path.with_name("changed.gcg")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename == drop:
                continue
            data = src.read(info)
            if info.filename == GRAPH_ENTRY:
                if mutate is not None:
                    document = json.loads(data)
                    mutate(document)
                    data = json.dumps(document).encode()
                if text is not None:
                    data = text.encode()
            dst.writestr(info, data)
        if add is not None:
            dst.writestr(*add)
    return out


def _load_error(path: Path) -> str:
    with pytest.raises(gc.GraphFileError) as info:
        gc.load_graph(path)
    message = str(info.value)
    assert str(path) in message, message  # the message names the file
    assert isinstance(info.value, gc.GraphcError) and isinstance(info.value, ValueError)
    return message


def test_the_good_file_loads(good_file: Path) -> None:
    ins, outs = gc.load_graph(good_file)
    assert len(ins) == 1 and len(outs) == 2


def test_nonexistent_path_and_directory(tmp_path: Path) -> None:
    assert "no such file" in _load_error(tmp_path / "nothing-here.gcg")
    assert "Is a directory" in _load_error(tmp_path)


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "text.gcg"
    path.write_text("hello, I am not a graph\n")
    assert "not a readable zip archive" in _load_error(path)
    empty = tmp_path / "empty.gcg"
    empty.write_bytes(b"")
    _load_error(empty)


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.99, -1])
def test_truncated_file(good_file: Path, keep: float) -> None:
    data = good_file.read_bytes()
    cut = len(data) - 1 if keep == -1 else int(len(data) * keep)
    good_file.write_bytes(data[:cut])
    _load_error(good_file)


def _data_ranges(path: Path) -> dict[str, tuple[int, int]]:
    """entry name -> (start, end) of its stored bytes in the archive."""
    data = path.read_bytes()
    ranges = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26: info.header_offset + 30])
            start = info.header_offset + 30 + name_len + extra_len
            ranges[info.filename] = (start, start + info.compress_size)
    return ranges


def test_flipped_bytes_in_any_entry_are_detected(good_file: Path) -> None:
    data = good_file.read_bytes()
    for entry, (start, end) in _data_ranges(good_file).items():
        # (the last byte of graph.json's deflate stream can hold only padding bits: it is not tried)
        positions = {start, (start + end) // 2} | ({end - 1} if entry.endswith(".npy") else set())
        for position in sorted(positions):
            damaged = bytearray(data)
            damaged[position] ^= 0xFF
            good_file.write_bytes(bytes(damaged))
            assert f"entry '{entry}' is damaged" in _load_error(good_file)


def test_flipped_bytes_anywhere_never_escape_as_other_errors(good_file: Path) -> None:
    """Wherever a byte is damaged, loading gives GraphFileError or (for bytes zip does not check, such as
    timestamps) the same graph; never another exception."""
    data = good_file.read_bytes()
    expected = [n.op for n in topological_order(gc.load_graph(good_file)[1])]
    for position in range(0, len(data), 3):
        damaged = bytearray(data)
        damaged[position] ^= 0x55
        good_file.write_bytes(bytes(damaged))
        try:
            _, outs = gc.load_graph(good_file)
        except gc.GraphFileError as exc:
            assert str(good_file) in str(exc)
        else:
            assert [n.op for n in topological_order(outs)] == expected, position


def test_invalid_json(good_file: Path) -> None:
    assert "not valid JSON" in _load_error(_rewrite(good_file, text="{\"format\": "))
    assert "not valid JSON" in _load_error(_rewrite(good_file, text="{\"a\": NaN}"))
    assert "expected a JSON object" in _load_error(_rewrite(good_file, text="[1, 2]"))


def test_future_version(good_file: Path) -> None:
    def future(doc: dict[str, Any]) -> None:
        doc["version"] = VERSION + 1
        doc["graphc_version"] = "9.0"
    message = _load_error(_rewrite(good_file, future))
    assert f"format version {VERSION + 1} (written by graphc 9.0) is newer" in message and "upgrade graphc" in message


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting the field at ``path`` ("nodes.3.op") to ``value`` (a callable: applied to the old)."""
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.lstrip("-").isdigit() else p for p in path.split(".")]
        target: Any = doc
        for p in parents:
            target = target[p]
        target[last] = value(target[last]) if callable(value) else value
    return mutate


def _index_of(doc: dict[str, Any], op: str) -> int:
    return next(i for i, n in enumerate(doc["nodes"]) if n["op"] == op)


@pytest.mark.parametrize(("mutation", "expected"), [
    (lambda d: _set("format", "something.else")(d), "not a graphc graph file"),
    (lambda d: _set("version", "1")(d), "'version' must be a positive integer"),
    (lambda d: d.pop("nodes"), "missing field 'nodes'"),
    (lambda d: _set("nodes", {"op": "add"})(d), "field 'nodes' must be a JSON array"),
    (lambda d: _set("nodes.0", [])(d), "node 0: expected a JSON object"),
    (lambda d: _set("nodes.0.op", "launch_missiles")(d), "unknown op 'launch_missiles'"),
    (lambda d: _set("nodes.0.op", 3)(d), "field 'op' must be a JSON string"),
    (lambda d: _set(f"nodes.{_index_of(d, 'fused')}.inputs.0", 10**6)(d), "is not the index of an earlier node"),
    (lambda d: _set(f"nodes.{_index_of(d, 'fused')}.inputs.0", True)(d), "is not the index of an earlier node"),
    (lambda d: _set(f"nodes.{_index_of(d, 'fused')}.inputs.0", -1)(d), "is not the index of an earlier node"),
    (lambda d: _set("nodes.0.shape", "abc")(d), "field 'shape' must be a JSON array"),
    (lambda d: _set("nodes.0.shape", [None, -3])(d), "is not a shape"),
    (lambda d: _set("nodes.0.dtype", "complex128")(d), "unknown dtype"),
    (lambda d: _set("nodes.0.dtype", "float64")(d), "the file says float64[?, 3], but rebuilt it is float32[?, 3]"),
    (lambda d: _set("nodes.0.attrs.shape", {"tuple": [None, 4]})(d), "the file says float32[?, 3], but rebuilt"),
    (lambda d: (_set("nodes.0.attrs.shape", {"tuple": [None, 4]})(d), _set("nodes.0.shape", [None, 4])(d)),
     "does not rebuild: fused: matmul: contracted dimensions differ"),
    (lambda d: _set("nodes.0.attrs.shape", [None, 3])(d), "expected a JSON scalar or an object with one tag"),
    (lambda d: _set("nodes.0.attrs.shape", {"tuple": [None, 3], "x": 1})(d), "an object with one tag"),
    (lambda d: _set("nodes.0.attrs.shape", {"__reduce__": "os.system"})(d), "unknown value tag '__reduce__'"),
    (lambda d: _set("nodes.0.attrs.dtype", {"dtype": "object"})(d), "unknown dtype \"object\""),
    (lambda d: _set("nodes.0.attrs.shape", {"tuple": [None, {"float": "1e9"}]})(d), "'float' must be one of"),
    (lambda d: _set("nodes.0.attrs.surprise", 1)(d), "does not rebuild: TypeError"),
    (lambda d: _set("nodes.0.location", {"file": "x.py", "line": "3", "function": "f"})(d),
     "field 'line' must be a JSON integer"),
    (lambda d: _set(f"nodes.{_index_of(d, 'pad')}.attrs.mode", "wrap")(d), "attribute 'mode' is 'wrap'"),
    (lambda d: _set(f"nodes.{_index_of(d, 'variable')}.trainable", "yes")(d), "'trainable' must be true or false"),
    (lambda d: _set(f"nodes.{_index_of(d, 'variable')}.value", 99)(d), "not an index into the arrays table"),
    (lambda d: _set(f"nodes.{_index_of(d, 'fused')}.attrs.kernel", {"kernel": 99})(d),
     "is not the index of an earlier kernel"),
    (lambda d: _set("kernels.0.kind", "magic")(d), "unknown kernel kind 'magic'"),
    (lambda d: _set("kernels.0.params", [])(d), "the kernel has 0 parameters but the node has"),
    (lambda d: _set("kernels.0.outputs", [])(d), "a kernel needs at least one output"),
    (lambda d: _set("arrays.0.shape", lambda s: s[::-1])(d), "has shape [3, 2], but the arrays table says [2, 3]"),
    (lambda d: _set("arrays.0.dtype", "float64")(d), "holds float32, but the arrays table says float64"),
    (lambda d: _set("arrays.0.entry", "elsewhere.npy")(d), "missing entry 'elsewhere.npy'"),
    (lambda d: _set("outputs", [0, 999])(d), "'outputs' holds 999, not the index of a node"),
    (lambda d: _set("inputs", [_index_of(d, "variable")])(d), "not a placeholder"),
    (lambda d: _set("inputs", [0, 0])(d), "an input is listed twice"),
])
def test_invalid_documents(good_file: Path, mutation: Callable[[dict[str, Any]], Any], expected: str) -> None:
    message = _load_error(_rewrite(good_file, mutation))
    assert expected in message, message


def test_missing_and_unexpected_entries(good_file: Path) -> None:
    assert "missing entry 'arrays/0.npy'" in _load_error(_rewrite(good_file, drop="arrays/0.npy"))
    assert "no 'graph.json' entry" in _load_error(_rewrite(good_file, drop=GRAPH_ENTRY))
    assert "unexpected entry 'notes.txt'" in _load_error(_rewrite(good_file, add=("notes.txt", b"hi")))


@pytest.fixture
def loop_file(tmp_path: Path) -> Path:
    outputs, inputs, _ = control_flow_graph()
    path = tmp_path / "loops.gcg"
    gc.save_graph(path, outputs, inputs)
    return path


def _node_of(doc: dict[str, Any], op: str, attr: str | None = None) -> int:
    """The first node of ``op`` in the top-level graph (with an attribute ``attr`` that is not null)."""
    return next(i for i, n in enumerate(doc["nodes"]) if n["op"] == op and (attr is None or n["attrs"][attr]))


def _body_of(doc: dict[str, Any], op: str, attr: str) -> int:
    """The row of the bodies table holding attribute ``attr`` of the first such node."""
    return doc["nodes"][_node_of(doc, op, attr)]["attrs"][attr]["body"]


def _param_of(doc: dict[str, Any], body: int, index: int | None = None) -> str:
    """The path of a parameter node of ``body`` (the one reading input ``index``)."""
    nodes = doc["bodies"][body]["nodes"]
    k = next(k for k, n in enumerate(nodes) if n["op"] == "parameter" and index in (None, n["attrs"]["index"]))
    return f"bodies.{body}.nodes.{k}"


def _read_another_input(doc: dict[str, Any]) -> None:
    """The scan step's row parameter (float32[3]) made to read the scalar ``scale`` (the loop's input 3)."""
    _set(f"{_param_of(doc, _body_of(doc, 'loop', 'body'), 0)}.attrs.index", 3)(doc)


@pytest.mark.parametrize(("mutation", "expected"), [
    (lambda d: _set(f"{_param_of(d, _body_of(d, 'loop', 'body'))}.attrs.index", 99)(d),
     "of its 'body' reads input 99, but that body has 4 inputs"),
    (lambda d: _set(f"{_param_of(d, _body_of(d, 'loop', 'cond'))}.attrs.index", 99)(d),
     "of its 'cond' reads input 99, but that body has"),
    (lambda d: _set(f"{_param_of(d, _body_of(d, 'cond', 'true_body'))}.attrs.index", -1)(d),
     "a parameter needs attribute 'index' (an int >= 0)"),
    (lambda d: _set(f"{_param_of(d, _body_of(d, 'loop', 'body'))}.attrs.index", "0")(d),
     "a parameter needs attribute 'index' (an int >= 0)"),
    (_read_another_input, "of its 'body' is float32[3], but the input it reads (3) is float32[]"),
    (lambda d: _set(f"bodies.{_body_of(d, 'loop', 'body')}.outputs", [999])(d),
     "'outputs' holds 999, not the index of a node"),
    (lambda d: _set(f"bodies.{_body_of(d, 'loop', 'body')}.outputs", [])(d),
     "its 'body' gives 0 outputs, fewer than the 1 loop variables"),
    (lambda d: d["bodies"][0].pop("params"), "body 0: missing field 'params'"),
    (lambda d: d["bodies"][0].pop("nodes"), "body 0: missing field 'nodes'"),
    (lambda d: _set("bodies.0.params", [])(d), "which 'params' does not list"),
    (lambda d: _set("bodies.0.params", lambda p: p + p[:1])(d), "a parameter is listed twice"),
    (lambda d: _set("bodies.0.params.0", len(d["bodies"][0]["nodes"]) - 1)(d), "not a parameter node"),
    (lambda d: _set("bodies.0.nodes.0.inputs", [0])(d), "is not the index of an earlier node"),
    (lambda d: (_set("bodies.0.nodes.2.name", "evil")(d), _set("bodies.0.nodes.2.op", "launch_missiles")(d)),
     "body 0, node 2 ('evil', launch_missiles): unknown op 'launch_missiles'"),
    (lambda d: d.pop("bodies"), "missing field 'bodies'"),
    (lambda d: _set("bodies", {})(d), "field 'bodies' must be a JSON array"),
    (lambda d: _set("version", FIRST_VERSION)(d), "'body' values need format version 2; the file says version 1"),
    (lambda d: _set(f"nodes.{_node_of(d, 'loop')}.attrs.body", {"body": 99})(d),
     "is not the index of an earlier body"),
    (lambda d: _set(f"nodes.{_node_of(d, 'loop')}.attrs.body", 3)(d), "attribute 'body' must be a body"),
    (lambda d: _set(f"nodes.{_node_of(d, 'cond')}.attrs.false_body", None)(d), "attribute 'false_body' must be a body"),
    (lambda d: _set(f"nodes.{_node_of(d, 'cond')}.attrs.false_body", {"body": _body_of(d, "loop", "cond")})(d),
     "the branches give 2 and 1 outputs"),
    (lambda d: _set(f"nodes.{_node_of(d, 'loop')}.attrs.n_state", 5)(d), "must fit its 4 inputs"),
    (lambda d: _set(f"nodes.{_node_of(d, 'loop')}.attrs.has_trip", 0)(d), "'has_trip', 'n_seq' and 'n_state'"),
    (lambda d: _set(f"nodes.{_node_of(d, 'loop')}.attrs.labels", {"list": ["h"]})(d),
     "attribute 'labels' must be a tuple of one string per loop variable (1)"),
    (lambda d: _set(f"nodes.{_node_of(d, 'loop')}.attrs.stacked", {"tuple": ["after", "after"]})(d),
     "attribute 'stacked' must be a tuple of one string per loop variable (1)"),
    (lambda d: _set(f"nodes.{_node_of(d, 'loop')}.attrs.stacked", {"tuple": ["sideways"]})(d),
     "does not rebuild: loop: scan: stacked must give one of ('', 'before', 'after')"),
    (lambda d: _set(f"nodes.{_node_of(d, 'loop')}.attrs.length", -2)(d), "attribute 'length' must be null or an int"),
    (lambda d: _set(f"nodes.{_node_of(d, 'loop', 'cond')}.attrs.cond", {"body": _body_of(d, "loop", "body")})(d),
     "its 'cond' must give one output"),
    (lambda d: _set(f"nodes.{_node_of(d, 'part')}.attrs.index", 99)(d), "does not rebuild: part 99 of a value"),
])
def test_invalid_bodies(loop_file: Path, mutation: Callable[[dict[str, Any]], Any], expected: str) -> None:
    message = _load_error(_rewrite(loop_file, mutation))
    assert expected in message, message


def test_a_stored_array_of_the_wrong_size_is_refused(good_file: Path) -> None:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.zeros((3, 2), np.float32))
    short = buffer.getvalue()[:-4]  # the header promises 6 floats; 5 and a bit follow
    path = _rewrite(good_file, drop="arrays/0.npy", add=("arrays/0.npy", short))
    assert "bytes of data, expected 24" in _load_error(path)


class _Bomb:
    """Unpickling this calls _Bomb.explode: the tests check that it never happens."""

    exploded = False

    def __reduce__(self) -> Any:
        return (_explode, ())


def _explode() -> None:
    _Bomb.exploded = True


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("load_graph tried to unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    _Bomb.exploded = False


def test_a_pickle_file_is_refused(tmp_path: Path, no_unpickling: None) -> None:
    path = tmp_path / "model.gcg"
    path.write_bytes(pickle.dumps(_Bomb()))
    _load_error(path)
    assert not _Bomb.exploded


def test_a_pickled_array_entry_is_refused_and_never_unpickled(good_file: Path, no_unpickling: None) -> None:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([_Bomb()] * 6, dtype=object).reshape(3, 2), allow_pickle=True)
    path = _rewrite(good_file, drop="arrays/0.npy", add=("arrays/0.npy", buffer.getvalue()))
    assert "holds Python objects (a pickle); graph files never unpickle" in _load_error(path)
    assert not _Bomb.exploded
    path = _rewrite(good_file, _set("arrays.0.dtype", "object"))
    assert 'unknown dtype "object"' in _load_error(path)
