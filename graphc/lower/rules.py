"""Every lowering rule, registered by importing the module that holds it."""

from graphc.lower import control, conv, elementwise, fused, gather, index_maps, linalg, nn, reduce, shape  # noqa: F401

__all__: list[str] = []
