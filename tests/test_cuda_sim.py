"""The CUDA backend's runtime, checked on its emulator (device="cuda-sim"): device memory, Variables kept on
the device, faults, and the emulator's own checks (bounds, races, uninitialised memory).

The op suites run on "cuda-sim" through the ``device`` fixture (tests/conftest.py); this module covers
what they do not.  With a GPU and pycuda present, the tests marked ``gpu`` run on device="cuda" as well.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import graphc as gc
from graphc.backends.cuda.device import GpuArray
from graphc.backends.cuda.launch import AtomicAdd, Launch
from graphc.backends.cuda_sim import device as sim
from graphc.backends.cuda_sim.interpreter import EmulatorFault, Translated, run_launch
from graphc.lower.loopir import BufferSpec, Const, IBin, IConst, IVar, Load, ScalarOp, Store
from util import COMPILED_DEVICES

F32 = np.dtype(np.float32)
GPU_DEVICES = [d for d in COMPILED_DEVICES if d.startswith("cuda")]  # cuda-sim, and cuda where a GPU is present
on_gpus = pytest.mark.parametrize("gpu", GPU_DEVICES)


def _launch(body: tuple, size: int = 4, buffers: tuple[str, ...] = ("out",)) -> Launch:
    params = tuple(BufferSpec(name, F32, size) for name in buffers)
    return Launch("k_test", params, ((IVar("t"), size),), body)


def _run(launch: Launch, **buffers: np.ndarray) -> None:
    run_launch(Translated(launch), buffers, {})


def test_every_thread_runs_its_point_of_the_space() -> None:
    t = IVar("t")
    out = np.zeros(4, np.float32)
    _run(_launch((Store("out", t, ScalarOp("multiply", (Const(2.0, F32), Const(3.0, F32)), F32, F32)),)), out=out)
    np.testing.assert_array_equal(out, [6, 6, 6, 6])


def test_two_threads_writing_one_element_is_a_race() -> None:
    with pytest.raises(EmulatorFault, match=r"data race on element 0 of buffer out: threads"):
        _run(_launch((Store("out", IConst(0), Const(1.0, F32)),)), out=np.zeros(4, np.float32))


def test_reading_what_another_thread_wrote_is_a_race() -> None:
    t = IVar("t")
    neighbour = IBin("*", t, IConst(0))  # every thread reads element 0, which thread 0 wrote
    body = (Store("out", t, Const(1.0, F32)), Store("out", t, Load("out", neighbour, F32)))
    with pytest.raises(EmulatorFault, match=r"thread 1 reads it after thread 0"):
        _run(_launch(body), out=np.zeros(4, np.float32))


def test_an_access_outside_the_buffer_is_refused_before_it_runs() -> None:
    t = IVar("t")
    with pytest.raises(EmulatorFault, match=r"writes elements 1\.\.4 of buffer out \(of 4 elements\)"):
        _run(_launch((Store("out", IBin("+", t, IConst(1)), Const(1.0, F32)),)), out=np.zeros(4, np.float32))


def test_fresh_device_memory_reads_as_nan() -> None:
    device = sim.SimDevice("cuda-sim:9")
    memory = device.alloc(16)
    assert np.isnan(device.download((memory, 0), (4,), F32)).all()


def test_a_training_step_keeps_variables_on_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    uploads: list[tuple[int, ...]] = []
    upload = sim.SimDevice.upload
    monkeypatch.setattr(sim.SimDevice, "upload", lambda self, a: uploads.append(a.shape) or upload(self, a))
    rng = np.random.default_rng(0)
    x, y = gc.placeholder("float32", (16, 5)), gc.placeholder("float32", (16, 1))
    start = rng.standard_normal((5, 1)).astype(np.float32)
    weights = {device: gc.Variable(start) for device in ("reference", "cuda-sim")}
    xv = rng.standard_normal((16, 5)).astype(np.float32)
    yv = xv @ np.arange(5, dtype=np.float32)[:, None]
    losses = {}
    for device, w in weights.items():
        loss = gc.mean(gc.square(x @ w - y))
        step = gc.function([x, y], loss, updates=[(w, w - 0.1 * gc.grad(loss, [w])[0])], device=device)
        losses[device] = [float(step(xv, yv))]  # the first call also uploads the weights and constants
        uploads.clear()
        losses[device] += [float(step(xv, yv)) for _ in range(19)]
    assert sorted(uploads) == sorted([(16, 5), (16, 1)] * 19)  # the feeds only: the weights stay on the device
    assert isinstance(weights["cuda-sim"]._resident, GpuArray)
    np.testing.assert_allclose(losses["cuda-sim"], losses["reference"], rtol=1e-5)
    np.testing.assert_allclose(weights["cuda-sim"].value, weights["reference"].value, rtol=1e-5)


@on_gpus
def test_a_value_on_one_device_is_usable_everywhere(gpu: str) -> None:
    w = gc.Variable(np.arange(3, dtype=np.float32))
    gc.Session(device=gpu).run(gc.assign(w, w * 2.0))
    assert isinstance(w._resident, GpuArray) and w._resident.device == f"{gpu}:0"
    assert gc.Session(device="cuda-sim:1").run(w + 1.0).tolist() == [1, 3, 5]  # copied over through the host
    assert gc.Session(device="cpu").run(w * 1.0).tolist() == [0, 2, 4]
    np.testing.assert_array_equal(w.value, [0, 2, 4])
    w.assign(np.ones(3, np.float32))  # a value set on the host replaces the one on the device
    assert w._resident is None
    assert gc.Session(device=gpu).run(w + 1.0).tolist() == [2, 2, 2]


@on_gpus
def test_fetched_values_are_fresh_host_arrays(gpu: str) -> None:
    w = gc.Variable(np.zeros(2, np.float32))
    new = gc.assign(w, w + 1.0)
    fetched = gc.Session(device=gpu).run(new)
    fetched[:] = 100  # the caller's copy: the variable is not changed through it
    assert isinstance(fetched, np.ndarray) and w.value.tolist() == [1, 1]


@on_gpus
def test_run_time_faults_name_the_op_and_the_users_line(gpu: str) -> None:
    x = gc.placeholder("float32", (4, 2))
    idx = gc.placeholder("int64", (3,))
    picked = gc.take(x, idx, axis=0)
    with pytest.raises(gc.ExecutionError, match=r"take.*test_cuda_sim\.py:\d+.*out of range"):
        gc.Session(device=gpu).run(picked, {x: np.zeros((4, 2), np.float32), idx: np.array([0, 7, 1])})
    n = gc.placeholder("int32", (3,))
    with pytest.raises(gc.ExecutionError, match="negative integer powers"):
        gc.Session(device=gpu).run(n ** n, {n: np.array([2, -1, 3], np.int32)})


@on_gpus
def test_the_generated_code_and_launch_shapes_are_shown(gpu: str) -> None:
    x = gc.placeholder("float32", (None, 300), name="x")
    fn = gc.function([x], gc.softmax(gc.exp(x)), device=gpu)
    fn(np.zeros((2, 300), np.float32))
    assert ".entry" in fn.source() and fn.source() == fn.source("ptx")
    assert "grid" in fn.source("launches")
    shown = gc.dprint(fn)
    assert re.search(rf"launches on {gpu} for \(x(_\d+)?: \[2, 300\]\):", shown) and "block" in shown
    with pytest.raises(gc.ArgumentError, match="'ptx' or 'launches'"):
        fn.source("llvm")


def test_cuda_without_pycuda_or_a_gpu_says_what_is_missing() -> None:
    from graphc.backends.cuda.driver import gpu_available

    if gpu_available():
        pytest.skip("a GPU and pycuda are present here")
    with pytest.raises(gc.DeviceUnavailableError, match=r"pip install|GPU"):
        gc.Session(device="cuda")
    with pytest.raises(gc.DeviceUnavailableError):
        gc.function([], gc.constant(1.0), device="cuda:1")


def test_device_names_and_options_are_checked() -> None:
    with pytest.raises(gc.ArgumentError, match="cpu='x86-64' applies to compiled CPU code"):
        gc.function([], gc.constant(1.0), device="cuda-sim", cpu="x86-64")
    with pytest.raises(gc.ArgumentError, match="non-negative integer"):
        gc.Session(device="cuda-sim:x")


def test_shfl_down_takes_the_lane_offset_above_and_keeps_its_own_past_the_warp() -> None:
    from graphc.backends.cuda_sim.interpreter import shfl_down

    lanes = np.arange(32)
    shifted = shfl_down(lanes, 4)
    assert shifted[:28].tolist() == list(range(4, 32)) and shifted[28:].tolist() == [28, 29, 30, 31]


@pytest.mark.parametrize("block", [32, 64, 256])
def test_a_block_reduction_combines_partials_in_the_gpus_tree_order(block: int) -> None:
    from graphc.backends.cuda_sim.interpreter import _Runtime as runtime

    rng = np.random.default_rng(block)
    rows = 3
    partial = rng.standard_normal(rows * block).astype(np.float32)
    launch = Launch("k", (), ((IVar("r"), rows),), ())
    total = runtime(launch, {}, set()).block_combine(partial, np.add, np.float32(-0.0), block)

    def tree(values: np.ndarray) -> np.ndarray:  # the shuffle-down tree, written out lane by lane
        values = values.copy()
        for offset in (16, 8, 4, 2, 1):
            values = np.array([values[i] + (values[i + offset] if i + offset < 32 else values[i]) for i in range(32)],
                              np.float32)
        return values[0]

    for row in range(rows):
        warps = partial[row * block:(row + 1) * block].reshape(-1, 32)
        shared = [tree(w) for w in warps]
        second = np.full(32, -0.0, np.float32)
        second[:len(shared)] = shared
        assert total[row * block] == tree(second)  # bit for bit
        assert (total[row * block:(row + 1) * block] == total[row * block]).all()  # every thread has it


@on_gpus
@pytest.mark.parametrize("shape", [(3, 1000), (1, 70), (4, 64)])
def test_long_row_reductions_share_a_block_and_agree_with_numpy(shape: tuple[int, int], gpu: str) -> None:
    rng = np.random.default_rng(1)
    x = gc.placeholder("float64", shape)
    labels = gc.placeholder("int64", shape[:1])
    outputs = [gc.sum(x, axis=1), gc.max(x, axis=1), gc.min(x), gc.prod(x * 0.001 + 1.0, axis=1), gc.softmax(x),
               gc.logsumexp(x, axis=1), gc.softmax_cross_entropy(x, labels)]
    fn = gc.function([x, labels], outputs, device=gpu)
    xv, lv = rng.standard_normal(shape), rng.integers(0, shape[1], shape[:1])
    got = fn(xv, lv)
    want = gc.function([x, labels], outputs, device="reference")(xv, lv)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    assert "block reduction" in fn.source("launches")
    labels_bad = lv.copy()
    labels_bad[-1] = shape[1]
    with pytest.raises(gc.ExecutionError, match="out of range"):  # a check inside a block launch
        fn(xv, labels_bad)


def test_atomic_adds_take_turns_but_race_with_plain_accesses() -> None:
    t = IVar("t")
    zero = IBin("*", t, IConst(0))
    out = np.zeros(4, np.float32)
    _run(_launch((AtomicAdd("out", zero, Const(1.5, F32)),)), out=out)
    assert out.tolist() == [6, 0, 0, 0]  # four threads, one element
    plain_then_atomic = (Store("out", t, Const(1.0, F32)), AtomicAdd("out", zero, Const(1.0, F32)))
    with pytest.raises(EmulatorFault, match="thread 1 adds into it after thread 0"):
        _run(_launch(plain_then_atomic), out=np.zeros(4, np.float32))


@on_gpus
def test_scatter_adds_with_repeated_indices_agree_with_numpy(gpu: str) -> None:
    rng = np.random.default_rng(3)
    table = gc.placeholder("float64", (50, 8))
    ids = gc.placeholder("int32", (200,))
    (grad,) = gc.grad(gc.sum(gc.take(table, ids, axis=0) * gc.constant(rng.standard_normal((200, 8)))), [table])
    feeds = {table: rng.standard_normal((50, 8)), ids: rng.integers(0, 5, 200).astype(np.int32)}  # many repeats
    np.testing.assert_allclose(gc.Session(device=gpu).run(grad, feeds),
                               gc.Session(device="reference").run(grad, feeds), rtol=1e-12, atol=1e-12)
