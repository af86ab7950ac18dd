"""Ahead-of-time compilation: symbolic dims, the C ABI (through ctypes), gc.aot.load, the command.

Every compiled library is compared with gc.function on the same inputs; the C side (a real C
program, valgrind, pthreads) is in test_aot_example.py.  A library runs the version for this CPU's
level (x86-64-v3 here, the baseline or v4 elsewhere) on its own thread count, gc.function the code for
this exact CPU on all cores: another CPU level and thread count, so results agree as
docs/numerics.md promises (the same bits elementwise, float reductions and GEMMs within its bounds).
"""

from __future__ import annotations

import ctypes
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

import graphc as gc
from graphc.aot.abi import FIRST_FAULT
from graphc.ir.symbolic import DynamicDimError, SymInt, Unifier, evaluate, hint
from graphc.lower.program import plan_groups
from util import CPU_LEVEL, DEVICES, THREADS, assert_identical, assert_paths_agree, assert_within, path_bounds

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="no C compiler to link shared objects")
ROOT = pathlib.Path(__file__).parent.parent
d0, d1 = SymInt.symbol(0), SymInt.symbol(1)


AOT_VS_JIT = {CPU_LEVEL, THREADS}
AOT_VS_NUMPY = {CPU_LEVEL, THREADS, DEVICES}


# ---- symbolic sizes -------------------------------------------------------------------------------


def test_symint_arithmetic_is_polynomial_and_collapses_to_int() -> None:
    assert str(d0 * 784) == "784*d0"
    assert (d0 * 784) // 28 == d0 * 28
    assert d0 + 1 - 1 == d0 and type(d0 - d0) is int
    assert evaluate(d0 * d1 + 3 * d0 + 2, [5, 7]) == 5 * 7 + 15 + 2
    assert hint(d0 * 3) == 3 * 64
    assert d0 != 1 and d0 == SymInt.symbol(0) and len({d0, SymInt.symbol(0)}) == 1


def test_symint_refuses_what_depends_on_run_time_values() -> None:
    assert d0 >= 0 and d0 + 1 > 0 and d0 < d0 + 1 and not d0 * 2 < d0
    with pytest.raises(DynamicDimError):
        _ = d0 < 5
    with pytest.raises(DynamicDimError):
        _ = (d0 * 3) // 2
    with pytest.raises(DynamicDimError):
        range(d0)  # type: ignore[call-overload]


def test_unifier_merges_symbols_and_pins_constants() -> None:
    u = Unifier()
    assert u.equate([d1, d0]) and u.resolve(d1 * 2) == d0 * 2
    assert u.equate([d0, 5]) and u.resolve(d1) == 5
    assert not u.equate([d0 * 2, d1])  # only single symbols merge


def test_plan_groups_never_shares_between_overlapping_lifetimes() -> None:
    sizes = {0: d0 * 4, 1: d0 * 8, 2: 100, 3: d0}
    lifetimes = {0: (0, 1), 1: (1, 2), 2: (2, 3), 3: (0, 0)}
    groups = plan_groups(sizes, lifetimes)
    assert sorted(s for g in groups for s in g) == [0, 1, 2, 3]
    for group in groups:
        for a in group:
            for b in group:
                if a != b:
                    assert lifetimes[a][1] < lifetimes[b][0] or lifetimes[b][1] < lifetimes[a][0]


# ---- compile and run ------------------------------------------------------------------------------


def classifier(rng: np.random.Generator, n_in: int = 20, hidden: int = 32, classes: int = 5) -> tuple:
    x = gc.placeholder(gc.float32, (None, n_in), name="x")
    y = gc.placeholder(gc.int64, (None,), name="labels")
    w1 = gc.Variable(rng.normal(size=(n_in, hidden)).astype(np.float32), name="w1")
    b1 = gc.Variable(rng.normal(size=hidden).astype(np.float32), name="b1")
    w2 = gc.Variable(rng.normal(size=(hidden, classes)).astype(np.float32), name="w2")
    logits = gc.matmul(gc.tanh(gc.matmul(x, w1) + b1), w2)
    loss = gc.mean(gc.softmax_cross_entropy(logits, y))
    return x, y, logits, loss, gc.argmax(logits, axis=1)


