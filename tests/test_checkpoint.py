"""Checkpoints (graphc/checkpoint.py): gc.save_checkpoint, gc.restore_checkpoint and gc.read_checkpoint.

Values round-trip bit for bit (every dtype, NaN payloads and -0.0 included); keys come from a list (the
Variables' names) or a dict; metadata round-trips; ``variables=None`` saves every live Variable and restores
by name; an optimizer's slots restored mid-training continue training bit for bit; writes are atomic; and
every mistake raises gc.CheckpointError naming the file, the key, what was expected and what was given, and
the user's line.  Nothing is compiled (the training test runs on the reference interpreter), so the module
runs in about a second.
"""

from __future__ import annotations

import gc as pygc
import json
import os
import re
import weakref

import numpy as np
import pytest
import safetensors.numpy
from safetensors import safe_open

import graphc as gc
from graphc.ops import state
from graphc.optimizers import Adam

HERE = "test_checkpoint.py"


@pytest.fixture
def only_new_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the Variables the test creates are live (what ``variables=None`` sees), whatever other tests
    in this process still hold."""
    monkeypatch.setattr(state, "_live_variables", weakref.WeakValueDictionary())


def bits(a: np.ndarray) -> np.ndarray:
    """The array's bit patterns: floats viewed as unsigned integers, so NaN payloads and -0.0 count."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        return a.view({4: np.uint32, 8: np.uint64}[a.dtype.itemsize])
    return a


