"""Training a model, Keras-style: ``compile``, ``fit``, ``evaluate``, ``predict``, weight files and export.

``compile`` builds three compiled functions (each batch is one native call):

* the training step: inputs, labels and dropout noise in; the batch's mean loss and the sums of the
  metrics out; the optimizer's updates and the batch-norm statistics' updates applied in the call;
* the test step: the same loss and metrics on the inference graph, no updates;
* the predict step: the inference graph's outputs.

The learning rate is a scalar Variable the steps read, so schedules change it between steps without
recompiling.  Shuffling and dropout noise come from streams seeded by the model's seed and the epoch, so
that training resumed from a checkpoint after epoch ``k`` gives the same weights as training straight
through.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphc.checkpoint import read_checkpoint, restore_checkpoint, save_checkpoint
from graphc.errors import ArgumentError, CheckpointError, DTypeError, GraphcError, ShapeError
from graphc.graphfile.save import save_graph
from graphc.ir.location import user_location, where_text
from graphc.ir.shapes import format_shape
from graphc.ir.tensor import Tensor
from graphc.nn import callbacks as callbacks_mod
from graphc.nn import losses as losses_mod
from graphc.nn import metrics as metrics_mod
from graphc.nn import optimizers as nn_optimizers
from graphc.nn.context import NoiseInput
from graphc.nn.random import draw_seed
from graphc.ops.reduce import mean
from graphc.ops.reduce import sum as sum_
from graphc.ops.state import Variable, placeholder
from graphc.optimizers import Optimizer
from graphc.runtime.session import Function, function

_OPTIMIZERS = {"sgd": nn_optimizers.SGD, "adam": nn_optimizers.Adam, "rmsprop": nn_optimizers.RMSprop}
WEIGHTS_FORMAT = "graphc.nn weights 1"


def _optimizer(identifier: Any, where: str) -> Optimizer:
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _OPTIMIZERS:
        return _OPTIMIZERS[identifier.lower()]()
    raise ArgumentError(f"compile: optimizer must be a gc.optimizers optimizer or one of "
                        f"{', '.join(map(repr, _OPTIMIZERS))}, got {identifier!r}{where}")


def _per_output(value: Any, count: int, what: str, where: str) -> list[Any]:
    """One entry per model output: a list of that length, or one value used for every output."""
    if isinstance(value, (list, tuple)) and count > 1:
        if len(value) != count:
            raise ArgumentError(f"compile: {what} must be one value or a list of {count} (one per output), got "
                                f"{len(value)}{where}")
        return list(value)
    return [value] * count


@dataclass
class Compiled:
    """What ``compile`` set up: the optimizer, losses and metrics, and (built on first use) the steps."""

    optimizer: Optimizer
    losses: list[losses_mod.Loss]
    loss_weights: list[float]
    metrics: list[list[metrics_mod.Metric]]
    device: str
    threads: int | None
    learning_rate: Variable | None
    labels: list[Tensor] = field(default_factory=list)
    noise: list[NoiseInput] = field(default_factory=list)
    train_function: Function | None = None
    test_function: Function | None = None
    log_names: list[str] = field(default_factory=list)


class Trainer:
    """The training half of :class:`~graphc.nn.Model` (``compile`` / ``fit`` / ``evaluate`` / ``predict``,
    weight files, export)."""

    def __init__(self) -> None:
        self._compiled: Compiled | None = None
        self._predict_function: Function | None = None
        self._pending_optimizer_state: dict[str, np.ndarray] = {}
        self.seed = draw_seed()
        self.stop_training = False
        self.epoch = 0
        self.epochs_done = 0
        self.history: callbacks_mod.History | None = None

    # ---- compile ------------------------------------------------------------------------------------

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Any = None,
                loss_weights: Any = None, device: str = "cpu", threads: int | None = None) -> None:
        """Choose the optimizer (an instance or ``"sgd"`` / ``"adam"`` / ``"rmsprop"``), the loss (a Keras
        name, a :class:`~graphc.nn.losses.Loss` or ``f(y_true, y_pred)``; a list for several outputs) and
        the metrics (``["accuracy", ...]``); ``device`` and ``threads`` as for ``gc.function``.  The
        steps are compiled now when the model is built, else on the first ``fit`` / ``evaluate``."""
        where = where_text(user_location())
        if loss is None:
            raise ArgumentError(f"compile: {self.describe()} needs a loss, e.g. loss='mse'{where}")
        opt = _optimizer(optimizer, where)
        count = max(len(self.outputs), 1) if self.built and self.outputs else 1
        if isinstance(loss, (list, tuple)):
            count = len(loss)
        loss_list = [losses_mod.get(item) for item in _per_output(loss, count, "loss", where)]
        weights = [float(w) for w in _per_output(1.0 if loss_weights is None else loss_weights, count,
                                                  "loss_weights", where)]
        metric_items = list(metrics or [])
        metric_lists = [[metrics_mod.get(m, loss_list[k]) for m in metric_items] for k in range(count)]
        self._compiled = Compiled(opt, loss_list, weights, metric_lists, device, threads,
                                  self._learning_rate_variable(opt))
        self._predict_function = None
        if self.built and self.inputs:
            self._build_steps()

    def _learning_rate_variable(self, opt: Optimizer) -> Variable | None:
        """The scalar Variable the optimizer's learning rate reads (made one if it is a number)."""
        lr = opt.get_hyperparameter("lr")
        if isinstance(lr, Variable):
            return lr
        if isinstance(lr, Tensor):
            return None
        var = Variable(np.float32(lr), name=f"{opt.name}/learning_rate", trainable=False)
        opt.set_hyperparameter("lr", var)
        return var

    @property
    def learning_rate(self) -> float:
        """The optimizer's learning rate; setting it takes effect at the next step (no recompiling)."""
        compiled = self._require_compiled("learning_rate")
        if compiled.learning_rate is None:
            return float("nan")
        return float(compiled.learning_rate.read())

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        compiled = self._require_compiled("learning_rate")
        where = where_text(user_location())
        if compiled.learning_rate is None:
            raise ArgumentError(f"{self.describe()}: the optimizer's learning rate is the tensor "
                                f"{compiled.optimizer.get_hyperparameter('lr').describe()}; it cannot be set{where}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                or not math.isfinite(value) or value < 0:
            raise ArgumentError(f"{self.describe()}: learning_rate must be a non-negative number, got {value!r}"
                                f"{where}")
        compiled.learning_rate.assign(np.float32(value))

    @property
    def optimizer(self) -> Optimizer | None:
        return self._compiled.optimizer if self._compiled is not None else None

    def _require_compiled(self, what: str) -> Compiled:
        if self._compiled is None:
            raise GraphcError(f"{self.describe()}: {what} needs a compiled model; call model.compile(optimizer, "
                              f"loss, metrics) first{where_text(user_location())}")
        return self._compiled

    # ---- building the steps -------------------------------------------------------------------------

    def _build_steps(self) -> Compiled:
        compiled = self._require_compiled("training")
        if compiled.train_function is not None:
            return compiled
        if len(compiled.losses) != len(self.outputs):
            if len(compiled.losses) == 1:
                count = len(self.outputs)
                compiled.losses *= count
                compiled.loss_weights *= count
                compiled.metrics *= count
            else:
                raise ArgumentError(f"compile: {len(compiled.losses)} losses for a model with "
                                    f"{len(self.outputs)} outputs{self.where}")
        compiled.labels = []
        for k, (loss, out) in enumerate(zip(compiled.losses, self.outputs)):
            dtype, shape = loss.target(out)
            compiled.labels.append(placeholder(dtype, shape, name=f"target_{k}" if len(self.outputs) > 1 else
                                               "target"))
        names = ["loss"]
        for k, metric_list in enumerate(compiled.metrics):
            prefix = f"output_{k}_" if len(self.outputs) > 1 else ""
            names += [prefix + m.name for m in metric_list]
        compiled.log_names = names

        train_outputs, context = self.graph(True)
        train_loss, train_metrics = self._loss_and_metrics(compiled, train_outputs)
        trainable = self.trainable_weights
        updates: dict[Variable, Tensor] = {}
        if trainable:
            updates.update(compiled.optimizer.updates(train_loss, trainable))
        updates.update(context.updates)
        compiled.noise = list(context.noise)
        inputs = [*self.inputs, *compiled.labels, *(n.placeholder for n in compiled.noise)]
        options = {"device": compiled.device, "threads": compiled.threads}
        compiled.train_function = function(inputs, [train_loss, *train_metrics], updates=updates,
                                           name=f"{self.name}_train", **options)
        test_loss, test_metrics = self._loss_and_metrics(compiled, list(self.outputs))
        compiled.test_function = function([*self.inputs, *compiled.labels], [test_loss, *test_metrics],
                                          name=f"{self.name}_test", **options)
        self._apply_pending_optimizer_state()
        return compiled

    def _loss_and_metrics(self, compiled: Compiled, outputs: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """The batch's mean loss (with the regularization penalties) and each metric's sum over the batch."""
        total: Tensor | None = None
        metric_sums: list[Tensor] = []
        for loss, weight, metric_list, y_true, y_pred in zip(compiled.losses, compiled.loss_weights,
                                                             compiled.metrics, compiled.labels, outputs):
            try:
                per_example = loss(y_true, y_pred)
            except GraphcError as exc:
                raise type(exc)(f"{loss.name} does not fit the model's output {y_pred.describe()} of shape "
                                f"{format_shape(y_pred.shape)}: {exc}") from None
            value = mean(per_example) * weight if weight != 1.0 else mean(per_example)
            total = value if total is None else total + value
            for metric in metric_list:
                values = metric(y_true, y_pred)
                metric_sums.append(sum_(values) if values.ndim <= 1 else sum_(mean(values, axis=-1)))
        assert total is not None
        for penalty in self.regularization_losses():
            total = total + penalty
        return total, metric_sums

    # ---- data ---------------------------------------------------------------------------------------

    def _input_arrays(self, x: Any, where: str) -> list[np.ndarray]:
        arrays = [np.asarray(a) for a in (x if isinstance(x, (list, tuple)) else [x])]
        if not self.built or not self.inputs:
            self.build_from_data(arrays)
        if len(arrays) != len(self.inputs):
            raise ArgumentError(f"{self.describe()}: expected {len(self.inputs)} input arrays, got {len(arrays)}"
                                f"{where}")
        result = []
        for a, ph in zip(arrays, self.inputs):
            shape = ph.shape
            if a.ndim != len(shape) or any(d is not None and d != g for d, g in zip(shape, a.shape)):
                raise ShapeError(f"{self.describe()}: expected input data of shape {format_shape(shape)} for "
                                 f"{ph.describe()}, got {format_shape(a.shape)}{where}")
            if a.dtype.kind not in "biuf" or (a.dtype.kind == "f" and ph.dtype.kind in "biu"):
                raise DTypeError(f"{self.describe()}: expected input data of dtype {ph.dtype} for {ph.describe()}, "
                                 f"got {a.dtype}{where}")
            result.append(np.ascontiguousarray(a, dtype=ph.dtype))
        lengths = {len(a) for a in result}
        if len(lengths) > 1:
            raise ShapeError(f"{self.describe()}: the input arrays hold different numbers of examples "
                             f"({sorted(lengths)}){where}")
        return result

    def _label_arrays(self, compiled: Compiled, y: Any, count: int, where: str) -> list[np.ndarray]:
        if y is None:
            raise ArgumentError(f"{self.describe()}: expected labels y, got None{where}")
        items = list(y) if isinstance(y, (list, tuple)) and len(self.outputs) > 1 else [y]
        if len(items) != len(self.outputs):
            raise ArgumentError(f"{self.describe()}: expected {len(self.outputs)} label arrays (one per output), got "
                                f"{len(items)}{where}")
        result = []
        for loss, out, item in zip(compiled.losses, self.outputs, items):
            arr = loss.check_labels(np.asarray(item), out, where)
            if len(arr) != count:
                raise ShapeError(f"{self.describe()}: {count} input examples but {len(arr)} labels{where}")
            result.append(arr)
        return result

    # ---- fit ----------------------------------------------------------------------------------------

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: int | str = "auto", callbacks: Sequence[callbacks_mod.Callback] | None = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            initial_epoch: int = 0, validation_batch_size: int | None = None,
            validation_freq: int = 1) -> callbacks_mod.History:
        """Train for ``epochs`` epochs (from ``initial_epoch``) on ``x`` / ``y`` in batches of
        ``batch_size`` (32; the last batch holds the rest), shuffled each epoch; returns the History.

        ``validation_split`` holds out the last fraction of the data (before shuffling), or
        ``validation_data=(x_val, y_val)``: evaluated at the end of every ``validation_freq``-th epoch as
        ``val_`` logs.  ``verbose``: 1 (``"auto"``) a progress bar per epoch, 2 a line per epoch, 0
        nothing.  ``model.stop_training = True`` in a callback ends training after the batch."""
        where = where_text(user_location())
        compiled = self._require_compiled("fit")
        batch_size = self._check_count("batch_size", 32 if batch_size is None else batch_size, where)
        epochs = self._check_count("epochs", epochs, where, allow_zero=True)
        verbose = 1 if verbose == "auto" else verbose
        if verbose not in (0, 1, 2):
            raise ArgumentError(f"fit: verbose must be 0, 1, 2 or 'auto', got {verbose!r}{where}")
        if not isinstance(validation_split, (int, float)) or not 0 <= validation_split < 1:
            raise ArgumentError(f"fit: validation_split must be a number in [0, 1), got {validation_split!r}{where}")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) or initial_epoch < 0:
            raise ArgumentError(f"fit: initial_epoch must be a non-negative integer, got {initial_epoch!r}{where}")
        xs = self._input_arrays(x, where)
        compiled = self._build_steps()
        n = len(xs[0])
        ys = self._label_arrays(compiled, y, n, where)
        val: tuple[list[np.ndarray], list[np.ndarray]] | None = None
        if validation_data is not None:
            if not isinstance(validation_data, (list, tuple)) or len(validation_data) != 2:
                raise ArgumentError(f"fit: validation_data must be a pair (x_val, y_val), got "
                                    f"{type(validation_data).__name__}{where}")
            vx = self._input_arrays(validation_data[0], where)
            val = (vx, self._label_arrays(compiled, validation_data[1], len(vx[0]), where))
        elif validation_split > 0:
            split = int(n * (1 - validation_split))
            if split == 0 or split == n:
                raise ArgumentError(f"fit: validation_split={validation_split} of {n} examples leaves "
                                    f"{'no training' if split == 0 else 'no validation'} data{where}")
            val = ([a[split:] for a in xs], [a[split:] for a in ys])
            xs, ys, n = [a[:split] for a in xs], [a[:split] for a in ys], split
        if n == 0:
            raise ArgumentError(f"fit: no training examples{where}")
        steps = math.ceil(n / batch_size)
        history = callbacks_mod.History()
        given = list(callbacks or [])
        for cb in given:
            if not isinstance(cb, callbacks_mod.Callback):
                raise ArgumentError(f"fit: callbacks must be nn.callbacks.Callback instances, got "
                                    f"{type(cb).__name__}{where}")
        progress = [callbacks_mod.ProgbarLogger(verbose)] if verbose else []
        cbs = callbacks_mod.CallbackList([history, *given, *progress], self,
                                         {"epochs": epochs, "steps": steps, "verbose": verbose, "samples": n})
        self.history = history
        self.stop_training = False
        cbs.on_train_begin({})
        logs: dict[str, float] = {}
        for epoch in range(initial_epoch, epochs):
            self.epoch = epoch
            cbs.on_epoch_begin(epoch, {})
            logs = self._train_epoch(compiled, xs, ys, n, batch_size, epoch, shuffle, cbs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_arrays(compiled, val[0], val[1], validation_batch_size or batch_size)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            self.epochs_done = epoch + 1
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cbs.on_train_end(logs)
        return history

    @staticmethod
    def _check_count(name: str, value: Any, where: str, allow_zero: bool = False) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (0 if allow_zero else 1):
            kind = "non-negative" if allow_zero else "positive"
            raise ArgumentError(f"{name} must be a {kind} integer, got {value!r}{where}")
        return int(value)

    def _train_epoch(self, compiled: Compiled, xs: list[np.ndarray], ys: list[np.ndarray], n: int,
                     batch_size: int, epoch: int, shuffle: bool, cbs: callbacks_mod.CallbackList) -> dict[str, float]:
        # A shuffled batch is gathered into buffers reused from batch to batch: copying the whole
        # permuted data first would write it all to memory and read it back (~10% of an MLP's epoch).
        order = np.random.default_rng([self.seed, epoch]).permutation(n) if shuffle else None
        arrays = [*xs, *ys]
        buffers = [np.empty((min(batch_size, n), *a.shape[1:]), a.dtype) for a in arrays] if shuffle else []
        noise_rng = np.random.default_rng([self.seed, epoch, 1])
        step = compiled.train_function
        assert step is not None
        names = compiled.log_names
        totals = np.zeros(len(names))
        seen = 0
        for batch, start in enumerate(range(0, n, batch_size)):
            cbs.on_train_batch_begin(batch, {})
            stop = min(start + batch_size, n)
            count = stop - start
            if order is None:
                args = [a[start:stop] for a in arrays]
            else:
                rows = order[start:stop]
                args = [np.take(a, rows, axis=0, out=buffer[:count], mode="clip") for a, buffer in zip(arrays, buffers)]
            args += [noise.sample(noise_rng, count) for noise in compiled.noise]
            results = step(*args)
            totals[0] += float(results[0]) * count
            for k in range(1, len(names)):
                totals[k] += float(results[k])
            seen += count
            cbs.on_train_batch_end(batch, dict(zip(names, (totals / seen).tolist())))
            if self.stop_training:
                break
        return dict(zip(names, (totals / max(seen, 1)).tolist()))

    # ---- evaluate / predict -------------------------------------------------------------------------

    def _evaluate_arrays(self, compiled: Compiled, xs: list[np.ndarray], ys: list[np.ndarray], batch_size: int,
                         cbs: callbacks_mod.CallbackList | None = None) -> dict[str, float]:
        step = compiled.test_function
        assert step is not None
        n = len(xs[0])
        totals = np.zeros(len(compiled.log_names))
        for batch, start in enumerate(range(0, n, batch_size)):
            if cbs is not None:
                cbs.on_test_batch_begin(batch, {})
            stop = min(start + batch_size, n)
            results = step(*[a[start:stop] for a in xs], *[a[start:stop] for a in ys])
            totals[0] += float(results[0]) * (stop - start)
            for k in range(1, len(totals)):
                totals[k] += float(results[k])
            if cbs is not None:
                cbs.on_test_batch_end(batch, dict(zip(compiled.log_names, (totals / stop).tolist())))
        return dict(zip(compiled.log_names, (totals / max(n, 1)).tolist()))

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: int | str = 0,
                 callbacks: Sequence[callbacks_mod.Callback] | None = None,
                 return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """The loss (and metrics) on ``x`` / ``y`` with the inference graph: the loss alone when there are no
        metrics, else ``[loss, *metrics]``, or a dict with ``return_dict=True``.  ``verbose``: print them."""
        where = where_text(user_location())
        compiled = self._require_compiled("evaluate")
        batch_size = self._check_count("batch_size", 32 if batch_size is None else batch_size, where)
        xs = self._input_arrays(x, where)
        compiled = self._build_steps()
        ys = self._label_arrays(compiled, y, len(xs[0]), where)
        cbs = callbacks_mod.CallbackList(list(callbacks or []), self, {"verbose": verbose, "samples": len(xs[0]),
                                                                       "steps": math.ceil(len(xs[0]) / batch_size)})
        cbs.on_test_begin({})
        logs = self._evaluate_arrays(compiled, xs, ys, batch_size, cbs)
        cbs.on_test_end(logs)
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: int | None = None, verbose: int | str = 0,
                callbacks: Sequence[callbacks_mod.Callback] | None = None) -> Any:
        """The inference outputs for ``x``, computed in batches of ``batch_size`` (32) and concatenated (a
        list of arrays for several outputs)."""
        where = where_text(user_location())
        batch_size = self._check_count("batch_size", 32 if batch_size is None else batch_size, where)
        xs = self._input_arrays(x, where)
        if self._predict_function is None:
            options = ({"device": self._compiled.device, "threads": self._compiled.threads}
                       if self._compiled is not None else {})
            self._predict_function = function(list(self.inputs), list(self.outputs), name=f"{self.name}_predict",
                                              **options)
        cbs = callbacks_mod.CallbackList(list(callbacks or []), self, {"verbose": verbose, "samples": len(xs[0]),
                                                                       "steps": math.ceil(len(xs[0]) / batch_size)})
        cbs.on_predict_begin({})
        n = len(xs[0])
        parts: list[list[np.ndarray]] = [[] for _ in self.outputs]
        for batch, start in enumerate(range(0, n, batch_size)):
            cbs.on_predict_batch_begin(batch, {})
            results = self._predict_function(*[a[start:start + batch_size] for a in xs])
            for part, value in zip(parts, results):
                part.append(value)
            cbs.on_predict_batch_end(batch, {})
        cbs.on_predict_end({})
        outs = [np.concatenate(p) if p else np.zeros((0, *o.shape[1:]), o.dtype) for p, o in zip(parts, self.outputs)]
        return outs[0] if self._single_output else outs

    @property
    def train_function(self) -> Function | None:
        """The compiled training step (None before the model is built and compiled)."""
        return self._compiled.train_function if self._compiled is not None else None

    @property
    def test_function(self) -> Function | None:
        """The compiled test step."""
        return self._compiled.test_function if self._compiled is not None else None

    # ---- weight files -------------------------------------------------------------------------------

    def _optimizer_variables(self) -> dict[str, Variable]:
        """``optimizer.<weight key>.<slot>`` and ``optimizer.learning_rate`` for the compiled optimizer."""
        if self._compiled is None:
            return {}
        slots = self._compiled.optimizer.slots
        result: dict[str, Variable] = {}
        for key, var in self.named_weights:
            for slot, slot_var in slots.get(var, {}).items():
                result[f"optimizer.{key}.{slot}"] = slot_var
        if self._compiled.learning_rate is not None:
            result["optimizer.learning_rate"] = self._compiled.learning_rate
        return result

    def save_weights(self, path: str, include_optimizer: bool = True) -> None:
        """Write the weights (and the optimizer's state, the training seed and the epochs trained) to a
        safetensors file; keys are ``layers.<i>.<weight>`` (see :attr:`named_weights`)."""
        self._require_built("save_weights")
        variables: dict[str, Variable] = dict(self.named_weights)
        if include_optimizer:
            variables.update(self._optimizer_variables())
        metadata = {"format": WEIGHTS_FORMAT, "model": self.name, "seed": str(self.seed),
                    "epochs_done": str(self.epochs_done),
                    "layers": ",".join(f"{layer.name}:{type(layer).__name__}" for layer in self.layers)}
        save_checkpoint(path, variables, metadata=metadata)

    def load_weights(self, path: str) -> None:
        """Read a file written by :meth:`save_weights` into the model (and into the optimizer's state, now
        if the training step exists, else when it is built)."""
        self._require_built("load_weights")
        arrays, user = read_checkpoint(path)
        optimizer_entries = {k: v for k, v in arrays.items() if k.startswith("optimizer.")}
        if self._compiled is not None and self._compiled.train_function is not None:
            self._check_optimizer_state(optimizer_entries, path)
        restore_checkpoint(path, dict(self.named_weights))
        self._pending_optimizer_state = optimizer_entries
        if self._compiled is not None and self._compiled.train_function is not None:
            self._apply_pending_optimizer_state()
        if "seed" in user:
            self.seed = int(user["seed"])
        if "epochs_done" in user:
            self.epochs_done = int(user["epochs_done"])

    def _check_optimizer_state(self, entries: dict[str, np.ndarray], path: str) -> dict[str, Variable]:
        """The optimizer's Variable for each saved entry, or a CheckpointError before anything is assigned."""
        variables = self._optimizer_variables()
        for key, value in entries.items():
            var = variables.get(key)
            if var is None:
                raise CheckpointError(f"{self.describe()}: {path} holds optimizer state {key!r} that this model's "
                                      f"optimizer ({self._compiled.optimizer!r}) has no Variable for (saved with "
                                      f"another optimizer?){where_text(user_location())}")
            if value.shape != var.shape or value.dtype != var.dtype:
                raise CheckpointError(f"{self.describe()}: {path} holds {key!r} as {value.dtype}{list(value.shape)}, "
                                      f"but {var.describe()} is {var.dtype}{list(var.shape)}"
                                      f"{where_text(user_location())}")
        return variables

    def _apply_pending_optimizer_state(self) -> None:
        if not self._pending_optimizer_state:
            return
        variables = self._check_optimizer_state(self._pending_optimizer_state, "the weight file")
        for key, value in self._pending_optimizer_state.items():
            variables[key].assign(value)
        self._pending_optimizer_state = {}

    def export(self, path: str) -> None:
        """Write the inference graph (with the current weights) as a graph file that ``graphc aot`` compiles
        and ``gc.load_graph`` reads."""
        self._require_built("export")
        save_graph(path, list(self.outputs), inputs=list(self.inputs))
