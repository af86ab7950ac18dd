"""The generated GEMM (graphc.backends.cpu.gemm) against NumPy: shapes, strides, edges, row/column ranges, the
epilogue hook, the blocking chosen per target and the vector FMA in the machine code."""

from __future__ import annotations

import ctypes
import platform

import numpy as np
import pytest
from llvmlite import ir

from graphc.backends.cpu import gemm
from graphc.backends.cpu.library import CompiledModule
from graphc.codegen.target import Target, new_module
from util import assert_identical, assert_within, gemm_bound

I64 = ir.IntType(64)
L = ctypes.c_int64
P = ctypes.c_void_p
BASE_ARGS = [L, L, L, P, L, L, P, L, L, P, L, P]
X86 = platform.machine().lower() in ("x86_64", "amd64")
DTYPES = [np.float32, np.float64]


def _name(dtype) -> str:
    return "gemm_" + np.dtype(dtype).name


class Gemm:
    """The three entry points of ``emit_gemm`` for one dtype, called on NumPy arrays through ctypes."""

    def __init__(self, compiled: CompiledModule, name: str, dtype, target: Target, extra: int = 0) -> None:
        self.dtype, self.target, self.compiled = np.dtype(dtype), target, compiled
        tail = [P] * extra
        self.main = ctypes.CFUNCTYPE(None, *BASE_ARGS, *tail)(compiled.address(name))
        self.rows = ctypes.CFUNCTYPE(None, *BASE_ARGS, L, L, *tail)(compiled.address(name + "_rows"))
        self.block = ctypes.CFUNCTYPE(None, *BASE_ARGS, L, L, L, L, *tail)(compiled.address(name + "_block"))

    def args(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple:
        (M, K), N = a.shape, b.shape[1]
        assert a.dtype == b.dtype == c.dtype == self.dtype
        assert c.size == 0 or c.strides[1] == c.itemsize
        pack = np.empty(gemm.pack_buffer_elements(M, N, K, self.dtype, self.target) + 1, self.dtype)[1:]  # misaligned
        self._keep = pack
        s = self.dtype.itemsize
        return (M, N, K, a.ctypes.data, a.strides[0] // s, a.strides[1] // s, b.ctypes.data, b.strides[0] // s,
                b.strides[1] // s, c.ctypes.data, c.strides[0] // s if c.size else N, pack.ctypes.data)

    def __call__(self, a: np.ndarray, b: np.ndarray, *extra: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        if c is None:
            c = np.full((a.shape[0], b.shape[1]), np.nan, self.dtype)
        self.main(*self.args(a, b, c), *(e.ctypes.data for e in extra))
        return c


def _compile(target: Target, epilogue=None, extra_args=(), dtypes=DTYPES,
             direct_max_b_bytes: int = gemm.DIRECT_MAX_B_BYTES) -> dict:
    module = new_module("gemm_test", target)
    for dtype in dtypes:
        gemm.emit_gemm(module, _name(dtype), dtype, target, epilogue=epilogue, extra_args=extra_args,
                       direct_max_b_bytes=direct_max_b_bytes)
    compiled = CompiledModule(module, target)
    return {np.dtype(d): Gemm(compiled, _name(d), d, target, len(extra_args)) for d in dtypes}


@pytest.fixture(scope="module")
def host() -> dict:
    return _compile(Target.host())


@pytest.fixture(scope="module", params=["packed", "direct"])
def each_path(request) -> dict:
    """The kernels with every product forced onto one path: packed panels, or the direct kernels
    (which take every product whose B has contiguous rows; the others are packed still)."""
    return _compile(Target.host(), direct_max_b_bytes=0 if request.param == "packed" else 1 << 62)


def _reference(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact-ish product (float64) and a K-dependent error bound: (K + 2) * eps * (|A| @ |B|)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    eps = np.finfo(a.dtype).eps
    return a64 @ b64, (a.shape[1] + 2) * eps * (np.abs(a64) @ np.abs(b64)) + np.finfo(a.dtype).tiny


def _check(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    ref, bound = _reference(a, b)
    assert c.shape == ref.shape
    err = np.abs(c.astype(np.float64) - ref)
    assert np.all(err <= bound), f"max error {err.max()} where the bound is {bound.ravel()[np.argmax(err)]}"
    if a.dtype == np.float32:  # and as close to NumPy's own float32 matmul as that is to the exact product
        np.testing.assert_allclose(c, a @ b, rtol=0, atol=2 * float(bound.max()) if bound.size else 0)


def _rand(rng: np.random.Generator, shape: tuple[int, int], dtype) -> np.ndarray:
    return rng.uniform(-1, 1, size=shape).astype(dtype)


SHAPES = [(1, 1, 1), (7, 13, 17), (0, 5, 3), (5, 0, 3), (5, 3, 0), (0, 0, 0), (1, 257, 1), (257, 1, 3),
          (1000, 3, 2), (2, 3, 1000), (64, 64, 64), (100, 100, 100), (257, 257, 257), (6, 64, 4), (12, 32, 8),
          (31, 65, 33), (5, 17, 385), (37, 600, 401), (1600, 9, 5), (3, 97, 1)]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_numpy(each_path, rng, dtype, shape) -> None:
    M, N, K = shape
    a, b = _rand(rng, (M, K), dtype), _rand(rng, (K, N), dtype)
    c = each_path[np.dtype(dtype)](a, b)
    _check(c, a, b)
    if K == 0:
        assert np.array_equal(c, np.zeros((M, N), dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_float64_is_tight(host, rng, dtype) -> None:
    a, b = _rand(rng, (70, 90), dtype), _rand(rng, (90, 50), dtype)
    c = host[np.dtype(dtype)](a, b)
    rtol = 1e-12 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(c, a @ b, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_strided_and_transposed_operands(each_path, rng, dtype) -> None:
    g = each_path[np.dtype(dtype)]
    big_a, big_b = _rand(rng, (150, 210), dtype), _rand(rng, (240, 180), dtype)
    cases = [
        (big_a[::2, ::3], big_b[:70, ::2]),  # non-contiguous both ways
        (big_a[:80, :100].T.copy().T, big_b[:100, :90]),  # column-major A
        (big_a[:100, :37].T, big_b[:100, :53]),  # A transposed view (lda_row = 1)
        (big_a[:61, :90], big_b[:45, :90].T),  # B transposed view (ldb_col = K)
        (big_a[::-1, ::-2][:40, :50], big_b[::-1][:50, :70]),  # negative strides
        (big_a[:9, 5:6], big_b[7:8, :33]),  # K = 1 slices
        (big_a[:33, :150], big_b[:150, :37]),  # contiguous: every narrow tile of the direct path
        (big_a[:100, :20].T, big_b[:100, :49]),  # A transposed, B with 3 vectors and a tail
    ]
    for k, n in [(1, 1), (17, 3), (16, 64), (150, 70), (177, 129)]:  # B transposed: the transposing pack's
        cases.append((big_a[:13, :k], big_b[:n, :k].T))  # edges in depth and columns
    for a, b in cases:
        _check(g(a, b), a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_deep_transposed_b_takes_several_slabs(rng, dtype) -> None:
    """A ``B = X^T`` deeper than one packed slab (``kc``) and wider than one panel, on the packed path."""
    g = _compile(Target.host(), dtypes=[dtype], direct_max_b_bytes=0)[np.dtype(dtype)]
    kc = gemm.gemm_config(dtype).kc
    x = _rand(rng, (150, 2 * kc + 21), dtype)
    for a, b in [(_rand(rng, (29, x.shape[1]), dtype), x.T), (_rand(rng, (7, 40), dtype), x[:, :40].T)]:
        _check(g(a, b), a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_writes_only_c(host, rng, dtype) -> None:
    """C with a row stride larger than N: edge tiles touch nothing outside C[:M, :N]."""
    g = host[np.dtype(dtype)]
    for M, N, K in [(13, 21, 9), (7, 65, 400), (1, 1, 0)]:
        a, b = _rand(rng, (M, K), dtype), _rand(rng, (K, N), dtype)
        out = np.full((M + 3, N + 40), 7.0, dtype)
        g(a, b, c=out[:M, :N])
        _check(out[:M, :N], a, b)
        assert np.all(out[M:] == 7.0) and np.all(out[:, N:] == 7.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_row_count_of_a_wide_block(each_path, rng, dtype) -> None:
    """A wide block's last rows go to short tiles on the direct path (32 rows: five 6-row tiles and two
    4-row ones): every row count from 1 to 3 * mr + 1, with a column tail, in full and as row ranges."""
    g = each_path[np.dtype(dtype)]
    cfg = gemm.gemm_config(dtype)
    N, K = 2 * cfg.nr + 3, 9
    b = _rand(rng, (K, N), dtype)
    for M in range(1, 3 * cfg.mr + 2):
        a = _rand(rng, (M, K), dtype)
        _check(g(a, b), a, b)
        c = np.full((M, N), np.nan, dtype)
        args = g.args(a, b, c)
        for start in range(0, M, 5):  # ranges starting anywhere: the split is of the range's own rows
            g.rows(*args, start, min(M, start + 5))
        _check(c, a, b)


def _before_unreadable_page(shape: tuple[int, int], dtype) -> tuple[np.ndarray, object]:
    """An array of ``shape`` whose last element ends right where an unreadable page begins (and the
    mapping, which must outlive it)."""
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    page = mmap.PAGESIZE
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    pages = -(-nbytes // page) + 1
    mapping = mmap.mmap(-1, pages * page)
    start = ctypes.addressof(ctypes.c_char.from_buffer(mapping))
    assert libc.mprotect(ctypes.c_void_p(start + (pages - 1) * page), page, 0) == 0, ctypes.get_errno()
    array = np.frombuffer(mapping, dtype, int(np.prod(shape)), offset=(pages - 1) * page - nbytes)
    return array.reshape(shape), mapping


@pytest.mark.skipif(platform.system() != "Linux", reason="mprotect through libc")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_direct_path_reads_nothing_past_b(each_path, rng, dtype) -> None:
    """Full tiles read ``B``'s rows whole, edge tiles under a lane mask: with ``B`` read in place and
    ending at an unreadable page, every column count (within and past one tile) computes right and reads
    no byte after ``B``'s last element (a wrong read is a segfault here)."""
    g = each_path[np.dtype(dtype)]
    nr = gemm.gemm_config(dtype).nr
    for N in sorted({1, 3, nr // 2 + 1, nr - 1, nr, nr + 1, 2 * nr - 3, 2 * nr + 5}):
        for M, K in [(1, 1), (7, 5), (13, 40)]:
            b, mapping = _before_unreadable_page((K, N), dtype)
            b[...] = _rand(rng, (K, N), dtype)
            a = _rand(rng, (M, K), dtype)
            _check(g(a, b), a, b)
            del b
            mapping.close()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_row_and_block_ranges(host, rng, dtype) -> None:
    """_rows and _block compute exactly their part: the pieces a thread pool would hand out, with the
    same bits as one call (each element's K products are added in the same order whatever the split:
    docs/numerics.md)."""
    g = host[np.dtype(dtype)]
    M, N, K = 53, 150, 71
    a, b = _rand(rng, (M, K), dtype), _rand(rng, (K, N), dtype)
    whole = g(a, b)
    c = np.full((M, N), np.nan, dtype)
    args = g.args(a, b, c)
    for r0, r1 in [(0, 20), (20, 21), (21, 40), (40, 100)]:  # the last range runs past M: clamped
        g.rows(*args, r0, r1)
    _check(c, a, b)
    assert_identical(c, whole)
    c[:] = np.nan
    args = g.args(a, b, c)
    g.rows(*args, 10, 10)  # empty
    assert np.all(np.isnan(c))
    for r0, r1 in [(0, 30), (30, M)]:
        for c0, c1 in [(0, 17), (17, 99), (99, N)]:
            g.block(*args, r0, r1, c0, c1)
    _check(c, a, b)
    assert_identical(c, whole)


def _bias_relu(builder: ir.IRBuilder, value: ir.Value, row: ir.Value, cols: ir.Value) -> ir.Value:
    """relu(value + bias[col] + row_bias[row]), the bias read lane by lane at the (clamped) column indices."""
    col_bias, row_bias = gemm.epilogue_args(builder)
    vty = value.type
    bias = ir.Constant(vty, ir.Undefined)
    for lane in range(vty.count):
        idx = builder.extract_element(cols, ir.Constant(ir.IntType(32), lane))
        bias = builder.insert_element(bias, builder.load(builder.gep(col_bias, [idx])), ir.Constant(ir.IntType(32),
                                                                                                    lane))
    rb = builder.load(builder.gep(row_bias, [row]))
    rbv = builder.shuffle_vector(builder.insert_element(ir.Constant(vty, ir.Undefined), rb,
                                                        ir.Constant(ir.IntType(32), 0)),
                                 ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), vty.count),
                                                                             [0] * vty.count))
    x = builder.fadd(builder.fadd(value, bias), rbv)
    zero = ir.Constant(vty, 0.0)
    return builder.select(builder.fcmp_ordered(">", x, zero), x, zero)


@pytest.fixture(scope="module")
def with_epilogue() -> dict:
    target = Target.host()
    module = new_module("gemm_epilogue", target)
    for dtype in DTYPES:
        ptr = (ir.FloatType() if dtype == np.float32 else ir.DoubleType()).as_pointer()
        gemm.emit_gemm(module, _name(dtype), dtype, target, epilogue=_bias_relu, extra_args=[ptr, ptr])
    compiled = CompiledModule(module, target)
    return {np.dtype(d): Gemm(compiled, _name(d), d, target, extra=2) for d in DTYPES}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 13, 17), (64, 64, 64), (37, 130, 800), (9, 70, 0), (0, 4, 4)],
                         ids=lambda s: "x".join(map(str, s)))
def test_bias_relu_epilogue(with_epilogue, rng, dtype, shape) -> None:
    """Applied once, after the last k slab (K = 800 spans several), on full and edge tiles alike."""
    M, N, K = shape
    a, b = _rand(rng, (M, K), dtype), _rand(rng, (K, N), dtype)
    col_bias, row_bias = _rand(rng, (1, N), dtype)[0], _rand(rng, (1, M), dtype)[0]
    c = with_epilogue[np.dtype(dtype)](a, b, col_bias, row_bias)
    ref, bound = _reference(a, b)
    ref = np.maximum(ref + col_bias + row_bias[:, None], 0)
    assert np.all(np.abs(c - ref) <= 2 * bound + 4 * np.finfo(dtype).eps)
    if K == 0:
        np.testing.assert_array_equal(c, np.maximum(col_bias + row_bias[:, None], 0).astype(dtype))


def test_epilogue_with_row_ranges(with_epilogue, rng) -> None:
    g = with_epilogue[np.dtype(np.float32)]
    M, N, K = 29, 45, 20
    a, b = _rand(rng, (M, K), np.float32), _rand(rng, (K, N), np.float32)
    col_bias, row_bias = _rand(rng, (1, N), np.float32)[0], _rand(rng, (1, M), np.float32)[0]
    c = np.full((M, N), np.nan, np.float32)
    args = g.args(a, b, c)
    for r0, r1 in [(0, 11), (11, 29)]:
        g.rows(*args, r0, r1, col_bias.ctypes.data, row_bias.ctypes.data)
    ref = np.maximum(a.astype(np.float64) @ b + col_bias + row_bias[:, None], 0)
    np.testing.assert_allclose(c, ref, rtol=1e-5, atol=1e-5)
    assert_identical(c, g(a, b, col_bias, row_bias))  # the same bits as one call


def _mark_indices(builder: ir.IRBuilder, value: ir.Value, row: ir.Value, cols: ir.Value) -> ir.Value:
    """Writes 1 at col_flags[col] for every lane and at row_flags[row]; returns the value unchanged."""
    col_flags, row_flags = gemm.epilogue_args(builder)
    one = ir.Constant(value.type.element, 1.0)
    for lane in range(value.type.count):
        idx = builder.extract_element(cols, ir.Constant(ir.IntType(32), lane))
        builder.store(one, builder.gep(col_flags, [idx]))
    builder.store(one, builder.gep(row_flags, [row]))
    return value


def test_epilogue_indices_stay_in_bounds(rng) -> None:
    """Every row and column reaches the epilogue, and no index past the edges does (lanes are clamped)."""
    target = Target.host()
    module = new_module("gemm_indices", target)
    ptr = ir.DoubleType().as_pointer()
    gemm.emit_gemm(module, "g", np.float64, target, epilogue=_mark_indices, extra_args=[ptr, ptr])
    g = Gemm(CompiledModule(module, target), "g", np.float64, target, extra=2)
    for M, N, K in [(13, 37, 5), (6, 64, 3), (1, 1, 0)]:
        a, b = _rand(rng, (M, K), np.float64), _rand(rng, (K, N), np.float64)
        col_flags, row_flags = np.zeros(N + 64), np.zeros(M + 64)
        c = g(a, b, col_flags, row_flags)
        _check(c, a, b)
        assert np.all(col_flags[:N] == 1) and np.all(col_flags[N:] == 0)
        assert np.all(row_flags[:M] == 1) and np.all(row_flags[M:] == 0)


def test_pack_buffer_elements() -> None:
    target = Target.host()
    for dtype in DTYPES:
        cfg = gemm.gemm_config(dtype, target)
        small = gemm.pack_buffer_elements(3, 5, 7, dtype, target)
        assert small >= cfg.mr * 7 + cfg.nr * 7
        big = gemm.pack_buffer_elements(10**5, 10**5, 10**5, dtype, target)
        assert big == gemm.pack_buffer_elements(10**6, 10**6, 10**6, dtype, target)  # bounded by the blocks
        assert big >= (cfg.mc + cfg.nc) * cfg.kc
        assert gemm.pack_buffer_elements(0, 0, 0, dtype, target) > 0


def test_blocking_follows_the_vector_width() -> None:
    x86 = "x86_64-unknown-linux-gnu"
    avx512 = Target(x86, "skylake-avx512", "+avx,+avx2,+fma,+avx512f")
    avx2 = Target(x86, "haswell", "+avx,+avx2,+fma")
    sse = Target(x86, "x86-64", "+sse2,-avx")
    neon = Target("aarch64-unknown-linux-gnu", "generic", "+neon")
    expect = {avx512: (16, 8, True), avx2: (8, 4, True), sse: (4, 2, False), neon: (4, 2, True)}
    for target, (lanes32, lanes64, fma) in expect.items():
        c32, c64 = gemm.gemm_config(np.float32, target), gemm.gemm_config(np.float64, target)
        assert (c32.lanes, c64.lanes, c32.fma) == (lanes32, lanes64, fma)
        for cfg in (c32, c64):
            _, regs, _ = gemm.vector_bits(target)
            assert cfg.mr * cfg.nv + cfg.nv + 1 <= regs  # accumulators + B vectors + a broadcast fit
            assert cfg.kc * cfg.mr * cfg.itemsize <= 16 * 1024  # an A micro-panel: half of L1
            assert cfg.nc % cfg.nr == 0 and cfg.mc % cfg.mr == 0
    with pytest.raises(TypeError):
        gemm.gemm_config(np.int32, avx2)


def test_machine_code_uses_vector_fma(host) -> None:
    if not X86 or "+fma" not in Target.host().features:
        pytest.skip("checks x86 FMA instructions")
    asm = host[np.dtype(np.float32)].compiled.assembly()
    width = "zmm" if "+avx512f" in Target.host().features else "ymm"
    fmas = [line.split() for line in asm.splitlines() if line.strip().startswith("vfmadd")]
    assert any(op.endswith("ps") and width in " ".join(rest) for op, *rest in fmas)  # packed float32
    assert any(op.endswith("pd") and width in " ".join(rest) for op, *rest in fmas)  # packed float64


@pytest.mark.parametrize("kind", ["avx2", "sse2"])
def test_narrower_targets(host, rng, kind) -> None:
    """The 8-lane (AVX2) and 4-lane (SSE, no FMA unit) kernels, compiled for those targets, run on this host:
    within the promise's bound of this host's kernels (another CPU level: docs/numerics.md)."""
    this = Target.host()
    if not X86:
        pytest.skip("x86 targets")
    if kind == "avx2":
        if not all(f"+{f}" in this.features for f in ("avx2", "fma")):
            pytest.skip("host lacks AVX2/FMA")
        target = Target(this.triple, "haswell", "+avx,+avx2,+fma,+sse4.2,+popcnt")
    else:
        target = Target(this.triple, "x86-64", "+sse2")
    kernels = _compile(target)
    packed = _compile(target, direct_max_b_bytes=0)
    assert gemm.gemm_config(np.float32, target).lanes == (8 if kind == "avx2" else 4)
    for dtype, g in kernels.items():
        for path in (g, packed[dtype]):
            for M, N, K in [(1, 1, 1), (7, 13, 17), (31, 33, 0), (100, 100, 100), (13, 70, 400), (30, 9, 20)]:
                a, b = _rand(rng, (M, K), dtype), _rand(rng, (K, N), dtype)
                _check(path(a, b), a, b)
                assert_within(path(a, b), host[np.dtype(dtype)](a, b), gemm_bound(a, b))
            a, b = _rand(rng, (40, 30), dtype).T, _rand(rng, (33, 40), dtype).T
            _check(path(a, b), a, b)
    if kind == "avx2":
        asm = kernels[np.dtype(np.float32)].compiled.assembly()
        assert any(line.strip().startswith("vfmadd") and "ymm" in line for line in asm.splitlines())
        assert "zmm" not in asm
