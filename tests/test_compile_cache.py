"""The on-disk compile cache (graphc/runtime/compile_cache.py) and object-code loading (backends/cpu/library.py)."""

from __future__ import annotations

import ctypes
import json
import math
import os
import pathlib
import stat
import subprocess
import sys
import textwrap
import threading
import warnings

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir

import graphc as gc
from graphc.backends.base import CachedCode
from graphc.backends.cpu import library
from graphc.backends.cpu.target import default_cpu, host_target
from graphc.codegen import target as llvm_target
from graphc.ir.registry import REGISTRY, AbstractValue
from graphc.ir.tensor import Tensor
from graphc.runtime import compile_cache as cc
from graphc.runtime.program import Program

ROOT = pathlib.Path(__file__).parent.parent
HOST = (host_target().triple, host_target().cpu, host_target().features)  # a target as cache keys name it
DBL, I64, I8 = ir.DoubleType(), ir.IntType(64), ir.IntType(8)
I8P = I8.as_pointer()
UNARY = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)
CALLBACK = "graphc_test_cache_callback"  # registered with llvm.add_symbol, as the runtime library is
OTHER = "graphc_test_cache_other"  # a function of another JIT-compiled module, registered the same way
_keep: list[object] = []  # the callback and the other module must outlive every module calling them


def _register_externals() -> None:
    if _keep:
        return
    callback = UNARY(lambda x: 3.0 * x + 1.0)
    other = ir.Module("other")
    fn = ir.Function(other, ir.FunctionType(DBL, [DBL]), OTHER)
    b = ir.IRBuilder(fn.append_basic_block())
    b.ret(b.fmul(fn.args[0], fn.args[0]))
    compiled = library.CompiledModule(other)
    _keep.extend([callback, compiled])
    llvm.add_symbol(CALLBACK, ctypes.cast(callback, ctypes.c_void_p).value)
    llvm.add_symbol(OTHER, compiled.address(OTHER))


def library_module(missing: str | None = None) -> ir.Module:
    """A module using what real graph modules use: a constant table and vector constants (constant
    pools), a mutable global, an internal call, libm through an intrinsic, memset/memcpy, a switch,
    and functions registered with llvm.add_symbol (plus ``missing``, a symbol nobody defines)."""
    m = llvm_target.new_module("cache_test")
    table_ty = ir.ArrayType(DBL, 8)
    table = ir.GlobalVariable(m, table_ty, "table")
    table.global_constant, table.linkage = True, "internal"
    table.initializer = ir.Constant(table_ty, [1.5 * i for i in range(8)])
    counter = ir.GlobalVariable(m, I64, "counter")
    counter.linkage, counter.initializer = "internal", ir.Constant(I64, 0)
    callback = ir.Function(m, ir.FunctionType(DBL, [DBL]), CALLBACK)
    other = ir.Function(m, ir.FunctionType(DBL, [DBL]), OTHER)
    exp = ir.Function(m, ir.FunctionType(DBL, [DBL]), "llvm.exp.f64")
    memset = ir.Function(m, ir.FunctionType(ir.VoidType(), [I8P, I8, I64, ir.IntType(1)]), "llvm.memset.p0i8.i64")
    memcpy = ir.Function(m, ir.FunctionType(ir.VoidType(), [I8P, I8P, I64, ir.IntType(1)]),
                         "llvm.memcpy.p0i8.p0i8.i64")

    helper = ir.Function(m, ir.FunctionType(DBL, [DBL, I64]), "helper")
    helper.linkage = "internal"
    b = ir.IRBuilder(helper.append_basic_block())
    x, i = helper.args
    entry = b.load(b.gep(table, [ir.Constant(I64, 0), b.and_(i, ir.Constant(I64, 7))]))
    b.ret(b.fadd(b.call(exp, [x]), entry))

    # double elem(double x, i64 i) = exp(x) + table[i & 7] + callback(x) + other(x) + ++counter
    elem = ir.Function(m, ir.FunctionType(DBL, [DBL, I64]), "elem")
    b = ir.IRBuilder(elem.append_basic_block())
    x, i = elem.args
    count = b.add(b.load(counter), ir.Constant(I64, 1))
    b.store(count, counter)
    total = b.fadd(b.call(helper, [x, i]), b.fadd(b.call(callback, [x]), b.call(other, [x])))
    if missing is not None:
        total = b.fadd(total, b.call(ir.Function(m, ir.FunctionType(DBL, [DBL]), missing), [x]))
    b.ret(b.fadd(total, b.sitofp(count, DBL)))

    # void fill(i8 *dst, i8 *src, i64 n): memset(dst, 7, 2n); memcpy(dst, src, n)
    fill = ir.Function(m, ir.FunctionType(ir.VoidType(), [I8P, I8P, I64]), "fill")
    b = ir.IRBuilder(fill.append_basic_block())
    dst, src, n = fill.args
    b.call(memset, [dst, ir.Constant(I8, 7), b.mul(n, ir.Constant(I64, 2)), ir.Constant(ir.IntType(1), 0)])
    b.call(memcpy, [dst, src, n, ir.Constant(ir.IntType(1), 0)])
    b.ret_void()

    # void scale(double *p): p[0:4] = p[0:4] * <0.5, 1.5, 2.5, 3.5> + <1, 2, 3, 4>
    vec = ir.VectorType(DBL, 4)
    scale = ir.Function(m, ir.FunctionType(ir.VoidType(), [DBL.as_pointer()]), "scale")
    b = ir.IRBuilder(scale.append_basic_block())
    p = b.bitcast(scale.args[0], vec.as_pointer())
    value = b.fmul(b.load(p, align=8), ir.Constant(vec, [0.5, 1.5, 2.5, 3.5]))
    b.store(b.fadd(value, ir.Constant(vec, [1.0, 2.0, 3.0, 4.0])), p, align=8)
    b.ret_void()

    # i64 pick(i64 k): a switch LLVM turns into a table
    pick = ir.Function(m, ir.FunctionType(I64, [I64]), "pick")
    b = ir.IRBuilder(pick.append_basic_block())
    default = pick.append_basic_block()
    switch = b.switch(pick.args[0], default)
    for case, result in enumerate((17, 4, 99, 23, 5, 61, 8)):
        block = pick.append_basic_block()
        switch.add_case(ir.Constant(I64, case), block)
        ir.IRBuilder(block).ret(ir.Constant(I64, result))
    ir.IRBuilder(default).ret(ir.Constant(I64, -1))
    return m


