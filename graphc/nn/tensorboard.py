"""A graphc graph as a TensorFlow ``GraphDef``, the protocol buffer TensorBoard's graph dashboard reads.

:func:`graph_def` converts a :class:`~graphc.ir.graph.Graph` (e.g. ``model.train_function.graph``, the
optimised training step): one ``NodeDef`` per node, with its name (name scopes kept, ``"dense/matmul"``,
so TensorBoard groups the nodes of a scope into one box), its op, its inputs by name and attributes
``dtype``, ``_output_shapes`` (the shapes TensorBoard draws on the edges; ``-1`` for a dimension known
only at run time), ``shape`` for placeholders and variables, and the node's other attributes as text.
:func:`write_graph` adds it to a ``tensorboardX.SummaryWriter``'s event file.

Needs ``tensorboardX`` (``pip install "graphc[tensorboard]"``), imported only when this module is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.errors import ArgumentError
from graphc.ir.graph import Graph

try:
    from tensorboardX.proto.attr_value_pb2 import AttrValue
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.graph_pb2 import GraphDef
    from tensorboardX.proto.node_def_pb2 import NodeDef
    from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboardX.proto.versions_pb2 import VersionDef
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f'graphc.nn.tensorboard needs tensorboardX: pip install "graphc[tensorboard]" '
                      f"(or tensorboardX): {exc}") from None

# TensorFlow's DataType enum (tensorflow/core/framework/types.proto); tensorboardX's copy of the enum
# lacks the unsigned 32 and 64 bit types, whose numbers are TensorFlow's
_DATA_TYPES = {
    "float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int16": 5, "int8": 6, "complex64": 8, "int64": 9,
    "bool": 10, "bfloat16": 14, "uint16": 17, "complex128": 18, "float16": 19, "uint32": 22, "uint64": 23,
}
_MAX_ATTR_TEXT = 200  # attribute values (a constant's array, a fused kernel) are shown as text up to this long


def _data_type(dtype: Any) -> int:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    return _DATA_TYPES.get(name, 0)  # 0: DT_INVALID


def _shape_proto(shape: Any) -> TensorShapeProto:
    if shape is None:
        return TensorShapeProto(unknown_rank=True)
    dims = [d if isinstance(d, (int, np.integer)) and not isinstance(d, bool) else -1 for d in shape]
    return TensorShapeProto(dim=[TensorShapeProto.Dim(size=int(d)) for d in dims])


def _attr_text(value: Any) -> str:
    try:
        if isinstance(value, np.ndarray):
            text = np.array2string(value, threshold=20, edgeitems=3, separator=", ")
        elif isinstance(value, np.dtype):
            text = value.name
        else:
            text = repr(value)
    except Exception:  # an attribute whose repr fails must not stop the graph being written
        text = f"<{type(value).__name__}>"
    return text if len(text) <= _MAX_ATTR_TEXT else text[:_MAX_ATTR_TEXT - 3] + "..."


def _unique(name: str, used: set[str]) -> str:
    candidate, k = name, 1
    while candidate in used:
        candidate, k = f"{name}_{k}", k + 1
    used.add(candidate)
    return candidate


def graph_def(graph: Graph) -> GraphDef:
    """``graph`` as a TensorFlow ``GraphDef`` (tensorboardX's protocol buffer class) for TensorBoard.

    Each node becomes a ``NodeDef`` named as the node is (a name scope's nodes keep their
    ``"scope/name"`` names), with the node's op, its inputs by name, ``dtype`` and ``_output_shapes``
    attributes (one shape per output of a multi-output kernel), ``shape`` on placeholders and
    variables, and every other attribute of the node as a string.  Names are unique in a graph already;
    one that were not would get a ``_1`` suffix.
    """
    if not isinstance(graph, Graph):
        raise ArgumentError(f"graph_def: expected a graphc Graph (e.g. a compiled function's .graph), "
                            f"got {type(graph).__name__}")
    names: dict[int, str] = {}
    used: set[str] = set()
    nodes = []
    for node in graph.nodes:
        name = _unique(node.name, used)
        names[node.id] = name
        outputs = node.parts if node.parts is not None else (node,)
        attr = {
            "dtype": AttrValue(type=_data_type(node.dtype)),  # type: ignore[arg-type]
            "_output_shapes": AttrValue(list=AttrValue.ListValue(shape=[_shape_proto(o.shape) for o in outputs])),
        }
        if node.op in ("placeholder", "variable"):
            attr["shape"] = AttrValue(shape=_shape_proto(node.shape))
        for key, value in node.attrs.items():
            if key not in ("dtype", "shape"):
                attr[key] = AttrValue(s=_attr_text(value).encode("utf-8"))
        nodes.append(NodeDef(name=name, op=node.op, input=[names[i.id] for i in node.inputs], attr=attr))
    return GraphDef(node=nodes, versions=VersionDef(producer=22))


def write_graph(writer: Any, graph: Graph, step: int | None = None) -> None:
    """Add ``graph`` (converted by :func:`graph_def`) to a ``tensorboardX.SummaryWriter``'s event file, as
    the graph TensorBoard's graph dashboard shows for that run."""
    event = Event(graph_def=graph_def(graph).SerializeToString())
    writer.file_writer.add_event(event, step)
