"""Embedding: integer ids to rows of a trained table, with Keras's names and arguments."""

from __future__ import annotations

from typing import Any

from graphc.errors import ArgumentError, DTypeError, ShapeError
from graphc.ir.location import user_location
from graphc.ir.tensor import Tensor
from graphc.nn import initializers, regularizers
from graphc.nn.layers.base import Layer
from graphc.nn.layers.conv import checked_argument
from graphc.nn.layers.core import check_positive_int
from graphc.ops.shape import take


class Embedding(Layer):
    """Rows of a table for integer ids: ``Embedding(input_dim, output_dim, embeddings_initializer="uniform",
    embeddings_regularizer=None, mask_zero=False, input_length=None)``.

    Ids of any shape (any integer dtype) in ``[0, input_dim)`` -> ``shape + (output_dim,)``; the table
    ``embeddings`` is ``(input_dim, output_dim)``, initialised by default uniform in ``[-0.05, 0.05)``
    (Keras's ``"uniform"``).  The gradient with respect to the table adds each id's gradient to its row.

    Differences from Keras: floating-point (or bool) ids raise a DTypeError instead of being cast to
    int32; an id outside ``[0, input_dim)`` raises an ExecutionError when the graph runs (negative ids
    count from the end, as ``np.take``); ``mask_zero=True`` is not supported (graphc has no masks).
    ``input_length`` (Keras 2) gives a Sequential model its input shape ``(None, input_length)`` and is
    checked against axis 1 of the ids.
    """

    min_ndim = 1
    autocast = False
    input_dtype = "int64"  # what a Sequential model starting with this layer is fed

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 embeddings_regularizer: Any = None, mask_zero: bool = False, input_length: int | None = None,
                 **kwargs: Any) -> None:
        if input_length is not None and kwargs.get("input_shape") is None:
            kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        self.input_dim = check_positive_int(self, "input_dim", input_dim)
        self.output_dim = check_positive_int(self, "output_dim", output_dim)
        self.input_length = (None if input_length is None else
                             check_positive_int(self, "input_length", input_length))
        if mask_zero:
            raise self.error(ArgumentError, "mask_zero=True is not supported (graphc has no masks); use "
                             "mask_zero=False and mask the ids yourself")
        self.mask_zero = False
        checked_argument(self, initializers.get, embeddings_initializer)
        checked_argument(self, regularizers.get, embeddings_regularizer)
        self.embeddings_initializer = embeddings_initializer
        self.embeddings_regularizer = embeddings_regularizer

    def build(self, input_shape: Any) -> None:
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer, self.embeddings_regularizer)

    def call(self, inputs: Tensor, training: bool = False) -> Tensor:
        if inputs.dtype.kind not in "iu":
            raise self.error(DTypeError, f"expects integer ids, got {inputs.describe()} of dtype "
                             f"{inputs.dtype.name} (cast them with gc.cast(ids, 'int64'))", user_location())
        if self.input_length is not None:
            length = inputs.shape[1] if inputs.ndim >= 2 else None
            if inputs.ndim < 2 or (length is not None and length != self.input_length):
                raise self.error(ShapeError, f"was given input_length={self.input_length}, got ids "
                                 f"{inputs.describe()} (axis 1 must have size {self.input_length})", user_location())
        return take(self.embeddings, inputs, axis=0)


__all__ = ["Embedding"]
