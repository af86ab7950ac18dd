"""Running graphs: Session, gc.function, and the NumPy reference interpreter."""

from graphc.runtime.session import Function, Session, function

__all__ = ["Function", "Session", "function"]
