"""Compiling runtime-library parts in a child Python process, beside the graph that needs them.

The float32 GEMM alone is about 0.3 s of LLVM work.  llvmlite lets one thread of a process into LLVM at a
time, so a thread compiling the runtime library cannot overlap the graph's own LLVM work, however early it
starts; a second process can, on a second core.  So on a machine's first use (nothing in the compile cache
yet), :func:`start` runs a child interpreter on this module (:func:`main`) for the GEMM parts a graph is
about to call; it generates the same object code this process would (same target, same levels) and
writes it to its standard output.  The graph is optimised, lowered and compiled meanwhile; :func:`take` then waits
for the child and hands back each part's object code and IR, which the caller loads (and caches) as if it
had compiled them.  Whatever goes wrong in the child (no interpreter to start, a crash, a timeout) only
means the part is compiled here after all.

Set ``GRAPHC_RUNTIME_IN_PROCESS=1`` to always compile in this process.  With a single usable core a child
would only compete with this process for it, so none is started.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
from collections.abc import Sequence

from graphc.codegen.target import Target

CHILD_TIMEOUT_S = 120.0
_HEADER_END = b"\n"
# The child imports graphc's package as an empty namespace over the same folder, so that only the modules
# the runtime library is made of load (graphc/__init__.py, the public API, would add ~0.1 s before it starts).
_CHILD_BOOT = ("import sys, types; package = types.ModuleType('graphc'); package.__path__ = [sys.argv[1]]; "
               "sys.modules['graphc'] = package; from graphc.backends.cpu.runtime_child import main; "
               "raise SystemExit(main(sys.argv[2:]))")


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worthwhile() -> bool:
    """Whether compiling in a child can overlap this process's own work."""
    return os.environ.get("GRAPHC_RUNTIME_IN_PROCESS", "") in ("", "0") and usable_cores() >= 2


class ChildCompile:
    """Runtime ``parts`` for ``target`` being compiled by a child process (see the module docstring)."""

    def __init__(self, parts: Sequence[str], target: Target) -> None:
        self.parts = tuple(parts)
        self._lock = threading.Lock()
        self._results: dict[str, tuple[bytes, str]] | None = None
        spec = json.dumps({"triple": target.triple, "cpu": target.cpu, "features": target.features,
                           "parts": list(self.parts)})
        package = str(pathlib.Path(__file__).resolve().parents[2])  # this graphc/ folder
        try:
            self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-c", _CHILD_BOOT, package, spec], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError:
            self._process = None

    def take(self, part: str) -> tuple[bytes, str] | None:
        """``(object code, optimised IR)`` of ``part`` once the child has finished (waiting for it), or
        ``None`` when the child was not asked for it or did not deliver it."""
        with self._lock:
            if self._results is None:
                self._results = self._collect()
        return self._results.get(part)

    def _collect(self) -> dict[str, tuple[bytes, str]]:
        process = self._process
        if process is None:
            return {}
        try:
            out, _ = process.communicate(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return {}
        if process.returncode != 0:
            return {}
        try:
            return _decode(out)
        except (ValueError, KeyError, TypeError):
            return {}


_pending: dict[tuple[Target, str], ChildCompile] = {}
_pending_lock = threading.Lock()


def start(parts: Sequence[str], target: Target) -> None:
    """Start a child compiling those of ``parts`` for ``target`` that no child is compiling yet, when a
    child can overlap this process (see :func:`worthwhile`); :func:`take` collects them."""
    with _pending_lock:
        new = [p for p in parts if (target, p) not in _pending]
        if not new or not worthwhile():
            return
        child = ChildCompile(new, target)
        for part in new:
            _pending[(target, part)] = child


def take(part: str, target: Target) -> tuple[bytes, str] | None:
    """``(object code, optimised IR)`` of ``part`` for ``target`` from the child compiling it (waiting for
    the child to finish), or ``None`` when no child was compiling it or it did not deliver."""
    with _pending_lock:
        child = _pending.pop((target, part), None)
    return child.take(part) if child is not None else None


def _encode(results: dict[str, tuple[bytes, str]]) -> bytes:
    """Each part as a JSON header line (its name and the sizes) followed by its object code and IR."""
    chunks = []
    for part, (obj, text) in results.items():
        ir_bytes = text.encode()
        header = json.dumps({"part": part, "object": len(obj), "ir": len(ir_bytes)}).encode()
        chunks += [header, _HEADER_END, obj, ir_bytes]
    return b"".join(chunks)


def _decode(data: bytes) -> dict[str, tuple[bytes, str]]:
    results: dict[str, tuple[bytes, str]] = {}
    at = 0
    while at < len(data):
        end = data.index(_HEADER_END, at)
        header = json.loads(data[at:end])
        at = end + 1
        n_obj, n_ir = int(header["object"]), int(header["ir"])
        if at + n_obj + n_ir > len(data):
            raise ValueError("truncated output from the runtime compile child")
        results[str(header["part"])] = (data[at:at + n_obj], data[at + n_obj:at + n_obj + n_ir].decode())
        at += n_obj + n_ir
    return results


def compile_parts(parts: Sequence[str], target: Target) -> dict[str, tuple[bytes, str]]:
    """``(object code, optimised IR)`` of each runtime part, compiled exactly as this process's
    :func:`graphc.backends.cpu.runtime_lib.load_runtime` would compile it (without loading it)."""
    from graphc.backends.cpu.runtime_lib import RUNTIME_CODEGEN_OPT, RUNTIME_OPT, emit_runtime
    from graphc.codegen.target import new_module, optimize

    results = {}
    for part in parts:
        module = new_module(f"graphc_runtime_{part}", target)
        emit_runtime(module, target, [part])
        ref = optimize(module, target, RUNTIME_OPT)
        results[part] = (target.machine(RUNTIME_CODEGEN_OPT).emit_object(ref), str(ref))
    return results


def main(argv: Sequence[str]) -> int:
    spec = json.loads(argv[0])
    target = Target(spec["triple"], spec["cpu"], spec["features"])
    sys.stdout.buffer.write(_encode(compile_parts(spec["parts"], target)))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
