"""Arrow column <-> numpy tensor conversion (sparktf.model.convert), no Spark, no TensorFlow."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from sparktf.errors import ModelError
from sparktf.model.convert import to_arrow, to_tensor


def _images(rows: int, size: int) -> tuple[np.ndarray, pa.ListArray]:
    values = np.arange(rows * size, dtype=np.float32) / 7
    offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * size)
    return values.reshape(rows, size), pa.ListArray.from_arrays(offsets, pa.array(values))


def test_flat_list_reshaped_to_static_shape_without_copy() -> None:
    expected, column = _images(5, 784)
    out = to_tensor(column, column="image", tensor="x:0", dtype="float32",
                    shape=(None, 28, 28, 1))
    assert out.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(out.reshape(5, 784), expected)
    assert not out.flags.owndata  # a view of the Arrow buffer


def test_sliced_column_uses_its_own_offsets() -> None:
    expected, column = _images(6, 4)
    out = to_tensor(column.slice(2, 3), column="c", tensor="t:0", dtype="float64",
                    shape=(None, 2, 2))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out.reshape(3, 4), expected[2:5])


@pytest.mark.parametrize(
    ("array", "dtype", "shape", "expected"),
    [
        (pa.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], pa.list_(pa.list_(pa.int32()))),
         "int64", (None, None, None), np.arange(1, 9).reshape(2, 2, 2)),
        (pa.array([[1, 2, 3], [4, 5, 6]], pa.list_(pa.int64(), 3)), "float32", (None, 3),
         np.arange(1, 7).reshape(2, 3)),
        (pa.array([True, False]), "bool", (None,), np.array([True, False])),
        (pa.array([True, False]), "float32", (None, 1), np.array([[1.0], [0.0]])),
        (pa.array([1, 2], pa.int8()), "uint8", (None,), np.array([1, 2])),
        (pa.array([[1.5, 2.5, 3.5]]), "float32", (None, None), np.array([[1.5, 2.5, 3.5]])),
        (pa.array([[1.5, 2.5]]), "float32", None, np.array([[1.5, 2.5]])),
        (pa.array([[7.0]]), "float32", (None,), np.array([7.0])),
    ],
    ids=["nested", "fixed-size", "bool", "bool-to-float", "int8-to-uint8", "unknown-dim",
         "unknown-rank", "one-element-lists"],
)
def test_numeric_conversions(array: pa.Array, dtype: str, shape: tuple | None,
                             expected: np.ndarray) -> None:
    out = to_tensor(array, column="c", tensor="t:0", dtype=dtype, shape=shape)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, expected.astype(dtype))


def test_strings_and_binary_feed_string_tensors() -> None:
    out = to_tensor(pa.array(["a", "bé"]), column="s", tensor="s:0", dtype="string",
                    shape=(None,))
    assert list(out) == ["a", "bé"]
    out = to_tensor(pa.array([b"\x00\x01"]), column="s", tensor="s:0", dtype="string",
                    shape=(None,))
    assert list(out) == [b"\x00\x01"]


def test_empty_batch_has_the_row_shape() -> None:
    out = to_tensor(pa.array([], pa.list_(pa.float32())), column="c", tensor="x:0",
                    dtype="float32", shape=(None, 784))
    assert out.shape == (0, 784)


@pytest.mark.parametrize(
    ("array", "dtype", "shape", "message"),
    [
        (pa.array([[1.0] * 10]), "float32", (None, 784),
         r"column 'c' cannot feed tensor 't:0': expected shape \[None, 784\], "
         r"found shape \[1, 10\] \(10 values per row\)"),
        (pa.array([[1.0], [1.0, 2.0]]), "float32", (None, None),
         r"row 0 holds 1 and row 1 holds 2"),
        (pa.array([[1.0, 2.0], None, [3.0, 4.0]]), "float32", (None, 2),
         r"column 'c' holds a null at row 1 of the batch \(the value is null\)"),
        (pa.array([[1.0, 2.0], [3.0, 4.0], [5.0, None]]), "float32", (None, 2),
         r"column 'c' holds a null at row 2 of the batch \(an array element is null\)"),
        (pa.array(["1.5"]), "float32", (None,),
         r"column 'c' of type string cannot feed tensor 't:0' of dtype float32"),
        (pa.array([1.5]), "int32", (None,),
         r"column 'c' of type double cannot feed tensor 't:0' of dtype int32"),
        (pa.array([3]), "bool", (None,), r"a bool tensor takes boolean columns"),
        (pa.array([300]), "uint8", (None,), r"holds 300, out of the range of tensor 't:0'"),
        (pa.array([1.0]), "complex64", (None,), r"tensor dtype 'complex64' is not supported"),
    ],
    ids=["shape", "ragged", "null-row", "null-element", "string-to-float", "float-to-int",
         "int-to-bool", "out-of-range", "unsupported-dtype"],
)
def test_conversion_errors(array: pa.Array, dtype: str, shape: tuple | None,
                           message: str) -> None:
    with pytest.raises(ModelError, match=message):
        to_tensor(array, column="c", tensor="t:0", dtype=dtype, shape=shape)


@pytest.mark.parametrize(
    ("value", "dtype", "arrow_type"),
    [
        (np.array([1, 2], np.int64), "int64", pa.int64()),
        (np.array([1, 2], np.uint8), "uint8", pa.int32()),
        (np.array([0.5, 1.5], np.float16), "float16", pa.float32()),
        (np.arange(6, dtype=np.float32).reshape(2, 3), "float32", pa.list_(pa.float32())),
        (np.arange(12, dtype=np.float64).reshape(2, 3, 2), "float64",
         pa.list_(pa.list_(pa.float64()))),
        (np.array([True, False]), "bool", pa.bool_()),
        (np.array([b"a", b"bc"], dtype=object), "string", pa.binary()),
    ],
    ids=["int64", "uint8", "float16", "rank2", "rank3", "bool", "string"],
)
def test_outputs_to_arrow(value: np.ndarray, dtype: str, arrow_type: pa.DataType) -> None:
    out = to_arrow(value, rows=2, tensor="y:0", dtype=dtype)
    assert out.type == arrow_type
    assert out.to_pylist() == value.tolist()


def test_output_without_batch_dimension_is_refused() -> None:
    with pytest.raises(ModelError, match=r"output tensor 'y:0' returned shape \[4\] for a batch "
                                         r"of 3 rows: its first dimension is not the batch"):
        to_arrow(np.zeros(4), rows=3, tensor="y:0", dtype="float64")
