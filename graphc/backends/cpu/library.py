"""The CPU backend's compiled-code library: LLVM modules compiled into this process with MCJIT.

A :class:`CompiledModule` can be stored and loaded again without compiling: ``object_code()``
returns the relocatable object file MCJIT produced for the module (captured through MCJIT's object
cache hook, so nothing is compiled twice), and ``CompiledModule.from_object(obj, llvm_ir=text)``
loads such bytes into a fresh MCJIT engine of this process (no optimisation, no code generation:
about a millisecond).  The object is relocated when it is loaded, so it may come from another
process; its external symbols (``memset``, libm functions, anything registered with
``llvm.add_symbol``) are resolved by name in *this* process at load time, so register runtime
symbols before loading, exactly as before compiling.  ``from_object`` checks first (for ELF
objects) that every external symbol resolves and raises :class:`UnresolvedSymbolError` otherwise,
instead of letting LLVM abort the process.  :func:`cached_compile` keeps these bytes in a
:class:`~graphc.backends.base.CodeCache`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

import llvmlite.binding as llvm
from llvmlite import ir

from graphc.backends.base import CachedCode, CodeCache
from graphc.backends.cpu.target import default_target
from graphc.codegen.target import Target, optimize


class UnresolvedSymbolError(LookupError):
    """Object code names external symbols this process does not define (``.symbols`` lists them)."""

    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = tuple(symbols)
        super().__init__("object code needs symbols this process does not define: " + ", ".join(self.symbols))


_ELF_MAGIC = b"\x7fELF"
# ELF, Mach-O (32/64-bit, both byte orders), COFF x86-64 / arm64
_OBJECT_MAGICS = (_ELF_MAGIC, b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xfe\xed\xfa\xce",
                  b"\x64\x86", b"\x64\xaa")


def undefined_symbols(obj: bytes) -> list[str] | None:
    """The global symbols an object file uses but does not define, read from its ELF symbol
    table; ``None`` when ``obj`` is not a 64-bit little-endian ELF object (other formats are not
    inspected)."""
    if obj[:4] != _ELF_MAGIC or obj[4:6] != b"\x02\x01":  # ELFCLASS64, ELFDATA2LSB
        return None
    sections = {s.name(): s.data() for s in llvm.ObjectFileRef.from_data(obj).sections()}
    symtab, strtab = sections.get(b".symtab", b""), sections.get(b".strtab", b"")
    names = []
    for offset in range(0, len(symtab) - 23, 24):  # Elf64_Sym: name, info, other, shndx, value, size
        name, info, _, shndx, _, _ = struct.unpack_from("<IBBHQQ", symtab, offset)
        if shndx == 0 and info >> 4 == 1 and name:  # SHN_UNDEF, STB_GLOBAL (weak ones may stay unresolved)
            end = strtab.find(b"\0", name)
            names.append(strtab[name:end if end >= 0 else len(strtab)].decode("utf-8", "replace"))
    return names


class CompiledModule:
    """A module compiled into this process: ``address(name)`` of each function, its IR and assembly.

    ``CompiledModule(module)`` optimises and compiles LLVM IR; ``CompiledModule.from_object(obj)``
    loads object code that ``object_code()`` returned (here or in another process).
    """

    def __init__(self, module: ir.Module | str, target: Target | None = None, opt: int = 3,
                 before_load: Callable[[], None] | None = None, codegen_opt: int | None = None) -> None:
        """``opt``: the level of LLVM's IR pipeline; ``codegen_opt``: the code generator's (default
        ``opt``), for code written at the instruction level that the IR pipeline would only slow to compile."""
        self.target = target or default_target()
        self.opt = opt
        self.ref: llvm.ModuleRef | None = optimize(module, self.target, opt)
        self._ir_text: str | None = None
        self._asm: str | None = None
        self._machine = self.target.machine(opt if codegen_opt is None else codegen_opt)
        if before_load is not None:
            # optimise and generate code first (LLVM releases the GIL, so other threads compile meanwhile),
            # then let the caller register the symbols the code links against, then load it
            self._object = self._machine.emit_object(self.ref)
            before_load()
            self._load(self._object)
            return
        self.engine = llvm.create_mcjit_compiler(self.ref, self._machine)
        objects: list[bytes] = []  # MCJIT hands its object file to the cache hook (no reference to self: no cycle)
        self.engine.set_object_cache(notify_func=lambda module, buffer: objects.append(bytes(buffer)))
        self.engine.finalize_object()
        self.engine.run_static_constructors()
        self._object: bytes | None = objects[0] if objects else None

    @classmethod
    def from_object(cls, obj: bytes, target: Target | None = None, llvm_ir: str | None = None,
                    opt: int = 3) -> CompiledModule:
        """Load object code returned by :meth:`object_code` (compiled for ``target``, the host by
        default) without compiling anything.  ``llvm_ir``, the optimised IR text stored alongside,
        is what :meth:`llvm_ir` returns and what :meth:`assembly` is generated from (parsed only
        when asked for); without it those two raise ``RuntimeError``.

        Raises :class:`UnresolvedSymbolError` when the object needs a symbol this process does not
        define (register runtime symbols with ``llvm.add_symbol`` first), ``ValueError`` when
        ``obj`` is not an object file.  Static constructors in the object are not run.
        """
        if not bytes(obj[:4]).startswith(_OBJECT_MAGICS):
            raise ValueError("not an object file")
        self = cls.__new__(cls)
        self.target = target or default_target()
        self.opt = opt
        self.ref = None
        self._ir_text = llvm_ir
        self._asm = None
        self._object = bytes(obj)
        self._machine = self.target.machine(opt)
        self._load(self._object)
        return self

    def _load(self, obj: bytes) -> None:
        """Link object code into this process (no static constructors run)."""
        empty = llvm.parse_assembly("")
        empty.triple = self.target.triple
        empty.data_layout = str(self._machine.target_data)
        # creating the engine makes the process's own symbols (libc, libm) visible to the lookups below
        self.engine = llvm.create_mcjit_compiler(empty, self._machine)
        missing = [name for name in undefined_symbols(obj) or () if llvm.address_of_symbol(name) is None]
        if missing:
            raise UnresolvedSymbolError(missing)
        self.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self.engine.finalize_object()

    def address(self, name: str) -> int:
        """The address of function ``name`` in this process (``KeyError`` if there is none)."""
        address = self.engine.get_function_address(name)
        if not address:
            raise KeyError(f"no function {name!r} in the compiled module")
        return address

    def object_code(self) -> bytes:
        """The optimised module as the relocatable object file MCJIT compiled for this target:
        what :meth:`from_object` loads (in this or another process)."""
        if self._object is None:  # not expected: MCJIT reports every module it compiles
            raise RuntimeError("MCJIT did not report the module's object code")
        return self._object

    def _module(self) -> llvm.ModuleRef:
        if self.ref is None:
            if self._ir_text is None:
                raise RuntimeError("this module was loaded from object code without its LLVM IR")
            self.ref = llvm.parse_assembly(self._ir_text)
        return self.ref

    def llvm_ir(self) -> str:
        """The optimised LLVM IR."""
        if self._ir_text is None:
            self._ir_text = str(self._module())
        return self._ir_text

    def assembly(self) -> str:
        """The machine code as assembly text."""
        if self._asm is None:
            self._asm = self._machine.emit_assembly(self._module())
        return self._asm


def cached_compile(cache: CodeCache | None, key: str | None, build: Callable[[], tuple[Any, dict[str, Any]]],
                   target: Target, opt: int = 3, prepare: Callable[[dict[str, Any]], None] | None = None,
                   codegen_opt: int | None = None) -> tuple[CompiledModule, dict[str, Any]]:
    """``(module, meta)``: loaded from ``cache``'s entry under ``key`` when there is a usable one, else
    ``build()`` gives ``(llvmlite ir.Module or IR text, meta)``, which is compiled and stored (when
    ``key`` is not ``None``).

    ``opt`` / ``codegen_opt``: as for :class:`CompiledModule`.  ``prepare(meta)``, if given, runs before
    the object code is loaded (a cached entry's, or the new one's,
    after its code is generated): the place to register the symbols it links against (e.g. load the runtime
    library parts named in ``meta``), which may be compiling on another thread meanwhile.
    An entry whose object code still needs a symbol this process does not define counts as a miss.
    """
    if cache is not None and key is not None:
        entry = cache.load(key)
        if entry is not None:
            if prepare is not None:
                prepare(entry.meta)
            try:
                return CompiledModule.from_object(entry.code, target, entry.text, opt), entry.meta
            except (UnresolvedSymbolError, ValueError):
                pass
    module, meta = build()
    # on a miss, ``prepare`` runs between code generation and loading, as on a hit before loading
    compiled = CompiledModule(module, target, opt, before_load=(lambda: prepare(meta)) if prepare else None,
                              codegen_opt=codegen_opt)
    if cache is not None and key is not None:
        cache.store(key, CachedCode(compiled.object_code(), compiled.llvm_ir(), meta))
    return compiled, meta


__all__ = ["CompiledModule", "UnresolvedSymbolError", "cached_compile", "undefined_symbols"]