def exercise(module: library.CompiledModule) -> dict[str, object]:
    """Call every function of a library module; the results."""
    elem_fn = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double, ctypes.c_int64)(module.address("elem"))
    fill = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(module.address("fill"))
    scale = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(module.address("scale"))
    pick = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(module.address("pick"))
    buffer, source = np.zeros(64, np.uint8), np.arange(1, 21, dtype=np.uint8)
    fill(buffer.ctypes.data, source.ctypes.data, 20)
    vector = np.array([1.0, 2.0, 3.0, 4.0])
    scale(vector.ctypes.data)
    return {"elem": [elem_fn(0.5, 3), elem_fn(-1.0, 10)], "fill": buffer.tolist(), "scale": vector.tolist(),
            "pick": [pick(k) for k in range(-1, 9)]}


EXPECTED = {
    "elem": [math.exp(0.5) + 4.5 + 2.5 + 0.25 + 1, math.exp(-1.0) + 3.0 - 2.0 + 1.0 + 2],
    "fill": list(range(1, 21)) + [7] * 20 + [0] * 24,
    "scale": [1.5, 5.0, 10.5, 18.0],
    "pick": [-1, 17, 4, 99, 23, 5, 61, 8, -1, -1],
}


def test_object_code_loads_and_runs_like_the_compiled_module() -> None:
    _register_externals()
    compiled = library.CompiledModule(library_module())
    assert exercise(compiled) == EXPECTED
    obj = compiled.object_code()
    assert obj[:4] == b"\x7fELF" or sys.platform != "linux"
    assert {"memset", "memcpy", "exp", CALLBACK, OTHER} <= set(library.undefined_symbols(obj) or ())
    loaded = library.CompiledModule.from_object(obj, llvm_ir=compiled.llvm_ir())
    assert loaded.object_code() == obj
    assert exercise(loaded) == EXPECTED  # its own copy of the globals: the counter starts at 0 again
    assert loaded.llvm_ir() == compiled.llvm_ir()
    assert "elem:" in loaded.assembly() and "pick:" in loaded.assembly()
    with pytest.raises(KeyError, match="nothing_here"):
        loaded.address("nothing_here")


