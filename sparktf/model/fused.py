"""Fused scoring of TFRecord files: read, decode and run the model in one Python task.

Used by :class:`~sparktf.ml.TFModel` when its input is exactly a DataFrame returned by
:func:`sparktf.read_tfrecords` (or a plain Parquet scan). Each task gets the splits the scan
planned (packed files and pieces of large ones; Parquet: row groups packed the same way),
reads them with ``tf.data`` (or pyarrow), decodes only the columns the model needs, scores
them, and hands Spark only the outputs (and pass-through columns). Input tensors never cross
into the JVM and back.
The result is the same as the general path (a test compares them).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql.types import StructType

from sparktf._tf import freeze_survivors
from sparktf.model.dense import dense_columns, score_dense
from sparktf.model.runtime import Plan, map_batches
from sparktf.partitions import PartitionSpec
from sparktf.planning import Split
from sparktf.tfrecord.options import ReadSettings
from sparktf.tfrecord.scan import read_splits


@dataclass(frozen=True)
class FileScan:
    """A TFRecord scan as ``read_tfrecords`` planned it: the splits of each task
    (:mod:`sparktf.planning`), the schema, the read settings and the partition values."""

    tasks: tuple[tuple[Split, ...], ...]
    schema_json: str
    settings: ReadSettings
    spec: PartitionSpec = PartitionSpec()

    @property
    def files(self) -> tuple[str, ...]:
        """The files the scan reads, each once."""
        return tuple(dict.fromkeys(s.path for task in self.tasks for s in task))

    def needed(self, columns: Sequence[str]) -> StructType:
        """The scan's schema narrowed to ``columns`` (in scan order)."""
        full = StructType.fromJson(json.loads(self.schema_json))
        wanted = set(columns)
        return StructType([f for f in full.fields if f.name in wanted])


def _indices(batches: Iterator[pa.RecordBatch]) -> Iterator[int]:
    """The indices arriving from ``spark.range``."""
    for chunk in batches:
        yield from chunk.column(0).to_numpy().tolist()


def _splits(indices: Iterator[pa.RecordBatch], scan: FileScan) -> Iterator[Split]:
    """The splits of the task indices arriving from ``spark.range``."""
    for task in _indices(indices):
        yield from scan.tasks[task]


def read_files(indices: Iterator[pa.RecordBatch], *, scan: FileScan) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function over task indices: the records of each task, all columns."""
    freeze_survivors()
    schema = StructType.fromJson(json.loads(scan.schema_json))
    yield from read_splits(_splits(indices, scan), schema=schema, settings=scan.settings,
                           spec=scan.spec)


def score_files(indices: Iterator[pa.RecordBatch], *, scan: FileScan,
                plan: Plan) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function over a DataFrame of task indices (``spark.range``): read,
    decode and score each task's splits."""
    columns = [*plan.passthrough, *(f.column for f in plan.feeds)]
    schema = scan.needed(columns)
    settings = dataclasses.replace(scan.settings, batch_size=plan.batch_size)
    splits = _splits(indices, scan)
    dense = None if set(schema.fieldNames()) & set(scan.spec.names) else dense_columns(
        plan, schema, settings)
    if dense is not None:
        yield from score_dense(splits, columns=dense, plan=plan, schema=schema, settings=settings)
    else:
        yield from map_batches(read_splits(splits, schema=schema, settings=settings,
                                           spec=scan.spec, light_start=False), plan=plan)


@dataclass(frozen=True)
class ParquetPiece:
    """One row group of one Parquet file (``size``: its bytes, for packing)."""

    path: str
    row_group: int
    rows: int = 0
    size: int = 0


def score_parquet(
    indices: Iterator[pa.RecordBatch], *, pieces: tuple[ParquetPiece, ...], plan: Plan,
    tasks: Sequence[Sequence[int]],
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function over task indices: read each task's row groups with pyarrow,
    score them."""
    import pyarrow.parquet as pq

    columns = list(dict.fromkeys([*plan.passthrough, *(f.column for f in plan.feeds)]))

    def batches() -> Iterator[pa.RecordBatch]:
        for task in _indices(indices):
            for index in tasks[task]:
                piece = pieces[index]
                with pq.ParquetFile(piece.path) as handle:
                    yield from handle.iter_batches(batch_size=plan.batch_size,
                                                   row_groups=[piece.row_group],
                                                   columns=columns, use_threads=False)

    yield from map_batches(batches(), plan=plan)
