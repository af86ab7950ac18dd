"""gc.optimizers: each update rule against NumPy, slots, simultaneous updates, tensor hyperparameters,
minimize's default variable list, convergence on convex problems, and the errors for bad input."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import graphc as gc
from graphc.optimizers import SGD, Adam, RMSProp

# ---- a small nonlinear problem with a NumPy gradient -------------------------------------------------
#
# loss = sum(a * tanh(x @ W + b)) + 0.5 * sum(W ** 2): non-constant gradients, two parameters of
# different ranks.

X = np.random.default_rng(1).standard_normal((6, 3))
A = np.random.default_rng(2).standard_normal((6, 4))
W0 = np.random.default_rng(3).standard_normal((3, 4)) * 0.5
B0 = np.random.default_rng(4).standard_normal(4) * 0.5


def np_grads(w: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    t = np.tanh(X @ w + b)
    dz = A * (1 - t * t)
    return [X.T @ dz + w, dz.sum(axis=0)]


def build_problem(dtype: str = "float64") -> tuple[gc.Tensor, gc.Variable, gc.Variable]:
    w = gc.Variable(W0.astype(dtype), name="W")
    b = gc.Variable(B0.astype(dtype), name="b")
    loss = gc.sum(A.astype(dtype) * gc.tanh(X.astype(dtype) @ w + b)) + 0.5 * gc.sum(w * w)
    return loss, w, b


# ---- NumPy references of the documented formulas ---------------------------------------------------

def np_sgd(p: np.ndarray, g: np.ndarray, s: dict[str, Any], lr: float, momentum: float = 0.0,
           nesterov: bool = False) -> np.ndarray:
    if momentum == 0:
        return p - lr * g
    v = momentum * s.get("momentum", 0.0) - lr * g
    s["momentum"] = v
    return p + momentum * v - lr * g if nesterov else p + v


def np_adam(p: np.ndarray, g: np.ndarray, s: dict[str, Any], lr: float = 1e-3, beta1: float = 0.9,
            beta2: float = 0.999, eps: float = 1e-8) -> np.ndarray:
    t = s.get("step", 0) + 1
    m = beta1 * s.get("m", 0.0) + (1 - beta1) * g
    v = beta2 * s.get("v", 0.0) + (1 - beta2) * g * g
    s.update(step=t, m=m, v=v)
    lr_t = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    return p - lr_t * m / (np.sqrt(v) + eps)


def np_rmsprop(p: np.ndarray, g: np.ndarray, s: dict[str, Any], lr: float = 1e-3, decay: float = 0.9,
               momentum: float = 0.0, eps: float = 1e-7, centered: bool = False) -> np.ndarray:
    rms = decay * s.get("rms", 0.0) + (1 - decay) * g * g
    s["rms"] = rms
    denom = rms
    if centered:
        mg = decay * s.get("mg", 0.0) + (1 - decay) * g
        s["mg"] = mg
        denom = rms - mg * mg
    step = lr * g / np.sqrt(denom + eps)
    if momentum == 0:
        return p - step
    mom = momentum * s.get("momentum", 0.0) + step
    s["momentum"] = mom
    return p - mom


CASES = [
    (SGD, np_sgd, {"lr": 0.1}),
    (SGD, np_sgd, {"lr": 0.05, "momentum": 0.9}),
    (SGD, np_sgd, {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
    (Adam, np_adam, {}),
    (Adam, np_adam, {"lr": 0.05, "beta1": 0.5, "beta2": 0.9, "eps": 1e-3}),
    (RMSProp, np_rmsprop, {}),
    (RMSProp, np_rmsprop, {"lr": 0.01, "decay": 0.8, "momentum": 0.7}),
    (RMSProp, np_rmsprop, {"lr": 0.01, "decay": 0.95, "centered": True}),
    (RMSProp, np_rmsprop, {"lr": 0.02, "decay": 0.9, "momentum": 0.5, "eps": 1e-3, "centered": True}),
]
CASE_IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}" for cls, _, kw in CASES]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cls, reference, kwargs", CASES, ids=CASE_IDS)
def test_steps_match_numpy(cls: type, reference: Any, kwargs: dict, dtype: str) -> None:
    loss, w, b = build_problem(dtype)
    opt = cls(**kwargs)
    step = gc.function([], loss, updates=opt.updates(loss, [w, b]))
    params = [W0.astype(dtype).astype(np.float64), B0.astype(dtype).astype(np.float64)]
    states: list[dict[str, Any]] = [{}, {}]
    rtol = 1e-10 if dtype == "float64" else 2e-4
    for _ in range(5):
        step()
        grads = np_grads(*params)
        params = [reference(p, g, s, **kwargs) for p, g, s in zip(params, grads, states)]
        for var, expected, state in zip([w, b], params, states):
            assert var.value.dtype == np.dtype(dtype)
            np.testing.assert_allclose(var.value, expected, rtol=rtol, atol=rtol * 1e-2)
            for name, value in state.items():
                slot = opt.get_slot(var, name).value
                if name == "step":
                    assert slot.dtype == np.int64 and slot.shape == () and slot == value
                else:
                    assert slot.dtype == np.dtype(dtype)
                    np.testing.assert_allclose(slot, value, rtol=rtol, atol=rtol * 1e-2)
        assert set(opt.slot_names) == set(states[0])


def test_adam_bias_correction_makes_the_first_step_lr_times_the_sign() -> None:
    # with m and v bias-corrected, step 1 moves every element by lr * g / (|g| + eps_hat) ~ lr * sign(g)
    w = gc.Variable(np.array([1.0, -2.0, 3.0]), name="w")
    loss = gc.sum(gc.constant(np.array([5.0, -0.01, 100.0])) * w)
    opt = Adam(0.1, eps=1e-12)
    gc.Session().run(opt.minimize(loss))
    np.testing.assert_allclose(w.value, [0.9, -1.9, 2.9], rtol=1e-9)
    assert opt.get_slot(w, "step").value == 1


# ---- slots ------------------------------------------------------------------------------------------

def test_slots_are_created_once_zeroed_and_owned_by_the_optimizer() -> None:
    loss, w, b = build_problem("float32")
    opt = Adam(0.01)
    first = opt.updates(loss, [w, b])
    second = opt.updates(loss, [w, b])  # calling again reuses the same slots
    assert opt.slot_names == ("m", "v", "step")
    assert set(opt.slots) == {w, b}
    for var in (w, b):
        slots = opt.slots[var]
        assert list(slots) == ["m", "v", "step"]
        for name in ("m", "v"):
            slot = opt.get_slot(var, name)
            assert slot is slots[name]
            assert isinstance(slot, gc.Variable) and not slot.trainable
            assert slot.shape == var.shape and slot.dtype == var.dtype
            np.testing.assert_array_equal(slot.value, np.zeros(var.shape, np.float32))
            assert slot.name.startswith(f"{var.name}/Adam/{name}")
        step = opt.get_slot(var, "step")
        assert step.shape == () and step.dtype == np.int64 and step.value == 0
    assert set(first) == set(second) == {w, b, *opt.variables()}
    assert len(opt.variables()) == 6
    # another optimizer keeps its own slots
    other = Adam(0.01)
    other.updates(loss, [w])
    assert other.get_slot(w, "m") is not opt.get_slot(w, "m")
    assert set(other.slots) == {w}


@pytest.mark.parametrize("opt, names", [
    (SGD(0.1), ()),
    (SGD(0.1, momentum=0.5), ("momentum",)),
    (SGD(0.1, momentum=gc.placeholder("float32", (), name="mu")), ("momentum",)),
    (RMSProp(), ("rms",)),
    (RMSProp(momentum=0.9, centered=True), ("rms", "momentum", "mg")),
    (Adam(), ("m", "v", "step")),
])
def test_slot_names_follow_the_configuration(opt: gc.optimizers.Optimizer, names: tuple) -> None:
    assert opt.slot_names == names


def test_slot_update_values_are_also_returned_by_updates() -> None:
    loss, w, b = build_problem()
    opt = SGD(0.1, momentum=0.9)
    updates = opt.updates(loss, [w, b])
    v = opt.get_slot(w, "momentum")
    new_w, new_v = gc.Session().run([updates[w], updates[v]])
    g = np_grads(W0, B0)[0]
    np.testing.assert_allclose(new_v, -0.1 * g, rtol=1e-12)
    np.testing.assert_allclose(new_w, W0 - 0.1 * g, rtol=1e-12)
    np.testing.assert_array_equal(w.value, W0)  # nothing was applied: the dict only holds tensors


def test_updates_are_simultaneous_every_read_sees_the_old_values() -> None:
    loss, w, b = build_problem()
    opt = Adam(0.1)
    train = opt.minimize(loss, [w, b])
    m = opt.get_slot(w, "m")
    sess = gc.Session()
    sess.run(train)
    m_before, w_before, loss_before = m.value, w.value, sess.run(loss)
    fetched_m, fetched_w, fetched_loss, _ = sess.run([m, w, loss, train])
    assert fetched_loss == loss_before
    np.testing.assert_array_equal(fetched_m, m_before)  # reads in the step's run saw the old values
    np.testing.assert_array_equal(fetched_w, w_before)
    params = [W0, B0]
    states: list[dict[str, Any]] = [{}, {}]
    for _ in range(2):
        params = [np_adam(p, g, s, lr=0.1) for p, g, s in zip(params, np_grads(*params), states)]
    np.testing.assert_allclose(w.value, params[0], rtol=1e-9)
    np.testing.assert_allclose(m.value, states[0]["m"], rtol=1e-9)


# ---- hyperparameters as tensors ---------------------------------------------------------------------

@pytest.mark.parametrize("lr_dtype", ["float32", "float64"])
def test_learning_rate_fed_through_a_placeholder(lr_dtype: str) -> None:
    loss, w, b = build_problem("float32")
    lr = gc.placeholder(lr_dtype, (), name="lr")
    opt = SGD(lr, momentum=0.5)
    updates = opt.updates(loss, [w, b])
    assert all(value.dtype == np.float32 for value in updates.values())
    step = gc.function([lr], loss, updates=updates)
    params = [W0.astype(np.float32).astype(np.float64), B0.astype(np.float32).astype(np.float64)]
    states: list[dict[str, Any]] = [{}, {}]
    for rate in [0.1, 0.05, 0.0, 0.2]:
        step(rate)
        params = [np_sgd(p, g, s, rate, 0.5) for p, g, s in zip(params, np_grads(*params), states)]
        np.testing.assert_allclose(w.value, params[0], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(b.value, params[1], rtol=1e-4, atol=1e-6)
    assert w.value.dtype == np.float32


def test_hyperparameters_may_be_variables_and_expressions() -> None:
    loss, w, b = build_problem()
    rate = gc.Variable(0.01, name="rate", trainable=False)
    opt = Adam(rate * 2, beta1=gc.constant(0.5), beta2=gc.Variable(np.float32(0.9), trainable=False))
    sess = gc.Session()
    train = opt.minimize(loss, [w])
    sess.run(train)
    expected = np_adam(W0, np_grads(W0, B0)[0], {}, lr=0.02, beta1=0.5, beta2=np.float64(np.float32(0.9)))
    np.testing.assert_allclose(w.value, expected, rtol=1e-7)
    np.testing.assert_array_equal(b.value, B0)
    assert opt.get_hyperparameter("beta1").op == "constant"


# ---- minimize ---------------------------------------------------------------------------------------

def test_minimize_defaults_to_the_trainable_variables_the_loss_depends_on() -> None:
    x = gc.placeholder("float32", (None, 2), name="x")
    w = gc.Variable(np.ones((2, 1), np.float32), name="w")
    scale = gc.Variable(np.float32(2.0), name="scale", trainable=False)
    unrelated = gc.Variable(np.ones(3, np.float32), name="unrelated")
    loss = gc.mean(gc.square(x @ w * scale - 1.0))
    opt = SGD(0.01, momentum=0.9)
    train = opt.minimize(loss)
    assert train.op == "group"
    assert set(opt.slots) == {w}
    sess = gc.Session()
    xb = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    losses = [float(sess.run([loss, train], {x: xb})[0]) for _ in range(30)]
    assert losses[-1] < losses[0] / 10
    assert scale.value == 2.0
    np.testing.assert_array_equal(unrelated.value, np.ones(3))
    # the slot is not trainable, so a second minimize does not train the first optimizer's slots
    loss2 = loss + gc.sum(opt.get_slot(w, "momentum"))
    opt2 = SGD(0.01)
    opt2.minimize(loss2)
    assert set(opt2.slots) == {w}


def test_minimize_with_var_list_and_the_result_of_a_step() -> None:
    loss, w, b = build_problem()
    train = SGD(0.1).minimize(loss, var_list=[b])
    out = gc.Session().run([loss, train])
    assert out[1] is None
    np.testing.assert_array_equal(w.value, W0)
    np.testing.assert_allclose(b.value, B0 - 0.1 * np_grads(W0, B0)[1], rtol=1e-12)


def test_a_param_the_loss_does_not_depend_on_gets_a_zero_gradient() -> None:
    loss, w, _ = build_problem()
    other = gc.Variable(np.ones(2), name="other")
    updates = SGD(0.1).updates(loss, [w, other])
    gc.function([], None, updates=updates)()
    np.testing.assert_array_equal(other.value, np.ones(2))


def test_mixed_precision_parameters_keep_their_dtypes() -> None:
    w32 = gc.Variable(np.ones(3, np.float32), name="w32")
    w64 = gc.Variable(np.ones(3, np.float64), name="w64")
    loss = gc.sum(gc.square(gc.cast(w32, "float64") - w64 * 3))
    for opt in (SGD(0.1, momentum=0.9, nesterov=True), Adam(0.1), RMSProp(0.1, momentum=0.1, centered=True)):
        updates = opt.updates(loss, [w32, w64])
        assert {var: value.dtype for var, value in updates.items()} == {var: var.dtype for var in updates}
        gc.function([], loss, updates=updates)()
        assert w32.value.dtype == np.float32 and w64.value.dtype == np.float64


# ---- convergence on convex problems -----------------------------------------------------------------

def least_squares_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    xs = rng.standard_normal((200, 5)) * np.array([1.0, 2.0, 0.5, 1.0, 1.5])
    ys = xs @ np.array([1.5, -2.0, 0.5, 3.0, -1.0]) + 0.7 + 0.1 * rng.standard_normal(200)
    return xs.astype(np.float32), ys.astype(np.float32)


CONVERGE = [
    ("SGD", lambda: SGD(0.1), 300),
    ("SGD-momentum", lambda: SGD(0.02, momentum=0.9), 300),
    ("SGD-nesterov", lambda: SGD(0.02, momentum=0.9, nesterov=True), 300),
    ("Adam", lambda: Adam(0.1), 600),
    ("RMSProp", lambda: RMSProp(0.01), 500),
    ("RMSProp-centered-momentum", lambda: RMSProp(0.005, momentum=0.9, centered=True), 500),
]


@pytest.mark.parametrize("make, steps", [(m, s) for _, m, s in CONVERGE], ids=[n for n, _, _ in CONVERGE])
def test_converges_on_least_squares(make: Any, steps: int) -> None:
    xs, ys = least_squares_data()
    x = gc.placeholder("float32", (None, 5), name="x")
    y = gc.placeholder("float32", (None,), name="y")
    w = gc.Variable(np.zeros(5, np.float32), name="w")
    c = gc.Variable(np.float32(0.0), name="c")
    loss = gc.mean(gc.square(x @ w + c - y))
    opt = make()
    step = gc.function([x, y], loss, updates=opt.updates(loss, [w, c]))
    losses = [float(step(xs, ys)) for _ in range(steps)]
    design = np.hstack([xs, np.ones((len(xs), 1), np.float32)]).astype(np.float64)
    solution = np.linalg.lstsq(design, ys.astype(np.float64), rcond=None)[0]
    best = np.mean(np.square(design @ solution - ys))
    assert losses[-1] < losses[0] / 100, (losses[0], losses[-1])
    assert losses[-1] < best * 1.05 + 1e-4, (losses[-1], best)
    np.testing.assert_allclose(np.append(w.value, c.value), solution, atol=0.02)


@pytest.mark.parametrize("name, make", [
    ("SGD-momentum", lambda: SGD(0.5, momentum=0.9)),
    ("Adam", lambda: Adam(0.05)),
    ("RMSProp", lambda: RMSProp(0.01)),
])
def test_converges_on_regularised_logistic_regression(name: str, make: Any) -> None:
    rng = np.random.default_rng(11)
    xs = rng.standard_normal((300, 4))
    true_w = np.array([2.0, -1.0, 0.5, 0.0])
    labels = (rng.random(300) < 1 / (1 + np.exp(-(xs @ true_w)))).astype(np.float64)
    reg = 0.01
    # NumPy reference: Newton's method on the same strictly convex objective
    ref = np.zeros(4)
    for _ in range(25):
        p = 1 / (1 + np.exp(-(xs @ ref)))
        gradient = xs.T @ (p - labels) / len(xs) + reg * ref
        hessian = (xs * (p * (1 - p))[:, None]).T @ xs / len(xs) + reg * np.eye(4)
        ref -= np.linalg.solve(hessian, gradient)

    x = gc.placeholder("float64", (None, 4), name="x")
    y = gc.placeholder("float64", (None,), name="y")
    w = gc.Variable(np.zeros(4), name="w")
    loss = gc.mean(gc.sigmoid_cross_entropy(x @ w, y)) + 0.5 * reg * gc.sum(w * w)
    step = gc.function([x, y], loss, updates=make().updates(loss, [w]))
    losses = [float(step(xs, labels)) for _ in range(400)]
    p = 1 / (1 + np.exp(-(xs @ ref)))
    best = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)) + 0.5 * reg * ref @ ref
    assert losses[-1] < losses[0] and losses[-1] - best < 1e-4 * (losses[0] - best), (losses[0], losses[-1], best)
    np.testing.assert_allclose(w.value, ref, atol=0.02)


# ---- errors -----------------------------------------------------------------------------------------

HERE = re.escape("test_optimizers.py:")


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: SGD(-0.1), gc.ArgumentError, r"SGD: lr must be a finite number in \[0.0, inf\], got -0.1"),
    (lambda: SGD(float("nan")), gc.ArgumentError, "lr must be a finite number.*got nan"),
    (lambda: SGD("0.1"), gc.ArgumentError, "lr must be a number or a scalar tensor, got str '0.1'"),
    (lambda: SGD(True), gc.ArgumentError, "lr must be a number or a scalar tensor, got bool True"),
    (lambda: SGD(None), gc.ArgumentError, "lr must be a number or a scalar tensor, got NoneType"),
    (lambda: SGD(0.1, momentum=1.5), gc.ArgumentError, r"momentum must be a finite number in \[0.0, 1.0\], got 1.5"),
    (lambda: SGD(0.1, nesterov=True), gc.ArgumentError, "nesterov=True needs momentum > 0"),
    (lambda: SGD(0.1, momentum=0.9, nesterov="yes"), gc.ArgumentError, "nesterov must be True or False"),
    (lambda: Adam(beta1=1.0), gc.ArgumentError, r"beta1 must be a finite number in \[0.0, 1.0\), got 1.0"),
    (lambda: Adam(beta2=-0.5), gc.ArgumentError, "beta2 must be .*got -0.5"),
    (lambda: Adam(eps=-1e-8), gc.ArgumentError, "eps must be .*got -1e-08"),
    (lambda: RMSProp(decay=2), gc.ArgumentError, "decay must be .*got 2"),
    (lambda: RMSProp(centered=1), gc.ArgumentError, "centered must be True or False, got int 1"),
    (lambda: SGD(gc.placeholder("float32", (2,), name="lrs")), gc.ShapeError,
     r"lr must be a scalar tensor \(shape \[\]\), got 'lrs[_0-9]*'"),
    (lambda: SGD(gc.placeholder("bool", (), name="flag")), gc.DTypeError, "lr must be a real number.*'flag[_0-9]*'"),
    (lambda: SGD(gc.group()), gc.ArgumentError, "an op without a value"),
])
def test_bad_hyperparameters(make: Any, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern) as info:
        make()
    assert isinstance(info.value, gc.GraphcError)
    assert re.search(HERE, str(info.value)), str(info.value)


def _bad_updates_cases() -> list[tuple[str, Any, type, str]]:
    x = gc.placeholder("float32", (None, 2), name="xin")
    w = gc.Variable(np.ones(2, np.float32), name="wgood")
    frozen = gc.Variable(np.ones(2, np.float32), name="frozen", trainable=False)
    counts = gc.Variable(np.ones(2, np.int32), name="counts")
    loss = gc.sum(x @ w) + gc.sum(frozen)
    int_loss = gc.sum(counts)
    return [
        ("placeholder param", lambda o: o.updates(loss, [w, x]), gc.ArgumentError,
         r"params\[1\] must be a gc.Variable, got 'xin[_0-9]*' \(float32\[\?, 2\], placeholder at"),
        ("number param", lambda o: o.updates(loss, [3.0]), gc.ArgumentError,
         r"params\[0\] must be a gc.Variable, got float 3.0"),
        ("not a list", lambda o: o.updates(loss, "wgood"), gc.ArgumentError,
         "params must be a list of Variables, got str"),
        ("tensor params", lambda o: o.updates(loss, x), gc.ArgumentError,
         "params must be a list of Variables, got 'xin[_0-9]*'"),
        ("empty", lambda o: o.updates(loss, []), gc.ArgumentError, "params is empty"),
        ("twice", lambda o: o.updates(loss, [w, w]), gc.ArgumentError, r"params\[1\] 'wgood[_0-9]*'.* is listed twice"),
        ("non-trainable", lambda o: o.updates(loss, [frozen]), gc.ArgumentError,
         r"params\[0\] 'frozen[_0-9]*'.* is not trainable \(trainable=False\)"),
        ("integer param", lambda o: o.updates(int_loss * 1.0, [counts]), gc.DTypeError,
         "'counts[_0-9]*'.* has dtype int32; only floating-point Variables can be trained"),
        ("vector loss", lambda o: o.updates(x @ w, [w]), gc.ShapeError,
         r"loss must be a scalar \(shape \[\]\), got .* of shape \[\?\]"),
        ("integer loss", lambda o: o.updates(int_loss, [w]), gc.DTypeError,
         "loss must be floating point, got .* of dtype int64"),
        ("loss not a tensor", lambda o: o.updates(1.0, [w]), gc.ArgumentError,
         "loss must be a scalar floating-point tensor, got float 1.0"),
        ("unconnected", lambda o: o.updates(gc.sum(x), [w]), gc.ArgumentError,
         "depends on none of the Variables"),
        ("minimize without variables", lambda o: o.minimize(gc.sum(x) + gc.sum(frozen)), gc.ArgumentError,
         "minimize: loss .* depends on no trainable Variable"),
        ("minimize unconnected var_list", lambda o: o.minimize(gc.sum(x), [w]), gc.ArgumentError,
         "depends on none of the Variables"),
        ("minimize non-trainable var_list", lambda o: o.minimize(loss, [frozen]), gc.ArgumentError,
         "is not trainable"),
    ]


@pytest.mark.parametrize("cls", [SGD, Adam, RMSProp])
@pytest.mark.parametrize("case", range(len(_bad_updates_cases())), ids=[c[0] for c in _bad_updates_cases()])
def test_bad_updates_arguments(cls: type, case: int) -> None:
    _, call, error, pattern = _bad_updates_cases()[case]
    opt = cls(0.1)
    with pytest.raises(error, match=pattern) as info:
        call(opt)
    assert isinstance(info.value, gc.GraphcError)
    message = str(info.value)
    assert message.startswith(f"{cls.__name__}."), message
    assert re.search(HERE, message), message
    assert not opt.slots  # a failed call creates no slots


def test_get_slot_errors() -> None:
    loss, w, b = build_problem()
    opt = Adam()
    opt.updates(loss, [w])
    with pytest.raises(gc.ArgumentError, match="Adam has no slot 'velocity'; its slots are 'm', 'v', 'step'"):
        opt.get_slot(w, "velocity")
    with pytest.raises(gc.ArgumentError, match="Adam has no slots for 'b[_0-9]*'.*creates them when updates"):
        opt.get_slot(b, "m")
    with pytest.raises(gc.ArgumentError, match="SGD has no slot 'momentum'; its slots are none"):
        SGD(0.1).get_slot(w, "momentum")
    with pytest.raises(gc.ArgumentError, match="has no hyperparameter 'rho'"):
        opt.get_hyperparameter("rho")


def test_training_a_slot_is_refused() -> None:
    loss, w, _ = build_problem()
    opt = SGD(0.1, momentum=0.9)
    opt.updates(loss, [w])
    v = opt.get_slot(w, "momentum")
    with pytest.raises(gc.ArgumentError, match="not trainable.*it is a slot of this optimizer"):
        opt.updates(loss + gc.sum(v), [v])


def test_repr_names_the_hyperparameters() -> None:
    lr = gc.placeholder("float32", (), name="repr_lr")
    assert repr(SGD(0.1, momentum=0.9, nesterov=True)) == "SGD(lr=0.1, momentum=0.9, nesterov=True)"
    assert repr(Adam(lr)) == f"Adam(lr={lr.name!r}, beta1=0.9, beta2=0.999, eps=1e-08)"
    assert repr(RMSProp(centered=True)) == "RMSProp(lr=0.001, decay=0.9, momentum=0.0, eps=1e-07, centered=True)"
    assert gc.optimizers.SGD is SGD
