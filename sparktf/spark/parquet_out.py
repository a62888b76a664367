"""Parquet to an object store without Spark's Hadoop connector (``sparktf infer --output
s3://... --output_format parquet``).

Each task writes its partition with pyarrow's Parquet writer into a scratch file and uploads
it through the object-store commit protocol of :mod:`sparktf.spark.objcommit` (final,
attempt-unique names, the ``_SUCCESS`` manifest written by the driver once every partition's
winning attempt is known); a failed job deletes what it wrote.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from sparktf.spark import objcommit
from sparktf.spark.commit import TaskCommit

RESULT = "name string, size bigint, records bigint"


def write_parquet(df: Any, url: str, *, overwrite: bool) -> int:
    """Write ``df`` as Parquet files under the URL ``url``; the records committed."""
    job = uuid.uuid4().hex[:12]
    objcommit.start_job(url, job)
    task = functools.partial(_write_part, out=url, job=job)
    try:
        rows = df.mapInArrow(task, RESULT).collect()
    except BaseException:
        objcommit.abort_job(url, job)
        raise
    messages = [TaskCommit(staged=None, final=r.name, records=r.records, size=r.size)
                for r in rows]
    return objcommit.commit_job(url, job, messages, overwrite=overwrite)


def _write_part(batches: Iterator[pa.RecordBatch], *, out: str,
                job: str) -> Iterator[pa.RecordBatch]:
    """The task: its batches into one Parquet file, uploaded; one row saying what."""
    import pyarrow.parquet as pq
    from pyspark import TaskContext

    from sparktf.scratch import scratch_file

    context = TaskContext.get()
    partition = context.partitionId() if context else 0
    attempt = context.attemptNumber() if context else 0
    name = objcommit.object_name(partition, job, attempt, ".parquet")
    records, writer = 0, None
    with scratch_file("write", ".parquet") as local:
        try:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                if writer is None:
                    writer = pq.ParquetWriter(local, batch.schema)
                writer.write_batch(batch)
                records += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            return
        size = objcommit.upload(local, out, job, name)
    yield pa.RecordBatch.from_pydict(
        {"name": [name], "size": [size], "records": [records]},
        schema=pa.schema([("name", pa.string()), ("size", pa.int64()),
                          ("records", pa.int64())]))
