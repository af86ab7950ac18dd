"""Control flow: ``scan``, ``while_loop`` and ``cond``, ops whose bodies are graphs (DESIGN.md).

Each is one node of the graph it is used in, with its body traced once from the user's function
(graphc/control/body.py); gradients are built from the bodies' own gradients, so they are loops and
conditionals too, and can be differentiated again."""

from graphc.control import part as _part  # noqa: F401  (registers the part op)
from graphc.control.cond import cond
from graphc.control.loop import STACKED
from graphc.control.scan import scan, while_loop

__all__ = ["STACKED", "cond", "scan", "while_loop"]
