"""Parquet to an object store without Spark's Hadoop connector (``sparktf infer --output
s3://... --output_format parquet``).

Each task writes its partition with pyarrow's Parquet writer into a scratch file
(:mod:`sparktf.spark.parquet_parts`) and uploads it through the object-store commit
protocol of :mod:`sparktf.spark.objcommit` (final, attempt-unique names, the ``_SUCCESS``
manifest written by the driver once every partition's winning attempt is known); a failed
job deletes what it wrote.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import Any

from sparktf.errors import SparkTFError
from sparktf.spark import objcommit
from sparktf.spark.commit import TaskCommit, visible_entries
from sparktf.spark.parquet_parts import RESULT, PartTarget, write_parts


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
    target = PartTarget(out=url, job=job, partition_by=tuple(partition_by), zone=zone)
    task = functools.partial(write_parts, target=target)
    try:
        rows = df.mapInArrow(task, RESULT).collect()
    except BaseException:
        objcommit.abort_job(url, job)
        raise
    messages = [TaskCommit(staged=None, final=r.name, records=r.records, size=r.size)
                for r in rows]
    return objcommit.commit_job(url, job, messages, overwrite=overwrite, dynamic=dynamic)
