"""Fused scoring of TFRecord files: read, decode and run the model in one Python task.

Used by :class:`~sparktf.ml.TFModel` when its input is exactly a DataFrame returned by
:func:`sparktf.read_tfrecords` (or a plain Parquet scan). Each task gets a group of pieces
(consecutive files or row groups), reads them with ``tf.data`` (or pyarrow), decodes only
the columns the model needs, scores them, and hands Spark only the outputs (and
pass-through columns). Input tensors never cross into the JVM and back.
The result is the same as the general path (a test compares them).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql.types import StructType

from sparktf.model.dense import dense_columns, score_dense
from sparktf.model.runtime import Plan, map_batches
from sparktf.tfrecord.decode import Decoder
from sparktf.tfrecord.options import ReadSettings
from sparktf.tfrecord.reader import read_file


@dataclass(frozen=True)
class FileScan:
    """A TFRecord scan as ``read_tfrecords`` set it up: files, schema and read settings."""

    files: tuple[str, ...]
    schema_json: str
    settings: ReadSettings

    def needed(self, columns: Sequence[str]) -> StructType:
        """The scan's schema narrowed to ``columns`` (in scan order)."""
        full = StructType.fromJson(json.loads(self.schema_json))
        wanted = set(columns)
        return StructType([f for f in full.fields if f.name in wanted])


def _indices(batches: Iterator[pa.RecordBatch]) -> Iterator[int]:
    """The indices arriving from ``spark.range``."""
    for chunk in batches:
        yield from chunk.column(0).to_numpy().tolist()


def _pieces(indices: Iterator[pa.RecordBatch],
            groups: Sequence[Sequence[int]]) -> Iterator[int]:
    """The piece indices of the group indices arriving from ``spark.range``."""
    for group in _indices(indices):
        yield from groups[group]


def _records(paths: Iterable[str], schema: StructType,
             settings: ReadSettings) -> Iterator[pa.RecordBatch]:
    """The records of each file of ``paths``, decoded to ``schema`` (a decoder per file)."""
    for path in paths:
        decoder = Decoder(schema, settings.record_type,
                          skip_corrupt=settings.ignore_corrupt_records)
        yield from read_file(path, decoder, settings)


def read_files(indices: Iterator[pa.RecordBatch], *, scan: FileScan) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function over file indices: the records of each file, all columns."""
    schema = StructType.fromJson(json.loads(scan.schema_json))
    yield from _records((scan.files[i] for i in _indices(indices)), schema, scan.settings)


def score_files(
    indices: Iterator[pa.RecordBatch], *, scan: FileScan, plan: Plan,
    groups: Sequence[Sequence[int]],
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function over a DataFrame of group indices (``spark.range``): each
    group is a run of file indices into ``scan.files``."""
    columns = [*plan.passthrough, *(f.column for f in plan.feeds)]
    schema = scan.needed(columns)
    settings = dataclasses.replace(scan.settings, batch_size=plan.batch_size)

    paths = (scan.files[index] for index in _pieces(indices, groups))
    dense = dense_columns(plan, schema, settings)
    if dense is not None:
        yield from score_dense(paths, columns=dense, plan=plan, schema=schema, settings=settings)
    else:
        yield from map_batches(_records(paths, schema, settings), plan=plan)


@dataclass(frozen=True)
class ParquetPiece:
    """One row group of one Parquet file."""

    path: str
    row_group: int
    rows: int = 0


def score_parquet(
    indices: Iterator[pa.RecordBatch], *, pieces: tuple[ParquetPiece, ...], plan: Plan,
    groups: Sequence[Sequence[int]],
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function over group indices: read each group's row groups with
    pyarrow, score them."""
    import pyarrow.parquet as pq

    columns = list(dict.fromkeys([*plan.passthrough, *(f.column for f in plan.feeds)]))

    def batches() -> Iterator[pa.RecordBatch]:
        for index in _pieces(indices, groups):
            piece = pieces[index]
            with pq.ParquetFile(piece.path) as handle:
                yield from handle.iter_batches(batch_size=plan.batch_size,
                                               row_groups=[piece.row_group],
                                               columns=columns, use_threads=False)

    yield from map_batches(batches(), plan=plan)
