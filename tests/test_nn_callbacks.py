"""graphc.nn.callbacks: each callback driven through fit's protocol by a scripted fake model, plus one real fit."""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import struct
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

import graphc as gc
from graphc.errors import ArgumentError
from graphc.nn import callbacks as cb


class FakeModel:
    """What fit's callbacks use of a model: stop_training, learning_rate, weights, save_weights,
    train_function.graph."""

    def __init__(self, learning_rate: float = 0.1) -> None:
        self.stop_training = False
        self._lr = learning_rate
        self.lr_set: list[float] = []
        self.weights = [gc.Variable(np.zeros(3, np.float32), name="fake/w"),
                        gc.Variable(np.zeros((), np.float32), name="fake/b")]
        self.saved: list[str] = []
        x = gc.placeholder("float32", (None, 3), name="x")
        with gc.name_scope("dense"):
            w = gc.Variable(np.ones((3, 2), np.float32), name="kernel")
            y = x @ w
        self.train_function = gc.function([x], gc.sum(y))

    @property
    def learning_rate(self) -> float:
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._lr = float(value)
        self.lr_set.append(float(value))

    def save_weights(self, path: str) -> None:
        with open(path, "wb") as f:
            np.save(f, self.weights[0].value)
        self.saved.append(path)


def simulate_fit(callbacks: Sequence[cb.Callback], epoch_logs: Sequence[dict[str, float]],
                 model: FakeModel | None = None, steps: int = 2) -> tuple[FakeModel, int]:
    """Call the hooks as fit does; epoch ``e`` "trains" the weights to the value ``e + 1``.  Returns the
    model and the number of epochs run (training stops when a callback sets stop_training)."""
    model = model or FakeModel()
    cbs = cb.CallbackList(callbacks, model, {"epochs": len(epoch_logs), "steps": steps, "verbose": 0,
                                             "samples": steps * 4})
    model.stop_training = False
    cbs.on_train_begin({})
    ran = 0
    logs: dict[str, float] = {}
    for epoch, scripted in enumerate(epoch_logs):
        cbs.on_epoch_begin(epoch, {})
        for batch in range(steps):
            cbs.on_train_batch_begin(batch, {})
            cbs.on_train_batch_end(batch, {k: v for k, v in scripted.items() if not k.startswith("val_")})
        for w in model.weights:
            w.assign(np.full(w.shape, epoch + 1, np.float32))
        logs = dict(scripted)
        cbs.on_epoch_end(epoch, logs)
        ran += 1
        if model.stop_training:
            break
    cbs.on_train_end(logs)
    return model, ran


def losses(*values: float, key: str = "val_loss") -> list[dict[str, float]]:
    return [{"loss": 1.0, key: v} for v in values]


# ---- EarlyStopping ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "kwargs", "ran", "best_epoch"), [
    ((1.0, 0.9, 0.95, 0.8, 0.85, 0.9), {}, 3, 1),  # patience 0: stops at the first epoch without improvement
    ((1.0, 0.9, 0.95, 0.8, 0.85, 0.9, 0.99), {"patience": 2}, 6, 3),
    ((1.0, 0.9, 0.95, 0.8, 0.7, 0.6), {"patience": 2}, 6, 5),  # never patient long enough
    ((1.0, 0.9, 0.87, 0.85, 0.5), {"min_delta": 0.06, "patience": 1}, 3, 1),  # small gains do not count
    ((0.5, 0.6, 0.7, 0.65, 0.66, 0.9), {"monitor": "val_accuracy", "patience": 1}, 4, 2),  # auto -> max
    ((0.5, 0.6, 0.7, 0.65, 0.66), {"monitor": "val_accuracy", "mode": "min"}, 2, 0),
    # above the baseline, the epochs count from the first: stops at epoch 2, not 4 as without a baseline
    ((2.0, 1.5, 1.6, 1.7, 1.8, 1.0), {"baseline": 1.05, "patience": 3}, 3, 1),
    ((2.0, 1.5, 1.6, 1.7, 1.8, 1.0), {"patience": 3}, 5, 1),
    ((2.0, 1.5, 1.0, 1.1, 1.2), {"baseline": 1.05, "patience": 3}, 5, 2),  # beaten: counts restart
    ((1.0, 2.0, 3.0, 4.0, 5.0), {"start_from_epoch": 2}, 4, 2),  # the first two epochs are not counted
])
def test_early_stopping_stops_at_the_right_epoch(values: tuple[float, ...], kwargs: dict[str, Any], ran: int,
                                                 best_epoch: int) -> None:
    key = kwargs.get("monitor", "val_loss")
    stopper = cb.EarlyStopping(**kwargs)
    model, epochs = simulate_fit([stopper], losses(*values, key=key))
    assert epochs == ran
    assert stopper.stopped_epoch == (ran - 1 if ran < len(values) else 0)
    assert stopper.best_epoch == best_epoch
    assert model.stop_training == (ran < len(values))


