"""The ``tfrecord`` Spark Python data source (reader and writer).

Everything in this module runs in Spark's Python workers: ``schema``/``reader``/``writer``
in planning workers on the driver's machine, ``read``/``write`` in executor tasks, and
``commit``/``abort`` on the driver's machine again. None of it has a JVM to talk to.

Options (case-insensitive, as Spark's own):

``recordType``            ``Example`` (default), ``SequenceExample`` or ``ByteArray``
``compression``           read: ``auto`` (default: gzip found by its magic bytes), ``none``,
                          ``gzip``, ``zlib``; write: ``none`` (default), ``gzip``, ``zlib``
``schemaHint``            a partial or full schema, as Spark JSON (what ``read_tfrecords``
                          passes) or as DDL (then taken as the full schema)
``sampleRecords``         how many records schema inference looks at (default 1000)
``batchSize``             rows per Arrow batch (default 4096)
``ignoreCorruptFiles``    keep the records before a fault in a file, skip the rest
``ignoreCorruptRecords``  skip records with a bad data CRC or payload, go on
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql.datasource import (
    DataSource,
    DataSourceArrowWriter,
    DataSourceReader,
    InputPartition,
)
from pyspark.sql.types import StructType

from sparktf import fs
from sparktf.errors import TFRecordError
from sparktf.spark import commit, objcommit
from sparktf.tfrecord.decode import Decoder, check_record_type
from sparktf.tfrecord.framing import EXTENSIONS, RecordFileWriter, frame, list_data_files
from sparktf.tfrecord.reader import ReadSettings, read_file

log = logging.getLogger(__name__)
_TRUE = ("true", "1", "yes")


def _flag(options: Mapping[str, str], name: str) -> bool:
    return str(options.get(name, "false")).strip().lower() in _TRUE


def _positive(options: Mapping[str, str], name: str, default: int) -> int:
    raw = options.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = 0
    if value <= 0:
        raise TFRecordError(f"option {name}: expected a positive integer, found {raw!r}")
    return value


def input_paths(options: Mapping[str, str]) -> list[str]:
    """The paths given to ``load(path)`` (option ``path``) or ``load([..])`` (``paths``)."""
    if options.get("paths"):
        paths = json.loads(options["paths"])
        return [paths] if isinstance(paths, str) else list(paths)
    if options.get("path"):
        return [options["path"]]
    raise TFRecordError("no input path: use load(path) or load([path, ...])")


def reader_settings(options: Mapping[str, str]) -> ReadSettings:
    """Read settings from data source options (case-insensitive names)."""
    from pyspark.sql.datasource import CaseInsensitiveDict

    opts = CaseInsensitiveDict(options)
    return ReadSettings(
        record_type=check_record_type(opts.get("recordType", "Example")),
        compression=opts.get("compression"),
        batch_size=_positive(opts, "batchSize", 4096),
        ignore_corrupt_files=_flag(opts, "ignoreCorruptFiles"),
        ignore_corrupt_records=_flag(opts, "ignoreCorruptRecords"),
    )


@dataclass(frozen=True)
class FilePartition(InputPartition):
    """One input file: each file is read whole by one task."""

    path: str


class TFRecordDataSource(DataSource):
    """``spark.read.format("tfrecord")`` and ``df.write.format("tfrecord")``."""

    @classmethod
    def name(cls) -> str:
        return "tfrecord"

    @property
    def record_type(self) -> str:
        return check_record_type(self.options.get("recordType", "Example"))

    def schema(self) -> StructType | str:
        hint_text = self.options.get("schemaHint")
        if hint_text and not hint_text.lstrip().startswith("{"):
            return hint_text  # DDL: Spark parses it, and it is the full schema
        from sparktf.tfrecord.infer import resolve_schema

        return resolve_schema(
            list_data_files(input_paths(self.options)),
            record_type=self.record_type,
            compression=self.options.get("compression"),
            hint=StructType.fromJson(json.loads(hint_text)) if hint_text else None,
            sample_records=_positive(self.options, "sampleRecords", 1000),
        )

    def reader(self, schema: StructType) -> DataSourceReader:
        return TFRecordReader(input_paths(self.options), schema, reader_settings(self.options))

    def writer(self, schema: StructType, overwrite: bool) -> TFRecordWriter:
        return TFRecordWriter(self.options, schema, overwrite)


class TFRecordReader(DataSourceReader):
    """Reads each file in its own partition, as Arrow batches."""

    def __init__(self, paths: list[str], schema: StructType, settings: ReadSettings) -> None:
        self.paths, self.schema, self.settings = paths, schema, settings
        Decoder(schema, settings.record_type)  # fail now, before tasks start, on a bad type

    def partitions(self) -> list[FilePartition]:
        return [FilePartition(p) for p in list_data_files(self.paths)]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, FilePartition)
        decoder = Decoder(
            self.schema,
            self.settings.record_type,
            skip_corrupt=self.settings.ignore_corrupt_records,
        )
        yield from read_file(partition.path, decoder, self.settings)


class TFRecordWriter(DataSourceArrowWriter):
    """Writes one file per task, staged and published by :mod:`sparktf.spark.commit`."""

    def __init__(self, options: Mapping[str, str], schema: StructType, overwrite: bool) -> None:
        from sparktf.tfrecord.encode import Encoder

        self.path = input_paths(options)[0]
        self.remote = fs.is_remote(self.path)  # a malformed URL fails here, before any task
        if not self.remote:
            self.path = fs.local_path(self.path)
        self.record_type = check_record_type(options.get("recordType", "Example"))
        self.compression = str(options.get("compression", "none")).lower()
        if self.compression not in EXTENSIONS:
            raise TFRecordError(
                f"option compression: expected one of none, gzip, zlib, found {self.compression!r}"
            )
        self.schema, self.overwrite = schema, overwrite
        self.job = uuid.uuid4().hex[:12]
        Encoder(schema, self.record_type)  # raises on an unsupported column before any I/O
        if self.remote:
            objcommit.start_job(self.path, self.job)  # tasks upload only while it is open
        else:
            commit.start_job(self.path, self.job)  # tasks stage only while this exists

    def write(self, iterator: Iterator[pa.RecordBatch]) -> commit.TaskCommit:
        from pyspark import TaskContext

        from sparktf.tfrecord.encode import Encoder

        context = TaskContext.get()
        partition = context.partitionId() if context else 0
        attempt = context.attemptNumber() if context else 0
        if self.remote:
            return self._write_remote(iterator, partition, attempt)
        name = f"part-{partition:05d}-{self.job}.tfrecord{EXTENSIONS[self.compression]}"
        encoder, writer, staged, count = Encoder(self.schema, self.record_type), None, None, 0
        try:
            for batch in iterator:
                if batch.num_rows == 0:
                    continue
                if writer is None:
                    staged = commit.task_path(self.path, self.job, partition, attempt, name)
                    writer = RecordFileWriter(staged, self.compression)
                writer.write_framed(b"".join(map(frame, encoder.encode(batch))))
                count += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
        return commit.TaskCommit(staged=staged, final=name if staged else None, records=count)

    def _write_remote(self, iterator: Iterator[pa.RecordBatch], partition: int,
                      attempt: int) -> commit.TaskCommit:
        """Write the task's file in scratch space, then upload it whole to its final,
        attempt-unique name (see :mod:`sparktf.spark.objcommit`)."""
        from sparktf.scratch import scratch_file
        from sparktf.tfrecord.encode import Encoder

        extension = ".tfrecord" + EXTENSIONS[self.compression]
        name = objcommit.object_name(partition, self.job, attempt, extension)
        encoder, count = Encoder(self.schema, self.record_type), 0
        with scratch_file("write", extension) as local:
            with RecordFileWriter(local, self.compression) as writer:
                for batch in iterator:
                    if batch.num_rows:
                        writer.write_framed(b"".join(map(frame, encoder.encode(batch))))
                        count += batch.num_rows
            if count == 0:
                return commit.TaskCommit(staged=None, final=None, records=0)
            size = objcommit.upload(local, self.path, self.job, name)
        target = fs.child(self.path, name)
        return commit.TaskCommit(staged=target, final=name, records=count, size=size)

    def commit(self, messages: list[commit.TaskCommit | None]) -> None:  # type: ignore[override]
        if self.remote:
            total = objcommit.commit_job(self.path, self.job, messages,
                                         overwrite=self.overwrite)
        else:
            total = commit.commit_job(self.path, self.job, messages, overwrite=self.overwrite)
        log.info("committed %d records to %s", total, self.path)

    def abort(self, messages: list[commit.TaskCommit | None]) -> None:  # type: ignore[override]
        if self.remote:
            objcommit.abort_job(self.path, self.job)
        else:
            commit.abort_job(self.path, self.job)
