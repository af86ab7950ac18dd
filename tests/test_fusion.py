"""The fuse phase, rule by rule (see docs/passes/fuse.md), and random graphs that must give the same
results fused (level 2) and as built (level 0): the same bits, except that a float reduction fused
with its producers may add in another order (within the bound of docs/numerics.md).
"""

from __future__ import annotations

import inspect
import os
import re
import threading
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.ops.kernel import KERNEL_KINDS, Kernel
from util import DEVICES, FUSION, REWRITES, assert_paths_agree


def _line() -> int:
    return inspect.stack()[1].lineno


def kernels(opt: gc.Graph) -> list[Kernel]:
    return [n.attrs["kernel"] for n in opt.nodes if n.op == "fused"]


def body_ops(kernel: Kernel) -> list[str]:
    return [n.op for n in kernel.body]


def outer_ops(opt: gc.Graph) -> list[str]:
    return [n.op for n in opt.nodes]


def all_ops(graph: gc.Graph) -> Counter:
    """Every op computed, inside kernels or not (without the fusion bookkeeping ops)."""
    found: Counter = Counter()
    for n in graph.nodes:
        if n.op == "fused":
            found.update(m.op for m in n.attrs["kernel"].body)
        elif n.op != "kernel_output":
            found[n.op] += 1
    return found


def check_kernels(opt: Any) -> None:
    """The invariants of every fused graph: what a kernel may hold, and that fusion neither
    duplicates nor drops work."""
    before = dict(opt.phases)["specialize"]
    assert all_ops(opt) == all_ops(before), (all_ops(opt), all_ops(before))
    for node in opt.nodes:
        if node.op != "fused":
            continue
        kernel: Kernel = node.attrs["kernel"]
        assert kernel.kind in KERNEL_KINDS
        body = kernel.body
        assert len(body) >= 2, "a single op is never a kernel"
        params = {p.id for p in kernel.params}
        inside = {n.id for n in kernel.nodes}
        assert all(i.id in inside for n in body for i in n.inputs)
        assert len(node.inputs) == len(kernel.params)
        for p in kernel.params:  # a parameter stands for the outer tensor of its dtype and shape
            outer = node.inputs[p.attrs["index"]]
            assert (outer.dtype, outer.shape) == (p.dtype, p.shape)
        reductions = [n for n in body if n.opdef.reduction is not None]
        hosts = [n for n in body if n.opdef.epilogue_kind is not None]
        if kernel.kind == "reduction":
            assert len(reductions) == 1 and not hosts
            (root,) = reductions
            assert any(o is root for o in kernel.outputs)
            space = root.inputs[0].shape
        else:
            assert not reductions
            space = kernel.outputs[-1].shape
        if kernel.kind in ("matmul_epilogue", "conv2d_epilogue"):
            assert [h.op for h in hosts] == [kernel.kind.split("_")[0]]
            assert all(i.id in params for i in hosts[0].inputs), "a host's operands are stored before the kernel"
        else:
            assert not hosts
        for n in body:
            if n.opdef.reduction is None:
                assert n.opdef.family == "elementwise" or n.opdef.epilogue_kind is not None, n.op
                assert n.shape == space, "a broadcast (smaller) producer is never fused"


def run(outputs: Any, feeds: dict, level: int) -> Any:
    with np.errstate(all="ignore"):
        return gc.Session(level=level).run(outputs, feeds)


def assert_same_results(outputs: list, feeds: dict) -> None:
    """Fused (level 2) and as built (level 0, no rewrite of these graphs changes a value): the same
    bits, but for float sums, means, products and logsumexps, which are within the promise's bound."""
    assert_paths_agree(run(outputs, feeds, 2), run(outputs, feeds, 0), outputs, feeds, FUSION)


def floats(rng: np.random.Generator, shape: tuple, dtype: str = "float32") -> np.ndarray:
    return rng.uniform(-2, 2, shape).astype(dtype)


