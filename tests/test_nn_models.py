"""graphc.nn models: Sequential / functional / subclassed construction, compile, fit, evaluate, predict,
weight files, export and the errors users make."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
import graphc.nn as nn
from graphc.errors import ArgumentError, DTypeError, GraphcError, ShapeError

HERE = "test_nn_models.py"


def _data(n: int = 96, features: int = 6, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    w = rng.normal(size=(features, classes))
    return x, np.argmax(x @ w, axis=1).astype(np.int64)


def _mlp(seed: int = 1, dropout: float = 0.0) -> nn.Sequential:
    nn.set_random_seed(seed)
    layers = [nn.Dense(8, activation="relu", input_shape=(6,))]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Dense(3, activation="softmax"))
    return nn.Sequential(layers)


def test_one_sgd_step_matches_numpy():
    model = _mlp()
    model.compile(optimizer=gc.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    x, y = _data(16)
    w1, b1, w2, b2 = (v.astype(np.float64) for v in model.get_weights())
    # forward and backward by hand (float64)
    h_pre = x @ w1 + b1
    h = np.maximum(h_pre, 0)
    z = h @ w2 + b2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(16), y]))
    dz = (p - np.eye(3)[y]) / 16
    dw2, db2 = h.T @ dz, dz.sum(0)
    dh = dz @ w2.T * (h_pre > 0)
    dw1, db1 = x.T @ dh, dh.sum(0)
    history = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(loss, rel=1e-5)
    expected = [w1 - 0.5 * dw1, b1 - 0.5 * db1, w2 - 0.5 * dw2, b2 - 0.5 * db2]
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_fit_learns_and_evaluate_predict_agree_with_numpy():
    model = _mlp()
    model.compile(optimizer=gc.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data(200)
    history = model.fit(x, y, batch_size=32, epochs=30, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 30 and losses[-1] < 0.5 * losses[0]
    assert history.history["accuracy"][-1] > 0.85
    probs = model.predict(x, batch_size=64)
    w1, b1, w2, b2 = model.get_weights()
    z = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    want = np.exp(z - z.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(probs, want, rtol=1e-4, atol=1e-6)
    loss, acc = model.evaluate(x, y, batch_size=50)
    assert loss == pytest.approx(-np.mean(np.log(want[np.arange(200), y])), rel=1e-4)
    assert acc == pytest.approx(np.mean(np.argmax(want, 1) == y))
    logs = model.evaluate(x, y, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}


def test_last_partial_batch_and_batch_logs():
    model = _mlp()
    model.compile(optimizer=gc.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", metrics=["acc"])
    x, y = _data(70)
    sizes: list[int] = []

    class Count(nn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            sizes.append(batch)

    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[Count()])
    assert sizes == [0, 1, 2, 0, 1, 2]
    # the epoch loss is the mean over the examples: a zero learning rate gives evaluate's value
    model.learning_rate = 0.0
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert history.history["loss"][0] == pytest.approx(model.evaluate(x, y, batch_size=7)[0], rel=1e-5)


def test_learning_rate_property_changes_steps_without_recompiling():
    model = _mlp()
    model.compile(optimizer=gc.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    x, y = _data(32)
    model.fit(x, y, epochs=1, verbose=0)
    step = model.train_function
    assert model.learning_rate == pytest.approx(0.1)
    model.learning_rate = 0.0
    before = model.get_weights()
    model.fit(x, y, epochs=2, verbose=0)
    assert model.train_function is step
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_validation_split_and_data():
    model = _mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data(100)
    history = model.fit(x, y, epochs=2, validation_split=0.2, verbose=0)
    assert len(history.history["val_loss"]) == 2
    val_loss, val_acc = model.evaluate(x[80:], y[80:])
    assert history.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-5)
    assert history.history["val_accuracy"][-1] == pytest.approx(val_acc)
    history = model.fit(x[:50], y[:50], epochs=1, validation_data=(x[50:], y[50:]), verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(x[50:], y[50:])[0], rel=1e-5)


def test_dropout_only_in_training_and_reproducible():
    x, y = _data(64)
    results = []
    for _ in range(2):
        model = _mlp(dropout=0.5)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, verbose=0)
        results.append(model.get_weights())
        first, second = model.predict(x), model.predict(x)
        np.testing.assert_array_equal(first, second)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    # the training step is fed noise; with a zero learning rate its loss differs from evaluate's
    model.learning_rate = 0.0
    train_loss = model.fit(x, y, epochs=1, verbose=0).history["loss"][0]
    assert train_loss != pytest.approx(model.evaluate(x, y), rel=1e-3)


def test_functional_model_two_inputs_shared_layer_and_raw_ops():
    nn.set_random_seed(3)
    a, b = nn.Input((4,), name="a"), nn.Input((4,), name="b")
    shared = nn.Dense(5, activation="tanh")
    ha, hb = shared(a), shared(b)
    merged = nn.Concatenate()([ha, hb * 2.0])
    out = nn.Dense(1)(nn.Dropout(0.3)(merged))
    model = nn.Model([a, b], out)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Concatenate", "Dropout", "Dense"]
    assert len(model.weights) == 4 and model.count_params() == 4 * 5 + 5 + 10 + 1
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(10, 4)).astype(np.float32), rng.normal(size=(10, 4)).astype(np.float32)
    ws, bs, wo, bo = model.get_weights()
    want = np.concatenate([np.tanh(xa @ ws + bs), 2 * np.tanh(xb @ ws + bs)], 1) @ wo + bo
    np.testing.assert_allclose(model.predict([xa, xb]), want, rtol=1e-5, atol=1e-6)
    model.compile(optimizer=gc.optimizers.SGD(0.01), loss="mse")
    target = rng.normal(size=(10, 1)).astype(np.float32)
    before = model.evaluate([xa, xb], target)
    model.fit([xa, xb], target, epochs=20, batch_size=5, verbose=0)
    assert model.evaluate([xa, xb], target) < before
    training_graph, context = model.graph(True)
    assert len(context.noise) == 1 and training_graph[0] is not model.outputs[0]


def test_nested_model_and_subclassed_model():
    nn.set_random_seed(4)
    inner = nn.Sequential([nn.Dense(3, activation="relu", input_shape=(2,)), nn.Dense(2)])
    x = nn.Input((2,))
    outer = nn.Model(x, nn.Dense(1)(inner(x)))
    data = np.random.default_rng(1).normal(size=(5, 2)).astype(np.float32)
    w1, b1, w2, b2, w3, b3 = outer.get_weights()
    want = (np.maximum(data @ w1 + b1, 0) @ w2 + b2) @ w3 + b3
    np.testing.assert_allclose(outer.predict(data), want, rtol=1e-5, atol=1e-6)
    assert [key for key, _ in outer.named_weights][:2] == ["layers.0.layers.0.kernel", "layers.0.layers.0.bias"]

    class TwoLayer(nn.Model):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Dense(4, activation="relu")
            self.out = nn.Dense(1)

        def call(self, inputs, training=False):
            return self.out(self.hidden(inputs))

    model = TwoLayer()
    model.compile(optimizer="adam", loss="mse")
    target = data.sum(1, keepdims=True)
    model.fit(data, target, epochs=2, verbose=0)
    assert [layer.name for layer in model.layers] == [model.hidden.name, model.out.name]
    wh, bh, wo, bo = model.get_weights()
    np.testing.assert_allclose(model.predict(data), np.maximum(data @ wh + bh, 0) @ wo + bo, rtol=1e-5, atol=1e-6)


def test_summary_lists_layers_shapes_and_counts():
    model = nn.Sequential([nn.Input((784,)), nn.Dense(256, activation="relu", name="hidden"),
                           nn.Dense(10, name="logits")], name="mlp")
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert 'Model: "mlp"' in text
    assert "hidden (Dense)" in text and "[?, 256]" in text and "200,960" in text
    assert "logits (Dense)" in text and "2,570" in text
    assert "Total params: 203,530" in text and "Trainable params: 203,530" in text
    assert model.layers[0].weights[0].shape == (784, 256)
    with pytest.raises(GraphcError, match="needs a built model") as err:
        nn.Sequential([nn.Dense(3)]).summary()
    assert HERE in str(err.value)


def test_sequential_builds_from_data_and_add():
    nn.set_random_seed(5)
    model = nn.Sequential()
    model.add(nn.Dense(4))
    model.add(nn.Dense(2))
    assert not model.built or not model.inputs
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((3, 7), np.float32)
    model.fit(x, np.zeros((3, 2), np.float32), verbose=0)
    assert model.layers[0].weights[0].shape == (7, 4)
    assert model.predict(x).shape == (3, 2)


def test_weights_roundtrip_and_bitwise_resume(tmp_path):
    x, y = _data(80)

    def train(epochs, initial_epoch=0, load=None):
        model = _mlp(seed=7, dropout=0.25)
        model.compile(optimizer=gc.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
        if load:
            model.load_weights(load)
        model.fit(x, y, batch_size=16, epochs=epochs, initial_epoch=initial_epoch, verbose=0)
        return model

    straight = train(4)
    half = train(2)
    path = str(tmp_path / "run" / "w.safetensors")
    half.save_weights(path)
    resumed = train(4, initial_epoch=2, load=path)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    restored = _mlp(seed=99, dropout=0.25)
    restored.load_weights(path)
    for a, b in zip(half.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_export_runs_through_load_graph(tmp_path):
    model = _mlp()
    x, _ = _data(9)
    path = str(tmp_path / "m.gcg")
    model.export(path)
    inputs, outputs = gc.load_graph(path)
    got = gc.function(inputs, outputs[0])(x)
    np.testing.assert_allclose(got, model.predict(x), rtol=1e-6)


def test_batch_normalization_statistics_follow_fit():
    nn.set_random_seed(6)
    model = nn.Sequential([nn.Input((3,)), nn.BatchNormalization(momentum=0.5), nn.Dense(1)])
    model.compile(optimizer=gc.optimizers.SGD(0.0), loss="mse")
    x = (np.random.default_rng(2).normal(size=(64, 3)) * 3 + 5).astype(np.float32)
    model.fit(x, np.zeros((64, 1), np.float32), batch_size=64, epochs=1, shuffle=False, verbose=0)
    bn = model.layers[0]
    mean = next(w for w in bn.weights if "moving_mean" in w.name).value
    np.testing.assert_allclose(mean, 0.5 * x.mean(0), rtol=1e-5)


# ---- errors -----------------------------------------------------------------------------------------


def test_fit_before_compile():
    with pytest.raises(GraphcError, match="compile") as err:
        _mlp().fit(*_data(8), verbose=0)
    assert HERE in str(err.value)


def test_wrong_input_shape_names_model_and_line():
    model = _mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ShapeError, match=r"expected input data of shape \[\?, 6\].*got \[4, 5\]") as err:
        model.fit(np.ones((4, 5), np.float32), np.zeros(4, np.int64), verbose=0)
    assert HERE in str(err.value)


def test_layer_called_on_wrong_features_names_layer():
    dense = nn.Dense(3, name="proj")
    dense(gc.placeholder("float32", (None, 4)))
    with pytest.raises(ShapeError, match="Dense 'proj'.*built for inputs of shape") as err:
        dense(gc.placeholder("float32", (None, 5)))
    assert HERE in str(err.value)


def test_labels_out_of_range_and_loss_that_does_not_fit():
    model = _mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = _data(8)
    with pytest.raises(ArgumentError, match=r"class ids in \[0, 3\).*got 5") as err:
        model.fit(x, y + 3 * (y == y.max()), verbose=0)
    assert HERE in str(err.value)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    with pytest.raises(ShapeError, match="sparse_categorical_crossentropy") as err:
        model.fit(x, y, verbose=0)
    assert HERE in str(err.value)
    ids = nn.Sequential([nn.Embedding(5, 2, input_length=3), nn.Flatten(), nn.Dense(1)])
    ids.compile(optimizer="sgd", loss="mse")
    with pytest.raises(DTypeError, match="expected input data of dtype int64") as err:
        ids.fit(np.ones((4, 3), np.float32), np.zeros((4, 1), np.float32), verbose=0)
    assert HERE in str(err.value)
    ids.fit(np.ones((4, 3), np.int32), np.zeros((4, 1), np.float32), verbose=0)


def test_bad_arguments():
    model = _mlp()
    with pytest.raises(ArgumentError, match="optimizer"):
        model.compile(optimizer="adagrad-ish", loss="mse")
    with pytest.raises(ArgumentError, match="unknown loss"):
        model.compile(optimizer="sgd", loss="hinge-ish")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = _data(8)
    with pytest.raises(ArgumentError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ArgumentError, match="validation_split"):
        model.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ArgumentError, match="learning_rate"):
        model.learning_rate = -1.0
    with pytest.raises(ArgumentError, match="not one of the model's inputs"):
        a, b = nn.Input((2,)), nn.Input((2,))
        nn.Model(a, nn.Dense(1)(a + b))


def test_load_weights_with_another_optimizers_state_changes_nothing(tmp_path):
    x, y = _data(16)
    adam = _mlp()
    adam.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    adam.fit(x, y, verbose=0)
    path = str(tmp_path / "adam.safetensors")
    adam.save_weights(path)
    sgd = _mlp(seed=2)
    sgd.compile(optimizer=gc.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy")
    sgd.fit(x, y, verbose=0)
    before = sgd.get_weights()
    with pytest.raises(gc.CheckpointError, match="optimizer state 'optimizer.layers.0.kernel.m'") as err:
        sgd.load_weights(path)
    assert HERE in str(err.value)
    for a, b in zip(before, sgd.get_weights()):
        np.testing.assert_array_equal(a, b)
