"""The layers of ``graphc.nn`` (Keras names and arguments; images NCHW, kernels OIHW)."""

from graphc.nn.layers.base import CallRecord, Input, Layer, producer_record
from graphc.nn.layers.conv import (
    AveragePooling2D,
    AvgPool2D,
    Conv2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPool2D,
    MaxPooling2D,
)
from graphc.nn.layers.core import Activation, Add, Concatenate, Dense, Dropout, Flatten, Lambda, Reshape
from graphc.nn.layers.embedding import Embedding
from graphc.nn.layers.normalization import BatchNormalization, LayerNormalization
from graphc.nn.layers.recurrent import GRU, LSTM, SimpleRNN

__all__ = ["GRU", "LSTM", "Activation", "Add", "AveragePooling2D", "AvgPool2D", "BatchNormalization", "CallRecord",
           "Concatenate", "Conv2D", "Dense", "Dropout", "Embedding", "Flatten", "GlobalAveragePooling2D",
           "GlobalMaxPooling2D", "Input", "Lambda", "Layer", "LayerNormalization", "MaxPool2D", "MaxPooling2D",
           "Reshape", "SimpleRNN", "producer_record"]