# ---- the rules ------------------------------------------------------------------------------------

def test_an_elementwise_chain_is_one_kernel(rng: np.random.Generator) -> None:
    x, y = gc.placeholder("float32", (3, 4), name="x"), gc.placeholder("float32", (3, 4), name="y")
    out = gc.relu(gc.exp(x) * 3.0 + y) - gc.tanh(y)
    opt = gc.optimize(out)
    check_kernels(opt)
    (kernel,) = kernels(opt)
    assert kernel.kind == "elementwise"
    assert sorted(body_ops(kernel)) == sorted(["exp", "multiply", "add", "relu", "tanh", "subtract"])
    assert outer_ops(opt).count("fused") == 1 and "kernel_output" not in outer_ops(opt)
    assert opt.outputs[0].op == "fused" and opt.outputs[0].shape == (3, 4)
    assert opt.rewrites.counts()["fuse_elementwise"] == 1
    assert_same_results([out], {x: floats(rng, (3, 4)), y: floats(rng, (3, 4))})


def test_fusion_is_logged_with_the_users_line() -> None:
    x = gc.placeholder("float32", (3,), name="x")
    line = _line() + 1
    out = gc.tanh(gc.exp(x))
    (record,) = [r for r in gc.optimize(out).rewrites if r.phase == "fuse"]
    assert (record.rewrite, record.op) == ("fuse_elementwise", "fused") and record.node.startswith("fused")
    assert record.location.lineno == line and os.path.samefile(record.location.filename, __file__)
    assert not [r for r in gc.optimize(out, level=1).rewrites if r.phase == "fuse"]  # level 1 never fuses
    assert "fused" not in outer_ops(gc.optimize(out, level=1))


def test_single_ops_stay_unfused() -> None:
    x, w = gc.placeholder("float32", (3, 4), name="x"), gc.placeholder("float32", (4, 2), name="w")
    for out in (gc.exp(x), x + x, gc.sum(x, axis=1), x @ w, gc.transpose(x), gc.sum(gc.transpose(x), axis=0)):
        opt = gc.optimize(out)
        assert "fused" not in outer_ops(opt), gc.dprint(opt)
        assert not [r for r in opt.rewrites if r.phase == "fuse"]


def test_a_value_used_outside_its_kernel_is_another_output_computed_once(rng: np.random.Generator) -> None:
    x, w = gc.placeholder("float32", (3, 4), name="x"), gc.placeholder("float32", (4, 4), name="w")
    e = gc.exp(x)
    out = gc.tanh(e * 2.0) @ w + e @ w  # e feeds the chain and a matmul outside it
    opt = gc.optimize(out)
    check_kernels(opt)
    chain = [k for k in kernels(opt) if "tanh" in body_ops(k)]
    assert len(chain) == 1 and len(chain[0].outputs) == 2 and "exp" in body_ops(chain[0])
    assert all_ops(opt)["exp"] == 1  # stored once, never recomputed
    outputs = [n for n in opt.nodes if n.op == "kernel_output"]
    assert sorted(n.attrs["index"] for n in outputs if n.inputs[0].attrs["kernel"] is chain[0]) == [0, 1]
    assert_same_results([out], {x: floats(rng, (3, 4)), w: floats(rng, (4, 4))})


def test_a_fetched_intermediate_is_a_kernel_output(rng: np.random.Generator) -> None:
    x = gc.placeholder("float64", (5,), name="x")
    a = gc.exp(x) + 1.0
    b = gc.sqrt(a) * a
    opt = gc.optimize([a, b])
    check_kernels(opt)
    (kernel,) = kernels(opt)
    assert len(kernel.outputs) == 2
    assert [o.op for o in opt.outputs] == ["kernel_output", "kernel_output"]
    assert_same_results([a, b], {x: floats(rng, (5,), "float64")})


