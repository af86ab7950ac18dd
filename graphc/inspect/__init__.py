"""Looking at graphs: text (dprint), networkx / DOT export, and HTML reports."""

from graphc.inspect.export import to_dot, to_networkx
from graphc.inspect.html_report import report
from graphc.inspect.printer import dprint

__all__ = ["dprint", "report", "to_dot", "to_networkx"]
