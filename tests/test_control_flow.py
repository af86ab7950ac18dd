"""gc.scan, gc.while_loop and gc.cond: values against NumPy loops, gradients against finite differences
(first and second order), loop-invariant hoisting, and the errors a user gets.  Every test runs on the
reference device, on the CPU backend, which compiles loops and conditionals into its one native call, and on
the CUDA emulator (the GPU backend's kernels, its loops driven from the host)."""

from __future__ import annotations

import pathlib
import shutil
import threading

import numpy as np
import pytest

import graphc as gc
from graphc.lower.control import LoopStep
from graphc.lower.program import LoweredProgram
from graphc.testing import check_grad

DEVICE = "reference"
rng = np.random.default_rng(0)


@pytest.fixture(params=["reference", "cpu", "cuda-sim"], autouse=True)
def loop_device(request: pytest.FixtureRequest) -> str:
    """The device this module's helpers compile for (each test runs on both)."""
    global DEVICE
    DEVICE = request.param
    return DEVICE


def fn(inputs, outputs):
    return gc.function(inputs, outputs, device=DEVICE)


def numpy_rnn(x: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
    out = []
    for row in x:
        h = np.tanh(row + h @ w)
        out.append(h)
    return np.array(out).reshape((len(x), *h.shape))


# ---- scan: values --------------------------------------------------------------------------------------

def test_scan_runs_a_recurrence_over_a_sequence_of_unknown_length() -> None:
    x = gc.placeholder("float32", (None, 3))
    h0 = gc.placeholder("float32", (3,))
    w = gc.Variable(rng.normal(size=(3, 3)).astype(np.float32) * 0.5)
    hs = gc.scan(lambda xt, h: gc.tanh(xt + h @ w), sequences=x, outputs_info=h0)
    assert hs.shape == (None, 3) and hs.dtype == np.float32
    f = fn([x, h0], hs)
    for length in (5, 1, 0):
        xv, hv = rng.normal(size=(length, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
        np.testing.assert_allclose(f(xv, hv), numpy_rnn(xv, hv, w.value), rtol=1e-6, atol=1e-6)
        assert f(xv, hv).shape == (length, 3)


def test_scan_outputs_follow_outputs_info_with_none_for_values_not_fed_back() -> None:
    x = gc.placeholder("float64", (4, 2))
    h0 = gc.placeholder("float64", (2,))
    ys, hs = gc.scan(lambda xt, h: [gc.sum(xt * h), h + xt], sequences=x, outputs_info=[None, h0])
    xv, hv = rng.normal(size=(4, 2)), rng.normal(size=2)
    got_ys, got_hs = fn([x, h0], [ys, hs])(xv, hv)
    h, want_ys, want_hs = hv, [], []
    for row in xv:
        want_ys.append(np.sum(row * h))
        h = h + row
        want_hs.append(h)
    np.testing.assert_allclose(got_ys, want_ys)
    np.testing.assert_allclose(got_hs, want_hs)


def test_scan_passes_non_sequences_last_and_reads_several_sequences() -> None:
    a = gc.placeholder("float64", (3, 2))
    b = gc.placeholder("float64", (3, 2))
    k = gc.placeholder("float64", ())
    out = gc.scan(lambda at, bt, acc, scale: acc + scale * at * bt, sequences=[a, b], outputs_info=gc.zeros_like(a[0]),
                  non_sequences=k)
    av, bv = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    np.testing.assert_allclose(fn([a, b, k], out)(av, bv, 2.0), np.cumsum(2.0 * av * bv, axis=0))


def test_scan_go_backwards_and_n_steps() -> None:
    x = gc.placeholder("float64", (5,))
    backwards = gc.scan(lambda xt, acc: acc * 2 + xt, sequences=x, outputs_info=gc.constant(0.0), go_backwards=True)
    first3 = gc.scan(lambda xt, acc: acc + xt, sequences=x, outputs_info=gc.constant(0.0), n_steps=3)
    xv = np.arange(1.0, 6.0)
    got_back, got_first = fn([x], [backwards, first3])(xv)
    acc, want = 0.0, []
    for v in xv[::-1]:
        acc = acc * 2 + v
        want.append(acc)
    np.testing.assert_allclose(got_back, want)
    np.testing.assert_allclose(got_first, [1.0, 3.0, 6.0])


def test_scan_without_sequences_runs_n_steps() -> None:
    powers = gc.scan(lambda p: p * 3, outputs_info=gc.constant(np.float32(1.0)), n_steps=4)
    np.testing.assert_allclose(fn([], powers)(), [3, 9, 27, 81])
    assert fn([], gc.scan(lambda p: p * 3, outputs_info=gc.constant(1.0), n_steps=0))().shape == (0,)


def test_a_python_number_as_initial_value_takes_the_steps_dtype() -> None:
    x = gc.placeholder("float32", (3,))
    total = gc.scan(lambda xt, acc: acc + xt, sequences=x, outputs_info=0.0)
    assert total.dtype == np.float32
    np.testing.assert_allclose(fn([x], total)(np.array([1, 2, 3], np.float32)), [1, 3, 6])


def test_loop_invariant_work_is_hoisted_out_of_the_body() -> None:
    x = gc.placeholder("float32", (None, 4))
    w = gc.Variable(rng.normal(size=(4, 4)).astype(np.float32))
    hs = gc.scan(lambda xt, h: gc.tanh(xt + h @ gc.transpose(w) * 2.0), sequences=x, outputs_info=gc.zeros_like(x[0]))
    loop = hs.inputs[0]
    inside = {n.op for n in loop.attrs["body"].body}
    assert "transpose" not in inside and "variable" not in inside  # computed once, outside the loop
    assert {"matmul", "tanh"} <= inside
    xv = rng.normal(size=(3, 4)).astype(np.float32)
    h, want = np.zeros(4, np.float32), []
    for row in xv:
        h = np.tanh(row + h @ w.value.T * 2.0)
        want.append(h)
    np.testing.assert_allclose(fn([x], hs)(xv), want, rtol=1e-5, atol=1e-6)



def _loops(graph: gc.Graph) -> list[gc.Tensor]:
    return [n for n in graph.nodes if n.op == "loop"]


@pytest.mark.parametrize("go_backwards", [False, True])
def test_products_of_sequence_rows_become_one_product_before_the_loop(go_backwards: bool) -> None:
    x = gc.placeholder("float64", (None, 3, 4))
    w, u = gc.constant(rng.normal(size=(4, 5))), gc.constant(rng.normal(size=(5, 5)) * 0.3)
    hs = gc.scan(lambda xt, h: gc.tanh((xt * 0.5) @ w + h @ u), sequences=x, outputs_info=gc.zeros_like((x @ w)[0]),
                 go_backwards=go_backwards)
    (loop,) = _loops(gc.optimize(hs, level=1))
    body_products = [n for n in loop.attrs["body"].body if n.op == "matmul"]
    assert len(body_products) == 1 and body_products[0].inputs[1].op == "parameter"  # only h @ u stays inside
    assert any(i.op == "matmul" and i.shape[1:] == (3, 5) for i in loop.inputs)  # (x * 0.5) @ w, all rows at once
    for length in (6, 0):
        xv = rng.normal(size=(length, 3, 4))
        h, want = np.zeros((3, 5)), []
        for row in (xv[::-1] if go_backwards else xv):
            h = np.tanh((row * 0.5) @ w.attrs["value"] + h @ u.attrs["value"])
            want.append(h)
        np.testing.assert_allclose(fn([x], hs)(xv), np.reshape(want, (length, 3, 5)), rtol=1e-12, atol=1e-12)


def test_what_no_one_reads_is_dropped_from_loops() -> None:
    x, h0 = gc.placeholder("float64", (5, 3)), gc.placeholder("float64", (3,))
    w = gc.Variable(rng.normal(size=(3, 3)) * 0.5)
    hs, _unread = gc.scan(lambda xt, h, s: [gc.tanh(xt + h @ w), s + gc.exp(xt)], sequences=x,
                          outputs_info=[h0, gc.zeros_like(h0)])
    loss = gc.sum(hs[-1])
    (gw,) = gc.grad(loss, [w])
    loops = _loops(gc.optimize([loss, gw]))
    assert len(loops) == 2  # the forward loop (once: the gradient's copy of it merged) and the backward loop
    forward, backward = loops
    assert forward.attrs["n_state"] == 1  # the unread exp accumulator is gone
    # backwards, only what w's gradient needs: the gradient of h carried (w's gradient is summed after the loop
    # from the step's values it is made of), no gradient of h0 stacked
    assert backward.attrs["n_state"] == 1
    xv, hv = rng.normal(size=(5, 3)), rng.normal(size=3)
    got = fn([x, h0], [loss, gw])(xv, hv)
    want = gc.function([x, h0], [loss, gw], device="reference", level=0)(xv, hv)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-12)



def test_a_backward_pass_sums_weight_gradients_after_the_loop_in_one_product() -> None:
    x, h0 = gc.placeholder("float64", (6, 2, 3)), gc.placeholder("float64", (2, 4))
    wx, wh = gc.Variable(rng.normal(size=(3, 4))), gc.Variable(rng.normal(size=(4, 4)) * 0.4)
    loss = gc.sum(gc.scan(lambda xt, h: gc.tanh(xt @ wx + h @ wh), sequences=x, outputs_info=h0)[-1] ** 2)
    grads = gc.grad(loss, [wx, wh, h0])
    backward = _loops(gc.optimize(grads, level=1))[-1]
    body = backward.attrs["body"]
    # w_h's and w_x's gradients are no loop variables: they are products of stacked values after the loop
    assert backward.attrs["n_state"] == 1 and not [n for n in body.body if n.op == "matmul" and n.attrs.get(
        "transpose_a")]
    # dz @ w_h.T reads w_h transposed once before the loop, not repacked each step
    assert [n.attrs.get("transpose_b", False) for n in body.body if n.op == "matmul"] == [False]
    assert any(i.op == "transpose" for i in backward.inputs)
    xv, hv = rng.normal(size=(6, 2, 3)), rng.normal(size=(2, 4))
    got = fn([x, h0], grads)(xv, hv)
    want = gc.function([x, h0], grads, device="reference", level=0)(xv, hv)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def test_nested_scans() -> None:
    x = gc.placeholder("float64", (3, 4))
    # the inner loop reads the outer loop's state: it is captured by the inner body
    sums = gc.scan(lambda row, h: gc.scan(lambda v, s: s + v * h, sequences=row, outputs_info=h)[-1],
                   sequences=x, outputs_info=gc.constant(1.0))
    xv = rng.normal(size=(3, 4))
    h, want = 1.0, []
    for row in xv:
        s = h
        for v in row:
            s = s + v * h
        h = s
        want.append(h)
    np.testing.assert_allclose(fn([x], sums)(xv), want)


# ---- while_loop and cond: values -------------------------------------------------------------------------

def test_while_loop_returns_the_final_values_in_the_loop_vars_structure() -> None:
    x = gc.placeholder("float64", (2,))
    out = gc.while_loop(lambda state: state["n"] < 10, lambda state: {"n": state["n"] + 1, "x": state["x"] * 1.5},
                        {"n": 0, "x": x})
    got = fn([x], [out["n"], out["x"]])(np.array([1.0, -2.0]))
    assert got[0] == 10 and got[0].dtype == np.int64
    np.testing.assert_allclose(got[1], np.array([1.0, -2.0]) * 1.5 ** 10)


def test_while_loop_stops_at_maximum_iterations_and_may_run_zero_times() -> None:
    n = gc.placeholder("int64", ())
    i, total = gc.while_loop(lambda i, t: i < n, lambda i, t: (i + 1, t + i), [0, 0], maximum_iterations=6)
    f = fn([n], [i, total])
    assert [int(v) for v in f(4)] == [4, 6]
    assert [int(v) for v in f(100)] == [6, 15]
    assert [int(v) for v in f(-3)] == [0, 0]
    single = gc.while_loop(lambda v: v < 100.0, lambda v: v * 2, gc.constant(3.0))
    assert fn([], single)() == 192.0


def test_cond_runs_only_the_branch_taken() -> None:
    x = gc.placeholder("float64", (3,))
    index = gc.placeholder("int64", ())
    # the true branch reads out of range when index is large: it must not run when pred is false
    y = gc.cond(index < 3, lambda: gc.take(x, index) * 2, lambda: gc.sum(x))
    f = fn([x, index], y)
    xv = np.array([1.0, 2.0, 4.0])
    assert f(xv, 1) == 4.0
    assert f(xv, 7) == 7.0
    pair = gc.cond(gc.sum(x) > 0, lambda: (x * 2, 1.0), lambda: (-x, gc.constant(np.float32(2.0))))
    got = fn([x], list(pair))(xv)
    np.testing.assert_allclose(got[0], xv * 2)
    assert got[1] == 1.0 and got[1].dtype == np.float32



def test_a_variable_made_inside_a_branch_is_read_from_outside() -> None:
    x, flag = gc.placeholder("float64", (3,)), gc.placeholder("bool", ())

    def scaled() -> gc.Tensor:
        return x * gc.Variable(np.full(3, 5.0), name="made_in_branch")

    y = gc.cond(flag, scaled, lambda: x)
    f = fn([x, flag], y)
    np.testing.assert_array_equal(f(np.ones(3), np.bool_(True)), np.full(3, 5.0))
    np.testing.assert_array_equal(f(np.ones(3), np.bool_(False)), np.ones(3))


# ---- gradients --------------------------------------------------------------------------------------------

def rnn(x, h0, w):
    return gc.scan(lambda xt, h, w: gc.tanh(xt + h @ w), sequences=x, outputs_info=h0, non_sequences=w)


@pytest.mark.parametrize("order", [1, 2])
def test_scan_gradient_through_time(order: int) -> None:
    inputs = [rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=(3, 3)) * 0.5]
    check_grad(rnn, inputs, device=DEVICE, order=order, rtol=1e-5 if order == 1 else 1e-4, atol=1e-7 if order == 1
               else 1e-6)


@pytest.mark.parametrize("order", [1, 2])
def test_scan_gradient_with_several_outputs_backwards_and_a_final_state(order: int) -> None:
    def model(x, h0, c0):
        ys, hs, cs = gc.scan(lambda xt, h, c: [gc.sum(h * xt), gc.tanh(h + xt), c * gc.cos(h)], sequences=x,
                             outputs_info=[None, h0, c0], go_backwards=True)
        return gc.sum(ys) + gc.sum(hs * hs) + gc.sum(cs[-1])

    check_grad(model, [rng.normal(size=(3, 2)), rng.normal(size=2), rng.normal(size=2)], device=DEVICE, order=order,
               rtol=1e-4, atol=1e-6)


def test_scan_gradient_over_zero_steps_and_nested_loops() -> None:
    check_grad(lambda x, h0: gc.sum(gc.scan(lambda xt, h: h * xt, sequences=x, outputs_info=h0)) + gc.sum(h0 * h0),
               [np.zeros((0, 2)), rng.normal(size=2)], device=DEVICE)

    def nested(x, h0):
        def outer(row, h):
            return gc.scan(lambda v, s: s * gc.sin(v) + h, sequences=row, outputs_info=gc.zeros_like(h))[-1] + h
        return gc.scan(outer, sequences=x, outputs_info=h0)

    check_grad(nested, [rng.normal(size=(3, 4, 2)), rng.normal(size=2)], device=DEVICE)


def test_scan_gradient_of_a_sequence_of_unknown_length_matches_the_static_one() -> None:
    w = rng.normal(size=(3, 3)) * 0.5
    for length in (4, 0):
        xv, hv = rng.normal(size=(length, 3)), rng.normal(size=3)
        grads = []
        for shape in ((None, 3), (length, 3)):
            x, h0 = gc.placeholder("float64", shape), gc.placeholder("float64", (3,))
            wt = gc.constant(w)
            loss = gc.sum(rnn(x, h0, wt) ** 2) + gc.sum(h0)
            grads.append(fn([x, h0], gc.grad(loss, [x, h0]))(xv, hv))
        for dynamic, static in zip(*grads):
            np.testing.assert_allclose(dynamic, static)


@pytest.mark.parametrize("order", [1, 2])
def test_while_loop_gradient_with_maximum_iterations(order: int) -> None:
    def grow(x0):
        _, x = gc.while_loop(lambda i, x: gc.sum(x * x) < 50.0, lambda i, x: (i + 1, x * 1.3 + gc.sin(x) * 0.1),
                             [0, x0], maximum_iterations=20)
        return x

    check_grad(grow, [rng.normal(size=3)], device=DEVICE, order=order, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("order", [1, 2])
def test_while_loop_gradient_without_a_bound_recomputes_each_steps_state(order: int) -> None:
    def grow(x0, w):
        # the number of steps depends on the values (3 to 6 here) and nothing bounds it
        _, x = gc.while_loop(lambda i, x: gc.sum(x * x) < 40.0, lambda i, x: (i + 1, x * w + gc.sin(x) * 0.1),
                             [0, x0])
        return x

    for x0 in (rng.normal(size=3), np.zeros(3) + 5.0):  # 5.0: the condition is false at once (zero steps)
        check_grad(grow, [x0, np.array([1.4, 1.3, 1.5])], device=DEVICE, order=order, rtol=1e-4, atol=1e-6)
    i0, xs = gc.placeholder("int64", ()), gc.placeholder("float64", (3,))
    steps, _ = gc.while_loop(lambda i, x: gc.sum(x * x) < 40.0, lambda i, x: (i + 1, x * 1.4), [i0, xs])
    assert int(fn([i0, xs], steps)(np.int64(0), np.ones(3))) == 4  # (how many steps the gradient recomputes)


@pytest.mark.parametrize("order", [1, 2])
def test_cond_gradient_on_both_branches(order: int) -> None:
    def choose(x, y):
        return gc.cond(gc.sum(x) > 0, lambda: x * y, lambda: gc.exp(y) + x)

    for shift in (2.0, -2.0):
        check_grad(choose, [rng.normal(size=3) * 0.3 + shift, rng.normal(size=3)], device=DEVICE, order=order,
                   rtol=1e-4, atol=1e-6)


# ---- errors ------------------------------------------------------------------------------------------------

def test_a_loop_variable_that_changes_shape_or_dtype_is_named_with_the_users_line() -> None:
    x = gc.placeholder("float32", (5, 3))
    h0 = gc.placeholder("float32", (3,), name="h_start")
    with pytest.raises(gc.ShapeError, match=r"outputs_info\[0\] 'h_start(_\d+)?' is float32\[3\] but the step makes it "
                                            r"float32\[3, 3\]") as info:
        gc.scan(lambda xt, h: h[:, None] * xt, sequences=x, outputs_info=h0)
    assert "test_control_flow.py" in str(info.value)
    with pytest.raises(gc.DTypeError, match=r"loop_vars leaf 0 .* is int64\[\] but the step makes it float64\[\]"):
        gc.while_loop(lambda i: i < 3, lambda i: i * 0.5, gc.constant(1, dtype="int64"))


def test_cond_branches_that_disagree_are_refused() -> None:
    x = gc.placeholder("float32", (3,))
    with pytest.raises(gc.ShapeError, match=r"output 0 differs between the branches: true branch gives "
                                            r"float32\[3\], false branch float32\[\]") as info:
        gc.cond(gc.sum(x) > 0, lambda: x, lambda: gc.sum(x))
    assert "test_control_flow.py" in str(info.value)
    with pytest.raises(gc.ArgumentError, match="different structures"):
        gc.cond(gc.sum(x) > 0, lambda: (x, x), lambda: x)
    with pytest.raises(gc.DTypeError, match="pred must be a bool scalar"):
        gc.cond(x, lambda: x, lambda: x)


def test_bad_scan_and_while_loop_arguments() -> None:
    x = gc.placeholder("float32", (4, 2))
    with pytest.raises(gc.ArgumentError, match="give sequences or n_steps"):
        gc.scan(lambda h: h, outputs_info=x)
    with pytest.raises(gc.ArgumentError, match="n_steps must be a Python int"):
        gc.scan(lambda xt: xt, sequences=x, n_steps=gc.constant(2))
    with pytest.raises(gc.ShapeError, match="n_steps=6 but sequences"):
        gc.scan(lambda xt: xt, sequences=x, n_steps=6)
    with pytest.raises(gc.ArgumentError, match="fn returns 1 value but outputs_info has 2"):
        gc.scan(lambda xt, a, b: a + xt, sequences=x, outputs_info=[x[0], x[0]])
    with pytest.raises(gc.ShapeError, match="different lengths"):
        gc.scan(lambda a, b: a + b, sequences=[x, gc.placeholder("float32", (3, 2))])
    with pytest.raises(gc.ArgumentError, match="body returns a tuple of 1 but loop_vars is a list of 2"):
        gc.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1,), [0, x])
    v = gc.Variable(np.zeros(2, np.float32))
    with pytest.raises(gc.GraphError, match="changes a Variable inside a loop"):
        gc.scan(lambda xt: gc.assign(v, xt), sequences=x)