def test_a_reduction_is_the_root_of_a_kernel_with_its_producers(rng: np.random.Generator) -> None:
    x, y = gc.placeholder("float32", (3, 4), name="x"), gc.placeholder("float32", (3, 4), name="y")
    for reduce in (gc.sum, gc.mean, gc.max, gc.min, gc.prod, gc.logsumexp):
        out = reduce(gc.exp(x) * y, axis=1)
        opt = gc.optimize(out)
        check_kernels(opt)
        (kernel,) = kernels(opt)
        assert kernel.kind == "reduction" and body_ops(kernel) == ["exp", "multiply", reduce.__name__]
        assert opt.rewrites.counts()["fuse_reduction"] == 1
        assert_same_results([out], {x: floats(rng, (3, 4)), y: floats(rng, (3, 4))})


def test_a_reduction_is_never_fused_into_its_consumers(rng: np.random.Generator) -> None:
    x = gc.placeholder("float32", (3, 4), name="x")
    out = gc.tanh(gc.sum(gc.exp(x), axis=1, keepdims=True))
    opt = gc.optimize(out)
    check_kernels(opt)
    (kernel,) = kernels(opt)
    assert body_ops(kernel) == ["exp", "sum"] and "tanh" in outer_ops(opt)
    # x - max(x): the subtract reads the kernel's outputs; exp(x) is stored once, used by both
    e = gc.exp(x)
    out = e - gc.max(e, axis=1, keepdims=True)
    opt = gc.optimize(out)
    check_kernels(opt)
    assert all_ops(opt)["exp"] == 1
    assert_same_results([out], {x: floats(rng, (3, 4))})


def test_broadcast_producers_stay_separate(rng: np.random.Generator) -> None:
    x, b = gc.placeholder("float32", (3, 4), name="x"), gc.placeholder("float32", (4,), name="b")
    small = gc.exp(b)  # computed once and stored, not once per element of the kernel
    out = gc.tanh(x * small + 1.0)
    opt = gc.optimize(out)
    check_kernels(opt)
    (kernel,) = kernels(opt)
    assert "exp" not in body_ops(kernel) and "exp" in outer_ops(opt)
    col = gc.placeholder("float32", (3, 1), name="col")
    out2 = gc.sum(gc.relu(x - gc.sqrt(gc.abs(col))), axis=0)  # and into a reduction's kernel
    opt2 = gc.optimize(out2)
    check_kernels(opt2)
    (reduction,) = [k for k in kernels(opt2) if k.kind == "reduction"]
    assert body_ops(reduction) == ["subtract", "relu", "sum"]  # sqrt(abs(col)) is a kernel of its own
    feeds = {x: floats(rng, (3, 4)), b: floats(rng, (4,)), col: floats(rng, (3, 1))}
    assert_same_results([out, out2], feeds)


def test_matmul_epilogue(rng: np.random.Generator) -> None:
    x, w = gc.placeholder("float32", (None, 4), name="x"), gc.placeholder("float32", (4, 3), name="w")
    b = gc.placeholder("float32", (3,), name="b")
    out = gc.relu(x @ w + b)
    opt = gc.optimize(out)
    check_kernels(opt)
    (kernel,) = kernels(opt)
    assert kernel.kind == "matmul_epilogue" and body_ops(kernel) == ["matmul", "add", "relu"]
    assert outer_ops(opt) == ["placeholder", "placeholder", "placeholder", "fused"]
    assert opt.rewrites.counts() == {"fuse_matmul_epilogue": 1}
    for batch in (5, 1, 0):
        assert_same_results([out], {x: floats(rng, (batch, 4)), w: floats(rng, (4, 3)), b: floats(rng, (3,))})


