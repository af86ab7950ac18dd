"""graphc.nn's recurrent layers (SimpleRNN, LSTM, GRU) against NumPy implementations of Keras's equations:
forward values (return_sequences, return_state, go_backwards, initial_state, run-time batch and length),
gradients against central finite differences in float64, torch.nn.LSTM / GRU with copied weights, the
Keras weight layout and the errors (which name the user's line)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import graphc as gc
from graphc.nn.layers.base import Layer
from graphc.nn.layers.recurrent import GRU, LSTM, SimpleRNN

HERE = os.path.basename(__file__)


# ---- NumPy references (Keras's equations, gate orders LSTM i f c o, GRU z r h) -----------------------

def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def reference(kind: str, x: np.ndarray, weights: list[np.ndarray], go_backwards: bool = False,
              initial: list[np.ndarray] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(sequence (batch, time, units), final states)`` of a layer of ``kind`` with ``weights``."""
    kernel, recurrent, bias = (w.astype(np.float64) for w in weights)
    units = recurrent.shape[0]
    batch = x.shape[0]
    states = [s.astype(np.float64) for s in initial] if initial else [np.zeros((batch, units))] * (
        2 if kind == "lstm" else 1)
    steps = range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])
    outputs = []
    for t in steps:
        x_t = x[:, t].astype(np.float64)
        if kind == "rnn":
            (h,) = states
            states = [np.tanh(x_t @ kernel + h @ recurrent + bias)]
        elif kind == "lstm":
            h, c = states
            i, f, g, o = np.split(x_t @ kernel + h @ recurrent + bias, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            states = [_sigmoid(o) * np.tanh(c), c]
        elif kind == "gru":   # reset_after=True: bias (2, 3u)
            (h,) = states
            xz, xr, xh = np.split(x_t @ kernel + bias[0], 3, axis=1)
            hz, hr, hh = np.split(h @ recurrent + bias[1], 3, axis=1)
            z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
            states = [z * h + (1 - z) * np.tanh(xh + r * hh)]
        else:                 # "gru_before": reset_after=False, bias (3u,)
            (h,) = states
            xz, xr, xh = np.split(x_t @ kernel + bias, 3, axis=1)
            uz, ur, uh = np.split(recurrent, 3, axis=1)
            z, r = _sigmoid(xz + h @ uz), _sigmoid(xr + h @ ur)
            states = [z * h + (1 - z) * np.tanh(xh + (r * h) @ uh)]
        outputs.append(states[0])
    sequence = np.stack(outputs, axis=1) if outputs else np.zeros((batch, 0, units))
    return sequence, states


def make_layer(kind: str, units: int, **kwargs: Any) -> Layer:
    if kind == "rnn":
        return SimpleRNN(units, **kwargs)
    if kind == "lstm":
        return LSTM(units, **kwargs)
    return GRU(units, reset_after=kind == "gru", **kwargs)


def random_weights(layer: Layer, rng: np.random.Generator, scale: float = 0.6) -> list[np.ndarray]:
    """Random values for every weight (non-zero biases, so that they are tested), set on the layer."""
    values = [(rng.standard_normal(w.shape) * scale).astype(w.dtype) for w in layer.weights]
    layer.set_weights(values)
    return values


KINDS = ["rnn", "lstm", "gru", "gru_before"]


# ---- forward ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_forward_matches_keras_equations(kind: str) -> None:
    """One graph: return_sequences + return_state, the default (last output only) and go_backwards, on the
    same weights; run on two batch sizes and sequence lengths (both unknown when the graph is built)."""
    rng = np.random.default_rng(0)
    features, units = 3, 4
    x = gc.placeholder("float32", (None, None, features), name="x")
    full = make_layer(kind, units, return_sequences=True, return_state=True)
    outs = full(x)
    weights = random_weights(full, rng)
    last = make_layer(kind, units)
    back = make_layer(kind, units, return_sequences=True, go_backwards=True)
    last_out, back_out = last(x), back(x)
    last.set_weights(weights)
    back.set_weights(weights)
    n_states = 2 if kind == "lstm" else 1
    assert isinstance(outs, list) and len(outs) == 1 + n_states
    assert outs[0].shape == (None, None, units) and last_out.shape == (None, units)
    assert all(s.shape == (None, units) for s in outs[1:])
    f = gc.function([x], [*outs, last_out, back_out])
    for batch, steps in ((2, 5), (3, 1)):
        xv = rng.standard_normal((batch, steps, features)).astype(np.float32)
        got = f(xv)
        seq, states = reference(kind, xv, weights)
        np.testing.assert_allclose(got[0], seq, rtol=1e-5, atol=1e-5)
        for g, s in zip(got[1:1 + n_states], states):
            np.testing.assert_allclose(g, s, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got[1 + n_states], seq[:, -1], rtol=1e-5, atol=1e-5)
        back_seq, _ = reference(kind, xv, weights, go_backwards=True)
        np.testing.assert_allclose(got[2 + n_states], back_seq, rtol=1e-5, atol=1e-5)


def test_lstm_initial_state_time_major_and_no_bias() -> None:
    rng = np.random.default_rng(1)
    x = gc.placeholder("float32", (None, 4, 2), name="x")
    h0 = gc.placeholder("float32", (None, 3), name="h0")
    c0 = gc.placeholder("float32", (None, 3), name="c0")
    layer = LSTM(3, return_state=True)
    out, h, c = layer(x, initial_state=[h0, c0])
    weights = random_weights(layer, rng)
    major = LSTM(3, return_sequences=True, time_major=True, use_bias=False)
    seq_major = major(gc.transpose(x, (1, 0, 2)))
    assert [w.shape for w in major.weights] == [(2, 12), (3, 12)]
    major.set_weights(weights[:2])
    f = gc.function([x, h0, c0], [out, h, c, seq_major])
    xv = rng.standard_normal((2, 4, 2)).astype(np.float32)
    hv, cv = rng.standard_normal((2, 2, 3)).astype(np.float32)
    got = f(xv, hv, cv)
    seq, (h_ref, c_ref) = reference("lstm", xv, weights, initial=[hv, cv])
    np.testing.assert_allclose(got[0], seq[:, -1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1], h_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[2], c_ref, rtol=1e-5, atol=1e-5)
    seq_nb, _ = reference("lstm", xv, [*weights[:2], np.zeros(12)])
    np.testing.assert_allclose(got[3], seq_nb.transpose(1, 0, 2), rtol=1e-5, atol=1e-5)


def test_zero_steps_give_the_initial_state() -> None:
    x = gc.placeholder("float32", (None, None, 2), name="x")
    seq, h = GRU(3, return_sequences=True, return_state=True)(x)
    got_seq, got_h = gc.function([x], [seq, h])(np.zeros((2, 0, 2), np.float32))
    assert got_seq.shape == (2, 0, 3)
    np.testing.assert_array_equal(got_h, np.zeros((2, 3), np.float32))


# ---- gradients --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_gradients_match_finite_differences(kind: str) -> None:
    """d loss / d (kernel, recurrent_kernel, bias, x) in float64 against central differences of the same
    compiled loss."""
    rng = np.random.default_rng(2)
    batch, steps, features, units = 2, 3, 2, 2
    x = gc.placeholder("float64", (None, None, features), name="x")
    layer = make_layer(kind, units, dtype="float64", return_sequences=kind != "gru",
                       go_backwards=kind in ("lstm", "gru_before"))
    out = layer(x)
    random_weights(layer, rng)
    proj = rng.standard_normal(out.shape[1:] if out.ndim == 2 else (steps, units))
    loss = gc.sum(out * proj)
    variables = layer.weights
    grads = gc.grad(loss, [*variables, x])
    f = gc.function([x], [loss, *grads])
    xv = rng.standard_normal((batch, steps, features))
    loss_v, *got = f(xv)
    assert loss_v.dtype == np.float64

    def numeric(base: np.ndarray, loss_at: Callable[[np.ndarray], float], eps: float = 1e-6) -> np.ndarray:
        g = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            up, down = base.copy(), base.copy()
            up[idx] += eps
            down[idx] -= eps
            g[idx] = (loss_at(up) - loss_at(down)) / (2 * eps)
        return g

    for var, g in zip(variables, got):
        base = var.value

        def loss_at(v: np.ndarray, var: gc.Variable = var) -> float:
            var.assign(v)
            return float(f(xv)[0])

        expected = numeric(base, loss_at)
        var.assign(base)
        np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-8, err_msg=var.name)
    np.testing.assert_allclose(got[-1], numeric(xv, lambda v: float(f(v)[0])), rtol=1e-6, atol=1e-8,
                               err_msg="x")


