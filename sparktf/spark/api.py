"""Driver-side API: register the data source, read and write TFRecords with save modes."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark.sql.types import StructType

from sparktf.errors import SchemaError, TFRecordError
from sparktf.spark import commit, scans
from sparktf.spark.compat import is_connect, make_active
from sparktf.spark.errors import reraise
from sparktf.spark.hints import quoted_ddl
from sparktf.tfrecord.options import ReadSettings, WriteSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SAVE_MODES = ("errorifexists", "error", "overwrite", "append", "ignore")
_registered: weakref.WeakSet[Any] = weakref.WeakSet()


def register(spark: SparkSession) -> None:
    """Register the ``tfrecord`` data source with ``spark`` (once per session).

    Examples
    --------
    >>> import sparktf
    >>> sparktf.register(spark)
    >>> spark.read.format("tfrecord").load(examples).count()
    5
    """
    make_active(spark)  # the data source is looked up through this thread's session
    if spark in _registered:
        return
    from sparktf.spark.datasource import TFRecordDataSource

    spark.dataSource.register(TFRecordDataSource)
    _registered.add(spark)


def parse_schema_hint(
    spark: SparkSession, hint: str | StructType, *, record_type: str = "Example"
) -> StructType:
    """Parse a schema hint with Spark's own parser (DDL or ``struct<...>``), on the driver.

    Feature names need no backticks: ``image/encoded binary`` or
    ``struct<image/encoded:binary>`` name the feature ``image/encoded``. The columns are
    checked against what TFRecord can hold.

    Examples
    --------
    >>> parse_schema_hint(spark, "image/encoded binary, label: bigint").simpleString()
    'struct<image/encoded:binary,label:bigint>'
    """
    from sparktf.tfrecord.types import columns_of

    if isinstance(hint, StructType):
        schema = hint
    else:
        schema = _parse_ddl(spark, quoted_ddl(hint), shown=hint)
    if record_type != "ByteArray":
        columns_of(schema, record_type)
    return schema


def _parse_ddl(spark: SparkSession, ddl: str, *, shown: str) -> StructType:
    """``ddl`` parsed by Spark (public API on classic and Connect sessions)."""
    from pyspark.sql.types import DataType

    try:
        schema = DataType.fromDDL(ddl)  # Spark's parser, on the active session
    except Exception as exc:  # Spark's ParseException and friends
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SchemaError(f"schema hint {shown!r} is malformed: {first}") from None
    if not isinstance(schema, StructType):
        raise SchemaError(
            f"schema hint {shown!r}: expected fields such as 'image binary, label bigint', "
            f"found the type {schema.simpleString()}"
        )
    return schema


def _settings(schema_hint: str | StructType | None, options: dict[str, Any]) -> ReadSettings:
    if isinstance(schema_hint, StructType):
        schema_hint = schema_hint.json()
    return ReadSettings.from_options({**options, "schema_hint": schema_hint})


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
        Partial or full schema as DDL (``image/encoded binary, label bigint``) or
        ``struct<...>``; feature names need no backticks. Features not named are inferred
        from a sample of records (a bytes feature becomes ``binary`` when a sampled value is
        not UTF-8 text, else ``string``).
    **options
        The settings of :class:`~sparktf.tfrecord.options.ReadSettings`, camelCase or
        snake_case: ``record_type``, ``compression``, ``sample_records``, ``batch_size``,
        ``ignore_corrupt_files``, ``ignore_corrupt_records``. Unknown names are refused.

    Examples
    --------
    >>> df = read_tfrecords(spark, examples, schema_hint="vals array<double>")
    >>> df.columns
    ['vals', 'id', 'name', 'tags']
    """
    return read_scan(spark, planned_scan(spark, path, schema_hint, options))


def read_scan(spark: SparkSession, scan: ScanPlan) -> DataFrame:
    """The DataFrame of a planned scan, through the ``tfrecord`` data source, noted so that
    TFModel can recognise the scan by its plan (:mod:`sparktf.spark.scans`)."""
    from sparktf.model.fused import FileScan

    register(spark)
    schema = scan.schema(spark)
    opts = {k: v for k, v in scan.settings.to_options().items() if k != "schemaHint"}
    with reraise(f"reading TFRecords from {scan.target}"):
        df = spark.read.format("tfrecord").options(**opts).schema(schema).load(scan.target)
    scans.remember(df, FileScan(tuple(scan.files), schema.json(), scan.settings))
    return df


def scan_tfrecords(spark: SparkSession, scan: ScanPlan) -> DataFrame:
    """The rows of :func:`read_tfrecords`, without the data source: a ``spark.range`` of
    file indices mapped by the same reader (one task per file).

    For ``sparktf infer``, whose input the fused path scores straight from the files (this
    DataFrame is read only by ``--verbose``'s ``show()``): it skips registering the data
    source and the planning process Spark starts for a Python data source (about 3 s of a
    short job on 2 cores).
    """
    import functools

    from sparktf.model.fused import FileScan, read_files

    schema = scan.schema(spark)
    files = FileScan(files=tuple(scan.files), schema_json=schema.json(), settings=scan.settings)
    fn = functools.partial(read_files, scan=files)
    df = spark.range(0, len(scan.files), 1, max(1, len(scan.files))).mapInArrow(fn, schema)
    scans.remember(df, files)
    return df


