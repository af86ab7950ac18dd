"""The on-disk compile cache: compiled code kept between processes as bytes, so that a graph compiled
once is loaded (about a millisecond) instead of compiled again (25 ms to seconds).  It stores what a
backend hands it (:class:`~graphc.backends.base.CachedCode`: code bytes, text, metadata) and knows
nothing about the code; the backend loads it (:func:`code_cache` is the
:class:`~graphc.backends.base.CodeCache` the runtime hands backends).

Where: ``$GRAPHC_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/graphc``, else ``~/.cache/graphc``;
entries go into a subdirectory per cache format, graphc version and LLVM version
(:func:`cache_dir`).  ``GRAPHC_CACHE_DIR=off`` turns the cache off.  The directory may be deleted
at any time (:func:`clear` deletes what graphc wrote); nothing but speed depends on it.

API (everything here is safe to call when the cache is off or the disk misbehaves: ``load``
answers ``None``, ``store`` answers ``False``, nothing raises ``OSError``):

``cache_dir() -> pathlib.Path | None``
    The directory entries of this graphc and LLVM are stored in; ``None`` when the cache is off.
``enabled() -> bool``
    Whether the cache is on (``cache_dir() is not None``); check it before computing a key.
``key(*parts) -> str``
    A sha256 hex key over a canonical description of ``parts`` (and graphc's identity: version, a
    hash of its source files, llvmlite and LLVM versions).
``graph_key(nodes, avals, target, extra=()) -> str``
    The key of a graph's nodes compiled for concrete ``avals`` on ``target`` (a tuple of strings naming
    it, e.g. an LLVM triple, CPU and features); ``extra`` holds the caller's other compile options.
    Node names and source lines are not part of it, so the same
    model built twice (or in another process) has the same key.  Raises
    :class:`UncacheableError` (a ``TypeError``) for an attribute it cannot describe canonically.
``load(key) -> CachedCode | None`` / ``store(key, entry) -> bool``
    Read / write one :class:`~graphc.backends.base.CachedCode`: ``code`` (bytes, e.g. an object file
    from the CPU backend's ``CompiledModule.object_code()``), ``text`` (e.g. the optimised IR) and
    ``meta`` (JSON data of the caller's choosing, given back exactly: tuples are refused by ``store``
    because JSON would give them back as lists).
``code_cache() -> DiskCache | None``
    This module as the ``CodeCache`` a backend is given (``None`` when the cache is off); its
    ``graph_key`` answers ``None`` for a graph it cannot describe instead of raising.
``clear() -> int``
    Delete every entry graphc wrote under the cache root (all versions); the number of files removed.

How a backend uses it (the CPU backend's ``cached_compile`` in backends/cpu/library.py)::

    key = cache.graph_key(nodes, avals, (triple, cpu, features), extra=(opt, other_codegen_options))
    entry = cache.load(key) if key else None
    if entry is None:  # compile, then keep the bytes
        compiled = compile(emit_the_module())
        cache.store(key, CachedCode(compiled.object_code(), compiled.llvm_ir(), position_based_meta))

Caveats for object-loaded code: everything the entry is run with must come from ``meta`` (node
positions, never node ids, names or source lines; build messages that name the user's line from
the current nodes); external symbols are resolved by name when the object is loaded, so runtime
functions registered with ``llvm.add_symbol`` must be registered first (``prepare``), and a
symbol that is still missing makes ``from_object`` raise instead of LLVM aborting; static
constructors in the object are not run; ``fn.source("asm")`` of a loaded module is generated
again from the stored IR.  Anything that changes the generated code without changing the graph,
the shapes or graphc's source files (a codegen option, the thread count if it is baked in) must go
into ``extra``.

File format, one file ``<key>.gco`` per entry (integers little-endian)::

    magic   8 bytes   b"\\x89GRAPHC\\n"
    format  u32       FORMAT_VERSION
    key     64 bytes  the entry's key, ASCII hex (must equal the name asked for)
    digest  32 bytes  sha256 of the payload
    length  u64       the payload's length (must be the rest of the file)
    payload           u32 header length | JSON header | zlib-compressed IR | object code

The JSON header is ``{"meta": ..., "llvm_ir_zlib": <bytes>, "object_code": <bytes>}`` (the lengths of
the compressed text and of the code).  Nothing is
ever unpickled or evaluated.  Writes go to a temporary file in the same directory, renamed over the
entry (atomic: readers see the old entry or the new one).  Directories are created with mode 0o700.
The loader refuses (returns ``None``, warning once per kind with :class:`CompileCacheWarning`) a file
with the wrong magic, format, key, length or checksum, a symlink, a file not owned by the current
user or writable by others, and a cache directory not owned by the user or writable by others.  A
refused or damaged entry is simply compiled again and overwritten.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pathlib
import re
import stat
import struct
import tempfile
import warnings
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from graphc.backends.base import CachedCode
from graphc.ir.body import Body
from graphc.ir.registry import AbstractValue
from graphc.ir.tensor import Tensor
from graphc.ops.kernel import Kernel

FORMAT_VERSION = 1
MAGIC = b"\x89GRAPHC\n"
SUFFIX = ".gco"
ENV_VAR = "GRAPHC_CACHE_DIR"
OFF = "off"

_PREFIX = struct.Struct("<8sI64s32sQ")  # magic, format, key, payload sha256, payload length
_HEADER_LENGTH = struct.Struct("<I")
_KEY = re.compile(r"^[0-9a-f]{64}$")
_SUBDIR = re.compile(r"^v\d+-graphc-[^/\\]+-llvm-[^/\\]+$")
_MAX_ENTRY = 1 << 30  # a larger file is not one graphc wrote
_warned: set[str] = set()


class CompileCacheWarning(UserWarning):
    """The compile cache refused a directory or an entry, or could not write one (given once per kind)."""


class UncacheableError(TypeError):
    """A graph holds a value the cache key cannot describe canonically (compile it without the cache)."""


def _warn_once(kind: str, message: str) -> None:
    if kind not in _warned:
        _warned.add(kind)
        warnings.warn(f"graphc compile cache: {message}", CompileCacheWarning, stacklevel=3)


# ---- location -------------------------------------------------------------------------------------

def _llvm_version() -> str:
    import llvmlite.binding as llvm

    return ".".join(map(str, llvm.llvm_version_info))


def cache_root() -> pathlib.Path | None:
    """The cache's root directory (from the environment, read on every call); ``None`` when off."""
    configured = os.environ.get(ENV_VAR, "").strip()
    if configured.lower() == OFF:
        return None
    if configured:
        return pathlib.Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg and os.path.isabs(xdg):  # the XDG spec says to ignore relative paths
        return pathlib.Path(xdg) / "graphc"
    home = os.path.expanduser("~")
    return None if home == "~" else pathlib.Path(home) / ".cache" / "graphc"


