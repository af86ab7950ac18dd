"""Checkpoints: the values of Variables (a model's weights, an optimizer's slots and step counters) in a
safetensors file with JSON metadata; never pickle, so reading a file never runs code from it.

A checkpoint is a standard safetensors file (``safetensors.numpy.load_file`` reads it) with one tensor per
saved Variable, under its key, and these string entries in the header's ``__metadata__``:

* ``format``: ``"graphc-checkpoint"`` (what tells a checkpoint from any other safetensors file);
* ``format_version``: ``"1"`` (a file from a newer graphc, with a higher number, is refused);
* ``graphc``: the version of graphc that wrote it;
* ``variables``: JSON ``{key: {"name": the Variable's name, "dtype": "float32", "shape": [2, 3]}}``, in the
  order the Variables were given;
* ``user``: JSON of the ``metadata`` dict given to :func:`save_checkpoint` (``{}`` when none).

Every supported dtype, ``bool`` included (safetensors' ``BOOL``), is stored as it is, so every value
round-trips bit for bit.  See docs/checkpoints.md.
"""

from __future__ import annotations

import gc as _pygc
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from graphc.errors import CheckpointError
from graphc.ir.location import user_location, where_text
from graphc.ir.shapes import format_shape
from graphc.ops.state import Variable, live_variables
from graphc.version import __version__

FORMAT = "graphc-checkpoint"
FORMAT_VERSION = 1

PathLike = str | os.PathLike[str]
Variables = Mapping[str, Variable] | Iterable[Variable] | None


def _type(dtype: np.dtype, shape: tuple) -> str:
    return f"{dtype.name}{format_shape(shape)}"


def _listed(keys: Iterable[str], limit: int = 8) -> str:
    keys = list(keys)
    shown = ", ".join(map(repr, keys[:limit]))
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "") if keys else "nothing"


def _keyed(variables: Variables, what: str, where: str) -> dict[str, Variable]:
    """``{key: Variable}``: a dict as given, a list keyed by the Variables' names, None every live one."""
    if variables is None:
        _pygc.collect()  # a Variable only a reference cycle still holds is not live: do not save it
        variables = live_variables()
    if isinstance(variables, Variable):
        variables = [variables]
    if isinstance(variables, Mapping):
        items = list(variables.items())
    elif isinstance(variables, (str, bytes)) or not isinstance(variables, Iterable):
        raise CheckpointError(f"{what}: variables must be None, a list of gc.Variables or a dict {{key: Variable}}, "
                              f"got {type(variables).__name__}{where}")
    else:
        items = [(getattr(v, "name", None), v) for v in variables]
    keyed: dict[str, Variable] = {}
    for key, var in items:
        if not isinstance(var, Variable):
            raise CheckpointError(f"{what}: expected gc.Variables, got {type(var).__name__} {var!r:.60}"
                                  f"{f' for key {key!r}' if isinstance(key, str) else ''}{where}")
        if not isinstance(key, str) or not key or key == "__metadata__":
            raise CheckpointError(f"{what}: keys must be non-empty strings other than '__metadata__', got {key!r} "
                                  f"for {var.describe()}{where}")
        if key in keyed and keyed[key] is not var:
            raise CheckpointError(f"{what}: two Variables have the key {key!r}: {keyed[key].describe()} and "
                                  f"{var.describe()}; pass a dict with distinct keys{where}")
        keyed[key] = var
    return keyed


