"""Columnar conversion between Arrow columns and numpy tensors (runs on workers).

Inputs: an Arrow column (scalar, list, nested list, string or binary) becomes one numpy array
of the tensor's dtype and static shape, built from the column's flat values and offsets:
no Python object per row (except for string tensors, which TensorFlow takes as objects).
Outputs: a numpy array whose first dimension is the batch becomes an Arrow array:
rank 1 -> scalars, rank 2 -> lists, rank >= 3 -> nested lists.

Conversion rules (also checked on the driver by :func:`check_kinds`):

- into a float tensor: boolean (0/1), integer and floating columns; double -> float32 rounds
  to the nearest float32, and integers beyond 2**24 (float32) or 2**53 (float64) round too;
- into an integer tensor: boolean and integer columns; a value out of the tensor's range
  is an error; floating columns are refused (cast them first);
- into a bool tensor: boolean columns only; into a string tensor: string or binary columns;
- a null value (a null cell or a null array element) is an error naming the column and
  the row within the batch: fill or filter nulls first (``df.na.fill``, ``df.dropna``).

Examples
--------
>>> import pyarrow as pa
>>> col = pa.array([[1.0, 2.0, 3.0, 4.0]], pa.list_(pa.float64()))
>>> to_tensor(col, column="image", tensor="x:0", dtype="float32", shape=(None, 2, 2)).shape
(1, 2, 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparktf.errors import ModelError

Shape = tuple[int | None, ...] | None

#: TensorFlow dtype name -> numpy dtype of the fed or fetched array.
NUMPY_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name)
    for name in (
        "float16", "float32", "float64", "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64", "bool",
    )
}
NUMPY_DTYPES["string"] = np.dtype(object)

#: TensorFlow dtype name -> Arrow type of the output column (see the module docstring).
ARROW_OUTPUT: dict[str, pa.DataType] = {
    "float16": pa.float32(), "float32": pa.float32(), "float64": pa.float64(),
    "int8": pa.int32(), "int16": pa.int32(), "int32": pa.int32(), "uint8": pa.int32(),
    "uint16": pa.int32(), "int64": pa.int64(), "uint32": pa.int64(), "bool": pa.bool_(),
    "string": pa.binary(),
}

# Which source kinds (b bool, i int, f float, s string/binary) each tensor kind accepts.
_ACCEPTS = {"f": "bif", "i": "bi", "b": "b", "s": "s"}
_KIND_WORDS = {"b": "boolean", "i": "integer", "f": "floating", "s": "string/binary"}


def tensor_kind(dtype: str) -> str:
    """The kind of a TensorFlow dtype name: ``f``, ``i``, ``b`` or ``s``."""
    if dtype == "string":
        return "s"
    if dtype not in NUMPY_DTYPES:
        raise ModelError(f"tensor dtype {dtype!r} is not supported; supported: "
                         + ", ".join(sorted(NUMPY_DTYPES)))
    kind = NUMPY_DTYPES[dtype].kind
    return "i" if kind == "u" else kind


def check_kinds(source: str, dtype: str, *, column: str, tensor: str, found: str) -> None:
    """Raise :class:`ModelError` when a column of kind ``source`` cannot feed ``dtype``.

    Examples
    --------
    >>> check_kinds("i", "float32", column="n", tensor="x:0", found="bigint")
    """
    target = tensor_kind(dtype)
    if source not in _ACCEPTS[target]:
        allowed = ", ".join(_KIND_WORDS[k] for k in _ACCEPTS[target])
        raise ModelError(
            f"column {column!r} of type {found} cannot feed tensor {tensor!r} of dtype "
            f"{dtype}: a {dtype} tensor takes {allowed} columns; cast the column first"
        )


def arrow_kind(arrow_type: pa.DataType) -> str | None:
    """The kind of an Arrow scalar type, or ``None`` when it is not supported."""
    if pa.types.is_boolean(arrow_type):
        return "b"
    if pa.types.is_integer(arrow_type):
        return "i"
    if pa.types.is_floating(arrow_type):
        return "f"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "s"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "s"
    return None


def shape_text(shape: Shape) -> str:
    """``[None, 784]`` for a static shape, ``<unknown rank>`` for ``None``."""
    if shape is None:
        return "<unknown rank>"
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


def _is_list(arrow_type: pa.DataType) -> bool:
    return (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)
            or pa.types.is_fixed_size_list(arrow_type))


def _first_null(validity_source: pa.Array, row_offsets: np.ndarray | None) -> int:
    """Row index (within the batch) of the first null value of ``validity_source``."""
    index = int(pc.index(pc.is_null(validity_source), True).as_py())
    if row_offsets is None:
        return index
    return int(np.searchsorted(row_offsets, index, side="right") - 1)


def _null_error(column: str, row: int, *, element: bool) -> ModelError:
    what = "an array element" if element else "the value"
    return ModelError(
        f"column {column!r} holds a null at row {row} of the batch ({what} is null): "
        "fill or filter nulls before transform (df.na.fill / df.dropna)"
    )


def _flatten(column: pa.Array, name: str) -> tuple[pa.Array, np.ndarray | None, list]:
    """Flat values of a (nested) list column, row offsets into them, and per-level lengths."""
    if column.null_count:
        raise _null_error(name, _first_null(column, None), element=False)
    row_offsets: np.ndarray | None = None
    levels: list[np.ndarray] = []
    values = column
    while _is_list(values.type):
        if pa.types.is_fixed_size_list(values.type):
            size = values.type.list_size
            offsets = np.arange(len(values) + 1, dtype=np.int64) * size
            child = values.flatten()
        else:
            offsets = values.offsets.to_numpy().astype(np.int64, copy=False)
            start, stop = int(offsets[0]), int(offsets[-1])
            child = values.values.slice(start, stop - start)
            offsets = offsets - start
        levels.append(np.diff(offsets))
        row_offsets = offsets if row_offsets is None else offsets[row_offsets]
        values = child
        if values.null_count:
            raise _null_error(name, _first_null(values, row_offsets), element=True)
    return values, row_offsets, levels


def _natural_dims(levels: list[np.ndarray]) -> tuple[int | None, ...]:
    """Per-level array length when uniform across the batch, else ``None``."""
    dims: list[int | None] = []
    for lengths in levels:
        uniform = lengths.size > 0 and bool((lengths == lengths[0]).all())
        dims.append(int(lengths[0]) if uniform else None)
    return tuple(dims)


def _row_shape(shape: Shape, per_row: int, natural: tuple[int | None, ...]) -> tuple[int, ...]:
    """The shape of one row in the tensor, or raise ``ValueError`` when it cannot fit."""
    if shape is None:
        if any(d is None for d in natural):
            raise ValueError("ragged")
        return tuple(int(d) for d in natural)
    dims = list(shape[1:])
    unknown = [i for i, d in enumerate(dims) if d is None]
    known = int(np.prod([d for d in dims if d is not None], dtype=np.int64))
    if not unknown:
        if known != per_row:
            raise ValueError("size")
        return tuple(int(d) for d in dims)
    if len(unknown) > 1 and len(natural) == len(dims) and None not in natural:
        fitted = [n if d is None else d for d, n in zip(dims, natural, strict=True)]
        if int(np.prod(fitted, dtype=np.int64)) == per_row:
            return tuple(int(d) for d in fitted)
        raise ValueError("size")
    if len(unknown) > 1 or known == 0 or per_row % known:
        raise ValueError("size")
    dims[unknown[0]] = per_row // known
    return tuple(int(d) for d in dims)


def _cast(values: np.ndarray, dtype: str, *, column: str, tensor: str) -> np.ndarray:
    target = NUMPY_DTYPES[dtype]
    if values.dtype == target:
        return values
    if target.kind in "iu" and values.dtype.kind in "iu" and values.size:
        info = np.iinfo(target)
        low, high = values.min(), values.max()
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise ModelError(
                f"column {column!r} holds {bad}, out of the range of tensor {tensor!r} "
                f"of dtype {dtype} ({info.min}..{info.max})"
            )
    return values.astype(target)


def _numpy_values(values: pa.Array, dtype: str, *, column: str, tensor: str) -> np.ndarray:
    kind = arrow_kind(values.type)
    check_kinds(kind or "?", dtype, column=column, tensor=tensor, found=str(values.type))
    if kind == "s":
        return values.to_numpy(zero_copy_only=False)
    array = values.to_numpy(zero_copy_only=False)
    return _cast(array, dtype, column=column, tensor=tensor)


def to_tensor(
    array: pa.Array | pa.ChunkedArray, *, column: str, tensor: str, dtype: str, shape: Shape
) -> np.ndarray:
    """Convert one Arrow column of ``n`` rows into a ``[n, ...]`` numpy array for a tensor.

    Parameters
    ----------
    array
        The Arrow column; ``column`` is its name, for messages.
    tensor, dtype, shape
        The tensor's name, TensorFlow dtype name and static shape (``None``: unknown rank).

    Raises
    ------
    ModelError
        On a null value, a value that cannot convert, or rows that cannot fit the shape.

    Examples
    --------
    >>> import pyarrow as pa
    >>> to_tensor(pa.array([1, 2]), column="n", tensor="x:0", dtype="float32", shape=(None,))
    array([1., 2.], dtype=float32)
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    rows = len(array)
    values, row_offsets, levels = _flatten(array, column)
    flat = _numpy_values(values, dtype, column=column, tensor=tensor)
    if row_offsets is None:
        per_row, lengths = 1, None
    else:
        lengths = np.diff(row_offsets)
        per_row = int(lengths[0]) if rows else 0
    natural = _natural_dims(levels)
    found = shape_text((rows, *natural))
    if lengths is not None and rows and not (lengths == per_row).all():
        other = int(np.argmax(lengths != per_row))
        raise ModelError(
            f"column {column!r} cannot feed tensor {tensor!r} of shape {shape_text(shape)}: "
            f"rows of a batch must hold the same number of values, but row 0 holds {per_row} "
            f"and row {other} holds {int(lengths[other])} (found shape {found})"
        )
    try:
        row_shape = _row_shape(shape, per_row, natural) if rows else _empty_row(shape, natural)
    except ValueError:
        raise ModelError(
            f"column {column!r} cannot feed tensor {tensor!r}: expected shape "
            f"{shape_text(shape)}, found shape {found} ({per_row} values per row)"
        ) from None
    return flat.reshape((rows, *row_shape))


