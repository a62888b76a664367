"""Where ``sparktf infer`` writes: each ``--output_format``, locally, on object stores and
on a Spark Connect server; the output's row count; the checks before scoring."""

from __future__ import annotations

import argparse
import re
from typing import Any

import sparktf
from sparktf.cli.main import UsageError
from sparktf.errors import SparkTFError

_OWN_WRITERS = ("tfrecord", "parquet")  # formats sparktf itself writes to a URL
_NO_FILESYSTEM = re.compile(r"No FileSystem for scheme \S+|UnsupportedFileSystemException"
                            r"|Class \S+FileSystem not found")


def check_connector(spark: Any, url: str, output_format: str) -> None:
    """Before any scoring: Spark's own writers (json, csv) reach a remote ``url`` only
    through the cluster's Hadoop connector for its scheme (as on EMR, Dataproc or
    Databricks); when this Spark has none, stop with one line saying so. Spark resolves
    ``url`` (analysis only, no job), with public API on any kind of session."""
    from sparktf import fs
    from sparktf.errors import StorageError

    location = fs.parse(url)
    if location.is_local or output_format in _OWN_WRITERS:
        return
    try:
        spark.read.format("text").load(url).schema  # noqa: B018 - resolves the filesystem
    except Exception as exc:  # noqa: BLE001 - Spark's AnalysisException and friends
        found = _NO_FILESYSTEM.search(str(exc))
        if found is None:
            return  # e.g. the path does not exist yet: the filesystem itself was found
        raise StorageError(
            f"--output {url}: this Spark has no Hadoop connector for "
            f"{location.written_scheme}:// ({found.group(0)}), which --output_format "
            f"{output_format} needs; add the connector (e.g. hadoop-aws for s3a://) or use "
            "--output_format tfrecord or parquet, which sparktf writes itself") from None


def write_output(df: Any, args: argparse.Namespace, *, on_server: bool = False) -> int | None:
    """Write the predictions; the rows written. A failed job leaves a local ``--output``
    exactly as it was. ``on_server``: the path is a Spark Connect server's, written by
    Spark's writer there; the rows are counted as the job runs (None where sparktf's own
    writer wrote, ``tfrecord`` and Parquet on object stores: the caller counts them there,
    not in this process, which may not see the server's paths)."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    from sparktf import fs
    from sparktf.spark.output import staged_output

    partition_by = columns_arg(args.partition_by)
    if args.output_format == "tfrecord":
        sparktf.write_tfrecords(df, args.output, mode=args.mode, partition_by=partition_by)
        return None if on_server else _count(args.output, args.output_format)
    if args.output_format == "parquet" and fs.is_remote(args.output):
        from sparktf.spark.parquet_out import write_parquet

        write_parquet(df, args.output, overwrite=args.mode == "overwrite",
                      partition_by=partition_by)
        return None if on_server else _count(args.output, args.output_format)
    if args.output_format == "csv":
        from pyspark.sql.types import ArrayType

        df = df.select([
            F.to_json(F.col(f"`{f.name}`")).alias(f.name) if isinstance(f.dataType, ArrayType)
            else F.col(f"`{f.name}`") for f in df.schema.fields
        ])
    rows = Observation("sparktf-rows")  # counted as the job runs (locally: and in the files)
    df = df.observe(rows, F.count(F.lit(1)).alias("rows"))
    writer = df.write.format(args.output_format).partitionBy(*partition_by)
    if args.output_format == "csv":
        writer = writer.option("header", "true")
    if on_server:  # the server's path, written there
        writer.mode("overwrite" if args.mode == "overwrite" else "error").save(args.output)
        return int(rows.get["rows"])
    if fs.is_remote(args.output):  # the connector's own protocol
        writer.mode("overwrite" if args.mode == "overwrite" else "error").save(args.output)
        return _count(args.output, args.output_format)
    with staged_output(args.output, overwrite=args.mode == "overwrite") as staging:
        writer.mode("error").save(staging)
        return _check_visible(staging, args, int(rows.get["rows"]))


def _check_visible(staging: str, args: argparse.Namespace, written: int) -> int:
    """Refuse a result whose files the driver does not see: executors on other hosts write
    ``--output`` on their own disks when it is not shared, and Spark's commit then publishes
    an empty folder."""
    visible = _count(staging, args.output_format)
    if visible != written:
        raise SparkTFError(
            f"--output {args.output}: the executors wrote {written} rows but the driver's "
            f"host sees {visible}: executors on other hosts write their part files "
            "themselves, so --output must be a folder every host sees at the same path (a "
            "shared filesystem) or remote storage")
    return visible


def _count(path: str, output_format: str) -> int:
    """Rows in the output folder ``path`` (its partition directories included), read off
    its files (no Spark job): the manifest's counts on an object store, else the part
    files."""
    from sparktf import fs, manifest

    entries = manifest.read(path) if fs.is_remote(path) else None
    if entries is not None and all(e.records is not None for e in entries):
        return sum(int(e.records or 0) for e in entries)
    parts = [fs.child(path, n) for n, _ in fs.walk(path)
             if n.rsplit("/", 1)[-1].startswith("part-")
             and not any(fs.is_hidden(p) for p in n.split("/"))]
    if output_format == "parquet":
        import pyarrow.parquet as pq

        where = [fs.parse(p) for p in parts]
        return sum(pq.read_metadata(w.path, filesystem=w.filesystem()).num_rows for w in where)
    if output_format == "tfrecord":
        from sparktf.tfrecord.framing import resolve_compression, scan_records

        return sum(1 for p in parts for _ in scan_records(p, resolve_compression(p, None)))
    header = 1 if output_format == "csv" else 0
    total = 0
    for part in parts:
        with fs.open_input(part) as handle:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
        total += max(lines - header, 0)
    return total


def columns_arg(value: str) -> list[str]:
    """A comma-separated list of column names (``--keep_columns``, ``--partition_by``)."""
    return [c.strip() for c in value.split(",") if c.strip()]


def check_partition_by(partition_by: list[str], columns: list[str]) -> None:
    """``--partition_by`` names output columns, and leaves one for the files."""
    from sparktf.errors import close_matches

    for name in partition_by:
        if name not in columns:
            raise UsageError(f"--partition_by: {name!r} is not an output column (the mapped "
                             f"outputs and --keep_columns); {close_matches(name, columns)}")
    if partition_by and set(partition_by) >= set(columns):
        raise UsageError("--partition_by names every output column; nothing is left for the "
                         "files")