def test_early_stopping_restores_the_best_weights_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    stopper = cb.EarlyStopping(patience=2, restore_best_weights=True, verbose=1)
    model, ran = simulate_fit([stopper], losses(1.0, 0.5, 0.7, 0.8, 0.4))
    assert ran == 4
    for w in model.weights:  # epoch 1 (the best) left the weights at 2
        np.testing.assert_array_equal(w.value, np.full(w.shape, 2, np.float32))
    out = capsys.readouterr().out
    assert "Epoch 4: early stopping" in out
    assert "best epoch: 2" in out


def test_early_stopping_restores_even_without_stopping_and_is_reusable() -> None:
    stopper = cb.EarlyStopping(patience=5, restore_best_weights=True)
    model, ran = simulate_fit([stopper], losses(3.0, 1.0, 2.0))
    assert ran == 3
    np.testing.assert_array_equal(model.weights[0].value, [2, 2, 2])
    model, ran = simulate_fit([stopper], losses(3.0, 4.0, 5.0))  # state is reset at train begin
    assert stopper.best == 3.0 and stopper.best_epoch == 0
    np.testing.assert_array_equal(model.weights[0].value, [1, 1, 1])


def test_early_stopping_warns_about_a_missing_key() -> None:
    with pytest.warns(RuntimeWarning, match=r"`val_loss`.*available: loss"):
        _, ran = simulate_fit([cb.EarlyStopping()], [{"loss": 1.0}, {"loss": 2.0}])
    assert ran == 2


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"patience": -1}, "patience must be a non-negative integer, got -1"),
    ({"patience": 1.5}, "patience must be a non-negative integer, got 1.5"),
    ({"mode": "maximum"}, "mode must be 'auto', 'min' or 'max', got 'maximum'"),
    ({"min_delta": -0.1}, "min_delta must be a finite number >= 0"),
    ({"baseline": "low"}, "baseline must be a finite number or None, got 'low'"),
    ({"monitor": ""}, "monitor must be a non-empty string"),
    ({"restore_best_weights": 1}, "restore_best_weights must be True or False, got 1"),
])
def test_early_stopping_checks_its_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ArgumentError, match="EarlyStopping: " + message.replace("(", r"\(").replace(")", r"\)")):
        cb.EarlyStopping(**kwargs)


# ---- ModelCheckpoint ----------------------------------------------------------------------------------


def test_model_checkpoint_formats_names_with_the_epoch_and_logs(tmp_path: Any) -> None:
    pattern = str(tmp_path / "ckpt" / "w-{epoch:02d}-{val_loss:.2f}.safetensors")
    model, _ = simulate_fit([cb.ModelCheckpoint(pattern)], losses(0.5, 0.25, 0.125))
    names = [os.path.basename(p) for p in model.saved]
    assert names == ["w-01-0.50.safetensors", "w-02-0.25.safetensors", "w-03-0.12.safetensors"]
    assert all(os.path.exists(p) for p in model.saved)


