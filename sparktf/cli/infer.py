"""``sparktf infer``: score TFRecords with a SavedModel on Spark and write the predictions."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import sparktf
from sparktf.cli.inspect import add_import_flag, import_modules
from sparktf.cli.main import UsageError, mapping_arg
from sparktf.cli.output import check_connector, check_partition_by, columns_arg, write_output
from sparktf.errors import SchemaError
from sparktf.spark.compat import set_log_level
from sparktf.spark.session import (
    DAEMON,
    JAVA_OPTION_KEYS,
    LOCAL_JOB_JAVA_OPTIONS,
    merge_java_options,
)

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
    p.add_argument("--export_dir", required=True,
                   help="a SavedModel directory, a .keras file or an MLflow model URI "
                   "(models:/name/3, models:/name@alias, runs:/<run_id>/model)")
    add_import_flag(p)
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
    p.add_argument("--partition_by", default="", metavar="COL[,COL]",
                   help="write these output columns as key=value/ directories (Hive style) "
                   "instead of in the files; --mode overwrite replaces only the directories "
                   "written with --conf spark.sql.sources.partitionOverwriteMode=dynamic")
    p.add_argument("--no_fuse", action="store_true",
                   help="score through the general DataFrame path instead of reading and "
                   "scoring each file in one task (for comparison)")
    p.add_argument("--ship_model", action="store_true",
                   help="copy a driver-local --export_dir to every executor (Spark's file "
                   "distribution), for executors on other hosts that cannot read it")
    p.add_argument("--gpus_per_task", type=float, metavar="N",
                   help="GPUs each task holds (spark.task.resource.gpu.amount; the "
                   "executors' GPUs are set with --conf spark.executor.resource.gpu.amount): "
                   "each task's model runs on its GPU")
    p.add_argument("--master", help="Spark master (default local[*] outside spark-submit)")
    p.add_argument("--remote", default=os.environ.get("SPARK_REMOTE") or None,
                   metavar="sc://HOST:PORT",
                   help="run on a Spark Connect server (default: $SPARK_REMOTE); input, "
                   "output and the model's directory are paths on the server, and the "
                   "model's directory is read here too for its metadata")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                   help="Spark configuration, repeatable")
    p.set_defaults(func=run)


def confs_arg(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--conf: expected KEY=VALUE, found {pair!r}")
        out[key.strip()] = value
    return out


def under_spark_submit() -> bool:
    return "PYSPARK_GATEWAY_PORT" in os.environ or "SPARK_SUBMIT" in os.environ


QUIET_LOG4J = Path(__file__).with_name("log4j2.properties")


def spark_session(master: str | None, confs: dict[str, str], *, verbose: bool,
                  remote: str | None = None, app: str = "sparktf infer") -> Any:
    """Start (or join, under spark-submit) the SparkSession for the job; with ``remote``,
    a Spark Connect client session (no master, JVM options or log level: the server's).

    A local master binds to 127.0.0.1 (no loopback-hostname warning). The JVM this starts
    logs nothing below FATAL to the console (``log4j2.properties`` beside this module:
    sparktf reports errors in one line of its own) unless ``verbose`` (Spark's own logging at
    INFO), and Spark's progress bar is drawn only when stderr is a terminal.
    """
    from pyspark.sql import SparkSession

    if remote:
        builder = SparkSession.builder.remote(remote).appName(app)
        for key, value in confs.items():  # session settings the server accepts
            builder = builder.config(key, value)
        return builder.getOrCreate()
    builder = SparkSession.builder.appName(app)
    local = (master or ("" if under_spark_submit() else "local")).startswith("local")
    if master or not under_spark_submit():
        builder = builder.master(master or "local[*]")
    if "spark.pyspark.python" in confs:
        # as spark-submit does: PySpark takes the workers' interpreter from this variable
        os.environ["PYSPARK_PYTHON"] = confs["spark.pyspark.python"]
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.host", confs.pop("spark.driver.host", "127.0.0.1"))
        if "spark.pyspark.python" not in confs:
            # local workers run this interpreter (the one with sparktf and TensorFlow), not
            # whatever `python3` is first on the PATH
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    confs.setdefault("spark.ui.showConsoleProgress", str(sys.stderr.isatty()).lower())
    confs.setdefault("spark.executorEnv.TF_CPP_MIN_LOG_LEVEL", "2")
    confs.setdefault(*DAEMON)
    for key in JAVA_OPTION_KEYS:  # Arrow's checks off, after the user's own JVM options
        confs[key] = merge_java_options(confs.get(key, ""))
    driver = confs[JAVA_OPTION_KEYS[0]]
    if local:
        driver = confs[JAVA_OPTION_KEYS[0]] = merge_java_options(driver, LOCAL_JOB_JAVA_OPTIONS)
    if not verbose and "log4j2.configurationFile" not in driver:
        confs[JAVA_OPTION_KEYS[0]] = f"{driver} -Dlog4j2.configurationFile=file:{QUIET_LOG4J}"
    for key, value in confs.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if verbose:
        set_log_level(spark, "INFO")
    return spark


def _check_paths(args: argparse.Namespace) -> None:
    """Every path flag parses (a malformed URL or unknown scheme is a usage error)."""
    from sparktf import fs
    from sparktf.errors import StorageError
    from sparktf.model.mlflow_source import is_mlflow_uri

    model = [] if is_mlflow_uri(args.export_dir) else [args.export_dir]
    for flag, values in (("--input", args.input), ("--output", [args.output]),
                         ("--export_dir", model)):
        for value in values:
            try:
                fs.parse(value)
            except StorageError as exc:
                raise UsageError(f"{flag}: {exc}") from None


def _gpu_confs(args: argparse.Namespace, confs: dict[str, str]) -> None:
    """``--gpus_per_task N``: ``spark.task.resource.gpu.amount`` (a ``--conf`` of it wins);
    refused with a local master, which schedules no GPUs."""
    if args.gpus_per_task is None:
        return
    if args.gpus_per_task <= 0:
        raise UsageError(f"--gpus_per_task: expected a positive number, found "
                         f"{args.gpus_per_task:g}")
    local = (args.master or "").startswith("local") or not (
        args.master or args.remote or under_spark_submit())
    if local:
        raise UsageError("--gpus_per_task: a local master schedules no GPUs; use a cluster "
                         "(--master spark://..., spark-submit on YARN or Kubernetes) whose "
                         "executors have GPUs (spark.executor.resource.gpu.amount)")
    confs.setdefault("spark.task.resource.gpu.amount", f"{args.gpus_per_task:g}")


def run(args: argparse.Namespace) -> int:
    """Run ``sparktf infer``; returns 0, or raises a SparkTFError."""
    from pyspark.sql import SparkSession

    from sparktf.spark.api import plan_scan
    from sparktf.spark.output import check_output

    input_mapping = mapping_arg(args.input_mapping, flag="--input_mapping")
    output_mapping = mapping_arg(args.output_mapping, flag="--output_mapping")
    if args.batch_size <= 0:
        raise UsageError(f"--batch_size: expected a positive integer, found {args.batch_size}")
    keep = columns_arg(args.keep_columns)
    check_partition_by(columns_arg(args.partition_by), [*keep, *output_mapping.values()])
    confs = confs_arg(args.conf)
    _gpu_confs(args, confs)
    _check_paths(args)
    import_modules(args.imports)
    if args.remote and args.master:
        raise UsageError("--master and --remote (or SPARK_REMOTE) exclude each other; "
                         "a Spark Connect server has its own master")
    if args.remote:
        from sparktf.cli.remote import run_remote

        return run_remote(args, input_mapping, output_mapping, keep, confs)
    check_output(args.output, overwrite=args.mode == "overwrite", flag="--output")
    started = time.perf_counter()
    joined = SparkSession.getActiveSession() is not None or under_spark_submit()
    # the JVM starts meanwhile; a joined session keeps its own log level
    starting = Starting(args.master, confs, args.verbose and not joined)
    try:
        inputs = args.input if len(args.input) > 1 else args.input[0]
        try:
            scan = plan_scan(inputs, args.schema_hint,
                             {"record_type": args.record_type, "compression": args.compression})
        except SchemaError as exc:
            raise UsageError(f"--schema_hint: {exc}") from None
        model = sparktf.TFModel(
            exportDir=args.export_dir, tagSet=args.tag_set,
            signatureDefKey=args.signature_def_key, inputMapping=input_mapping,
            outputMapping=output_mapping, batchSize=args.batch_size, passthroughColumns=keep,
            fuseScan=not args.no_fuse, shipModel=args.ship_model,
        )
        model.check_names(scan.columns)  # model and mapping mistakes, before any Spark job
        from sparktf.spark.errors import reraise

        with reraise(f"starting Spark (master {args.master or 'local[*]'})"):
            spark = starting.session()
    except BaseException:
        starting.abandon(joined)
        raise
    try:
        return _infer(spark, args, scan, model, started)
    finally:
        if not joined:  # stop only a session this command started
            spark.stop()


class Starting:
    """The SparkSession, started in a thread while the driver checks the input and model."""

    def __init__(self, master: str | None, confs: dict[str, str], verbose: bool,
                 app: str = "sparktf infer") -> None:
        self._result: list[Any] = []
        self._thread = threading.Thread(target=self._start, args=(master, confs, verbose, app),
                                        name="sparktf-spark-start", daemon=True)
        self._thread.start()

    def _start(self, master: str | None, confs: dict[str, str], verbose: bool,
               app: str) -> None:
        try:
            self._result.append(spark_session(master, confs, verbose=verbose, app=app))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self._result.append(exc)

    def session(self) -> Any:
        """The started session, or the error that stopped it."""
        self._thread.join()
        if isinstance(self._result[0], BaseException):
            raise self._result[0]
        return self._result[0]

    def abandon(self, joined: bool) -> None:
        """The command failed before it needed Spark: do not wait for the JVM. A session
        still starting is left to the process's exit (``entry`` exits at once), one already
        started is stopped, unless the command joined an existing session."""
        if joined or self._thread.is_alive():
            return
        if self._result and not isinstance(self._result[0], BaseException):
            self._result[0].stop()


def _infer(spark: Any, args: argparse.Namespace, scan: Any, model: Any, started: float) -> int:
    from sparktf.spark.api import read_scan, scan_tfrecords
    from sparktf.spark.errors import reraise

    try:
        scan.schema(spark)  # the hint's types, parsed by Spark
    except SchemaError as exc:
        raise UsageError(f"--schema_hint: {exc}") from None
    check_connector(spark, args.output, args.output_format)
    with reraise(f"reading --input {' '.join(args.input)}"):
        if args.no_fuse:
            df = read_scan(spark, scan)
        else:  # the fused path reads the files itself: no data source to set up
            df = scan_tfrecords(spark, scan)
        if args.verbose:
            df.show()
            df.printSchema()
    with reraise(f"scoring with --export_dir {args.export_dir}"):
        scored = model.transform(df)
        if args.verbose:
            print("output:")
            scored.printSchema()
            sys.stdout.flush()
    job = time.perf_counter()
    with reraise(f"writing --output {args.output} as {args.output_format}"):
        rows = write_output(scored, args)
    now = time.perf_counter()
    print(f"sparktf infer: {rows} rows in {now - started:.1f} s (the job {now - job:.1f} s, "
          f"{rows / max(now - job, 1e-9):,.0f} rows/s) -> {args.output}", file=sys.stderr,
          flush=True)
    return 0