def test_unresolved_symbols_are_refused_not_fatal() -> None:
    _register_externals()
    # object code emitted without loading it: compiling would make LLVM abort on the missing symbol
    obj = host_target().machine().emit_object(llvm_target.optimize(library_module(missing="graphc_test_nowhere")))
    with pytest.raises(library.UnresolvedSymbolError, match="graphc_test_nowhere") as info:
        library.CompiledModule.from_object(obj)
    assert info.value.symbols == ("graphc_test_nowhere",)
    with pytest.raises(ValueError, match="not an object file"):
        library.CompiledModule.from_object(b"certainly not an object file")
    loaded = library.CompiledModule.from_object(library.CompiledModule(library_module()).object_code())  # no IR kept
    with pytest.raises(RuntimeError, match="without its LLVM IR"):
        loaded.llvm_ir()
    with pytest.raises(RuntimeError, match="without its LLVM IR"):
        loaded.assembly()


# ---- location -------------------------------------------------------------------------------------

def test_cache_location_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "mine"))
    assert cc.cache_root() == tmp_path / "mine" and cc.enabled()
    version_dir = cc.cache_dir()
    assert version_dir is not None and version_dir.parent == tmp_path / "mine"
    assert gc.__version__ in version_dir.name and ".".join(map(str, llvm.llvm_version_info)) in version_dir.name
    for off in ("off", "OFF", " off "):
        monkeypatch.setenv("GRAPHC_CACHE_DIR", off)
        assert cc.cache_root() is None and cc.cache_dir() is None and not cc.enabled()
    monkeypatch.delenv("GRAPHC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cc.cache_root() == tmp_path / "xdg" / "graphc"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cc.cache_root() == tmp_path / "home" / ".cache" / "graphc"


def test_the_test_session_caches_in_its_own_directory() -> None:
    root = cc.cache_root()
    assert root is not None and not str(root).startswith(os.path.expanduser("~") + os.sep + ".cache")
    key = cc.key("the session's cache directory is usable")
    assert cc.store(key, ENTRY) and cc.load(key) == ENTRY


# ---- entries ----------------------------------------------------------------------------------------

@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> pathlib.Path:
    """A fresh cache root of this test; warnings are given afresh."""
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cc, "_warned", set())
    return tmp_path / "cache"


def test_has_tells_whether_an_entry_is_stored(cache: pathlib.Path) -> None:
    """What the CPU backend asks before starting a child to compile a runtime part: a stat, no read."""
    key = cc.key("an entry asked about")
    assert not cc.has(key) and not cc.DiskCache().has(key)
    assert cc.store(key, ENTRY)
    assert cc.has(key) and cc.DiskCache().has(key)
    assert not cc.has(cc.key("another entry"))


ENTRY = CachedCode(b"\x7fELF pretend object code \x00\xff" * 10, "define void @f() {\n  ret void\n}\n",
                 {"slots": {"x": 0, "y": 1}, "allocations": [[2, [3, 4], "float32"]], "faults": ["a ✓ message"]})


def entry_file(key: str) -> pathlib.Path:
    directory = cc.cache_dir()
    assert directory is not None
    return directory / f"{key}.gco"


