"""``sparktf infer``: score TFRecords with a SavedModel on Spark and write the predictions."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any

from sparktf.cli.main import UsageError, mapping_arg
from sparktf.errors import SchemaError
from sparktf.spark.compat import set_log_level
from sparktf.spark.session import JAVA_OPTION_KEYS, merge_java_options

log = logging.getLogger(__name__)

FORMATS = ("json", "parquet", "csv", "tfrecord")
EXAMPLES = """examples:
  # the TensorFlowOnSpark walk-through, fetching the hidden layer Relu as well
  sparktf infer --export_dir mnist_export --input mnist/tfr/test \\
      --schema_hint 'struct<image:array<float>,label:array<float>>' \\
      --input_mapping '{"image": "x", "label": "y_"}' \\
      --output_mapping '{"prediction": "prediction", "Relu": "features"}' \\
      --output predictions --verbose

  # signature aliases of a TF2 SavedModel, Parquet out, keep the label column
  sparktf infer --export_dir model --signature_def_key serving_default --input data/ \\
      --input_mapping '{"image": "img"}' --output_mapping '{"pred": "prediction"}' \\
      --keep_columns label --output_format parquet --output out --mode overwrite
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "infer",
        help="run a SavedModel over TFRecord files with Spark",
        description="Read TFRecords, map columns to model tensors, run the model on every "
        "record in parallel, and write the mapped outputs.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--export_dir", required=True, help="SavedModel directory")
    p.add_argument("--input", required=True, nargs="+",
                   help="TFRecord file(s), directory or glob")
    p.add_argument("--schema_hint", help="Spark simpleString, e.g. 'struct<image:array<float>>'")
    p.add_argument("--input_mapping", required=True,
                   help="JSON {column: tensor} (inline or a file)")
    p.add_argument("--output_mapping", required=True,
                   help="JSON {tensor: column} (inline or a file)")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--verbose", action="store_true",
                   help="print the input DataFrame's show() and printSchema()")
    p.add_argument("--tag_set", default="serve", help="SavedModel tag set (default: serve)")
    p.add_argument("--signature_def_key",
                   help="use this signature's aliases instead of graph tensor names")
    p.add_argument("--batch_size", type=int, default=1024, help="rows per model call")
    p.add_argument("--output_format", choices=FORMATS, default="json")
    p.add_argument("--mode", choices=("errorifexists", "overwrite"), default="errorifexists")
    p.add_argument("--record_type", default="Example",
                   choices=("Example", "SequenceExample", "ByteArray"))
    p.add_argument("--compression", default=None, choices=("none", "gzip", "zlib"),
                   help="input compression (default: gzip detected, else none)")
    p.add_argument("--keep_columns", default="",
                   help="comma-separated input columns copied to the output (ids, labels)")
    p.add_argument("--no_fuse", action="store_true",
                   help="score through the general DataFrame path instead of reading and "
                   "scoring each file in one task (for comparison)")
    p.add_argument("--master", help="Spark master (default local[*] outside spark-submit)")
    p.add_argument("--remote", default=os.environ.get("SPARK_REMOTE") or None,
                   metavar="sc://HOST:PORT",
                   help="run on a Spark Connect server (default: $SPARK_REMOTE); input, "
                   "output and the model's directory are paths on the server, and the "
                   "model's directory is read here too for its metadata")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                   help="Spark configuration, repeatable")
    p.set_defaults(func=run)


