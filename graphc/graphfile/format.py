"""The graph file format's constants: what the writer produces and the reader accepts (docs/graph-files.md)."""

from __future__ import annotations

import math
import struct
import zipfile
import zlib

import numpy as np

from graphc import dtypes

FORMAT = "graphc.graph"
VERSION = 2  # the newest format version this graphc writes and reads
FIRST_VERSION = 1  # what a file without control flow says (it has nothing version 1 lacks)
BODIES_VERSION = 2  # the first version with control-flow bodies: the "bodies" table and the {"body": k} value
GRAPH_ENTRY = "graph.json"

MAX_DEPTH = 32  # nesting of attribute values
MAX_JSON_BYTES = 1 << 30
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # entry timestamps: the same graph gives the same bytes
DTYPE_NAMES = {d.name: d for d in dtypes.SUPPORTED_DTYPES}
FLOAT_WORDS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
INT64 = np.iinfo(np.int64)

# String attributes with a fixed set of values: checked when loading, so that a corrupt file fails
# at load time rather than when the graph runs.
PADDINGS = ("VALID", "SAME")
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("pad", "mode"): ("constant", "edge", "reflect", "symmetric"),
    ("pad_grad", "mode"): ("constant", "edge", "reflect", "symmetric"),
    ("reshape_dims", "kind"): ("expand_dims", "squeeze"),
    **{(op, "padding"): PADDINGS for op in ("conv2d", "conv2d_grad_input", "conv2d_grad_weight", "max_pool2d",
                                             "avg_pool2d", "max_pool2d_grad", "max_pool2d_select", "avg_pool2d_grad")},
}

# What reading a damaged entry raises (bad CRC-32, bad compressed data, an encrypted entry, ...), and
# what else zipfile and numpy's header parser raise on damaged archives.
ENTRY_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, struct.error, NotImplementedError, RuntimeError)
READ_ERRORS = (*ENTRY_ERRORS, OverflowError, ValueError, KeyError, RecursionError, MemoryError)


__all__ = ["BODIES_VERSION", "CHOICES", "DTYPE_NAMES", "ENTRY_ERRORS", "FIRST_VERSION", "FIXED_TIME", "FLOAT_WORDS",
           "FORMAT", "GRAPH_ENTRY", "INT64", "MAX_DEPTH", "MAX_JSON_BYTES", "PADDINGS", "READ_ERRORS", "VERSION"]
