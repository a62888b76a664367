"""``sparktf convert``: TFRecord files to a Parquet dataset, written by Spark's Python tasks
with pyarrow (:func:`sparktf.tfrecords_to_parquet`)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from sparktf.cli.main import UsageError
from sparktf.cli.output import columns_arg
from sparktf.errors import SchemaError

CODECS = ("none", "uncompressed", "snappy", "gzip", "brotli", "lz4", "zstd")

EXAMPLES = """examples:
  sparktf convert --input mnist/tfr --output mnist/parquet
  sparktf convert --input 'logs/day=*' --output s3://bucket/logs.parquet \\
      --schema_hint 'image binary' --partition_by day --codec zstd --mode overwrite
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "convert",
        help="convert TFRecord files to Parquet with Spark",
        description="Read TFRecord files (as read_tfrecords reads them: packed into tasks, "
        "key=value/ directories as columns) and write them as a Parquet dataset; each task "
        "writes its own files with pyarrow, and the job commits them at once (_SUCCESS "
        "last, nothing visible on failure).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--input", required=True, nargs="+",
                   help="TFRecord file(s), directory or glob")
    p.add_argument("--output", required=True, help="the Parquet folder (a path or a URL)")
    p.add_argument("--schema_hint", help="DDL or struct<...> of some or all columns")
    p.add_argument("--record_type", default="Example",
                   choices=("Example", "SequenceExample", "ByteArray"))
    p.add_argument("--compression", default=None, choices=("none", "gzip", "zlib"),
                   help="input compression (default: gzip detected, else none)")
    p.add_argument("--codec", default=None, choices=CODECS,
                   help="Parquet compression (default: the session's "
                   "spark.sql.parquet.compression.codec, snappy)")
    p.add_argument("--partition_by", default="", metavar="COL[,COL]",
                   help="write these columns as key=value/ directories (Hive style)")
    p.add_argument("--mode", choices=("errorifexists", "overwrite", "ignore"),
                   default="errorifexists")
    p.add_argument("--master", help="Spark master (default local[*] outside spark-submit)")
    p.add_argument("--remote", default=os.environ.get("SPARK_REMOTE") or None,
                   metavar="sc://HOST:PORT",
                   help="run on a Spark Connect server (default: $SPARK_REMOTE); input and "
                   "output are paths on the server")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                   help="Spark configuration, repeatable")
    p.add_argument("--verbose", action="store_true", help="Spark's INFO logging")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``sparktf convert``; returns 0, or raises a SparkTFError."""
    from pyspark.sql import SparkSession

    from sparktf.cli.infer import Starting, confs_arg, under_spark_submit
    from sparktf.spark.errors import reraise

    confs = confs_arg(args.conf)
    partition_by = columns_arg(args.partition_by)
    _check_paths(args)
    if args.remote and args.master:
        raise UsageError("--master and --remote (or SPARK_REMOTE) exclude each other; "
                         "a Spark Connect server has its own master")
    if args.remote:
        from sparktf.cli.remote import check_reachable

        check_reachable(args.remote)
    started = time.perf_counter()
    joined = SparkSession.getActiveSession() is not None or under_spark_submit()
    if args.remote:
        from sparktf.cli.infer import spark_session

        with reraise(f"connecting to --remote {args.remote}"):
            spark = spark_session(None, confs, verbose=False, remote=args.remote,
                                  app="sparktf convert")
    else:
        starting = Starting(args.master, confs, args.verbose and not joined,
                            app="sparktf convert")
        with reraise(f"starting Spark (master {args.master or 'local[*]'})"):
            spark = starting.session()
    try:
        return _convert(spark, args, partition_by, started)
    finally:
        if not joined:
            spark.stop()


def _convert(spark: Any, args: argparse.Namespace, partition_by: list[str],
             started: float) -> int:
    from sparktf.spark.convert import tfrecords_to_parquet

    inputs = args.input if len(args.input) > 1 else args.input[0]
    job = time.perf_counter()
    try:
        records = tfrecords_to_parquet(
            spark, inputs, args.output, mode=args.mode, schema_hint=args.schema_hint,
            partition_by=partition_by, codec=args.codec, record_type=args.record_type,
            compression=args.compression)
    except SchemaError as exc:
        flag = "--partition_by" if str(exc).startswith("partition column") else "--schema_hint"
        raise UsageError(f"{flag}: {exc}") from None
    now = time.perf_counter()
    print(f"sparktf convert: {records} records in {now - started:.1f} s (the job "
          f"{now - job:.1f} s, {records / max(now - job, 1e-9):,.0f} records/s) -> "
          f"{args.output}", file=sys.stderr, flush=True)
    return 0


def _check_paths(args: argparse.Namespace) -> None:
    from sparktf import fs
    from sparktf.errors import StorageError

    for flag, values in (("--input", args.input), ("--output", [args.output])):
        for value in values:
            try:
                fs.parse(value)
            except StorageError as exc:
                raise UsageError(f"{flag}: {exc}") from None
