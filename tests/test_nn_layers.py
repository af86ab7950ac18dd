"""graphc.nn's convolution, pooling, normalisation and embedding layers against NumPy references written
here (convolution and pooling by explicit loops over windows): forward values and static output shapes,
batch normalisation in training (batch statistics and the moving statistics' updates) and inference,
the kernels' layout and fans, gradients against central finite differences in float64, and the errors
(which name the layer and the user's line)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

import graphc as gc
from graphc.errors import ArgumentError, DTypeError, ExecutionError, ShapeError
from graphc.nn.context import building
from graphc.nn.layers.base import Layer
from graphc.nn.layers.conv import (
    AveragePooling2D,
    AvgPool2D,
    Conv2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPool2D,
    MaxPooling2D,
)
from graphc.nn.layers.embedding import Embedding
from graphc.nn.layers.normalization import BatchNormalization, LayerNormalization

HERE = os.path.basename(__file__)


# ---- NumPy references ---------------------------------------------------------------------------------

def _same_pads(size: int, k: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same": output ceil(size / stride), the odd padding at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def _pads(shape: Sequence[int], window: tuple[int, int], strides: tuple[int, int], padding: str
          ) -> list[tuple[int, int]]:
    if padding == "valid":
        return [(0, 0), (0, 0)]
    return [_same_pads(shape[2 + i], window[i], strides[i]) for i in range(2)]


def _windows(x: np.ndarray, window: tuple[int, int], strides: tuple[int, int], padding: str, fill: float
             ) -> list[tuple[int, int, np.ndarray]]:
    """Every window of the padded NCHW ``x``: ``(i, j, x[:, :, window])`` with the output position."""
    (t, b), (left, r) = _pads(x.shape, window, strides, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (left, r)), constant_values=fill)
    oh = (xp.shape[2] - window[0]) // strides[0] + 1
    ow = (xp.shape[3] - window[1]) // strides[1] + 1
    out = []
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * strides[0], j * strides[1]
            out.append((i, j, xp[:, :, r0: r0 + window[0], c0: c0 + window[1]]))
    return out


def conv2d_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, strides: tuple[int, int], padding: str
               ) -> np.ndarray:
    """Cross-correlation of NCHW ``x`` with OIHW ``w``, by loops over the output positions."""
    wins = _windows(x.astype(np.float64), w.shape[2:], strides, padding, 0.0)
    oh, ow = wins[-1][0] + 1, wins[-1][1] + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i, j, patch in wins:
        out[:, :, i, j] = np.einsum("nckl,ockl->no", patch, w.astype(np.float64))
    if b is not None:
        out += b[None, :, None, None]
    return out


def pool_ref(kind: str, x: np.ndarray, window: tuple[int, int], strides: tuple[int, int], padding: str) -> np.ndarray:
    """Max or mean over each window's real (unpadded) values."""
    wins = _windows(x.astype(np.float64), window, strides, padding, np.nan)
    oh, ow = wins[-1][0] + 1, wins[-1][1] + 1
    out = np.zeros((x.shape[0], x.shape[1], oh, ow))
    reduce = np.nanmax if kind == "max" else np.nanmean
    for i, j, patch in wins:
        out[:, :, i, j] = reduce(patch, axis=(2, 3))
    return out


def normalize_ref(x: np.ndarray, axes: tuple[int, ...], mean: np.ndarray, var: np.ndarray, gamma: Any, beta: Any,
                  epsilon: float) -> np.ndarray:
    """``(x - mean) / sqrt(var + eps) * gamma + beta``; the parameters are of the shape of ``axes`` of ``x``
    (or of ``x``'s rank, already broadcastable)."""
    shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]

    def b(v: Any) -> Any:
        return np.reshape(v, shape) if isinstance(v, np.ndarray) and 0 < v.ndim < x.ndim else v

    return (x - b(mean)) / np.sqrt(b(var) + epsilon) * b(gamma) + b(beta)


