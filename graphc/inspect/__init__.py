"""Looking at graphs: text printing (and, later, networkx / DOT export and reports)."""

from graphc.inspect.printer import dprint

__all__ = ["dprint"]