# ---- compiled (CPU backend) ---------------------------------------------------------------------------------

def lowered_loops(outputs: list[gc.Tensor]) -> list[LoopStep]:
    opt = gc.optimize(outputs)
    program = LoweredProgram(opt.nodes, {n.id: n.aval for n in opt.nodes}, list(opt.outputs))
    return [step for step in program.steps if isinstance(step, LoopStep)]


def test_a_compiled_scan_writes_each_steps_results_into_its_row_of_the_stacked_result(loop_device: str) -> None:
    x = gc.placeholder("float32", (6, 4))
    w = gc.constant(rng.normal(size=(4, 4)).astype(np.float32))
    ys, hs = gc.scan(lambda xt, h: [gc.sum(h), gc.tanh(xt + h @ w)], sequences=x,
                     outputs_info=[None, gc.zeros_like(x[0])])
    (loop,) = lowered_loops([ys, hs])
    assert [w.owned for w in loop.outputs] == [True] and [s.owned for s in loop.states] == [True]
    assert loop.states[0].mode == "after" and loop.states[0].spare is None  # no buffer of its own, no copy
    # the body was optimised like any graph: its elementwise tail is fused into the product
    assert {k.name.split("_", 1)[1] for k in loop.body} >= {"fused_matmul_epilogue"}


