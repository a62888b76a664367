"""Encode Arrow record batches as serialized ``tf.train.Example`` / ``SequenceExample``.

No maintained library serializes Examples in bulk (``tf.train.Example`` builds one message
per row from Python lists), so this module writes the protobuf wire format directly, one
column at a time: numbers are turned into bytes by numpy for the whole column, and only the
short length prefixes are made per row. The output is checked against TensorFlow's own
parsers in the test suite.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
from pyspark.sql.types import StructType

from sparktf.errors import TFRecordError
from sparktf.tfrecord.types import BYTE_ARRAY_COLUMN, Column, columns_of

_TAG_LIST = b"\x0a"  # field 1, length-delimited: FloatList/Int64List values, BytesList value,
# map-entry key, Features.feature, FeatureList.feature, Example.features, context
_TAG_VALUE = b"\x12"  # field 2, length-delimited: map-entry value, feature_lists
_FEATURE_TAG = {"bytes": b"\x0a", "float": b"\x12", "int64": b"\x1a"}
_SMALL = [bytes([i]) for i in range(128)]


_MEMO: dict[int, bytes] = {}


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    if n < 128:
        return _SMALL[n]
    known = _MEMO.get(n)
    if known is not None:
        return known
    out = bytearray()
    rest = n
    while rest >= 128:
        out.append((rest & 0x7F) | 0x80)
        rest >>= 7
    out.append(rest)
    if len(_MEMO) < 1 << 16:
        _MEMO[n] = bytes(out)
    return bytes(out)


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varint-encode int64 ``values`` at once: the bytes, and the size of each value."""
    u = values.astype(np.int64, copy=False).view(np.uint64)
    sizes = np.ones(len(u), dtype=np.int64)
    for k in range(1, 10):
        sizes += u >= np.uint64(1 << (7 * k))
    shifts = (np.arange(10, dtype=np.uint64) * np.uint64(7))[None, :]
    groups = ((u[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    position = np.arange(10)[None, :]
    groups |= np.where(position < sizes[:, None] - 1, 0x80, 0).astype(np.uint8)
    return groups[position < sizes[:, None]], sizes


def _flat_values(column: Column, values: pa.Array) -> tuple[str, np.ndarray | list[bytes]]:
    if values.null_count:
        raise TFRecordError(
            f"column {column.name!r}: an array holds a null element; TFRecord lists cannot "
            "hold nulls (drop or fill them first)"
        )
    kind = column.preferred_kind
    if kind == "bytes":
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            values = values.cast(pa.large_binary())
        return kind, values.to_pylist()
    array = values.to_numpy(zero_copy_only=False)
    return kind, array.astype(np.int64 if kind == "int64" else "<f4", copy=False)


def _units(kind: str, flat: np.ndarray | list[bytes], offsets: np.ndarray) -> list[bytes]:
    """The serialized ``Feature`` of each innermost list ``flat[offsets[i]:offsets[i+1]]``."""
    tag = _FEATURE_TAG[kind]
    if kind == "bytes":
        enc = [_delimited(_TAG_LIST, v) for v in flat]  # type: ignore[arg-type]
        return [_delimited(tag, b"".join(enc[a:b])) for a, b in zip(offsets[:-1], offsets[1:])]
    if kind == "float":
        raw, bounds = flat.tobytes(), offsets * 4  # type: ignore[union-attr]
    else:
        buf, sizes = varints(flat)  # type: ignore[arg-type]
        raw = buf.tobytes()
        bounds = np.concatenate([[0], np.cumsum(sizes)])[offsets]
    out = []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        out.append(_delimited(tag, _delimited(_TAG_LIST, raw[a:b]) if b > a else b""))
    return out


def _offsets(array: pa.Array) -> np.ndarray:
    offsets = array.offsets.to_numpy().astype(np.int64)
    return offsets - offsets[0]


def _fixed_width(
    key: bytes, flat: np.ndarray, offsets: np.ndarray, valid: np.ndarray
) -> list[bytes | None] | None:
    """Rows of one float array column that all hold the same number of values share one
    header: build it once and append each row's raw bytes."""
    lengths = np.diff(offsets)
    if not valid.all() or len(lengths) == 0 or lengths[0] == 0 or (lengths != lengths[0]).any():
        return None
    width = int(lengths[0]) * 4
    raw = flat.tobytes()
    sample = _delimited(_TAG_LIST, key + _delimited(
        _TAG_VALUE, _delimited(_FEATURE_TAG["float"], _delimited(_TAG_LIST, raw[:width]))))
    head = sample[: len(sample) - width]
    start = int(offsets[0]) * 4
    return [head + raw[a : a + width] for a in range(start, start + width * len(lengths), width)]


def encode_column(column: Column, array: pa.Array) -> list[bytes | None]:
    """Each row's map entry ``(name, Feature)`` or ``(name, FeatureList)``; None for null."""
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    if column.depth == 0:
        inner, offsets = array.drop_null(), None
    else:
        inner, offsets = array.flatten(), _offsets(array)
    steps = None
    if column.depth == 2:
        steps, inner = _offsets(inner), inner.flatten()
    kind, flat = _flat_values(column, inner)
    key = _delimited(_TAG_LIST, column.name.encode("utf-8"))
    if kind == "float" and column.depth == 1 and offsets is not None:
        fixed = _fixed_width(key, flat, offsets, valid)  # type: ignore[arg-type]
        if fixed is not None:
            return fixed
    innermost = steps if steps is not None else offsets
    if innermost is None:
        innermost = np.arange(len(flat) + 1, dtype=np.int64)
    units = _units(kind, flat, innermost)
    out: list[bytes | None] = [None] * len(array)
    rows = np.flatnonzero(valid).tolist()
    if column.depth == 0:
        for row, unit in zip(rows, units):
            out[row] = _delimited(_TAG_LIST, key + _delimited(_TAG_VALUE, unit))
        return out
    if column.depth == 1:
        for row in rows:
            out[row] = _delimited(_TAG_LIST, key + _delimited(_TAG_VALUE, units[row]))
        return out
    for row in rows:
        a, b = offsets[row], offsets[row + 1]  # type: ignore[index]
        feature_list = b"".join(_delimited(_TAG_LIST, u) for u in units[a:b])
        out[row] = _delimited(_TAG_LIST, key + _delimited(_TAG_VALUE, feature_list))
    return out


class Encoder:
    """Serialize Arrow batches for one schema and record type.

    Raises :class:`~sparktf.errors.SchemaError` at construction, before anything is written,
    when a column's type cannot be stored in a TFRecord.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from pyspark.sql.types import StructType, StructField, ArrayType, FloatType
    >>> schema = StructType([StructField("x", ArrayType(FloatType()))])
    >>> batch = pa.record_batch([pa.array([[1.0, 2.0]], pa.list_(pa.float32()))], names=["x"])
    >>> from tensorflow.core.example import example_pb2
    >>> ex = example_pb2.Example.FromString(Encoder(schema, "Example").encode(batch)[0])
    >>> list(ex.features.feature["x"].float_list.value)
    [1.0, 2.0]
    """

    def __init__(self, schema: StructType, record_type: str) -> None:
        self.record_type = record_type
        if record_type == "ByteArray":
            self._check_byte_array(schema)
            self.columns: list[Column] = []
        else:
            self.columns = columns_of(schema, record_type)

    @staticmethod
    def _check_byte_array(schema: StructType) -> None:
        from pyspark.sql.types import BinaryType

        binary = [f.name for f in schema.fields if isinstance(f.dataType, BinaryType)]
        if len(schema.fields) != 1 or not binary:
            found = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in schema.fields)
            raise TFRecordError(
                f"recordType ByteArray writes one binary column (e.g. {BYTE_ARRAY_COLUMN!r}) "
                f"holding whole records; found columns: {found}"
            )

    def encode(self, batch: pa.RecordBatch) -> list[bytes]:
        """The serialized record of every row of ``batch``."""
        if self.record_type == "ByteArray":
            column = batch.column(0)
            if column.null_count:
                raise TFRecordError(
                    f"column {batch.schema.names[0]!r}: a null record cannot be written"
                )
            return column.to_pylist()
        encoded = [encode_column(c, batch.column(c.name)) for c in self.columns]
        context = [e for e, c in zip(encoded, self.columns) if c.depth < 2]
        lists = [e for e, c in zip(encoded, self.columns) if c.depth == 2]
        join = _joiner(self.record_type)
        return [join(row, context, lists) for row in range(batch.num_rows)]


def _joiner(record_type: str) -> Callable[[int, list, list], bytes]:
    def example(row: int, context: list, lists: list) -> bytes:
        body = b"".join(e[row] for e in context if e[row] is not None)
        return _delimited(_TAG_LIST, body)

    def sequence(row: int, context: list, lists: list) -> bytes:
        ctx = b"".join(e[row] for e in context if e[row] is not None)
        fls = b"".join(e[row] for e in lists if e[row] is not None)
        return _delimited(_TAG_LIST, ctx) + _delimited(_TAG_VALUE, fls)

    return example if record_type == "Example" else sequence