def cache_dir() -> pathlib.Path | None:
    """The directory this graphc and LLVM store entries in; ``None`` when the cache is off."""
    from graphc.version import __version__

    root = cache_root()
    if root is None:
        return None
    safe = re.sub(r"[^A-Za-z0-9.+_]", "_", f"{__version__}")
    return root / f"v{FORMAT_VERSION}-graphc-{safe}-llvm-{_llvm_version()}"


def enabled() -> bool:
    """Whether the cache is on (``GRAPHC_CACHE_DIR`` is not ``off`` and a location is known)."""
    return cache_root() is not None


def _safe_dir(path: pathlib.Path) -> bool:
    """Is ``path`` a directory owned by this user that nobody else may write to?"""
    try:
        info = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        _warn_once("not-a-dir", f"{path} is not a directory; caching is off")
        return False
    if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o022):
        _warn_once("unsafe-dir", f"{path} is not owned by you or is writable by others, so nothing in it is "
                                 f"trusted and nothing is written to it (fix with: chmod go-w '{path}', or set "
                                 f"{ENV_VAR})")
        return False
    return True


def _entry_dir(create: bool) -> pathlib.Path | None:
    """The entry directory if it (and the root) can be trusted, creating both (0o700) if asked."""
    directory = cache_dir()
    if directory is None:
        return None
    if create:
        try:
            os.makedirs(directory.parent, mode=0o700, exist_ok=True)
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            _warn_once("mkdir", f"cannot create {directory}: {exc.strerror or exc}; caching is off")
            return None
    elif not directory.is_dir():
        return None
    return directory if _safe_dir(directory.parent) and _safe_dir(directory) else None


