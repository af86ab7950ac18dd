"""Recurrent layers: SimpleRNN, LSTM and GRU, with Keras's names, arguments, weight layouts and equations.

Inputs are ``(batch, time, features)`` (Keras's layout; ``time_major=True`` for ``(time, batch, features)``);
the time axis may be unknown (None) until the graph runs, the features must be known.  Each layer owns
``kernel`` ``(features, k * units)``, ``recurrent_kernel`` ``(units, k * units)`` and ``bias``, with the gates
in Keras's order (LSTM ``i, f, c, o``; GRU ``z, r, h``), so that weights from Keras load with
``set_weights``.

The loop is one ``gc.scan`` over time: the input projection ``x @ kernel + bias`` of every step is computed
before the loop as one matrix product, and each step only multiplies the previous state by the recurrent
kernel.  Gradients (back-propagation through time) come from ``gc.grad`` through the scan.

Outputs as in Keras: the last ``h`` ``(batch, units)``, or every step's ``(batch, time, units)`` with
``return_sequences`` (with ``go_backwards``, in the order the steps ran: from the last input to the first);
``return_state`` adds the final states (``[output, h]``, LSTM ``[output, h, c]``).  The initial states are
zeros, or ``layer(x, initial_state=[...])``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.control.part import part
from graphc.control.scan import scan
from graphc.errors import ArgumentError, ShapeError
from graphc.ir.location import user_location
from graphc.ir.shapes import format_shape
from graphc.ir.tensor import Tensor
from graphc.nn import activations, initializers
from graphc.nn.layers.base import Layer
from graphc.nn.layers.core import check_positive_int
from graphc.ops.elementwise import cast
from graphc.ops.like import fill_like
from graphc.ops.linalg import matmul
from graphc.ops.reduce import sum as sum_
from graphc.ops.shape import split, transpose


def _rate(layer: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not 0 <= value < 1:
        location = user_location()
        where = f" (at {location})" if location else ""
        raise ArgumentError(f"{layer}: {name} must be a number in [0, 1), got {value!r}{where}")
    return float(value)


def _final_states(stacked: list[Tensor]) -> list[Tensor]:
    """The states after the last step: the scan's loop node gives them as its first outputs (before the
    stacked ones), which also holds for zero steps (the initial states) and lets the optimiser drop the
    stacking when only the last state is read."""
    loop = stacked[0].inputs[0] if stacked[0].op == "part" else None
    if loop is not None and loop.op == "loop" and loop.attrs.get("n_state") == len(stacked):
        return [part(loop, k) for k in range(len(stacked))]
    return [s[-1] for s in stacked]


class _UnitForgetBias(initializers.Initializer):
    """An LSTM bias: ``bias_initializer`` for the i, c and o gates, ones for the forget gate (Keras's
    ``unit_forget_bias``)."""

    def __init__(self, base: Any, units: int) -> None:
        super().__init__()
        self.base, self.units = initializers.get(base), units

    def __call__(self, shape: tuple[int, ...], dtype: Any = np.float32, fans: Any = None) -> np.ndarray:
        u = self.units
        return np.concatenate([self.base((u,), dtype), np.ones((u,), dtype), self.base((2 * u,), dtype)]).astype(dtype)


class _Recurrent(Layer):
    """What the three layers share: arguments, weights, the scan over time and the outputs."""

    min_ndim = 3
    max_ndim = 3
    fixed_axes = (-1,)

    gates = 1          # blocks of ``units`` columns in the kernels
    state_names: tuple[str, ...] = ("h",)

    def __init__(self, units: int, activation: Any = "tanh", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", recurrent_initializer: Any = "orthogonal",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 return_sequences: bool = False, return_state: bool = False, go_backwards: bool = False,
                 stateful: bool = False, unroll: bool = False, time_major: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.units = check_positive_int(self, "units", units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer, self.recurrent_initializer = kernel_initializer, recurrent_initializer
        self.bias_initializer = bias_initializer
        for init in (kernel_initializer, recurrent_initializer, bias_initializer):
            initializers.get(init)  # an unknown name is reported now, not at the first call
        self.kernel_regularizer, self.recurrent_regularizer = kernel_regularizer, recurrent_regularizer
        self.bias_regularizer = bias_regularizer
        self.dropout = _rate(cls, "dropout", dropout)
        self.recurrent_dropout = _rate(cls, "recurrent_dropout", recurrent_dropout)
        for name, rate in (("dropout", self.dropout), ("recurrent_dropout", self.recurrent_dropout)):
            if rate:
                raise self.error(ArgumentError, f"{name}={rate} is not supported yet (use 0, or a Dropout layer "
                                 f"on the inputs)", user_location())
        if stateful:
            raise self.error(ArgumentError, "stateful=True is not supported yet (pass the last state as "
                             "initial_state of the next call instead)", user_location())
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.time_major = bool(go_backwards), bool(time_major)
        self.unroll = bool(unroll)  # accepted for Keras compatibility: the loop is compiled either way

    # ---- weights ----------------------------------------------------------------------------------

    def bias_shape(self) -> tuple[int, ...]:
        return (self.gates * self.units,)

    def bias_init(self) -> Any:
        return self.bias_initializer

    def build(self, input_shape: Any) -> None:
        features = input_shape[-1]
        if features is None:
            raise self.error(ShapeError, f"needs the size of the input's last axis (the features), got shape "
                             f"{format_shape(input_shape)}")
        n = self.gates * self.units
        self.kernel = self.add_weight("kernel", (features, n), self.kernel_initializer, self.kernel_regularizer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, n), self.recurrent_initializer,
                                                self.recurrent_regularizer)
        self.bias = (self.add_weight("bias", self.bias_shape(), self.bias_init(), self.bias_regularizer)
                     if self.use_bias else None)

    # ---- the recurrence (per layer) ---------------------------------------------------------------

    def input_bias(self) -> Tensor | None:
        """The bias added to the input projection before the loop."""
        return self.bias

    def sequences(self, xw: Tensor) -> list[Tensor]:
        """What the scan runs over (rows first to the step)."""
        return [xw]

    def step(self, xw_t: Tensor, *states: Tensor) -> list[Tensor]:
        """One step: the projected input row ``(batch, k * units)`` and the previous states -> new states
        (the first is the output ``h``)."""
        raise NotImplementedError

    # ---- calling ----------------------------------------------------------------------------------

    def _initial_state(self, x: Tensor, initial_state: Any) -> list[Tensor]:
        """Zeros ``(batch, units)`` (the batch size read from ``x`` when the graph runs), or the given states."""
        count = len(self.state_names)
        if initial_state is None:
            # (batch, 1) zeros: a sum over zero rows of the time-major input, so that nothing is read
            # (no time step needs to exist, and NaNs in the input do not leak into the state)
            zero = fill_like(sum_(x[:0, :, :1], axis=0), 0)
            return [zero + np.zeros((self.units,), self.dtype) for _ in range(count)]
        location = user_location()
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(states) != count:
            raise self.error(ArgumentError, f"initial_state must be a list of {count} tensor"
                             f"{'s' if count > 1 else ''} ({', '.join(self.state_names)}), got {len(states)}",
                             location)
        result = []
        for name, s in zip(self.state_names, states):
            if not isinstance(s, Tensor):
                raise self.error(ArgumentError, f"initial_state {name} must be a tensor, got {type(s).__name__}",
                                 location)
            batch = x.shape[1]
            if (s.ndim != 2 or s.shape[1] != self.units or
                    (s.shape[0] is not None and batch is not None and s.shape[0] != batch)):
                raise self.error(ShapeError, f"initial_state {name} must have shape "
                                 f"{format_shape((batch, self.units))}, got {s.describe()}", location)
            if s.dtype != self.dtype:
                s = cast(s, self.dtype)
            result.append(s)
        return result

    def call(self, inputs: Tensor, training: bool = False, initial_state: Any = None) -> Any:
        x = inputs if self.time_major else transpose(inputs, (1, 0, 2))   # (time, batch, features)
        if x.dtype != self.dtype:
            x = cast(x, self.dtype)
        states = self._initial_state(x, initial_state)
        xw = matmul(x, self.kernel)                                       # every step's projection at once
        bias = self.input_bias()
        if bias is not None:
            xw = xw + bias
        results = scan(self.step, sequences=self.sequences(xw), outputs_info=states, go_backwards=self.go_backwards)
        if not isinstance(results, list):
            results = [results]
        if self.return_sequences:
            output = results[0] if self.time_major else transpose(results[0], (1, 0, 2))
        else:
            # a tensor of its own, not the returned h: a layer may not return one tensor twice (the call
            # record's weak dictionary compares tensors with ==; the optimiser merges the two)
            output = _final_states(results)[0]
        if not self.return_state:
            return output
        return [output, *_final_states(results)]


class SimpleRNN(_Recurrent):
    """A fully connected RNN: ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``.

    ``SimpleRNN(units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
    recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
    recurrent_regularizer=None, bias_regularizer=None, dropout=0.0, recurrent_dropout=0.0,
    return_sequences=False, return_state=False, go_backwards=False, stateful=False, unroll=False,
    time_major=False)``; call as ``layer(x, initial_state=None)`` (``[h0]``).  With ``return_state`` it
    returns ``[output, h]``.
    """

    def step(self, xw_t: Tensor, *states: Tensor) -> list[Tensor]:
        (h,) = states
        return [self.activation(xw_t + matmul(h, self.recurrent_kernel))]


class LSTM(_Recurrent):
    """Long short-term memory (Hochreiter and Schmidhuber, 1997), Keras's equations and gate order
    ``i, f, c, o``::

        i, f, c~, o = split(x_t @ kernel + h @ recurrent_kernel + bias, 4)
        c_t = rec(f) * c + rec(i) * act(c~);   h_t = rec(o) * act(c_t)

    ``LSTM(units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
    kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
    unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
    dropout=0.0, recurrent_dropout=0.0, return_sequences=False, return_state=False, go_backwards=False,
    stateful=False, unroll=False, time_major=False)``; call as ``layer(x, initial_state=None)``
    (``[h0, c0]``).  With ``return_state`` it returns ``[output, h, c]``.
    """

    gates = 4
    state_names = ("h", "c")

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 unit_forget_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    def bias_init(self) -> Any:
        return _UnitForgetBias(self.bias_initializer, self.units) if self.unit_forget_bias else self.bias_initializer

    def step(self, xw_t: Tensor, *states: Tensor) -> list[Tensor]:
        h, c = states
        i, f, g, o = split(xw_t + matmul(h, self.recurrent_kernel), 4, axis=1)
        rec, act = self.recurrent_activation, self.activation
        c_new = rec(f) * c + rec(i) * act(g)
        return [rec(o) * act(c_new), c_new]


class GRU(_Recurrent):
    """Gated recurrent unit (Cho et al., 2014), Keras's equations and gate order ``z, r, h``.

    With ``reset_after=True`` (Keras 2's default, cuDNN's variant) the bias is ``(2, 3 * units)``: an
    input bias and a recurrent bias, and the reset gate multiplies the recurrent projection::

        xz, xr, xh = split(x_t @ kernel + bias[0], 3);   hz, hr, hh = split(h @ recurrent_kernel + bias[1], 3)
        z = rec(xz + hz);  r = rec(xr + hr);  h~ = act(xh + r * hh);  h_t = z * h + (1 - z) * h~

    With ``reset_after=False`` the bias is ``(3 * units,)`` and the reset gate multiplies the state before
    its product: ``h~ = act(xh + (r * h) @ recurrent_kernel[:, 2u:])``.

    ``GRU(units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
    kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
    kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, dropout=0.0,
    recurrent_dropout=0.0, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
    unroll=False, time_major=False, reset_after=True)``; call as ``layer(x, initial_state=None)``
    (``[h0]``).  With ``return_state`` it returns ``[output, h]``.
    """

    gates = 3

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 reset_after: bool = True, **kwargs: Any) -> None:
        super().__init__(units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)

    def bias_shape(self) -> tuple[int, ...]:
        n = self.gates * self.units
        return (2, n) if self.reset_after else (n,)

    def input_bias(self) -> Tensor | None:
        if self.bias is None:
            return None
        return self.bias[0] if self.reset_after else self.bias

    def sequences(self, xw: Tensor) -> list[Tensor]:
        # reset_after=False: the z, r and h blocks as separate sequences, and one product per gate in the
        # step.  Slicing one row (or one product) in the step is the same computation, but when the batch
        # size is unknown its gradient does not compile today (a step that takes two slices of one value
        # and multiplies something made from one of them by a matrix: the scan gradient's optimised body
        # leaves a row parameter unbound)
        return [xw] if self.reset_after else split(xw, 3, axis=2)

    def step(self, *args: Tensor) -> list[Tensor]:
        rec, act = self.recurrent_activation, self.activation
        if self.reset_after:
            xw_t, h = args
            xz, xr, xh = split(xw_t, 3, axis=1)
            inner = matmul(h, self.recurrent_kernel)
            if self.bias is not None:
                inner = inner + self.bias[1]
            hz, hr, hh = split(inner, 3, axis=1)
            z, r = rec(xz + hz), rec(xr + hr)
            candidate = act(xh + r * hh)
        else:
            xz, xr, xh, h = args
            u = self.units
            uz, ur, uh = (self.recurrent_kernel[:, k * u:(k + 1) * u] for k in range(3))
            z, r = rec(xz + matmul(h, uz)), rec(xr + matmul(h, ur))
            candidate = act(xh + matmul(r * h, uh))
        return [z * h + (1.0 - z) * candidate]


__all__ = ["GRU", "LSTM", "SimpleRNN"]
