"""Driver-side API: register the data source, read and write TFRecords with save modes."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from pyspark.sql.types import StructType

from sparktf.errors import SchemaError, TFRecordError
from sparktf.spark import commit, scans
from sparktf.spark.compat import is_connect
from sparktf.spark.errors import reraise

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SAVE_MODES = ("errorifexists", "error", "overwrite", "append", "ignore")
_registered: weakref.WeakSet[Any] = weakref.WeakSet()
_ALIASES = {
    "record_type": "recordType",
    "schema_hint": "schemaHint",
    "sample_records": "sampleRecords",
    "batch_size": "batchSize",
    "ignore_corrupt_files": "ignoreCorruptFiles",
    "ignore_corrupt_records": "ignoreCorruptRecords",
}


def register(spark: SparkSession) -> None:
    """Register the ``tfrecord`` data source with ``spark`` (once per session).

    Examples
    --------
    >>> import sparktf
    >>> sparktf.register(spark)  # doctest: +SKIP
    >>> spark.read.format("tfrecord").load("data/train")  # doctest: +SKIP
    """
    if spark in _registered:
        return
    from sparktf.spark.datasource import TFRecordDataSource

    spark.dataSource.register(TFRecordDataSource)
    _registered.add(spark)


def parse_schema_hint(
    spark: SparkSession, hint: str | StructType, *, record_type: str = "Example"
) -> StructType:
    """Parse a schema hint with Spark's own parser (``simpleString`` or DDL).

    Examples
    --------
    >>> parse_schema_hint(spark, "struct<image:array<float>,label:bigint>")  # doctest: +SKIP
    StructType([StructField('image', ArrayType(FloatType(), True), True), ...])
    """
    from pyspark.sql.types import _parse_datatype_string

    from sparktf.tfrecord.types import columns_of

    if isinstance(hint, StructType):
        schema = hint
    else:
        try:
            schema = _parse_datatype_string(hint)
        except Exception as exc:  # Spark's ParseException and friends
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SchemaError(f"schema hint {hint!r} is malformed: {first}") from None
        if not isinstance(schema, StructType):
            raise SchemaError(
                f"schema hint {hint!r}: expected a struct such as "
                f"'struct<image:array<float>,label:bigint>', found {schema.simpleString()}"
            )
    if record_type != "ByteArray":
        columns_of(schema, record_type)
    return schema


def _options(options: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in options.items():
        if value is None:
            continue
        out[_ALIASES.get(key, key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def read_tfrecords(
    spark: SparkSession,
    path: str | list[str],
    schema_hint: str | StructType | None = None,
    **options: Any,
) -> DataFrame:
    """Read TFRecord files (file, directory, glob or list) into a DataFrame.

    Parameters
    ----------
    spark : SparkSession
    path : str or list of str
    schema_hint : str or StructType, optional
        Partial or full schema in Spark's ``simpleString``/DDL form; fields not named are
        inferred from a sample of records.
    **options
        Data source options such as ``recordType``, ``compression``, ``sampleRecords``,
        ``ignoreCorruptRecords`` (snake_case accepted too).

    Examples
    --------
    >>> df = read_tfrecords(spark, "mnist/tfr/test",
    ...                     schema_hint="struct<image:array<float>,label:array<float>>")
    ... # doctest: +SKIP
    """
    from sparktf.model.fused import FileScan

    register(spark)
    target, files, settings, schema, opts = _plan_scan(spark, path, schema_hint, options)
    scan_id = scans.new_scan_id()
    schema = scans.mark(schema, scan_id)
    with reraise():
        df = spark.read.format("tfrecord").options(**opts).schema(schema).load(target)
    scans.remember(scan_id, df, FileScan(tuple(files), schema.json(), settings))
    return df


def scan_tfrecords(
    spark: SparkSession, path: str | list[str], schema_hint: str | StructType | None = None,
    **options: Any,
) -> DataFrame:
    """The rows of :func:`read_tfrecords`, without the data source: a ``spark.range`` of
    file indices mapped by the same reader (one task per file).

    For ``sparktf infer``, whose input the fused path scores straight from the files (this
    DataFrame is read only by ``--verbose``'s ``show()``): it skips registering the data
    source and the planning process Spark starts for a Python data source (about 3 s of a
    short job on 2 cores).
    """
    _, files, settings, schema, _ = _plan_scan(spark, path, schema_hint, options)
    return scan_files(spark, files, schema, settings)


def scan_files(spark: SparkSession, files: list[str], schema: StructType,
               settings: Any) -> DataFrame:
    """:func:`scan_tfrecords` of files already listed, with their schema (planned on a
    Spark Connect server by ``sparktf infer --remote``)."""
    import functools

    from sparktf.model.fused import FileScan, read_files

    scan_id = scans.new_scan_id()
    schema = scans.mark(schema, scan_id)
    scan = FileScan(files=tuple(files), schema_json=schema.json(), settings=settings)
    fn = functools.partial(read_files, scan=scan)
    df = spark.range(0, len(files), 1, max(1, len(files))).mapInArrow(fn, schema)
    scans.remember(scan_id, df, scan)
    return df


def _plan_scan(
    spark: SparkSession, path: str | list[str], schema_hint: str | StructType | None,
    options: dict[str, Any],
) -> tuple[Any, list[str], Any, StructType, dict[str, str]]:
    """Options, files and schema of a scan: inferred here on a classic driver (the planning
    worker would import TensorFlow just for this); from a Spark Connect client, where the
    paths are the server's, by a one-task job on the server (:func:`_plan_on_server`)."""
    opts = _options(options)
    from sparktf.spark.datasource import _positive, reader_settings
    from sparktf.tfrecord.framing import list_data_files
    from sparktf.tfrecord.infer import resolve_schema

    settings = reader_settings(opts)  # checks recordType and the numbers up front
    hint = None
    if schema_hint is not None:
        hint = parse_schema_hint(spark, schema_hint, record_type=settings.record_type)
    target: Any = [str(p) for p in path] if isinstance(path, (list, tuple)) else str(path)
    sample = _positive(opts, "sampleRecords", 1000)
    if is_connect(spark):
        files, schema = _plan_on_server(spark, target, record_type=settings.record_type,
                                        compression=opts.get("compression"), hint=hint,
                                        sample_records=sample)
        return target, files, settings, schema, opts
    files = list_data_files(target)
    schema = resolve_schema(files, record_type=settings.record_type,
                            compression=opts.get("compression"), hint=hint,
                            sample_records=sample)
    return target, files, settings, schema, opts


def _plan_on_server(spark: SparkSession, target: Any, *, record_type: str,
                    compression: str | None, hint: StructType | None,
                    sample_records: int) -> tuple[list[str], StructType]:
    """The files of ``target`` and their schema, listed and sampled by a one-task Spark job
    (:func:`sparktf.model.fused.plan_scan`) where the server's tasks run."""
    import functools
    import json

    from sparktf.model.fused import PLAN_SCHEMA, plan_scan

    fn = functools.partial(plan_scan, paths=target, record_type=record_type,
                           compression=compression, sample_records=sample_records,
                           hint_json=hint.json() if hint is not None else None)
    with reraise():
        row = spark.range(0, 1, 1, 1).mapInArrow(fn, PLAN_SCHEMA).first()
    return list(row.files), StructType.fromJson(json.loads(row.schema))


def write_tfrecords(
    df: DataFrame,
    path: str,
    *,
    mode: str = "errorifexists",
    record_type: str = "Example",
    compression: str = "none",
    **options: Any,
) -> None:
    """Write ``df`` as TFRecord files under the directory ``path``.

    ``mode`` is ``errorifexists`` (default), ``overwrite``, ``append`` or ``ignore``. The
    files appear together with ``_SUCCESS`` when the job commits; a failed job leaves an
    existing output untouched.

    Examples
    --------
    >>> write_tfrecords(df, "out/train", mode="overwrite", compression="gzip")  # doctest: +SKIP
    """
    import os

    spark = df.sparkSession
    register(spark)
    mode = mode.lower()
    if mode not in SAVE_MODES:
        raise TFRecordError(f"mode: expected one of {', '.join(SAVE_MODES)}, found {mode!r}")
    target = path[len("file:"):].removeprefix("//") if path.startswith("file:") else path
    if is_connect(spark):  # the path is the server's: look at it there
        from sparktf.spark.serverside import output_state, run_on_server

        state = run_on_server(spark, output_state, path=target)
    else:
        state = {"entries": len(commit.visible_entries(target)),
                 "not_a_directory": os.path.exists(target) and not os.path.isdir(target)}
    if state["entries"] and mode in ("errorifexists", "error"):
        raise TFRecordError(
            f"output path {path} already exists ({state['entries']} entries); "
            "use mode='overwrite' or mode='append'"
        )
    if state["entries"] and mode == "ignore":
        return
    if state["not_a_directory"]:
        raise TFRecordError(f"output path {path} exists and is not a directory")
    opts = _options({"recordType": record_type, "compression": compression, **options})
    writer = df.write.format("tfrecord").options(**opts)
    with reraise():
        writer.mode("overwrite" if mode == "overwrite" else "append").save(target)
