"""Parquet part files written by a task with pyarrow (worker side), under a commit protocol.

A task's Arrow batches become one Parquet file per partition directory it writes into
(``key=value/``, Hive style, when the target has ``partition_by``), buffered into row groups
of about :attr:`PartTarget.row_group_bytes`:

- a local output: straight into the task attempt's staging folder
  (:func:`sparktf.spark.commit.task_path`), published by the driver's job commit;
- an object store: into a scratch file, then uploaded under its final, attempt-unique
  name (:mod:`sparktf.spark.objcommit`), listed by the driver's ``_SUCCESS`` manifest.

Each task yields one row per file (:data:`RESULT`) for the driver to commit.

Examples
--------
>>> import pyarrow as pa, tempfile, os
>>> from sparktf.spark import commit
>>> out = tempfile.mkdtemp()
>>> commit.start_job(out, "j1")
>>> target = PartTarget(out=out, job="j1")
>>> batch = pa.RecordBatch.from_pydict({"x": [1, 2, 3]})
>>> done = pa.Table.from_batches(write_parts(iter([batch]), target)).to_pylist()
>>> [(row["name"], row["records"]) for row in done]
[('part-00000-j1.snappy.parquet', 3)]
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

RESULT = "name string, staged string, size bigint, records bigint"
RESULT_SCHEMA = pa.schema([("name", pa.string()), ("staged", pa.string()),
                           ("size", pa.int64()), ("records", pa.int64())])
CODECS = ("none", "snappy", "gzip", "brotli", "lz4", "zstd")


@dataclass(frozen=True)
class PartTarget:
    """Where and how a task writes its Parquet files.

    ``empty_schema``: the Arrow schema (IPC bytes) of the file task 0 writes when it has no
    rows, so that an output of no records still has a schema for its readers.
    """

    out: str
    job: str
    partition_by: tuple[str, ...] = ()
    zone: str = "UTC"
    codec: str = "snappy"
    row_group_bytes: int = 128 << 20
    driver_host: str = ""
    empty_schema: bytes = b""


def column_options(schema: pa.Schema) -> dict[str, list[str]]:
    """Which Parquet columns get a dictionary and statistics.

    Dictionaries for every column but floating-point ones (real-valued features rarely
    repeat, and trying a dictionary on them doubles pyarrow's write time); statistics
    (min/max, which Spark uses to skip row groups) for columns outside lists only.

    Examples
    --------
    >>> column_options(pa.schema([("x", pa.list_(pa.float32())), ("id", pa.int64())]))
    {'use_dictionary': ['id'], 'write_statistics': ['id']}
    """
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.ParquetWriter(sink, schema).close()
    leaves = pq.ParquetFile(pa.BufferReader(sink.getvalue())).schema
    columns = [leaves.column(i) for i in range(len(leaves))]
    return {"use_dictionary": [c.path for c in columns
                               if c.physical_type not in ("FLOAT", "DOUBLE")],
            "write_statistics": [c.path for c in columns if c.max_repetition_level == 0]}


class _File:
    """One Parquet file being written: batches gathered into row groups."""

    def __init__(self, path: str, schema: pa.Schema, target: PartTarget) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.limit = target.row_group_bytes
        self.writer = pq.ParquetWriter(path, schema, compression=target.codec,
                                       **column_options(schema))
        self.pending: list[pa.RecordBatch] = []
        self.pending_bytes = 0
        self.records = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self.pending.append(batch)
        self.pending_bytes += batch.nbytes
        self.records += batch.num_rows
        if self.pending_bytes >= self.limit:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            table = pa.Table.from_batches(self.pending)
            self.writer.write_table(table, row_group_size=max(1, table.num_rows))
            self.pending, self.pending_bytes = [], 0

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.writer.close()


def write_parts(batches: Iterator[pa.RecordBatch], target: PartTarget) -> Iterator[pa.RecordBatch]:
    """``mapInArrow``-style task body: ``batches`` into Parquet files, one result row per
    file (its final name relative to the output, staged path, bytes, records)."""
    from pyspark import TaskContext

    from sparktf import fs
    from sparktf.partitioned import split_batch

    context = TaskContext.get()
    partition = context.partitionId() if context else 0
    attempt = context.attemptNumber() if context else 0
    remote = fs.is_remote(target.out)
    files: dict[str, _File] = {}
    with contextlib.ExitStack() as scratch:
        try:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                for where, rows in split_batch(batch, target.partition_by, target.zone):
                    if where not in files:
                        files[where] = _open(where, rows.schema, target, partition, attempt,
                                             scratch)
                    files[where].add(rows)
            if not files and partition == 0 and target.empty_schema and not target.partition_by:
                files[""] = _open("", _schema(target.empty_schema), target, 0, attempt, scratch)
        finally:
            for file in files.values():
                file.close()
        done = [_finish(where, file, target, partition, attempt, remote)
                for where, file in files.items()]
    if done:
        yield pa.RecordBatch.from_pylist(done, schema=RESULT_SCHEMA)


def _name(where: str, target: PartTarget, partition: int, attempt: int, remote: bool) -> str:
    from sparktf.spark import objcommit

    codec = "" if target.codec == "none" else f".{target.codec}"
    base = (objcommit.object_name(partition, target.job, attempt, f"{codec}.parquet") if remote
            else f"part-{partition:05d}-{target.job}{codec}.parquet")
    return f"{where}/{base}" if where else base


def _open(where: str, schema: pa.Schema, target: PartTarget, partition: int, attempt: int,
          scratch: contextlib.ExitStack) -> _File:
    from sparktf import fs
    from sparktf.scratch import scratch_file
    from sparktf.spark.commit import task_path

    if fs.is_remote(target.out):
        path = scratch.enter_context(scratch_file("write", ".parquet"))
    else:
        path = task_path(target.out, target.job, partition, attempt,
                         _name(where, target, partition, attempt, False),
                         driver_host=target.driver_host)
    return _File(path, schema, target)


def _finish(where: str, file: _File, target: PartTarget, partition: int, attempt: int,
            remote: bool) -> dict[str, Any]:
    import os

    from sparktf.spark import objcommit

    name = _name(where, target, partition, attempt, remote)
    if remote:
        size = objcommit.upload(file.path, target.out, target.job, name)
        return {"name": name, "staged": None, "size": size, "records": file.records}
    return {"name": name, "staged": file.path, "size": os.path.getsize(file.path),
            "records": file.records}


def _schema(ipc: bytes) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(ipc))


def schema_bytes(schema: pa.Schema) -> bytes:
    """``schema`` as the IPC bytes :class:`PartTarget` keeps."""
    return schema.serialize().to_pybytes()


def messages_json(rows: list[Any]) -> list[dict[str, Any]]:
    """The result rows of a job's tasks as JSON data (for a commit run on a server)."""
    return json.loads(json.dumps([{k: getattr(r, k) for k in RESULT_SCHEMA.names}
                                  for r in rows]))