def test_a_matmul_operand_is_stored_not_computed_in_the_epilogue(rng: np.random.Generator) -> None:
    x, w = gc.placeholder("float32", (4, 4), name="x"), gc.placeholder("float32", (4, 4), name="w")
    e = gc.exp(x)
    out = e + e @ w
    opt = gc.optimize(out)
    check_kernels(opt)
    (kernel,) = kernels(opt)
    assert kernel.kind == "matmul_epilogue" and "exp" not in body_ops(kernel)
    # only one matmul per epilogue kernel
    w2 = gc.placeholder("float32", (4, 4), name="w2")
    two = gc.relu(x @ w + x @ w2)
    opt2 = gc.optimize(two)
    check_kernels(opt2)
    assert outer_ops(opt2).count("matmul") == 1
    feeds = {x: floats(rng, (4, 4)), w: floats(rng, (4, 4)), w2: floats(rng, (4, 4))}
    assert_same_results([out, two], feeds)


def test_conv2d_epilogue(rng: np.random.Generator) -> None:
    x, k = gc.placeholder("float32", (2, 3, 6, 6), name="x"), gc.placeholder("float32", (4, 3, 3, 3), name="k")
    bias = gc.placeholder("float32", (4, 1, 1), name="bias")
    out = gc.relu(gc.conv2d(x, k, padding="SAME") + bias) * 0.5
    opt = gc.optimize(out)
    check_kernels(opt)
    (kernel,) = kernels(opt)
    assert kernel.kind == "conv2d_epilogue" and body_ops(kernel) == ["conv2d", "add", "relu", "multiply"]
    assert opt.rewrites.counts()["fuse_conv2d_epilogue"] == 1
    assert_same_results([out], {x: floats(rng, (2, 3, 6, 6)), k: floats(rng, (4, 3, 3, 3)),
                                bias: floats(rng, (4, 1, 1))})


def test_no_cycle_when_an_outside_op_consumes_and_feeds_a_chain(rng: np.random.Generator) -> None:
    x = gc.placeholder("float32", (4, 4), name="x")
    e = gc.exp(x)
    out = gc.tanh(e + gc.transpose(e))  # e -> transpose (outside) -> add: e cannot join the add
    opt = gc.optimize(out)
    check_kernels(opt)
    (kernel,) = kernels(opt)
    assert body_ops(kernel) == ["add", "tanh"] and "exp" in outer_ops(opt)
    w = gc.placeholder("float32", (4, 4), name="w")
    out2 = gc.relu(e * (e @ w))  # the same through a matmul: e is the matmul's stored operand
    opt2 = gc.optimize(out2)
    check_kernels(opt2)
    assert "exp" in outer_ops(opt2)
    assert_same_results([out, out2], {x: floats(rng, (4, 4)), w: floats(rng, (4, 4))})


