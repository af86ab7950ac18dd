"""Session.run and gc.function: fetch structures, feeds, subgraph selection, updates, caching, threads."""

from __future__ import annotations

import collections
import threading

import numpy as np
import pytest

import graphc as gc
from util import assert_same


def test_fetch_structures_come_back_in_the_same_shape() -> None:
    x = gc.placeholder("float32", (None, 2), name="x")
    a, b = x * 2, x.sum()
    Pair = collections.namedtuple("Pair", "first second")
    xv = np.array([[1, 2], [3, 4]], np.float32)
    out = gc.Session().run({"p": [a, (b, Pair(a, b))], "q": b}, {x: xv})
    assert set(out) == {"p", "q"}
    assert isinstance(out["p"], list) and isinstance(out["p"][1], tuple)
    assert isinstance(out["p"][1][1], Pair)
    assert_same(out["p"][0], xv * 2)
    assert_same(out["p"][1][1].second, np.float32(10))
    assert_same(out["q"], np.float32(10))


def test_scalar_fetch_is_a_zero_dim_array() -> None:
    out = gc.Session().run(gc.constant(3.0) * 2)
    assert isinstance(out, np.ndarray) and out.shape == () and out == 6.0


def test_fetching_something_that_is_not_a_tensor_is_an_error() -> None:
    with pytest.raises(gc.GraphError, match="str"):
        gc.Session().run(["not a tensor"])


def test_only_the_needed_subgraph_runs() -> None:
    x = gc.placeholder("float32", (3,), name="x")
    unfed = gc.placeholder("float32", (3,), name="unfed")
    bad = gc.take(x, gc.constant(np.array([7])))  # would fail if it ran
    assert_same(gc.Session().run(x + 1, {x: np.ones(3, np.float32)}), np.full(3, 2, np.float32))
    del unfed, bad


def test_missing_feed_is_a_feed_error_naming_the_placeholder() -> None:
    x = gc.placeholder("float32", (None,), name="needed")
    with pytest.raises(gc.FeedError, match="needed.*must be fed"):
        gc.Session().run(x * 2)


@pytest.mark.parametrize(
    "value, ok",
    [
        (np.zeros((2, 3), np.float64), True),  # same kind, narrower: allowed (as TensorFlow)
        (np.zeros((2, 3), np.int64), True),  # int -> float is safe
        ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], True),  # nested lists
        (np.zeros((2, 3), bool), True),
        (np.array([["a", "b", "c"]] * 2), False),  # strings
        (np.zeros((2, 3), complex), False),
        (np.zeros((2, 4), np.float32), False),  # wrong known dim
        (np.zeros((2, 3, 1), np.float32), False),  # wrong rank
        ("hello", False),
    ],
)
def test_feed_conversion_into_float32(value: object, ok: bool) -> None:
    x = gc.placeholder("float32", (None, 3), name="x")
    sess = gc.Session()
    if ok:
        out = sess.run(x, {x: value})
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, np.asarray(value, np.float32))
    else:
        with pytest.raises(gc.FeedError, match=r"'x(_\d+)?'"):
            sess.run(x, {x: value})


@pytest.mark.parametrize(
    "value, ok",
    [
        (np.array([1, 2], np.int64), True),
        (np.array([2**40, 1], np.int64), False),  # does not fit int32
        (np.array([1.0, 2.0]), False),  # float into int
        (np.array([1.5, 2.0], np.float32), False),
        (3.0, False),
    ],
)
def test_feed_conversion_into_int32(value: object, ok: bool) -> None:
    x = gc.placeholder("int32", (None,), name="ints")
    if ok:
        assert_same(gc.Session().run(x, {x: value}), np.asarray(value, np.int32))
    else:
        with pytest.raises(gc.FeedError, match="ints"):
            gc.Session().run(x, {x: value})


def test_int_into_bool_placeholder_is_refused() -> None:
    flag = gc.placeholder("bool", (2,), name="flag")
    with pytest.raises(gc.FeedError):
        gc.Session().run(flag, {flag: np.array([0, 1])})


