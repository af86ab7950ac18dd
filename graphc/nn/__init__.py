"""``graphc.nn``: Keras-style layers and models on graphc's graphs.

    import graphc.nn as nn
    model = nn.Sequential([nn.Dense(64, activation="relu", input_shape=(784,)), nn.Dense(10)])
    model.compile(optimizer="adam", loss=nn.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=5, batch_size=32, validation_split=0.1)

See docs/nn.md.
"""

from graphc.nn import activations, callbacks, initializers, losses, metrics, optimizers, regularizers
from graphc.nn.layers import (
    GRU,
    LSTM,
    Activation,
    Add,
    AveragePooling2D,
    AvgPool2D,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    Input,
    Lambda,
    Layer,
    LayerNormalization,
    MaxPool2D,
    MaxPooling2D,
    Reshape,
    SimpleRNN,
)
from graphc.nn.models import Model, Sequential
from graphc.nn.random import set_random_seed

__all__ = ["GRU", "LSTM", "Activation", "Add", "AveragePooling2D", "AvgPool2D", "BatchNormalization", "Concatenate",
           "Conv2D", "Dense", "Dropout", "Embedding", "Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
           "Input", "Lambda", "Layer", "LayerNormalization", "MaxPool2D", "MaxPooling2D", "Model", "Reshape",
           "Sequential", "SimpleRNN", "activations", "callbacks", "initializers", "losses", "metrics", "optimizers",
           "regularizers", "set_random_seed"]
