"""Function multi-versioning for portable x86-64 libraries: one ``NAME_run`` that picks, once, the
fastest compiled version of the graph the running CPU supports.

By default an x86-64 library must run on any x86-64 CPU, but code for the baseline (SSE2, no FMA)
runs the GEMM at a quarter of the speed of AVX2 + FMA code.  So the graph is compiled for the psABI
levels x86-64 (baseline), x86-64-v3 (AVX2, FMA: Haswell, Zen and later) and x86-64-v4 (AVX-512), and
the exported ``NAME_run`` reads the CPU's level with ``cpuid`` / ``xgetbv`` (the OS must also save
the wider registers) and calls the matching version.  ``GRAPHC_CPU_LEVEL=1|2|3|4`` in the
environment caps the level (for testing every version on one machine, or to pin results).
"""

from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

I32 = ir.IntType(32)
I8P = ir.IntType(8).as_pointer()
LEVEL_FN = "graphc_x86_level"
ENV = "GRAPHC_CPU_LEVEL"

# (cpuid leaf, register index 0..3 = eax..edx, required bits) per level, on top of the lower levels
_V2 = [(1, 2, (1 << 0) | (1 << 9) | (1 << 13) | (1 << 19) | (1 << 20) | (1 << 23))]  # sse3 ssse3 cx16 sse4.x popcnt
_V3 = [(1, 2, (1 << 12) | (1 << 22) | (1 << 27) | (1 << 28) | (1 << 29)),  # fma movbe osxsave avx f16c
       (7, 1, (1 << 3) | (1 << 5) | (1 << 8)),  # bmi1 avx2 bmi2
       (0x80000001, 2, 1 << 5)]  # lzcnt
_V4 = [(7, 1, (1 << 16) | (1 << 17) | (1 << 28) | (1 << 30) | (1 << 31))]  # avx512 f dq cd bw vl
_XCR0_AVX, _XCR0_AVX512 = 0x6, 0xE6  # the OS saves xmm/ymm; and opmask/zmm


def _cpuid(b: ir.IRBuilder, leaf: int) -> list[ir.Value]:
    struct = ir.LiteralStructType([I32] * 4)
    result = b.asm(ir.FunctionType(struct, [I32, I32]), "cpuid", "={ax},={bx},={cx},={dx},{ax},{cx}",
                   [_i32(leaf), ir.Constant(I32, 0)], side_effect=True)
    return [b.extract_value(result, k) for k in range(4)]


def _i32(value: int) -> ir.Constant:
    """An i32 constant from an unsigned 32-bit value (LLVM's parser wants it signed)."""
    return ir.Constant(I32, value - (1 << 32) if value >= 1 << 31 else value)


def _has(b: ir.IRBuilder, value: ir.Value, bits: int) -> ir.Value:
    mask = _i32(bits)
    return b.icmp_unsigned("==", b.and_(value, mask), mask)


