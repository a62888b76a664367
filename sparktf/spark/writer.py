"""The ``tfrecord`` data source's writer: one file per task, or per task and partition
directory, staged and published by the commit protocols of :mod:`sparktf.spark.commit`
(local paths: rename into place) and :mod:`sparktf.spark.objcommit` (object stores: upload
to attempt-unique names, then a manifest).

A partitioned write (option ``partitionBy``) splits each batch by its partition values
(:mod:`sparktf.partitioned`): the records hold the other columns, the directories
``key=value/`` hold those values. ``overwrite`` replaces the whole output, or, with
``partitionOverwriteMode=dynamic``, only the directories the job writes into.

``__init__``, ``commit`` and ``abort`` run on the driver's machine; ``write`` in tasks.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator, Mapping

import pyarrow as pa
from pyspark.sql.datasource import DataSourceArrowWriter
from pyspark.sql.types import StructType

from sparktf import fs
from sparktf.errors import this_host
from sparktf.partitioned import check_partition_by, split_batch
from sparktf.spark import commit, objcommit
from sparktf.spark.commit import TaskCommit
from sparktf.tfrecord.framing import EXTENSIONS, RecordFileWriter, frame
from sparktf.tfrecord.options import WriteSettings

log = logging.getLogger(__name__)


def input_path(options: Mapping[str, str]) -> str:
    from sparktf.spark.datasource import input_paths

    return input_paths(options)[0]


class TFRecordWriter(DataSourceArrowWriter):
    """Writes the files of each task, published together when the job commits."""

    def __init__(self, options: Mapping[str, str], schema: StructType, overwrite: bool) -> None:
        from sparktf.tfrecord.encode import Encoder

        self.path = input_path(options)
        self.remote = fs.is_remote(self.path)  # a malformed URL fails here, before any task
        if not self.remote:
            self.path = fs.local_path(self.path)
        settings = WriteSettings.from_options(options)
        self.settings, self.overwrite = settings, overwrite
        check_partition_by(schema, settings.partition_by)
        self.data = StructType([f for f in schema.fields if f.name not in settings.partition_by])
        self.dynamic = overwrite and settings.partition_overwrite_mode == "dynamic"
        self.job = settings.job_id or uuid.uuid4().hex[:12]
        self.driver_host = this_host()  # built on the driver's machine, pickled to tasks
        Encoder(self.data, settings.record_type)  # an unsupported column fails before any I/O
        if self.remote:
            objcommit.start_job(self.path, self.job)  # tasks upload only while it is open
        else:
            commit.start_job(self.path, self.job)  # tasks stage only while this exists

    def write(self, iterator: Iterator[pa.RecordBatch]) -> TaskCommit:
        from pyspark import TaskContext

        context = TaskContext.get()
        partition = context.partitionId() if context else 0
        attempt = context.attemptNumber() if context else 0
        files = _TaskFiles(self, partition, attempt)
        try:
            for batch in iterator:
                if batch.num_rows:
                    for where, rows in split_batch(batch, self.settings.partition_by,
                                                   self.settings.time_zone or "UTC"):
                        files.write(where, rows)
            return files.finish()
        finally:
            files.close()

    def commit(self, messages: list[TaskCommit | None]) -> None:  # type: ignore[override]
        publish = objcommit.commit_job if self.remote else commit.commit_job
        total = publish(self.path, self.job, messages, overwrite=self.overwrite,
                        dynamic=self.dynamic)
        log.info("committed %d records to %s", total, self.path)

    def abort(self, messages: list[TaskCommit | None]) -> None:  # type: ignore[override]
        if self.remote:
            objcommit.abort_job(self.path, self.job)
        else:
            commit.abort_job(self.path, self.job)


class _TaskFiles:
    """The open files of one task attempt, one per partition directory (local outputs are
    staged in place; object-store files are written in scratch space and uploaded whole
    when the task's input ends)."""

    def __init__(self, writer: TFRecordWriter, partition: int, attempt: int) -> None:
        from sparktf.tfrecord.encode import Encoder

        self.writer, self.partition, self.attempt = writer, partition, attempt
        self.encoder = Encoder(writer.data, writer.settings.record_type)
        self.open: dict[str, tuple[RecordFileWriter, str, str]] = {}
        self.counts: dict[str, int] = {}
        self.scratch = contextlib.ExitStack()

    def name(self, where: str) -> str:
        w = self.writer
        extension = ".tfrecord" + EXTENSIONS[w.settings.compression]
        base = (objcommit.object_name(self.partition, w.job, self.attempt, extension)
                if w.remote else f"part-{self.partition:05d}-{w.job}{extension}")
        return f"{where}/{base}" if where else base

    def write(self, where: str, rows: pa.RecordBatch) -> None:
        if where not in self.open:
            self.open[where] = self._start(where)
        handle = self.open[where][0]
        handle.write_framed(b"".join(map(frame, self.encoder.encode(rows))))
        self.counts[where] = self.counts.get(where, 0) + rows.num_rows

    def _start(self, where: str) -> tuple[RecordFileWriter, str, str]:
        from sparktf.scratch import scratch_file

        w = self.writer
        final = self.name(where)
        if w.remote:
            local = self.scratch.enter_context(scratch_file("write", ".tfrecord"))
        else:
            local = commit.task_path(w.path, w.job, self.partition, self.attempt, final,
                                     driver_host=w.driver_host)
        return RecordFileWriter(local, w.settings.compression), local, final

    def finish(self) -> TaskCommit:
        """Close the files (upload them to an object store); the task's commit message."""
        done = []
        for where, (handle, local, final) in list(self.open.items()):
            handle.close()
            records = self.counts[where]
            if self.writer.remote:
                size = objcommit.upload(local, self.writer.path, self.writer.job, final)
                done.append(TaskCommit(staged=fs.child(self.writer.path, final), final=final,
                                       records=records, size=size))
            else:
                done.append(TaskCommit(staged=local, final=final, records=records))
        self.open.clear()
        return commit.of_files(done, host=this_host())

    def close(self) -> None:
        for handle, _, _ in self.open.values():
            with contextlib.suppress(OSError):
                handle.close()
        self.scratch.close()
