"""Reading graph files: ``load_graph``.  Loading never runs code from the file (no pickle, no eval):
every field is checked, and every node is rebuilt through its op's shape/dtype rule."""

from __future__ import annotations

import json
import math
import os
import zipfile
from typing import Any

import numpy as np

from graphc.control.layout import split_inputs
from graphc.errors import ArgumentError, GraphcError, GraphFileError
from graphc.graphfile.format import (
    BODIES_VERSION,
    CHOICES,
    DTYPE_NAMES,
    ENTRY_ERRORS,
    FLOAT_WORDS,
    FORMAT,
    GRAPH_ENTRY,
    INT64,
    MAX_DEPTH,
    MAX_JSON_BYTES,
    READ_ERRORS,
    VERSION,
)
from graphc.ir.body import Body
from graphc.ir.build import make_node
from graphc.ir.location import SourceLocation, located_at
from graphc.ir.registry import REGISTRY, AbstractValue, OpDef
from graphc.ir.shapes import format_shape
from graphc.ir.tensor import Tensor
from graphc.ops.kernel import KERNEL_KINDS, Kernel
from graphc.ops.state import Variable


def load_graph(path: str | os.PathLike[str]) -> tuple[list[Tensor], list[Tensor]]:
    """Read a graph file written by :func:`save_graph`: ``(inputs, outputs)``, lists of new tensors.

    Placeholders become new placeholders, Variables new Variables holding the saved values, and
    every other node is rebuilt through its op (its shape and dtype rules run again), with the
    saved names (made unique if taken) and the saved source lines.  Loaded inside a
    ``gc.name_scope``, each name gets that scope as its prefix, once (as ``import_graph_def``);
    the inner nodes of fused kernels and of control-flow bodies keep their exact names.  A file that
    is not a graph file, is damaged or truncated, or was written by a newer graphc raises
    :class:`GraphFileError`.
    """
    name = os.fspath(path)
    try:
        archive = zipfile.ZipFile(name)
    except FileNotFoundError:
        raise GraphFileError(f"cannot load graph file '{name}': no such file") from None
    except zipfile.BadZipFile as exc:
        raise GraphFileError(f"cannot load graph file '{name}': not a graph file, or a damaged or truncated one "
                             f"(not a readable zip archive: {exc})") from None
    except READ_ERRORS as exc:
        raise GraphFileError(f"cannot load graph file '{name}': unreadable ({type(exc).__name__}: {exc})") from None
    try:
        with archive:
            return Reader(name, archive).load()
    except GraphcError:
        raise
    except READ_ERRORS as exc:
        raise GraphFileError(f"cannot load graph file '{name}': damaged ({type(exc).__name__}: {exc})") from None