def emit_level(module: ir.Module) -> ir.Function:
    """``int graphc_x86_level(void)``: 1 to 4, the x86-64 psABI level this CPU and OS support,
    capped by $GRAPHC_CPU_LEVEL; computed on the first call and cached (a benign race)."""
    cache = ir.GlobalVariable(module, I32, f"{LEVEL_FN}.cache")
    cache.initializer = ir.Constant(I32, 0)
    cache.linkage = "internal"
    fn = ir.Function(module, ir.FunctionType(I32, []), LEVEL_FN)
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    known = b.load_atomic(cache, "monotonic", 4)  # atomic: threads may race to fill the cache
    compute = fn.append_basic_block("compute")
    done = fn.append_basic_block("done")
    b.cbranch(b.icmp_signed(">", known, ir.Constant(I32, 0)), done, compute)

    b.position_at_end(compute)
    max_basic = _cpuid(b, 0)[0]
    max_extended = _cpuid(b, 0x80000000)[0]
    leaves = {1: _cpuid(b, 1), 7: _cpuid(b, 7), 0x80000001: _cpuid(b, 0x80000001)}
    zero = ir.Constant(I32, 0)
    leaves[7] = [b.select(b.icmp_unsigned(">=", max_basic, ir.Constant(I32, 7)), r, zero) for r in leaves[7]]
    extended_ok = b.icmp_unsigned(">=", max_extended, _i32(0x80000001))
    leaves[0x80000001] = [b.select(extended_ok, r, zero) for r in leaves[0x80000001]]

    def level_ok(requirements: Sequence[tuple[int, int, int]]) -> ir.Value:
        ok: ir.Value = ir.Constant(ir.IntType(1), 1)
        for leaf, register, bits in requirements:
            ok = b.and_(ok, _has(b, leaves[leaf][register], bits))
        return ok

    v2 = level_ok(_V2)
    osxsave = _has(b, leaves[1][2], 1 << 27)
    before = b.block
    read_xcr0 = fn.append_basic_block("xgetbv")
    merged = fn.append_basic_block("merged")
    b.cbranch(osxsave, read_xcr0, merged)  # xgetbv faults unless the OS enabled it
    b.position_at_end(read_xcr0)
    xcr0_value = b.extract_value(b.asm(ir.FunctionType(ir.LiteralStructType([I32, I32]), [I32]), "xgetbv",
                                       "={ax},={dx},{cx}", [zero], side_effect=True), 0)
    b.branch(merged)
    b.position_at_end(merged)
    xcr0 = b.phi(I32)
    xcr0.add_incoming(zero, before)
    xcr0.add_incoming(xcr0_value, read_xcr0)
    v3 = b.and_(b.and_(v2, level_ok(_V3)), _has(b, xcr0, _XCR0_AVX))
    v4 = b.and_(b.and_(v3, level_ok(_V4)), _has(b, xcr0, _XCR0_AVX512))
    level = b.select(v4, ir.Constant(I32, 4), b.select(v3, ir.Constant(I32, 3),
                                                         b.select(v2, ir.Constant(I32, 2), ir.Constant(I32, 1))))
    getenv = ir.Function(module, ir.FunctionType(I8P, [I8P]), "getenv")
    atoi = ir.Function(module, ir.FunctionType(I32, [I8P]), "atoi")
    name = ir.GlobalVariable(module, ir.ArrayType(ir.IntType(8), len(ENV) + 1), f"{LEVEL_FN}.env")
    name.initializer = ir.Constant(name.value_type, bytearray(ENV.encode() + b"\0"))
    name.global_constant = True
    name.linkage = "internal"
    setting = b.call(getenv, [name.bitcast(I8P)])
    after_env = b.block
    capped = fn.append_basic_block("capped")
    store = fn.append_basic_block("store")
    b.cbranch(b.icmp_unsigned("==", setting, ir.Constant(I8P, None)), store, capped)
    b.position_at_end(capped)
    cap = b.call(atoi, [setting])
    cap = b.select(b.icmp_signed("<", cap, ir.Constant(I32, 1)), ir.Constant(I32, 1), cap)
    lowered = b.select(b.icmp_signed("<", cap, level), cap, level)
    b.branch(store)
    b.position_at_end(store)
    final = b.phi(I32)
    final.add_incoming(level, after_env)
    final.add_incoming(lowered, capped)
    b.store_atomic(final, cache, "monotonic", 4)
    b.branch(done)

    b.position_at_end(done)
    result = b.phi(I32)
    result.add_incoming(known, fn.blocks[0])
    result.add_incoming(final, store)
    b.ret(result)
    return fn


def emit_dispatcher(module: ir.Module, name: str, versions: Sequence[tuple[int, str]]) -> ir.Function:
    """``NAME_run`` calling the first of ``versions`` (``(level, function name)``, highest level
    first, the last for level 1) whose level the CPU reaches."""
    run_type = ir.FunctionType(I32, [ir.IntType(64).as_pointer(), I8P.as_pointer(), I8P.as_pointer()])
    fn = ir.Function(module, run_type, name)
    level = emit_level(module)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    cpu = b.call(level, [])
    for min_level, impl_name in versions:
        impl = module.globals.get(impl_name) or ir.Function(module, run_type, impl_name)
        call = fn.append_basic_block(f"level{min_level}")
        next_block = fn.append_basic_block(f"below{min_level}")
        b.cbranch(b.icmp_signed(">=", cpu, ir.Constant(I32, min_level)), call, next_block)
        b.position_at_end(call)
        b.ret(b.call(impl, list(fn.args)))
        b.position_at_end(next_block)
    b.unreachable()
    return fn


__all__ = ["ENV", "emit_dispatcher", "emit_level"]
