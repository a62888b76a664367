"""``sparktf infer --remote sc://HOST:PORT``: the job on a Spark Connect server.

Everything that touches the input, the output or their folders runs on the server, through
Spark: a one-task job lists and samples the input there
(:func:`sparktf.spark.api.planned_scan`), the
fused path reads and scores the files in the server's tasks, Spark's writers write, the
output check is a one-task job (:mod:`sparktf.spark.serverside`), and the rows are counted
as the write runs (an observation; where sparktf's own writer wrote, by a Spark read
there). The client reads only its arguments and the model's metadata (``--export_dir``
must be readable here as well as on the server's workers).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from typing import Any

from sparktf.cli.main import UsageError
from sparktf.errors import SparkTFError


def count_on_server(spark: Any, args: argparse.Namespace) -> int:
    """Rows written, counted by a Spark read of the output on the server."""
    reader = spark.read.format(args.output_format)
    if args.output_format == "tfrecord":
        reader = reader.option("recordType", "ByteArray")  # no schema to infer
    elif args.output_format == "csv":
        reader = reader.option("header", "true")
    return int(reader.load(args.output).count())


def check_reachable(url: str, timeout: float = 10.0) -> None:
    """Fail at once, in one line, when nothing listens at the server of ``url`` (PySpark's
    Connect client retries a refused connection for minutes)."""
    import re
    import socket

    from sparktf.errors import redact

    match = re.match(r"sc://\[?([^\]/:;]+)\]?(?::(\d+))?", url)
    if match is None:
        raise UsageError(f"--remote {redact(url)}: expected sc://HOST:PORT")
    host, port = match.group(1), int(match.group(2) or 15002)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise SparkTFError(f"--remote {redact(url)}: cannot reach a Spark Connect server at "
                           f"{host}:{port} ({exc.strerror or exc})") from None


def run_remote(args: argparse.Namespace, input_mapping: dict[str, str],
               output_mapping: dict[str, str], keep: list[str], confs: dict[str, str]) -> int:
    """Run ``sparktf infer`` against the Spark Connect server ``args.remote``."""
    import sparktf
    from sparktf._tf import warm_up
    from sparktf.cli.infer import spark_session
    from sparktf.cli.output import write_output
    from sparktf.errors import SchemaError
    from sparktf.spark.api import planned_scan, read_scan, scan_tfrecords
    from sparktf.spark.errors import reraise
    from sparktf.spark.serverside import output_state, run_on_server

    started = time.perf_counter()
    check_reachable(args.remote)
    warm_up()  # TensorFlow for the model's metadata, imported while the server plans
    spark = spark_session(None, confs, verbose=args.verbose, remote=args.remote)
    try:
        with reraise(f"sparktf infer on {args.remote}, --output {args.output} as "
                     f"{args.output_format}"):
            if args.mode == "errorifexists" and run_on_server(
                    spark, output_state, path=args.output)["entries"]:
                raise SparkTFError(f"--output {args.output} already exists on the server; "
                                   "choose another path or pass --mode overwrite")
            inputs = args.input if len(args.input) > 1 else args.input[0]
            try:
                scan = planned_scan(spark, inputs, args.schema_hint,
                                    {"record_type": args.record_type,
                                     "compression": args.compression})
                scan.schema(spark)
            except SchemaError as exc:
                raise UsageError(f"--schema_hint: {exc}") from None
            df = read_scan(spark, scan) if args.no_fuse else scan_tfrecords(spark, scan)
            if args.verbose:
                df.show()
                df.printSchema()
                sys.stdout.flush()
            model = sparktf.TFModel(
                exportDir=args.export_dir, tagSet=args.tag_set,
                signatureDefKey=args.signature_def_key, inputMapping=input_mapping,
                outputMapping=output_mapping, batchSize=args.batch_size,
                passthroughColumns=keep, fuseScan=not args.no_fuse,
                shipModel=args.ship_model,
            )
            model.check_names(scan.columns)
            spark_args = copy.copy(args)
            if args.mode == "errorifexists":  # the name Spark Connect's writer accepts
                spark_args.mode = "error"
            rows = write_output(model.transform(df), spark_args, on_server=True)
            if rows is None:  # sparktf's own writer: counted by a read there
                rows = count_on_server(spark, args)
    finally:
        spark.stop()  # a client session: the server keeps running
    seconds = time.perf_counter() - started
    print(f"sparktf infer: {rows} rows in {seconds:.1f} s -> {args.output}", file=sys.stderr,
          flush=True)
    return 0
