"""Optimizers as graph builders: they turn a loss into update tensors for its Variables.

An optimizer builds graph nodes; it never runs anything.  ``opt.updates(loss, params)`` returns a
dict ``{Variable: new value tensor}`` for ``gc.function(..., updates=...)`` (Theano style), and
``opt.minimize(loss)`` returns one ``gc.group`` op for ``Session.run`` (TensorFlow 1.x style).
Both include the optimizer's *slot* Variables (momentum buffers, moment estimates, step counts),
which the optimizer creates, zero-initialised, the first time it sees a parameter and owns from
then on (``opt.slots``, ``opt.get_slot(var, "m")``).

Every update in a run reads the values the Variables had at the start of the run, so the formulas
below are written with simultaneous updates in mind: a new slot value is computed once, as a
tensor, and used both for the slot's own update and for the parameter's.

Hyperparameters (learning rate, momentum, decay rates, epsilon) may be Python numbers or scalar
tensors (a placeholder fed each step, a Variable changed with ``gc.assign``, any expression).
They are converted to each parameter's dtype, so a float32 parameter stays float32.

Names: the gradients are built as ``gc.grad`` builds them (``gradients/...`` under the caller's name
scope), the update arithmetic (and ``minimize``'s assignments) under a new scope named after the
optimizer (``Adam``, ``Adam_1``, ... under the caller's scope), and a slot is named
``<parameter>/<optimizer>/<slot>`` whatever the scope: it belongs to its parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from graphc.autodiff import grad
from graphc.errors import ArgumentError, DTypeError, ShapeError
from graphc.ir.build import constant, where_text
from graphc.ir.graph import topological_order
from graphc.ir.location import SourceLocation, user_location
from graphc.ir.scope import enter_scope, scoped
from graphc.ir.shapes import format_shape
from graphc.ir.tensor import Tensor, unique_name
from graphc.ops.elementwise import cast, sqrt
from graphc.ops.state import Variable, assign, group

Hyper = Callable[[str, np.dtype], Tensor]
"""``hyper(name, dtype)``: the hyperparameter ``name`` as a scalar tensor of ``dtype``."""

_INT64 = np.dtype(np.int64)
_FLOAT64 = np.dtype(np.float64)


def _describe(value: Any) -> str:
    return value.describe() if isinstance(value, Tensor) else f"{type(value).__name__} {value!r}"


class Optimizer:
    """Base class: parameter checking, slot bookkeeping, ``updates`` and ``minimize``.

    A subclass sets ``_hyperparameters`` (through :meth:`_set_hyperparameter`), lists its slots in
    :meth:`_slot_specs` and implements :meth:`_update_rule` for one parameter.
    """

    def __init__(self, name: str | None = None) -> None:
        if name is not None and not isinstance(name, str):
            raise ArgumentError(f"{type(self).__name__}: name must be a string, got {_describe(name)}"
                                f"{where_text(user_location())}")
        self.name = name or type(self).__name__
        self._hyperparameters: dict[str, float | Tensor] = {}
        self._bounds: dict[str, tuple[float, float, bool]] = {}
        self._slots: dict[Variable, dict[str, Variable]] = {}

    # ---- hyperparameters -------------------------------------------------------------------------

    def _set_hyperparameter(self, name: str, value: Any, low: float, high: float = math.inf,
                            include_high: bool = True, location: SourceLocation | None = None) -> None:
        """Store ``value`` (a Python number in ``[low, high]``, or a scalar real tensor)."""
        owner = type(self).__name__
        where = where_text(location)
        self._bounds[name] = (low, high, include_high)
        if isinstance(value, Tensor):
            if not value.opdef.produces_value:
                raise ArgumentError(f"{owner}: {name} must be a number or a scalar tensor, got "
                                    f"{value.describe()}, an op without a value{where}")
            if value.dtype.kind not in "iuf":
                raise DTypeError(f"{owner}: {name} must be a real number, got tensor {value.describe()} "
                                 f"of dtype {value.dtype.name}{where}")
            if value.shape != ():
                raise ShapeError(f"{owner}: {name} must be a scalar tensor (shape []), got {value.describe()} "
                                 f"of shape {format_shape(value.shape)}{where}")
            self._hyperparameters[name] = value
            return
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value[()]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ArgumentError(f"{owner}: {name} must be a number or a scalar tensor, got {_describe(value)}"
                                f"{where}")
        number = float(value)
        upper_ok = number <= high if include_high else number < high
        if not (math.isfinite(number) and low <= number and upper_ok):
            bracket = "]" if include_high else ")"
            upper = "inf" if high == math.inf else repr(high)
            raise ArgumentError(f"{owner}: {name} must be a finite number in [{low!r}, {upper}{bracket}, "
                                f"got {value!r}{where}")
        self._hyperparameters[name] = number

    def get_hyperparameter(self, name: str) -> float | Tensor:
        """The hyperparameter ``name`` as given (a float, or the tensor)."""
        if name not in self._hyperparameters:
            raise ArgumentError(f"{self.name} has no hyperparameter {name!r}; it has "
                                f"{', '.join(map(repr, self._hyperparameters))}")
        return self._hyperparameters[name]

    def set_hyperparameter(self, name: str, value: Any) -> None:
        """Replace the hyperparameter ``name`` (checked as the constructor checks it).  Updates built
        afterwards use the new value; to change a learning rate between steps of a compiled function
        without recompiling, set it to a scalar Variable once and assign the Variable."""
        self.get_hyperparameter(name)
        low, high, include_high = self._bounds[name]
        self._set_hyperparameter(name, value, low, high, include_high, user_location())

    def _is_nonzero(self, name: str) -> bool:
        """Whether hyperparameter ``name`` may be non-zero (a tensor may be anything)."""
        value = self._hyperparameters[name]
        return isinstance(value, Tensor) or value != 0

    def _hyper_fn(self) -> Hyper:
        """A ``hyper(name, dtype)`` that builds each (name, dtype) conversion once per call."""
        cache: dict[tuple[str, np.dtype], Tensor] = {}

        def hyper(name: str, dtype: np.dtype) -> Tensor:
            key = (name, np.dtype(dtype))
            if key not in cache:
                value = self._hyperparameters[name]
                cache[key] = cast(value, dtype) if isinstance(value, Tensor) else constant(value, dtype=dtype)
            return cache[key]

        return hyper

    # ---- slots -----------------------------------------------------------------------------------

    def _slot_specs(self) -> tuple[tuple[str, str], ...]:
        """``(name, kind)`` of each slot a parameter gets; kind ``"like"`` (zeros of the parameter's
        shape and dtype) or ``"step"`` (an int64 scalar counter starting at 0)."""
        return ()

    @property
    def slot_names(self) -> tuple[str, ...]:
        """The names of the slots each parameter gets with this configuration."""
        return tuple(name for name, _ in self._slot_specs())

    def _ensure_slots(self, param: Variable) -> dict[str, Variable]:
        slots = self._slots.get(param)
        if slots is None:
            slots = {}
            for slot, kind in self._slot_specs():
                initial = np.zeros((), _INT64) if kind == "step" else np.zeros(param.shape, param.dtype)
                with enter_scope(""):  # named after its parameter (whose name has the parameter's scope)
                    slots[slot] = Variable(initial, name=f"{param.name}/{self.name}/{slot}", trainable=False)
            self._slots[param] = slots
        return slots

    @property
    def slots(self) -> dict[Variable, dict[str, Variable]]:
        """``{parameter: {slot name: slot Variable}}`` for every parameter seen so far (a new dict)."""
        return {param: dict(slots) for param, slots in self._slots.items()}

    def get_slot(self, var: Variable, name: str) -> Variable:
        """The slot Variable ``name`` (one of :attr:`slot_names`) that this optimizer keeps for ``var``."""
        location = user_location()
        if name not in self.slot_names:
            names = ", ".join(map(repr, self.slot_names)) or "none with this configuration"
            raise ArgumentError(f"{self.name} has no slot {name!r}; its slots are {names}{where_text(location)}")
        slots = self._slots.get(var) if isinstance(var, Variable) else None
        if slots is None:
            raise ArgumentError(f"{self.name} has no slots for {_describe(var)}: it creates them when updates() or "
                                f"minimize() is called with that Variable{where_text(location)}")
        return slots[name]

    def variables(self) -> list[Variable]:
        """Every slot Variable this optimizer owns, parameter by parameter."""
        return [slot for slots in self._slots.values() for slot in slots.values()]

    # ---- building updates ------------------------------------------------------------------------

    def _check_loss(self, loss: Any, method: str, location: SourceLocation | None) -> Tensor:
        where = where_text(location)
        if not isinstance(loss, Tensor) or not loss.opdef.produces_value:
            raise ArgumentError(f"{self.name}.{method}: loss must be a scalar floating-point tensor, got "
                                f"{_describe(loss)}{where}")
        if loss.dtype.kind != "f":
            raise DTypeError(f"{self.name}.{method}: loss must be floating point, got {loss.describe()} "
                             f"of dtype {loss.dtype.name}{where}")
        if loss.shape != ():
            raise ShapeError(f"{self.name}.{method}: loss must be a scalar (shape []), got {loss.describe()} of "
                             f"shape {format_shape(loss.shape)}; reduce it first, e.g. with gc.mean{where}")
        return loss

    def _check_params(self, params: Any, method: str, location: SourceLocation | None) -> list[Variable]:
        where = where_text(location)
        if isinstance(params, Variable):
            params = [params]
        elif isinstance(params, (Tensor, str, bytes)) or not isinstance(params, Iterable):
            raise ArgumentError(f"{self.name}.{method}: params must be a list of Variables, got {_describe(params)}"
                                f"{where}")
        params = list(params)
        if not params:
            raise ArgumentError(f"{self.name}.{method}: params is empty; expected at least one Variable{where}")
        seen: set[int] = set()
        for i, p in enumerate(params):
            if not isinstance(p, Variable):
                raise ArgumentError(f"{self.name}.{method}: params[{i}] must be a gc.Variable, got {_describe(p)}"
                                    f"{where}")
            if not p.trainable:
                owner = " (it is a slot of this optimizer)" if any(
                    p is s for s in self.variables()) else ""
                raise ArgumentError(f"{self.name}.{method}: params[{i}] {p.describe()} is not trainable "
                                    f"(trainable=False){owner}; expected trainable Variables{where}")
            if p.dtype.kind != "f":
                raise DTypeError(f"{self.name}.{method}: params[{i}] {p.describe()} has dtype {p.dtype.name}; only "
                                 f"floating-point Variables can be trained{where}")
            if p.id in seen:
                raise ArgumentError(f"{self.name}.{method}: params[{i}] {p.describe()} is listed twice{where}")
            seen.add(p.id)
        return params

    def updates(self, loss: Tensor, params: Any) -> dict[Variable, Tensor]:
        """``{Variable: new value}`` for every parameter in ``params`` and each of their slots.

        Use it as the ``updates`` of ``gc.function``.  ``loss`` must be a floating-point scalar;
        ``params`` a list of trainable floating-point Variables (a single Variable is accepted).
        The loss must depend on at least one of them; one it does not depend on gets a zero
        gradient (as with ``gc.grad``).  Slots are created the first time a parameter is seen and
        reused afterwards, so calling ``updates`` again continues the same optimizer state.
        """
        location = user_location()
        loss = self._check_loss(loss, "updates", location)
        params = self._check_params(params, "updates", location)
        self._check_connected(loss, params, "updates", location)
        return self._build(loss, params)[0]

    def _check_connected(self, loss: Tensor, params: list[Variable], method: str,
                         location: SourceLocation | None) -> None:
        variables = {n.id for n in topological_order([loss]) if n.op == "variable"}
        if not any(p.id in variables for p in params):
            names = ", ".join(p.describe() for p in params)
            raise ArgumentError(f"{self.name}.{method}: loss {loss.describe()} depends on none of the Variables "
                                f"({names}); there is nothing to train{where_text(location)}")

    def minimize(self, loss: Tensor, var_list: Any = None, name: str | None = None) -> Tensor:
        """One op (a ``gc.group``) that applies a training step to ``var_list`` when run.

        ``var_list`` defaults to every trainable Variable ``loss`` depends on (non-trainable
        Variables, such as this optimizer's slots, are left alone).  Fetch the op together with
        the loss, ``sess.run([loss, train_op], feed_dict)``: the loss is computed with the values
        from before the step.
        """
        location = user_location()
        loss = self._check_loss(loss, "minimize", location)
        if var_list is None:
            var_list = [n for n in topological_order([loss]) if isinstance(n, Variable) and n.trainable]
            if not var_list:
                raise ArgumentError(f"{self.name}.minimize: loss {loss.describe()} depends on no trainable Variable; "
                                    f"there is nothing to train{where_text(location)}")
            var_list = self._check_params(var_list, "minimize", location)
        else:
            var_list = self._check_params(var_list, "minimize", location)
            self._check_connected(loss, var_list, "minimize", location)
        updates, scope = self._build(loss, var_list)
        with enter_scope(scope):
            assigns = [assign(var, value) for var, value in updates.items()]
        return group(*assigns, name=name or "minimize")

    def _build(self, loss: Tensor, params: list[Variable]) -> tuple[dict[Variable, Tensor], str]:
        """The updates, and the name scope (new, named after the optimizer) they were built in."""
        grads = grad(loss, params)
        slots = [self._ensure_slots(param) for param in params]
        scope = unique_name(scoped(self.name))
        hyper = self._hyper_fn()
        result: dict[Variable, Tensor] = {}
        with enter_scope(scope):
            for param, g, param_slots in zip(params, grads, slots):
                if g.dtype != param.dtype:
                    g = cast(g, param.dtype)
                new = self._update_rule(param, g, param_slots, hyper)
                for var, value in new.items():
                    result[var] = value if value.dtype == var.dtype else cast(value, var.dtype)
        return result, scope

    def _update_rule(self, param: Variable, g: Tensor, slots: dict[str, Variable],
                     hyper: Hyper) -> dict[Variable, Tensor]:
        """``{Variable: new value}`` for ``param`` (gradient ``g``) and its ``slots``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        parts = []
        for key, value in self._hyperparameters.items():
            parts.append(f"{key}={value.name if isinstance(value, Tensor) else value!r}")
        parts.extend(self._flags())
        return f"{type(self).__name__}({', '.join(parts)})"

    def _flags(self) -> list[str]:
        return []


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum, as ``tf.keras.optimizers.SGD``.

    With gradient ``g`` of the loss with respect to parameter ``p`` and learning rate ``lr``:

    * ``momentum == 0``: ``p <- p - lr * g`` (no slots);
    * ``momentum > 0``: slot ``"momentum"`` (``v``, zeros like ``p``)::

          v <- momentum * v - lr * g
          p <- p + v                               (nesterov=False)
          p <- p + momentum * v_new - lr * g       (nesterov=True)

    ``lr`` and ``momentum`` may be Python numbers (``lr >= 0``, ``0 <= momentum <= 1``) or scalar
    tensors; a tensor ``momentum`` always gets the slot.
    """

    def __init__(self, lr: Any, momentum: Any = 0.0, nesterov: bool = False, name: str | None = None) -> None:
        location = user_location()
        super().__init__(name)
        self._set_hyperparameter("lr", lr, 0.0, location=location)
        self._set_hyperparameter("momentum", momentum, 0.0, 1.0, location=location)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise ArgumentError(f"SGD: nesterov must be True or False, got {_describe(nesterov)}{where_text(location)}")
        if nesterov and not self._is_nonzero("momentum"):
            raise ArgumentError(f"SGD: nesterov=True needs momentum > 0, got momentum={momentum!r}"
                                f"{where_text(location)}")
        self.nesterov = bool(nesterov)

    def _slot_specs(self) -> tuple[tuple[str, str], ...]:
        return (("momentum", "like"),) if self._is_nonzero("momentum") else ()

    def _update_rule(self, param: Variable, g: Tensor, slots: dict[str, Variable],
                     hyper: Hyper) -> dict[Variable, Tensor]:
        lr = hyper("lr", param.dtype)
        if "momentum" not in slots:
            return {param: param - lr * g}
        mu = hyper("momentum", param.dtype)
        v = slots["momentum"]
        v_new = mu * v - lr * g
        p_new = param + mu * v_new - lr * g if self.nesterov else param + v_new
        return {param: p_new, v: v_new}

    def _flags(self) -> list[str]:
        return ["nesterov=True"] if self.nesterov else []


class Adam(Optimizer):
    """Adam (Kingma & Ba), with the update of ``tf.compat.v1.train.AdamOptimizer`` and Keras' ``Adam``.

    Slots per parameter ``p``: ``"m"`` and ``"v"`` (zeros like ``p``) and ``"step"`` (an int64
    scalar, the number of updates applied to ``p`` so far).  With gradient ``g``::

        t     <- step + 1
        m     <- beta1 * m + (1 - beta1) * g
        v     <- beta2 * v + (1 - beta2) * g * g
        lr_t   = lr * sqrt(1 - beta2 ** t) / (1 - beta1 ** t)      (bias correction)
        p     <- p - lr_t * m_new / (sqrt(v_new) + eps)

    ``lr_t`` is computed in float64 and then converted to ``p``'s dtype.  Note that ``eps`` is
    added after the bias correction of ``v`` is folded into ``lr_t`` (TensorFlow's "epsilon hat"),
    not to ``sqrt(v_hat)`` as in the paper's Algorithm 1.  Python-number hyperparameters must
    satisfy ``lr >= 0``, ``0 <= beta1, beta2 < 1``, ``eps >= 0``.
    """

    def __init__(self, lr: Any = 1e-3, beta1: Any = 0.9, beta2: Any = 0.999, eps: Any = 1e-8,
                 name: str | None = None) -> None:
        location = user_location()
        super().__init__(name)
        self._set_hyperparameter("lr", lr, 0.0, location=location)
        self._set_hyperparameter("beta1", beta1, 0.0, 1.0, include_high=False, location=location)
        self._set_hyperparameter("beta2", beta2, 0.0, 1.0, include_high=False, location=location)
        self._set_hyperparameter("eps", eps, 0.0, location=location)

    def _slot_specs(self) -> tuple[tuple[str, str], ...]:
        return (("m", "like"), ("v", "like"), ("step", "step"))

    def _update_rule(self, param: Variable, g: Tensor, slots: dict[str, Variable],
                     hyper: Hyper) -> dict[Variable, Tensor]:
        m, v, step = slots["m"], slots["v"], slots["step"]
        step_new = step + 1
        t = cast(step_new, _FLOAT64)
        b1_64, b2_64 = hyper("beta1", _FLOAT64), hyper("beta2", _FLOAT64)
        lr_t = cast(hyper("lr", _FLOAT64) * sqrt(1 - b2_64 ** t) / (1 - b1_64 ** t), param.dtype)
        b1, b2, eps = hyper("beta1", param.dtype), hyper("beta2", param.dtype), hyper("eps", param.dtype)
        m_new = b1 * m + (1 - b1) * g
        v_new = b2 * v + (1 - b2) * (g * g)
        p_new = param - lr_t * m_new / (sqrt(v_new) + eps)
        return {param: p_new, m: m_new, v: v_new, step: step_new}


class RMSProp(Optimizer):
    """RMSProp (Hinton), with the update of ``tf.compat.v1.train.RMSPropOptimizer`` and Keras 3's ``RMSprop``.

    Slots per parameter ``p``: ``"rms"`` (the running mean of ``g * g``); ``"momentum"`` when
    ``momentum`` is not 0; ``"mg"`` (the running mean of ``g``) when ``centered``.  All start at
    zero with ``p``'s shape and dtype.  With gradient ``g``::

        rms   <- decay * rms + (1 - decay) * g * g
        mg    <- decay * mg + (1 - decay) * g                      (centered only)
        denom  = rms_new - mg_new ** 2  if centered  else  rms_new
        step   = lr * g / sqrt(denom + eps)
        mom   <- momentum * mom + step;   p <- p - mom_new         (momentum != 0)
        p     <- p - step                                          (momentum == 0)

    Python-number hyperparameters must satisfy ``lr >= 0``, ``0 <= decay <= 1``,
    ``0 <= momentum <= 1``, ``eps >= 0``.
    """

    def __init__(self, lr: Any = 1e-3, decay: Any = 0.9, momentum: Any = 0.0, eps: Any = 1e-7,
                 centered: bool = False, name: str | None = None) -> None:
        location = user_location()
        super().__init__(name)
        self._set_hyperparameter("lr", lr, 0.0, location=location)
        self._set_hyperparameter("decay", decay, 0.0, 1.0, location=location)
        self._set_hyperparameter("momentum", momentum, 0.0, 1.0, location=location)
        self._set_hyperparameter("eps", eps, 0.0, location=location)
        if not isinstance(centered, (bool, np.bool_)):
            raise ArgumentError(f"RMSProp: centered must be True or False, got {_describe(centered)}"
                                f"{where_text(location)}")
        self.centered = bool(centered)

    def _slot_specs(self) -> tuple[tuple[str, str], ...]:
        specs = [("rms", "like")]
        if self._is_nonzero("momentum"):
            specs.append(("momentum", "like"))
        if self.centered:
            specs.append(("mg", "like"))
        return tuple(specs)

    def _update_rule(self, param: Variable, g: Tensor, slots: dict[str, Variable],
                     hyper: Hyper) -> dict[Variable, Tensor]:
        lr, rho, eps = hyper("lr", param.dtype), hyper("decay", param.dtype), hyper("eps", param.dtype)
        rms = slots["rms"]
        rms_new = rho * rms + (1 - rho) * (g * g)
        result = {rms: rms_new}
        denom = rms_new
        if self.centered:
            mg = slots["mg"]
            mg_new = rho * mg + (1 - rho) * g
            result[mg] = mg_new
            denom = rms_new - mg_new * mg_new
        step = lr * g / sqrt(denom + eps)
        if "momentum" in slots:
            mom = slots["momentum"]
            mom_new = hyper("momentum", param.dtype) * mom + step
            result[mom] = mom_new
            result[param] = param - mom_new
        else:
            result[param] = param - step
        return result

    def _flags(self) -> list[str]:
        return ["centered=True"] if self.centered else []


__all__ = ["SGD", "Adam", "Optimizer", "RMSProp"]