def test_model_checkpoint_save_best_only(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pattern = str(tmp_path / "best-{epoch}.bin")
    checkpoint = cb.ModelCheckpoint(pattern, save_best_only=True, verbose=1)
    model, _ = simulate_fit([checkpoint], losses(1.0, 0.5, 0.7, 0.4, 0.4))
    assert [os.path.basename(p) for p in model.saved] == ["best-1.bin", "best-2.bin", "best-4.bin"]
    out = capsys.readouterr().out
    assert "Epoch 3: val_loss did not improve from 0.50000" in out
    assert "Epoch 4: val_loss improved from 0.50000 to 0.40000, saving model to" in out

    checkpoint = cb.ModelCheckpoint(pattern, monitor="val_accuracy", save_best_only=True)  # auto -> max
    model, _ = simulate_fit([checkpoint], losses(0.5, 0.7, 0.6, 0.8, key="val_accuracy"))
    assert [os.path.basename(p) for p in model.saved] == ["best-1.bin", "best-2.bin", "best-4.bin"]

    checkpoint = cb.ModelCheckpoint(pattern, save_best_only=True, initial_value_threshold=0.6)
    model, _ = simulate_fit([checkpoint], losses(1.0, 0.7, 0.5))
    assert [os.path.basename(p) for p in model.saved] == ["best-3.bin"]


def test_model_checkpoint_every_few_batches_and_missing_keys(tmp_path: Any) -> None:
    pattern = str(tmp_path / "e{epoch}-b{batch}.bin")
    model, _ = simulate_fit([cb.ModelCheckpoint(pattern, save_freq=3)], losses(1.0, 0.9), steps=4)
    assert [os.path.basename(p) for p in model.saved] == ["e1-b3.bin", "e2-b2.bin"]

    with pytest.warns(RuntimeWarning, match="saving only the best model"):
        model, _ = simulate_fit([cb.ModelCheckpoint(pattern.replace("-b{batch}", ""), save_best_only=True)],
                                [{"loss": 1.0}])
    assert model.saved == []
    with pytest.raises(ArgumentError, match=r"names \{val_acc\}, which is not among the fields it may use "
                                            r"\(epoch, loss, val_loss\)"):
        simulate_fit([cb.ModelCheckpoint(str(tmp_path / "{val_acc:.2f}"))], losses(1.0))
    with pytest.raises(ArgumentError, match="save_freq must be 'epoch' or a positive number of batches, got 0"):
        cb.ModelCheckpoint("w.bin", save_freq=0)
    with pytest.raises(ArgumentError, match="filepath must be a non-empty path"):
        cb.ModelCheckpoint(None)  # type: ignore[arg-type]


# ---- learning rate ------------------------------------------------------------------------------------


def test_learning_rate_scheduler_sets_the_rate_each_epoch() -> None:
    seen: list[float] = []
    history = cb.History()
    scheduler = cb.LearningRateScheduler(lambda epoch, lr: seen.append(lr) or lr * 0.5)
    model, _ = simulate_fit([scheduler, history], losses(1, 1, 1, 1), model=FakeModel(0.8))
    assert seen == [0.8, 0.4, 0.2, 0.1]
    assert model.lr_set == [0.4, 0.2, 0.1, 0.05]
    assert history.history["learning_rate"] == [0.4, 0.2, 0.1, 0.05]

    model, _ = simulate_fit([cb.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))], losses(1, 1, 1))
    np.testing.assert_allclose(model.lr_set, [0.1, 0.05, 0.1 / 3])

    def schedule(epoch: int, lr: float = 0.0) -> int:  # a default for lr still gets the rate; ints are fine
        return 1 if epoch == 0 else 2

    model, _ = simulate_fit([cb.LearningRateScheduler(schedule)], losses(1, 1))
    assert model.lr_set == [1.0, 2.0]


