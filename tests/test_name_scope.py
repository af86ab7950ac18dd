"""gc.name_scope (TensorFlow 1.x semantics), the scopes the compiler builds its nodes in (rewrites,
fused kernels, gradients, optimizers, loaded graph files) and the provenance of rewrites
(RewriteRecord.result / created, OptimizedGraph.phase_rewrites).

Node names and scopes are unique in the whole process, so every test opens scopes of its own
(uniqued, and read back from the ``as`` value) and checks exact names inside them.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.ir.graph import topological_order
from graphc.ir.scope import current_scope, enter_scope, scope_of, scoped
from util import assert_same, function, run

ROOT = Path(__file__).parent.parent


def _names(outputs: list[gc.Tensor]) -> list[str]:
    return [n.name for n in topological_order(outputs)]


# ---- the scope itself ----------------------------------------------------------------------------

def test_nested_scopes_prefix_names_and_as_gives_the_path_with_a_slash() -> None:
    assert current_scope() == ""
    with gc.name_scope("ns_outer") as outer:
        assert outer.endswith("/") and current_scope() == outer[:-1]
        x = gc.placeholder("float32", (3,), name="x")
        with gc.name_scope("inner") as inner:
            assert inner == f"{outer}inner/"
            y = gc.exp(x)
            assert scoped("w") == f"{inner}w"
        z = y + 1
        assert current_scope() == outer[:-1]
    assert current_scope() == ""
    assert x.name == f"{outer}x"
    assert y.name == f"{inner}exp"
    assert z.name == f"{outer}add"
    assert scope_of(y.name) == inner[:-1] and scope_of("add") == ""


def test_entering_a_name_again_makes_a_new_unique_scope() -> None:
    with gc.name_scope("ns_twice") as first:
        a = gc.constant(1.0, name="c")
    with gc.name_scope(first[:-1].rpartition("/")[2]) as second:  # the same name again
        b = gc.constant(1.0, name="c")
    assert second == f"{first[:-1]}_1/"
    assert (a.name, b.name) == (f"{first}c", f"{second}c")
    with gc.name_scope("ns_parent") as parent:
        with gc.name_scope("inner") as i1:
            pass
        with gc.name_scope("inner") as i2:
            pass
    assert (i1, i2) == (f"{parent}inner/", f"{parent}inner_1/")
    # scopes and node names share one namespace (as in TensorFlow)
    node = gc.constant(2.0, name=f"{parent}leaf")
    with gc.name_scope(parent), gc.name_scope("leaf") as leaf:
        pass
    assert node.name == f"{parent}leaf" and leaf == f"{parent}leaf_1/"


def test_a_name_ending_in_a_slash_reenters_exactly_that_scope() -> None:
    with gc.name_scope("ns_reenter") as scope:
        a = gc.constant(1.0, name="k")
    with gc.name_scope("ns_elsewhere") as other:
        with gc.name_scope(scope) as again:  # absolute: not under ns_elsewhere, and not uniqued
            b = gc.constant(1.0, name="k")
            c = gc.constant(1.0, name="fresh")
        d = gc.constant(1.0, name="k")
    assert again == scope
    assert (a.name, b.name, c.name, d.name) == (f"{scope}k", f"{scope}k_1", f"{scope}fresh", f"{other}k")
    with gc.name_scope(scope), gc.name_scope("sub") as sub:
        assert sub == f"{scope}sub/"


def test_empty_name_or_none_resets_to_the_root_scope() -> None:
    with gc.name_scope("ns_root") as scope:
        with gc.name_scope("") as root:
            assert root == "" and current_scope() == ""
            a = gc.constant(1.0, name="ns_root_reset_a")
            with gc.name_scope(None) as again:
                assert again == ""
                b = gc.constant(1.0, name="ns_root_reset_b")
        assert current_scope() == scope[:-1]
    assert (a.name, b.name) == ("ns_root_reset_a", "ns_root_reset_b")


def test_digits_dots_and_dashes_in_scope_names() -> None:
    with gc.name_scope("1ns.v2-x") as scope:
        t = gc.placeholder("float32", (), name="in")
    assert re.fullmatch(r"1ns\.v2-x(_\d+)?/", scope) and t.name == f"{scope}in"


@pytest.mark.parametrize("bad", [3, b"layer", ["a"], "a//b", "/a", "/", "//", "a b", "-lead", "x/-y", "a/b//",
                                 "naïve", "a:0"])
def test_invalid_names_are_argument_errors_naming_the_value_and_line(bad: object) -> None:
    line = inspect.currentframe().f_lineno + 2  # type: ignore[union-attr]
    with pytest.raises(gc.ArgumentError) as info:
        gc.name_scope(bad)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("name_scope: expected a scope name")
    assert repr(bad) in message
    assert f"test_name_scope.py:{line}" in message
    assert current_scope() == ""


def test_scopes_are_per_thread() -> None:
    in_worker: dict[str, object] = {}
    ready, done = threading.Barrier(2), threading.Event()

    def worker() -> None:
        in_worker["start"] = current_scope()
        with gc.name_scope("ns_thread_worker") as scope:
            ready.wait()  # the main thread is inside its own scope now
            in_worker["scope"] = scope
            in_worker["node"] = gc.constant(1.0, name="c").name
            done.wait()
        in_worker["end"] = current_scope()

    with gc.name_scope("ns_thread_main") as main:
        thread = threading.Thread(target=worker)
        thread.start()
        ready.wait()
        here = gc.constant(1.0, name="c").name
        done.set()
        thread.join()
        assert current_scope() == main[:-1]
    assert in_worker["start"] == "" and in_worker["end"] == ""
    assert in_worker["node"] == f"{in_worker['scope']}c" and here == f"{main}c"


def test_enter_scope_is_exact() -> None:
    with enter_scope("ns_exact/a.b"):
        t = gc.constant(1.0, name="ns_exact_c")
        with enter_scope(""):
            assert current_scope() == ""
        assert current_scope() == "ns_exact/a.b"
    assert t.name == "ns_exact/a.b/ns_exact_c"


# ---- nodes built in a scope ----------------------------------------------------------------------

def test_placeholders_variables_and_constants_are_scoped_and_run() -> None:
    with gc.name_scope("ns_layer") as scope:
        x = gc.placeholder("float32", (None, 3), name="x")
        w = gc.Variable(np.arange(6, dtype=np.float32).reshape(3, 2), name="w")
        b = gc.Variable(np.ones(2, np.float32))
        c = gc.constant(np.float32(0.5))
        y = gc.relu(x @ w + b) * c
    assert (x.name, w.name, b.name, c.name) == (f"{scope}x", f"{scope}w", f"{scope}variable", f"{scope}constant")
    assert y.name.startswith(scope) and all(n.startswith(scope) for n in _names([y]))
    xv = np.array([[1, -2, 3], [-1, 0, 2]], np.float32)
    expected = np.maximum(xv @ w.value + 1, 0) * np.float32(0.5)
    assert_same(run(y, {x: xv}), expected, rtol=1e-6)
    assert_same(function([x], y, device="cpu")(xv), expected, rtol=1e-6)


def test_a_rewrite_builds_its_nodes_in_the_scope_of_the_node_it_replaces() -> None:
    with gc.name_scope("ns_head") as head:
        x = gc.placeholder("float64", (2, 3), name="logits")
        y = gc.log(gc.softmax(x))
    opt = gc.optimize([y], level=1)
    (record,) = [r for r in opt.rewrites if r.rewrite == "stable_log"]
    assert (record.node, record.result, record.created) == (y.name, f"{head}log_softmax", (f"{head}log_softmax",))
    assert opt.outputs[0].name == f"{head}log_softmax" and opt.outputs[0].op == "log_softmax"
    assert opt.outputs[0].location == y.location
    xv = np.array([[1.0, 2.0, 3.0], [-1000.0, 0.0, 1000.0]])
    shifted = xv - xv.max(axis=1, keepdims=True)
    assert_same(run(y, {x: xv}), shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)), rtol=1e-12)


def test_fused_nodes_kernel_outputs_and_parameters_are_named_in_their_scopes() -> None:
    x = gc.placeholder("float32", (4, 5), name="ns_fuse_x")
    with gc.name_scope("ns_block") as block:
        with gc.name_scope("a") as sa:
            a = gc.exp(x) * 2
        with gc.name_scope("b") as sb:
            b = gc.tanh(a) + 1
            c = gc.sum(b)
    opt = gc.optimize([b, c, a])
    (fused,) = [n for n in opt.nodes if n.op == "fused"]
    assert fused.name == f"{block}fused_reduction"
    outs = opt.outputs
    assert [o.op for o in outs] == ["kernel_output"] * 3
    assert [o.name for o in outs] == [f"{sb}add_1", f"{sb}sum_1", f"{sa}multiply_1"]
    kernel = fused.attrs["kernel"]
    assert [m.name for m in kernel.outputs] == [a.name, b.name, c.name]  # the inner graph keeps the members' names
    for k, p in enumerate(kernel.params):
        assert re.fullmatch(rf"in{k}(_\d+)?", p.name), p.name
    (record,) = opt.phase_rewrites["fuse"]
    assert record.result == fused.name
    assert record.created == (fused.name, outs[2].name, outs[0].name, outs[1].name)  # in the order built
    xv = np.linspace(-1, 1, 20, dtype=np.float32).reshape(4, 5)
    av = np.exp(xv) * 2
    bv = np.tanh(av) + 1
    for got, want in zip(function([x], [b, c, a], device="cpu")(xv), [bv, bv.sum(), av]):
        assert_same(got, want, rtol=1e-5)


def test_a_kernel_across_scopes_is_fused_in_their_common_scope() -> None:
    with gc.name_scope("ns_common_x") as sx:
        x = gc.placeholder("float32", (3,), name="x")
    with gc.name_scope("ns_common") as top:
        with gc.name_scope("p/q"):
            u = gc.exp(x)
        with gc.name_scope("p/r"):
            v = gc.sin(u) * u
    with gc.name_scope("ns_common_other"):
        w = v - 1
    opt = gc.optimize([v, w])
    (fused,) = [n for n in opt.nodes if n.op == "fused"]
    assert "/" not in fused.name  # ns_common and ns_common_other share no scope
    opt = gc.optimize([v])
    (fused,) = [n for n in opt.nodes if n.op == "fused"]
    assert fused.name == f"{top}p/fused_elementwise"  # the deepest scope holding p/q and p/r, by segments
    assert sx != top
    with gc.name_scope(top), gc.name_scope("pq"):
        z = gc.exp(x) * 3.0
    with gc.name_scope(top), gc.name_scope("pr"):
        z = gc.sin(z) + z
    (fused,) = [n for n in gc.optimize([z]).nodes if n.op == "fused"]
    assert fused.name == f"{top}fused_elementwise"  # "pq" and "pr" are not one segment


def test_compiling_inside_a_user_scope_does_not_leak_into_compiler_built_nodes() -> None:
    x = gc.placeholder("float64", (2, 3), name="ns_leak_x")
    y = gc.log(gc.softmax(x)) + gc.exp(x) * 2.0
    with gc.name_scope("ns_leak") as scope:
        opt = gc.optimize([y])
        fn = function([x], y, device="cpu")
        assert current_scope() == scope[:-1]
    built = {n.name for n in topological_order([y])}
    for graph in (opt, fn.graph, *(g for _, g in opt.phases)):
        assert not [n.name for n in graph.nodes if n.name.startswith(scope)]
    new = [n.name for n in opt.nodes if n.name not in built]
    assert new and all("/" not in n for n in new), new
    xv = np.array([[0.5, -1.0, 2.0], [3.0, 0.0, -2.0]])
    shifted = xv - xv.max(axis=1, keepdims=True)
    expected = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)) + np.exp(xv) * 2.0
    assert_same(fn(xv), expected, rtol=1e-12)


# ---- gradients and optimizers --------------------------------------------------------------------

def test_gradient_scopes_first_and_second_order() -> None:
    with gc.name_scope("ns_grad_model") as model:
        x = gc.placeholder("float64", (3,), name="x")
        w = gc.Variable(np.array([1.0, -2.0, 0.5]), name="w")
        y = gc.sum(w * w * x)
    forward = set(_names([y]))
    with gc.name_scope("ns_grad_one") as one:
        g = gc.grad(y, w)
        unused = gc.grad(y, [w, gc.placeholder("float64", (2,), name="unreached")])[1]
    grad_scope = f"{one}gradients/"
    new = [n for n in _names([g]) if n not in forward]
    assert new and all(n.startswith(grad_scope) for n in new), new
    assert f"{grad_scope}fill_like" in new  # the seed, in the gradient scope itself
    assert any(n.startswith(f"{grad_scope}{model}sum_grad/") for n in new)
    assert any(n.startswith(f"{grad_scope}{model}multiply_grad/") for n in new)
    assert g.name == f"{grad_scope}{model}w_grad/add"  # w is used twice: its contributions are added in w_grad
    assert unused.name.startswith(f"{one}gradients_1/") and unused.name.count("/") == 2, unused.name

    with gc.name_scope("ns_grad_two") as two:
        total = gc.sum(g)
        h = gc.grad(total, w)
    first_order = set(_names([total]))
    second = [n for n in _names([h]) if n not in first_order]
    assert second and all(n.startswith(f"{two}gradients/") for n in second), second
    assert any(n.startswith(f"{two}gradients/{grad_scope}{model}multiply_grad/") and "_grad/" in n[len(two):]
               for n in second), second

    xv = np.array([0.5, 2.0, -1.0])
    gv, hv = run([g, h], {x: xv})
    assert_same(gv, 2 * w.value * xv, rtol=1e-15)
    assert_same(hv, 2 * xv, rtol=1e-15)


def test_gradients_at_the_root_are_under_a_gradients_scope() -> None:
    x = gc.placeholder("float64", (2,), name="ns_grad_root_x")
    g = gc.grad(gc.sum(gc.exp(x)), x)
    first = g.name.partition("/")[0]
    assert re.fullmatch(r"gradients(_\d+)?", first) and re.fullmatch(rf"{first}/exp(_\d+)?_grad/multiply", g.name)
    gg = gc.grad(gc.sum(g), x)  # g simplifies to exp(x) before it is differentiated: exp's gradient again
    second = gg.name.partition("/")[0]
    assert re.fullmatch(r"gradients_\d+", second) and second != first
    assert re.fullmatch(rf"{second}/exp(_\d+)?_grad/multiply", gg.name), gg.name
    xv = np.array([0.0, 1.0])
    assert_same(run(gg, {x: xv}), np.exp(xv), rtol=1e-15)


def test_optimizer_updates_are_in_the_optimizers_scope_and_slots_keep_their_names() -> None:
    with gc.name_scope("ns_opt_model") as model:
        x = gc.placeholder("float64", (3,), name="x")
        w = gc.Variable(np.array([1.0, 2.0, 3.0]), name="w")
        loss = gc.sum((x * w - 1.0) ** 2)
    with gc.name_scope("ns_opt_train") as train:
        adam = gc.optimizers.Adam(0.1)
        step = adam.minimize(loss)
    assert step.name == f"{train}minimize"
    assert [v.name for v in adam.variables()] == [f"{model}w/Adam/m", f"{model}w/Adam/v", f"{model}w/Adam/step"]
    assert step.inputs and all(a.op == "assign" and a.name.startswith(f"{train}Adam/") for a in step.inputs)
    for assign in step.inputs:
        value = assign.inputs[1]
        assert value.name.startswith(f"{train}Adam/"), value.name
    grads = [n for n in _names([step]) if "gradients" in n]
    assert grads and all(n.startswith(f"{train}gradients/") for n in grads)

    with gc.name_scope(train):
        sgd = gc.optimizers.SGD(0.05, momentum=0.5)
        updates = sgd.updates(loss, [w])
        again = sgd.updates(loss, [w])  # a second call: a new scope, the same slots
    assert {v.name for v in updates} == {w.name, f"{model}w/SGD/momentum"}
    assert all(u.name.startswith(f"{train}SGD/") for u in updates.values())
    assert all(u.name.startswith(f"{train}SGD_1/") for u in again.values())
    assert [v.name for v in sgd.variables()] == [f"{model}w/SGD/momentum"]

    xv = np.array([0.5, -1.0, 2.0])
    w0 = w.value
    g = 2 * (xv * w0 - 1.0) * xv
    sess = gc.Session(device="reference")
    sess.run(step, {x: xv})
    m, v = 0.1 * g, 0.001 * g * g
    lr_t = 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9)
    np.testing.assert_allclose(w.value, w0 - lr_t * m / (np.sqrt(v) + 1e-8), rtol=1e-12)


# ---- graph files ---------------------------------------------------------------------------------

def _scoped_model() -> tuple[gc.Tensor, gc.Variable, list[gc.Tensor]]:
    with gc.name_scope("ns_file_model") as scope:
        x = gc.placeholder("float32", (None, 3), name="x")
        with gc.name_scope("dense"):
            w = gc.Variable(np.array([[1.0], [-1.0], [0.5]], np.float32), name="w")
            y = gc.tanh(x @ w)
    (g,) = gc.grad(gc.sum(y), [w])
    assert y.name.startswith(scope)
    return x, w, [y, g]


def test_graph_files_round_trip_scoped_names_and_load_inside_a_scope(tmp_path: Path) -> None:
    x, w, built = _scoped_model()
    optimized = gc.optimize(built).outputs  # fused nodes and kernel outputs with scoped names too
    assert any(t.op == "kernel_output" and t.name.count("/") >= 2 for t in optimized)
    # (a rewritten graph keeps the names of the nodes it did not change: one file per graph)
    paths = [tmp_path / "built.gcg", tmp_path / "optimized.gcg"]
    saved = []
    for path, outputs in zip(paths, (built, optimized)):
        gc.save_graph(path, outputs, inputs=[x])
        saved.append(_names(outputs))
    assert any(n.count("/") >= 3 for n in saved[0])

    script = ("import json, sys, graphc as gc\n"
              "from graphc.ir.graph import topological_order\n"
              "inputs, outputs = gc.load_graph(sys.argv[1])\n"
              "print(json.dumps([[t.name for t in inputs], [n.name for n in topological_order(outputs)]]))\n")
    for path, names in zip(paths, saved):  # each in a fresh process, where no name is taken yet
        result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                                timeout=120, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        loaded_inputs, loaded = json.loads(result.stdout)
        assert loaded_inputs == [x.name] and loaded == names  # loaded at the root: exactly the saved names

    xv = np.array([[1, 2, 3], [0, -1, 4]], np.float32)
    hidden = xv @ w.value
    expected = [np.tanh(hidden), xv.T @ (1 - np.tanh(hidden) ** 2)]
    for path, names in zip(paths, saved):
        with gc.name_scope("ns_pre") as pre:
            inputs, again = gc.load_graph(path)
        assert [t.name for t in inputs] == [f"{pre}{x.name}"]
        assert _names(again) == [f"{pre}{n}" for n in names]  # one prefix, never two
        for got, want in zip(function(inputs, again)(xv), expected):
            assert_same(got, want, rtol=1e-5)


# ---- rewrite provenance ----------------------------------------------------------------------------

def test_rewrite_records_name_the_result_and_what_was_created() -> None:
    with gc.name_scope("ns_prov") as s:
        x = gc.placeholder("float64", (4,), name="x")
        a = gc.log(gc.sigmoid(x))     # stable_log builds three nodes
        b = x * 1.0                   # identity_operand returns x itself: nothing created
        c = (x + 2.0) * (x + 2.0)     # cse merges the second x + 2.0; specialize makes a square
        out = a + b + c
    opt = gc.optimize([out])
    by_rewrite = {}
    for r in opt.rewrites:
        by_rewrite.setdefault(r.rewrite, []).append(r)
    (log,) = by_rewrite["stable_log"]
    assert (log.node, log.result) == (a.name, f"{s}neg_1")
    assert log.created == (f"{s}neg", f"{s}softplus", f"{s}neg_1")
    (identity,) = by_rewrite["identity_operand"]
    assert (identity.node, identity.result, identity.created) == (b.name, x.name, ())
    cse_adds = [r for r in by_rewrite["cse"] if r.op == "add"]
    assert [(r.node, r.result, r.created) for r in cse_adds] == [(f"{s}add_1", f"{s}add", ())]
    (square,) = by_rewrite["square"]
    assert (square.result, square.created) == (f"{s}square", (f"{s}square",))
    assert str(log) == f"stabilize/stable_log: log '{a.name}' at {a.location}"
    xv = np.array([-30.0, -1.0, 0.0, 3.0])
    assert_same(run(out, {x: xv}), -np.logaddexp(0, -xv) + xv + (xv + 2) ** 2, rtol=1e-12)


def test_phase_rewrites_partition_the_log_by_the_phase_that_ran() -> None:
    with gc.name_scope("ns_phases"):
        x = gc.placeholder("float64", (4,), name="x")
        a = gc.log(gc.sigmoid(-x))  # stabilize builds neg(neg(x)); canonicalize's involution fires in stabilize
        b = (x + 1.0) * (x + 1.0) + x * 1.0
        out = a + b
    opt = gc.optimize([out])
    assert list(opt.phase_rewrites) == list(gc.passes.PHASES)
    assert [r for phase in opt.phase_rewrites.values() for r in phase] == list(opt.rewrites)
    stabilize = [(r.phase, r.rewrite) for r in opt.phase_rewrites["stabilize"]]
    assert ("stabilize", "stable_log") in stabilize and ("canonicalize", "involution") in stabilize
    assert {r.phase for r in opt.phase_rewrites["canonicalize"]} == {"canonicalize"}
    assert [r.rewrite for r in opt.phase_rewrites["specialize"]] == ["square"]
    assert [r.rewrite for r in opt.phase_rewrites["fuse"]] == ["fuse_elementwise"]
    assert list(gc.optimize([out], level=1).phase_rewrites) == ["canonicalize", "stabilize"]
    assert gc.optimize([out], level=0).phase_rewrites == {}
    xv = np.array([-2.0, 0.0, 1.0, 40.0])
    assert_same(run(out, {x: xv}), -np.logaddexp(0, xv) + (xv + 1) ** 2 + xv, rtol=1e-12)