def save_checkpoint(path: PathLike, variables: Variables = None, metadata: Mapping[str, Any] | None = None) -> None:
    """Write the current values of ``variables`` to the checkpoint ``path`` (a safetensors file).

    ``variables``: None (every Variable that exists, keyed by name), a list of Variables (keyed by their
    names) or a dict ``{key: Variable}``.  ``metadata``: a JSON-serialisable dict saved with them, which
    :func:`restore_checkpoint` and :func:`read_checkpoint` return.  The file is written to a temporary
    file beside ``path`` and then renamed over it, so an interrupted save never leaves a partial file;
    missing parent directories are created.
    """
    from safetensors.numpy import save_file

    where = where_text(user_location())
    target = os.fspath(path)
    keyed = _keyed(variables, "save_checkpoint", where)
    if not keyed:
        raise CheckpointError(f"save_checkpoint: no Variables to save to {target}{where}")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise CheckpointError(f"save_checkpoint: metadata must be a dict, got {type(metadata).__name__}{where}")
    try:
        user = json.dumps(dict(metadata or {}), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"save_checkpoint: metadata must be JSON-serialisable (str keys; numbers, strings, "
                              f"lists, dicts), got {exc}{where}") from None
    tensors = {key: np.array(var.read(), order="C") for key, var in keyed.items()}  # (ascontiguousarray: 0-d -> 1-d)
    described = {key: {"name": keyed[key].name, "dtype": a.dtype.name, "shape": list(a.shape)}
                 for key, a in tensors.items()}
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "graphc": __version__,
              "variables": json.dumps(described), "user": user}
    directory = os.path.dirname(os.path.abspath(target))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".graphc-ckpt-", suffix=".tmp", dir=directory)
        os.close(fd)
        os.chmod(temporary, 0o644)  # mkstemp's 0o600 would stay with the renamed file; a saved file is a user's
        try:
            save_file(tensors, temporary, metadata=header)
            fd = os.open(temporary, os.O_RDONLY)
            try:
                os.fsync(fd)  # the data is on disk before the new name points at it
            finally:
                os.close(fd)
            os.replace(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    except OSError as exc:
        raise CheckpointError(f"save_checkpoint: cannot write checkpoint {target}: {exc.strerror or exc}"
                              f"{where}") from None
    except Exception as exc:  # safetensors' own errors
        raise CheckpointError(f"save_checkpoint: cannot write checkpoint {target}: {type(exc).__name__}: {exc}"
                              f"{where}") from None


def _read(target: str, where: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from safetensors import safe_open

    if not os.path.exists(target):
        raise CheckpointError(f"checkpoint {target} does not exist{where}")
    if not os.path.isfile(target):
        raise CheckpointError(f"checkpoint {target} is not a file{where}")
    damaged = f"checkpoint {target} is damaged or truncated (not a readable safetensors file)"
    try:
        with safe_open(target, framework="numpy") as f:
            header = f.metadata() or {}
            if header.get("format") != FORMAT:
                raise CheckpointError(f"{target} is not a graphc checkpoint: expected format {FORMAT!r} in its "
                                      f"safetensors metadata, got {header.get('format')!r}{where}")
            try:
                version = int(header.get("format_version", ""))
            except ValueError:
                raise CheckpointError(f"{damaged}: format_version {header.get('format_version')!r} is not a "
                                      f"number{where}") from None
            if version > FORMAT_VERSION:
                raise CheckpointError(f"checkpoint {target} has format version {version}, written by graphc "
                                      f"{header.get('graphc', '?')}; this graphc ({__version__}) reads versions up "
                                      f"to {FORMAT_VERSION}: upgrade graphc{where}")
            names = f.keys()  # (a safe_open handle is not iterable)
            stored = {key: f.get_tensor(key) for key in names}
    except CheckpointError:
        raise
    except Exception as exc:  # SafetensorError, OSError, ValueError... on a damaged file
        raise CheckpointError(f"{damaged}: {type(exc).__name__}: {exc}{where}") from None
    try:
        described = json.loads(header.get("variables", ""))
        user = json.loads(header.get("user", "{}"))
    except ValueError:
        raise CheckpointError(f"{damaged}: its metadata is not valid JSON{where}") from None
    if not isinstance(described, dict) or not isinstance(user, dict):
        raise CheckpointError(f"{damaged}: its metadata does not describe its variables{where}")
    if set(described) != set(stored):
        raise CheckpointError(f"{damaged}: its metadata lists {_listed(sorted(described))}, but it holds "
                              f"{_listed(sorted(stored))}{where}")
    values = {}
    for key, spec in described.items():
        value = stored[key]
        if (not isinstance(spec, dict) or spec.get("dtype") != value.dtype.name
                or spec.get("shape") != list(value.shape)):
            raise CheckpointError(f"{damaged}: entry {key!r} is described as {spec!r:.100} but holds "
                                  f"{_type(value.dtype, value.shape)}{where}")
        values[key] = value
    return values, user


def read_checkpoint(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(values, metadata)``: the arrays saved in checkpoint ``path`` by key (in the order they were saved)
    and the user's metadata dict, without restoring anything."""
    return _read(os.fspath(path), where_text(user_location()))


def restore_checkpoint(path: PathLike, variables: Variables = None) -> dict[str, Any]:
    """Assign the values saved in checkpoint ``path`` to ``variables``; returns the metadata saved with them.

    ``variables`` as for :func:`save_checkpoint`.  A list or dict: every one must be in the file, with its
    shape and dtype (the file may hold more).  None: every live Variable whose name is a key of the file is
    restored, and every key of the file must name a live Variable.  Nothing is assigned unless everything
    fits.
    """
    where = where_text(user_location())
    target = os.fspath(path)
    values, user = _read(target, where)
    if variables is None:
        by_name = {var.name: var for var in live_variables()}
        unmatched = [key for key in values if key not in by_name]
        if unmatched:
            raise CheckpointError(
                f"restore_checkpoint: checkpoint {target} holds {len(unmatched)} of {len(values)} value(s) for which "
                f"there is no Variable of that name: {_listed(unmatched)}; build the Variables first (names "
                f"depend on creation order), or pass variables= as a list or dict{where}")
        keyed = {key: by_name[key] for key in values}
    else:
        keyed = _keyed(variables, "restore_checkpoint", where)
    for key, var in keyed.items():
        if key not in values:
            raise CheckpointError(f"restore_checkpoint: checkpoint {target} has no entry {key!r} for Variable "
                                  f"{var.describe()}; it holds {_listed(values)}{where}")
        value = values[key]
        if value.dtype != var.dtype or value.shape != var.shape:
            raise CheckpointError(f"restore_checkpoint: entry {key!r} of checkpoint {target} does not fit Variable "
                                  f"{var.describe()}: expected {_type(var.dtype, var.shape)}, got "
                                  f"{_type(value.dtype, value.shape)}{where}")
    for key, var in keyed.items():
        var.assign(values[key])  # checked above: the same dtype and shape, so an exact copy
    return user


__all__ = ["FORMAT", "FORMAT_VERSION", "read_checkpoint", "restore_checkpoint", "save_checkpoint"]