def test_feed_keys_must_be_placeholders() -> None:
    x = gc.placeholder("float32", (), name="x")
    y = x + 1
    with pytest.raises(gc.FeedError, match="placeholders"):
        gc.Session().run(y, {y: 1.0, x: 1.0})
    with pytest.raises(gc.FeedError):
        gc.Session().run(y, {"x": 1.0})


def test_unknown_dims_accept_any_size_and_mismatches_are_caught_before_running() -> None:
    x = gc.placeholder("float32", (None,), name="a")
    y = gc.placeholder("float32", (None,), name="b")
    z = x + y
    sess = gc.Session()
    for n in (0, 1, 5):
        assert sess.run(z, {x: np.ones(n), y: np.ones(n)}).shape == (n,)
    with pytest.raises(gc.ShapeError, match=r"(?s)cannot broadcast.*test_session\.py:\d+"):
        sess.run(z, {x: np.ones(3), y: np.ones(4)})


def test_unknown_device_and_closed_session() -> None:
    with pytest.raises(gc.ArgumentError, match="reference"):
        gc.Session(device="tpu")
    with gc.Session() as sess:
        assert sess.run(gc.constant(1)) == 1
    with pytest.raises(gc.GraphError, match="closed"):
        sess.run(gc.constant(1))


# ---- variables and state -------------------------------------------------------------------------

def test_variable_value_is_a_copy_and_assign_checks() -> None:
    w = gc.Variable(np.zeros((2, 2), np.float32), name="copied")
    v = w.value
    v[0, 0] = 5
    assert w.value[0, 0] == 0
    w.assign(np.ones((2, 2)))  # float64 converts to float32
    assert_same(w.value, np.ones((2, 2), np.float32))
    with pytest.raises(gc.ShapeError, match="'copied"):
        w.assign(np.ones(3))
    with pytest.raises(gc.DTypeError):
        gc.Variable(np.zeros(2, np.int32)).assign(np.array([0.5, 1.5]))


def test_fetched_variable_value_cannot_alias_its_storage() -> None:
    w = gc.Variable(np.zeros(3, np.float32))
    out = gc.Session().run(w)
    out[:] = 7
    assert_same(w.value, np.zeros(3, np.float32))


def test_assign_in_session_reads_old_values_and_returns_new_one() -> None:
    w = gc.Variable(np.array([1.0, 2.0], np.float32), name="w")
    sess = gc.Session()
    old, new, doubled = sess.run([w, gc.assign(w, w * 10), w * 2])
    assert_same(old, np.array([1, 2], np.float32))
    assert_same(new, np.array([10, 20], np.float32))
    assert_same(doubled, np.array([2, 4], np.float32))  # reads see the start-of-run value
    assert_same(w.value, np.array([10, 20], np.float32))
    assert_same(sess.run(gc.assign_add(w, 1)), np.array([11, 21], np.float32))
    assert_same(sess.run(gc.assign(w, 0.0)), np.zeros(2, np.float32))  # broadcast scalar


@pytest.mark.parametrize("device", ["reference", "cpu", "cuda-sim"])
def test_an_assigned_value_handed_back_is_not_the_variables_storage(device: str) -> None:
    """Mutating what a run returned never changes a Variable: not the assign's own result, not a value that
    is both handed back and assigned; and two Variables assigned one value do not share an array."""
    v = gc.Variable(np.zeros(3, np.float32), name="v")
    u = gc.Variable(np.zeros(3, np.float32), name="u")
    x = gc.placeholder("float32", (3,))
    doubled = x * 2
    f = gc.function([x], [gc.assign(v, doubled), doubled], device=device)
    for out in f(np.ones(3, np.float32)):
        out[...] = 99
    assert_same(v.value, np.full(3, 2, np.float32))
    g = gc.function([x], [], updates={v: doubled + 1, u: doubled + 1}, device=device)
    g(np.ones(3, np.float32))
    assert_same(v.value, np.full(3, 3, np.float32))
    assert_same(u.value, np.full(3, 3, np.float32))
    assert v.read() is not u.read()