def test_a_compiled_loop_runs_no_python_per_step(loop_device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from graphc.control import loop

    x = gc.placeholder("float64", (None, 3))
    hs = gc.scan(lambda xt, h: gc.sin(h) + xt, sequences=x, outputs_info=gc.zeros_like(x[0]))
    f = fn([x], hs)
    xv = rng.normal(size=(50, 3))
    expected = f(xv)
    if loop_device == "cpu":
        monkeypatch.setattr(loop, "evaluate_body", lambda *a: pytest.fail("a compiled loop ran its body in Python"))
        np.testing.assert_array_equal(f(xv), expected)
        np.testing.assert_array_equal(f(xv[:0]), np.zeros((0, 3)))
    h = np.zeros(3)
    for k, row in enumerate(xv):
        h = np.sin(h) + row
        np.testing.assert_allclose(expected[k], h, rtol=1e-12)


def test_a_while_loop_without_a_bound_and_a_state_it_returns_unchanged(loop_device: str) -> None:
    i0, x0 = gc.placeholder("int64", ()), gc.placeholder("float64", (3,))
    k = gc.constant(np.arange(3.0))
    # x and k swap places each step (states returned as they came, copied rather than computed)
    i, a, b, c = gc.while_loop(lambda i, a, b, c: gc.sum(a) < 1e3, lambda i, a, b, c: (i + 1, b * 2.0 + 1.0, a, c),
                               [i0, x0, x0 + k, k])
    got = fn([i0, x0], [i, a, b, c])(np.int64(0), np.ones(3))
    state = [0, np.ones(3), np.ones(3) + np.arange(3.0), np.arange(3.0)]
    while state[1].sum() < 1e3:
        state = [state[0] + 1, state[2] * 2.0 + 1.0, state[1], state[3]]
    for g, e in zip(got, state):
        np.testing.assert_array_equal(g, e)


def test_a_fault_inside_a_compiled_body_names_the_users_line_also_from_the_cache(
        loop_device: str, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    from graphc.lower import program
    from graphc.runtime import compile_cache

    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(compile_cache, "_warned", set())

    def graph() -> tuple[list[gc.Tensor], gc.Tensor]:
        table = gc.constant(np.arange(12.0).reshape(4, 3))
        idx = gc.placeholder("int64", (None, 2))
        return [idx], gc.scan(lambda i, s: s + gc.sum(gc.take(table, i, axis=0)), sequences=idx,
                              outputs_info=gc.constant(0.0))

    good, bad = np.array([[0, 1], [3, 2]]), np.array([[0, 1], [3, 7]])
    inputs, out = graph()
    first = fn(inputs, out)(good)
    np.testing.assert_array_equal(first, [15.0, 15.0 + 51.0])  # rows 0 + 1, then rows 3 + 2
    if loop_device == "cpu":  # the same graph built again comes from the cache, its fault table too
        monkeypatch.setattr(program, "LoweredProgram", lambda *a, **k: pytest.fail("lowered again on a cache hit"))
    inputs, out = graph()
    f = fn(inputs, out)
    np.testing.assert_array_equal(f(good), first)
    with pytest.raises(gc.ExecutionError, match=r"take.*test_control_flow\.py:\d+"):
        f(bad)


def test_compiled_loops_with_different_bodies_do_not_share_cached_code(
        loop_device: str, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    xv = rng.normal(size=(5, 2))
    for op, ref in ((gc.sin, np.sin), (gc.cos, np.cos), (gc.sin, np.sin)):
        x = gc.placeholder("float64", (5, 2))
        got = fn([x], gc.scan(lambda xt, h, op=op: op(h) + xt, sequences=x, outputs_info=gc.zeros_like(x[0])))(xv)
        h = np.zeros(2)
        for k, row in enumerate(xv):
            h = ref(h) + row
            np.testing.assert_allclose(got[k], h, rtol=1e-12)


def test_an_ahead_of_time_library_runs_a_loop_over_a_run_time_length(loop_device: str, tmp_path: pathlib.Path) -> None:
    if loop_device != "cpu" or (shutil.which("cc") is None and shutil.which("gcc") is None):
        pytest.skip("ahead-of-time compilation is for the CPU, and links with a C compiler")
    x = gc.placeholder("float32", (None, 3))
    w = gc.Variable((np.eye(3) * 0.5).astype(np.float32))
    hs = gc.scan(lambda xt, h: gc.tanh(h @ w + xt), sequences=x, outputs_info=gc.zeros_like(x[0]))
    flag = gc.cond(gc.sum(hs) > 0, lambda: gc.constant(1.0), lambda: gc.constant(-1.0))
    gc.aot.compile([x], [hs, flag], tmp_path / "rnn")
    library = gc.aot.load(tmp_path / "rnn")
    reference = gc.function([x], [hs, flag], device="reference")
    for length in (0, 1, 9):
        xv = rng.normal(size=(length, 3)).astype(np.float32)
        for got, expected in zip(library(xv), reference(xv)):
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_a_compiled_loop_called_from_several_threads_on_two_threads_each(loop_device: str) -> None:
    if loop_device != "cpu":
        pytest.skip("threads of the CPU backend")
    x = gc.placeholder("float32", (None, 64, 256))
    w = gc.Variable((rng.normal(size=(256, 256)) * 0.05).astype(np.float32))
    hs = gc.scan(lambda xt, h: gc.tanh(xt + h @ w), sequences=x, outputs_info=gc.zeros_like(x[0]))
    outs = [hs, *gc.grad(gc.sum(hs[-1] ** 2), [w, x])]
    xv = rng.normal(size=(6, 64, 256)).astype(np.float32)
    want = gc.function([x], outs, device="reference")(xv)
    f = gc.function([x], outs, device="cpu", threads=2)  # the products are split over both threads
    got: list[list[np.ndarray]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=lambda k=k: got[k].extend(f(xv))) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for results in got:
        for g, e in zip(results, want):
            np.testing.assert_allclose(g, e, rtol=2e-4, atol=2e-5)


def test_a_scan_over_ids_with_a_cond_and_a_while_loop_inside_and_its_gradient() -> None:
    ids = gc.placeholder("int64", (None,))
    table = gc.placeholder("float64", (10,))

    def step(i, acc):
        v = gc.take(table, i)
        w = gc.cond(v > 2.0, lambda: v * v, lambda: gc.sin(v))
        _, k = gc.while_loop(lambda j, k: j < i, lambda j, k: (j + 1, k + 0.5), [gc.constant(np.int64(0)), 0.0])
        return acc * 0.9 + w + k

    out = gc.scan(step, sequences=ids, outputs_info=0.0)
    iv, tv = np.array([1, 7, 3, 9, 0, 7]), np.arange(10.0) * 0.5
    got, (grad,) = fn([ids, table], out)(iv, tv), fn([ids, table], gc.grad(gc.sum(out), [table]))(iv, tv)
    acc, want, want_grad, carry = 0.0, [], np.zeros(10), []
    for i in iv:
        v = tv[i]
        acc = acc * 0.9 + (v * v if v > 2.0 else np.sin(v)) + 0.5 * i
        want.append(acc)
        carry.append((i, 2 * v if v > 2.0 else np.cos(v)))
    for t, (i, dw) in enumerate(carry):  # d(sum of the outputs)/d(w_t) = sum over s >= t of 0.9**(s - t)
        want_grad[i] += dw * sum(0.9 ** (s - t) for s in range(t, len(iv)))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12)


def test_hoisted_rows_that_read_a_step_value_stay_in_the_loop():
    """A product of a row slice by the state times a weight (a GRU without reset_after): with an unknown batch
    the gradient loop's row product reads a shape computation of the step, which must not leave the loop."""
    rng = np.random.default_rng(0)
    x = gc.placeholder("float64", (3, None, 4))
    h0 = gc.placeholder("float64", (None, 2))
    u = gc.Variable(rng.normal(size=(2, 2)))
    hs = gc.scan(lambda x_t, h: x_t[:, 2:] + (x_t[:, :2] * h) @ u, sequences=x, outputs_info=h0)
    g = gc.grad(gc.sum(hs), [u])[0]
    xv, hv = rng.normal(size=(3, 2, 4)), rng.normal(size=(2, 2))

    def total(w):
        h, s = hv, 0.0
        for t in range(3):
            h = xv[t][:, 2:] + (xv[t][:, :2] * h) @ w
            s += h.sum()
        return s

    u0, eps = u.value, 1e-6
    numeric = np.zeros_like(u0)
    for i in np.ndindex(u0.shape):
        d = np.zeros_like(u0)
        d[i] = eps
        numeric[i] = (total(u0 + d) - total(u0 - d)) / (2 * eps)
    for device in ("cpu", "reference"):
        np.testing.assert_allclose(gc.function([x, h0], g, device=device)(xv, hv), numeric, rtol=1e-6)
