"""Callbacks: code that ``fit`` runs at the start and end of training, of each epoch and of each batch.

``logs`` are dicts of floats: per batch the running means of the epoch so far (``loss`` and each
metric), per epoch the epoch's means plus ``val_`` ones when there is validation data.

Besides the base class, :class:`History` and :class:`CallbackList`, Keras's callbacks:
:class:`ProgbarLogger` (which ``fit`` adds itself when ``verbose > 0``), :class:`EarlyStopping`,
:class:`ModelCheckpoint`, :class:`LearningRateScheduler`, :class:`ReduceLROnPlateau`, :class:`CSVLogger`,
:class:`LambdaCallback` and :class:`TensorBoard`.  What they use of the model: ``stop_training``,
``learning_rate`` (a float property that can be set), ``weights`` (Variables), ``save_weights(path)``,
``train_function.graph``.  ``ProgbarLogger`` needs tqdm, ``TensorBoard`` tensorboardX, imported when
used.
"""

from __future__ import annotations

import csv
import inspect
import math
import numbers
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from graphc.errors import ArgumentError

Logs = dict[str, float]


class Callback:
    """Base class; override the hooks you need.  ``self.model`` is the model being trained and
    ``self.params`` holds ``epochs``, ``steps`` (batches per epoch), ``verbose`` and ``samples``."""

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Logs | None = None) -> None: ...
    def on_train_end(self, logs: Logs | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_test_begin(self, logs: Logs | None = None) -> None: ...
    def on_test_end(self, logs: Logs | None = None) -> None: ...
    def on_test_batch_begin(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_test_batch_end(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_predict_begin(self, logs: Logs | None = None) -> None: ...
    def on_predict_end(self, logs: Logs | None = None) -> None: ...
    def on_predict_batch_begin(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_predict_batch_end(self, batch: int, logs: Logs | None = None) -> None: ...


class History(Callback):
    """Records each epoch's logs: ``history.history["loss"]`` is the list of epoch losses."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class CallbackList:
    """Calls each hook on every callback in order."""

    def __init__(self, callbacks: Iterable[Callback], model: Any, params: dict[str, Any]) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)

    def __getattr__(self, hook: str) -> Any:
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def run(*args: Any) -> None:
            for cb in self.callbacks:
                getattr(cb, hook)(*args)

        return run


# ---- argument checks and shared helpers -------------------------------------------------------------


def _fail(owner: str, what: str, value: Any) -> ArgumentError:
    return ArgumentError(f"{owner}: {what}, got {value!r}")


def _check_int(owner: str, name: str, value: Any, minimum: int = 0, allow_bool: bool = False) -> int:
    if (isinstance(value, bool) and not allow_bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
        raise _fail(owner, f"{name} must be {what}", value)
    return int(value)


def _check_number(owner: str, name: str, value: Any, minimum: float | None = None,
                  allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) or (
            minimum is not None and float(value) < minimum):
        what = "a finite number" if minimum is None else f"a finite number >= {minimum:g}"
        raise _fail(owner, f"{name} must be {what}{' or None' if allow_none else ''}", value)
    return float(value)


def _check_bool(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise _fail(owner, f"{name} must be True or False", value)
    return bool(value)


def _check_str(owner: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(owner, f"{name} must be a non-empty string (a key of the logs, e.g. 'val_loss')", value)
    return value


def _check_path(owner: str, name: str, value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise _fail(owner, f"{name} must be a non-empty path (a str or os.PathLike)", value)
    path = os.fspath(value)
    if not isinstance(path, str):
        raise _fail(owner, f"{name} must be a text path, not bytes", value)
    return path


def _check_mode(owner: str, mode: Any) -> str:
    if mode not in ("auto", "min", "max"):
        raise _fail(owner, "mode must be 'auto', 'min' or 'max'", mode)
    return str(mode)


def _check_save_freq(owner: str, name: str, value: Any, word: str) -> str | int:
    if value == word and isinstance(value, str):
        return word
    if isinstance(value, (str, bool)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise _fail(owner, f"{name} must be {word!r} or a positive number of batches", value)
    return int(value)


_MAX_METRICS = ("acc", "auc", "precision", "recall", "fmeasure", "f1")


def _higher_is_better(monitor: str, mode: str) -> bool:
    """Whether the monitored value improves upward: ``mode`` 'max', or 'auto' with an accuracy-like name
    (Keras's rule: ``acc`` in the name; also AUC, precision, recall and F-scores)."""
    if mode != "auto":
        return mode == "max"
    name = monitor[4:] if monitor.startswith("val_") else monitor
    return any(part in name for part in _MAX_METRICS)


def _scalar(value: Any) -> float | None:
    """``value`` as a float when it is one number (a Python or NumPy scalar, a 0-d or 1-element array)."""
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "biuf":
        return float(value.reshape(()))
    return None


def _format_value(value: Any) -> str:
    """A metric as Keras prints it: 4 decimals, or 4 significant digits in e-notation when tiny."""
    number = _scalar(value)
    if number is None:
        return str(value)
    if number != 0 and abs(number) < 1e-3:
        return f"{number:.4e}"
    return f"{number:.4f}"


def _format_seconds(seconds: float) -> str:
    """A duration the way Keras prints an epoch's time and a step's: ``2s``, ``35ms``, ``120us``."""
    if seconds >= 1:
        return f"{seconds:.0f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms"
    return f"{seconds * 1e6:.0f}us"


def _tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("ProgbarLogger draws its progress bar with tqdm: pip install tqdm") from None
    return tqdm


def _print(message: str) -> None:
    """Print a callback's message on stdout above any live progress bar (tqdm clears and redraws it)."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - depends on the environment
        print(message, file=sys.stdout, flush=True)
    else:
        tqdm.write(message, file=sys.stdout)


def _get_lr(model: Any, owner: str) -> float:
    try:
        value = model.learning_rate
    except AttributeError:
        raise ArgumentError(f"{owner}: the model has no learning_rate to read "
                            f"(got a {type(model).__name__})") from None
    number = _scalar(value)
    if number is None:
        raise ArgumentError(f"{owner}: the model's learning_rate is not a number, got {value!r}")
    return number


class _Monitor:
    """The comparison that decides whether a monitored value improved on a reference."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        self.higher = _higher_is_better(monitor, mode)
        self.min_delta = min_delta

    def improved(self, current: float, reference: float | None) -> bool:
        if reference is None:
            return True
        if self.higher:
            return current - self.min_delta > reference
        return current + self.min_delta < reference

    @property
    def worst(self) -> float:
        return -math.inf if self.higher else math.inf


def _monitored(owner: str, monitor: str, logs: Logs | None, doing: str) -> float | None:
    """The monitored value of ``logs``; a warning (as Keras gives) and None where it is missing."""
    logs = logs or {}
    value = logs.get(monitor)
    if value is None:
        available = ", ".join(logs) or "none"
        warnings.warn(f"{owner}: {doing} is conditioned on `{monitor}`, which is not in the logs "
                      f"(available: {available}); it is skipped for this epoch", RuntimeWarning, stacklevel=3)
        return None
    number = _scalar(value)
    if number is None:
        warnings.warn(f"{owner}: `{monitor}` is not one number ({value!r}); it is skipped for this epoch",
                      RuntimeWarning, stacklevel=3)
    return number


# ---- ProgbarLogger ------------------------------------------------------------------------------------


def _metrics_text(logs: Logs | None, sep: str, join: str) -> str:
    return join.join(f"{key}{sep}{_format_value(value)}" for key, value in (logs or {}).items())


class ProgbarLogger(Callback):
    """``ProgbarLogger(verbose=1)``: prints training progress on stdout (``fit`` adds one when ``verbose > 0``).

    ``verbose=1``: per epoch an ``Epoch 1/5`` line, then a live tqdm progress bar over the epoch's
    steps with steps done/total, elapsed time, ETA, the time per step and the running metrics
    (``loss=0.1234, accuracy=0.9000``); at the end of the epoch it shows the epoch's metrics,
    validation ones included.  ``verbose=2``: one line per epoch,
    ``Epoch 1/5 - 2s - 3ms/step - loss: 0.1234 - accuracy: 0.9000 - val_loss: 0.2345``.
    ``evaluate`` and ``predict`` given one show a bar (1) or a final line (2) too.  The bar refreshes
    at most 10 times a second on a terminal and every 30 seconds when stdout is not one (a log file).
    """

    _BAR_FORMAT = "{n_fmt}/{total_fmt} |{bar:30}| [{elapsed}<{remaining}, {step_time}{postfix}]"

    def __init__(self, verbose: int = 1) -> None:
        super().__init__()
        if isinstance(verbose, bool) or verbose not in (1, 2):
            raise _fail("ProgbarLogger", "verbose must be 1 (a progress bar) or 2 (one line per epoch)", verbose)
        self.verbose = int(verbose)
        self._bar: Any = None
        self._in_fit = False
        self._start = 0.0
        self._last_step = 0.0
        self._steps = 0

    # -- the bar
    def _open_bar(self) -> None:
        self._close_bar()
        self._start = self._last_step = time.perf_counter()
        self._steps = 0
        if self.verbose != 1:
            return
        tqdm = _tqdm()

        class _Bar(tqdm):  # type: ignore[misc, valid-type]
            @property
            def format_dict(self) -> dict[str, Any]:
                d = super().format_dict
                n, elapsed = d.get("n") or 0, d.get("elapsed") or 0.0
                d["step_time"] = _format_seconds(elapsed / n) + "/step" if n else "?/step"
                return d

        out = sys.stdout
        interactive = bool(getattr(out, "isatty", lambda: False)())
        total = self.params.get("steps")
        self._bar = _Bar(total=total if isinstance(total, int) and total > 0 else None, file=out, unit="step",
                         bar_format=self._BAR_FORMAT, mininterval=0.1 if interactive else 30.0,
                         dynamic_ncols=interactive, leave=True)

    def _advance(self, batch: int, logs: Logs | None) -> None:
        self._steps = batch + 1
        self._last_step = time.perf_counter()
        if self._bar is not None:
            self._bar.set_postfix_str(_metrics_text(logs, "=", ", "), refresh=False)
            self._bar.update(self._steps - self._bar.n)

    def _finish(self, logs: Logs | None, title: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(_metrics_text(logs, "=", ", "), refresh=False)
            self._bar.close()
            self._bar = None
        elif self.verbose == 2:
            now = time.perf_counter()
            parts = [title, _format_seconds(now - self._start)]
            if self._steps:
                parts.append(_format_seconds((self._last_step - self._start) / self._steps) + "/step")
            metrics = _metrics_text(logs, ": ", " - ")
            if metrics:
                parts.append(metrics)
            _print(" - ".join(parts))

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- fit
    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._in_fit = True

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._epoch_title = f"Epoch {epoch + 1}/{self.params.get('epochs', '?')}"
        if self.verbose == 1:
            _print(self._epoch_title)
        self._open_bar()

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self._advance(batch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self._finish(logs, getattr(self, "_epoch_title", f"Epoch {epoch + 1}"))

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._close_bar()
        self._in_fit = False

    # -- evaluate and predict called on their own (validation inside fit shows no bar of its own)
    def on_test_begin(self, logs: Logs | None = None) -> None:
        if not self._in_fit:
            self._open_bar()

    def on_test_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if not self._in_fit:
            self._advance(batch, logs)

    def on_test_end(self, logs: Logs | None = None) -> None:
        if not self._in_fit:
            self._finish(logs, f"{self._steps}/{self.params.get('steps', self._steps)}")

    def on_predict_begin(self, logs: Logs | None = None) -> None:
        if not self._in_fit:
            self._open_bar()

    def on_predict_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if not self._in_fit:
            self._advance(batch, None)

    def on_predict_end(self, logs: Logs | None = None) -> None:
        if not self._in_fit:
            self._finish(None, f"{self._steps}/{self.params.get('steps', self._steps)}")


# ---- EarlyStopping ------------------------------------------------------------------------------------


class EarlyStopping(Callback):
    """``EarlyStopping(monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
    restore_best_weights=False, start_from_epoch=0)``: stop training when ``monitor`` stops improving.

    Keras's semantics: an epoch improves when its value beats the best so far by more than
    ``min_delta`` (down for ``mode="min"``, up for ``"max"``; ``"auto"`` is max for accuracy-like
    names, ``acc`` in the name, else min).  Training stops (``model.stop_training = True``) once
    ``patience`` epochs in a row have not improved, and with a ``baseline``, while the value has not
    beaten it.  Epochs before ``start_from_epoch`` are not counted.  ``restore_best_weights`` keeps a
    copy of ``model.weights`` from the best epoch and assigns it back at the end of training.  A missing
    ``monitor`` key warns and is skipped.  After training: ``stopped_epoch`` (0 when it did not stop),
    ``best``, ``best_epoch``.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        super().__init__()
        owner = "EarlyStopping"
        self.monitor = _check_str(owner, "monitor", monitor)
        self.min_delta = _check_number(owner, "min_delta", min_delta, minimum=0.0)
        self.patience = _check_int(owner, "patience", patience)
        self.verbose = _check_int(owner, "verbose", verbose, allow_bool=True)
        self.mode = _check_mode(owner, mode)
        self.baseline = _check_number(owner, "baseline", baseline, allow_none=True)
        self.restore_best_weights = _check_bool(owner, "restore_best_weights", restore_best_weights)
        self.start_from_epoch = _check_int(owner, "start_from_epoch", start_from_epoch)
        self._monitor = _Monitor(self.monitor, self.mode, float(self.min_delta or 0.0))
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best: float | None = None
        self.best_epoch = 0
        self.best_weights: list[np.ndarray] | None = None

    def _weights(self) -> list[Any]:
        try:
            return list(self.model.weights)
        except AttributeError:
            raise ArgumentError(f"EarlyStopping(restore_best_weights=True): the model has no weights to keep "
                                f"(got a {type(self.model).__name__})") from None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        current = _monitored("EarlyStopping", self.monitor, logs, "early stopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = [w.value for w in self._weights()]  # the weights so far are the best
            self.best_epoch = epoch
        self.wait += 1
        if self._monitor.improved(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = [w.value for w in self._weights()]
            if self.baseline is None or self._monitor.improved(current, self.baseline):
                self.wait = 0  # only beating both the best so far and the baseline restarts the count
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            for variable, value in zip(self._weights(), self.best_weights):
                variable.assign(value)


# ---- ModelCheckpoint ----------------------------------------------------------------------------------


class ModelCheckpoint(Callback):
    """``ModelCheckpoint(filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=True,
    mode="auto", save_freq="epoch", initial_value_threshold=None)``: save the model's weights during training.

    ``filepath`` may hold ``str.format`` fields: ``{epoch}`` (1-based, as Keras numbers epochs), the
    logs' keys (``"ckpt-{epoch:02d}-{val_loss:.2f}.safetensors"``) and, when saving every few batches,
    ``{batch}`` (1-based).  Missing folders are created.  Each save calls ``model.save_weights(path)``
    (safetensors).  graphc saves weights only: ``save_weights_only=False`` saves the same file.
    ``save_best_only``: save only when ``monitor`` improves on the best value so far (which starts at
    ``initial_value_threshold`` when given; ``mode`` as for :class:`EarlyStopping`), warning when it is
    missing from the logs.  ``save_freq``: ``"epoch"``, or an integer: every that many batches.
    """

    def __init__(self, filepath: str | os.PathLike[str], monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = True, mode: str = "auto",
                 save_freq: str | int = "epoch", initial_value_threshold: float | None = None) -> None:
        super().__init__()
        owner = "ModelCheckpoint"
        self.filepath = _check_path(owner, "filepath", filepath)
        self.monitor = _check_str(owner, "monitor", monitor)
        self.verbose = _check_int(owner, "verbose", verbose, allow_bool=True)
        self.save_best_only = _check_bool(owner, "save_best_only", save_best_only)
        self.save_weights_only = _check_bool(owner, "save_weights_only", save_weights_only)
        self.mode = _check_mode(owner, mode)
        self.save_freq = _check_save_freq(owner, "save_freq", save_freq, "epoch")
        self.initial_value_threshold = _check_number(owner, "initial_value_threshold", initial_value_threshold,
                                                     allow_none=True)
        self._monitor = _Monitor(self.monitor, self.mode, 0.0)
        self.best: float = (self.initial_value_threshold if self.initial_value_threshold is not None
                            else self._monitor.worst)
        self._epoch = 0
        self._batches_since_save = 0

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._batches_since_save = 0

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._epoch, batch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _path(self, epoch: int, batch: int | None, logs: Logs) -> str:
        fields: dict[str, Any] = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as exc:
            keys = ", ".join(sorted(fields))
            raise ArgumentError(f"ModelCheckpoint: cannot fill in filepath {self.filepath!r}: it names "
                                f"{{{exc.args[0]}}}, which is not among the fields it may use ({keys})") from None
        except (ValueError, IndexError, TypeError) as exc:
            raise ArgumentError(f"ModelCheckpoint: cannot fill in filepath {self.filepath!r} "
                                f"with epoch={epoch + 1} and the logs: {exc}") from None

    def _save(self, epoch: int, batch: int | None, logs: Logs | None) -> None:
        logs = logs or {}
        path = self._path(epoch, batch, logs)
        if self.save_best_only:
            current = _monitored("ModelCheckpoint", self.monitor, logs, "saving only the best model")
            if current is None:
                return
            if not self._monitor.improved(current, self.best):
                if self.verbose > 0:
                    _print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                _print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, "
                       f"saving model to {path}")
            self.best = current
        elif self.verbose > 0:
            _print(f"Epoch {epoch + 1}: saving model to {path}")
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self.model.save_weights(path)


# ---- learning rate ------------------------------------------------------------------------------------


def _takes_two(schedule: Any) -> bool:
    """Whether ``schedule`` can be called as ``schedule(epoch, lr)`` (else it is ``schedule(epoch)``)."""
    try:
        signature = inspect.signature(schedule)
    except (TypeError, ValueError):  # a builtin without a signature: give it both
        return True
    try:
        signature.bind(0, 0.0)
    except TypeError:
        return False
    return True


class LearningRateScheduler(Callback):
    """``LearningRateScheduler(schedule, verbose=0)``: set the learning rate at the start of each epoch.

    ``schedule(epoch, lr)`` (epoch 0-based, ``lr`` the current rate) or ``schedule(epoch)`` returns the
    epoch's rate, a non-negative number; it is assigned to ``model.learning_rate``.  Each epoch's logs
    get ``"learning_rate"``.
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise _fail("LearningRateScheduler", "schedule must be a function schedule(epoch, lr) -> lr "
                        "or schedule(epoch) -> lr", schedule)
        self.schedule = schedule
        self.verbose = _check_int("LearningRateScheduler", "verbose", verbose, allow_bool=True)
        self._two = _takes_two(schedule)

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        lr = self.schedule(epoch, _get_lr(self.model, "LearningRateScheduler")) if self._two else self.schedule(epoch)
        number = _scalar(lr)
        if number is None or isinstance(lr, (bool, np.bool_)) or not math.isfinite(number) or number < 0:
            raise ArgumentError(f"LearningRateScheduler: the schedule must return a non-negative finite number, "
                                f"got {lr!r} for epoch {epoch}")
        self.model.learning_rate = number
        if self.verbose > 0:
            _print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {number}.")

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = _get_lr(self.model, "LearningRateScheduler")


class ReduceLROnPlateau(Callback):
    """``ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
    cooldown=0, min_lr=0.0)``: multiply the learning rate by ``factor`` when ``monitor`` has stopped improving.

    Keras's semantics: after ``patience`` epochs without an improvement of more than ``min_delta``
    (``mode`` as for :class:`EarlyStopping`) the rate becomes ``max(lr * factor, min_lr)`` (if it is
    above ``min_lr``), then ``cooldown`` epochs pass before epochs are counted again.  Each epoch's logs
    get ``"learning_rate"`` (the rate the epoch trained with).
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0) -> None:
        super().__init__()
        owner = "ReduceLROnPlateau"
        self.monitor = _check_str(owner, "monitor", monitor)
        factor = _check_number(owner, "factor", factor)
        if not 0 < factor < 1:  # type: ignore[operator]
            raise _fail(owner, "factor must be between 0 and 1 (exclusive): the rate is multiplied by it", factor)
        self.factor = float(factor)  # type: ignore[arg-type]
        self.patience = _check_int(owner, "patience", patience)
        self.verbose = _check_int(owner, "verbose", verbose, allow_bool=True)
        self.mode = _check_mode(owner, mode)
        self.min_delta = float(_check_number(owner, "min_delta", min_delta, minimum=0.0))  # type: ignore[arg-type]
        self.cooldown = _check_int(owner, "cooldown", cooldown)
        self.min_lr = float(_check_number(owner, "min_lr", min_lr, minimum=0.0))  # type: ignore[arg-type]
        self._monitor = _Monitor(self.monitor, self.mode, self.min_delta)
        self._reset()

    def _reset(self) -> None:
        self.best = self._monitor.worst
        self.wait = 0
        self.cooldown_counter = 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        lr = _get_lr(self.model, "ReduceLROnPlateau")
        if logs is not None:
            logs["learning_rate"] = lr
        current = _monitored("ReduceLROnPlateau", self.monitor, logs, "reducing the learning rate")
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._monitor.improved(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and np.float32(lr) > np.float32(self.min_lr):  # at the rate's precision
                new_lr = max(lr * self.factor, self.min_lr)
                self.model.learning_rate = new_lr
                if self.verbose > 0:
                    _print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                self.cooldown_counter = self.cooldown
                self.wait = 0


# ---- CSVLogger ----------------------------------------------------------------------------------------


class CSVLogger(Callback):
    """``CSVLogger(filename, separator=",", append=False)``: one CSV row per epoch.

    The header is ``epoch`` then the first epoch's log keys, sorted (``epoch,accuracy,loss,val_loss``);
    epochs are 0-based, as Keras writes them.  A key that appears in a later epoch (validation every few
    epochs) adds a column: the file is rewritten with it, earlier rows getting ``NA``, as do rows whose
    epoch lacks a key.  ``append=True`` adds to an existing file, under its header.  Each row is
    flushed as it is written; the file is closed at the end of training.
    """

    def __init__(self, filename: str | os.PathLike[str], separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.filename = _check_path("CSVLogger", "filename", filename)
        if not isinstance(separator, str) or len(separator) != 1 or separator in "\r\n\"":
            raise _fail("CSVLogger", "separator must be one character (not a quote or a line break)", separator)
        self.sep = separator
        self.append = _check_bool("CSVLogger", "append", append)
        self.keys: list[str] | None = None
        self._file: Any = None
        self._writer: Any = None

    def _dialect(self) -> type[csv.Dialect]:
        class Dialect(csv.excel):
            delimiter = self.sep

        return Dialect

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.keys = None
        self._writer = None
        header: list[str] | None = None
        if self.append and os.path.exists(self.filename):
            with open(self.filename, newline="") as f:
                header = next(csv.reader(f, dialect=self._dialect()), None)
        if header:
            if header[0] != "epoch":
                raise ArgumentError(f"CSVLogger(append=True): {self.filename} does not start with an 'epoch' "
                                    f"column header, got {header!r}")
            self.keys = header[1:]
        self._file = open(self.filename, "a" if header else "w", newline="")  # noqa: SIM115 (closed at train end)
        if header:
            self._writer = csv.DictWriter(self._file, ["epoch", *self.keys], dialect=self._dialect())

    def _rewrite(self, keys: list[str]) -> None:
        """Add columns: rewrite the file with the new header, earlier rows getting NA in them."""
        self._file.close()
        with open(self.filename, newline="") as f:
            rows = list(csv.DictReader(f, dialect=self._dialect()))
        self._file = open(self.filename, "w", newline="")  # noqa: SIM115
        self._writer = csv.DictWriter(self._file, ["epoch", *keys], dialect=self._dialect(), restval="NA")
        self._writer.writeheader()
        self._writer.writerows(rows)
        self.keys = keys

    @staticmethod
    def _cell(value: Any) -> Any:
        number = _scalar(value)
        if number is not None:
            return number
        if isinstance(value, str):
            return value
        if isinstance(value, Iterable):
            return "[" + ", ".join(map(str, value)) + "]"
        return value

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        if self._file is None:  # used without on_train_begin
            self.on_train_begin()
        if self.keys is None:
            self.keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, ["epoch", *self.keys], dialect=self._dialect())
            self._writer.writeheader()
        else:
            new = sorted(k for k in logs if k not in self.keys)
            if new:
                self._rewrite(self.keys + new)
        row = {"epoch": epoch}
        row.update((key, self._cell(logs[key]) if key in logs else "NA") for key in self.keys)
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self._file is not None:
            self._file.close()
        self._file = self._writer = None


# ---- LambdaCallback -----------------------------------------------------------------------------------


class LambdaCallback(Callback):
    """``LambdaCallback(on_epoch_begin=None, on_epoch_end=None, on_batch_begin=None, on_batch_end=None,
    on_train_begin=None, on_train_end=None, **hooks)``: a callback made of functions.

    ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``, ``on_batch_begin(batch, logs)`` and
    ``on_batch_end(batch, logs)`` (training batches), ``on_train_begin(logs)``, ``on_train_end(logs)``;
    any other hook of :class:`Callback` may be given by its name (``on_test_end=...``,
    ``on_train_batch_end=...``).
    """

    def __init__(self, on_epoch_begin: Callable[[int, Logs | None], Any] | None = None,
                 on_epoch_end: Callable[[int, Logs | None], Any] | None = None,
                 on_batch_begin: Callable[[int, Logs | None], Any] | None = None,
                 on_batch_end: Callable[[int, Logs | None], Any] | None = None,
                 on_train_begin: Callable[[Logs | None], Any] | None = None,
                 on_train_end: Callable[[Logs | None], Any] | None = None,
                 **hooks: Callable[..., Any]) -> None:
        super().__init__()
        given: dict[str, Any] = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
                                 "on_train_batch_begin": on_batch_begin, "on_train_batch_end": on_batch_end,
                                 "on_train_begin": on_train_begin, "on_train_end": on_train_end}
        known = sorted(name for name in vars(Callback) if name.startswith("on_"))
        for name, fn in hooks.items():
            if name not in known:
                raise ArgumentError(f"LambdaCallback: unknown hook {name}=...; the hooks are on_batch_begin, "
                                    f"on_batch_end, {', '.join(known)}")
            if given.get(name) is not None and fn is not None:
                raise ArgumentError(f"LambdaCallback: {name} given twice (on_batch_begin/on_batch_end are "
                                    f"on_train_batch_begin/on_train_batch_end)")
            if fn is not None:
                given[name] = fn
        for name, fn in given.items():
            if fn is None:
                continue
            if not callable(fn):
                raise _fail("LambdaCallback", f"{name} must be a function or None", fn)
            setattr(self, name, fn)  # the instance attribute takes the place of the no-op hook


# ---- TensorBoard --------------------------------------------------------------------------------------


class TensorBoard(Callback):
    """``TensorBoard(log_dir="logs", write_graph=True, update_freq="epoch")``: logs for TensorBoard.

    As Keras lays them out: ``log_dir/train`` gets the epoch scalars ``epoch_loss``,
    ``epoch_<metric>`` (and ``epoch_learning_rate`` when a learning-rate callback put it in the logs),
    ``log_dir/validation`` gets the ``val_`` ones without the prefix (``epoch_loss``...), each at step =
    epoch (0-based).  ``update_freq="batch"`` or an integer ``n`` also writes ``batch_loss``... (the
    epoch's running means) to ``train`` every batch or every ``n`` batches, at step = batches trained so
    far.  ``write_graph``: at the start of training, the optimised training step
    (``model.train_function.graph``, converted by :func:`graphc.nn.tensorboard.graph_def`) goes to
    ``train`` for the graph dashboard.  Files are flushed every epoch and closed at the end of training.
    Needs ``tensorboardX`` (``pip install "graphc[tensorboard]"``).
    """

    def __init__(self, log_dir: str | os.PathLike[str] = "logs", write_graph: bool = True,
                 update_freq: str | int = "epoch") -> None:
        super().__init__()
        self.log_dir = _check_path("TensorBoard", "log_dir", log_dir)
        self.write_graph = _check_bool("TensorBoard", "write_graph", write_graph)
        if isinstance(update_freq, str) and update_freq == "batch":
            update_freq = 1
        self.update_freq = _check_save_freq("TensorBoard", "update_freq", update_freq, "epoch")
        self._writers: dict[str, Any] = {}
        self._step = 0

    def _writer(self, name: str) -> Any:
        writer = self._writers.get(name)
        if writer is None:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:  # pragma: no cover - depends on the environment
                raise ImportError('the TensorBoard callback writes with tensorboardX: pip install '
                                  '"graphc[tensorboard]" (or tensorboardX)') from None
            writer = self._writers[name] = SummaryWriter(os.path.join(self.log_dir, name))
        return writer

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._step = 0
        train = self._writer("train")
        if self.write_graph:
            function = getattr(self.model, "train_function", None)
            graph = getattr(function, "graph", None)
            if graph is None:
                warnings.warn("TensorBoard(write_graph=True): the model has no compiled train_function with a "
                              "graph yet; no graph is written", RuntimeWarning, stacklevel=2)
            else:
                from graphc.nn.tensorboard import write_graph

                write_graph(train, graph)
                train.flush()

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self._step += 1
        if self.update_freq == "epoch" or self._step % self.update_freq:  # type: ignore[operator]
            return
        writer = self._writer("train")
        for key, value in (logs or {}).items():
            number = _scalar(value)
            if number is not None:
                writer.add_scalar(f"batch_{key}", number, self._step)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        for key, value in (logs or {}).items():
            number = _scalar(value)
            if number is None:
                continue
            if key.startswith("val_"):
                self._writer("validation").add_scalar(f"epoch_{key[4:]}", number, epoch)
            else:
                self._writer("train").add_scalar(f"epoch_{key}", number, epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs: Logs | None = None) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