def test_updates_write_the_next_value_without_a_copy() -> None:
    """A training step's new weights are written by the kernels that compute them: no assign of the
    compiled step is a copy kernel, and the step still computes SGD with momentum."""
    from graphc.lower.program import LoweredProgram

    w = gc.Variable(np.ones((4, 3), np.float32), name="w")
    x = gc.placeholder("float32", (8, 4), name="x")
    loss = gc.mean(gc.square(x @ w))
    opt = gc.optimizers.SGD(0.1, momentum=0.9)
    step = gc.function([x], loss, updates=opt.updates(loss, [w]), device="cpu")
    xv = np.arange(32, dtype=np.float32).reshape(8, 4) / 32
    step(xv)
    program = step._program
    avals = program.plan(program.convert_positional([xv]))
    lowered = LoweredProgram(program.graph.nodes, avals, [*program.outputs, *program.updates])
    assert program.updates and set(lowered.in_place) == {u.id for u in program.updates if u.op == "assign"}
    grad = 2 * xv.T @ (xv @ np.ones((4, 3), np.float32)) / 24
    np.testing.assert_allclose(w.value, 1 - 0.1 * grad, rtol=1e-5)
    step(xv)  # the second step starts from the first one's weights and velocity
    w1 = 1 - 0.1 * grad
    grad2 = 2 * xv.T @ (xv @ w1) / 24
    np.testing.assert_allclose(w.value, w1 + (0.9 * (-0.1 * grad) - 0.1 * grad2), rtol=1e-5)


def test_reshapes_and_identity_sum_to_share_their_input_buffer() -> None:
    """Ops that keep their input's elements (reshapes, sum_to and broadcasts to the input's own shape) get
    no copy kernel at shapes where that holds; results are NumPy's whether the shared value is a source,
    a constant or computed, fetched or not, and the value of an update keeps memory of its own."""
    from graphc.lower.program import LoweredProgram
    from graphc.ops.like import sum_to

    x = gc.placeholder("float32", (None, 6), name="x")
    like = gc.placeholder("float32", (None, 6), name="like")
    v = gc.Variable(np.arange(6, dtype=np.float32), name="v")
    h = gc.exp(x) * 2.0
    flat = gc.reshape(h, (-1,))  # of a computed value
    back = sum_to(h, like)  # the same shape as h when both batches match: the identity
    folded = gc.reshape(x, (-1, 3))  # of a source
    out = gc.sum(gc.reshape(flat, (-1, 2)), axis=1) + 1.0
    doubled = gc.reshape(gc.reshape(v * 2.0, (2, 3)), (6,))  # an update's value: memory of its own
    fn = gc.function([x, like], [out, back * 3.0, folded, flat], updates={v: doubled})
    xv = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)
    got = fn(xv, np.zeros((4, 6), np.float32))
    hv = np.exp(xv) * np.float32(2)
    np.testing.assert_allclose(got[0], hv.reshape(-1, 2).sum(1) + 1, rtol=1e-6)
    np.testing.assert_allclose(got[1], hv * 3, rtol=1e-6)
    assert_same(got[2], xv.reshape(-1, 3))
    np.testing.assert_allclose(got[3], hv.reshape(-1), rtol=1e-6)
    assert not np.shares_memory(got[2], xv)  # a fetched value is the caller's own
    assert_same(v.value, np.arange(6, dtype=np.float32) * 2)
    fn(xv, np.zeros((4, 6), np.float32))
    assert_same(v.value, np.arange(6, dtype=np.float32) * 4)
    program = fn._program
    feeds = program.convert_positional([xv, np.zeros((4, 6), np.float32)])
    wanted = [*program.outputs, *program.updates]
    lowered = LoweredProgram(program.graph.nodes, program.plan(feeds), wanted)
    shared = {program.graph.nodes[k].op for k in range(len(program.graph.nodes))
              if program.graph.nodes[k].id in lowered.aliases}
    assert "sum_to" in shared and "reshape" in shared
    assert not {t.id for t in wanted} & set(lowered.aliases)
    # batches that differ: sum_to really sums, so it gets its kernel
    got = fn(xv, np.zeros((1, 6), np.float32))
    np.testing.assert_allclose(got[1], hv.sum(0, keepdims=True) * 3, rtol=1e-5)