@dataclass(frozen=True)
class ScanPlan:
    """A TFRecord scan planned on the driver without Spark: the files, the settings and the
    schema as DDL (the hint's fields, then the inferred ones)."""

    target: str | list[str]
    files: list[str]
    settings: ReadSettings
    ddl: str

    @property
    def columns(self) -> list[str]:
        """The column names, known before Spark parses the types."""
        from sparktf.spark.hints import hint_fields

        return [name for name, _ in hint_fields(self.ddl)]

    def schema(self, spark: SparkSession) -> StructType:
        """The schema, parsed by Spark and checked against what TFRecord can hold."""
        from sparktf.tfrecord.types import columns_of

        schema = _parse_ddl(spark, self.ddl, shown=self.settings.schema_hint or self.ddl)
        if self.settings.record_type != "ByteArray":
            columns_of(schema, self.settings.record_type)
        return schema


def plan_scan(
    path: str | list[str], schema_hint: str | StructType | None, options: dict[str, Any],
) -> ScanPlan:
    """Check the options, list the files and infer the schema, on the driver (a planning
    worker would import TensorFlow just for this)."""
    from sparktf.spark.datasource import schema_ddl
    from sparktf.tfrecord.framing import list_data_files

    settings = _settings(schema_hint, options)  # checks every option up front
    target: Any = [str(p) for p in path] if isinstance(path, (list, tuple)) else str(path)
    files = list_data_files(target)
    return ScanPlan(target, files, settings, schema_ddl(files, settings))


def planned_scan(
    spark: SparkSession, path: str | list[str], schema_hint: str | StructType | None,
    options: dict[str, Any],
) -> ScanPlan:
    """:func:`plan_scan` where the paths are: on the driver of a classic session; from a
    Spark Connect client, whose paths are the server's, in a one-task job on the server."""
    if not is_connect(spark):
        return plan_scan(path, schema_hint, options)
    from sparktf.spark.serverside import run_on_server

    settings = _settings(schema_hint, options)  # checked here, before the job
    target: Any = [str(p) for p in path] if isinstance(path, (list, tuple)) else str(path)
    found = run_on_server(spark, plan_files, target=target, options=settings.to_options())
    return ScanPlan(target, found["files"], settings, found["ddl"])


def plan_files(target: str | list[str], options: dict[str, str]) -> dict[str, Any]:
    """The files and DDL schema of a scan, as JSON data (run by :func:`planned_scan` on a
    Spark Connect server)."""
    scan = plan_scan(target, None, options)
    return {"files": scan.files, "ddl": scan.ddl}


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
    files appear together with ``_SUCCESS`` when the job commits; a failed job leaves the
    path as it was (an existing output untouched, an absent one absent). ``options`` are
    the settings of :class:`~sparktf.tfrecord.options.WriteSettings`.

    Examples
    --------
    >>> write_tfrecords(spark.range(3), f"{tmp}/ids", mode="overwrite", compression="gzip")
    >>> read_tfrecords(spark, f"{tmp}/ids").count()
    3
    """
    from sparktf import fs
    from sparktf.spark.serverside import output_state

    spark = df.sparkSession
    register(spark)
    settings = WriteSettings.from_options(
        {"record_type": record_type, "compression": compression, **options})
    mode = str(mode).lower()
    if mode not in SAVE_MODES:
        raise TFRecordError(f"mode: expected one of {', '.join(SAVE_MODES)}, found {mode!r}")
    location = fs.parse(path)  # a malformed URL or unknown scheme fails before any job
    target = location.url if not location.is_local else fs.local_path(path)
    if not location.is_local:
        fs.check_container(target)
    if location.is_local and is_connect(spark):  # the path is the server's: look there
        from sparktf.spark.serverside import run_on_server

        state = run_on_server(spark, output_state, path=target)
    else:
        state = output_state(target)
    if state["entries"] and mode in ("errorifexists", "error"):
        raise TFRecordError(
            f"output path {path} already exists ({state['entries']} entries); "
            "use mode='overwrite' or mode='append'"
        )
    if state["entries"] and mode == "ignore":
        return
    if state["not_a_directory"]:
        raise TFRecordError(f"output path {path} exists and is not a directory")
    absent = location.is_local and not state["exists"] and not is_connect(spark)
    writer = df.write.format("tfrecord").options(**settings.to_options())
    try:
        with reraise(f"writing TFRecords to {path}"):
            writer.mode("overwrite" if mode == "overwrite" else "append").save(target)
    except BaseException:
        if absent:
            commit.remove_if_empty(target)
        raise