# ---- keys -------------------------------------------------------------------------------------------

FINGERPRINT_FILE = "source-fingerprint.json"  # in the cache root: the digest and the files it is of
_fingerprint_unsaved: list[dict[str, Any]] = []  # a digest this process computed, saved by the next store


@functools.lru_cache(maxsize=1)
def _source_fingerprint() -> str:
    """A hash of graphc's own source files: editing the compiler invalidates what it compiled.

    Reading and hashing every source file costs tens of milliseconds, paid by every fresh process that
    finds its code in the cache; so the digest is kept in the cache root beside the size and modification
    time of each file (as Python's own bytecode cache does), and recomputed only when one of them differs.
    A digest computed here is saved with the next entry this process stores or loads."""
    package = pathlib.Path(__file__).resolve().parent.parent
    try:
        found = sorted(_source_files(str(package), ""))
    except OSError:  # unreadable sources: nothing this process compiles can be reused safely
        return os.urandom(16).hex()
    files = [[name, st.st_size, st.st_mtime_ns] for name, st in found]
    root = cache_root()
    if root is not None and _safe_dir(root):
        with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
            saved = json.loads((root / FINGERPRINT_FILE).read_text())
            if saved.get("files") == files and isinstance(saved.get("digest"), str):
                return str(saved["digest"])
    digest = hashlib.sha256()
    try:
        for name, _ in found:
            digest.update(name.encode() + b"\0")
            digest.update(hashlib.sha256((package / name).read_bytes()).digest())
    except OSError:
        return os.urandom(16).hex()
    _fingerprint_unsaved.append({"files": files, "digest": digest.hexdigest()})
    return digest.hexdigest()