def test_group_runs_its_ops_and_yields_none() -> None:
    a = gc.Variable(np.float32(1), name="a")
    b = gc.Variable(np.float32(2), name="b")
    op = gc.group(gc.assign(a, b), [gc.assign(b, a)])
    assert gc.Session().run(op) is None
    assert a.value == 2 and b.value == 1  # swapped: simultaneous
    with pytest.raises(gc.GraphError, match="group"):
        op + 1


def test_two_updates_of_one_variable_in_a_run_are_an_error() -> None:
    w = gc.Variable(np.float32(0), name="twice")
    with pytest.raises(gc.GraphError, match="twice.*updated twice"):
        gc.Session().run([gc.assign(w, 1.0), gc.assign_add(w, 1.0)])


def test_assign_checks_target_and_value() -> None:
    w = gc.Variable(np.zeros(3, np.int32), name="w")
    with pytest.raises(gc.ArgumentError, match="Variable"):
        gc.assign(gc.constant(np.zeros(3)), 1.0)
    with pytest.raises(gc.DTypeError):
        gc.assign(w, gc.constant(np.zeros(3, np.float32)))
    with pytest.raises(gc.ShapeError):
        gc.assign(w, gc.constant(np.zeros(4, np.int32)))


def test_variable_construction_checks() -> None:
    with pytest.raises(gc.DTypeError):
        gc.Variable(np.array(["a"]))
    with pytest.raises(gc.ArgumentError):
        gc.Variable(gc.constant(1.0))
    v = gc.Variable(np.zeros(2, np.float16))
    assert v.dtype == np.float32
    assert gc.Variable([1, 2], dtype="int32").dtype == np.int32


# ---- gc.function -----------------------------------------------------------------------------------

def test_function_inputs_and_output_structures() -> None:
    x = gc.placeholder("float32", (None,), name="fx")
    y = gc.placeholder("float32", (None,), name="fy")
    f = gc.function([x, y], {"sum": x + y, "both": [x * 2, y * 3]})
    out = f(np.ones(2), np.full(2, 2.0))
    assert_same(out["sum"], np.full(2, 3, np.float32))
    assert_same(out["both"][1], np.full(2, 6, np.float32))
    single = gc.function([x], x * 2)
    assert isinstance(single(np.ones(1)), np.ndarray)
    assert isinstance(gc.function([x], [x])(np.ones(1)), list)
    assert isinstance(gc.function([x], (x,))(np.ones(1)), tuple)


def test_function_argument_errors() -> None:
    x = gc.placeholder("float32", (None,), name="ax")
    y = gc.placeholder("float32", (None,), name="ay")
    f = gc.function([x, y], x + y)
    with pytest.raises(gc.FeedError, match="takes 2 inputs.*'ay.*got 1"):
        f(np.ones(2))
    with pytest.raises(gc.FeedError, match="takes 2 inputs"):
        f(1, 2, 3)
    with pytest.raises(gc.FeedError, match="'ay.*expected shape"):
        f(np.ones(2), np.ones((2, 2)))
    with pytest.raises(gc.ArgumentError, match="placeholders"):
        gc.function([x + 1], x)
    with pytest.raises(gc.GraphError, match="'ay'.*not among the inputs"):
        gc.function([x], x + y)
    with pytest.raises(gc.ArgumentError, match="Variables"):
        gc.function([x], x, updates={x: x})