def test_learning_rate_scheduler_checks_the_schedule(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ArgumentError, match="schedule must be a function"):
        cb.LearningRateScheduler(0.1)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match=r"must return a non-negative finite number, got 'x' for epoch 0"):
        simulate_fit([cb.LearningRateScheduler(lambda epoch: "x")], losses(1))
    with pytest.raises(ArgumentError, match=r"got -1\.0 for epoch 0"):
        simulate_fit([cb.LearningRateScheduler(lambda epoch: -1.0)], losses(1))
    simulate_fit([cb.LearningRateScheduler(lambda epoch: 0.5, verbose=1)], losses(1))
    assert "Epoch 1: LearningRateScheduler setting learning rate to 0.5." in capsys.readouterr().out


def test_reduce_lr_on_plateau_sequence() -> None:
    history = cb.History()
    reducer = cb.ReduceLROnPlateau(factor=0.5, patience=2, min_lr=0.02)
    values = (1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.85, 0.85, 0.85, 0.85)
    model, _ = simulate_fit([reducer, history], losses(*values), model=FakeModel(0.1))
    # no improvement at epochs 2, 3 -> 0.05; 4, 5 -> 0.025; 7, 8 -> 0.02 (min_lr); then it stays
    assert model.lr_set == [0.05, 0.025, 0.02]
    # the logs have the rate each epoch trained with
    assert history.history["learning_rate"] == [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.025, 0.02, 0.02]


def test_reduce_lr_on_plateau_cooldown_min_delta_and_max_mode() -> None:
    reducer = cb.ReduceLROnPlateau(factor=0.1, patience=1, cooldown=2)
    model, _ = simulate_fit([reducer], losses(1.0, 1.0, 1.0, 1.0, 1.0), model=FakeModel(1.0))
    # as Keras: reduced at epoch 1; epoch 2 cools down; epoch 3 ends the cooldown, counts and reduces
    np.testing.assert_allclose(model.lr_set, [0.1, 0.01])

    reducer = cb.ReduceLROnPlateau(factor=0.5, patience=1, min_delta=0.1)
    model, _ = simulate_fit([reducer], losses(1.0, 0.95, 0.8), model=FakeModel(1.0))
    assert model.lr_set == [0.5]  # 0.95 is not better by more than min_delta; 0.8 is

    reducer = cb.ReduceLROnPlateau(monitor="accuracy", factor=0.5, patience=1)
    model, _ = simulate_fit([reducer], [{"accuracy": a} for a in (0.5, 0.6, 0.55, 0.7)], model=FakeModel(1.0))
    assert model.lr_set == [0.5]

    for kwargs, message in [({"factor": 1.0}, "factor must be between 0 and 1"),
                            ({"factor": 0}, "factor must be between 0 and 1"),
                            ({"cooldown": -2}, "cooldown must be a non-negative integer, got -2"),
                            ({"min_lr": -1}, "min_lr must be a finite number >= 0")]:
        with pytest.raises(ArgumentError, match="ReduceLROnPlateau: " + message):
            cb.ReduceLROnPlateau(**kwargs)


# ---- CSVLogger ----------------------------------------------------------------------------------------


def read_rows(path: Any, separator: str = ",") -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=separator))


def test_csv_logger_writes_a_header_and_a_row_per_epoch(tmp_path: Any) -> None:
    path = tmp_path / "log.csv"
    logs = [{"loss": 0.5, "accuracy": 0.75, "val_loss": 0.625}, {"loss": 0.25, "accuracy": 0.875, "val_loss": 0.5}]

    class CheckFlushed(cb.Callback):  # runs after the logger: the row is in the file already
        def on_epoch_end(self, epoch: int, logs: cb.Logs | None = None) -> None:
            assert len(read_rows(path)) == epoch + 2

    simulate_fit([cb.CSVLogger(path), CheckFlushed()], logs)
    assert read_rows(path) == [["epoch", "accuracy", "loss", "val_loss"],
                               ["0", "0.75", "0.5", "0.625"], ["1", "0.875", "0.25", "0.5"]]

    simulate_fit([cb.CSVLogger(path, append=True)], [{"val_loss": 0.25, "loss": 0.125}])  # under the old header
    assert read_rows(path)[-1] == ["0", "NA", "0.125", "0.25"]
    simulate_fit([cb.CSVLogger(path)], [{"loss": 1.0}])  # without append: a new file
    assert read_rows(path) == [["epoch", "loss"], ["0", "1.0"]]