def _source_files(directory: str, prefix: str) -> Iterable[tuple[str, os.stat_result]]:
    """``(path relative to the package, stat)`` of every ``.py`` file under ``directory`` (os.scandir:
    a few times faster than pathlib's rglob, and this runs in every process that loads cached code)."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name != "__pycache__":
                    yield from _source_files(entry.path, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".py"):
                yield f"{prefix}{entry.name}", entry.stat()


def _save_fingerprint(root: pathlib.Path) -> None:
    """Keep the digest this process computed (if any) in the cache root, atomically."""
    if not _fingerprint_unsaved:
        return
    record = _fingerprint_unsaved.pop()
    with contextlib.suppress(OSError):
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=root)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, root / FINGERPRINT_FILE)


def compiler_identity() -> tuple[str, ...]:
    """What compiled an entry: cache format, graphc version and source hash, llvmlite and LLVM versions."""
    import llvmlite

    from graphc.version import __version__

    return (f"format {FORMAT_VERSION}", f"graphc {__version__}", f"source {_source_fingerprint()}",
            f"llvmlite {llvmlite.__version__}", f"llvm {_llvm_version()}")


class _Describer:
    """Feeds a canonical, type-tagged, length-prefixed description of values into a hash.

    Tensors are described by their position in the node list being described (innermost scope
    first, so a kernel's inner graph refers to its own nodes), never by id or name; a kernel seen
    twice (a fused node and its ``kernel_output`` readers) is described once, then referred to.
    """

    def __init__(self, digest: Any) -> None:
        self.digest = digest
        self.scopes: list[dict[int, int]] = []
        self.kernels: dict[int, int] = {}

    def emit(self, tag: bytes, data: bytes | memoryview = b"") -> None:
        self.digest.update(tag + len(data).to_bytes(8, "little"))
        self.digest.update(data)

    def value(self, obj: Any) -> None:
        kind = type(obj)
        if obj is None:
            self.emit(b"N")
        elif kind is bool:
            self.emit(b"B", b"\1" if obj else b"\0")
        elif kind is int:
            self.emit(b"I", str(obj).encode())
        elif kind is float:
            self.emit(b"F", struct.pack("<d", obj))
        elif kind is str:
            self.emit(b"S", obj.encode("utf-8", "surrogatepass"))
        elif kind is bytes:
            self.emit(b"Y", obj)
        elif kind in (tuple, list):
            self.emit(b"T" if kind is tuple else b"L", str(len(obj)).encode())
            for item in obj:
                self.value(item)
        elif kind in (dict, MappingProxyType):
            if not all(type(k) is str for k in obj):
                raise UncacheableError(f"compile cache key: mapping keys must be str, got {list(obj)!r}")
            self.emit(b"M", str(len(obj)).encode())
            for k in sorted(obj):
                self.value(k)
                self.value(obj[k])
        elif isinstance(obj, np.dtype):
            self.emit(b"D", self.dtype(obj))
        elif isinstance(obj, np.ndarray):
            array = np.ascontiguousarray(obj)
            self.emit(b"A", self.dtype(array.dtype) + b"|" + repr(tuple(array.shape)).encode())
            self.emit(b"a", array.reshape(-1).view(np.uint8).data)
        elif isinstance(obj, np.generic):
            self.emit(b"G", self.dtype(obj.dtype) + b"|" + obj.tobytes())
        elif isinstance(obj, Tensor):
            self.reference(obj)
        elif isinstance(obj, Kernel):
            self.kernel(obj)
        elif isinstance(obj, Body):
            self.body(obj)
        elif kind is AbstractValue:
            self.emit(b"V")
            self.value((obj.dtype, tuple(obj.shape), obj.weak, obj.parts))
        else:
            raise UncacheableError(f"compile cache key: cannot describe a value of type {kind.__qualname__} "
                                   f"canonically: {obj!r:.200}")

    @staticmethod
    def dtype(dtype: np.dtype) -> bytes:
        if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
            raise UncacheableError(f"compile cache key: cannot describe dtype {dtype!r}")
        return f"{dtype.name}{dtype.str}".encode()

    def reference(self, tensor: Tensor) -> None:
        for depth, scope in enumerate(reversed(self.scopes)):
            position = scope.get(tensor.id)
            if position is not None:
                self.emit(b"R", f"{depth}:{position}".encode())
                return
        raise UncacheableError(f"compile cache key: {tensor.describe()} is not among the nodes described")

    def nodes(self, nodes: Sequence[Tensor], aval: Callable[[Tensor], AbstractValue | None]) -> None:
        self.scopes.append({n.id: i for i, n in enumerate(nodes)})
        self.emit(b"n", str(len(nodes)).encode())
        for node in nodes:
            self.emit(b"O", node.op.encode())
            self.emit(b"i", str(len(node.inputs)).encode())
            for i in node.inputs:
                self.reference(i)
            messages = node.opdef.extra.get("message_attrs", ())  # words for error messages, not the code's
            self.value({k: v for k, v in node.attrs.items() if k not in messages} if messages else node.attrs)
            self.value(aval(node))

    def kernel(self, kernel: Kernel) -> None:
        seen = self.kernels.get(id(kernel))
        if seen is not None:
            self.emit(b"k", str(seen).encode())
            return
        self.kernels[id(kernel)] = len(self.kernels)
        self.emit(b"K", kernel.kind.encode())
        self.inner_graph(kernel.nodes, kernel.params, kernel.outputs)

    def body(self, body: Body) -> None:
        """A loop's or a branch's body, by its graph (described afresh each time: two loops may share one)."""
        self.emit(b"W")
        self.inner_graph(body.nodes, body.params, body.outputs)

    def inner_graph(self, nodes: Sequence[Tensor], params: Sequence[Tensor], outputs: Sequence[Tensor]) -> None:
        """A kernel's or a body's graph, its nodes referred to in a scope of their own."""
        self.nodes(nodes, lambda n: n.aval)  # concrete inner shapes follow from the inputs of the node around it
        self.value((tuple(params), tuple(outputs)))
        self.scopes.pop()


def key(*parts: Any) -> str:
    """A sha256 hex key over ``parts`` (None, bool, int, float, str, bytes, tuples, lists, str-keyed
    dicts, NumPy dtypes, arrays and scalars, ``AbstractValue``) and graphc's identity
    (:func:`compiler_identity`).  Anything else raises :class:`UncacheableError`."""
    digest = hashlib.sha256()
    describer = _Describer(digest)
    describer.value(("key", compiler_identity(), parts))
    return digest.hexdigest()


def graph_key(nodes: Iterable[Tensor], avals: Mapping[int, AbstractValue], target: Sequence[str],
              extra: Iterable[Any] = ()) -> str:
    """The key of ``nodes`` (topologically ordered) compiled for the concrete ``avals`` (node id ->
    AbstractValue) on ``target``, with the caller's other options in ``extra``.

    It describes each node by its op, its inputs (by position in ``nodes``), its attributes
    (arrays by dtype, shape and contents; fused kernels by their inner graph, recursively) and its
    concrete abstract value, plus the target and graphc's identity; never by node ids, names or
    source lines.  Raises :class:`UncacheableError` for a value it cannot describe canonically.
    """
    digest = hashlib.sha256()
    describer = _Describer(digest)
    describer.value(("graph", compiler_identity()))
    describer.nodes(tuple(nodes), lambda n: avals.get(n.id))
    describer.value((tuple(target), tuple(extra)))
    return digest.hexdigest()


# ---- entries ----------------------------------------------------------------------------------------

def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"compile cache keys are 64 lowercase hex digits, got {key!r}")


def _encode(key: str, entry: CachedCode) -> bytes:
    if not isinstance(entry.code, (bytes, bytearray)) or not isinstance(entry.text, str):
        raise TypeError("CachedCode.code must be bytes and CachedCode.text a str")
    try:
        meta_text = json.dumps(entry.meta, allow_nan=False, separators=(",", ":"))
        same = json.loads(meta_text) == entry.meta and isinstance(entry.meta, dict)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"CachedCode.meta must be JSON data: {exc}") from None
    if not same:
        raise TypeError("CachedCode.meta must be a dict of JSON data that survives a JSON round trip unchanged "
                        "(no tuples, no int keys)")
    ir_data = zlib.compress(entry.text.encode("utf-8"), 1)
    header = json.dumps({"meta": entry.meta, "llvm_ir_zlib": len(ir_data), "object_code": len(entry.code)},
                        separators=(",", ":")).encode("utf-8")
    payload = b"".join([_HEADER_LENGTH.pack(len(header)), header, ir_data, bytes(entry.code)])
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, key.encode("ascii"), hashlib.sha256(payload).digest(), len(payload))
    return prefix + payload


def _decode(key: str, data: bytes) -> CachedCode | None:
    """The entry in ``data``, or ``None`` when anything about it is not what :func:`_encode` writes."""
    if len(data) < _PREFIX.size:
        return None
    magic, version, stored_key, checksum, length = _PREFIX.unpack_from(data)
    payload = memoryview(data)[_PREFIX.size:]
    if (magic != MAGIC or version != FORMAT_VERSION or stored_key != key.encode("ascii") or length != len(payload)
            or hashlib.sha256(payload).digest() != checksum or len(payload) < _HEADER_LENGTH.size):
        return None
    (header_length,) = _HEADER_LENGTH.unpack_from(payload)
    start = _HEADER_LENGTH.size + header_length
    try:
        header = json.loads(bytes(payload[_HEADER_LENGTH.size:start]).decode("utf-8"))
        ir_length, object_length, meta = header["llvm_ir_zlib"], header["object_code"], header["meta"]
        if (type(ir_length) is not int or type(object_length) is not int or not isinstance(meta, dict)
                or ir_length < 0 or object_length < 0 or start + ir_length + object_length != len(payload)):
            return None
        llvm_ir = zlib.decompress(payload[start:start + ir_length]).decode("utf-8")
    except (ValueError, KeyError, TypeError, zlib.error):  # JSONDecodeError and UnicodeDecodeError included
        return None
    return CachedCode(bytes(payload[start + ir_length:]), llvm_ir, meta)


def _path(directory: pathlib.Path, key: str) -> pathlib.Path:
    return directory / f"{key}{SUFFIX}"


def has(key: str) -> bool:
    """Whether an entry is stored under ``key`` (without reading it: :func:`load` may still refuse it)."""
    _check_key(key)
    directory = _entry_dir(create=False)
    return directory is not None and _path(directory, key).is_file()


def load(key: str) -> CachedCode | None:
    """The entry stored under ``key``, or ``None``: not there, the cache is off, or the file is one
    this user's graphc did not write intact (refused, with one :class:`CompileCacheWarning` per kind)."""
    _check_key(key)
    directory = _entry_dir(create=False)
    if directory is None:
        return None
    path = _path(directory, key)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:  # a symlink (ELOOP), no permission, ...
        _warn_once("open", f"cannot open {path}: {exc.strerror or exc}; compiling instead")
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_ENTRY:
                _warn_once("damaged", f"ignoring {path}: not an entry graphc wrote; it will be overwritten")
                return None
            if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o022):
                _warn_once("foreign", f"ignoring {path}: not owned by you or writable by others")
                return None
            data = f.read(_MAX_ENTRY + 1)
    except OSError as exc:
        _warn_once("read", f"cannot read {path}: {exc.strerror or exc}; compiling instead")
        return None
    entry = _decode(key, data)
    if entry is None:
        _warn_once("damaged", f"ignoring {path}: damaged, truncated or from another graphc; it will be overwritten")
    else:  # a process that only loads keeps the digest it computed too, so the next one need not hash
        _save_fingerprint(directory.parent)
    return entry