def test_function_updates_are_simultaneous_and_after_outputs() -> None:
    a = gc.Variable(np.float64(1.0), name="ua")
    b = gc.Variable(np.float64(2.0), name="ub")
    swap = gc.function([], [a, b], updates={a: b, b: a})
    assert swap() == [1.0, 2.0]
    assert (a.value, b.value) == (2.0, 1.0)
    assert swap() == [2.0, 1.0]
    counter = gc.Variable(np.int64(0), name="counter")
    tick = gc.function([], None, updates=[(counter, counter + 1)])
    assert tick() is None
    tick()
    assert counter.value == 2


def test_function_caches_per_shape_signature() -> None:
    x = gc.placeholder("float32", (None, 3), name="cx")
    f = gc.function([x], x.sum(axis=1))
    for n in (1, 4, 1, 4, 7):
        assert f(np.ones((n, 3))).shape == (n,)
    assert len(f._program._plans) == 3


@pytest.mark.parametrize("device", ["reference", "cpu"])
def test_concurrent_calls_from_threads_are_correct(device: str) -> None:
    x = gc.placeholder("float64", (None,), name="tx")
    f = gc.function([x], gc.sum(x * x), device=device)
    rtol = 0.0  # whole numbers: every partial sum is exact, so any order gives NumPy's sum exactly
    errors: list[str] = []

    def worker(k: int) -> None:
        for n in range(1, 40):
            v = np.arange(n, dtype=np.float64) + k
            if not np.isclose(f(v), np.sum(v * v), rtol=rtol, atol=0.0):
                errors.append(f"thread {k} n {n}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_training_step_with_updates_changes_variables() -> None:
    x = gc.placeholder("float32", (None, 2), name="tx2")
    w = gc.Variable(np.zeros(2, np.float32), name="tw")
    step = gc.function([x], x @ w, updates={w: w + gc.mean(x, axis=0)})
    out = step(np.ones((4, 2)))
    assert_same(out, np.zeros(4, np.float32))
    assert_same(w.value, np.ones(2, np.float32))


def test_repeated_calls_take_the_prepared_path_and_anything_else_the_checked_one() -> None:
    x = gc.placeholder("float32", (None, 3), name="fast_x")
    idx = gc.placeholder("int64", (2,), name="fast_idx")
    f = gc.function([x, idx], [gc.take(x * 2.0, idx, axis=0), gc.sum(x)])
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    first = f(a, np.array([0, 3]))
    # arrays needing no conversion: the next call of this kind skips it
    assert f._program.quick_runner((a, np.array([0, 3]))) is not None
    again = f(a, np.array([0, 3]))
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(f(np.asfortranarray(a), np.array([1, 2]))[0], a[[1, 2]] * 2)  # converted
    np.testing.assert_array_equal(f(a[:2], np.array([1, 0]))[0], a[[1, 0]] * 2)  # another shape
    np.testing.assert_array_equal(f(a.tolist(), [3, 3])[0], a[[3, 3]] * 2)  # lists
    f(a, np.array([0, 3]))
    with pytest.raises(gc.ExecutionError, match=r"out of range(.|\n)*in the call at .*test_session\.py"):
        f(a, np.array([0, 9]))  # a fault on the prepared path names the op and the calling line
    with pytest.raises(gc.FeedError):
        f(a)
    with pytest.raises(gc.FeedError):
        f(a.astype(np.float64)[:, :2], np.array([0, 1]))


def test_large_outputs_are_reused_only_once_the_caller_has_dropped_them() -> None:
    x = gc.placeholder("float32", (128, 256), name="reuse_x")
    f = gc.function([x], x * 2.0)  # a 128 KiB output
    ones = np.ones((128, 256), np.float32)
    kept = f(ones)
    address = kept.ctypes.data
    second = f(ones * 3)
    assert second.ctypes.data != address and (kept == 2).all()  # the caller still holds the first: not reused
    del kept
    second_address = second.ctypes.data
    del second
    third = f(ones * 5)
    assert third.ctypes.data == second_address and (third == 10).all()  # dropped: its memory serves again
    view = third[0]
    del third
    fourth = f(ones)
    assert fourth.ctypes.data != view.base.ctypes.data and (view == 10).all()  # a view keeps it alive
