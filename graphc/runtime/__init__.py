"""Running graphs: Session, gc.function, the Program they run (which looks its backend up by device
name) and the on-disk compile cache."""

from graphc.runtime.session import Function, Session, function

__all__ = ["Function", "Session", "function"]
