"""Generated GEMM: ``C[M, N] = A[M, K] @ B[K, N]`` for float32 / float64, built with llvmlite's IRBuilder.

The structure is the classic Goto/BLIS one, written for a row-major ``C`` whose rows are cut into SIMD
vectors:

* **Micro-kernel.** An ``mr x nr`` tile of ``C`` (``nr = nv * W``, ``W`` lanes of the target's vector
  width: 16 float32 / 8 float64 for AVX-512, 8 / 4 for AVX(2), 4 / 2 for SSE and NEON) is held in
  ``mr * nv`` vector registers. Every step of ``k`` loads ``nv`` vectors of a ``B`` row (the last under a
  lane mask only in a tile at ``B``'s right edge read in place; a masked load in the k loop cost 30% on
  Zen 3), broadcasts ``mr`` ``A`` values and issues ``mr * nv`` vector ``llvm.fma`` (``llvm.fmuladd``
  where the target has no FMA unit); the ``k`` loop is unrolled by two. ``A`` is read with any strides and
  ``B`` with any row stride, so one kernel serves packed panels and operands read in place. The last
  columns of a block go to a narrower kernel (``1 .. nv - 1`` vectors); tiles at the ``M`` / ``N`` edges
  read the last row again and are stored with row guards and lane masks (``llvm.masked.load/store``).
* **Direct path** (small products). When ``B``'s rows are contiguous and ``B`` is small for the rows a
  call computes (within half of L2, :data:`DIRECT_MAX_B_BYTES`, for a few rows; less for many), nothing is
  packed: the kernels read ``A`` and ``B`` where they lie and add all of ``K`` in one pass. A block
  narrower than ``nv`` vectors (N <= 48 with AVX-512) takes a taller tile with as many accumulators
  (12 x 1, 12 x 2, 8 x 3 vectors), so that a skinny product still keeps the FMA units busy. A wide
  block's last rows take a 4-row tile where a full-height one would compute rows for nothing (32 rows:
  five 6-row tiles and two 4-row ones).
* **Packing.** For each ``kc``-deep slab, ``mc`` rows of ``A`` are copied into ``mr``-row micro-panels laid
  out ``[k][mr]`` and ``nc`` columns of ``B`` into ``nr``-column micro-panels laid out ``[k][nr]`` (zero
  padded), so the micro-kernel reads both with unit stride whatever ``A``'s and ``B``'s strides are
  (transposed and non-contiguous operands cost nothing beyond packing). Contiguous rows of ``B`` are
  copied with vector loads; a ``B`` with contiguous columns (``x @ w.T``) is read ``W`` rows of ``w`` at a
  time and transposed in registers (``W x W`` blocks, ``log2 W`` rounds of two-source shuffles).
* **Cache blocking** (the BLIS mapping for a broadcast side ``A`` and a vector side ``B``)::

      for ic in range(0, M, mc):          # A block: mc x kc (L3)
        for pc in range(0, K, kc):        #   pack A[ic:ic+mc, pc:pc+kc]
          for jc in range(0, N, nc):      #   pack B[pc:pc+kc, jc:jc+nc]   -> kc x nc block lives in L2
            for ir in range(0, mc, mr):   #     one A micro-panel (kc x mr) lives in L1 ...
              for jr in range(0, nc, nr): #     ... while B micro-panels stream from L2
                micro_kernel(...)

  ``kc`` is chosen so that an ``A`` micro-panel (``kc * mr`` elements) uses at most half of a 32 KiB L1,
  ``nc`` so that the packed ``B`` block (``kc * nc``) uses about 3/4 of a 1 MiB L2, and ``mc`` is large
  (an ``A`` block is reused across all of ``N`` from L3). For float32 with AVX-512 that is a ``6 x 64``
  micro-tile (6 x 4 zmm accumulators), ``kc = 384``, ``nc = 512``, ``mc = 1536``. See :func:`gemm_config`.
* **Epilogue.** ``epilogue(builder, value, row, cols) -> value`` runs on each vector of the finished tile
  (after the last ``kc`` slab) before it is stored: ``row`` is the ``i64`` row of ``C``, ``cols`` a
  ``<W x i64>`` vector of its columns. On edge tiles the rows past the last row and the lanes past the
  last column are clamped to that row / column (their results are discarded), so loads indexed by ``row``
  and ``cols`` stay in bounds. Values the epilogue needs (a bias pointer...) are passed as ``extra_args``
  and read with :func:`epilogue_args`.

Entry points emitted by :func:`emit_gemm` (``T`` is ``float`` or ``double``; all integers ``i64``)::

    void name(M, N, K, const T* A, lda_row, lda_col, const T* B, ldb_row, ldb_col, T* C, ldc, T* pack, ...extra)
    void name_rows(M, N, K, A, lda_row, lda_col, B, ldb_row, ldb_col, C, ldc, pack,
                   row_begin, row_end, ...extra)
    void name_block(M, N, K, A, lda_row, lda_col, B, ldb_row, ldb_col, C, ldc, pack,
                    row_begin, row_end, col_begin, col_end, ...extra)

``name_rows`` / ``name_block`` compute only ``C[row_begin:row_end, col_begin:col_end]`` (ranges are
clamped to ``[0, M)`` / ``[0, N)``) so a thread pool can split ``M`` (or ``N``) among threads, each with its
own ``pack`` buffer of :func:`pack_buffer_elements` elements (no alignment is required of it: the kernel
aligns it itself). ``C`` must not overlap ``A``, ``B`` or ``pack``. The functions are single-threaded and
call nothing outside the module (no BLAS, no libc), so they work unchanged in ahead-of-time objects.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from llvmlite import ir

from graphc.backends.cpu.gemm_config import ALIGN_BYTES, GemmConfig, gemm_config, pack_buffer_elements, vector_bits
from graphc.codegen.target import Target

Epilogue = Callable[[ir.IRBuilder, ir.Value, ir.Value, ir.Value], ir.Value]

I1 = ir.IntType(1)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
UNROLL = 2  # k steps per iteration of the micro-kernel loop (4 measured no faster and compiles slower)
DIRECT_MAX_B_BYTES = 512 * 1024
# The direct path reads B's rows in place, one row per step of k, for every row tile; packing B costs one
# copy of it.  Measured on Zen 3 (AVX2) over the (s) grid and the LSTM's products, packing pays once a block
# has many rows and B's rows are long: the direct path keeps all of DIRECT_MAX_B_BYTES for at most
# DIRECT_FEW_ROWS rows or rows of at most DIRECT_SHORT_ROW_BYTES, half of it for at most DIRECT_SOME_ROWS
# rows, and an eighth of it beyond (1600x512x64: packed 1.17x faster; 32x512x128: direct 1.09x).
DIRECT_FEW_ROWS = 16
DIRECT_SOME_ROWS = 64
DIRECT_SHORT_ROW_BYTES = 256


SHORT_ROWS = 4  # the direct path's tile for the last rows of a block (see emit_direct)


def kernel_tiles(cfg: GemmConfig) -> list[tuple[int, int]]:
    """The ``(rows, vectors)`` tiles of the micro-kernels: ``mr x 1 .. nv`` (the packed path's, and the
    direct path's for wide blocks), for direct blocks of fewer than ``nv`` vectors a taller tile with
    about as many accumulators (12 x 1, 12 x 2 and 8 x 3 with 32 vector registers; 12 x 1 with 16), and
    the direct path's short tile ``4 x nv`` for a wide block's last rows."""
    narrow = {1: 12, 2: 12, 3: 8} if cfg.nv >= 4 else {1: 12}
    return ([(cfg.mr, nv) for nv in range(1, cfg.nv + 1)] + [(mr, nv) for nv, mr in narrow.items() if nv < cfg.nv]
            + [(SHORT_ROWS, cfg.nv)])


_EXTRA_ARGS: weakref.WeakKeyDictionary[ir.Function, tuple[ir.Argument, ...]] = weakref.WeakKeyDictionary()


def epilogue_args(builder: ir.IRBuilder) -> tuple[ir.Argument, ...]:
    """Inside an epilogue callback: the values of the ``extra_args`` given to :func:`emit_gemm`."""
    return _EXTRA_ARGS[builder.function]


# ----------------------------------------------------------------------------------------------- helpers


def _c64(v: int) -> ir.Constant:
    return ir.Constant(I64, v)


def _intrinsic(module: ir.Module, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    return ir.Function(module, ir.FunctionType(ret, list(args)), name)


def _smin(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def _smax(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


class _Loop:
    """``for (i = start; i < stop; i += step)`` with extra loop-carried values; used as a context manager.

    Inside the ``with`` block ``loop.index`` and ``loop.carried`` are the current values; set
    ``loop.next_carried`` before leaving it. After the block, ``loop.results`` are the final carried values.
    """

    def __init__(self, b: ir.IRBuilder, start: ir.Value, stop: ir.Value, step: ir.Value | int = 1,
                 carried: Sequence[ir.Value] = (), name: str = "i") -> None:
        self.b, self.start, self.stop, self.name = b, start, stop, name
        self.step = _c64(step) if isinstance(step, int) else step
        self.init = list(carried)
        self.next_carried: list[ir.Value] = []

    def __enter__(self) -> _Loop:
        b = self.b
        fn = b.function
        self.pre = b.block
        self.head = fn.append_basic_block(f"{self.name}.head")
        self.body = fn.append_basic_block(f"{self.name}.body")
        self.exit = fn.append_basic_block(f"{self.name}.exit")
        b.branch(self.head)
        b.position_at_end(self.head)
        self.index = b.phi(I64, name=self.name)
        self.index.add_incoming(self.start, self.pre)
        self.carried = []
        for v in self.init:
            phi = b.phi(v.type)
            phi.add_incoming(v, self.pre)
            self.carried.append(phi)
        b.cbranch(b.icmp_signed("<", self.index, self.stop), self.body, self.exit)
        b.position_at_end(self.body)
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            return
        b = self.b
        nxt = b.add(self.index, self.step)
        latch = b.block
        self.index.add_incoming(nxt, latch)
        for phi, v in zip(self.carried, self.next_carried or self.carried, strict=True):
            phi.add_incoming(v, latch)
        b.branch(self.head)
        b.position_at_end(self.exit)
        self.results = list(self.carried)


def _is_true(v: ir.Value) -> bool:
    """``v`` is the constant ``i1 true`` (a condition known when the code is generated)."""
    return isinstance(v, ir.Constant) and v.type == I1 and v.constant in (1, True)


def _if(b: ir.IRBuilder, cond: ir.Value, name: str) -> tuple[ir.Block, ir.Block]:
    """Branch on ``cond``: returns (then block, join block); the builder is left in the then block."""
    fn = b.function
    then = fn.append_basic_block(f"{name}.then")
    join = fn.append_basic_block(f"{name}.join")
    b.cbranch(cond, then, join)
    b.position_at_end(then)
    return then, join


# ------------------------------------------------------------------------------------------------ emitter


class _GemmEmitter:
    def __init__(self, module: ir.Module, name: str, cfg: GemmConfig, epilogue: Epilogue | None,
                 extra_args: Sequence[ir.Type], direct_max_b_bytes: int = DIRECT_MAX_B_BYTES) -> None:
        self.module, self.name, self.cfg, self.epilogue = module, name, cfg, epilogue
        self.direct_max_b_bytes = direct_max_b_bytes
        self.extra_types = list(extra_args)
        self.T = ir.FloatType() if cfg.dtype == np.float32 else ir.DoubleType()
        self.P = self.T.as_pointer()
        self.V = ir.VectorType(self.T, cfg.lanes)
        self.VP = self.V.as_pointer()
        self.MASK = ir.VectorType(I1, cfg.lanes)
        self.IV = ir.VectorType(I64, cfg.lanes)
        self.vbytes = cfg.lanes * cfg.itemsize
        suffix = f"v{cfg.lanes}{'f32' if cfg.dtype == np.float32 else 'f64'}"
        fma = "llvm.fma" if cfg.fma else "llvm.fmuladd"
        self.fma_fn = _intrinsic(module, f"{fma}.{suffix}", self.V, [self.V] * 3)
        self.mload = _intrinsic(module, f"llvm.masked.load.{suffix}.p0", self.V, [self.VP, I32, self.MASK, self.V])
        self.mstore = _intrinsic(module, f"llvm.masked.store.{suffix}.p0", ir.VoidType(),
                                 [self.V, self.VP, I32, self.MASK])
        i8p = ir.IntType(8).as_pointer()
        self.prefetch = _intrinsic(module, "llvm.prefetch.p0", ir.VoidType(), [i8p, I32, I32, I32])

    # -- small IR helpers
    def splat(self, b: ir.IRBuilder, x: ir.Value, vty: ir.VectorType | None = None) -> ir.Value:
        vty = vty or self.V
        undef = ir.Constant(vty, ir.Undefined)
        v = b.insert_element(undef, x, ir.Constant(I32, 0))
        return b.shuffle_vector(v, undef, ir.Constant(ir.VectorType(I32, vty.count), [0] * vty.count))

    def vload(self, b: ir.IRBuilder, ptr: ir.Value, align: int) -> ir.Value:
        return b.load(b.bitcast(ptr, self.VP), align=align)

    def vstore(self, b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, align: int) -> None:
        b.store(value, b.bitcast(ptr, self.VP), align=align)

    # -- micro-kernel
    def finish_tile(self, b: ir.IRBuilder, acc: list[ir.Value], nv: int, c: ir.Value, ldc: ir.Value,
                    mrem: ir.Value, nrem: ir.Value, first: ir.Value, last: ir.Value, row0: ir.Value,
                    col0: ir.Value, col_last: ir.Value) -> None:
        """Store a finished ``(len(acc) / nv) x nv``-vector tile at ``c`` and return: full tiles without masks,
        edge tiles (fewer than the tile's rows or columns left) with row guards and lane masks."""
        mr, W = len(acc) // nv, self.cfg.lanes
        fn = b.function
        full = b.and_(b.icmp_signed("==", mrem, _c64(mr)), b.icmp_signed("==", nrem, _c64(nv * W)))
        bb_full = fn.append_basic_block("store.full")
        bb_edge = fn.append_basic_block("store.edge")
        b.cbranch(full, bb_full, bb_edge)
        lane_ids = ir.Constant(self.IV, list(range(W)))
        for edge, bb in ((False, bb_full), (True, bb_edge)):
            b.position_at_end(bb)
            masks = None
            cols = []
            col_last_v = self.splat(b, col_last, self.IV)
            for v in range(nv):
                cv = b.add(self.splat(b, b.add(col0, _c64(v * W)), self.IV), lane_ids)
                if edge:
                    cv = b.select(b.icmp_signed(">", cv, col_last_v), col_last_v, cv)
                cols.append(cv)
            if edge:
                masks = [self.lane_mask(b, nrem, v * W) for v in range(nv)]
            self.emit_store(b, acc, c, ldc, mrem, first, last, row0, cols, masks)
            b.ret_void()

    def lane_mask(self, b: ir.IRBuilder, count: ir.Value, offset: int) -> ir.Value:
        """The lanes of the vector starting at column ``offset`` of a tile that lie below ``count``."""
        W = self.cfg.lanes
        return b.icmp_signed("<", ir.Constant(self.IV, [offset + i for i in range(W)]), self.splat(b, count, self.IV))

    def emit_micro_kernel(self, mr: int, nv: int) -> ir.Function:
        """``kernel(a, a_row, a_col, b, b_row, kb, c, ldc, mrem, nrem, row, col, col_last, first, last,
        b_padded, ...extra)``: an ``mr x (nv * W)`` tile of ``C`` over a depth of ``kb``, reading ``A`` with
        any strides and ``B`` with unit column stride (row stride ``b_row``): the packed panels (strides
        ``1, mr`` and ``nr``) or the operands where they lie (the direct path).  ``B``'s rows are read whole
        when the tile is full or ``b_padded`` (a packed panel, zero-padded to ``nr`` columns); otherwise the
        last vector of each row is loaded under the lane mask of ``nrem`` (a masked load in the k loop
        measured 30% slower on Zen 3, so full tiles never pay for it).  Rows past ``mrem`` read the last
        row.  The tile is added to ``C`` unless ``first`` and goes through the epilogue if ``last`` (see
        :meth:`emit_store`)."""
        cfg, P = self.cfg, self.P
        W = cfg.lanes
        fnty = ir.FunctionType(ir.VoidType(), [P, I64, I64, P, I64, I64, P, I64, I64, I64, I64, I64, I64, I1, I1,
                                               I1, *self.extra_types])
        fn = ir.Function(self.module, fnty, f"{self.name}_kernel{mr}x{nv}")
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        fn.attributes.add("noinline")
        a0, a_row, a_col, b0, b_row, kb, c, ldc, mrem, nrem, row0, col0, col_last, first, last, b_padded = fn.args[:16]
        _EXTRA_ARGS[fn] = tuple(fn.args[16:])
        c.add_attribute("noalias")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        # prefetch the C tile for writing while the k loop runs
        i8p = ir.IntType(8).as_pointer()
        for r in range(mr):
            rowp = b.bitcast(b.gep(c, [b.mul(_c64(r), ldc)]), i8p)
            for off in range(0, nv * W * cfg.itemsize, 64):
                b.call(self.prefetch, [b.gep(rowp, [_c64(off)]), ir.Constant(I32, 1), ir.Constant(I32, 3),
                                       ir.Constant(I32, 1)])
        last_row = b.sub(mrem, _c64(1))
        rows = [b.gep(a0, [b.mul(_smin(b, _c64(r), last_row), a_row)]) for r in range(mr)]
        tail = self.lane_mask(b, nrem, (nv - 1) * W)
        align = ir.Constant(I32, cfg.itemsize)
        zero = ir.Constant(self.V, 0.0)
        a_steps = [b.mul(_c64(u), a_col) for u in range(UNROLL)]
        b_steps = [b.mul(_c64(u), b_row) for u in range(UNROLL)]

        def steps(b: ir.IRBuilder, ka: ir.Value, pb: ir.Value, acc: list[ir.Value], count: int,
                  masked: bool) -> list[ir.Value]:
            acc = list(acc)
            for u in range(count):
                rowp = b.gep(pb, [b_steps[u]]) if u else pb
                bv = [self.vload(b, b.gep(rowp, [_c64(v * W)]), cfg.itemsize) for v in range(nv)]
                if masked:
                    last = b.bitcast(b.gep(rowp, [_c64((nv - 1) * W)]), self.VP)
                    bv[-1] = b.call(self.mload, [last, align, tail, zero])
                k = b.add(ka, a_steps[u]) if u else ka
                for r in range(mr):
                    a = self.splat(b, b.load(b.gep(rows[r], [k])))
                    for v in range(nv):
                        acc[r * nv + v] = b.call(self.fma_fn, [a, bv[v], acc[r * nv + v]])
            return acc

        def k_loops(masked: bool) -> list[ir.Value]:
            acc0 = [zero] * (mr * nv)
            n_main = b.sdiv(kb, _c64(UNROLL))
            with _Loop(b, _c64(0), n_main, 1, [_c64(0), b0, *acc0], name="k4") as loop:
                ka, pb, *acc = loop.carried
                acc = steps(b, ka, pb, acc, UNROLL, masked)
                loop.next_carried = [b.add(ka, b.mul(_c64(UNROLL), a_col)),
                                     b.gep(pb, [b.mul(_c64(UNROLL), b_row)]), *acc]
            ka, pb, *acc = loop.results
            rem = b.sub(kb, b.mul(n_main, _c64(UNROLL)))
            with _Loop(b, _c64(0), rem, 1, [ka, pb, *acc], name="k1") as loop:
                ka, pb, *acc = loop.carried
                acc = steps(b, ka, pb, acc, 1, masked)
                loop.next_carried = [b.add(ka, a_col), b.gep(pb, [b_row]), *acc]
            return loop.results[2:]

        whole = b.or_(b_padded, b.icmp_signed(">=", nrem, _c64(nv * W)))
        whole_bb, masked_bb = fn.append_basic_block("k.whole"), fn.append_basic_block("k.masked")
        b.cbranch(whole, whole_bb, masked_bb)
        b.position_at_end(whole_bb)
        acc_whole = k_loops(masked=False)
        whole_end, done_bb = b.block, fn.append_basic_block("k.done")
        b.branch(done_bb)
        b.position_at_end(masked_bb)
        acc = self._merge(b, acc_whole, whole_end, k_loops(masked=True), done_bb)
        self.finish_tile(b, acc, nv, c, ldc, mrem, nrem, first, last, row0, col0, col_last)
        return fn

    def _accumulate(self, b: ir.IRBuilder, acc: list[ir.Value], nv: int, c: ir.Value, ldc: ir.Value,
                    mrem: ir.Value, first: ir.Value, masks: list[ir.Value] | None) -> list[ir.Value]:
        """The tile (``nv`` vectors a row) plus what ``C`` holds, unless ``first`` (the first slab of ``k``)."""
        cfg = self.cfg
        mr, W = len(acc) // nv, cfg.lanes
        align = ir.Constant(I32, cfg.itemsize)
        fn = b.function
        add_bb = fn.append_basic_block("store.accumulate")
        cont_bb = fn.append_basic_block("store.epilogue")
        pre_bb = b.block
        b.cbranch(first, cont_bb, add_bb)
        b.position_at_end(add_bb)
        summed = []
        for r in range(mr):
            rowp = b.gep(c, [b.mul(_c64(r), ldc)])
            for v in range(nv):
                p = b.gep(rowp, [_c64(v * W)])
                if masks is None:
                    old = self.vload(b, p, cfg.itemsize)
                else:
                    ok = b.icmp_signed("<", _c64(r), mrem)
                    m = b.and_(masks[v], self.splat(b, ok, self.MASK))
                    old = b.call(self.mload, [b.bitcast(p, self.VP), align, m, ir.Constant(self.V, 0.0)])
                summed.append(b.fadd(acc[r * nv + v], old))
        return self._merge(b, acc, pre_bb, summed, cont_bb)

    def _merge(self, b: ir.IRBuilder, before: list[ir.Value], before_bb: ir.Block, after: list[ir.Value],
               join: ir.Block) -> list[ir.Value]:
        """Branch to ``join`` and merge the tile as it came from ``before_bb`` with ``after``."""
        after_bb = b.block
        b.branch(join)
        b.position_at_end(join)
        merged = []
        for x, y in zip(before, after, strict=True):
            phi = b.phi(self.V)
            phi.add_incoming(x, before_bb)
            phi.add_incoming(y, after_bb)
            merged.append(phi)
        return merged

    def _apply_epilogue(self, b: ir.IRBuilder, acc: list[ir.Value], mrem: ir.Value, last: ir.Value,
                        row0: ir.Value, cols: list[ir.Value], masks: list[ir.Value] | None) -> list[ir.Value]:
        """The epilogue applied to the tile if ``last`` (the last slab of ``k``)."""
        nv = len(cols)
        mr = len(acc) // nv
        fn = b.function
        conditional = not _is_true(last)
        if conditional:
            pre_bb = b.block
            ep_bb = fn.append_basic_block("store.apply_epilogue")
            st_bb = fn.append_basic_block("store.write")
            b.cbranch(last, ep_bb, st_bb)
            b.position_at_end(ep_bb)
        applied = []
        for r in range(mr):
            row = b.add(row0, _c64(r))
            if masks is not None:  # clamp rows past the edge (their results are discarded)
                row = _smin(b, row, b.add(row0, b.sub(mrem, _c64(1))))
            for v in range(nv):
                out = self.epilogue(b, acc[r * nv + v], row, cols[v])
                if out.type != self.V:
                    raise TypeError(f"the epilogue returned {out.type}, expected {self.V}")
                applied.append(out)
        return self._merge(b, acc, pre_bb, applied, st_bb) if conditional else applied

    def emit_store(self, b: ir.IRBuilder, acc: list[ir.Value], c: ir.Value, ldc: ir.Value, mrem: ir.Value,
                   first: ir.Value, last: ir.Value, row0: ir.Value, cols: list[ir.Value],
                   masks: list[ir.Value] | None) -> None:
        cfg = self.cfg
        nv, W = len(cols), cfg.lanes
        mr = len(acc) // nv
        align = ir.Constant(I32, cfg.itemsize)
        acc = list(acc)
        if not _is_true(first):  # accumulate onto C unless this is the first k slab
            acc = self._accumulate(b, acc, nv, c, ldc, mrem, first, masks)
        if self.epilogue is not None:
            acc = self._apply_epilogue(b, acc, mrem, last, row0, cols, masks)
        for r in range(mr):
            rowp = b.gep(c, [b.mul(_c64(r), ldc)])
            if masks is None:
                for v in range(nv):
                    self.vstore(b, acc[r * nv + v], b.gep(rowp, [_c64(v * W)]), cfg.itemsize)
            else:
                _then, join = _if(b, b.icmp_signed("<", _c64(r), mrem), f"row{r}")
                for v in range(nv):
                    p = b.bitcast(b.gep(rowp, [_c64(v * W)]), self.VP)
                    b.call(self.mstore, [acc[r * nv + v], p, align, masks[v]])
                b.branch(join)
                b.position_at_end(join)

    # -- packing
    def emit_pack_a(self, b: ir.IRBuilder, dst: ir.Value, a: ir.Value, lda_r: ir.Value, lda_c: ir.Value,
                    mb: ir.Value, kb: ir.Value) -> None:
        """dst[p][k][i] = A[p*mr + i, k] (zero past mb): mr-row micro-panels of the mb x kb block at ``a``."""
        mr = self.cfg.mr
        zero = ir.Constant(self.T, 0.0)
        with _Loop(b, _c64(0), mb, mr, name="packa") as lp:
            i0 = lp.index
            rows = b.sub(mb, i0)
            panel = b.gep(dst, [b.mul(i0, kb)])
            base = b.gep(a, [b.mul(i0, lda_r)])
            rowp = [b.gep(base, [b.mul(_c64(i), lda_r)]) for i in range(mr)]
            full = b.icmp_signed(">=", rows, _c64(mr))
            fn = b.function
            bb_full = fn.append_basic_block("packa.full")
            bb_edge = fn.append_basic_block("packa.edge")
            bb_done = fn.append_basic_block("packa.done")
            b.cbranch(full, bb_full, bb_edge)
            for edge, bb in ((False, bb_full), (True, bb_edge)):
                b.position_at_end(bb)
                with _Loop(b, _c64(0), kb, 1, name="packa.k") as lk:
                    k = lk.index
                    off = b.mul(k, lda_c)
                    out = b.gep(panel, [b.mul(k, _c64(mr))])
                    for i in range(mr):
                        if edge:
                            ok = b.icmp_signed("<", _c64(i), rows)
                            # clamp the row so the (discarded) load stays in bounds
                            src = b.gep(rowp[0], [b.add(off, b.mul(_smin(b, _c64(i), b.sub(rows, _c64(1))),
                                                                    lda_r))])
                            val = b.select(ok, b.load(src), zero)
                        else:
                            val = b.load(b.gep(rowp[i], [off]))
                        b.store(val, b.gep(out, [_c64(i)]))
                b.branch(bb_done)
            b.position_at_end(bb_done)

    def emit_pack_b(self, b: ir.IRBuilder, dst: ir.Value, src: ir.Value, ldb_r: ir.Value, ldb_c: ir.Value,
                    kb: ir.Value, nb: ir.Value) -> None:
        """dst[p][k][j] = B[k, p*nr + j] (zero past nb): nr-column micro-panels of the kb x nb block."""
        cfg = self.cfg
        nr, W, nv = cfg.nr, cfg.lanes, cfg.nv
        zero = ir.Constant(self.T, 0.0)
        with _Loop(b, _c64(0), nb, nr, name="packb") as lp:
            j0 = lp.index
            cols = b.sub(nb, j0)
            panel = b.gep(dst, [b.mul(j0, kb)])
            base = b.gep(src, [b.mul(j0, ldb_c)])
            contiguous = b.and_(b.icmp_signed(">=", cols, _c64(nr)), b.icmp_signed("==", ldb_c, _c64(1)))
            fn = b.function
            bb_vec = fn.append_basic_block("packb.vector")
            bb_gen = fn.append_basic_block("packb.general")
            bb_tr = fn.append_basic_block("packb.transposed")
            bb_other = fn.append_basic_block("packb.strided")
            bb_done = fn.append_basic_block("packb.done")
            b.cbranch(contiguous, bb_vec, bb_other)
            b.position_at_end(bb_other)
            b.cbranch(b.icmp_signed("==", ldb_r, _c64(1)), bb_tr, bb_gen)
            b.position_at_end(bb_tr)
            self.emit_pack_b_transposed(b, panel, base, ldb_c, kb, cols)
            b.branch(bb_done)
            b.position_at_end(bb_vec)
            with _Loop(b, _c64(0), kb, 1, name="packb.kv") as lk:
                k = lk.index
                rowp = b.gep(base, [b.mul(k, ldb_r)])
                out = b.gep(panel, [b.mul(k, _c64(nr))])
                for v in range(nv):
                    val = self.vload(b, b.gep(rowp, [_c64(v * W)]), cfg.itemsize)
                    self.vstore(b, val, b.gep(out, [_c64(v * W)]), self.vbytes)
            b.branch(bb_done)
            b.position_at_end(bb_gen)
            last = b.sub(_smin(b, cols, _c64(nr)), _c64(1))
            colp = [b.gep(base, [b.mul(_smin(b, _c64(j), last), ldb_c)]) for j in range(nr)]
            with _Loop(b, _c64(0), kb, 1, name="packb.kg") as lk:
                k = lk.index
                off = b.mul(k, ldb_r)
                out = b.gep(panel, [b.mul(k, _c64(nr))])
                for j in range(nr):
                    val = b.load(b.gep(colp[j], [off]))
                    val = b.select(b.icmp_signed("<", _c64(j), cols), val, zero)
                    b.store(val, b.gep(out, [_c64(j)]))
            b.branch(bb_done)
            b.position_at_end(bb_done)

    def transpose_square(self, b: ir.IRBuilder, rows: list[ir.Value]) -> list[ir.Value]:
        """The ``W x W`` block held in ``W`` row vectors, transposed: ``log2(W)`` rounds of two-source
        shuffles, each swapping one bit of the row index with the same bit of the lane index."""
        W = self.cfg.lanes
        rows = list(rows)
        s = 1
        while s < W:
            lo = ir.Constant(ir.VectorType(I32, W), [lane if lane & s == 0 else W + lane - s for lane in range(W)])
            hi = ir.Constant(ir.VectorType(I32, W), [lane + s if lane & s == 0 else W + lane for lane in range(W)])
            for i in range(W):
                if i & s == 0:
                    x, y = rows[i], rows[i + s]
                    rows[i], rows[i + s] = b.shuffle_vector(x, y, lo), b.shuffle_vector(x, y, hi)
            s *= 2
        return rows

    def emit_pack_b_transposed(self, b: ir.IRBuilder, panel: ir.Value, src: ir.Value, ldb_c: ir.Value,
                               kb: ir.Value, cols: ir.Value) -> None:
        """One ``nr``-column panel of a ``B`` whose columns are contiguous (``B = X^T`` for a row-major
        ``X``): ``W x W`` blocks are read as ``W`` rows of ``X`` (masked past ``kb``, zero past ``cols``),
        transposed in registers and stored as ``W`` rows of the panel (only the rows below ``kb``)."""
        cfg = self.cfg
        W, nr = cfg.lanes, cfg.nr
        zero = ir.Constant(self.V, 0.0)
        align = ir.Constant(I32, cfg.itemsize)
        with _Loop(b, _c64(0), kb, W, name="packbt.k") as lk:
            k0 = lk.index
            kmask = self.lane_mask(b, b.sub(kb, k0), 0)
            with _Loop(b, _c64(0), _c64(nr), W, name="packbt.j") as lj:
                jb = lj.index
                rows = []
                for r in range(W):
                    j = b.add(jb, _c64(r))
                    # a column past the panel's last reads the last one (in bounds); its values become zeros
                    col = _smin(b, j, b.sub(cols, _c64(1)))
                    p = b.bitcast(b.gep(src, [b.add(b.mul(col, ldb_c), k0)]), self.VP)
                    v = b.call(self.mload, [p, align, kmask, zero])
                    rows.append(b.select(b.icmp_signed("<", j, cols), v, zero))
                out = self.transpose_square(b, rows)
                for c in range(W):
                    _then, join = _if(b, b.icmp_signed("<", b.add(k0, _c64(c)), kb), f"packbt.row{c}")
                    dst = b.gep(panel, [b.add(b.mul(b.add(k0, _c64(c)), _c64(nr)), jb)])
                    self.vstore(b, out[c], dst, self.vbytes)
                    b.branch(join)
                    b.position_at_end(join)

    # -- driver
    def emit_direct(self, b: ir.IRBuilder, kernels: dict[tuple[int, int], ir.Function], A: ir.Value,
                    lda_r: ir.Value, lda_c: ir.Value, B: ir.Value, ldb_r: ir.Value, C: ir.Value, ldc: ir.Value,
                    K: ir.Value, r0: ir.Value, r1: ir.Value, c0: ir.Value, c1: ir.Value,
                    extra: Sequence[ir.Value]) -> None:
        """``C[r0:r1, c0:c1]`` with the direct kernels: a block no wider than the widest tile goes to the
        narrow kernel of its vector count (more rows per tile, so as many accumulators); wider blocks are
        cut into tiles of the packed path's shape, the last columns to the narrowest that covers them.
        A wide block's last rows go to ``SHORT_ROWS``-row tiles where ``mr``-row ones would compute
        rows for nothing: with ``mr = 6``, 32 rows are five 6-row tiles and two 4-row ones (32 rows of
        work, not 36), 9 rows one 6-row and one 4-row tile."""
        cfg = self.cfg
        W, nr = cfg.lanes, cfg.nr
        fn = b.function
        col_last = b.sub(c1, _c64(1))
        done = fn.append_basic_block("direct.done")

        true, false = ir.Constant(I1, 1), ir.Constant(I1, 0)

        def rows(mr: int, tile: Callable[[ir.Value, ir.Value], None], start: ir.Value = r0,
                 stop: ir.Value = r1) -> None:
            """Row tiles of ``mr`` rows from ``start`` to ``stop``; ``tile(row, mrem)`` emits the calls for one."""
            with _Loop(b, start, stop, mr, name=f"direct.rows{mr}") as l_ir:
                tile(l_ir.index, _smin(b, _c64(mr), b.sub(stop, l_ir.index)))

        def call(kernel: ir.Function, row: ir.Value, mrem: ir.Value, col: ir.Value, ncols: ir.Value) -> None:
            """``kernel`` on the tile of C at (row, col) with ``mrem`` rows and ``ncols`` columns left."""
            b.call(kernel, [b.gep(A, [b.mul(row, lda_r)]), lda_r, lda_c, b.gep(B, [col]), ldb_r, K,
                            b.gep(C, [b.add(b.mul(row, ldc), col)]), ldc, mrem, ncols, row, col, col_last, true,
                            true, false, *extra])

        width = b.sub(c1, c0)
        vectors = b.sdiv(b.add(width, _c64(W - 1)), _c64(W))
        wide_bb = fn.append_basic_block("direct.wide")
        switch = b.switch(vectors, wide_bb)
        for (mr, nv), kernel in kernels.items():
            if mr == cfg.mr or nv == cfg.nv:  # (the packed path's tiles, and the short tile)
                continue
            case = fn.append_basic_block(f"direct.narrow{nv}")
            switch.add_case(_c64(nv), case)
            b.position_at_end(case)
            rows(mr, lambda row, mrem, kernel=kernel: call(kernel, row, mrem, c0, width))
            b.branch(done)
        b.position_at_end(wide_bb)

        def columns(row: ir.Value, mrem: ir.Value, widest: ir.Function = kernels[(cfg.mr, cfg.nv)]) -> None:
            """One row of tiles: ``widest`` for the full-width ones, the ``mr``-row kernel of the vector count
            for the last columns (a kernel's rows past ``mrem`` repeat its last row)."""
            with _Loop(b, c0, c1, nr, name="direct.cols") as l_jr:
                jr = l_jr.index
                nrem = _smin(b, _c64(nr), b.sub(c1, jr))
                join = fn.append_basic_block("direct.called")
                widest_bb = fn.append_basic_block("direct.widest")
                sw = b.switch(b.sdiv(b.add(nrem, _c64(W - 1)), _c64(W)), widest_bb)
                for nv in range(1, cfg.nv):
                    case = fn.append_basic_block(f"direct.tail{nv}")
                    sw.add_case(_c64(nv), case)
                    b.position_at_end(case)
                    call(kernels[(cfg.mr, nv)], row, mrem, jr, nrem)
                    b.branch(join)
                b.position_at_end(widest_bb)
                call(widest, row, mrem, jr, nrem)
                b.branch(join)
                b.position_at_end(join)

        # mr-row tiles take every row, except when the last one would compute rows for nothing: then the
        # 1-4 rows left go to short tiles, with one mr-row tile less when only 1 or 2 are left (6 + 2 = 4 + 4)
        count = b.sub(r1, r0)
        whole, left = b.sdiv(count, _c64(cfg.mr)), b.srem(count, _c64(cfg.mr))
        mr_rows = b.select(b.icmp_signed(">", left, _c64(SHORT_ROWS)), count, b.mul(whole, _c64(cfg.mr)))
        few_left = b.and_(b.icmp_signed(">", left, _c64(0)), b.icmp_signed("<=", left, _c64(cfg.mr - SHORT_ROWS)))
        one_less = b.and_(few_left, b.icmp_signed(">", whole, _c64(0)))
        mr_rows = b.select(one_less, b.sub(mr_rows, _c64(cfg.mr)), mr_rows)
        split = b.add(r0, mr_rows)
        rows(cfg.mr, columns, r0, split)
        rows(SHORT_ROWS, lambda row, mrem: columns(row, mrem, kernels[(SHORT_ROWS, cfg.nv)]), split, r1)
        b.branch(done)
        b.position_at_end(done)

    def direct_pays(self, b: ir.IRBuilder, rows: ir.Value, N: ir.Value, K: ir.Value, ldb_c: ir.Value) -> ir.Value:
        """Whether the product goes to the direct kernels: ``B``'s rows are contiguous and ``B`` is within
        the direct path's budget for a block of ``rows`` rows (see :data:`DIRECT_FEW_ROWS`)."""
        cap = self.direct_max_b_bytes
        b_bytes = b.mul(b.mul(N, K), _c64(self.cfg.itemsize))
        short_rows = b.icmp_signed("<=", b.mul(N, _c64(self.cfg.itemsize)), _c64(DIRECT_SHORT_ROW_BYTES))
        full = b.or_(short_rows, b.icmp_signed("<=", rows, _c64(DIRECT_FEW_ROWS)))
        budget = b.select(full, _c64(cap), b.select(b.icmp_signed("<=", rows, _c64(DIRECT_SOME_ROWS)),
                                                     _c64(cap // 2), _c64(cap // 8)))
        return b.and_(b.icmp_signed("==", ldb_c, _c64(1)), b.icmp_signed("<=", b_bytes, budget))

    def emit_block(self, kernels: dict[tuple[int, int], ir.Function]) -> ir.Function:
        cfg, P = self.cfg, self.P
        mr, nr = cfg.mr, cfg.nr
        args = [I64, I64, I64, P, I64, I64, P, I64, I64, P, I64, P, I64, I64, I64, I64, *self.extra_types]
        fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), args), f"{self.name}_block")
        fn.attributes.add("nounwind")
        (M, N, K, A, lda_r, lda_c, B, ldb_r, ldb_c, C, ldc, pack,
         r_begin, r_end, c_begin, c_end) = fn.args[:16]
        extra = list(fn.args[16:])
        _EXTRA_ARGS[fn] = tuple(extra)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        r0 = _smax(b, r_begin, _c64(0))
        r1 = _smin(b, r_end, M)
        c0 = _smax(b, c_begin, _c64(0))
        c1 = _smin(b, c_end, N)
        K = _smax(b, K, _c64(0))
        nonempty = b.and_(b.icmp_signed("<", r0, r1), b.icmp_signed("<", c0, c1))
        _then, done = _if(b, nonempty, "nonempty")
        direct_bb = fn.append_basic_block("direct")
        packed_bb = fn.append_basic_block("packed")
        b.cbranch(self.direct_pays(b, b.sub(r1, r0), N, K, ldb_c), direct_bb, packed_bb)
        b.position_at_end(direct_bb)
        self.emit_direct(b, kernels, A, lda_r, lda_c, B, ldb_r, C, ldc, K, r0, r1, c0, c1, extra)
        b.branch(done)
        b.position_at_end(packed_bb)

        # pack buffer layout (from the full M, N, K so one buffer serves every sub-range)
        align_el = ALIGN_BYTES // cfg.itemsize
        raw = b.ptrtoint(pack, I64)
        aligned = b.and_(b.add(raw, _c64(ALIGN_BYTES - 1)), _c64(-ALIGN_BYTES))
        base = b.inttoptr(aligned, P)
        m_round = b.mul(b.sdiv(b.add(M, _c64(mr - 1)), _c64(mr)), _c64(mr))
        mcb = _smin(b, _c64(cfg.mc), m_round)
        kcb = _smin(b, _c64(cfg.kc), K)
        a_elems = b.mul(mcb, kcb)
        a_elems = b.and_(b.add(a_elems, _c64(align_el - 1)), _c64(-align_el))
        apack = base
        bpack = b.gep(base, [a_elems])
        col_last = b.sub(c1, _c64(1))

        with _Loop(b, r0, r1, cfg.mc, name="ic") as l_ic:
            ic = l_ic.index
            mb = _smin(b, _c64(cfg.mc), b.sub(r1, ic))
            # do { ... } while (pc < K): runs once for K == 0 so C is still written (zeros + epilogue)
            pc_body = fn.append_basic_block("pc.body")
            pc_exit = fn.append_basic_block("pc.exit")
            pre = b.block
            b.branch(pc_body)
            b.position_at_end(pc_body)
            pc = b.phi(I64, name="pc")
            pc.add_incoming(_c64(0), pre)
            kb = _smin(b, _c64(cfg.kc), b.sub(K, pc))
            first = b.icmp_signed("==", pc, _c64(0))
            pc_next = b.add(pc, kb)
            last = b.icmp_signed(">=", pc_next, K)
            a_block = b.gep(A, [b.add(b.mul(ic, lda_r), b.mul(pc, lda_c))])
            self.emit_pack_a(b, apack, a_block, lda_r, lda_c, mb, kb)
            with _Loop(b, c0, c1, cfg.nc, name="jc") as l_jc:
                jc = l_jc.index
                nb = _smin(b, _c64(cfg.nc), b.sub(c1, jc))
                b_block = b.gep(B, [b.add(b.mul(pc, ldb_r), b.mul(jc, ldb_c))])
                self.emit_pack_b(b, bpack, b_block, ldb_r, ldb_c, kb, nb)
                with _Loop(b, _c64(0), mb, mr, name="ir") as l_ir:
                    ir_ = l_ir.index
                    mrem = _smin(b, _c64(mr), b.sub(mb, ir_))
                    pa = b.gep(apack, [b.mul(ir_, kb)])
                    row = b.add(ic, ir_)
                    c_row = b.gep(C, [b.mul(row, ldc)])
                    with _Loop(b, _c64(0), nb, nr, name="jr") as l_jr:
                        jr = l_jr.index
                        nrem = _smin(b, _c64(nr), b.sub(nb, jr))
                        pb = b.gep(bpack, [b.mul(jr, kb)])
                        col = b.add(jc, jr)
                        kargs = [pa, _c64(1), _c64(mr), pb, _c64(nr), kb, b.gep(c_row, [col]), ldc, mrem, nrem, row,
                                 col, col_last, first, last, ir.Constant(I1, 1), *extra]
                        # the last columns of a block go to the narrowest kernel that covers them
                        vectors = b.sdiv(b.add(nrem, _c64(cfg.lanes - 1)), _c64(cfg.lanes))
                        join = fn.append_basic_block("jr.called")
                        default = fn.append_basic_block("jr.widest")
                        switch = b.switch(vectors, default)
                        for nv in range(1, cfg.nv):
                            case = fn.append_basic_block(f"jr.kernel{nv}")
                            switch.add_case(_c64(nv), case)
                            b.position_at_end(case)
                            b.call(kernels[(mr, nv)], kargs)
                            b.branch(join)
                        b.position_at_end(default)
                        b.call(kernels[(mr, cfg.nv)], kargs)
                        b.branch(join)
                        b.position_at_end(join)
            pc.add_incoming(pc_next, b.block)
            b.cbranch(b.icmp_signed("<", pc_next, K), pc_body, pc_exit)
            b.position_at_end(pc_exit)
        b.branch(done)
        b.position_at_end(done)
        b.ret_void()
        return fn

    def emit_wrappers(self, block: ir.Function) -> ir.Function:
        P = self.P
        base = [I64, I64, I64, P, I64, I64, P, I64, I64, P, I64, P]
        rows = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [*base, I64, I64, *self.extra_types]),
                           f"{self.name}_rows")
        b = ir.IRBuilder(rows.append_basic_block("entry"))
        a = list(rows.args)
        b.call(block, [*a[:14], _c64(0), a[1], *a[14:]])
        b.ret_void()
        main = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [*base, *self.extra_types]), self.name)
        b = ir.IRBuilder(main.append_basic_block("entry"))
        a = list(main.args)
        b.call(block, [*a[:12], _c64(0), a[0], _c64(0), a[1], *a[12:]])
        b.ret_void()
        for f in (rows, main):
            f.attributes.add("nounwind")
        return main


def emit_gemm(module: ir.Module, name: str, dtype: Any, target: Target | None = None,
              epilogue: Epilogue | None = None, extra_args: Sequence[ir.Type] = (),
              direct_max_b_bytes: int = DIRECT_MAX_B_BYTES) -> ir.Function:
    """Emit ``name``, ``name_rows`` and ``name_block`` (see the module docstring) into ``module``.

    ``epilogue(builder, value, row, cols)`` (optional) transforms each finished vector of ``C`` before it is
    stored; ``extra_args`` are the types of extra trailing parameters of every entry point, which the
    epilogue reads with :func:`epilogue_args`. Returns the ``name`` function.
    """
    cfg = gemm_config(dtype, target)
    em = _GemmEmitter(module, name, cfg, epilogue, extra_args, direct_max_b_bytes)
    block = em.emit_block({tile: em.emit_micro_kernel(*tile) for tile in kernel_tiles(cfg)})
    return em.emit_wrappers(block)


__all__ = ["Epilogue", "GemmConfig", "emit_gemm", "epilogue_args", "gemm_config", "pack_buffer_elements",
           "vector_bits"]
