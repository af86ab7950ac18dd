"""Errors are GraphcError subclasses that name the tensors, what was expected and given, and the user's line."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import graphc as gc


def this_line() -> str:
    """``test_errors.py:N`` for the caller's line."""
    frame = inspect.currentframe().f_back  # type: ignore[union-attr]
    return f"test_errors.py:{frame.f_lineno}"  # type: ignore[union-attr]


def test_hierarchy_also_derives_from_builtin_exceptions() -> None:
    assert issubclass(gc.ShapeError, gc.GraphcError) and issubclass(gc.ShapeError, ValueError)
    assert issubclass(gc.DTypeError, gc.GraphcError) and issubclass(gc.DTypeError, TypeError)
    for cls in (gc.FeedError, gc.ArgumentError, gc.GraphError, gc.ExecutionError):
        assert issubclass(cls, gc.GraphcError)


def test_shape_error_names_inputs_shapes_and_user_line() -> None:
    x = gc.placeholder("float32", (3, 4), name="lhs")
    y = gc.placeholder("float32", (5,), name="rhs")
    with pytest.raises(gc.ShapeError) as info:
        line = this_line(); x + y  # noqa: E702
    message = str(info.value)
    assert "add" in message and "[3, 4]" in message and "[5]" in message
    assert "'lhs'" in message and "'rhs'" in message
    assert line in message
    assert info.value.location.lineno == int(line.split(":")[1])


def test_matmul_error_points_at_the_matmul_line() -> None:
    a = gc.placeholder("float32", (None, 3), name="a")
    b = gc.placeholder("float32", (4, 2), name="b")
    with pytest.raises(gc.ShapeError, match="contracted") as info:
        line = this_line(); a @ b  # noqa: E702
    assert line in str(info.value)


def test_dtype_error_at_build_time() -> None:
    flag = gc.placeholder("bool", (2,), name="flag")
    with pytest.raises(gc.DTypeError) as info:
        line = this_line(); -flag  # noqa: E702, B018
    assert "bool" in str(info.value) and line in str(info.value)


def test_argument_errors_for_bad_attributes() -> None:
    x = gc.placeholder("float32", (2, 3, 4, 4), name="img")
    with pytest.raises(gc.ArgumentError, match="axis 5 is out of range"):
        gc.sum(x, axis=5)
    with pytest.raises(gc.ArgumentError, match="padding"):
        gc.max_pool2d(x, 2, padding="FULL")
    with pytest.raises(gc.ArgumentError, match="repeated axis"):
        gc.mean(x, axis=(1, -3))


def test_run_time_fault_in_take_is_an_execution_error_naming_the_line() -> None:
    data = gc.placeholder("float32", (None,), name="data")
    idx = gc.placeholder("int64", (None,), name="idx")
    line = this_line(); picked = gc.take(data, idx)  # noqa: E702
    with pytest.raises(gc.ExecutionError) as info:
        gc.Session().run(picked, {data: np.zeros(3), idx: np.array([0, 3])})
    assert "take" in str(info.value) and line in str(info.value)


def test_run_time_shape_mismatch_names_the_line_of_the_op() -> None:
    a = gc.placeholder("float32", (None,), name="ra")
    b = gc.placeholder("float32", (None,), name="rb")
    line = this_line(); total = gc.sum(a * b)  # noqa: E702
    f = gc.function([a, b], total)
    with pytest.raises(gc.ShapeError) as info:
        f(np.ones(3), np.ones(2))
    assert line in str(info.value) and "ra: [3]" in str(info.value)


def test_symbolic_tensors_have_no_truth_value_or_array_value() -> None:
    x = gc.placeholder("float32", (), name="scalar")
    with pytest.raises(gc.GraphError, match="truth value"):
        if x > 0:
            pass
    with pytest.raises(gc.GraphError, match="no value"):
        np.asarray(x)
    with pytest.raises(gc.GraphError, match="unknown"):
        len(gc.placeholder("float32", (None, 2)))


def test_tensors_are_immutable() -> None:
    x = gc.placeholder("float32", (2,), name="frozen")
    with pytest.raises(AttributeError, match="immutable"):
        x.shape = (3,)  # type: ignore[misc]
    with pytest.raises(TypeError):
        x.attrs["shape"] = (3,)  # type: ignore[index]


def test_bad_dtypes_and_shapes_for_placeholders_and_constants() -> None:
    with pytest.raises(gc.DTypeError, match="complex128"):
        gc.placeholder("complex128", (2,))
    with pytest.raises(gc.DTypeError):
        gc.placeholder("not-a-dtype", (2,))
    with pytest.raises(gc.ShapeError):
        gc.placeholder("float32", (-1, 2))
    with pytest.raises(gc.DTypeError):
        gc.constant(["a", "b"])
    with pytest.raises(gc.DTypeError, match="int64"):
        gc.constant(2**70)


def test_non_tensor_operands_are_explained() -> None:
    x = gc.placeholder("float32", (2,), name="x")
    with pytest.raises(gc.DTypeError):
        x + "text"
    with pytest.raises(gc.DTypeError):
        x * object()
