"""Graph IR: tensors (nodes), the op registry, shapes, and graphs."""

from graphc.ir.build import as_tensor, constant, make_node
from graphc.ir.graph import Graph, topological_order
from graphc.ir.location import SourceLocation
from graphc.ir.registry import REGISTRY, AbstractValue, OpDef, get_op, register
from graphc.ir.tensor import Tensor

__all__ = [
    "REGISTRY",
    "AbstractValue",
    "Graph",
    "OpDef",
    "SourceLocation",
    "Tensor",
    "as_tensor",
    "constant",
    "get_op",
    "make_node",
    "register",
    "topological_order",
]
