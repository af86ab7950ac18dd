"""Name scopes (TensorFlow 1.x's ``tf.name_scope``): the prefix of the names of nodes built now, per thread.

``with gc.name_scope("layer1") as scope:`` opens a new scope under the current one; every node built
inside is named ``"layer1/<name>"``.  The scope's path is made unique in the namespace node names use
(``graphc.ir.tensor.unique_name``), so opening ``"layer1"`` again gives ``"layer1_1"``, and the ``as``
value is the path with a trailing slash (``"layer1/"``), which re-enters exactly that scope when
passed to ``name_scope`` again.  ``""`` and ``None`` go back to the root scope.

The compiler sets the scope exactly (``enter_scope``, no uniquing) to build its nodes in the scope of
the node they serve: rewrites, fused kernels, gradients.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from typing import Any

from graphc.errors import ArgumentError
from graphc.ir.location import user_location, where_text
from graphc.ir.tensor import unique_name

_SEGMENT = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.\-]*$")
_EXPECTED = ("a scope name (one or more segments separated by '/', each of letters, digits, '_', '.' and '-', "
             "starting with a letter, a digit, '_' or '.'), a scope returned by name_scope (ending in '/'), "
             "or '' / None for the root scope")

_state = threading.local()


def current_scope() -> str:
    """The current thread's scope path, without a trailing slash; ``""`` at the root."""
    return getattr(_state, "scope", "")


def scoped(base: str) -> str:
    """``base`` prefixed with the current scope: ``"layer1/w"`` inside ``"layer1"``, ``"w"`` at the root."""
    scope = current_scope()
    return f"{scope}/{base}" if scope else base


def scope_of(name: str) -> str:
    """The scope a node named ``name`` was built in: ``"a/b"`` for ``"a/b/add"``, ``""`` for ``"add"``."""
    return name.rpartition("/")[0]


@contextlib.contextmanager
def enter_scope(path: str) -> Iterator[str]:
    """Make ``path`` (no trailing slash; ``""`` is the root) the current scope exactly, with no uniquing."""
    previous = current_scope()
    _state.scope = path
    try:
        yield path
    finally:
        _state.scope = previous


def _valid_path(path: str) -> bool:
    return all(_SEGMENT.match(segment) for segment in path.split("/"))


class _NameScope:
    """What ``name_scope`` returns: entering it opens the scope (a new one is made unique then)."""

    def __init__(self, name: str | None, exact: bool) -> None:
        self._name, self._exact = name, exact
        self._entered: list[contextlib.AbstractContextManager[str]] = []

    def __enter__(self) -> str:
        if not self._name:
            path = ""
        elif self._exact:
            path = self._name
        else:
            path = unique_name(scoped(self._name), sanitize=False)
        manager = enter_scope(path)
        manager.__enter__()
        self._entered.append(manager)
        return f"{path}/" if path else ""

    def __exit__(self, *exc: Any) -> None:
        self._entered.pop().__exit__(*exc)


def name_scope(name: str | None) -> _NameScope:
    """A context manager that names the nodes built inside it ``"<scope>/<name>"`` (``tf.name_scope``).

    * ``name_scope("layer1")`` opens a new scope under the current one, made unique in the process:
      ``"layer1"``, then ``"layer1_1"``...; nested, ``"outer/inner"``.  ``as`` gives the path with a
      trailing slash, ``"layer1/"``.
    * A name ending in ``/`` (a value ``as`` gave) re-enters exactly that absolute scope.
    * ``""`` or ``None`` goes back to the root scope (``as`` gives ``""``).

    Anything else that is not a valid scope name raises :class:`graphc.ArgumentError`.
    """
    if name is None or name == "":
        return _NameScope(None, exact=True)
    location = user_location()
    if not isinstance(name, str):
        raise ArgumentError(f"name_scope: expected {_EXPECTED}, got {type(name).__name__} {name!r}"
                            f"{where_text(location)}")
    exact = name.endswith("/")
    path = name[:-1] if exact else name
    if not path or not _valid_path(path):
        raise ArgumentError(f"name_scope: expected {_EXPECTED}, got {name!r}{where_text(location)}")
    return _NameScope(path, exact)


__all__ = ["current_scope", "enter_scope", "name_scope", "scope_of", "scoped"]
