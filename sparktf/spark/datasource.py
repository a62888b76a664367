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
from sparktf.errors import TFRecordError, this_host
from sparktf.spark import commit, objcommit
from sparktf.tfrecord.decode import Decoder
from sparktf.tfrecord.framing import EXTENSIONS, RecordFileWriter, frame, list_data_files
from sparktf.tfrecord.options import ReadSettings, WriteSettings
from sparktf.tfrecord.reader import read_file
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


def schema_ddl(files: list[str], settings: ReadSettings) -> str:
    """The schema of a scan as DDL: the hint's fields, then the features it does not name,
    inferred from a sample of records (Spark's parser reads the result)."""
    from sparktf.spark.hints import hint_fields, merged_ddl
    from sparktf.tfrecord.infer import inferred_fields

    if settings.record_type == "ByteArray":
        return f"{BYTE_ARRAY_COLUMN} binary NOT NULL"
    hint = settings.schema_hint
    known = [name for name, _ in hint_fields(hint)] if hint else []
    inferred = inferred_fields(files, record_type=settings.record_type,
                               compression=settings.compression,
                               sample_records=settings.sample_records, known=known)
    return merged_ddl(hint, [(n, t.simpleString()) for n, t in inferred])


@dataclass(frozen=True)
class FilePartition(InputPartition):
    """One input file: each file is read whole by one task."""

    path: str


class TFRecordDataSource(DataSource):
    """``spark.read.format("tfrecord")`` and ``df.write.format("tfrecord")``."""

    @classmethod
    def name(cls) -> str:
        return "tfrecord"

    def schema(self) -> str:
        settings = ReadSettings.from_options(self.options)
        return schema_ddl(list_data_files(input_paths(self.options)), settings)

    def reader(self, schema: StructType) -> DataSourceReader:
        settings = ReadSettings.from_options(self.options)
        return TFRecordReader(input_paths(self.options), schema, settings)

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
        settings = WriteSettings.from_options(options)
        self.record_type, self.compression = settings.record_type, settings.compression
        self.schema, self.overwrite = schema, overwrite
        self.job = uuid.uuid4().hex[:12]
        self.driver_host = this_host()  # built on the driver's machine, pickled to tasks
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
                    staged = commit.task_path(self.path, self.job, partition, attempt, name,
                                              driver_host=self.driver_host)
                    writer = RecordFileWriter(staged, self.compression)
                writer.write_framed(b"".join(map(frame, encoder.encode(batch))))
                count += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
        return commit.TaskCommit(staged=staged, final=name if staged else None, records=count,
                                 host=this_host())

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
