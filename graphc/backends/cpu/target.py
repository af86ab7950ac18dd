"""Which CPU compiled code is for: the host's own, or a lower level of its architecture on request.

``cpu=None`` means the host CPU with every feature it has (unless :func:`set_default_cpu` chose another
default for this process); ``"native"`` always means the host.  The JIT also takes ``"generic"`` and, on
x86-64, the psABI levels ``x86-64`` (baseline SSE2), ``x86-64-v2``, ``x86-64-v3`` (AVX2 + FMA) and
``x86-64-v4`` (AVX-512), which spell out their features so that the GEMM (which reads the feature string)
picks the matching vector width; a level needing features the host lacks is refused, since its code could
not run here.  Ahead-of-time compilation (aot/link.py) takes any LLVM CPU name of any architecture.
"""

from __future__ import annotations

from graphc.codegen.target import Target
from graphc.errors import ArgumentError

_X86_V2 = "+cx16,+popcnt,+sse3,+sse4.1,+sse4.2,+ssse3"
_X86_V3 = _X86_V2 + ",+avx,+avx2,+bmi,+bmi2,+f16c,+fma,+lzcnt,+movbe,+xsave"
X86_LEVELS = {"x86-64": "", "x86-64-v2": _X86_V2, "x86-64-v3": _X86_V3,
              "x86-64-v4": _X86_V3 + ",+avx512f,+avx512bw,+avx512cd,+avx512dq,+avx512vl"}
"""The x86-64 psABI levels: LLVM CPU names and the features each adds."""

_default_cpu: str | None = None


host_target = Target.host
"""This machine's CPU with all its features."""


def named_target(triple: str, cpu: str) -> Target:
    """CPU ``cpu`` (an LLVM CPU name or, on x86-64, a psABI level) of architecture ``triple``."""
    features = X86_LEVELS.get(cpu, "") if triple.startswith("x86_64") else ""
    return Target(triple, cpu, features)


def jit_target(cpu: str | None = None) -> Target:
    """The target JIT-compiled code is built for: ``cpu`` (see the module docstring), which must run here."""
    cpu = _default_cpu if cpu is None else cpu
    if cpu is None or cpu == "native":
        return host_target()
    host = host_target()
    if host.triple.startswith("x86_64") and cpu in X86_LEVELS:
        missing = [f for f in X86_LEVELS[cpu].split(",") if f and f not in host.features.split(",")]
        if missing:
            raise ArgumentError(f"cpu={cpu!r} needs CPU features this machine lacks ({', '.join(missing)}), so its "
                                f"code could not run here; this CPU is {host.cpu!r}")
        return named_target(host.triple, cpu)
    if cpu not in ("generic", host.cpu):
        levels = "".join(f"{level!r}, " for level in X86_LEVELS) if host.triple.startswith("x86_64") else ""
        raise ArgumentError(f"cpu must be None, 'native', {levels}'generic' or this CPU's name {host.cpu!r}, "
                            f"got {cpu!r}")
    return named_target(host.triple, cpu)


def set_default_cpu(cpu: str | None) -> None:
    """Make ``cpu`` what ``cpu=None`` means for JIT-compiled code in this process (``None``: the host).
    For running a test suite as if on a lower CPU level (``pytest --cpu x86-64-v3``); checked here."""
    global _default_cpu
    if cpu is not None:
        jit_target(cpu)
    _default_cpu = cpu


def default_cpu() -> str | None:
    """What :func:`set_default_cpu` last chose (``None``: the host)."""
    return _default_cpu


def default_target() -> Target:
    """The target ``cpu=None`` compiles for."""
    return jit_target(None)


__all__ = ["X86_LEVELS", "default_cpu", "default_target", "host_target", "jit_target", "named_target",
           "set_default_cpu"]