def assert_bitwise_equal(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert np.array_equal(bits(got), bits(expected)), (got, expected)


def special_values(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Random values of ``dtype`` and ``shape`` with the awkward ones (NaN with a payload, -0.0, infinities,
    denormals, extremes) at the start."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(len(shape) * 31 + dt.num)
    size = int(np.prod(shape))
    if dt.kind == "f":
        utype = {4: np.uint32, 8: np.uint64}[dt.itemsize]
        payload_nan = np.array([{4: 0x7FC0_1234, 8: 0x7FF8_0000_0000_1234}[dt.itemsize]], utype).view(dt)[0]
        info = np.finfo(dt)
        special = [-0.0, payload_nan, np.nan, -np.inf, np.inf, info.smallest_subnormal, info.max, -info.tiny]
        values = rng.standard_normal(size).astype(dt)
    elif dt.kind == "b":
        special = [True, False]
        values = rng.integers(0, 2, size).astype(bool)
    else:
        info = np.iinfo(dt)
        special = [info.min, info.max, 0, -1 if dt.kind == "i" else 1]
        values = rng.integers(info.min, info.max, size, dtype=dt, endpoint=True)
    n = min(size, len(special))
    values[:n] = np.array(special[:n]).astype(dt)
    return values.reshape(shape)


def different(a: np.ndarray) -> np.ndarray:
    """Values of ``a``'s dtype and shape that differ from ``a`` everywhere it matters for the test."""
    return np.logical_not(a) if a.dtype == bool else np.full(a.shape, 7, a.dtype)


def assign_different(variables: list[gc.Variable]) -> None:
    for var in variables:
        var.assign(different(var.value))


def files_in(directory: os.PathLike[str]) -> list[str]:
    return sorted(os.listdir(directory))


# ---- round trips ------------------------------------------------------------------------------------

DTYPES = ["float32", "float64", "int64", "int32", "bool", "uint8"]
SHAPES = [pytest.param((), id="scalar"), pytest.param((3,), id="vector"),
          pytest.param((2, 3, 4), id="rank3")]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_values_round_trip_bit_for_bit(tmp_path, dtype, shape):
    original = special_values(dtype, shape)
    var = gc.Variable(original, name="round_trip")
    assert var.dtype == np.dtype(dtype) and var.shape == shape
    path = tmp_path / "values.ckpt"
    gc.save_checkpoint(path, [var])
    var.assign(different(original))
    assert not np.array_equal(bits(var.value), bits(original))
    assert gc.restore_checkpoint(path, [var]) == {}
    assert_bitwise_equal(var.value, original)
    arrays, metadata = gc.read_checkpoint(path)
    assert list(arrays) == [var.name] and metadata == {}
    assert_bitwise_equal(arrays[var.name], original)
    # a standard safetensors file: safetensors itself reads the same bits
    assert_bitwise_equal(safetensors.numpy.load_file(path)[var.name], original)


def test_every_dtype_in_one_file(tmp_path):
    shapes = [(3,), (2, 3, 4), (1,), (0,), (2, 0, 3)]  # empty arrays too
    originals = {f"{dtype}_{i}": special_values(dtype, shape)
                 for dtype in DTYPES for i, shape in enumerate(shapes)}
    variables = {key: gc.Variable(value) for key, value in originals.items()}
    path = tmp_path / "all.ckpt"
    gc.save_checkpoint(path, variables)
    assign_different(list(variables.values()))
    gc.restore_checkpoint(path, variables)
    for key, var in variables.items():
        assert_bitwise_equal(var.value, originals[key])
    arrays, _ = gc.read_checkpoint(path)
    assert list(arrays) == list(originals)  # in the order saved
    for key, value in arrays.items():
        assert_bitwise_equal(value, originals[key])


def test_header_metadata(tmp_path):
    w = gc.Variable(np.zeros((2, 3), np.float32), name="header_w")
    flags = gc.Variable(np.ones(4, bool), name="header_flags")
    path = tmp_path / "header.ckpt"
    gc.save_checkpoint(path, {"weights": w, "flags": flags}, metadata={"epoch": 3})
    with safe_open(str(path), framework="numpy") as f:
        header = f.metadata()
        assert sorted(f.keys()) == ["flags", "weights"]
    assert header["format"] == gc.checkpoint.FORMAT == "graphc-checkpoint"
    assert header["format_version"] == "1"
    assert header["graphc"] == gc.__version__
    described = json.loads(header["variables"])
    assert list(described) == ["weights", "flags"]
    assert described["weights"] == {"name": w.name, "dtype": "float32", "shape": [2, 3]}
    assert described["flags"] == {"name": flags.name, "dtype": "bool", "shape": [4]}
    assert json.loads(header["user"]) == {"epoch": 3}


def test_list_keys_are_names_and_dict_keys_are_chosen(tmp_path):
    a = gc.Variable(np.arange(3, dtype=np.float32), name="keys_a")
    b = gc.Variable(np.arange(6, dtype=np.int64).reshape(2, 3), name="keys_b")
    by_name, by_key = tmp_path / "list.ckpt", tmp_path / "dict.ckpt"
    gc.save_checkpoint(by_name, [a, b, a])  # the same Variable twice is one entry
    gc.save_checkpoint(by_key, {"layer.weight": a, "layer.index": b})
    assert list(gc.read_checkpoint(by_name)[0]) == [a.name, b.name]
    assert list(gc.read_checkpoint(by_key)[0]) == ["layer.weight", "layer.index"]

    # a dict restores into any Variables of the right type, whatever their names (another model, say)
    a2 = gc.Variable(np.zeros(3, np.float32), name="keys_other_a")
    b2 = gc.Variable(np.zeros((2, 3), np.int64), name="keys_other_b")
    gc.restore_checkpoint(by_key, {"layer.index": b2, "layer.weight": a2})
    assert_bitwise_equal(a2.value, a.value)
    assert_bitwise_equal(b2.value, b.value)
    # a list restores by name; the file may hold more than is restored
    a.assign(np.full(3, 9, np.float32))
    gc.restore_checkpoint(by_name, [a])
    assert_bitwise_equal(a.value, np.arange(3, dtype=np.float32))
    # a file saved from a list is read into other Variables with a dict keyed by the saved names
    a2.assign(np.zeros(3, np.float32))
    gc.restore_checkpoint(by_name, {a.name: a2})
    assert_bitwise_equal(a2.value, a.value)
    # a single Variable is a list of one
    gc.save_checkpoint(by_name, a)
    assert list(gc.read_checkpoint(by_name)[0]) == [a.name]


def test_metadata_round_trips(tmp_path):
    var = gc.Variable(np.ones(2), name="meta_v")
    metadata = {"epoch": 12, "loss": 0.125, "note": "résumé ✓", "done": False, "best": None,
                "schedule": [1, 2.5, "three"], "nested": {"lr": 1e-3, "layers": ["dense", "dense_1"]}}
    path = tmp_path / "meta.ckpt"
    gc.save_checkpoint(path, [var], metadata=metadata)
    assert gc.restore_checkpoint(path, [var]) == metadata
    assert gc.read_checkpoint(path)[1] == metadata
    gc.save_checkpoint(path, [var])  # no metadata: an empty dict
    assert gc.restore_checkpoint(path, [var]) == {}
    assert gc.read_checkpoint(path)[1] == {}


def test_path_may_be_str_or_pathlike(tmp_path):
    var = gc.Variable(np.arange(4, dtype=np.int32), name="path_v")
    gc.save_checkpoint(str(tmp_path / "s.ckpt"), [var])
    var.assign(np.zeros(4, np.int32))
    gc.restore_checkpoint(tmp_path / "s.ckpt", [var])
    assert_bitwise_equal(var.value, np.arange(4, dtype=np.int32))


# ---- variables=None: every live Variable, by name ------------------------------------------------------

def test_none_saves_every_live_variable(tmp_path):
    # in this process, with whatever other tests left alive
    mine = gc.Variable(np.arange(5, dtype=np.float32), name="live_everything")
    pygc.collect()
    expected = [v.name for v in state.live_variables()]
    path = tmp_path / "all.ckpt"
    gc.save_checkpoint(path)
    arrays, _ = gc.read_checkpoint(path)
    assert mine.name in arrays
    assert list(arrays) == expected  # in creation order
    assert_bitwise_equal(arrays[mine.name], mine.value)


def test_none_saves_live_variables_and_restores_by_name(tmp_path, only_new_variables):
    w = gc.Variable(special_values("float32", (2, 3)), name="none_w")
    n = gc.Variable(special_values("int64", (4,)), name="none_n")
    flags = gc.Variable(special_values("bool", (3,)), name="none_flags")
    saved = {v.name: v.value for v in (w, n, flags)}

    class Cycle:
        pass

    cycle = Cycle()
    cycle.self, cycle.var = cycle, gc.Variable(np.zeros(2), name="none_garbage")
    del cycle  # only a reference cycle holds it: not live, not saved

    path = tmp_path / "live.ckpt"
    gc.save_checkpoint(path, metadata={"step": 1})
    arrays, _ = gc.read_checkpoint(path)
    assert list(arrays) == [w.name, n.name, flags.name]
    assign_different([w, n, flags])
    assert gc.restore_checkpoint(path) == {"step": 1}
    for var in (w, n, flags):
        assert_bitwise_equal(var.value, saved[var.name])

    # Variables created later are not touched by a restore of a file that does not hold them
    extra = gc.Variable(np.full(2, 5.0), name="none_extra")
    w.assign(np.zeros((2, 3), np.float32))
    gc.restore_checkpoint(path)
    assert_bitwise_equal(w.value, saved[w.name])
    assert_bitwise_equal(extra.value, np.full(2, 5.0))


def test_none_restore_needs_a_live_variable_for_every_name(tmp_path, only_new_variables):
    a = gc.Variable(np.arange(3.0), name="ghost_a")
    b = gc.Variable(np.arange(2.0), name="ghost_b")
    path = tmp_path / "ghosts.ckpt"
    gc.save_checkpoint(path, {a.name: a, "ghost_never_built": b, "ghost_also_missing": b})
    a.assign(np.zeros(3))
    with pytest.raises(gc.CheckpointError) as err:
        gc.restore_checkpoint(path)
    message = str(err.value)
    assert str(path) in message and HERE in message
    assert "2 of 3 value(s)" in message
    assert "'ghost_never_built'" in message and "'ghost_also_missing'" in message
    assert "no Variable of that name" in message
    assert_bitwise_equal(a.value, np.zeros(3))  # nothing was assigned


# ---- optimizer state: training resumes bit for bit -------------------------------------------------

def test_adam_state_restored_mid_training_continues_bit_for_bit(tmp_path):
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((16, 3)).astype(np.float32)
    yb = (xb @ np.array([[1.5], [-2.0], [0.5]], np.float32) + 0.25).astype(np.float32)
    x = gc.placeholder("float32", (None, 3), name="ckpt_x")
    y = gc.placeholder("float32", (None, 1), name="ckpt_y")
    w = gc.Variable(rng.standard_normal((3, 1)).astype(np.float32), name="ckpt_w")
    b = gc.Variable(np.zeros(1, np.float32), name="ckpt_b")
    loss = gc.mean((x @ w + b - y) ** 2)
    opt = Adam(0.05)
    step = gc.function([x, y], loss, updates=opt.updates(loss, [w, b]), device="reference")  # no compile: fast
    state_vars = [w, b, *opt.variables()]
    assert len(state_vars) == 8  # w, b and each one's m, v and step

    for _ in range(3):
        step(xb, yb)
    path = tmp_path / "train" / "step3.ckpt"
    gc.save_checkpoint(path, state_vars)
    for _ in range(2):
        step(xb, yb)
    recorded = [v.value for v in state_vars]
    assert int(opt.get_slot(w, "step").value) == 5

    assign_different(state_vars)
    gc.restore_checkpoint(path, state_vars)
    assert int(opt.get_slot(w, "step").value) == 3
    for _ in range(2):
        step(xb, yb)
    for var, expected in zip(state_vars, recorded):
        assert_bitwise_equal(var.value, expected)


# ---- atomic writes ------------------------------------------------------------------------------------

def test_write_creates_parents_and_leaves_no_temporary_files(tmp_path):
    var = gc.Variable(np.arange(3.0), name="atomic_v")
    path = tmp_path / "a" / "b" / "c" / "model.ckpt"
    gc.save_checkpoint(path, [var])
    assert files_in(path.parent) == ["model.ckpt"]
    var.assign(np.full(3, 2.0))
    gc.save_checkpoint(path, [var])  # replaces the file
    assert files_in(path.parent) == ["model.ckpt"]
    assert_bitwise_equal(gc.read_checkpoint(path)[0][var.name], np.full(3, 2.0))


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    var = gc.Variable(np.arange(3.0), name="interrupted_v")
    path = tmp_path / "model.ckpt"
    gc.save_checkpoint(path, [var], metadata={"version": "old"})
    before = path.read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{")  # half-written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.numpy, "save_file", crash)
    var.assign(np.zeros(3))
    with pytest.raises(gc.CheckpointError) as err:
        gc.save_checkpoint(path, [var], metadata={"version": "new"})
    message = str(err.value)
    assert f"cannot write checkpoint {path}" in message and "No space left on device" in message
    assert HERE in message
    assert files_in(tmp_path) == ["model.ckpt"]  # the temporary file is gone
    assert path.read_bytes() == before
    monkeypatch.undo()
    assert gc.read_checkpoint(path)[1] == {"version": "old"}


def test_failed_rename_leaves_no_temporary_file(tmp_path):
    var = gc.Variable(np.arange(3.0), name="rename_v")
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("keep")
    with pytest.raises(gc.CheckpointError) as err:
        gc.save_checkpoint(target, [var])
    assert f"cannot write checkpoint {target}" in str(err.value) and HERE in str(err.value)
    assert files_in(tmp_path) == ["taken"]
    assert files_in(target) == ["inside"]


def test_refused_save_writes_nothing(tmp_path):
    var = gc.Variable(np.arange(3.0), name="refused_v")
    path = tmp_path / "model.ckpt"
    gc.save_checkpoint(path, [var], metadata={"ok": 1})
    before = path.read_bytes()
    with pytest.raises(gc.CheckpointError):
        gc.save_checkpoint(path, [var], metadata={"bad": object()})
    with pytest.raises(gc.CheckpointError):
        gc.save_checkpoint(tmp_path / "sub" / "other.ckpt", {"a": var, "b": 3})
    assert files_in(tmp_path) == ["model.ckpt"]
    assert path.read_bytes() == before


# ---- errors ---------------------------------------------------------------------------------------------

def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(gc.CheckpointError) as err:
        call(*args, **kwargs)
    message = str(err.value)
    assert HERE in message, message  # the user's line
    return message


@pytest.fixture
def saved(tmp_path):
    """A checkpoint of ``w`` (float32[2, 3]) and ``n`` (int64[4]) under the keys "w" and "n"."""
    w = gc.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="saved_w")
    n = gc.Variable(np.arange(4, dtype=np.int64), name="saved_n")
    path = tmp_path / "saved.ckpt"
    gc.save_checkpoint(path, {"w": w, "n": n})
    return path, w, n


@pytest.mark.parametrize("reader", ["restore", "read"])
def test_missing_file(tmp_path, reader):
    var = gc.Variable(np.zeros(2), name="missing_v")
    path = tmp_path / "nowhere" / "model.ckpt"
    call = (lambda: gc.restore_checkpoint(path, [var])) if reader == "restore" else (lambda: gc.read_checkpoint(path))
    message = error_of(call)
    assert f"checkpoint {path} does not exist" in message
    message = error_of(gc.read_checkpoint, tmp_path)
    assert f"checkpoint {tmp_path} is not a file" in message


@pytest.mark.parametrize("size", [1000, 1], ids=["data-cut", "header-cut"])
def test_truncated_file(tmp_path, size):
    var = gc.Variable(np.arange(size, dtype=np.float64), name="truncated_v")
    path = tmp_path / "cut.ckpt"
    gc.save_checkpoint(path, [var])
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    for call in (lambda: gc.restore_checkpoint(path, [var]), lambda: gc.read_checkpoint(path)):
        message = error_of(call)
        assert f"checkpoint {path} is damaged or truncated" in message
    path.write_bytes(b"")
    assert f"checkpoint {path} is damaged or truncated" in error_of(gc.read_checkpoint, path)


@pytest.mark.parametrize("content", [b"this is not a checkpoint at all\n" * 8, bytes(range(256)),
                                     b"\x08\x00\x00\x00\x00\x00\x00\x00not json"],
                         ids=["text", "bytes", "bad-header"])
def test_garbage_bytes(tmp_path, content):
    path = tmp_path / "garbage.ckpt"
    path.write_bytes(content)
    message = error_of(gc.read_checkpoint, path)
    assert f"checkpoint {path} is damaged or truncated (not a readable safetensors file)" in message


@pytest.mark.parametrize("metadata", [None, {"format": "pt"}], ids=["no-metadata", "other-metadata"])
def test_plain_safetensors_file_is_not_a_checkpoint(tmp_path, metadata):
    path = tmp_path / "plain.safetensors"
    safetensors.numpy.save_file({"w": np.zeros((2, 3), np.float32)}, str(path), metadata=metadata)
    var = gc.Variable(np.zeros((2, 3), np.float32), name="plain_v")
    for call in (lambda: gc.restore_checkpoint(path, {"w": var}), lambda: gc.read_checkpoint(path)):
        message = error_of(call)
        assert f"{path} is not a graphc checkpoint" in message
        assert "expected format 'graphc-checkpoint'" in message
        assert f"got {(metadata or {}).get('format')!r}" in message


def test_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "future.ckpt"
    header = {"format": "graphc-checkpoint", "format_version": "2", "graphc": "9.0.0",
              "variables": json.dumps({"w": {"name": "w", "dtype": "float32", "shape": [2]}}), "user": "{}"}
    safetensors.numpy.save_file({"w": np.zeros(2, np.float32)}, str(path), metadata=header)
    message = error_of(gc.read_checkpoint, path)
    assert f"checkpoint {path} has format version 2, written by graphc 9.0.0" in message
    assert "reads versions up to 1" in message and "upgrade graphc" in message


def test_header_that_does_not_match_the_tensors_is_damaged(tmp_path):
    path = tmp_path / "inconsistent.ckpt"
    header = {"format": "graphc-checkpoint", "format_version": "1", "graphc": gc.__version__,
              "variables": json.dumps({"w": {"name": "w", "dtype": "float64", "shape": [2]}}), "user": "{}"}
    safetensors.numpy.save_file({"w": np.zeros(2, np.float32)}, str(path), metadata=header)
    message = error_of(gc.read_checkpoint, path)
    assert f"checkpoint {path} is damaged" in message and "holds float32[2]" in message
    header["variables"] = json.dumps({"v": {"name": "v", "dtype": "float32", "shape": [2]}})
    safetensors.numpy.save_file({"w": np.zeros(2, np.float32)}, str(path), metadata=header)
    message = error_of(gc.read_checkpoint, path)
    assert "lists 'v', but it holds 'w'" in message


def test_missing_key(saved):
    path, w, _ = saved
    other = gc.Variable(np.zeros(3, np.float32), name="saved_other")
    for variables in ({"w": w, "bias": other}, [other]):
        message = error_of(gc.restore_checkpoint, path, variables)
        key = "bias" if isinstance(variables, dict) else other.name
        assert f"checkpoint {path} has no entry {key!r} for Variable {other.name!r}" in message
        assert "it holds 'w', 'n'" in message


def test_shape_mismatch(saved):
    path, _, n = saved
    wrong = gc.Variable(np.zeros((3, 2), np.float32), name="saved_wrong_shape")
    message = error_of(gc.restore_checkpoint, path, {"n": n, "w": wrong})
    assert f"entry 'w' of checkpoint {path} does not fit Variable {wrong.name!r}" in message
    assert "expected float32[3, 2], got float32[2, 3]" in message


def test_dtype_mismatch(saved):
    path, _, _ = saved
    wrong = gc.Variable(np.zeros(4, np.int32), name="saved_wrong_dtype")
    message = error_of(gc.restore_checkpoint, path, {"n": wrong})
    assert f"entry 'n' of checkpoint {path} does not fit Variable {wrong.name!r}" in message
    assert "expected int32[4], got int64[4]" in message


def test_nothing_is_assigned_unless_everything_fits(saved):
    path, w, _ = saved
    w.assign(np.full((2, 3), 5, np.float32))
    wrong = gc.Variable(np.zeros(4, np.float64), name="saved_wrong_too")
    error_of(gc.restore_checkpoint, path, {"w": w, "n": wrong})
    assert_bitwise_equal(w.value, np.full((2, 3), 5, np.float32))
    assert_bitwise_equal(wrong.value, np.zeros(4))


@pytest.mark.parametrize("call", ["save", "restore"])
def test_dict_value_that_is_not_a_variable(saved, call):
    path, w, _ = saved
    function = gc.save_checkpoint if call == "save" else gc.restore_checkpoint
    name = f"{call}_checkpoint"
    message = error_of(function, path, {"w": w, "b": 3})
    assert f"{name}: expected gc.Variables, got int 3 for key 'b'" in message
    message = error_of(function, path, {"w": w + 1})
    assert f"{name}: expected gc.Variables, got Tensor" in message and "for key 'w'" in message
    message = error_of(function, path, [w, np.zeros(3)])
    assert f"{name}: expected gc.Variables, got ndarray" in message


@pytest.mark.parametrize("key", ["", "__metadata__", 1], ids=["empty", "reserved", "int"])
def test_bad_keys(tmp_path, key):
    var = gc.Variable(np.zeros(2), name="bad_key_v")
    message = error_of(gc.save_checkpoint, tmp_path / "k.ckpt", {key: var})
    assert "save_checkpoint: keys must be non-empty strings other than '__metadata__'" in message
    assert f"got {key!r} for {var.name!r}" in message
    assert not (tmp_path / "k.ckpt").exists()


@pytest.mark.parametrize("variables", ["w", 3, object()], ids=["str", "int", "object"])
def test_variables_of_the_wrong_kind(tmp_path, variables):
    message = error_of(gc.save_checkpoint, tmp_path / "v.ckpt", variables)
    assert "variables must be None, a list of gc.Variables or a dict {key: Variable}" in message
    assert f"got {type(variables).__name__}" in message


def test_nothing_to_save(tmp_path):
    path = tmp_path / "empty.ckpt"
    for variables in ([], {}):
        assert f"save_checkpoint: no Variables to save to {path}" in error_of(gc.save_checkpoint, path, variables)
    assert not path.exists()


@pytest.mark.parametrize("metadata, detail", [
    ({"when": object()}, "Object of type object is not JSON serializable"),
    ({"loss": float("nan")}, "Out of range float values are not JSON compliant"),
    ({"shape": np.zeros(2)}, "Object of type ndarray is not JSON serializable"),
    ({(1, 2): "tuple key"}, "keys must be str"),
], ids=["object", "nan", "array", "tuple-key"])
def test_metadata_that_is_not_json(tmp_path, metadata, detail):
    var = gc.Variable(np.zeros(2), name="json_v")
    path = tmp_path / "m.ckpt"
    message = error_of(gc.save_checkpoint, path, [var], metadata)
    assert "save_checkpoint: metadata must be JSON-serialisable" in message and detail in message
    assert not path.exists()


def test_metadata_that_is_not_a_dict(tmp_path):
    var = gc.Variable(np.zeros(2), name="not_dict_v")
    message = error_of(gc.save_checkpoint, tmp_path / "m.ckpt", [var], ["epoch", 3])
    assert "save_checkpoint: metadata must be a dict, got list" in message


def test_errors_are_value_errors_and_graphc_errors(tmp_path):
    with pytest.raises(ValueError, match=re.escape("does not exist")):
        gc.read_checkpoint(tmp_path / "missing.ckpt")
    with pytest.raises(gc.GraphcError):
        gc.read_checkpoint(tmp_path / "missing.ckpt")
