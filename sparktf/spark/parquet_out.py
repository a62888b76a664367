"""Parquet to an object store without Spark's Hadoop connector (``sparktf infer --output
s3://... --output_format parquet``).

Each task writes its partition with pyarrow's Parquet writer into a scratch file and uploads
it through the object-store commit protocol of :mod:`sparktf.spark.objcommit` (final,
attempt-unique names, the ``_SUCCESS`` manifest written by the driver once every partition's
winning attempt is known); a failed job deletes what it wrote.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from sparktf.errors import SparkTFError
from sparktf.spark import objcommit
from sparktf.spark.commit import TaskCommit, visible_entries

RESULT = "name string, size bigint, records bigint"


def write_parquet(df: Any, url: str, *, overwrite: bool,
                  partition_by: Sequence[str] = ()) -> int:
    """Write ``df`` as Parquet files under the URL ``url`` (``partition_by``: as
    ``key=value/`` directories, their values out of the files); the records committed.
    With the session's ``spark.sql.sources.partitionOverwriteMode=dynamic``, ``overwrite``
    replaces only the directories written to."""
    from sparktf.partitioned import check_partition_by
    from sparktf.spark.confs import scan_options

    check_partition_by(df.schema, list(partition_by))
    spark = df.sparkSession
    zone = scan_options(spark)["timeZone"]
    dynamic = overwrite and bool(partition_by) and (spark.conf.get(
        "spark.sql.sources.partitionOverwriteMode", None) or "").lower() == "dynamic"
    job = uuid.uuid4().hex[:12]
    claimed = None
    if not overwrite:  # one writer per new output (sparktf.spark.claim)
        from sparktf.spark.claim import claim

        claimed = claim(url, job=job, what="--output")
    try:
        if not overwrite and visible_entries(url):
            raise SparkTFError(f"--output {url} already exists; choose another path or pass "
                               "--mode overwrite")
        return _write(df, url, job, overwrite, dynamic, partition_by, zone)
    finally:
        if claimed is not None:
            claimed.release()


def _write(df: Any, url: str, job: str, overwrite: bool, dynamic: bool,
           partition_by: Sequence[str], zone: str) -> int:
    objcommit.start_job(url, job)
    task = functools.partial(_write_part, out=url, job=job, partition_by=tuple(partition_by),
                             zone=zone)
    try:
        rows = df.mapInArrow(task, RESULT).collect()
    except BaseException:
        objcommit.abort_job(url, job)
        raise
    messages = [TaskCommit(staged=None, final=r.name, records=r.records, size=r.size)
                for r in rows]
    return objcommit.commit_job(url, job, messages, overwrite=overwrite, dynamic=dynamic)


def _write_part(batches: Iterator[pa.RecordBatch], *, out: str, job: str,
                partition_by: tuple[str, ...] = (), zone: str = "UTC") -> Iterator[pa.RecordBatch]:
    """The task: its batches into one Parquet file per partition directory, uploaded; one
    row per file saying what."""
    import pyarrow.parquet as pq
    from pyspark import TaskContext

    from sparktf.partitioned import split_batch
    from sparktf.scratch import scratch_file

    context = TaskContext.get()
    partition = context.partitionId() if context else 0
    attempt = context.attemptNumber() if context else 0
    base = objcommit.object_name(partition, job, attempt, ".parquet")
    writers: dict[str, tuple[Any, str]] = {}
    records: dict[str, int] = {}
    with contextlib.ExitStack() as scratch:
        try:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                for where, rows in split_batch(batch, partition_by, zone):
                    if where not in writers:
                        local = scratch.enter_context(scratch_file("write", ".parquet"))
                        writers[where] = (pq.ParquetWriter(local, rows.schema), local)
                    writers[where][0].write_batch(rows)
                    records[where] = records.get(where, 0) + rows.num_rows
        finally:
            for writer, _ in writers.values():
                writer.close()
        done = []
        for where, (_, local) in writers.items():
            name = f"{where}/{base}" if where else base
            done.append((name, objcommit.upload(local, out, job, name), records[where]))
    if done:
        yield pa.RecordBatch.from_pydict(
            {"name": [d[0] for d in done], "size": [d[1] for d in done],
             "records": [d[2] for d in done]},
            schema=pa.schema([("name", pa.string()), ("size", pa.int64()),
                              ("records", pa.int64())]))