def store(key: str, entry: CachedCode) -> bool:
    """Write ``entry`` under ``key`` atomically; whether it was written (never raises ``OSError``).
    ``TypeError`` when ``entry`` holds something else than bytes, str and a dict of JSON data."""
    _check_key(key)
    data = _encode(key, entry)
    directory = _entry_dir(create=True)
    if directory is None:
        return False
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=directory)  # mode 0o600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, _path(directory, key))
        _save_fingerprint(directory.parent)
        return True
    except OSError as exc:
        _warn_once("write", f"cannot write to {directory}: {exc.strerror or exc}")
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False


class DiskCache:
    """This module as a :class:`~graphc.backends.base.CodeCache`: what backends are handed."""

    key = staticmethod(key)
    has = staticmethod(has)
    load = staticmethod(load)
    store = staticmethod(store)

    @staticmethod
    def graph_key(nodes: Iterable[Tensor], avals: Mapping[int, AbstractValue], target: Sequence[str],
                  extra: Iterable[Any] = ()) -> str | None:
        """:func:`graph_key`, or ``None`` for a graph holding a value it cannot describe."""
        try:
            return graph_key(nodes, avals, target, extra)
        except UncacheableError:
            return None


def code_cache() -> DiskCache | None:
    """The cache to hand a backend: ``None`` when it is off."""
    return DiskCache() if enabled() else None


def clear() -> int:
    """Delete every entry (of any graphc or LLVM version) and leftover temporary file under the
    cache root, and the version directories left empty; return how many files were removed."""
    root = cache_root()
    if root is None or not root.is_dir():
        return 0
    removed = 0
    for sub in root.iterdir():
        if not _SUBDIR.match(sub.name) or sub.is_symlink() or not sub.is_dir():
            continue
        for path in sub.iterdir():
            if path.name.endswith(SUFFIX) and not path.is_symlink():
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
        with contextlib.suppress(OSError):  # not empty: files graphc did not write
            sub.rmdir()
    with contextlib.suppress(OSError):
        (root / FINGERPRINT_FILE).unlink()
    return removed


__all__ = ["ENV_VAR", "FORMAT_VERSION", "MAGIC", "CompileCacheWarning", "DiskCache", "UncacheableError", "cache_dir",
           "cache_root", "clear", "code_cache", "compiler_identity", "enabled", "graph_key", "key", "load", "store"]
