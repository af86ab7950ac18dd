"""Where in user code a node was created."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


@dataclass(frozen=True)
class SourceLocation:
    """A file:line in user code, with the function it is in."""

    filename: str
    lineno: int
    function: str

    def __str__(self) -> str:
        return f"{_short_path(self.filename)}:{self.lineno}"


def _short_path(filename: str) -> str:
    try:
        rel = os.path.relpath(filename)
    except ValueError:  # a different drive on Windows
        return filename
    return filename if rel.startswith(".." + os.sep + "..") else rel


def where_text(location: SourceLocation | None) -> str:
    """`` (at file:line)`` for an error message, or nothing when the location is unknown."""
    return f" (at {location})" if location else ""


_override = threading.local()


@contextlib.contextmanager
def located_at(location: SourceLocation | None) -> Iterator[None]:
    """Nodes built inside this block are attributed to ``location`` instead of the caller's line.

    Rewrites use it so that the nodes they build carry the user's line of the node they replace.
    """
    previous = getattr(_override, "location", _UNSET)
    _override.location = location
    try:
        yield
    finally:
        if previous is _UNSET:
            del _override.location
        else:
            _override.location = previous


_UNSET = object()


def user_location() -> SourceLocation | None:
    """The innermost stack frame outside the graphc package: the user's line (or the override)."""
    forced = getattr(_override, "location", _UNSET)
    if forced is not _UNSET:
        return forced  # type: ignore[return-value]
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_DIR) and not filename.startswith("<frozen"):
            return SourceLocation(filename, frame.f_lineno, frame.f_code.co_name)
        frame = frame.f_back
    return None