def _empty_row(shape: Shape, natural: tuple[int | None, ...]) -> tuple[int, ...]:
    dims = natural if shape is None else shape[1:]
    return tuple(0 if d is None else int(d) for d in dims)


def _arrow_values(flat: np.ndarray, dtype: str) -> pa.Array:
    arrow_type = ARROW_OUTPUT[dtype]
    if dtype == "string":
        return pa.array(flat, type=arrow_type)
    if flat.dtype != arrow_type.to_pandas_dtype():
        flat = flat.astype(arrow_type.to_pandas_dtype())
    return pa.array(flat, type=arrow_type)


def check_batch_dim(value: np.ndarray, *, rows: int, tensor: str) -> np.ndarray:
    """Return ``value`` when its first dimension is the batch (``rows``), else raise.

    Examples
    --------
    >>> check_batch_dim(np.zeros((3, 2)), rows=3, tensor="y:0").shape
    (3, 2)
    """
    value = np.asarray(value)
    if value.ndim == 0 or value.shape[0] != rows:
        raise ModelError(
            f"output tensor {tensor!r} returned shape {list(value.shape)} for a batch of "
            f"{rows} rows: its first dimension is not the batch, so its values cannot be "
            "split into rows; fetch a tensor computed per row"
        )
    return value


def to_arrow(value: np.ndarray, *, rows: int, tensor: str, dtype: str) -> pa.Array:
    """Convert a fetched ``[rows, ...]`` array into an Arrow column (scalars or nested lists).

    Raises
    ------
    ModelError
        When the first dimension of ``value`` is not the batch (``rows``).

    Examples
    --------
    >>> import numpy as np
    >>> to_arrow(np.zeros((2, 3), np.float32), rows=2, tensor="y:0", dtype="float32").type
    ListType(list<item: float>)
    """
    value = check_batch_dim(np.asarray(value), rows=rows, tensor=tensor)
    if value.dtype.kind in "US":
        value = value.astype(object)
    out = _arrow_values(value.reshape(-1), dtype)
    shape = value.shape
    for axis in range(len(shape) - 1, 0, -1):
        count = int(np.prod(shape[:axis], dtype=np.int64))
        offsets = np.arange(count + 1, dtype=np.int32) * np.int32(shape[axis])
        out = pa.ListArray.from_arrays(pa.array(offsets), out)
    return out


def dims_of(shapes: Sequence[int | None]) -> tuple[int | None, ...]:
    """A static shape as a tuple with ``None`` for unknown dimensions."""
    return tuple(None if d is None or d < 0 else int(d) for d in shapes)