def test_csv_logger_new_keys_add_columns_and_separator(tmp_path: Any) -> None:
    path = tmp_path / "log.tsv"
    simulate_fit([cb.CSVLogger(path, separator="\t")], [{"loss": 1.0}, {"loss": 0.5, "val_loss": 0.75}, {"loss": 0.25}])
    assert read_rows(path, "\t") == [["epoch", "loss", "val_loss"], ["0", "1.0", "NA"], ["1", "0.5", "0.75"],
                                     ["2", "0.25", "NA"]]
    with pytest.raises(ArgumentError, match="separator must be one character"):
        cb.CSVLogger(path, separator="::")


# ---- LambdaCallback -----------------------------------------------------------------------------------


def test_lambda_callback_calls_each_function() -> None:
    calls: list[tuple[Any, ...]] = []
    callback = cb.LambdaCallback(
        on_train_begin=lambda logs: calls.append(("train_begin",)),
        on_epoch_begin=lambda epoch, logs: calls.append(("epoch_begin", epoch)),
        on_batch_begin=lambda batch, logs: calls.append(("batch_begin", batch)),
        on_batch_end=lambda batch, logs: calls.append(("batch_end", batch, logs["loss"])),
        on_epoch_end=lambda epoch, logs: calls.append(("epoch_end", epoch, logs["val_loss"])),
        on_train_end=lambda logs: calls.append(("train_end",)),
        on_test_end=lambda logs: calls.append(("test_end",)))
    simulate_fit([callback], losses(0.5, 0.25), steps=1)
    assert calls == [("train_begin",), ("epoch_begin", 0), ("batch_begin", 0), ("batch_end", 0, 1.0),
                     ("epoch_end", 0, 0.5), ("epoch_begin", 1), ("batch_begin", 0), ("batch_end", 0, 1.0),
                     ("epoch_end", 1, 0.25), ("train_end",)]
    callback.on_test_end({})
    assert calls[-1] == ("test_end",)
    cb.LambdaCallback().on_epoch_end(0, {})  # nothing given: the hooks do nothing
    with pytest.raises(ArgumentError, match="unknown hook on_epoch_finish"):
        cb.LambdaCallback(on_epoch_finish=print)
    with pytest.raises(ArgumentError, match="on_epoch_end must be a function or None, got 3"):
        cb.LambdaCallback(on_epoch_end=3)  # type: ignore[arg-type]


# ---- ProgbarLogger ------------------------------------------------------------------------------------


def test_progbar_verbose_1_draws_a_bar_per_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    logs = [{"loss": 0.12344, "accuracy": 0.9, "val_loss": 0.2, "val_accuracy": 0.00001}] * 2
    simulate_fit([cb.ProgbarLogger(1)], logs, steps=3)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    final = [part for part in out.replace("\n", "\r").split("\r") if part.startswith("3/3")]
    assert len(final) == 2
    assert "ms/step" in final[0] or "us/step" in final[0]
    assert "loss=0.1234, accuracy=0.9000, val_loss=0.2000, val_accuracy=1.0000e-05" in final[0]


