"""The worker side of a scan: the records of a task's splits, with their partition values.

A task gets splits (:mod:`sparktf.planning`) and the partition values of the directories
they lie in (:mod:`sparktf.partitions`). Each split is decoded with the schema's columns that
the records hold; the partition columns are added as constant columns, in the schema's order.
Used by the ``tfrecord`` data source and by fused scoring alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql.types import StructType

from sparktf.partitions import PartitionSpec
from sparktf.planning import Split
from sparktf.tfrecord import light
from sparktf.tfrecord.decode import Decoder
from sparktf.tfrecord.options import ReadSettings
from sparktf.tfrecord.reader import read_split, skip_rows
from sparktf.tfrecord.runs import Run, grouped, read_run
from sparktf.tfrecord.types import arrow_schema


def data_schema(schema: StructType, spec: PartitionSpec) -> StructType:
    """The fields of ``schema`` that the records hold (not partition columns)."""
    names = set(spec.names)
    return StructType([f for f in schema.fields if f.name not in names])


def read_splits(splits: Iterable[Split], *, schema: StructType, settings: ReadSettings,
                spec: PartitionSpec, light_start: bool | None = None) -> Iterator[pa.RecordBatch]:
    """The records of ``splits`` as Arrow batches of ``schema``: the first ones with
    protobuf alone when ``light_start`` (default: when this process has no TensorFlow and no
    skip mode is set; :mod:`sparktf.tfrecord.light`); then runs of plain splits through one
    ``tf.data`` pipeline each (:mod:`sparktf.tfrecord.runs`), the others one by one."""
    splits = tuple(splits)
    data = data_schema(schema, spec)
    target = arrow_schema(schema) if len(data) < len(schema) else None
    zone = settings.time_zone or "UTC"
    start, skip = 0, 0
    if light.wanted(settings) if light_start is None else light_start:
        def finish(batch: pa.RecordBatch, split: Split) -> pa.RecordBatch:
            if target is None:
                return batch
            return with_constants(batch, target, _values(spec, split, zone))

        start, skip = yield from light.read(
            splits, Decoder(data, settings.record_type), settings, finish)
    if start < len(splits):
        rest = _read_tf(splits[start:], data, target, settings, spec, zone)
        yield from skip_rows(rest, skip) if skip else rest


def _values(spec: PartitionSpec, split: Split, zone: str) -> dict[str, object]:
    """The partition values of ``split``'s directory, by column name."""
    return dict(zip(spec.names, spec.typed(split.partition, zone), strict=True))


def _read_tf(splits: tuple[Split, ...], data: StructType, target: pa.Schema | None,
             settings: ReadSettings, spec: PartitionSpec,
             zone: str) -> Iterator[pa.RecordBatch]:
    decoder = Decoder(data, settings.record_type, skip_corrupt=settings.ignore_corrupt_records)
    for group in grouped(splits, settings):
        if isinstance(group, Run):
            for batch, owners in read_run(group, decoder, settings):
                if target is not None:
                    rows = np.array([s.partition for s in group.splits])[owners]
                    batch = with_columns(batch, target, spec, rows, zone)
                yield batch
            continue
        decoder.skipped = 0
        values = _values(spec, group, zone)
        for batch in read_split(group, decoder, settings):
            yield with_constants(batch, target, values) if target is not None else batch


def with_columns(batch: pa.RecordBatch, target: pa.Schema, spec: PartitionSpec,
                 rows: np.ndarray, zone: str) -> pa.RecordBatch:
    """``batch`` with the partition columns of ``target``, row ``i`` taking the values of
    partition row ``rows[i]`` of ``spec``."""
    used, where = np.unique(rows, return_inverse=True)
    names = spec.names
    arrays = []
    for field in target:
        if field.name in names:
            column = names.index(field.name)
            values = pa.array([spec.typed(int(r), zone)[column] for r in used], field.type)
            arrays.append(values.take(pa.array(where)))
        else:
            arrays.append(batch.column(field.name))
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def with_constants(batch: pa.RecordBatch, target: pa.Schema,
                   values: dict[str, object]) -> pa.RecordBatch:
    """``batch`` with a constant column for each name of ``values``, in ``target``'s order.

    Examples
    --------
    >>> batch = pa.record_batch([pa.array([1, 2])], names=["x"])
    >>> target = pa.schema([("x", pa.int64()), ("day", pa.int32())])
    >>> with_constants(batch, target, {"day": 7}).to_pydict()
    {'x': [1, 2], 'day': [7, 7]}
    """
    n = batch.num_rows
    arrays = [pa.repeat(pa.scalar(values[f.name], type=f.type), n) if f.name in values
              else batch.column(f.name) for f in target]
    return pa.RecordBatch.from_arrays(arrays, schema=target)