def test_store_and_load(cache: pathlib.Path) -> None:
    key = cc.key("test_store_and_load")
    assert cc.load(key) is None and not cache.exists()  # a miss creates nothing
    assert cc.store(key, ENTRY)
    assert cc.load(key) == ENTRY
    path = entry_file(key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700 and stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    data = path.read_bytes()
    assert data.startswith(cc.MAGIC) and key.encode() in data[:100]
    newer = CachedCode(b"other object", "other IR", {})
    assert cc.store(key, newer) and cc.load(key) == newer  # stored again: replaced
    with pytest.raises(ValueError, match="64 lowercase hex"):
        cc.load("../../etc/passwd")
    with pytest.raises(TypeError, match="JSON"):
        cc.store(key, CachedCode(b"", "", {"shape": (2, 3)}))  # would come back as a list
    with pytest.raises(TypeError, match="JSON"):
        cc.store(key, CachedCode(b"", "", {"value": float("nan")}))
    with pytest.raises(TypeError, match="JSON"):
        cc.store(key, CachedCode(b"", "", {"f": print}))


def test_source_fingerprint_is_kept_by_a_process_that_only_loads(cache: pathlib.Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The digest of graphc's sources is saved by a hit too, and reused while no file's size or time changes."""
    key = cc.key("test_source_fingerprint")
    assert cc.store(key, ENTRY)
    (cache / cc.FINGERPRINT_FILE).unlink(missing_ok=True)
    monkeypatch.setattr(cc, "_fingerprint_unsaved", [])
    cc._source_fingerprint.cache_clear()
    digest = cc._source_fingerprint()  # hashed again: nothing saved
    assert cc.load(key) == ENTRY  # a hit (no store) keeps it
    saved = json.loads((cache / cc.FINGERPRINT_FILE).read_text())
    assert saved["digest"] == digest
    names = [name for name, _, _ in saved["files"]]
    package = pathlib.Path(cc.__file__).resolve().parent.parent
    assert names == sorted(p.relative_to(package).as_posix() for p in package.rglob("*.py")
                           if "__pycache__" not in p.parts)
    assert "runtime/compile_cache.py" in names
    # the next process reads the saved digest instead of hashing (a planted one shows which it used);
    # a changed size or time makes it hash again
    (cache / cc.FINGERPRINT_FILE).write_text(json.dumps({**saved, "digest": "planted"}))
    cc._source_fingerprint.cache_clear()
    assert cc._source_fingerprint() == "planted"
    saved["files"][0][2] += 1
    (cache / cc.FINGERPRINT_FILE).write_text(json.dumps({**saved, "digest": "planted"}))
    cc._source_fingerprint.cache_clear()
    assert cc._source_fingerprint() == digest
    cc._source_fingerprint.cache_clear()


def test_cache_off(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("GRAPHC_CACHE_DIR", "off")
    key = cc.key("off")
    assert not cc.store(key, ENTRY) and cc.load(key) is None and cc.clear() == 0


def _corruptions(data: bytes, other_key_data: bytes) -> dict[str, bytes]:
    flipped = bytearray(data)
    flipped[-5] ^= 0x40
    header = bytearray(data)
    header[len(cc.MAGIC) + 4 + 64 + 32 + 8 + 10] ^= 1  # inside the JSON header
    version = bytearray(data)
    version[len(cc.MAGIC)] += 1
    return {
        "empty": b"", "magic only": cc.MAGIC, "truncated prefix": data[:50], "truncated payload": data[:-1],
        "half": data[: len(data) // 2], "appended": data + b"\0", "flipped object byte": bytes(flipped),
        "flipped header byte": bytes(header), "wrong magic": b"\x89GRAPHX\n" + data[8:],
        "newer format": bytes(version), "another key's entry": other_key_data, "text": b"hello\n" * 50,
    }


def test_damaged_entries_are_refused_then_overwritten(cache: pathlib.Path) -> None:
    key, other = cc.key("damaged"), cc.key("other")
    assert cc.store(key, ENTRY) and cc.store(other, ENTRY)
    path = entry_file(key)
    good = path.read_bytes()
    for what, data in _corruptions(good, entry_file(other).read_bytes()).items():
        path.write_bytes(data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert cc.load(key) is None, what
        assert all(issubclass(w.category, cc.CompileCacheWarning) for w in caught)
        assert cc.store(key, ENTRY) and cc.load(key) == ENTRY, what
    # one warning per kind per process, naming the file
    cc._warned.clear()
    path.write_bytes(b"junk")
    with pytest.warns(cc.CompileCacheWarning, match="damaged"):
        assert cc.load(key) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cc.load(key) is None  # not warned twice


def test_entries_it_did_not_write_are_refused(cache: pathlib.Path) -> None:
    key = cc.key("foreign")
    assert cc.store(key, ENTRY)
    path = entry_file(key)
    # a symlink to a good entry
    real = path.with_name("real")
    path.rename(real)
    path.symlink_to(real)
    assert cc.load(key) is None
    path.unlink()
    real.rename(path)
    # writable by others
    path.chmod(0o666)
    with pytest.warns(cc.CompileCacheWarning, match="writable by others"):
        assert cc.load(key) is None
    path.chmod(0o600)
    assert cc.load(key) == ENTRY
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # owned by someone else
        os.chown(path, 4242, -1)
        assert cc.load(key) is None
        os.chown(path, 0, -1)
    # a directory writable by others: nothing in it is read, nothing written
    directory = path.parent
    directory.chmod(0o777)
    with pytest.warns(cc.CompileCacheWarning, match="chmod go-w"):
        assert cc.load(key) is None
    assert not cc.store(cc.key("another"), ENTRY) and not entry_file(cc.key("another")).exists()
    directory.chmod(0o700)
    cache.chmod(0o775)
    assert cc.load(key) is None
    cache.chmod(0o700)
    assert cc.load(key) == ENTRY


def test_unusable_cache_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setattr(cc, "_warned", set())
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(blocker))
    with pytest.warns(cc.CompileCacheWarning, match="cannot create"):
        assert not cc.store(cc.key("x"), ENTRY)
    assert cc.load(cc.key("x")) is None and blocker.read_text() == "not a directory"


def test_concurrent_stores(cache: pathlib.Path) -> None:
    key = cc.key("concurrent")
    entries = [CachedCode(bytes([i]) * 5000, f"ir {i}" * 100, {"i": i}) for i in range(8)]
    seen: list[CachedCode | None] = []

    def work(entry: CachedCode) -> None:
        for _ in range(10):
            assert cc.store(key, entry)
            seen.append(cc.load(key))

    threads = [threading.Thread(target=work, args=(e,)) for e in entries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(s in entries for s in seen)  # every read saw one whole entry
    assert [p.name for p in entry_file(key).parent.iterdir()] == [entry_file(key).name]


def test_clear(cache: pathlib.Path) -> None:
    for i in range(3):
        assert cc.store(cc.key("clear", i), ENTRY)
    older = cache / "v0-graphc-0.0.1-llvm-1.0.0"
    older.mkdir()
    (older / f"{'0' * 64}.gco").write_bytes(b"old")
    mine = cache / "notes.txt"
    mine.write_text("not graphc's")
    assert cc.clear() == 4
    assert sorted(p.name for p in cache.iterdir()) == ["notes.txt"]
    assert cc.clear() == 0


# ---- keys -------------------------------------------------------------------------------------------

def test_key_is_canonical() -> None:
    a = cc.key("x", 1, 2.5, None, True, b"raw", (1, 2), [1, 2], {"b": 1, "a": np.float32(2)},
               np.dtype("float32"), np.arange(6, dtype=np.int32).reshape(2, 3))
    b = cc.key("x", 1, 2.5, None, True, b"raw", (1, 2), [1, 2], {"a": np.float32(2), "b": 1},
               np.dtype("float32"), np.arange(6, dtype=np.int32).reshape(2, 3))
    assert a == b and len(a) == 64 and int(a, 16) >= 0
    variants = [cc.key(1), cc.key(1.0), cc.key(True), cc.key("1"), cc.key((1,)), cc.key([1]), cc.key(np.int64(1)),
                cc.key(np.arange(6, dtype=np.int32).reshape(3, 2)), cc.key(np.arange(6, dtype=np.int64)),
                cc.key(np.arange(6, dtype=np.int32)), cc.key(("a", "b")), cc.key(("ab",)), cc.key(-0.0), cc.key(0.0)]
    assert len(set(variants)) == len(variants)
    for bad in (object(), {1, 2}, slice(1, 2), {1: "int key"}, np.array(["text"]), np.zeros(2, "O")):
        with pytest.raises(cc.UncacheableError):
            cc.key(bad)


def _model(scale: float = 2.0, axis: int = 1, hidden: int = 3):
    x = gc.placeholder("float32", (None, 4), name="x")
    labels = gc.placeholder("int64", (None,), name="labels")
    w = gc.Variable(np.ones((4, hidden), np.float32), name="w")
    logits = x @ w * scale
    h = gc.exp(logits)
    outputs = [gc.mean(gc.softmax_cross_entropy(logits, labels)), gc.sum(h * h, axis=axis), gc.relu(h) - gc.tanh(h),
               x[1:, ::2]]
    return [x, labels], outputs


def _graph_key(built, batch: int = 5, target: tuple[str, ...] | None = None, extra: tuple = ()) -> str:
    inputs, outputs = built
    program = Program(outputs, feedable=inputs)
    feeds = {inputs[0].id: np.zeros((batch, 4), np.float32), inputs[1].id: np.zeros(batch, np.int64)}
    return cc.graph_key(program.graph.nodes, program.plan(feeds), target or HOST, extra)


def _model_elsewhere():  # the same model built from other lines: other node names and locations
    return _model()


def test_graph_key_ignores_names_and_lines_but_not_the_graph() -> None:
    first = _graph_key(_model())
    assert any(n.op == "fused" for n in Program(_model()[1]).graph.nodes)
    assert _graph_key(_model_elsewhere()) == first
    different = {
        "constant": _graph_key(_model(scale=3.0)), "attribute": _graph_key(_model(axis=0)),
        "variable shape": _graph_key(_model(hidden=5)), "fed shape": _graph_key(_model(), batch=6),
        "target": _graph_key(_model(), target=("x86_64-unknown-linux-gnu", "generic", "")),
        "extra": _graph_key(_model(), extra=(2,)),
    }
    assert first not in different.values() and len(set(different.values())) == len(different)


def test_graph_key_is_the_same_in_another_process() -> None:
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        import test_compile_cache as t
        print(t._graph_key(t._model()))
    """)
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"  # other str hashes, other set orders
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": seed})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == _graph_key(_model())


def test_graph_key_refuses_what_it_cannot_describe() -> None:
    aval = AbstractValue(np.dtype("float32"), (2,))
    odd = Tensor(REGISTRY["placeholder"], (), {"dtype": np.dtype("float32"), "shape": (2,), "odd": object()}, aval,
                 "odd", None)
    with pytest.raises(cc.UncacheableError, match="object"):
        cc.graph_key([odd], {odd.id: aval}, HOST)
    x = gc.placeholder("float32", (2,))
    y = gc.exp(x)
    with pytest.raises(cc.UncacheableError, match="not among the nodes"):
        cc.graph_key([y], {y.id: aval}, HOST)  # its input is missing from the list


# ---- cached_compile: the whole cycle -----------------------------------------------------------------

def test_cached_compile_compiles_once(cache: pathlib.Path) -> None:
    _register_externals()
    built: list[int] = []
    prepared: list[dict] = []

    def build() -> tuple[ir.Module, dict]:
        built.append(1)
        return library_module(), {"functions": ["elem", "fill", "scale", "pick"]}

    key = cc.key("compile_module", HOST)
    module, meta = library.cached_compile(cc.DiskCache(), key, build, host_target())
    assert exercise(module) == EXPECTED and len(built) == 1
    again, meta_again = library.cached_compile(cc.DiskCache(), key, build, host_target(), prepare=prepared.append)
    assert exercise(again) == EXPECTED and meta_again == meta and len(built) == 1
    assert prepared == [meta] and again.llvm_ir() == module.llvm_ir()
    library.cached_compile(cc.DiskCache(), None, build, host_target())  # no key: no cache
    assert len(built) == 2
    # an entry whose code needs a symbol this process lacks is a miss: compiled and replaced
    obj = host_target().machine().emit_object(llvm_target.optimize(library_module(missing="graphc_test_nowhere")))
    assert cc.store(key, CachedCode(obj, "", {}))
    third, _ = library.cached_compile(cc.DiskCache(), key, build, host_target())
    assert exercise(third) == EXPECTED and len(built) == 3
    assert cc.load(key).code == third.object_code()


def _run_in_a_new_process(script: str) -> object:
    """What ``script`` prints (JSON), run by a fresh interpreter that imports this checkout's graphc."""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_second_process_compiles_nothing(cache: pathlib.Path) -> None:
    """The second process loads the first one's object code, relocated and linked against its own
    callback and other module (at other addresses), and runs it."""
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        import test_compile_cache as t
        from graphc.backends.cpu import library
        from graphc.backends.cpu.target import default_cpu, host_target
        from graphc.runtime import compile_cache as cc
        t._register_externals()
        built = []
        compiled = library.CompiledModule.__init__
        library.CompiledModule.__init__ = lambda *a, **k: (built.append(1), compiled(*a, **k))[1]
        module, meta = library.cached_compile(cc.DiskCache(), cc.key("second process"),
                                              lambda: (t.library_module(), {{"n": 1}}), host_target())
        print(json.dumps([len(built), meta, t.exercise(module) == t.EXPECTED]))
    """)
    runs = [_run_in_a_new_process(script) for _ in range(2)]
    assert runs == [[1, {"n": 1}, True], [0, {"n": 1}, True]]


def test_programs_over_the_same_nodes_with_different_outputs_do_not_share_code() -> None:
    """Which values a run hands back is part of the compiled entry point, so it is part of the key."""
    a, w = gc.placeholder("float32", (2, 1)), gc.placeholder("float32", (1, 1))
    m = a @ w
    y = gc.transpose(gc.transpose(m) * 0.5 + 1.0)
    av, wv = np.arange(2, dtype=np.float32).reshape(2, 1), np.full((1, 1), 3, np.float32)
    only_y = gc.function([a, w], y, device="cpu")(av, wv)
    both = gc.function([a, w], [m, y], device="cpu")(av, wv)
    np.testing.assert_allclose(only_y, av * 1.5 + 1.0)
    np.testing.assert_allclose(both[0], av * 3.0)
    np.testing.assert_allclose(both[1], av * 1.5 + 1.0)



def same_bits_digest() -> str:
    """The sha256 of a graph's results: float reductions split across 2 threads, a GEMM, a softmax."""
    import hashlib

    rng = np.random.default_rng(11)
    x = gc.placeholder("float32", (300, 1001), name="x")
    w = gc.Variable(rng.standard_normal((1001, 7)).astype(np.float32), name="w")
    outputs = [gc.sum(gc.exp(x) * x, axis=1), gc.prod(1.0 + x * 1e-3, axis=1), gc.softmax(x @ w), gc.mean(x),
               gc.logsumexp(x, axis=0), gc.tanh(x[:5]) * 2.0]
    values = rng.uniform(-2, 2, (300, 1001)).astype(np.float32)
    results = gc.function([x], outputs, threads=2)(values)
    return hashlib.sha256(b"".join(r.tobytes() for r in results)).hexdigest()


def test_a_graph_gives_the_same_bits_in_another_process_and_from_the_cache(cache: pathlib.Path) -> None:
    """docs/numerics.md: the same graph, shapes, device, CPU level and thread count give the same bits
    run after run, in another process, compiled or loaded from the compile cache."""
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        import test_compile_cache as t
        from graphc.backends.cpu import library
        from graphc.backends.cpu.target import set_default_cpu
        set_default_cpu({default_cpu()!r})  # the CPU level this test session compiles for (pytest --cpu)
        compiles = []
        compile_module = library.CompiledModule.__init__
        library.CompiledModule.__init__ = lambda *a, **k: (compiles.append(1), compile_module(*a, **k))[1]
        digest = t.same_bits_digest()
        print(json.dumps([digest, len(compiles)]))
    """)
    runs = [_run_in_a_new_process(script) for _ in range(2)]
    (first, compiled), (second, loaded) = runs
    assert compiled > 0 and loaded == 0  # the second process ran the first one's code from the cache
    assert first == second == same_bits_digest() == same_bits_digest()  # and this process, twice


def test_a_cache_hit_does_not_lower_the_graph_again(cache: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from graphc.lower import program

    def graph() -> tuple[list[gc.Tensor], gc.Tensor]:
        x = gc.placeholder("float32", (4, 3))
        idx = gc.placeholder("int64", (2,))
        return [x, idx], gc.take(gc.exp(x) * 2.0, idx, axis=0) + 1.0

    feeds = [np.ones((4, 3), np.float32), np.array([3, 1])]
    inputs, out = graph()
    first = gc.function(inputs, out)(*feeds)
    monkeypatch.setattr(program, "LoweredProgram", lambda *a, **k: pytest.fail("lowered again on a cache hit"))
    inputs, out = graph()  # the same graph built again: its code and layout come from the cache
    fn = gc.function(inputs, out)
    np.testing.assert_array_equal(fn(*feeds), first)
    with pytest.raises(gc.ExecutionError, match=r"take.*test_compile_cache\.py:\d+.*out of range"):
        fn(feeds[0], np.array([0, 9]))  # the fault restored from the entry names the op and the line