def test_dynamic_batch_matches_the_jit(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    x, y, logits, loss, pred = classifier(rng)
    art = gc.aot.compile([x, y], [logits, loss, pred], tmp_path / "clf")
    assert art.library == tmp_path / "clf.so" and art.header == tmp_path / "clf.h" and art.object is None
    assert art.signature.dims == ((f"{x.name}.shape[0]", f"{y.name}.shape[0]"),)  # the graph needs them equal
    model = gc.aot.load(tmp_path / "clf.so")
    jit = gc.function([x, y], [logits, loss, pred])
    for n in (1, 2, 7, 64, 301):
        xv, yv = rng.normal(size=(n, 20)).astype(np.float32), rng.integers(0, 5, n)
        got, want = model(xv, yv), jit(xv, yv)
        assert [g.shape for g in got] == [w.shape for w in want] and [g.dtype for g in got] == [w.dtype for w in want]
        assert_paths_agree(got, want, [logits, loss, pred], {x: xv, y: yv}, AOT_VS_JIT)
    empty = model(np.zeros((0, 20), np.float32), np.zeros(0, np.int64))
    assert empty[0].shape == (0, 5) and empty[2].shape == (0,)


def test_faults_become_error_codes_with_the_users_line(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    x, y, _logits, loss, _ = classifier(rng)
    model = gc.aot.load(gc.aot.compile([x, y], loss, tmp_path / "f").library)  # type: ignore[arg-type]
    fault = rf"(?s)returned {FIRST_FAULT}: .*label is out of range.*created at .*test_aot.py"
    with pytest.raises(gc.ExecutionError, match=fault):
        model(np.zeros((3, 20), np.float32), np.array([0, 9, 1]))
    assert model.error_string(FIRST_FAULT).startswith("softmax_cross_entropy")
    assert model.error_string(999) == model.error_string(-1) == "unknown error code"


def test_independent_dims_and_dims_pinned_by_the_graph(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    a = gc.placeholder(gc.float32, (None, None), name="a")
    b = gc.placeholder(gc.float32, (None,), name="b")
    c = gc.placeholder(gc.float32, (None, 3), name="c")
    outputs = [gc.exp(a) + b, c + gc.constant(np.arange(3, dtype=np.float32))]
    art = gc.aot.compile([a, b, c], outputs, tmp_path / "dims")
    assert art.signature.dims == ((f"{a.name}.shape[0]",), (f"{a.name}.shape[1]", f"{b.name}.shape[0]"),
                                  (f"{c.name}.shape[0]",))
    model = gc.aot.load(art.library)  # type: ignore[arg-type]
    av, bv, cv = rng.random((3, 4)).astype(np.float32), rng.random(4).astype(np.float32), rng.random((2, 3))
    got = model(av, bv, cv.astype(np.float32))
    bounds = path_bounds(outputs, {a: av, b: bv, c: cv.astype(np.float32)}, AOT_VS_NUMPY)
    assert_within(got[0], np.exp(av) + bv, bounds[0], signed_zeros=False)
    assert_identical(got[1], cv.astype(np.float32) + np.arange(3, dtype=np.float32))
    # a None dimension that broadcasting fixes to 4 is static in the library
    p = gc.placeholder(gc.float32, (None,), name="p")
    art = gc.aot.compile([p], p + gc.constant(np.ones(4, np.float32)), tmp_path / "pinned")
    assert art.signature.dims == () and art.signature.inputs[0].shape == (4,)
    assert "#define PINNED_NUM_DIMS 0" in art.header.read_text()


def test_static_graph_threads_and_outputs_that_are_not_computed_in_place(tmp_path: pathlib.Path,
                                                                          rng: np.random.Generator) -> None:
    x = gc.placeholder(gc.float64, (50, 300), name="x")
    w = gc.Variable(rng.normal(size=(300, 400)), name="w")
    y = gc.tanh(x @ w)
    s = gc.sum(y * y, axis=0)
    c = gc.constant(np.arange(3.0))
    outputs = [y, s, c, y, x]
    art = gc.aot.compile([x], outputs, tmp_path / "st", threads=2)
    assert art.signature.dims == ()
    model = gc.aot.load(art.library)  # type: ignore[arg-type]
    xv = rng.normal(size=(50, 300))
    assert_paths_agree(model(xv), gc.function([x], outputs)(xv), outputs, {x: xv}, AOT_VS_JIT)


def test_parallel_loops_and_reductions_over_run_time_dims(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    x = gc.placeholder(gc.float32, (None, 1000), name="x")
    outputs = [gc.exp(x) * 2.0, gc.sum(x, axis=0), gc.mean(x), gc.max(x, axis=1)]
    model = gc.aot.load(gc.aot.compile([x], outputs, tmp_path / "par", threads=2).library)  # type: ignore[arg-type]
    for n in (1, 3, 200):
        xv = rng.normal(size=(n, 1000)).astype(np.float32)
        got = model(xv)
        want = [np.exp(xv) * 2, xv.sum(axis=0), xv.mean(), xv.max(axis=1)]
        for g, w, bound in zip(got, want, path_bounds(outputs, {x: xv}, AOT_VS_NUMPY)):
            assert_within(g, w, bound, signed_zeros=False)


def test_conv_net_with_dynamic_batch(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    x = gc.placeholder(gc.float32, (None, 3, 8, 8), name="img")
    w = gc.Variable(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), name="w")
    y = gc.max_pool2d(gc.relu(gc.conv2d(x, w, padding="SAME")), 2)
    outputs = [gc.sum(y, axis=(1, 2, 3)), gc.avg_pool2d(y, 2)]
    model = gc.aot.load(gc.aot.compile([x], outputs, tmp_path / "conv").library)  # type: ignore[arg-type]
    jit = gc.function([x], outputs)
    for n in (1, 5):
        xv = rng.random((n, 3, 8, 8)).astype(np.float32)
        assert_paths_agree(model(xv), jit(xv), outputs, {x: xv}, AOT_VS_JIT)


def test_concurrent_calls_from_python_threads(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    x, y, logits, _loss, pred = classifier(rng)
    model = gc.aot.load(gc.aot.compile([x, y], [logits, pred], tmp_path / "mt").library)  # type: ignore[arg-type]
    jit = gc.function([x, y], [logits, pred])
    cases = [(rng.normal(size=(n, 20)).astype(np.float32), rng.integers(0, 5, n)) for n in (1, 17, 64, 250)]
    expected = [jit(*case) for case in cases]
    first = [model(*case) for case in cases]  # the library's own results: every later call gives the same bits
    for case, got, want in zip(cases, first, expected):
        assert_paths_agree(got, want, [logits, pred], {x: case[0], y: case[1]}, AOT_VS_JIT)
    failures: list[str] = []

    def work(k: int) -> None:
        for _ in range(50):
            got = model(*cases[k % len(cases)])
            want = first[k % len(cases)]
            if not all(g.tobytes() == w.tobytes() for g, w in zip(got, want)):
                failures.append(f"thread {k}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


# ---- the C ABI through ctypes ---------------------------------------------------------------------


def _entry(library: pathlib.Path, name: str):  # type: ignore[no-untyped-def]
    lib = ctypes.CDLL(str(library))
    run = getattr(lib, f"{name}_run")
    run.restype = ctypes.c_int
    run.argtypes = [ctypes.c_void_p] * 3
    return lib, run


def test_abi_refuses_bad_arguments_with_codes(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    a = gc.placeholder(gc.float32, (None, None), name="a")
    art = gc.aot.compile([a], gc.exp(a), tmp_path / "abi", name="m")
    header = art.header.read_text()
    for macro in ("M_OK 0", "M_ERROR_NULL_POINTER 1", "M_ERROR_NEGATIVE_DIM 2", "M_ERROR_TOO_LARGE 3",
                  "M_ERROR_OUT_OF_MEMORY 4"):
        assert f"#define {macro}" in header
    lib, run = _entry(art.library, "m")  # type: ignore[arg-type]
    av = rng.random((3, 4)).astype(np.float32)
    out = np.empty_like(av)
    ins = (ctypes.c_void_p * 1)(av.ctypes.data)
    outs = (ctypes.c_void_p * 1)(out.ctypes.data)

    def dims(*values: int) -> ctypes.Array:  # type: ignore[type-arg]
        return (ctypes.c_int64 * 2)(*values)

    assert run(dims(-1, 4), ins, outs) == 2
    assert run(dims(2**40, 2**40), ins, outs) == 3
    assert run(None, ins, outs) == 1
    assert run(dims(3, 4), None, outs) == 1
    assert run(dims(3, 4), ins, (ctypes.c_void_p * 1)(None)) == 1
    assert run(dims(3, 4), ins, outs) == 0
    assert_within(out, np.exp(av), path_bounds(gc.exp(a), {a: av}, AOT_VS_NUMPY)[0])
    nothing = (ctypes.c_void_p * 1)(None)
    assert run(dims(0, 4), nothing, nothing) == 0  # empty buffers may be NULL
    error_string = lib.m_error_string
    error_string.restype = ctypes.c_char_p
    assert b"negative" in error_string(2) and error_string(5) == b"unknown error code"


def test_header_states_names_dtypes_and_shapes(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    x, y, logits, loss, pred = classifier(rng)
    art = gc.aot.compile([x, y], [logits, loss, pred], tmp_path / "hdr", name="clf")
    header = art.header.read_text()
    for line in ("#define CLF_NUM_DIMS 1", f'#define CLF_INPUT_0_NAME "{x.name}"', '#define CLF_INPUT_1_DTYPE "int64"',
                 "typedef float clf_input_0_t;", "typedef int64_t clf_output_2_t;",
                 "#define CLF_INPUT_0_DIM_0(dims) ((dims)[0])", "#define CLF_INPUT_0_DIM_1(dims) 20",
                 "#define CLF_OUTPUT_0_SIZE(dims) ((int64_t)(((dims)[0]) * 5))",
                 f"#define CLF_INPUT_{y.name.upper()} 1",
                 "int clf_run(const int64_t *dims, const void *const *inputs, void *const *outputs);",
                 "const char *clf_error_string(int code);"):
        assert line in header, line
    lib = ctypes.CDLL(str(art.library))
    lib.clf_metadata.restype = ctypes.c_char_p
    meta = json.loads(lib.clf_metadata())
    assert meta["dims"] == [[f"{x.name}.shape[0]", f"{y.name}.shape[0]"]]
    assert [t["dtype"] for t in meta["inputs"]] == ["float32", "int64"]


def test_library_is_self_contained_and_exports_only_its_entry_points(tmp_path: pathlib.Path,
                                                                     rng: np.random.Generator) -> None:
    x, y, logits, loss, _pred = classifier(rng)
    art = gc.aot.compile([x, y], [logits, loss], tmp_path / "dep", threads=2)
    needed = gc.aot.needed_libraries(art.library)  # type: ignore[arg-type]
    assert needed and all(n.split(".so")[0] in ("libc", "libm", "libpthread") for n in needed), needed
    if shutil.which("nm"):
        symbols = subprocess.run(["nm", "-D", "--defined-only", str(art.library)], capture_output=True,
                                 text=True).stdout.split()
        assert {s for s in symbols if s.startswith(("dep_", "graphc"))} == {"dep_run", "dep_error_string",
                                                                            "dep_metadata"}


def test_default_target_is_the_portable_baseline_and_other_triples_give_objects(tmp_path: pathlib.Path) -> None:
    x = gc.placeholder(gc.float32, (None, 8), name="x")
    w = gc.Variable(np.ones((8, 3), np.float32))
    out = gc.softmax(x @ w, axis=-1)
    art = gc.aot.compile([x], out, tmp_path / "host")
    if art.target.triple.startswith("x86_64"):
        assert art.target.cpu == "x86-64" and art.target.features == ""
    art = gc.aot.compile([x], out, tmp_path / "arm", target="aarch64-unknown-linux-gnu", link=False)
    assert art.library is None and art.object is not None and art.header.exists()
    data = art.object.read_bytes()
    assert data[:4] == b"\x7fELF" and int.from_bytes(data[18:20], "little") == 183  # EM_AARCH64
    with pytest.raises(gc.AotError, match="unknown target triple"):
        gc.aot.compile([x], out, tmp_path / "bogus", target="bogus-none")


# ---- refusals and loader checks -------------------------------------------------------------------


def test_refusals_name_what_is_wrong(tmp_path: pathlib.Path) -> None:
    x = gc.placeholder(gc.float32, (None, 6), name="x")
    v = gc.Variable(np.zeros(6, np.float32))
    with pytest.raises(gc.GraphError, match="cannot update Variables"):
        gc.aot.compile([x], [gc.assign(v, gc.sum(x, axis=0))], tmp_path / "upd")
    with pytest.raises(gc.ArgumentError, match="C identifier"):
        gc.aot.compile([x], gc.exp(x), tmp_path / "bad", name="my-model")
    with pytest.raises(gc.ArgumentError, match="placeholders"):
        gc.aot.compile([gc.exp(x)], gc.exp(x), tmp_path / "bad")
    with pytest.raises(gc.GraphError, match="not among the inputs"):
        gc.aot.compile([], gc.exp(x), tmp_path / "bad")
    with pytest.raises(gc.ShapeError, match=r"(?s)static size.*created at .*test_aot.py"):
        gc.aot.compile([x], gc.reshape(x, (-1, 4)), tmp_path / "reshape")  # 6 * d0 / 4 is not a whole number


def test_loader_checks_feeds_like_gc_function(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    x, y, logits, loss, _pred = classifier(rng)
    model = gc.aot.load(gc.aot.compile([x, y], [logits, loss], tmp_path / "ld").library)  # type: ignore[arg-type]
    with pytest.raises(gc.FeedError, match=rf"{y.name}.*expected shape \[{x.name}.shape\[0\]\] = \[3\].*got \[4\]"):
        model(np.zeros((3, 20), np.float32), np.zeros(4, np.int64))
    with pytest.raises(gc.FeedError, match="expected shape"):
        model(np.zeros((3, 21), np.float32), np.zeros(3, np.int64))
    with pytest.raises(gc.FeedError, match="dtype"):
        model(np.zeros((3, 20), np.float32), np.zeros(3, np.float32))
    with pytest.raises(gc.FeedError, match="(?s)takes 2 inputs.*in the call at .*test_aot.py"):
        model(np.zeros((3, 20), np.float32))
    got = model(rng.normal(size=(3, 20)), [0, 1, 2])  # float64 and lists convert, as for gc.function
    assert got[0].dtype == np.float32
    with pytest.raises(gc.AotError, match="no compiled library"):
        gc.aot.load(tmp_path / "missing")
    with pytest.raises(gc.AotError, match="pass name="):
        gc.aot.load(tmp_path / "ld.so", name="other")


def test_graphc_aot_command(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    x, y, logits, loss, pred = classifier(rng)
    gc.save_graph(tmp_path / "model.gcg", [logits, loss, pred], [x, y])
    env = {"PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "graphc", "aot", str(tmp_path / "model.gcg"), "-o",
                             str(tmp_path / "build" / "model"), "--name", "classifier", "--object"],
                            capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "classifier_" in result.stdout and f"{x.name}.shape[0] = {y.name}.shape[0]" in result.stdout
    for suffix in (".so", ".h", ".o"):
        assert (tmp_path / "build" / f"model{suffix}").exists()
    model = gc.aot.load(tmp_path / "build" / "model.so", name="classifier")
    xv, yv = rng.normal(size=(4, 20)).astype(np.float32), rng.integers(0, 5, 4)
    assert_paths_agree(model(xv, yv)[0], gc.function([x, y], logits)(xv, yv), logits, {x: xv, y: yv}, AOT_VS_JIT)
    missing = subprocess.run([sys.executable, "-m", "graphc", "aot", str(tmp_path / "nope.gcg"), "-o", "x"],
                             capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert missing.returncode != 0 and "no such file" in missing.stderr


def test_every_cpu_level_version_gives_the_same_results(tmp_path: pathlib.Path, rng: np.random.Generator,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An x86-64 library holds baseline, v3 and v4 versions; GRAPHC_CPU_LEVEL caps the one chosen."""
    x, y, logits, loss, pred = classifier(rng, n_in=40, hidden=70)
    art = gc.aot.compile([x, y], [logits, loss, pred], tmp_path / "lv", object_file=True)
    if not art.target.triple.startswith("x86_64"):
        pytest.skip("multi-versioning is for x86-64")
    xv, yv = rng.normal(size=(33, 40)).astype(np.float32), rng.integers(0, 5, 33)
    want = gc.function([x, y], [logits, loss, pred])(xv, yv)
    # the combined object links into a working library by hand, too
    by_hand = tmp_path / "by_hand.so"
    subprocess.run(["cc", "-shared", "-o", str(by_hand), str(art.object), "-lm", "-lpthread"], check=True)
    copies = [(level, tmp_path / f"lv_{level}.so") for level in (1, 2, 3, 4)] + [(4, by_hand)]
    logits_by_level = {}
    for level, copy in copies:
        if copy != by_hand:
            shutil.copyfile(art.library, copy)  # type: ignore[arg-type]
        monkeypatch.setenv("GRAPHC_CPU_LEVEL", str(level))  # read on a library's first call
        got = gc.aot.load(copy, name="lv")(xv, yv)
        assert_paths_agree(got, want, [logits, loss, pred], {x: xv, y: yv}, AOT_VS_JIT)
        logits_by_level[level] = got[0]
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if cpuinfo.exists() and " fma " in cpuinfo.read_text():
        # the cap really picks another version: baseline code rounds a*b+c twice, the v3 code's FMA once
        assert not np.array_equal(logits_by_level[1], logits_by_level[3])


def test_elementwise_results_are_the_same_bits_at_every_cpu_level(tmp_path: pathlib.Path,
                                                                  rng: np.random.Generator,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/numerics.md: elementwise ops give the same bits in every version of a library (the baseline's
    float32 functions use the C library's fmaf where v3 has an FMA instruction) and in gc.function."""
    x = gc.placeholder(gc.float32, (None,), name="x")
    y = gc.placeholder(gc.float32, (None,), name="y")
    d = gc.cast(x, "float64")
    outputs = [gc.exp(x), gc.log1p(abs(x)), gc.expm1(x), gc.tanh(x), gc.sigmoid(x), gc.erf(x), gc.sin(x * 30.0),
               gc.cos(x), gc.softplus(x), gc.power(abs(x) + 0.5, y), gc.log(abs(x)), x * y + 1.0, x / y,
               gc.sqrt(abs(x)), x % y, x // y, gc.maximum(x, y), gc.round(x * 4.0), gc.exp(d), gc.tanh(d) * d]
    art = gc.aot.compile([x, y], outputs, tmp_path / "ew", object_file=True)
    if not art.target.triple.startswith("x86_64"):
        pytest.skip("multi-versioning is for x86-64")
    special = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-45, 1e-38, 3e38, 88.7, -103.9], np.float32)
    xv = np.concatenate([rng.uniform(-20, 20, 5000), rng.standard_normal(1000) * 1e-3, special]).astype(np.float32)
    yv = rng.uniform(-4, 4, xv.size).astype(np.float32)
    with np.errstate(all="ignore"):
        want = gc.function([x, y], outputs)(xv, yv)
        for level in (1, 2, 3, 4):
            monkeypatch.setenv("GRAPHC_CPU_LEVEL", str(level))  # read on a library's first call
            copy = tmp_path / f"ew_{level}.so"
            shutil.copyfile(art.library, copy)  # type: ignore[arg-type]
            for got, expected in zip(gc.aot.load(copy, name="ew")(xv, yv), want):
                assert_identical(got, expected)


def test_reloading_a_recompiled_library_gets_the_new_code(tmp_path: pathlib.Path) -> None:
    x = gc.placeholder(gc.float32, (None, 3), name="x")
    gc.aot.compile([x], x * 2.0, tmp_path / "same")
    first = gc.aot.load(tmp_path / "same.so")
    gc.aot.compile([x], gc.sum(x * 3.0, axis=1), tmp_path / "same")
    second = gc.aot.load(tmp_path / "same.so")
    xv = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(first(xv), 2 * xv)  # the first library keeps working
    np.testing.assert_array_equal(second(xv), [9.0, 9.0])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # private copies are gone


def test_slices_that_keep_a_run_time_dimension_whole(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    x = gc.placeholder(gc.float32, (None, 5), name="x")
    outputs = [x[:, 0], x[:, :2], x[..., 1:4:2], x[:], gc.split(x, [1], axis=1)[1], x[:, ::-1]]
    model = gc.aot.load(gc.aot.compile([x], outputs, tmp_path / "slices").library)  # type: ignore[arg-type]
    xv = rng.random((4, 5)).astype(np.float32)
    for got, want in zip(model(xv), gc.function([x], outputs)(xv)):
        np.testing.assert_array_equal(got, want)
    for bad in (x[-1], x[1:], gc.pad(x, [(1, 1), (0, 0)])):
        with pytest.raises(gc.ShapeError, match="run-time|static size"):
            gc.aot.compile([x], bad, tmp_path / "bad")
