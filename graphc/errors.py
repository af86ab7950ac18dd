"""The error hierarchy for mistakes a user can make.

Every error raised because of user input derives from :class:`GraphcError`.  Each subclass also
derives from the built-in exception a Python programmer would expect (``ShapeError`` is a
``ValueError``, ``DTypeError`` a ``TypeError``), so existing ``except`` clauses keep working.
Messages name the tensor involved, say what was expected and what was given, and point at the
line of user code that created the offending node.
"""

from __future__ import annotations


class GraphcError(Exception):
    """Base class of every error graphc raises for a user's mistake."""


class ShapeError(GraphcError, ValueError):
    """Shapes that do not fit together (broadcasting, matmul, reshape, feeds, ...)."""


class DTypeError(GraphcError, TypeError):
    """A dtype that an op does not accept, or that cannot be converted safely."""


class FeedError(GraphcError, ValueError):
    """A missing placeholder feed, or a fed value of the wrong shape or dtype."""


class ArgumentError(GraphcError, ValueError):
    """An op attribute or function argument with an invalid value (axis, padding, ...)."""


class GraphError(GraphcError, ValueError):
    """A graph that cannot be run as built (e.g. two updates of one variable in one run)."""


class ExecutionError(GraphcError, RuntimeError):
    """A fault found while running a graph (e.g. an index out of range in ``take``)."""


class GraphFileError(GraphcError, ValueError):
    """A graph file that cannot be read (not a graph file, damaged, truncated, or from a newer graphc)."""


class AotError(GraphcError, RuntimeError):
    """Ahead-of-time compilation could not produce or load an artifact (no C compiler, a link
    failure, an unexpected library dependency, a shared object that is not graphc's)."""


class DeviceUnavailableError(GraphcError, RuntimeError):
    """A device asked for cannot be used here: no GPU, a driver or library missing (the message says
    which, and how to install it), or a device index beyond those present."""


class CheckpointError(GraphcError, ValueError):
    """A checkpoint that cannot be written or read: missing, damaged, not graphc's, or holding values
    that do not fit the Variables they are restored into."""
