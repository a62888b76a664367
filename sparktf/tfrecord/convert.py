"""Typed conversion of decoded feature values into Arrow arrays of the requested Spark type.

Input is columnar: the flat values of one feature across a batch and the row splits that
group them per record (and per step, for feature lists). Nothing here creates a Python object
per row, except byte strings, which TensorFlow hands over as Python ``bytes``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyspark.sql.types import (
    BinaryType,
    BooleanType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
)

from sparktf.errors import TFRecordError
from sparktf.tfrecord.types import Column

_TRUE = (b"1", b"true", b"True", b"TRUE")
_FALSE = (b"0", b"false", b"False", b"FALSE")
_INT32 = np.iinfo(np.int32)


@dataclass
class Ragged:
    """One feature across a batch: flat values, splits (outer first), presence per row."""

    kind: str
    values: np.ndarray
    splits: list[np.ndarray]
    present: np.ndarray | None = None  # None: not known yet (only needed for empty rows)


Where = Callable[[int], str]  # flat value index -> "file: record N"


def element_array(column: Column, kind: str, values: np.ndarray, where: Where) -> pa.Array:
    """Convert flat ``values`` of feature ``kind`` to the column's element type."""
    element = column.element
    if not column.accepts(kind):
        raise TFRecordError(
            f"{where(0)}: feature {column.name!r} is a {kind} list, but column type "
            f"{column.field.dataType.simpleString()} needs "
            f"{_kinds_for(column)}"
        )
    if kind == "bytes":
        return _from_bytes(column, values, where)
    if isinstance(element, BooleanType):
        return pa.array(values != 0, pa.bool_())
    if isinstance(element, IntegerType):
        bad = np.flatnonzero((values < _INT32.min) | (values > _INT32.max))
        if bad.size:
            raise TFRecordError(
                f"{where(int(bad[0]))}: feature {column.name!r}: value {int(values[bad[0]])} "
                "does not fit column type int (32-bit); use bigint"
            )
        return pa.array(values.astype(np.int32), pa.int32())
    if isinstance(element, LongType):
        return pa.array(values.astype(np.int64, copy=False), pa.int64())
    if isinstance(element, FloatType):
        return pa.array(values.astype(np.float32, copy=False), pa.float32())
    if isinstance(element, DoubleType):
        with np.errstate(invalid="ignore"):  # a signalling NaN stays a NaN, without a warning
            return pa.array(values.astype(np.float64), pa.float64())
    raise AssertionError(f"unhandled element type {element}")  # pragma: no cover


def _kinds_for(column: Column) -> str:
    from sparktf.tfrecord.types import READABLE

    kinds = [k for k, types in READABLE.items() if isinstance(column.element, types)]
    return " or ".join(f"a {k} list" for k in kinds)


def _from_bytes(column: Column, values: np.ndarray, where: Where) -> pa.Array:
    raw = pa.array(values, pa.binary()) if len(values) else pa.array([], pa.binary())
    if isinstance(column.element, BinaryType):
        return raw
    if isinstance(column.element, StringType):
        typed = column.field.dataType.simpleString()
        try:
            return raw.cast(pa.string())
        except pa.ArrowInvalid:
            bad = next(i for i, v in enumerate(values) if not is_utf8(v))
            raise TFRecordError(
                f"{where(bad)}: feature {column.name!r}: value is not valid UTF-8, so it "
                f"cannot be read as {typed}; read it as binary with a schema hint: "
                f"schemaHint (schema_hint) '{column.name} {typed.replace('string', 'binary')}'"
            ) from None
    truth = np.isin(values, _TRUE)
    unknown = np.flatnonzero(~truth & ~np.isin(values, _FALSE))
    if unknown.size:
        raise TFRecordError(
            f"{where(int(unknown[0]))}: feature {column.name!r}: expected a boolean "
            f"(true/false/1/0), found {values[unknown[0]]!r}"
        )
    return pa.array(truth, pa.bool_())


def is_utf8(value: bytes) -> bool:
    """Whether ``value`` is valid UTF-8 text."""
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def to_arrow(
    column: Column,
    ragged: Ragged,
    n_rows: int,
    *,
    record: Callable[[int], str],
    presence: Callable[[np.ndarray], np.ndarray],
) -> pa.Array:
    """Assemble one column of ``n_rows`` from ``ragged``; ``record(i)`` names row ``i``."""
    rows = ragged.splits[0].astype(np.int64, copy=False)
    lengths = np.diff(rows)
    steps = ragged.splits[1].astype(np.int64, copy=False) if column.depth == 2 else None

    def where(value_index: int) -> str:
        step = value_index
        if steps is not None:
            step = int(np.searchsorted(steps, value_index, "right")) - 1
        return record(max(int(np.searchsorted(rows, step, "right")) - 1, 0))

    elements = element_array(column, ragged.kind, ragged.values, where)
    if column.depth == 0:
        over = np.flatnonzero(lengths > 1)
        if over.size:
            i = int(over[0])
            raise TFRecordError(
                f"{record(i)}: feature {column.name!r}: column type "
                f"{column.field.dataType.simpleString()} expects one value, found "
                f"{int(lengths[i])}; declare it as array<{column.element.simpleString()}>"
            )
        missing = lengths == 0
        index = np.where(missing, 0, rows[:-1])
        out = elements.take(pa.array(index, mask=missing)) if len(elements) else pa.nulls(
            n_rows, elements.type
        )
    else:
        missing = np.zeros(n_rows, dtype=bool)
        empty = np.flatnonzero(lengths == 0)
        if empty.size:
            present = ragged.present[empty] if ragged.present is not None else presence(empty)
            missing[empty[~present]] = True
        if steps is not None:
            elements = pa.ListArray.from_arrays(pa.array(steps.astype(np.int32)), elements)
        mask = pa.array(missing) if missing.any() else None
        out = pa.ListArray.from_arrays(pa.array(rows.astype(np.int32)), elements, mask=mask)
    if not column.nullable and missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise TFRecordError(
            f"{record(i)}: feature {column.name!r} is missing, but the column is not nullable"
        )
    return out
