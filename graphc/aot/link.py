"""Turning an LLVM module into an object file and a shared object, and checking what it needs.

The object is emitted by LLVM for the chosen target; the shared object is linked by the system's C
compiler driver (``$CC``, else ``cc``, ``gcc`` or ``clang``) against nothing but the C library,
libm and libpthread.  :func:`needed_libraries` reads a shared object's ``DT_NEEDED`` entries from
its ELF dynamic section, so compilation can check (and tests can assert) that nothing else slipped in.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import llvmlite.binding as llvm

from graphc.backends.cpu.target import host_target, named_target
from graphc.codegen.target import Target, initialize, optimize
from graphc.errors import AotError

ALLOWED_LIBRARIES = re.compile(r"^(libc|libm|libpthread|libdl|ld-linux[-\w.]*|ld64)\.so(\.\d+)*$")
DT_NEEDED = 1


def aot_target(triple: str | None = None, cpu: str | None = None) -> Target:
    """The target to emit for: ``triple`` (default the host's) and ``cpu``.  The default CPU is the
    architecture's baseline, so the artifact runs on any CPU of that architecture; ``"native"`` (host
    triple only) uses this machine's CPU and all its features; any other name is an LLVM CPU name
    (on x86-64 the psABI levels ``x86-64-v2``/``-v3``/``-v4`` also size the GEMM's vectors)."""
    initialize()
    llvm.initialize_native_asmparser()  # the CPU-level check is inline assembly
    host = llvm.get_process_triple()
    triple = triple or host
    if triple != host:
        llvm.initialize_all_targets()
        llvm.initialize_all_asmprinters()
    try:
        llvm.Target.from_triple(triple)
    except RuntimeError as exc:
        raise AotError(f"unknown target triple {triple!r}: {str(exc).strip()}") from None
    if cpu == "native":
        if triple != host:
            raise AotError(f"cpu='native' means this machine's CPU, which cannot run {triple!r} code")
        return host_target()
    if cpu is None:
        cpu = "x86-64" if triple.startswith("x86_64") else "generic"
    return named_target(triple, cpu)


def emit_object(module_ir: str, target: Target, opt: int) -> bytes:
    """Optimise ``module_ir`` for ``target`` and return the relocatable (position-independent) object."""
    ref = optimize(module_ir, target, opt)
    return target.machine(opt, jit=False).emit_object(ref)


def compiler_driver() -> str:
    """The C compiler driver used to link (``$CC`` first)."""
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate.split()[0]):
            return candidate
    raise AotError("no C compiler found to link the shared object (set $CC, or install cc, gcc or clang); "
                   "compile with link=False (graphc aot --no-link) to write the object file and the header only")


def combine_objects(objects: Sequence[Path], output: Path, target: Target) -> None:
    """One relocatable object from ``objects`` (``cc -r``), or a copy when there is only one."""
    if len(objects) == 1:
        shutil.copyfile(objects[0], output)
        return
    _run_driver(["-r", "-nostdlib", "-o", str(output), *map(str, objects)], output, target)


def _run_driver(arguments: list[str], output: Path, target: Target) -> None:
    driver = compiler_driver().split()
    command = [*driver, *arguments]
    if target.triple != llvm.get_process_triple():
        command.insert(len(driver), f"--target={target.triple}")
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise AotError(f"linking {output.name} failed ({' '.join(command)}):\n{result.stderr.strip()}\n"
                       "compile with link=False (graphc aot --no-link) to write the object file and the header, "
                       "and link them with the target's own toolchain")


def link_shared(objects: Sequence[Path], library: Path, target: Target) -> None:
    """Link ``objects`` into the shared object ``library`` with the system's C compiler driver, and check
    its dependencies.  The library is linked beside its final name and renamed into place, so a
    process that has an older version loaded keeps it intact and a failure leaves nothing behind."""
    partial = library.with_name(f".{library.name}.{os.getpid()}.tmp")
    try:
        # nodelete: dlclose never unmaps the code while thread-pool workers may still be in it
        _run_driver(["-shared", "-o", str(partial), *map(str, objects), "-Wl,--as-needed", "-lm", "-lpthread",
                     "-Wl,-z,noexecstack", "-Wl,-z,nodelete", f"-Wl,-soname,{library.name}"], library, target)
        check_dependencies(partial, library.name)
        os.replace(partial, library)
    finally:
        partial.unlink(missing_ok=True)


def needed_libraries(path: str | os.PathLike[str]) -> list[str]:
    """The ``DT_NEEDED`` entries (shared libraries a loader must find) of an ELF shared object."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4:6] != b"\x02\x01":
        raise AotError(f"{path} is not a 64-bit little-endian ELF file")
    sections = {s.name(): s.data() for s in llvm.ObjectFileRef.from_data(data).sections()}
    dynamic, strings = sections.get(b".dynamic", b""), sections.get(b".dynstr", b"")
    needed = []
    for offset in range(0, len(dynamic) - 15, 16):
        tag, value = struct.unpack_from("<qQ", dynamic, offset)
        if tag == 0:
            break
        if tag == DT_NEEDED:
            needed.append(strings[value:strings.index(b"\0", value)].decode())
    return needed


def check_dependencies(library: Path, shown: str) -> None:
    """Refuse a shared object that needs more than the C library, libm and libpthread."""
    if library.read_bytes()[:4] != b"\x7fELF":
        return  # other formats are not inspected
    extra = [name for name in needed_libraries(library) if not ALLOWED_LIBRARIES.match(name)]
    if extra:
        raise AotError(f"{shown} needs {', '.join(extra)}, beyond the C library; graphc artifacts must be "
                       "self-contained (check $CC and its flags)")


__all__ = ["ALLOWED_LIBRARIES", "aot_target", "check_dependencies", "compiler_driver", "emit_object", "link_shared",
           "needed_libraries"]