def _optimize_or_hang(outputs: list, seconds: float = 20) -> Any:
    result: list = []
    worker = threading.Thread(target=lambda: result.append(gc.optimize(outputs)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert result, "fusion did not finish: the kernels form a cycle"
    return result[0]


@pytest.mark.parametrize("order", ["rA first", "rB first"])
def test_no_cycle_between_two_kernels(order: str, rng: np.random.Generator) -> None:
    """Kernel A = {tanh, add} reads transpose(exp) and kernel B = {exp, multiply, sum} reads tanh:
    fusing both would make A wait for B and B for A.  Whichever kernel forms first, the second
    must not take in a node that closes that loop."""
    x, y = gc.placeholder("float32", (4, 4), name="x"), gc.placeholder("float32", (4, 4), name="y")
    b2 = gc.exp(x)
    a1 = gc.tanh(y)
    r_a = a1 + gc.transpose(b2)
    r_b = gc.sum(a1 * b2, axis=0)
    outputs = [r_a, r_b] if order == "rA first" else [r_b, r_a]
    opt = _optimize_or_hang(outputs)
    check_kernels(opt)
    assert_same_results(outputs, {x: floats(rng, (4, 4)), y: floats(rng, (4, 4))})


def test_fused_graphs_run_with_unknown_dims(rng: np.random.Generator) -> None:
    x, y = gc.placeholder("float32", (None, 3), name="x"), gc.placeholder("float32", (None, 3), name="y")
    out = [gc.relu(x * y + 1.0), gc.sum(gc.exp(x) * y, axis=0)]
    opt = gc.optimize(out)
    check_kernels(opt)
    assert len(kernels(opt)) == 2
    f = gc.function([x, y], out)
    for batch in (4, 1, 0):
        feeds = {x: floats(rng, (batch, 3)), y: floats(rng, (batch, 3))}
        assert_paths_agree(f(feeds[x], feeds[y]), run(out, feeds, 0), out, feeds, FUSION)


def test_errors_inside_a_kernel_name_the_users_line() -> None:
    x_line = _line() + 1
    x, y = gc.placeholder("float32", (None, 3), name="x"), gc.placeholder("float32", (None, 3), name="y")
    line = _line() + 1
    product = x * y
    out = gc.relu(product + 1.0)
    assert any(n.op == "fused" for n in gc.optimize(out).nodes)
    with pytest.raises(gc.ShapeError) as info:
        gc.Session().run(out, {x: np.ones((2, 3), np.float32), y: np.ones((3, 3), np.float32)})
    message = str(info.value)
    assert message.startswith("multiply: cannot broadcast shapes [2, 3] and [3, 3]")
    assert re.search(rf"\n  created at \S*test_fusion\.py:{line}\n", message), message  # the line of `x * y`
    # the error is reported on the graph as built: the inputs are the user's placeholders
    assert re.search(rf"input 0: 'x\w*' \(float32\[\?, 3\], placeholder at \S*test_fusion\.py:{x_line}\)", message)
    assert re.search(r"with fed shapes x\w*: \[2, 3\], y\w*: \[3, 3\]", message), message
    assert info.value.location.lineno == line  # type: ignore[attr-defined]
    assert "fused" not in message.split("\n")[0]


def test_state_is_never_fused(rng: np.random.Generator) -> None:
    x = gc.placeholder("float32", (3,), name="x")
    w = gc.Variable(np.ones(3, np.float32), name="w")
    f = gc.function([x], gc.tanh(w * x + 1.0), updates={w: w * 0.5 + x})
    assert "assign" in outer_ops(f.graph) and all("assign" not in body_ops(k) for k in kernels(f.graph))
    check_kernels(f.graph)
    v = floats(rng, (3,))
    np.testing.assert_allclose(f(v), np.tanh(v + 1.0), rtol=1e-6)
    np.testing.assert_allclose(w.value, 0.5 + v, rtol=1e-6)


# ---- random graphs: fused and unfused agree ------------------------------------------------------

UNARY = [
    ("neg", lambda t: -t), ("abs", abs), ("exp", gc.exp), ("tanh", gc.tanh), ("sigmoid", gc.sigmoid),
    ("relu", gc.relu), ("sin", gc.sin), ("square", lambda t: t * t), ("sqrt|x|", lambda t: gc.sqrt(abs(t))),
    ("log(1+x^2)", lambda t: gc.log(1 + t * t)), ("x*0.5+1", lambda t: t * 0.5 + 1.0), ("x/4", lambda t: t / 4.0),
    ("x*1", lambda t: t * 1.0), ("cast", lambda t: gc.cast(t, "float64")),
]
BINARY = [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("max", gc.maximum), ("min", gc.minimum), ("where", lambda a, b: gc.where(a > b, a, b)),
    ("div", lambda a, b: a / (1.0 + b * b)),
]
REDUCE = [("sum", gc.sum), ("mean", gc.mean), ("max", gc.max), ("logsumexp", gc.logsumexp), ("prod", gc.prod)]


@st.composite
def random_graphs(draw: st.DrawFn) -> tuple[list, dict]:
    a, b = draw(st.sampled_from([0, 1, 2, 3])), draw(st.sampled_from([1, 2, 3]))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    shapes = [(a, b), (1, b), (a, 1), (b,), (), (1, 1)]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    feeds: dict = {}

    def placeholder(shape: tuple) -> gc.Tensor:
        p = gc.placeholder(dtype, shape, name=f"in{len(feeds)}")
        feeds[p] = floats(rng, shape, dtype)
        return p

    pool = [placeholder(draw(st.sampled_from(shapes))) for _ in range(draw(st.integers(1, 3)))]
    for _ in range(draw(st.integers(1, 10))):
        step = draw(st.sampled_from(["unary", "binary", "binary", "reduce", "matmul", "transpose"]))
        t = draw(st.sampled_from([pool[-1], *pool]))  # chains more often than not
        if step == "unary":
            pool.append(draw(st.sampled_from(UNARY))[1](t))
        elif step == "binary":
            other = draw(st.sampled_from([*pool, placeholder(draw(st.sampled_from(shapes)))]))
            try:
                np.broadcast_shapes(t.shape, other.shape)
            except ValueError:
                continue
            pool.append(draw(st.sampled_from(BINARY))[1](t, other))
        elif step == "reduce" and t.ndim:
            name, fn = draw(st.sampled_from(REDUCE))
            axis = draw(st.sampled_from([None, *range(t.ndim)]))
            size = int(np.prod(t.shape if axis is None else t.shape[axis]))
            if name == "max" and size == 0:
                name, fn = "sum", gc.sum  # the max of nothing is an error, as in NumPy
            pool.append(fn(t, axis=axis, keepdims=draw(st.booleans())))
        elif step == "transpose" and t.ndim == 2:
            pool.append(gc.transpose(t))
        elif step == "matmul" and t.ndim == 2:
            w = placeholder((t.shape[1], draw(st.sampled_from([1, 2, 3]))))
            pool.append(t @ w)
    fetched = [pool[-1], *draw(st.lists(st.sampled_from(pool), max_size=2))]
    return fetched, feeds


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=random_graphs())
def test_random_graphs_fused_and_unfused_agree(graph: tuple[list, dict]) -> None:
    outputs, feeds = graph
    opt = gc.optimize(outputs)
    check_kernels(opt)
    for kernel in kernels(opt):
        event(f"{kernel.kind} kernel" + (" with several outputs" if len(kernel.outputs) > 1 else ""))
    expected = run(outputs, feeds, 0)
    unfused = run(outputs, feeds, 1)
    fused = run(outputs, feeds, 2)
    for result, out in zip([*unfused, *fused], [*outputs, *outputs]):
        assert result.dtype == out.dtype and result.shape == out.shape
    # level 1 rewrites the graph (log(1 + x) -> log1p(x), folded constants): a rounding of each input apart
    assert_paths_agree(unfused, expected, outputs, feeds, REWRITES)
    assert_paths_agree(fused, expected, outputs, feeds, {REWRITES, FUSION})
    # fusing changes nothing but the order of float reductions
    assert_paths_agree(fused, unfused, outputs, feeds, FUSION)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=random_graphs())
def test_random_graphs_fused_and_compiled_for_the_cpu_agree(graph: tuple[list, dict]) -> None:
    """The same graphs, fused and compiled for device="cpu" (every kernel kind but conv2d epilogues,
    which test_cpu_lowering_nn.py covers), against the reference: without fusion (as built) and with
    it (the graph both devices run at level 2).  Transcendental functions are NumPy's on the reference
    and sums add in another order: within docs/numerics.md's bounds."""
    outputs, feeds = graph
    with np.errstate(all="ignore"):
        got = gc.Session(device="cpu").run(outputs, feeds)
        reference = gc.Session(device="reference").run(outputs, feeds)
        unfused = gc.Session(device="reference", level=0).run(outputs, feeds)
    assert_paths_agree(got, reference, outputs, feeds, {DEVICES, FUSION})
    assert_paths_agree(got, unfused, outputs, feeds, {DEVICES, FUSION, REWRITES})