# ---- torch ------------------------------------------------------------------------------------------

def test_weights_copied_from_torch() -> None:
    """torch.nn.LSTM (gates i f g o, two biases) and torch.nn.GRU (gates r z n, reset after the product)
    give the same outputs as LSTM and GRU(reset_after=True) with the weights rearranged into Keras's
    layout."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    batch, steps, features, units = 2, 5, 3, 4
    t_lstm = torch.nn.LSTM(features, units, batch_first=True).double()
    t_gru = torch.nn.GRU(features, units, batch_first=True).double()
    xv = np.random.default_rng(3).standard_normal((batch, steps, features))
    with torch.no_grad():
        lstm_seq, (lstm_h, lstm_c) = t_lstm(torch.from_numpy(xv))
        gru_seq, gru_h = t_gru(torch.from_numpy(xv))

    def p(module: Any, name: str) -> np.ndarray:
        return getattr(module, name).detach().numpy()

    x = gc.placeholder("float64", (None, None, features), name="x")
    lstm = LSTM(units, return_sequences=True, return_state=True, dtype="float64")
    gru = GRU(units, return_sequences=True, return_state=True, dtype="float64")
    outs = [*lstm(x), *gru(x)]
    lstm.set_weights([p(t_lstm, "weight_ih_l0").T, p(t_lstm, "weight_hh_l0").T,
                      p(t_lstm, "bias_ih_l0") + p(t_lstm, "bias_hh_l0")])

    def zrh(a: np.ndarray) -> np.ndarray:  # torch's r, z, n blocks (first axis) -> Keras's z, r, h
        r, z, n = np.split(a, 3, axis=0)
        return np.concatenate([z, r, n], axis=0)

    gru.set_weights([zrh(p(t_gru, "weight_ih_l0")).T, zrh(p(t_gru, "weight_hh_l0")).T,
                     np.stack([zrh(p(t_gru, "bias_ih_l0")), zrh(p(t_gru, "bias_hh_l0"))])])
    got = gc.function([x], outs)(xv)
    expected = [lstm_seq, lstm_h[0], lstm_c[0], gru_seq, gru_h[0]]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-10, atol=1e-12)


# ---- weights and arguments --------------------------------------------------------------------------

def test_weight_shapes_and_initial_values() -> None:
    x = gc.placeholder("float32", (None, None, 5), name="x")
    lstm, gru, gru_before, rnn = LSTM(3), GRU(3), GRU(3, reset_after=False), SimpleRNN(3)
    for layer in (lstm, gru, gru_before, rnn):
        layer(x)
    assert [w.shape for w in lstm.weights] == [(5, 12), (3, 12), (12,)]
    assert [w.shape for w in gru.weights] == [(5, 9), (3, 9), (2, 9)]
    assert [w.shape for w in gru_before.weights] == [(5, 9), (3, 9), (9,)]
    assert [w.shape for w in rnn.weights] == [(5, 3), (3, 3), (3,)]
    assert [name for name, _ in lstm.named_weights] == ["kernel", "recurrent_kernel", "bias"]
    assert lstm.count_params() == 4 * 3 * (5 + 3 + 1)
    # unit_forget_bias: ones for the forget gate (the second block), zeros elsewhere
    np.testing.assert_array_equal(lstm.bias.value, np.repeat([0.0, 1.0, 0.0, 0.0], 3).astype(np.float32))
    no_forget = LSTM(3, unit_forget_bias=False)
    no_forget(x)
    np.testing.assert_array_equal(no_forget.bias.value, np.zeros(12, np.float32))
    # orthogonal recurrent kernel: (units, 4 units) with orthonormal rows
    u = lstm.recurrent_kernel.value
    np.testing.assert_allclose(u @ u.T, np.eye(3), atol=1e-5)
    reg = LSTM(3, kernel_regularizer="l2", recurrent_regularizer="l1", bias_regularizer="l2")
    reg(x)
    assert len(reg.regularization_losses()) == 3


# ---- errors -----------------------------------------------------------------------------------------

def test_errors_name_the_users_line() -> None:
    x2 = gc.placeholder("float32", (None, 3), name="flat")
    with pytest.raises(gc.ShapeError, match=rf"rank 3.*flat.*{HERE}:\d+"):
        LSTM(4)(x2)

    layer = GRU(4)
    layer(gc.placeholder("float32", (None, None, 3), name="three"))
    with pytest.raises(gc.ShapeError, match=rf"gru.*built for inputs of shape.*five.*{HERE}:\d+"):
        layer(gc.placeholder("float32", (None, None, 5), name="five"))

    with pytest.raises(gc.ShapeError, match=rf"last axis.*{HERE}:\d+"):
        SimpleRNN(2)(gc.placeholder("float32", (None, None, None)))

    for bad in (0, -2, 2.5, True, None):
        with pytest.raises(gc.ArgumentError, match=rf"LSTM '\w+': units must be a positive integer.*{HERE}:\d+"):
            LSTM(bad)  # type: ignore[arg-type]

    with pytest.raises(gc.ArgumentError, match=rf"dropout=0.5 is not supported yet.*{HERE}:\d+"):
        LSTM(4, dropout=0.5)
    with pytest.raises(gc.ArgumentError, match=rf"recurrent_dropout=0.2 is not supported yet.*{HERE}:\d+"):
        GRU(4, recurrent_dropout=0.2)
    with pytest.raises(gc.ArgumentError, match=rf"dropout must be a number in \[0, 1\).*{HERE}:\d+"):
        SimpleRNN(4, dropout=1.5)
    with pytest.raises(gc.ArgumentError, match=rf"stateful=True is not supported yet.*{HERE}:\d+"):
        SimpleRNN(4, stateful=True)

    x = gc.placeholder("float32", (None, None, 3), name="x")
    with pytest.raises(gc.ArgumentError, match=rf"initial_state must be a list of 2 tensors.*{HERE}:\d+"):
        LSTM(4)(x, initial_state=[gc.placeholder("float32", (None, 4))])
    with pytest.raises(gc.ShapeError, match=rf"initial_state h must have shape .*4\].*{HERE}:\d+"):
        SimpleRNN(4)(x, initial_state=[gc.placeholder("float32", (None, 5), name="h_bad")])
