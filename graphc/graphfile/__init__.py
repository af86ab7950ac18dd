"""Graph files: ``save_graph`` writes a graph to a documented, versioned file; ``load_graph`` reads it.

A graph file is a zip archive holding ``graph.json`` (the nodes in topological order: op, inputs,
attributes, dtype, shape, name, source line; fused kernels' inner graphs; the bodies of loops and
conditionals; which nodes are the inputs and outputs) and one ``.npy`` entry per constant or
Variable value.  docs/graph-files.md describes the format precisely.  Loading never runs code from
the file (no pickle, no eval): every field is checked, and every node is rebuilt through its op's
shape/dtype rule.  Anything wrong is a :class:`GraphFileError` naming the file and what is wrong.
"""

from graphc.graphfile.format import FORMAT, GRAPH_ENTRY, VERSION
from graphc.graphfile.load import load_graph
from graphc.graphfile.save import save_graph

__all__ = ["FORMAT", "GRAPH_ENTRY", "VERSION", "load_graph", "save_graph"]