def moments_ref(x: np.ndarray, reduce_axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and biased variance over ``reduce_axes`` (kept, as size 1)."""
    x = x.astype(np.float64)
    mean = x.mean(axis=reduce_axes, keepdims=True)
    return mean, ((x - mean) ** 2).mean(axis=reduce_axes, keepdims=True)


# ---- helpers ------------------------------------------------------------------------------------------

def placeholder_for(xv: np.ndarray) -> gc.Tensor:
    """A placeholder of ``xv``'s dtype and shape with an unknown batch size."""
    return gc.placeholder(xv.dtype, (None, *xv.shape[1:]))


def apply(layer: Layer, xv: np.ndarray, **call: Any) -> tuple[gc.Tensor, np.ndarray]:
    """The layer's output tensor on a placeholder and its value for ``xv``."""
    x = placeholder_for(xv)
    y = layer(x, **call)
    return y, gc.function([x], y)(xv)


def randomize(layer: Layer, rng: np.random.Generator, positive: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Random values for every weight (those in ``positive`` in [0.5, 1.5)), set on the layer."""
    values = {}
    for name, var in layer.named_weights:
        v = rng.uniform(0.5, 1.5, var.shape) if name in positive else rng.standard_normal(var.shape)
        values[name] = v.astype(var.dtype)
        var.assign(values[name])
    return values


def close(got: np.ndarray, want: np.ndarray, tol: float = 2e-5) -> None:
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# ---- Conv2D -------------------------------------------------------------------------------------------

CONV_CASES = [
    # kernel_size, strides, padding, use_bias, activation
    (3, 1, "valid", True, None),
    ((3, 2), (2, 1), "same", True, "relu"),
    (1, 2, "same", False, None),
    ((2, 3), (1, 2), "valid", True, "tanh"),
    (4, 3, "SAME", True, None),
]


@pytest.mark.parametrize("kernel_size, strides, padding, use_bias, activation", CONV_CASES)
def test_conv2d_forward(rng, kernel_size, strides, padding, use_bias, activation):
    xv = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    layer = Conv2D(4, kernel_size, strides=strides, padding=padding, use_bias=use_bias, activation=activation)
    y = layer(placeholder_for(xv))
    weights = randomize(layer, rng)
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = strides if isinstance(strides, tuple) else (strides, strides)
    assert layer.kernel.shape == (4, 3, *k)          # OIHW
    assert [n for n, _ in layer.named_weights] == (["kernel", "bias"] if use_bias else ["kernel"])
    want = conv2d_ref(xv, weights["kernel"], weights.get("bias"), s, padding.lower())
    want = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh, None: lambda v: v}[activation](want)
    assert y.shape == (None, *want.shape[1:])        # static, as Keras's
    _, got = apply(layer, xv)
    close(got, want)


def test_conv2d_output_shapes_are_keras_s():
    x = gc.placeholder("float32", (None, 3, 9, 10))
    assert Conv2D(2, 3)(x).shape == (None, 2, 7, 8)
    assert Conv2D(2, 3, strides=2, padding="same")(x).shape == (None, 2, 5, 5)
    assert Conv2D(2, (2, 4), strides=(3, 2))(x).shape == (None, 2, 3, 4)
    assert Conv2D(5, 1, data_format="channels_first")(gc.placeholder("float32", (4, 3, None, None))).shape == (
        4, 5, None, None)


def test_conv2d_initializer_fans_are_those_of_the_oihw_kernel():
    x = gc.placeholder("float32", (None, 8, 5, 5))
    glorot = Conv2D(16, 3)
    glorot(x)
    fan_in, fan_out = 8 * 3 * 3, 16 * 3 * 3
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    k = glorot.kernel.value
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.95 * limit
    he = Conv2D(16, 3, kernel_initializer="he_uniform")
    he(x)
    limit = math.sqrt(6.0 / fan_in)
    k = he.kernel.value
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.95 * limit
    np.testing.assert_array_equal(glorot.bias.value, np.zeros(16, np.float32))


def test_conv2d_integer_input_is_cast_and_float64_layer():
    xv = np.arange(2 * 1 * 4 * 4).reshape(2, 1, 4, 4).astype(np.int32)
    layer = Conv2D(2, 2, kernel_initializer="ones", bias_initializer="ones")
    y, got = apply(layer, xv)
    assert y.dtype == np.float32
    close(got, conv2d_ref(xv, np.ones((2, 1, 2, 2)), np.ones(2), (1, 1), "valid"))
    layer64 = Conv2D(2, 2, dtype="float64")
    y64, _ = apply(layer64, xv.astype(np.float64))
    assert y64.dtype == np.float64 and layer64.kernel.dtype == np.float64


# ---- pooling ------------------------------------------------------------------------------------------

POOL_CASES = [
    # pool_size, strides, padding
    ((2, 2), None, "valid"),
    (3, 2, "valid"),
    (3, 2, "same"),
    ((2, 3), (1, 2), "same"),
    (2, 1, "valid"),
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool_size, strides, padding", POOL_CASES)
def test_pooling_forward(rng, kind, pool_size, strides, padding):
    xv = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    layer = (MaxPool2D if kind == "max" else AvgPool2D)(pool_size, strides=strides, padding=padding)
    k = pool_size if isinstance(pool_size, tuple) else (pool_size, pool_size)
    s = k if strides is None else strides if isinstance(strides, tuple) else (strides, strides)
    want = pool_ref(kind, xv, k, s, padding)
    y, got = apply(layer, xv)
    assert y.shape == (None, *want.shape[1:])
    close(got, want)


def test_pooling_aliases_and_defaults(rng):
    assert MaxPooling2D is MaxPool2D and AveragePooling2D is AvgPool2D
    layer = MaxPooling2D()
    assert layer.pool_size == (2, 2) and layer.strides == (2, 2)
    xv = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    y, got = apply(AveragePooling2D(), xv)
    assert y.shape == (None, 2, 2, 2)
    close(got, pool_ref("avg", xv, (2, 2), (2, 2), "valid"))


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling(rng, keepdims):
    xv = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
    for layer, ref in ((GlobalAveragePooling2D(keepdims=keepdims), np.mean),
                       (GlobalMaxPooling2D(keepdims=keepdims), np.max)):
        y, got = apply(layer, xv)
        want = ref(xv, axis=(2, 3), keepdims=keepdims)
        assert y.shape == (None, *want.shape[1:])
        close(got, want)


# ---- BatchNormalization -------------------------------------------------------------------------------

BN_CASES = [((3, 4, 3, 2), 1), ((5, 3), 1), ((5, 3), -1), ((2, 3, 4), (1, 2)), ((4, 2, 3, 3), -1)]


@pytest.mark.parametrize("shape, axis", BN_CASES)
def test_batch_normalization_inference_uses_moving_statistics(rng, shape, axis):
    xv = rng.standard_normal(shape).astype(np.float32) * 2 + 1
    layer = BatchNormalization(axis=axis, epsilon=1e-2)
    layer(placeholder_for(xv))   # build
    w = randomize(layer, rng, positive=("moving_variance", "gamma"))
    assert [n for n, _ in layer.named_weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [v.trainable for v in layer.weights] == [True, True, False, False]
    axes = tuple(sorted(a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))))
    want = normalize_ref(xv.astype(np.float64), axes, w["moving_mean"], w["moving_variance"], w["gamma"], w["beta"],
                         1e-2)
    y, got = apply(layer, xv)
    assert y.shape == (None, *shape[1:])
    close(got, want)
    _, got_explicit = apply(layer, xv, training=False)
    close(got_explicit, want)


@pytest.mark.parametrize("shape, axis", BN_CASES[:4])
def test_batch_normalization_training_uses_and_updates_batch_statistics(rng, shape, axis):
    xv = rng.standard_normal(shape).astype(np.float32) * 3 + 2
    layer = BatchNormalization(axis=axis, momentum=0.8)
    x = placeholder_for(xv)
    with building(True) as ctx:
        y = layer(x)
    w = randomize(layer, rng, positive=("moving_variance", "gamma"))
    assert set(ctx.updates) == {layer.moving_mean, layer.moving_variance}
    axes = tuple(sorted(a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))))
    reduce_axes = tuple(a for a in range(len(shape)) if a not in axes)
    mean, var = moments_ref(xv, reduce_axes)
    pshape = tuple(shape[a] for a in axes)
    got_y, got_mean, got_var = gc.function([x], [y, ctx.updates[layer.moving_mean],
                                                 ctx.updates[layer.moving_variance]])(xv)
    close(got_y, normalize_ref(xv.astype(np.float64), axes, mean.reshape(pshape), var.reshape(pshape), w["gamma"],
                               w["beta"], 1e-3), 1e-4)
    close(got_mean, w["moving_mean"] * 0.8 + mean.reshape(pshape) * 0.2)
    close(got_var, w["moving_variance"] * 0.8 + var.reshape(pshape) * 0.2, 1e-4)


def test_batch_normalization_updates_apply_in_a_training_step(rng):
    xv = (rng.standard_normal((8, 2, 3, 3)) * 2 + 5).astype(np.float32)
    layer = BatchNormalization(momentum=0.5, center=False, scale=False)
    x = placeholder_for(xv)
    with building(True) as ctx:
        y = layer(x)
    assert layer.weights == [layer.moving_mean, layer.moving_variance]
    step = gc.function([x], y, updates=ctx.updates)
    mean, var = moments_ref(xv, (0, 2, 3))
    mean, var = mean.reshape(2), var.reshape(2)
    step(xv)
    close(layer.moving_mean.value, 0.5 * mean)
    close(layer.moving_variance.value, 0.5 + 0.5 * var, 1e-4)
    step(xv)
    close(layer.moving_mean.value, 0.75 * mean)
    close(layer.moving_variance.value, 0.25 + 0.75 * var, 1e-4)
    # inference after training: the moving statistics
    _, got = apply(layer, xv)
    close(got, normalize_ref(xv.astype(np.float64), (1,), 0.75 * mean, 0.25 + 0.75 * var, 1.0, 0.0, 1e-3), 1e-4)


def test_frozen_batch_normalization_runs_in_inference_mode(rng):
    xv = rng.standard_normal((4, 3)).astype(np.float32)
    layer = BatchNormalization(trainable=False)
    x = placeholder_for(xv)
    with building(True) as ctx:
        y = layer(x)
    assert not ctx.updates and layer.trainable_weights == []
    close(gc.function([x], y)(xv), xv / np.sqrt(1 + 1e-3))


def test_batch_normalization_training_call_without_a_context():
    layer = BatchNormalization()
    with pytest.raises(ArgumentError, match=r"BatchNormalization '.*': a training-mode call needs") as err:
        layer(gc.placeholder("float32", (None, 3)), training=True)
    assert HERE in str(err.value)


# ---- LayerNormalization -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, axis, center, scale", [
    ((3, 5), -1, True, True),
    ((2, 4, 6), -1, True, False),
    ((2, 3, 4, 2), (1, 2, 3), False, True),
    ((2, 3, 4, 2), (-2, 1), True, True),
])
def test_layer_normalization(rng, shape, axis, center, scale):
    xv = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    layer = LayerNormalization(axis=axis, center=center, scale=scale)
    layer(placeholder_for(xv))
    w = randomize(layer, rng)
    axes = tuple(sorted(a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))))
    assert [n for n, _ in layer.named_weights] == ["gamma"] * scale + ["beta"] * center
    for var in layer.weights:
        assert var.shape == tuple(shape[a] for a in axes)
    mean, var = moments_ref(xv, axes)
    want = normalize_ref(xv.astype(np.float64), axes, mean, var, w.get("gamma", 1.0), w.get("beta", 0.0), 1e-3)
    with building(True) as ctx:
        y_train = layer(placeholder_for(xv))
    assert not ctx.updates and y_train.shape == (None, *shape[1:])
    y, got = apply(layer, xv)
    assert y.shape == (None, *shape[1:])
    close(got, want, 1e-4)


def test_layer_normalization_default_weights(rng):
    xv = rng.standard_normal((4, 6)).astype(np.float32)
    _, got = apply(LayerNormalization(epsilon=1e-5), xv)
    close(got, (xv - xv.mean(1, keepdims=True)) / np.sqrt(xv.var(1, keepdims=True) + 1e-5), 1e-4)


# ---- Embedding ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, shape", [("int32", (2, 3)), ("int64", (5,)), ("uint8", (2, 2, 3))])
def test_embedding(rng, dtype, shape):
    ids = rng.integers(0, 7, shape).astype(dtype)
    layer = Embedding(7, 4)
    y, got = apply(layer, ids)
    table = layer.embeddings.value
    assert layer.embeddings.shape == (7, 4) and y.dtype == np.float32
    assert np.abs(table).max() <= 0.05 and table.std() > 0.01     # Keras's "uniform": U(-0.05, 0.05)
    assert y.shape == (None, *shape[1:], 4)
    np.testing.assert_array_equal(got, table[ids])


def test_embedding_input_length_gives_a_static_input_shape():
    layer = Embedding(10, 3, input_length=5)
    assert layer.input_shape_hint == (5,) and layer.input_dtype == "int64"
    assert layer(gc.placeholder("int64", (None, 5))).shape == (None, 5, 3)
    with pytest.raises(ShapeError, match=r"Embedding '.*': was given input_length=5") as err:
        Embedding(10, 3, input_length=5)(gc.placeholder("int64", (None, 4)))
    assert HERE in str(err.value)


def test_embedding_id_out_of_range_fails_at_run_time():
    ids = gc.placeholder("int64", (None,))
    f = gc.function([ids], Embedding(3, 2)(ids))
    with pytest.raises(ExecutionError):
        f(np.array([0, 3], np.int64))


# ---- gradients: gc.grad against central finite differences in float64 ---------------------------------

def check_layer_grad(layer: Layer, xv: np.ndarray, rng: np.random.Generator, train: bool = False,
                     wrt_input: bool = True, samples: int = 12) -> None:
    """``d sum(layer(x) * r) / d (x, weights)`` from gc.grad against central differences, at up to
    ``samples`` entries of each."""
    x = placeholder_for(xv)
    if train:
        with building(True):
            y = layer(x)
    else:
        y = layer(x)
    r = rng.standard_normal((xv.shape[0], *y.shape[1:]))
    loss = gc.sum(y * gc.constant(r))
    params = layer.trainable_weights
    targets = ([x] if wrt_input else []) + params
    f = gc.function([x], [loss, *gc.grad(loss, targets)])
    values = f(xv)
    grads = values[1:]
    eps = 1e-6

    def loss_at(xval: np.ndarray) -> float:
        return float(f(xval)[0])

    checks = []  # (analytic, get, set) per sampled entry
    if wrt_input:
        for idx in rng.choice(xv.size, min(samples, xv.size), replace=False):
            def at(delta: float, idx: int = idx) -> float:
                xp = xv.copy()
                xp.flat[idx] += delta
                return loss_at(xp)
            checks.append((grads[0].flat[idx], at))
    for var, g in zip(params, grads[1:] if wrt_input else grads):
        base = var.value
        for idx in rng.choice(base.size, min(samples, base.size), replace=False):
            def at(delta: float, idx: int = idx, var: gc.Variable = var, base: np.ndarray = base) -> float:
                vp = base.copy()
                vp.flat[idx] += delta
                var.assign(vp)
                try:
                    return loss_at(xv)
                finally:
                    var.assign(base)
            checks.append((g.flat[idx], at))
    assert checks
    for analytic, at in checks:
        numeric = (at(eps) - at(-eps)) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)


def test_conv2d_gradient(rng):
    layer = Conv2D(3, (3, 2), strides=(2, 1), padding="same", activation="tanh", dtype="float64")
    xv = rng.standard_normal((2, 2, 5, 4))
    layer(placeholder_for(xv))
    randomize(layer, rng)
    check_layer_grad(layer, xv, rng)


def test_batch_normalization_gradient_in_training(rng):
    layer = BatchNormalization(dtype="float64")
    xv = rng.standard_normal((3, 2, 2, 3)) * 2 + 1
    layer(placeholder_for(xv))
    randomize(layer, rng, positive=("gamma", "moving_variance"))
    check_layer_grad(layer, xv, rng, train=True)
    check_layer_grad(layer, xv, rng, train=False)


def test_layer_normalization_gradient(rng):
    layer = LayerNormalization(axis=(1, 2), dtype="float64")
    xv = rng.standard_normal((3, 2, 4))
    layer(placeholder_for(xv))
    randomize(layer, rng)
    check_layer_grad(layer, xv, rng)


@pytest.mark.parametrize("layer", [MaxPool2D(3, strides=2, padding="same", dtype="float64"),
                                   AvgPool2D((2, 3), strides=(1, 2), padding="same", dtype="float64"),
                                   GlobalMaxPooling2D(dtype="float64"), GlobalAveragePooling2D(dtype="float64")],
                         ids=lambda layer: type(layer).__name__)
def test_pooling_gradient(rng, layer):
    check_layer_grad(layer, rng.standard_normal((2, 2, 5, 4)), rng, samples=20)


def test_embedding_gradient_adds_repeated_ids(rng):
    layer = Embedding(5, 3, dtype="float64")
    ids = np.array([[0, 2, 2], [4, 0, 2]], np.int64)
    check_layer_grad(layer, ids, rng, wrt_input=False, samples=15)
    x = placeholder_for(ids)
    (g,) = gc.grad(gc.sum(layer(x)), [layer.embeddings])
    want = np.zeros((5, 3))
    np.add.at(want, ids.reshape(-1), 1.0)
    np.testing.assert_array_equal(gc.function([x], g)(ids), want)


# ---- in a model ----------------------------------------------------------------------------------------

def test_layers_train_in_a_sequential_model(rng):
    import graphc.nn as nn

    nn.set_random_seed(0)
    x = rng.standard_normal((8, 2, 6, 6)).astype(np.float32)
    labels = rng.integers(0, 3, 8)
    model = nn.Sequential([nn.Input((2, 6, 6)), Conv2D(3, 3, padding="same", activation="relu"),
                           BatchNormalization(momentum=0.5), MaxPool2D(), GlobalAveragePooling2D(), nn.Dense(3)])
    model.compile(optimizer=gc.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.fit(x, labels, epochs=1, batch_size=8, shuffle=False, verbose=0)
    bn = model.layers[1]
    assert np.all(bn.moving_mean.value != 0) and np.all(bn.moving_variance.value != 1)
    assert model.predict(x).shape == (8, 3)
    ids = rng.integers(0, 10, (4, 5))
    text = nn.Sequential([Embedding(10, 4, input_length=5), LayerNormalization(), nn.Flatten(), nn.Dense(2)])
    assert text.inputs[0].dtype == np.int64 and text.outputs[0].shape == (None, 2)
    text.compile(optimizer="sgd", loss="mse")
    before = text.layers[0].embeddings.value
    text.fit(ids, np.ones((4, 2), np.float32), epochs=1, verbose=0)
    changed = np.any(text.layers[0].embeddings.value != before, axis=1)
    np.testing.assert_array_equal(changed, np.isin(np.arange(10), ids))   # only the rows looked up move


# ---- errors: they name the layer and the user's line -------------------------------------------------

def _raises(cls: type, pattern: str, fn: Any) -> None:
    with pytest.raises(cls, match=pattern) as err:
        fn()
    assert HERE in str(err.value), str(err.value)


def test_wrong_rank():
    _raises(ShapeError, r"Conv2D 'c': expected an input of rank 4 .*got .* rank 3",
            lambda: Conv2D(2, 3, name="c")(gc.placeholder("float32", (None, 3, 8))))
    _raises(ShapeError, r"MaxPooling2D '.*': expected an input of rank 4",
            lambda: MaxPool2D()(gc.placeholder("float32", (None, 8))))
    _raises(ShapeError, r"GlobalAveragePooling2D '.*': expected an input of rank 4",
            lambda: GlobalAveragePooling2D()(gc.placeholder("float32", (None, 2, 3, 4, 5))))
    _raises(ShapeError, r"BatchNormalization '.*': needs inputs with a batch axis and a feature axis",
            lambda: BatchNormalization()(gc.placeholder("float32", (None,))))
    _raises(ShapeError, r"LayerNormalization '.*': axis 2 is out of range for inputs of rank 2",
            lambda: LayerNormalization(axis=2)(gc.placeholder("float32", (None, 3))))


def test_channels_mismatch_on_second_call():
    conv = Conv2D(2, 3, name="conv_a")
    conv(gc.placeholder("float32", (None, 3, 8, 8)))
    assert conv(gc.placeholder("float32", (5, 3, 6, 7))).shape == (5, 2, 4, 5)   # other sizes are fine
    _raises(ShapeError, r"Conv2D 'conv_a': was built for inputs of shape \[\?, 3, 8, 8\]",
            lambda: conv(gc.placeholder("float32", (None, 4, 8, 8))))
    bn = BatchNormalization(name="bn_a")
    bn(gc.placeholder("float32", (None, 3, 4, 4)))
    _raises(ShapeError, r"BatchNormalization 'bn_a': was built for inputs of shape",
            lambda: bn(gc.placeholder("float32", (None, 2, 4, 4))))
    ln = LayerNormalization(name="ln_a")
    ln(gc.placeholder("float32", (None, 6)))
    _raises(ShapeError, r"LayerNormalization 'ln_a': was built for inputs of shape",
            lambda: ln(gc.placeholder("float32", (None, 5))))


def test_unknown_sizes_and_windows_that_do_not_fit():
    _raises(ShapeError, r"Conv2D '.*': needs the number of input channels",
            lambda: Conv2D(2, 3)(gc.placeholder("float32", (None, None, 8, 8))))
    _raises(ShapeError, r"Conv2D '.*': kernel_size \(5, 5\) does not fit .* axis 2 has size 4 < 5",
            lambda: Conv2D(2, 5)(gc.placeholder("float32", (None, 1, 4, 9))))
    _raises(ShapeError, r"MaxPooling2D '.*': pool_size \(3, 3\) does not fit",
            lambda: MaxPool2D(3)(gc.placeholder("float32", (None, 1, 9, 2))))
    _raises(ShapeError, r"LayerNormalization '.*': needs the size of axis 2",
            lambda: LayerNormalization()(gc.placeholder("float32", (None, 3, None))))
    # "same" padding always fits
    assert Conv2D(2, 5, padding="same")(gc.placeholder("float32", (None, 1, 4, 9))).shape == (None, 2, 4, 9)


@pytest.mark.parametrize("make, pattern", [
    (lambda: Conv2D(0, 3), r"Conv2D '\w+': filters must be a positive integer, got 0"),
    (lambda: Conv2D(2.5, 3), r"filters must be a positive integer"),
    (lambda: Conv2D(2, (3,)), r"Conv2D '.*': kernel_size must be a positive integer or a pair"),
    (lambda: Conv2D(2, 3, strides=0), r"strides must be a positive integer or a pair"),
    (lambda: Conv2D(2, 3, padding="causal"), r"padding must be 'valid' or 'same', got 'causal'"),
    (lambda: Conv2D(2, 3, data_format="channels_last"), r"channels_last' is not supported.*NCHW"),
    (lambda: Conv2D(2, 3, dilation_rate=2), r"dilation_rate=2 is not supported yet"),
    (lambda: Conv2D(2, 3, groups=2), r"groups=2 is not supported yet"),
    (lambda: Conv2D(2, 3, activation="nope"), r"Conv2D '.*': unknown activation 'nope'"),
    (lambda: Conv2D(2, 3, kernel_regularizer="l3"), r"Conv2D '.*': unknown regularizer 'l3'"),
    (lambda: BatchNormalization(moving_variance_initializer="nope"), r"unknown initializer 'nope'"),
    (lambda: LayerNormalization(epsilon="small"), r"LayerNormalization '.*': epsilon must be a positive number"),
    (lambda: MaxPool2D((2, 0)), r"MaxPooling2D '.*': pool_size must be a positive integer"),
    (lambda: AvgPool2D(2, strides=(1, 2, 3)), r"AveragePooling2D '.*': strides must be"),
    (lambda: AvgPool2D(padding=1), r"padding must be 'valid' or 'same'"),
    (lambda: GlobalMaxPooling2D(data_format="NHWC"), r"data_format must be 'channels_first'"),
    (lambda: BatchNormalization(momentum=1.5), r"BatchNormalization '.*': momentum must be a number in \[0.0, 1.0\]"),
    (lambda: BatchNormalization(epsilon=0), r"epsilon must be a positive number, got 0"),
    (lambda: BatchNormalization(axis="1"), r"axis must be an int or a non-empty tuple of ints"),
    (lambda: LayerNormalization(axis=()), r"LayerNormalization '.*': axis must be an int or a non-empty tuple"),
    (lambda: Embedding(0, 3), r"Embedding '\w+': input_dim must be a positive integer, got 0"),
    (lambda: Embedding(3, -1), r"Embedding '\w+': output_dim must be a positive integer"),
    (lambda: Embedding(3, 2, mask_zero=True), r"Embedding '.*': mask_zero=True is not supported"),
    (lambda: Embedding(3, 2, embeddings_initializer="nope"), r"Embedding '.*': unknown initializer 'nope'"),
])
def test_bad_arguments(make, pattern):
    with pytest.raises(ArgumentError, match=pattern) as err:
        make()
    assert HERE in str(err.value), str(err.value)


def test_repeated_axis_and_axis_out_of_range():
    _raises(ArgumentError, r"BatchNormalization '.*': axis \(1, -3\) repeats an axis",
            lambda: BatchNormalization(axis=(1, -3))(gc.placeholder("float32", (None, 3, 4, 4))))
    _raises(ShapeError, r"BatchNormalization '.*': axis 3 is out of range for inputs of rank 2",
            lambda: BatchNormalization(axis=3)(gc.placeholder("float32", (None, 3))))


def test_float_input_to_embedding():
    layer = Embedding(5, 2, name="emb")
    _raises(DTypeError, r"Embedding 'emb': expects integer ids, got .* of dtype float32",
            lambda: layer(gc.placeholder("float32", (None, 3))))
    _raises(DTypeError, r"Embedding 'emb': expects integer ids, got .* of dtype bool",
            lambda: layer(gc.placeholder("bool", (None, 3))))