class Reader:
    def __init__(self, path: str, archive: zipfile.ZipFile) -> None:
        self.path = path
        self.archive = archive
        self.table: list[tuple[str, np.dtype, tuple[int, ...]]] = []
        self.arrays: list[np.ndarray] = []
        self.kernels: list[Kernel] = []
        self.bodies: list[Body] = []
        self.version = VERSION  # the file's, once read

    def fail(self, message: str) -> GraphFileError:
        return GraphFileError(f"cannot load graph file '{self.path}': {message}")

    # -- the archive and graph.json ----------------------------------------------------------
    def load(self) -> tuple[list[Tensor], list[Tensor]]:
        names = self.archive.namelist()
        if len(names) != len(set(names)):
            raise self.fail("the archive holds two entries with the same name")
        if GRAPH_ENTRY not in names:
            raise self.fail(f"no '{GRAPH_ENTRY}' entry: not a graphc graph file")
        info = self.archive.getinfo(GRAPH_ENTRY)
        if info.file_size > MAX_JSON_BYTES:
            raise self.fail(f"'{GRAPH_ENTRY}' is implausibly large ({info.file_size} bytes)")
        try:
            data = self.archive.read(info)  # zipfile checks the CRC-32
        except ENTRY_ERRORS as exc:
            raise self.fail(f"entry '{GRAPH_ENTRY}' is damaged ({exc})") from None
        try:
            document = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise self.fail(f"'{GRAPH_ENTRY}' is not valid JSON ({exc})") from None
        doc = self.obj(document, GRAPH_ENTRY)
        if doc.get("format") != FORMAT:
            raise self.fail(f"not a graphc graph file ('format' is {doc.get('format')!r}, expected {FORMAT!r})")
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self.fail(f"'version' must be a positive integer, got {version!r}")
        if version > VERSION:
            written = doc.get("graphc_version")
            by = f" (written by graphc {written})" if isinstance(written, str) else ""
            raise self.fail(f"format version {version}{by} is newer than this graphc reads (versions up to "
                            f"{VERSION}); upgrade graphc to load it")
        self.version = version
        self.read_table(self.field(doc, "arrays", list, GRAPH_ENTRY))
        for entry, _, _ in self.table:
            if entry not in names:
                raise self.fail(f"missing entry {entry!r}")
        self.arrays = [self.read_npy(*item) for item in self.table]
        declared = {GRAPH_ENTRY} | {entry for entry, _, _ in self.table}
        extra = sorted(set(names) - declared)
        if extra:
            raise self.fail(f"unexpected entry {extra[0]!r} (a graph file holds only {GRAPH_ENTRY} and the "
                            "arrays it lists)")
        for k, kernel in enumerate(self.field(doc, "kernels", list, GRAPH_ENTRY)):
            self.kernels.append(self.read_kernel(kernel, f"kernel {k}"))
        if version >= BODIES_VERSION:
            for k, body in enumerate(self.field(doc, "bodies", list, GRAPH_ENTRY)):
                self.bodies.append(self.read_body(body, f"body {k}"))
        nodes = self.build_nodes(self.field(doc, "nodes", list, GRAPH_ENTRY), "node")
        inputs = [nodes[k] for k in self.indices(doc, "inputs", len(nodes), GRAPH_ENTRY)]
        for k, t in enumerate(inputs):
            if t.op != "placeholder":
                raise self.fail(f"input {k} is node '{t.name}' ({t.op}), not a placeholder")
        if len({t.id for t in inputs}) != len(inputs):
            raise self.fail("an input is listed twice")
        outputs = [nodes[k] for k in self.indices(doc, "outputs", len(nodes), GRAPH_ENTRY)]
        return inputs, outputs

    def read_table(self, table: list[Any]) -> None:
        entries: set[str] = set()
        for k, item in enumerate(table):
            where = f"array {k}"
            item = self.obj(item, where)
            entry = self.field(item, "entry", str, where)
            if entry == GRAPH_ENTRY or entry in entries:
                raise self.fail(f"{where}: entry {entry!r} is used twice")
            entries.add(entry)
            dtype = self.dtype(self.field(item, "dtype", str, where), where)
            shape = self.shape(self.field(item, "shape", list, where), where, allow_unknown=False)
            self.table.append((entry, dtype, shape))  # type: ignore[arg-type]

    def array(self, number: Any, where: str) -> np.ndarray:
        if not _is_int(number) or not 0 <= number < len(self.table):
            raise self.fail(f"{where}: {number!r} is not an index into the arrays table "
                            f"({len(self.table)} arrays)")
        return self.arrays[number]

    def read_npy(self, entry: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        """One ``.npy`` entry, checked against the table before its data is read (never unpickled)."""
        try:
            return self._read_npy(entry, dtype, shape)
        except ENTRY_ERRORS as exc:
            raise self.fail(f"entry {entry!r} is damaged ({exc})") from None

    def _read_npy(self, entry: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        fmt = np.lib.format
        info = self.archive.getinfo(entry)
        with self.archive.open(info) as stream:
            try:
                version = fmt.read_magic(stream)
                if version == (1, 0):
                    stored_shape, fortran, stored = fmt.read_array_header_1_0(stream)
                elif version == (2, 0):
                    stored_shape, fortran, stored = fmt.read_array_header_2_0(stream)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
            except ValueError as exc:
                raise self.fail(f"entry {entry!r} is not a valid .npy array ({exc})") from None
            if stored.hasobject:
                raise self.fail(f"entry {entry!r} holds Python objects (a pickle); graph files never unpickle")
            if stored.newbyteorder("=") != dtype:
                raise self.fail(f"entry {entry!r} holds {stored}, but the arrays table says {dtype.name}")
            if tuple(stored_shape) != shape:
                raise self.fail(f"entry {entry!r} has shape {list(stored_shape)}, but the arrays table says "
                                f"{list(shape)}")
            size = math.prod(shape) * dtype.itemsize
            if info.file_size - stream.tell() != size:
                raise self.fail(f"entry {entry!r} holds {info.file_size - stream.tell()} bytes of data, "
                                f"expected {size}")
            data = stream.read()  # zipfile checks the CRC-32 here
        array = np.frombuffer(data, stored).reshape(shape, order="F" if fortran else "C")
        return np.array(array, dtype=dtype, order="C")

    def read_kernel(self, item: Any, where: str) -> Kernel:
        item = self.obj(item, where)
        kind = self.field(item, "kind", str, where)
        if kind not in KERNEL_KINDS:
            raise self.fail(f"{where}: unknown kernel kind {kind!r} (expected one of {', '.join(KERNEL_KINDS)})")
        nodes = self.build_nodes(self.field(item, "nodes", list, where), f"{where}, node", inner=True)
        params = [nodes[k] for k in self.indices(item, "params", len(nodes), where)]
        for k, p in enumerate(params):
            if p.op != "parameter" or p.attrs["index"] != k:
                raise self.fail(f"{where}: parameter {k} is '{p.name}' ({p.op} {dict(p.attrs).get('index')!r}), "
                                f"expected a parameter node with index {k}")
        outputs = [nodes[k] for k in self.indices(item, "outputs", len(nodes), where)]
        if not outputs:
            raise self.fail(f"{where}: a kernel needs at least one output")
        return Kernel(tuple(params), tuple(outputs), kind)

    def read_body(self, item: Any, where: str) -> Body:
        """One entry of the "bodies" table.  Which inputs its parameters may read depends on the node
        that runs it: that is checked with that node (``check_bodies``)."""
        item = self.obj(item, where)
        nodes = self.build_nodes(self.field(item, "nodes", list, where), f"{where}, node", inner=True)
        params = [nodes[k] for k in self.indices(item, "params", len(nodes), where)]
        for k, p in enumerate(params):
            if p.op != "parameter":
                raise self.fail(f"{where}: params[{k}] is '{p.name}' ({p.op}), not a parameter node")
        if len({p.id for p in params}) != len(params):
            raise self.fail(f"{where}: a parameter is listed twice in 'params'")
        outputs = [nodes[k] for k in self.indices(item, "outputs", len(nodes), where)]
        body = Body(tuple(params), tuple(outputs))
        listed = {p.id for p in params}
        for node in body.nodes:
            # running a body binds the parameters it lists: one it does not would have no value
            if node.op == "parameter" and node.id not in listed:
                raise self.fail(f"{where}: its outputs read parameter '{node.name}', which 'params' does not list")
        return body

    # -- nodes --------------------------------------------------------------------------------
    def build_nodes(self, items: list[Any], what: str, inner: bool = False) -> list[Tensor]:
        nodes: list[Tensor] = []
        for k, item in enumerate(items):
            where = f"{what} {k}"
            item = self.obj(item, where)
            op = self.field(item, "op", str, where)
            name = self.field(item, "name", str, where)
            where = f"{where} ('{name}', {op})"
            opdef = REGISTRY.get(op)
            if opdef is None:
                raise self.fail(f"{where}: unknown op {op!r} (not an op of this graphc)")
            raw_inputs = self.field(item, "inputs", list, where)
            for i in raw_inputs:
                if not _is_int(i) or not 0 <= i < k:
                    raise self.fail(f"{where}: input {i!r} is not the index of an earlier node")
            inputs = [nodes[i] for i in raw_inputs]
            attrs = {key: self.value(value, f"{where}, attribute {key!r}", 0)
                     for key, value in self.field(item, "attrs", dict, where).items()}
            self.check_choices(op, attrs, where)
            if "dtype" in attrs and not isinstance(attrs["dtype"], np.dtype):  # every op's 'dtype' is one
                raise self.fail(f"{where}: attribute 'dtype' must be a dtype ({{\"dtype\": name}}), got "
                                f"{_show(attrs['dtype'])}")
            dtype = self.dtype(self.field(item, "dtype", str, where), where)
            shape = self.shape(self.field(item, "shape", list, where), where, allow_unknown=True)
            location = self.location(item.get("location"), where)
            try:
                with located_at(location):
                    node = self.make(opdef, inputs, attrs, name, location, item, where, inner)
            except GraphFileError:
                raise
            except GraphcError as exc:
                raise self.fail(f"{where} does not rebuild: {exc}") from None
            except Exception as exc:  # an attribute an op's rule cannot use: the file is corrupt
                raise self.fail(f"{where} does not rebuild: {type(exc).__name__}: {exc}") from None
            if node.dtype != dtype or node.shape != shape:
                raise self.fail(f"{where}: the file says {dtype.name}{format_shape(shape)}, but rebuilt it is "
                                f"{node.type_str()}")
            nodes.append(node)
        return nodes

    def make(self, opdef: OpDef, inputs: list[Tensor], attrs: dict[str, Any], name: str,
             location: SourceLocation | None, item: dict[str, Any], where: str, inner: bool) -> Tensor:
        op = opdef.name
        if op in ("placeholder", "variable", "parameter"):
            self.check_source_attrs(attrs, where)
        if op == "parameter":
            index, weak = attrs.get("index"), attrs.get("weak", False)
            if not (_is_int(index) and 0 <= index <= INT64.max) or not isinstance(weak, bool):
                raise self.fail(f"{where}: a parameter needs attribute 'index' (an int >= 0) and, if it has one, "
                                f"'weak' (a bool); got index {_show(index)}, weak {_show(weak)}")
        if op in BODY_ATTRS:
            self.check_bodies(op, inputs, attrs, where)
        if op == "part" and not _is_int(attrs.get("index")):
            raise self.fail(f"{where}: a part needs attribute 'index' (an int), got {_show(attrs.get('index'))}")
        if op == "constant":
            value, weak = attrs.get("value"), attrs.get("weak")
            if not isinstance(value, np.ndarray) or not isinstance(weak, bool) or set(attrs) != {"value", "weak"}:
                raise self.fail(f"{where}: a constant needs attributes 'value' (an array) and 'weak' (a bool)")
            value.setflags(write=False)
        if op == "variable":
            if inputs:
                raise self.fail(f"{where}: a variable has no inputs")
            value = self.array(item.get("value"), f"{where}, value")
            trainable = item.get("trainable")
            if not isinstance(trainable, bool):
                raise self.fail(f"{where}: 'trainable' must be true or false, got {trainable!r}")
            if value.dtype != attrs["dtype"] or value.shape != attrs["shape"]:
                raise self.fail(f"{where}: the value is {value.dtype.name}{format_shape(value.shape)}, but the "
                                f"attributes say {attrs['dtype'].name}{format_shape(attrs['shape'])}")
            return Variable(value, name=name, dtype=value.dtype, trainable=trainable)
        if op == "fused":
            kernel = attrs.get("kernel")
            if isinstance(kernel, Kernel) and len(kernel.params) != len(inputs):
                raise self.fail(f"{where}: the kernel has {len(kernel.params)} parameters but the node has "
                                f"{len(inputs)} inputs")
        if op == "kernel_output":
            index, kernel = attrs.get("index"), attrs.get("kernel")
            if len(inputs) != 1 or inputs[0].op != "fused" or inputs[0].attrs["kernel"] is not kernel:
                raise self.fail(f"{where}: must read the fused node that runs its kernel")
            if not (_is_int(index) and 0 <= index < len(kernel.outputs)):  # type: ignore[union-attr]
                raise self.fail(f"{where}: output index {index!r} is out of range for its kernel")
        if not inner:
            return make_node(opdef, inputs, name=name, **attrs)
        return _inner_node(opdef, inputs, attrs, name, location)

    def check_bodies(self, op: str, inputs: list[Tensor], attrs: dict[str, Any], where: str) -> None:
        """The bodies of a control-flow node against its inputs and attributes, before its rule runs (the rule
        takes the node's structure as given, as gc.scan / gc.cond build it): each body is there, has the
        outputs the node uses, and each parameter reads an input the body has, of the type it says."""
        for key in BODY_ATTRS[op]:
            if key not in attrs:
                raise self.fail(f"{where}: missing attribute {key!r}")
            value = attrs[key]
            if not isinstance(value, Body) and not (op == "loop" and key == "cond" and value is None):
                raise self.fail(f"{where}: attribute {key!r} must be a body ({{\"body\": k}}), got {_show(value)}")
        if op == "loop":
            body_inputs = self.loop_body_inputs(inputs, attrs, where)
        else:
            if not inputs:
                raise self.fail(f"{where}: a cond node reads its predicate as input 0; it has no inputs")
            counts = [len(attrs[key].outputs) for key in BODY_ATTRS[op]]
            if counts[0] != counts[1] or not counts[0]:
                raise self.fail(f"{where}: the branches give {counts[0]} and {counts[1]} outputs; they must give "
                                "the same number, at least one")
            captured = [t.aval for t in inputs[1:]]
            body_inputs = {key: captured for key in BODY_ATTRS[op]}
        for key, avals in body_inputs.items():
            body = attrs[key]
            if body is None:
                continue
            for p in body.params:
                index = p.attrs["index"]
                if index >= len(avals):
                    raise self.fail(f"{where}: parameter '{p.name}' of its {key!r} reads input {index}, but that "
                                    f"body has {len(avals)} inputs")
                aval = avals[index]
                if p.dtype != aval.dtype or not _shapes_agree(p.shape, aval.shape):
                    raise self.fail(f"{where}: parameter '{p.name}' of its {key!r} is {p.type_str()}, but the "
                                    f"input it reads ({index}) is {aval.dtype.name}{format_shape(aval.shape)}")

    def loop_body_inputs(self, inputs: list[Tensor], attrs: dict[str, Any],
                         where: str) -> dict[str, list[AbstractValue]]:
        """The inputs of a loop's step and condition bodies (graphc/control/loop.py), once the attributes
        saying where the loop keeps what are checked."""
        has_trip, n_seq, n_state = attrs.get("has_trip"), attrs.get("n_seq"), attrs.get("n_state")
        if not isinstance(has_trip, bool) or not _is_int(n_seq) or not _is_int(n_state) or n_seq < 0 \
                or n_state < 0 or has_trip + n_seq + n_state > len(inputs):
            raise self.fail(f"{where}: attributes 'has_trip', 'n_seq' and 'n_state' (a bool and two ints >= 0) "
                            f"must fit its {len(inputs)} inputs; got {_show(has_trip)}, {_show(n_seq)}, "
                            f"{_show(n_state)}")
        for key in ("labels", "stacked"):
            value = attrs.get(key)
            if not isinstance(value, tuple) or len(value) != n_state or not all(isinstance(v, str) for v in value):
                raise self.fail(f"{where}: attribute {key!r} must be a tuple of one string per loop variable "
                                f"({n_state}), got {_show(value)}")
        length = attrs.get("length")
        if length is not None and not (_is_int(length) and 0 <= length <= INT64.max):
            raise self.fail(f"{where}: attribute 'length' must be null or an int >= 0, got {_show(length)}")
        if not isinstance(attrs.get("reverse"), bool) or not isinstance(attrs.get("what"), str):
            raise self.fail(f"{where}: attributes 'reverse' (a bool) and 'what' (a string) are needed")
        body, cond = attrs["body"], attrs["cond"]
        if len(body.outputs) < n_state:
            raise self.fail(f"{where}: its 'body' gives {len(body.outputs)} outputs, fewer than the {n_state} loop "
                            "variables it must update")
        if cond is not None and len(cond.outputs) != 1:
            raise self.fail(f"{where}: its 'cond' must give one output (the bool scalar), it gives "
                            f"{len(cond.outputs)}")
        _, seqs, inits, captured = split_inputs([t.aval for t in inputs], attrs)
        rows = [AbstractValue(s.dtype, s.shape[1:]) for s in seqs]  # a scalar sequence: the rule says so
        return {"body": [*rows, *inits, *captured], "cond": [*inits, *captured]}

    def check_source_attrs(self, attrs: dict[str, Any], where: str) -> None:
        dtype, shape = attrs.get("dtype"), attrs.get("shape")
        if not isinstance(dtype, np.dtype) or not isinstance(shape, tuple):
            raise self.fail(f"{where}: needs attributes 'dtype' (a dtype) and 'shape' (a tuple)")
        for d in shape:
            if d is not None and not (_is_int(d) and 0 <= d <= INT64.max):
                raise self.fail(f"{where}: attribute 'shape' {shape!r} is not a shape (ints >= 0 and None)")

    def check_choices(self, op: str, attrs: dict[str, Any], where: str) -> None:
        for key, value in attrs.items():
            choices = CHOICES.get((op, key))
            if choices is not None and isinstance(value, str) and value not in choices:
                raise self.fail(f"{where}: attribute {key!r} is {value!r}, expected one of {', '.join(choices)}")

    # -- values -------------------------------------------------------------------------------
    def value(self, value: Any, where: str, depth: int) -> Any:
        """An attribute value: JSON scalars as they are, tagged objects for everything else."""
        if depth > MAX_DEPTH:
            raise self.fail(f"{where}: values nested deeper than {MAX_DEPTH} levels")
        if value is None or isinstance(value, (bool, str, int)):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self.fail(f"{where}: non-finite number {value!r} written as a plain number")
            return value
        if not isinstance(value, dict) or len(value) != 1:
            raise self.fail(f"{where}: expected a JSON scalar or an object with one tag, got {_show(value)}")
        ((tag, body),) = value.items()
        if tag in ("tuple", "list"):
            if not isinstance(body, list):
                raise self.fail(f"{where}: {tag!r} needs a JSON array, got {_show(body)}")
            items = [self.value(v, where, depth + 1) for v in body]
            return tuple(items) if tag == "tuple" else items
        if tag == "float":
            if body not in FLOAT_WORDS:
                raise self.fail(f"{where}: 'float' must be one of {', '.join(FLOAT_WORDS)}, got {_show(body)}")
            return FLOAT_WORDS[body]
        if tag == "dtype":
            return self.dtype(body, where)
        if tag == "array":
            return self.array(body, where)
        if tag == "kernel":
            if not _is_int(body) or not 0 <= body < len(self.kernels):
                raise self.fail(f"{where}: {body!r} is not the index of an earlier kernel")
            return self.kernels[body]
        if tag == "body":
            if self.version < BODIES_VERSION:
                raise self.fail(f"{where}: 'body' values need format version {BODIES_VERSION}; the file says "
                                f"version {self.version}")
            if not _is_int(body) or not 0 <= body < len(self.bodies):
                raise self.fail(f"{where}: {_show(body)} is not the index of an earlier body")
            return self.bodies[body]
        if tag == "scalar":
            return self.scalar(body, where, depth)
        raise self.fail(f"{where}: unknown value tag {tag!r}")

    def scalar(self, body: Any, where: str, depth: int) -> Any:
        body = self.obj(body, where)
        dtype = self.dtype(self.field(body, "dtype", str, where), where)
        value = self.value(body.get("value"), where, depth + 1)
        fits = {
            "b": isinstance(value, bool),
            "i": _is_int(value) and np.iinfo(dtype).min <= value <= np.iinfo(dtype).max,
            "u": _is_int(value) and np.iinfo(dtype).min <= value <= np.iinfo(dtype).max,
            "f": isinstance(value, float),
        }[dtype.kind]
        if not fits:
            raise self.fail(f"{where}: {_show(value)} is not a {dtype.name} value")
        return dtype.type(value)

    def dtype(self, name: Any, where: str) -> np.dtype:
        if not isinstance(name, str) or name not in DTYPE_NAMES:
            raise self.fail(f"{where}: unknown dtype {_show(name)} (expected one of {', '.join(DTYPE_NAMES)})")
        return DTYPE_NAMES[name]

    def shape(self, dims: list[Any], where: str, allow_unknown: bool) -> tuple[int | None, ...]:
        for d in dims:
            if not ((d is None and allow_unknown) or (_is_int(d) and 0 <= d <= INT64.max)):
                raise self.fail(f"{where}: {_show(dims)} is not a shape")
        return tuple(dims)

    def location(self, value: Any, where: str) -> SourceLocation | None:
        if value is None:
            return None
        value = self.obj(value, f"{where}, location")
        filename = self.field(value, "file", str, f"{where}, location")
        line = self.field(value, "line", int, f"{where}, location")
        function = self.field(value, "function", str, f"{where}, location")
        return SourceLocation(filename, line, function)

    # -- JSON helpers -------------------------------------------------------------------------
    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{where}: expected a JSON object, got {_show(value)}")
        return value

    def field(self, obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
        if key not in obj:
            raise self.fail(f"{where}: missing field {key!r}")
        value = obj[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"{where}: field {key!r} must be a JSON {_JSON_NAMES[kind]}, got {_show(value)}")
        return value

    def indices(self, obj: dict[str, Any], key: str, count: int, where: str) -> list[int]:
        values = self.field(obj, key, list, where)
        for v in values:
            if not _is_int(v) or not 0 <= v < count:
                raise self.fail(f"{where}: {key!r} holds {_show(v)}, not the index of a node (there are {count})")
        return values


_JSON_NAMES = {str: "string", int: "integer", list: "array", dict: "object"}
BODY_ATTRS = {"loop": ("body", "cond"), "cond": ("true_body", "false_body")}  # control-flow ops' bodies


def _shapes_agree(a: tuple[int | None, ...], b: tuple[int | None, ...]) -> bool:
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _inner_node(opdef: OpDef, inputs: list[Tensor], attrs: dict[str, Any], name: str,
                location: SourceLocation | None) -> Tensor:
    """A node of a kernel's or a body's inner graph: checked by its op's rule like ``make_node``, but keeping
    its exact name, as the fuser builds them (inner names do not take names from the process)."""
    from graphc.ir.build import annotate

    if opdef.num_inputs is not None and len(inputs) != opdef.num_inputs:
        raise ArgumentError(f"{opdef.name} takes {opdef.num_inputs} inputs, got {len(inputs)}")
    try:
        aval = opdef.infer([t.aval for t in inputs], **attrs)
    except GraphcError as exc:
        raise annotate(exc, opdef.name, inputs, location) from None
    if aval.weak and opdef.name not in ("constant", "parameter"):  # as make_node: a body's parameter may be weak
        aval = AbstractValue(aval.dtype, aval.shape, weak=False)
    return Tensor(opdef, tuple(inputs), attrs, aval, name, location)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list, str, int, float, bool, type(None))) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _refuse_constant(word: str) -> Any:
    raise ValueError(f"{word} is not valid JSON")


__all__ = ["Reader", "load_graph"]
