"""``sparktf infer --remote sc://HOST:PORT``: the job on a Spark Connect server.

Everything that touches the input, the output or their folders runs on the server, through
Spark: the ``tfrecord`` data source lists and samples the input there, Spark's writers
write, and the output check and the row count are Spark reads. The client reads only its
arguments and the model's metadata (``--export_dir`` must be readable here as well as on
the server's workers). Reading goes through the data source, so scoring takes TFModel's
general path (``--no_fuse`` is implied).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from typing import Any

from sparktf.errors import SparkTFError


def exists_on_server(spark: Any, path: str) -> bool:
    """Whether ``path`` holds visible files on the server (``_SUCCESS`` and dot files
    do not count), read through Spark's ``binaryFile`` source."""
    try:
        return spark.read.format("binaryFile").load(path).limit(1).count() > 0
    except Exception as exc:  # Spark's AnalysisException: PATH_NOT_FOUND
        if "PATH_NOT_FOUND" in str(exc):
            return False
        raise


def read_on_server(spark: Any, args: argparse.Namespace) -> Any:
    """The input, listed, sampled and read by the ``tfrecord`` data source on the server."""
    import sparktf

    sparktf.register(spark)
    reader = spark.read.format("tfrecord").option("recordType", args.record_type)
    if args.compression:
        reader = reader.option("compression", args.compression)
    if args.schema_hint:  # as DDL: the data source takes it as the whole schema
        reader = reader.option("schemaHint", args.schema_hint)
    return reader.load(args.input if len(args.input) > 1 else args.input[0])


def count_on_server(spark: Any, args: argparse.Namespace) -> int:
    """Rows written, counted by a Spark read of the output on the server."""
    reader = spark.read.format(args.output_format)
    if args.output_format == "tfrecord":
        reader = reader.option("recordType", "ByteArray")  # no schema to infer
    elif args.output_format == "csv":
        reader = reader.option("header", "true")
    return int(reader.load(args.output).count())


def run_remote(args: argparse.Namespace, input_mapping: dict[str, str],
               output_mapping: dict[str, str], keep: list[str], confs: dict[str, str]) -> int:
    """Run ``sparktf infer`` against the Spark Connect server ``args.remote``."""
    import sparktf
    from sparktf.cli.infer import _write, spark_session
    from sparktf.spark.errors import reraise

    started = time.perf_counter()
    spark = spark_session(None, confs, verbose=args.verbose, remote=args.remote)
    try:
        with reraise():
            if args.mode == "errorifexists" and exists_on_server(spark, args.output):
                raise SparkTFError(f"--output {args.output} already exists on the server; "
                                   "choose another path or pass --mode overwrite")
            df = read_on_server(spark, args)
            if args.verbose:
                df.show()
                df.printSchema()
                sys.stdout.flush()
            model = sparktf.TFModel(
                exportDir=args.export_dir, tagSet=args.tag_set,
                signatureDefKey=args.signature_def_key, inputMapping=input_mapping,
                outputMapping=output_mapping, batchSize=args.batch_size,
                passthroughColumns=keep, fuseScan=False,
            )
            spark_args = copy.copy(args)
            if args.mode == "errorifexists":  # the name Spark Connect's writer accepts
                spark_args.mode = "error"
            _write(model.transform(df), spark_args)
            rows = count_on_server(spark, args)
    finally:
        spark.stop()  # a client session: the server keeps running
    seconds = time.perf_counter() - started
    print(f"sparktf infer: {rows} rows in {seconds:.1f} s -> {args.output}", file=sys.stderr,
          flush=True)
    return 0
