"""TFRecord → Parquet without the JVM in the data's way: ``tfrecords_to_parquet`` and
``sparktf convert``.

``read_tfrecords(...).write.parquet(...)`` moves every record from the Python reader into
the JVM and through Spark's Parquet writer, whose ``array<float>`` path is slow. Here each
task reads its TFRecord splits (planned as :func:`~sparktf.read_tfrecords` plans them) and
writes Parquet itself with pyarrow (:mod:`sparktf.spark.parquet_parts`); only one small row
per file reaches the driver, which commits the job: local outputs and shared filesystems by
the staging protocol of :mod:`sparktf.spark.commit`, object stores by the manifest protocol
of :mod:`sparktf.spark.objcommit`. ``_SUCCESS`` comes last, a failed job leaves nothing
visible and an existing output as it was, and Spark reads the result back with the types
``read_tfrecords`` gives.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from sparktf import fs
from sparktf.errors import SparkTFError, TFRecordError
from sparktf.spark.compat import is_connect
from sparktf.spark.parquet_parts import CODECS, RESULT, PartTarget, messages_json, schema_bytes
from sparktf.tfrecord.types import arrow_schema

log = logging.getLogger(__name__)

MODES = ("errorifexists", "error", "overwrite", "ignore")
TASK_BYTES = 1 << 30  #: TFRecord bytes per task, unless maxPartitionBytes is set
READ_BATCH = 8192  #: records per decoded batch, unless the ``batch_size`` option says
SPARK_CODECS = {"uncompressed": "none", "none": "none"}


def tfrecords_to_parquet(
    spark: SparkSession,
    path: str | list[str],
    output: str,
    *,
    mode: str = "errorifexists",
    schema_hint: str | StructType | None = None,
    partition_by: Sequence[str] = (),
    codec: str | None = None,
    **options: Any,
) -> int:
    """Convert TFRecord files to a Parquet dataset; returns the records written.

    Parameters
    ----------
    spark : SparkSession
        A classic or Spark Connect session (on Connect, local paths are the server's).
    path : str or list of str
        TFRecord files, directories (``key=value/`` trees included) or globs, as for
        :func:`~sparktf.read_tfrecords`.
    output : str
        The Parquet folder: a local path or a URL of :mod:`sparktf.fs` (``s3://``, ...).
    mode : str
        ``errorifexists`` (default), ``overwrite`` or ``ignore``.
    schema_hint : str or StructType, optional
        As for :func:`~sparktf.read_tfrecords`.
    partition_by : sequence of str
        Write these columns as ``key=value/`` directories (with
        ``spark.sql.sources.partitionOverwriteMode=dynamic``, ``overwrite`` replaces only
        the directories written to).
    codec : str, optional
        Parquet compression, one of ``none``, ``snappy``, ``gzip``, ``brotli``, ``lz4``,
        ``zstd`` (default: the session's ``spark.sql.parquet.compression.codec``, snappy).
    **options
        The read settings of :func:`~sparktf.read_tfrecords` (``record_type``,
        ``compression``, ``max_partition_bytes``, ...).

    Examples
    --------
    >>> out = tmp + "/examples.parquet"
    >>> tfrecords_to_parquet(spark, examples, out, schema_hint="vals array<double>")
    5
    >>> sorted(spark.read.parquet(out).columns)
    ['id', 'name', 'tags', 'vals']
    """
    from sparktf.partitioned import check_partition_by
    from sparktf.spark.api import planned_scan
    from sparktf.spark.errors import reraise

    mode = _check_mode(mode)
    codec = _codec(spark, codec)
    location = fs.parse(output)  # a malformed URL or unknown scheme fails before any job
    target = location.url if not location.is_local else fs.local_path(output)
    scan = planned_scan(spark, path, schema_hint, _pack(spark, options))
    schema = scan.schema(spark)
    files = scan.file_scan(spark, schema)
    if "batchsize" not in {k.replace("_", "").lower() for k in options}:  # fewer, larger
        # batches: less fixed cost per batch in the reader and the writer
        files = dataclasses.replace(files, settings=dataclasses.replace(
            files.settings, batch_size=READ_BATCH))
    check_partition_by(schema, list(partition_by))
    job = uuid.uuid4().hex[:12]
    on_server = location.is_local and is_connect(spark)
    call = functools.partial(_call, spark) if on_server else _direct
    claimed = None
    if mode != "overwrite" and not on_server:
        from sparktf.spark.claim import claim

        claimed = claim(target, job=job)  # one writer per new output
    try:
        if not _may_write(call, target, output, mode):
            return 0
        parts = PartTarget(out=target, job=job, partition_by=tuple(partition_by),
                           zone=files.settings.time_zone, codec=codec,
                           driver_host="" if is_connect(spark) else _host(),
                           empty_schema=schema_bytes(arrow_schema(schema)))
        call(start_output, out=target, job=job)
        fn = functools.partial(convert_task, scan=files, target=parts)
        count = len(files.tasks)
        try:
            with reraise(f"converting {_shown(path)} to Parquet at {output}"):
                rows = spark.range(0, count, 1, max(1, count)).mapInArrow(fn, RESULT).collect()
        except BaseException:
            call(abort_output, out=target, job=job)
            raise
        dynamic = mode == "overwrite" and bool(partition_by) and (spark.conf.get(
            "spark.sql.sources.partitionOverwriteMode", None) or "").lower() == "dynamic"
        return int(call(commit_output, out=target, job=job, files=messages_json(rows),
                        overwrite=mode == "overwrite", dynamic=dynamic))
    finally:
        if claimed is not None:
            claimed.release()


def convert_task(indices: Iterator[pa.RecordBatch], *, scan: Any,
                 target: PartTarget) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function over task indices: read the task's splits, write Parquet."""
    from sparktf.model.fused import read_files
    from sparktf.spark.parquet_parts import write_parts

    yield from write_parts(read_files(indices, scan=scan), target)


def _pack(spark: SparkSession, options: dict[str, Any]) -> dict[str, Any]:
    """``options``, with :data:`TASK_BYTES` of input per task unless the options or the
    session say how much: larger Parquet files, and fewer tasks' fixed costs."""
    from sparktf.spark.confs import conf_value

    given = {k.replace("_", "").lower() for k in options}
    if "maxpartitionbytes" in given or conf_value(spark, "spark.sql.files.maxPartitionBytes"):
        return options
    return {**options, "max_partition_bytes": str(TASK_BYTES)}


def _check_mode(mode: str) -> str:
    found = str(mode).lower()
    if found not in MODES:
        raise SparkTFError(f"mode: expected one of {', '.join(MODES)}, found {mode!r}")
    return "errorifexists" if found == "error" else found


def _codec(spark: SparkSession, codec: str | None) -> str:
    given = codec if codec is not None else (spark.conf.get(
        "spark.sql.parquet.compression.codec", None) or "snappy")
    found = SPARK_CODECS.get(str(given).lower(), str(given).lower())
    if found not in CODECS:
        source = "codec" if codec is not None else "spark.sql.parquet.compression.codec"
        raise SparkTFError(f"{source}: expected one of {', '.join(CODECS)}, found {given!r}")
    return found


def _may_write(call: Callable[..., Any], target: str, output: str, mode: str) -> bool:
    from sparktf.spark.serverside import output_state

    state = call(output_state, path=target)
    if state["entries"] and mode == "errorifexists":
        raise TFRecordError(f"output path {output} already exists ({state['entries']} "
                            "entries); use mode='overwrite' or write elsewhere")
    if state["entries"] and mode == "ignore":
        log.info("output path %s exists: nothing converted (mode ignore)", output)
        return False
    if state["not_a_directory"]:
        raise TFRecordError(f"output path {output} exists and is not a directory")
    return True


def start_output(out: str, job: str) -> None:
    """Open the job on ``out`` (its staging folder, or its mark on an object store)."""
    from sparktf.spark import commit, objcommit

    (objcommit if fs.is_remote(out) else commit).start_job(out, job)


def abort_output(out: str, job: str) -> None:
    """Remove what the job wrote."""
    from sparktf.spark import commit, objcommit

    (objcommit if fs.is_remote(out) else commit).abort_job(out, job)


def commit_output(out: str, job: str, files: list[dict[str, Any]], overwrite: bool,
                  dynamic: bool) -> int:
    """Publish the files the tasks reported; the records committed."""
    from sparktf.spark import commit, objcommit
    from sparktf.spark.commit import TaskCommit

    messages = [TaskCommit(staged=f["staged"], final=f["name"], records=f["records"],
                           size=f["size"]) for f in files]
    protocol = objcommit if fs.is_remote(out) else commit
    return protocol.commit_job(out, job, messages, overwrite=overwrite, dynamic=dynamic)


def _call(spark: SparkSession, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """``fn`` where the server's tasks run (a Connect client and a path of the server)."""
    from sparktf.spark.serverside import run_on_server

    return run_on_server(spark, fn, **json.loads(json.dumps(kwargs)))


def _direct(fn: Callable[..., Any], **kwargs: Any) -> Any:
    return fn(**kwargs)


def _host() -> str:
    from sparktf.errors import this_host

    return this_host()


def _shown(path: str | list[str]) -> str:
    return path if isinstance(path, str) else " ".join(path)