def _confs(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--conf: expected KEY=VALUE, found {pair!r}")
        out[key.strip()] = value
    return out


def _under_spark_submit() -> bool:
    return "PYSPARK_GATEWAY_PORT" in os.environ or "SPARK_SUBMIT" in os.environ


def spark_session(master: str | None, confs: dict[str, str], *, verbose: bool,
                  remote: str | None = None) -> Any:
    """Start (or join, under spark-submit) the SparkSession for the job; with ``remote``,
    a Spark Connect client session (no master, JVM options or log level: the server's)."""
    from pyspark.sql import SparkSession

    if remote:
        builder = SparkSession.builder.remote(remote).appName("sparktf infer")
        for key, value in confs.items():  # session settings the server accepts
            builder = builder.config(key, value)
        return builder.getOrCreate()
    builder = SparkSession.builder.appName("sparktf infer")
    if master or not _under_spark_submit():
        builder = builder.master(master or "local[*]")
    if (master or "local").startswith("local"):
        builder = builder.config("spark.driver.host", confs.pop("spark.driver.host", "127.0.0.1"))
        if "spark.pyspark.python" not in confs:
            # local workers run this interpreter (the one with sparktf and TensorFlow), not
            # whatever `python3` is first on the PATH
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = builder.config("spark.ui.showConsoleProgress", "true")
    for key in JAVA_OPTION_KEYS:  # Arrow's checks off, after the user's own JVM options
        confs[key] = merge_java_options(confs.get(key, ""))
    for key, value in confs.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    set_log_level(spark, "INFO" if verbose else "ERROR")
    return spark


def _check_output(path: str, mode: str) -> None:
    from sparktf.errors import SparkTFError
    from sparktf.spark.commit import visible_entries

    if mode == "errorifexists" and visible_entries(path):
        raise SparkTFError(
            f"--output {path} already exists; choose another path or pass --mode overwrite"
        )


def _write(df: Any, args: argparse.Namespace) -> None:
    import sparktf

    if args.output_format == "tfrecord":
        sparktf.write_tfrecords(df, args.output, mode=args.mode)
        return
    if args.output_format == "csv":
        from pyspark.sql import functions as F
        from pyspark.sql.types import ArrayType

        df = df.select([
            F.to_json(F.col(f"`{f.name}`")).alias(f.name) if isinstance(f.dataType, ArrayType)
            else F.col(f"`{f.name}`") for f in df.schema.fields
        ])
    writer = df.write.mode(args.mode).format(args.output_format)
    if args.output_format == "csv":
        writer = writer.option("header", "true")
    writer.save(args.output)


def _count(args: argparse.Namespace) -> int:
    """Rows written, read off the committed files (no Spark job)."""
    from pathlib import Path

    out = Path(args.output)
    if args.output_format == "parquet":
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(p).metadata.num_rows for p in out.glob("part-*.parquet"))
    if args.output_format == "tfrecord":
        from sparktf.tfrecord.framing import resolve_compression, scan_records

        return sum(1 for p in out.glob("part-*") for _ in scan_records(
            str(p), resolve_compression(str(p), None)))
    header = 1 if args.output_format == "csv" else 0
    total = 0
    for part in out.glob("part-*"):
        with open(part, "rb") as handle:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
        total += max(lines - header, 0)
    return total


def run(args: argparse.Namespace) -> int:
    """Run ``sparktf infer``; returns 0, or raises a SparkTFError."""
    input_mapping = mapping_arg(args.input_mapping, flag="--input_mapping")
    output_mapping = mapping_arg(args.output_mapping, flag="--output_mapping")
    if args.batch_size <= 0:
        raise UsageError(f"--batch_size: expected a positive integer, found {args.batch_size}")
    keep = [c.strip() for c in args.keep_columns.split(",") if c.strip()]
    confs = _confs(args.conf)
    if args.remote and args.master:
        raise UsageError("--master and --remote (or SPARK_REMOTE) exclude each other; "
                         "a Spark Connect server has its own master")
    if args.remote:
        from sparktf.cli.remote import run_remote

        return run_remote(args, input_mapping, output_mapping, keep, confs)
    _check_output(args.output, args.mode)
    started = time.perf_counter()
    from sparktf._tf import warm_up

    warm_up()  # import TensorFlow (model metadata, inference) while the JVM starts
    from pyspark.sql import SparkSession

    joined = SparkSession.getActiveSession() is not None or _under_spark_submit()
    spark = spark_session(args.master, confs, verbose=args.verbose)
    try:
        return _infer(spark, args, input_mapping, output_mapping, keep, started)
    finally:
        if not joined:  # stop only a session this command started
            spark.stop()


def _infer(spark: Any, args: argparse.Namespace, input_mapping: dict[str, str],
           output_mapping: dict[str, str], keep: list[str], started: float) -> int:
    import sparktf
    from sparktf.spark.errors import reraise

    try:
        hint = (sparktf.parse_schema_hint(spark, args.schema_hint, record_type=args.record_type)
                if args.schema_hint else None)
    except SchemaError as exc:
        raise UsageError(f"--schema_hint: {exc}") from None
    inputs = args.input if len(args.input) > 1 else args.input[0]
    options = {"recordType": args.record_type, "compression": args.compression}
    with reraise():
        if args.no_fuse:
            df = sparktf.read_tfrecords(spark, inputs, schema_hint=hint, **options)
        else:  # the fused path reads the files itself: no data source to set up
            from sparktf.spark.api import scan_tfrecords

            df = scan_tfrecords(spark, inputs, schema_hint=hint, **options)
        if args.verbose:
            df.show()
            df.printSchema()
            sys.stdout.flush()
        model = sparktf.TFModel(
            exportDir=args.export_dir, tagSet=args.tag_set,
            signatureDefKey=args.signature_def_key, inputMapping=input_mapping,
            outputMapping=output_mapping, batchSize=args.batch_size, passthroughColumns=keep,
            fuseScan=not args.no_fuse,
        )
        _write(model.transform(df), args)
    rows = _count(args)
    seconds = time.perf_counter() - started
    print(f"sparktf infer: {rows} rows in {seconds:.1f} s -> {args.output}", file=sys.stderr,
          flush=True)
    return 0