def test_progbar_verbose_2_prints_one_line_per_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    simulate_fit([cb.ProgbarLogger(2)], [{"loss": 0.5, "accuracy": 0.25, "val_loss": 1.5}] * 2, steps=3)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for i, line in enumerate(lines):
        parts = line.split(" - ")
        assert parts[0] == f"Epoch {i + 1}/2"
        assert parts[1].endswith("s")
        assert parts[2].endswith("s/step")
        assert parts[3:] == ["loss: 0.5000", "accuracy: 0.2500", "val_loss: 1.5000"]


def test_progbar_for_evaluate_and_its_argument(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    bar = cb.ProgbarLogger(2)
    bar.set_params({"verbose": 2, "samples": 8, "steps": 2})
    bar.on_test_begin({})
    bar.on_test_batch_end(0, {"loss": 1.0})
    bar.on_test_batch_end(1, {"loss": 0.5})
    bar.on_test_end({"loss": 0.5})
    assert capsys.readouterr().out.startswith("2/2 - ")
    with pytest.raises(ArgumentError, match=r"verbose must be 1 \(a progress bar\) or 2 \(one line per epoch\), got 0"):
        cb.ProgbarLogger(0)


# ---- TensorBoard --------------------------------------------------------------------------------------


def read_events(folder: Any) -> list[Any]:
    """Every event of the event files in ``folder`` (TFRecord framing: length, crc, data, crc)."""
    from tensorboardX.proto.event_pb2 import Event

    events = []
    for name in sorted(os.listdir(folder)):
        if not name.startswith("events.out.tfevents"):
            continue
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            offset += 12
            events.append(Event.FromString(data[offset:offset + length]))
            offset += length + 4
    return events


def scalars(events: Sequence[Any]) -> dict[str, list[tuple[int, float]]]:
    found: dict[str, list[tuple[int, float]]] = {}
    for event in events:
        for value in event.summary.value:
            number = value.simple_value if value.HasField("simple_value") else None
            if number is None:  # a tensor summary (newer writers)
                number = value.tensor.float_val[0]
            found.setdefault(value.tag, []).append((event.step, number))
    return found


def test_tensorboard_writes_scalars_and_the_graph(tmp_path: Any) -> None:
    pytest.importorskip("tensorboardX")
    from tensorboardX.proto.graph_pb2 import GraphDef

    logs = [{"loss": 1.0, "accuracy": 0.5, "val_loss": 1.5, "val_accuracy": 0.25, "learning_rate": 0.5},
            {"loss": 0.5, "accuracy": 0.75, "val_loss": 1.25, "val_accuracy": 0.5, "learning_rate": 0.25}]
    model, _ = simulate_fit([cb.TensorBoard(tmp_path, update_freq=2)], logs, steps=3)
    assert sorted(os.listdir(tmp_path)) == ["train", "validation"]
    train = read_events(tmp_path / "train")
    found = scalars(train)
    assert found["epoch_loss"] == [(0, 1.0), (1, 0.5)]
    assert found["epoch_accuracy"] == [(0, 0.5), (1, 0.75)]
    assert found["epoch_learning_rate"] == [(0, 0.5), (1, 0.25)]
    assert [step for step, _ in found["batch_loss"]] == [2, 4, 6]  # every 2 of the 6 batches
    assert scalars(read_events(tmp_path / "validation")) == {"epoch_loss": [(0, 1.5), (1, 1.25)],
                                                             "epoch_accuracy": [(0, 0.25), (1, 0.5)]}
    graphs = [GraphDef.FromString(e.graph_def) for e in train if e.graph_def]
    assert len(graphs) == 1
    nodes = {n.name: n for n in graphs[0].node}
    graph = model.train_function.graph
    assert [(n.name, n.op, list(n.input)) for n in graphs[0].node] == [
        (node.name, node.op, [i.name for i in node.inputs]) for node in graph.nodes]
    (kernel,) = (n for n in graph.nodes if n.op == "variable")
    (x,) = graph.placeholders
    scope = kernel.name.split("/")[0]  # "dense" (or dense_<n>: names are unique in the process)
    assert kernel.name == f"{scope}/kernel" and scope.startswith("dense")
    matmul = next(n for n in graphs[0].node if kernel.name in n.input)
    assert matmul.name.startswith(f"{scope}/") and list(matmul.input) == [x.name, kernel.name]
    assert nodes[x.name].op == "placeholder" and nodes[x.name].attr["dtype"].type == 1  # DT_FLOAT
    assert [d.size for d in nodes[x.name].attr["shape"].shape.dim] == [-1, 3]
    assert [d.size for d in nodes[kernel.name].attr["_output_shapes"].list.shape[0].dim] == [3, 2]


def test_tensorboard_epoch_only_without_graph_and_arguments(tmp_path: Any) -> None:
    pytest.importorskip("tensorboardX")
    simulate_fit([cb.TensorBoard(tmp_path, write_graph=False)], [{"loss": 2.0}], steps=2)
    assert os.listdir(tmp_path) == ["train"]  # no validation logs: no validation folder
    events = read_events(tmp_path / "train")
    assert not any(e.graph_def for e in events)
    assert scalars(events) == {"epoch_loss": [(0, 2.0)]}
    for kwargs, message in [({"update_freq": "step"}, "update_freq must be 'epoch' or a positive number"),
                            ({"write_graph": "yes"}, "write_graph must be True or False")]:
        with pytest.raises(ArgumentError, match="TensorBoard: " + message):
            cb.TensorBoard(tmp_path, **kwargs)


def test_graph_def_of_a_scoped_graph_and_bad_input() -> None:
    pytest.importorskip("tensorboardX")
    from graphc.nn.tensorboard import graph_def

    x = gc.placeholder("int64", (None, 4), name="ids")
    with gc.name_scope("block"):
        y = gc.sum(x * 2, axis=1)
    g = graph_def(gc.function([x], y).graph)
    by_name = {n.name: n for n in g.node}
    assert by_name["ids"].attr["dtype"].type == 9  # DT_INT64
    assert any(name.startswith("block/") for name in by_name)
    for n in g.node:
        assert all(i in by_name for i in n.input)  # inputs name nodes of the graph
    with pytest.raises(ArgumentError, match="graph_def: expected a graphc Graph"):
        graph_def("graph")  # type: ignore[arg-type]


# ---- a real fit ----------------------------------------------------------------------------------------


def test_fit_with_early_stopping_and_csv_logger(tmp_path: Any) -> None:
    nn = pytest.importorskip("graphc.nn")
    if not hasattr(nn, "Sequential"):
        pytest.skip("graphc.nn.Sequential is not available")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)
    model = nn.Sequential([nn.Dense(1, input_shape=(3,))])
    model.compile(optimizer="sgd", loss="mse")
    path = tmp_path / "train.csv"
    board = [cb.TensorBoard(tmp_path / "tb")] if importlib.util.find_spec("tensorboardX") else []
    # patience 0 with an impossible min_delta: epoch 1 does not count as an improvement -> stop after 2 epochs
    stopper = cb.EarlyStopping(monitor="loss", min_delta=1e9, restore_best_weights=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(x, y, epochs=10, batch_size=16, verbose=0,
                            callbacks=[stopper, cb.CSVLogger(path), *board])
    assert len(history.history["loss"]) == 2
    assert stopper.stopped_epoch == 1
    rows = read_rows(path)
    assert rows[0] == ["epoch", "loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1"]
    assert math.isclose(float(rows[1][1]), history.history["loss"][0], rel_tol=1e-6)
    if not board:
        return
    from tensorboardX.proto.graph_pb2 import GraphDef

    events = read_events(tmp_path / "tb" / "train")
    (graph,) = [GraphDef.FromString(e.graph_def) for e in events if e.graph_def]
    assert [n.name for n in graph.node] == [n.name for n in model.train_function.graph.nodes]
    assert [v for _, v in scalars(events)["epoch_loss"]] == pytest.approx(history.history["loss"])
