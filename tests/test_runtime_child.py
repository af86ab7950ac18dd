"""Runtime-library parts compiled in a child process (graphc.backends.cpu.runtime_child): the child's code
is the code this process would compile, a graph's first run takes it from the child, and a child that
cannot start, fails or says nonsense only means the part is compiled here."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from graphc.backends.cpu import runtime_child
from graphc.backends.cpu.target import host_target


def test_child_compiles_what_this_process_would() -> None:
    target = host_target()
    child = runtime_child.ChildCompile(["pool", "gemm_float64"], target)
    delivered = {part: child.take(part) for part in ("pool", "gemm_float64")}
    here = runtime_child.compile_parts(["pool", "gemm_float64"], target)
    for part, made in delivered.items():
        assert made is not None, part
        assert made == here[part], f"{part}: the child's object code or IR differs from this process's"
    assert child.take("gemm_float32") is None  # not asked for


@pytest.mark.parametrize("boot", ["raise SystemExit(3)", "import sys; sys.stdout.write('{\"part\": 1')",
                                  "import sys; sys.stdout.write('{\"part\": \"pool\", \"object\": 99, \"ir\": 0}\\n')"],
                         ids=["fails", "garbage", "truncated"])
def test_a_failing_child_delivers_nothing(monkeypatch, boot: str) -> None:
    monkeypatch.setattr(runtime_child, "_CHILD_BOOT", boot)
    assert runtime_child.ChildCompile(["pool"], host_target()).take("pool") is None


def test_a_child_that_cannot_start_delivers_nothing(monkeypatch) -> None:
    monkeypatch.setattr(sys, "executable", os.path.join(os.sep, "no", "such", "python"))
    assert runtime_child.ChildCompile(["pool"], host_target()).take("pool") is None


def test_in_process_on_request(monkeypatch) -> None:
    monkeypatch.setenv("GRAPHC_RUNTIME_IN_PROCESS", "1")
    assert not runtime_child.worthwhile()
    monkeypatch.setenv("GRAPHC_RUNTIME_IN_PROCESS", "0")
    assert runtime_child.worthwhile() == (runtime_child.usable_cores() >= 2)


FIRST_RUN = textwrap.dedent("""
    import json, sys
    import numpy as np
    import graphc as gc
    from graphc.backends.cpu import runtime_child

    delivered = []
    take = runtime_child.take
    def counting_take(part, target):
        made = take(part, target)
        delivered.append([part, made is not None])
        return made
    runtime_child.take = counting_take
    a = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    b = np.arange(20.0, dtype=np.float32).reshape(4, 5)
    x = gc.placeholder("float32", (3, 4))
    w = gc.placeholder("float32", (4, 5))
    f = gc.function([x, w], gc.tanh(x @ w * 0.01))
    ok = bool(np.allclose(f(a, b), np.tanh(a @ b * 0.01), rtol=1e-5, atol=1e-6))
    print(json.dumps({"ok": ok, "delivered": delivered}))
""")


@pytest.mark.parametrize("cache", ["fresh", "off"])
def test_first_run_takes_the_gemm_from_the_child(tmp_path, cache: str) -> None:
    """A fresh process with nothing cached: the float32 GEMM comes from the child; the product is right;
    with a cache, a second process finds it there and starts no child."""
    if runtime_child.usable_cores() < 2:
        pytest.skip("one usable core: no child is started")
    import json

    env = {**os.environ, "GRAPHC_CACHE_DIR": str(tmp_path) if cache == "fresh" else "off"}
    env.pop("GRAPHC_RUNTIME_IN_PROCESS", None)

    def run() -> dict:
        done = subprocess.run([sys.executable, "-c", FIRST_RUN], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = run()
    assert first["ok"]
    assert ["gemm_float32", True] in first["delivered"]
    if cache == "fresh":
        again = run()
        assert again["ok"]
        assert not any(made for _, made in again["delivered"])
