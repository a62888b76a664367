"""The write side of ``key=value/`` directories: Arrow batches split by partition values.

A partitioned write (``write_tfrecords(df, path, partition_by=[...])``, ``sparktf infer
--partition_by``) keeps the partition columns out of the records, as Spark's file sources
and linkedin/spark-tfrecord do: each task splits its batches by their values and writes one
file per directory it meets. Values are written as Spark writes them (``2024-01-31``,
``2024-01-31 10:00:00`` in the session time zone, ``true``), escaped, with
``__HIVE_DEFAULT_PARTITION__`` for null and the empty string (:mod:`sparktf.partitions`).

Examples
--------
>>> batch = pa.record_batch([pa.array([1, 2, 3]), pa.array(["a", "b", "a"])], ["x", "kind"])
>>> [(where, part.to_pydict()) for where, part in split_batch(batch, ["kind"])]
[('kind=a', {'x': [1, 3]}), ('kind=b', {'x': [2]})]
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    MapType,
    StructType,
)

from sparktf.errors import SchemaError, close_matches
from sparktf.partitions import fragment


def check_partition_by(schema: StructType, columns: Sequence[str]) -> None:
    """The columns of ``partition_by`` exist, once each, are of atomic types, and leave a
    column for the records (as Spark checks them)."""
    names = schema.fieldNames()
    if columns and set(columns) >= set(names):
        raise SchemaError(f"partition columns {list(columns)} are every column of the "
                          "DataFrame: nothing is left to write in the records")
    for column in columns:
        if column not in names:
            raise SchemaError(f"partition column {column!r} is not a column of the DataFrame; "
                              f"{close_matches(column, names)}")
        kind = schema[column].dataType
        if isinstance(kind, (ArrayType, MapType, StructType, BinaryType)):
            raise SchemaError(f"partition column {column!r} has type {kind.simpleString()}: "
                              "a directory name holds one atomic value (string, number, "
                              "boolean, date, timestamp)")
    if len(set(columns)) != len(columns):
        raise SchemaError(f"partition columns {list(columns)} name a column twice")


def split_batch(batch: pa.RecordBatch, columns: Sequence[str],
                time_zone: str = "UTC") -> Iterator[tuple[str, pa.RecordBatch]]:
    """``(directory, rows without the partition columns)`` for each set of partition
    values of ``batch`` (rows keep their order within a directory)."""
    if not columns:
        yield "", batch
        return
    table = pa.Table.from_batches([batch])
    order = pc.sort_indices(table, sort_keys=[(c, "ascending") for c in columns])
    ordered = table.take(order)
    keys = [ordered.column(c).combine_chunks() for c in columns]
    starts = _run_starts(keys)
    rest = ordered.drop_columns(list(columns))
    bounds = [*starts.tolist(), ordered.num_rows]
    for start, end in zip(bounds, bounds[1:]):
        values = [(c, text(k[start].as_py(), time_zone)) for c, k in zip(columns, keys)]
        yield fragment(values), rest.slice(start, end - start).combine_chunks().to_batches()[0]


def _run_starts(keys: list[pa.Array]) -> np.ndarray:
    """Rows where the sorted keys change."""
    n = len(keys[0])
    change = np.zeros(n, dtype=bool)
    change[0:1] = True
    for key in keys:
        same = pc.fill_null(pc.equal(key[1:], key[:-1]), False).to_numpy(zero_copy_only=False)
        both_null = (pc.is_null(key[1:]).to_numpy(zero_copy_only=False)
                     & pc.is_null(key[:-1]).to_numpy(zero_copy_only=False))
        change[1:] |= ~(same | both_null)
    return np.flatnonzero(change)


def text(value: Any, time_zone: str = "UTC") -> str | None:
    """A partition value as Spark writes it in a directory name (None: null).

    Examples
    --------
    >>> text(True), text(dt.date(2024, 1, 31)), text(1.5), text("")
    ('true', '2024-01-31', '1.5', None)
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            from zoneinfo import ZoneInfo

            value = value.astimezone(ZoneInfo(time_zone)).replace(tzinfo=None)
        shown = value.strftime("%Y-%m-%d %H:%M:%S")
        return shown + (f".{value.microsecond:06d}".rstrip("0") if value.microsecond else "")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    return str(value)
