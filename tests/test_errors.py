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


def test_unsafe_python_scalars_in_assign_are_refused() -> None:
    ints = gc.Variable(np.zeros(2, np.int32), name="ints")
    flags = gc.Variable(np.zeros(2, bool), name="flags")
    small = gc.Variable(np.zeros(2, np.int8), name="small")
    with pytest.raises(gc.DTypeError):
        gc.assign(ints, 2.5)
    with pytest.raises(gc.DTypeError):
        gc.assign(flags, 2)
    with pytest.raises(gc.DTypeError, match="300"):
        gc.assign(small, 300)
    gc.Session().run(gc.assign(small, -7))
    assert small.value.tolist() == [-7, -7]


def test_variable_dtype_conversion_is_checked() -> None:
    with pytest.raises(gc.DTypeError):
        gc.Variable([1.7], dtype="int32")
    with pytest.raises(gc.DTypeError, match="uint8"):
        gc.Variable([300], dtype="uint8")
    assert gc.Variable([255], dtype="uint8").value.tolist() == [255]


def test_integer_feeds_of_any_signedness_are_range_checked() -> None:
    pixels = gc.placeholder("uint8", (None,), name="pixels")
    assert gc.Session().run(pixels, {pixels: [0, 255]}).dtype == np.uint8
    for bad in ([256], [-1]):
        with pytest.raises(gc.FeedError, match="do not fit in uint8"):
            gc.Session().run(pixels, {pixels: bad})


def test_float_feed_overflowing_float32_is_refused() -> None:
    x = gc.placeholder("float32", (None,), name="narrow")
    with pytest.raises(gc.FeedError, match="overflows float32"):
        gc.Session().run(x, {x: np.array([1.0, 1e300])})
    assert np.isinf(gc.Session().run(x, {x: np.array([np.inf])})).all()  # inf itself is fine


def test_every_function_input_is_checked_even_if_unused() -> None:
    x = gc.placeholder("float32", (None,), name="used")
    unused = gc.placeholder("float32", (2,), name="unused")
    f = gc.function([x, unused], x * 2)
    with pytest.raises(gc.FeedError, match="'unused"):
        f([1.0], "garbage")
    with pytest.raises(gc.ArgumentError, match="list of placeholders"):
        gc.function(x, x * 2)


def test_feed_errors_name_the_line_of_the_call() -> None:
    x = gc.placeholder("float32", (3,), name="called")
    f = gc.function([x], x + 1)
    with pytest.raises(gc.FeedError) as info:
        line = this_line(); f(np.zeros(4))  # noqa: E702
    assert f"in the call at tests/{line}" in str(info.value)


def test_messages_do_not_repeat_the_op_name() -> None:
    a = gc.placeholder("float32", (2, 3), name="m1")
    with pytest.raises(gc.ShapeError) as info:
        a @ a
    assert "matmul: matmul" not in str(info.value)


def test_group_used_as_a_value_is_explained() -> None:
    g = gc.group(gc.assign(gc.Variable(1.0), 2.0))
    with pytest.raises(gc.GraphError) as info:
        g + 1
    assert "without a value" in str(info.value) and "cast" not in str(info.value)


def test_non_numeric_operand_message_names_the_value() -> None:
    x = gc.placeholder("float32", (2,), name="x")
    with pytest.raises(gc.DTypeError, match="str 'text'"):
        x + "text"


def test_one_hot_labels_to_sparse_cross_entropy_get_a_hint() -> None:
    logits = gc.placeholder("float32", (2, 3), name="lg")
    with pytest.raises(gc.ShapeError, match="class ids.*cast them to float"):
        gc.softmax_cross_entropy(logits, gc.placeholder("int64", (2, 3)))


def test_dprint_of_something_else_is_an_argument_error() -> None:
    with pytest.raises(gc.ArgumentError, match="int"):
        gc.dprint(3)


def test_mean_of_empty_axis_is_nan_without_warnings() -> None:
    import warnings

    x = gc.placeholder("float32", (None, 2), name="empty")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = gc.Session().run(gc.mean(x, axis=0), {x: np.zeros((0, 2))})
    assert out.dtype == np.float32 and np.isnan(out).all()


def test_assign_never_wraps_truncates_or_overflows() -> None:
    small = gc.Variable(np.zeros(2, np.int8), name="small8")
    weights = gc.Variable(np.zeros(2, np.float32), name="weights32")
    with pytest.raises(gc.DTypeError, match="300.*int8"):
        gc.assign(small, [300, 1])
    with pytest.raises(gc.DTypeError, match="overflows float32"):
        gc.assign(weights, 1e300)
    wide = gc.placeholder("float64", (2,), name="wide")
    with pytest.raises(gc.DTypeError, match=r'gc\.cast\(value, "float32"\)'):
        gc.assign(weights, wide * 2)
    with pytest.raises(gc.DTypeError, match="without loss"):
        gc.function([wide], None, updates={small: gc.cast(wide, "int32")})
    narrow = gc.placeholder("int8", (2,), name="narrow")
    gc.function([narrow], None, updates={weights: narrow})(np.array([3, -4], np.int8))  # int8 -> float32 is safe
    assert weights.value.tolist() == [3.0, -4.0]
    gc.Session().run(gc.assign(weights, gc.cast(wide, "float32")), {wide: [0.5, 1.5]})
    assert weights.value.tolist() == [0.5, 1.5]


def test_every_run_time_error_names_the_calling_line() -> None:
    data = gc.placeholder("float32", (None,), name="cdata")
    idx = gc.placeholder("int64", (None,), name="cidx")
    f = gc.function([data, idx], gc.take(data, idx))
    with pytest.raises(gc.ExecutionError) as info:
        line = this_line(); f(np.zeros(2), [5])  # noqa: E702
    assert f"in the call at tests/{line}" in str(info.value)
    with pytest.raises(gc.FeedError) as info:
        line = this_line(); f(np.zeros(2))  # noqa: E702
    assert f"in the call at tests/{line}" in str(info.value)
    with pytest.raises(gc.FeedError) as info:
        line = this_line(); gc.Session().run(data, {"cdata": 1})  # noqa: E702
    assert f"in the call at tests/{line}" in str(info.value)
