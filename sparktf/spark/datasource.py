"""The ``tfrecord`` Spark Python data source (reader and writer).

Everything in this module runs in Spark's Python workers: ``schema``/``reader``/``writer``
in planning workers on the driver's machine, ``read``/``write`` in executor tasks, and
``commit``/``abort`` on the driver's machine again. None of it has a JVM to talk to.

Options (names case-insensitive, camelCase or snake_case) are checked by
:class:`~sparktf.tfrecord.options.ReadSettings` and
:class:`~sparktf.tfrecord.options.WriteSettings`, which hold their defaults: an unknown
name or a bad value is refused with the accepted ones. ``schemaHint`` is partial on this path
as on :func:`sparktf.read_tfrecords`: ``schema()`` returns the hint's fields followed by the
inferred ones as DDL text, which Spark's own parser reads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
from pyspark.sql.datasource import (
    DataSource,
    DataSourceArrowWriter,
    DataSourceReader,
    Filter,
    InputPartition,
)
from pyspark.sql.types import StructType

from sparktf._tf import freeze_survivors
from sparktf.errors import TFRecordError
from sparktf.listing import Listing, list_inputs, sample_across
from sparktf.partitions import check_no_overlap
from sparktf.planning import PackSettings, Split, plan_tasks
from sparktf.tfrecord.decode import Decoder
from sparktf.tfrecord.options import ReadSettings
from sparktf.tfrecord.scan import data_schema, read_splits
from sparktf.tfrecord.types import BYTE_ARRAY_COLUMN

log = logging.getLogger(__name__)


def input_paths(options: Mapping[str, str]) -> list[str]:
    """The paths given to ``load(path)`` (option ``path``) or ``load([..])`` (``paths``)."""
    if options.get("paths"):
        paths = json.loads(options["paths"])
        return [paths] if isinstance(paths, str) else list(paths)
    if options.get("path"):
        return [options["path"]]
    raise TFRecordError("no input path: use load(path) or load([path, ...])")


def scan_listing(paths: list[str], settings: ReadSettings,
                 types: dict[str, str] | None = None) -> Listing:
    """The listing of a scan: its data files with sizes and partition values; ``types``
    (else the schema hint's) type the partition columns they name."""
    from sparktf.spark.hints import hint_types

    return list_inputs(paths, base_path=settings.base_path,
                       compression=settings.compression if settings.split_files else "gzip",
                       hint=hint_types(settings.schema_hint) if types is None else types)


def schema_ddl(listing: Listing, settings: ReadSettings) -> str:
    """The schema of a scan as DDL: the hint's fields, then the features it does not name,
    inferred from a sample of records across files and partitions, then the partition
    columns (Spark's parser reads the result)."""
    from sparktf.spark.hints import hint_fields, merged_ddl
    from sparktf.tfrecord.infer import inferred_fields

    spec = listing.spec
    if settings.record_type == "ByteArray":
        found = [(BYTE_ARRAY_COLUMN, "binary NOT NULL")]
    else:
        hint = settings.schema_hint
        known = [name for name, _ in hint_fields(hint)] if hint else []
        inferred = inferred_fields(sample_across(listing), record_type=settings.record_type,
                                   compression=settings.compression,
                                   sample_records=settings.sample_records,
                                   known=known + spec.names)
        check_no_overlap(spec.names, inferred_names(listing, settings))
        found = [(n, t.simpleString()) for n, t in inferred]
    return merged_ddl(settings.schema_hint, found + list(spec.columns))


def inferred_names(listing: Listing, settings: ReadSettings) -> list[str]:
    """The feature names of the sampled records (all of them, hinted or not)."""
    from sparktf.tfrecord.infer import infer_features

    if not listing.spec.names:
        return []
    return list(infer_features(sample_across(listing), record_type=settings.record_type,
                               compression=settings.compression,
                               sample_records=settings.sample_records))


def pack_settings(settings: ReadSettings) -> PackSettings:
    """Spark's packing settings of a scan (those not given: Spark's defaults)."""
    return PackSettings(**{name: value for name, value in (
        ("max_partition_bytes", settings.max_partition_bytes),
        ("open_cost_in_bytes", settings.open_cost_in_bytes),
        ("min_partitions", settings.min_partitions)) if value is not None})


@dataclass(frozen=True)
class TaskPartition(InputPartition):
    """The splits one task reads: small files packed together, or pieces of a large one."""

    splits: tuple[Split, ...]


class TFRecordDataSource(DataSource):
    """``spark.read.format("tfrecord")`` and ``df.write.format("tfrecord")``.

    ``SESSION`` holds the session's scan settings (:mod:`sparktf.spark.confs`) and
    ``PUSHDOWN`` whether Spark pushes filters to Python data sources: :func:`sparktf.register`
    registers a subclass that sets both, as a planning worker has no session to ask.
    """

    SESSION: ClassVar[dict[str, str]] = {}
    PUSHDOWN: ClassVar[bool] = False

    @classmethod
    def name(cls) -> str:
        return "tfrecord"

    @classmethod
    def for_session(cls, options: dict[str, str], pushdown: bool) -> type[TFRecordDataSource]:
        """A subclass holding a session's scan settings (pickled by value to the workers:
        its name is not one of this module's)."""
        name = f"TFRecordDataSource_{abs(hash((tuple(sorted(options.items())), pushdown)))}"
        return type(name, (cls,), {"SESSION": dict(options), "PUSHDOWN": pushdown,
                                   "__module__": cls.__module__, "__qualname__": name})

    def _settings(self) -> ReadSettings:
        return ReadSettings.from_options({**self.SESSION, **dict(self.options)})

    def schema(self) -> str:
        settings = self._settings()
        return schema_ddl(scan_listing(input_paths(self.options), settings), settings)

    def reader(self, schema: StructType) -> DataSourceReader:
        reader = PruningReader if self.PUSHDOWN else TFRecordReader
        return reader(input_paths(self.options), schema, self._settings())

    def writer(self, schema: StructType, overwrite: bool) -> DataSourceArrowWriter:
        from sparktf.spark.writer import TFRecordWriter

        options = {k: v for k, v in self.SESSION.items() if k == "timeZone"}
        return TFRecordWriter({**options, **dict(self.options)}, schema, overwrite)


class TFRecordReader(DataSourceReader):
    """Lists the input once (with sizes and partition values) and reads tasks of packed
    files and splits (:mod:`sparktf.planning`), as Arrow batches."""

    def __init__(self, paths: list[str], schema: StructType, settings: ReadSettings) -> None:
        self.schema, self.settings = schema, settings
        types = {f.name: f.dataType.simpleString() for f in schema.fields}
        self.listing: Listing | None = scan_listing(paths, settings, types)
        self.spec = self.listing.spec
        # fail now, before tasks start, on a type the records cannot hold
        Decoder(data_schema(schema, self.spec), settings.record_type)

    def partitions(self) -> list[TaskPartition]:
        assert self.listing is not None
        tasks = plan_tasks(self.listing.files, pack_settings(self.settings))
        self.listing = None  # the reader goes to every task: not the whole file list
        return [TaskPartition(t) for t in tasks]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, TaskPartition)
        freeze_survivors()
        yield from read_splits(partition.splits, schema=self.schema, settings=self.settings,
                               spec=self.spec)


class PruningReader(TFRecordReader):
    """A reader that takes Spark's filters: those on partition columns leave out the files
    of directories whose values cannot pass (:mod:`sparktf.spark.pruning`); all of them go
    back to Spark, which still applies them to the rows."""

    def pushFilters(self, filters: list[Filter]) -> Iterable[Filter]:  # noqa: N802 - Spark's
        from sparktf.spark.pruning import matching_rows

        assert self.listing is not None
        rows = matching_rows(self.spec, filters, self.settings.time_zone or "UTC")
        before = len(self.listing.files)
        self.listing = self.listing.pruned(rows.__contains__)
        log.info("partition filters kept %d of %d files", len(self.listing.files), before)
        return filters
