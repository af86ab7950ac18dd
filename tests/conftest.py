import os
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import settings

sys.path.insert(0, os.path.dirname(__file__))

# Deterministic by default (the same examples every run); HYPOTHESIS_PROFILE=explore searches afresh.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu", default=None, metavar="LEVEL",
                     help="compile JIT code for this CPU level instead of the host's (x86-64, x86-64-v2, x86-64-v3, "
                          "x86-64-v4, native): runs the suite as a machine of that level would")


def pytest_configure(config: pytest.Config) -> None:
    level = config.getoption("--cpu")
    if level is not None:
        from graphc import ArgumentError
        from graphc.backends.cpu.target import set_default_cpu

        try:
            set_default_cpu(level)
        except ArgumentError as exc:  # this machine cannot run that level's code, or no such level
            raise pytest.UsageError(f"--cpu {level}: {exc}") from None


def pytest_report_header(config: pytest.Config) -> str:
    from graphc.backends.cpu.target import default_target

    target = default_target()
    return f"graphc JIT target: {target.cpu} ({config.getoption('--cpu') or 'the host CPU'})"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session", autouse=True)
def _compile_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Compiled code is cached in a directory of this test session, never in the user's home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRAPHC_CACHE_DIR", str(tmp_path_factory.mktemp("compile-cache")))
        yield


# ---- the op suites run on every device -----------------------------------------------------------
#
# A module with ``pytestmark = pytest.mark.usefixtures("device")`` runs each of its tests on
# device="reference", on device="cpu" and on the CUDA emulator (device="cuda-sim"); with a GPU and pycuda
# present, on device="cuda" too.  The ``device`` fixture sets ``util.DEVICE``, which ``util.run``,
# ``util.function`` and ``util.check_grad`` use.  Compiling costs ~25-400 ms per graph on the CPU and the
# emulator is an interpreter, so on every device but the reference only a deterministic subset runs (see
# ``pytest_collection_modifyitems``); set GRAPHC_TEST_CPU=all to run every case on every device.

CPU_EVERY_CASE = os.environ.get("GRAPHC_TEST_CPU", "").lower() == "all"


from util import COMPILED_DEVICES  # noqa: E402  (tests/ is on sys.path from the top of this file)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0].split(",") if isinstance(mark.args[0], str) else mark.args[0]
        if "device" in (n.strip() for n in names):
            return  # a test parametrized over devices itself keeps its own list
    metafunc.parametrize("device", ["reference", *COMPILED_DEVICES], indirect=True)


ASSEMBLE_EVERY_KERNEL = os.environ.get("GRAPHC_TEST_PTXAS", "").lower() == "all"
"""GRAPHC_TEST_PTXAS=all: every graph a test compiles on "cuda-sim" is also emitted as PTX and assembled by
ptxas for sm_80 and sm_90 (slow; tests/test_cuda_ptx.py assembles every kernel kind in the default run)."""


@pytest.fixture
def device(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The device the test runs on (``util.DEVICE`` while it runs)."""
    import util

    name = getattr(request, "param", "reference")
    compiled: list[object] = []
    if ASSEMBLE_EVERY_KERNEL and name == "cuda-sim":
        from graphc.backends.cuda_sim.backend import CudaSimBackend

        compile_ = CudaSimBackend.compile
        monkeypatch.setattr(CudaSimBackend, "compile", lambda self, *a, **k: compiled.append(
            compile_(self, *a, **k)) or compiled[-1])
    previous, util.DEVICE = util.DEVICE, name
    try:
        yield name
    finally:
        util.DEVICE = previous
    if compiled:
        from graphc.backends.cuda.nvptx import launches_ptx
        from graphc.backends.cuda.ptxas import assemble

        for executable in compiled:
            for arch in ("sm_80", "sm_90"):
                assemble(launches_ptx(executable.program.launches, arch), arch)  # type: ignore[attr-defined]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep every "reference" case; of each test function's cases on another device keep, in collection
    order, those that bring a parameter value (of any of its parameters) no kept case of that function on
    that device had yet.  So every value of every parametrization (every op, dtype, shape, stride,
    padding...) runs on every device at least once, and a test without parameters runs there whole."""
    if CPU_EVERY_CASE:
        return
    covered: dict[tuple[str, str, str], set[tuple[str, object]]] = {}
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        device = callspec.params.get("device") if callspec is not None else None
        if device is None or device == "reference" or not isinstance(device, str):
            kept.append(item)
            continue
        seen = covered.setdefault((str(item.path), item.originalname, device), set())  # type: ignore[attr-defined]
        values = {(name, _hashable(value)) for name, value in callspec.params.items() if name != "device"}
        if values - seen or not values:
            seen |= values
            kept.append(item)
        else:
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _hashable(value: object) -> object:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value
