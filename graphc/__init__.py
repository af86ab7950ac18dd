"""graphc: a define-then-run symbolic graph compiler.

Build a graph from placeholders, variables and ops, then run it with ``gc.Session`` or compile it
into a callable with ``gc.function``.  See ``docs/`` and the public contract in API.md.
"""

from graphc import aot, dtypes, errors, optimizers, testing
from graphc.autodiff import grad
from graphc.checkpoint import read_checkpoint, restore_checkpoint, save_checkpoint
from graphc.control import cond, scan, while_loop
from graphc.dtypes import bool_, float32, float64, int8, int16, int32, int64, uint8
from graphc.errors import (
    AotError,
    ArgumentError,
    CheckpointError,
    DeviceUnavailableError,
    DTypeError,
    ExecutionError,
    FeedError,
    GraphcError,
    GraphError,
    GraphFileError,
    ShapeError,
)
from graphc.graphfile import load_graph, save_graph
from graphc.inspect import dprint, report, to_dot, to_networkx
from graphc.ir import Graph, Tensor
from graphc.ir.scope import name_scope
from graphc.ops import *  # noqa: F403
from graphc.ops import __all__ as _ops_all
from graphc.passes import optimize
from graphc.runtime import Function, Session, function
from graphc.version import __version__ as __version__

__all__ = [
    *_ops_all,
    "AotError", "ArgumentError", "DTypeError", "ExecutionError", "FeedError", "Function", "Graph", "GraphError",
    "GraphcError", "Session", "ShapeError", "Tensor", "aot", "bool_", "dprint", "dtypes", "errors", "float32",
    "testing", "float64", "function", "grad", "optimize", "int8", "int16", "int32", "int64", "optimizers", "uint8",
    "report", "to_dot", "to_networkx", "cond", "scan", "while_loop",
    "DeviceUnavailableError", "GraphFileError", "load_graph", "save_graph", "name_scope",
    "CheckpointError", "read_checkpoint", "restore_checkpoint", "save_checkpoint",
]
