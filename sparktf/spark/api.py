"""Driver-side API: register the data source, read and write TFRecords with save modes."""

from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark.sql.types import StructType

from sparktf.errors import SchemaError, TFRecordError
from sparktf.listing import Listing
from sparktf.spark import commit, scans
from sparktf.spark.compat import is_connect, make_active
from sparktf.spark.errors import reraise
from sparktf.spark.hints import quoted_ddl
from sparktf.tfrecord.options import ReadSettings, WriteSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from sparktf.model.fused import FileScan

SAVE_MODES = ("errorifexists", "error", "overwrite", "append", "ignore")
OVERWRITE_MODE = "spark.sql.sources.partitionOverwriteMode"


def _conf(spark: Any, key: str) -> str | None:
    try:
        value = spark.conf.get(key, None)
    except Exception:  # noqa: BLE001 - a key this Spark does not know
        return None
    return str(value).lower() if value else None
_registered: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def register(spark: SparkSession) -> None:
    """Register the ``tfrecord`` data source with ``spark``.

    The data source plans in a worker without a session, so it gets the session's
    ``spark.sql.files.*`` settings, time zone and filter pushdown setting here
    (:mod:`sparktf.spark.confs`); a later call registers it again when they changed.

    Examples
    --------
    >>> import sparktf
    >>> sparktf.register(spark)
    >>> spark.read.format("tfrecord").load(examples).count()
    5
    """
    import json

    from sparktf.spark.confs import pushdown, scan_options
    from sparktf.spark.datasource import TFRecordDataSource

    make_active(spark)  # the data source is looked up through this thread's session
    options, push = scan_options(spark), pushdown(spark)
    key = json.dumps([options, push], sort_keys=True)
    if _registered.get(spark) == key:
        return
    spark.dataSource.register(TFRecordDataSource.for_session(options, push))
    _registered[spark] = key


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
    *,
    schema_hint: str | StructType | None = None,
    **options: Any,
) -> DataFrame:
    """Read TFRecord files (file, directory, glob or list) into a DataFrame.

    Files are packed into tasks, and large uncompressed files split, as Spark's file
    sources do (the session's ``spark.sql.files.*`` settings); ``key=value`` directories
    become columns.

    Parameters
    ----------
    spark : SparkSession
    path : str or list of str
    schema_hint : str or StructType, optional
        Partial or full schema as DDL (``image/encoded binary, label bigint``) or
        ``struct<...>``; feature names need no backticks. Features not named are inferred
        from a sample of records (a bytes feature becomes ``binary`` when a sampled value is
        not UTF-8 text, else ``string``). A partition column it names gets its type.
    **options
        The settings of :class:`~sparktf.tfrecord.options.ReadSettings`, camelCase or
        snake_case: ``record_type``, ``compression``, ``sample_records``, ``batch_size``,
        ``ignore_corrupt_files``, ``ignore_corrupt_records``, ``max_partition_bytes``,
        ``open_cost_in_bytes``, ``min_partitions``, ``split_files``, ``base_path``,
        ``time_zone``. Unknown names are refused.

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
    register(spark)
    schema = scan.schema(spark)
    files = scan.file_scan(spark, schema)
    opts = {k: v for k, v in files.settings.to_options().items() if k != "schemaHint"}
    with reraise(f"reading TFRecords from {scan.target}"):
        df = spark.read.format("tfrecord").options(**opts).schema(schema).load(scan.target)
    scans.remember(df, files)
    return df


def scan_tfrecords(spark: SparkSession, scan: ScanPlan) -> DataFrame:
    """The rows of :func:`read_tfrecords`, without the data source: a ``spark.range`` of
    task indices mapped by the same reader (the same tasks).

    For ``sparktf infer``, whose input the fused path scores straight from the files (this
    DataFrame is read only by ``--verbose``'s ``show()``): it skips registering the data
    source and the planning process Spark starts for a Python data source (about 3 s of a
    short job on 2 cores).
    """
    import functools

    from sparktf.model.fused import read_files

    schema = scan.schema(spark)
    files = scan.file_scan(spark, schema)
    fn = functools.partial(read_files, scan=files)
    tasks = len(files.tasks)
    df = spark.range(0, tasks, 1, max(1, tasks)).mapInArrow(fn, schema)
    scans.remember(df, files)
    return df


@dataclass(frozen=True)
class ScanPlan:
    """A TFRecord scan planned on the driver without Spark: the listing (files, sizes,
    partitions), the settings and the schema as DDL (the hint's fields, then the inferred
    ones, then the partition columns)."""

    target: str | list[str]
    listing: Listing
    settings: ReadSettings
    ddl: str

    @property
    def files(self) -> list[str]:
        return self.listing.paths

    @property
    def columns(self) -> list[str]:
        """The column names, known before Spark parses the types."""
        from sparktf.spark.hints import hint_fields

        return [name for name, _ in hint_fields(self.ddl)]

    def schema(self, spark: SparkSession) -> StructType:
        """The schema, parsed by Spark and checked against what TFRecord can hold."""
        from sparktf.tfrecord.scan import data_schema
        from sparktf.tfrecord.types import columns_of

        schema = _parse_ddl(spark, self.ddl, shown=self.settings.schema_hint or self.ddl)
        if self.settings.record_type != "ByteArray":
            columns_of(data_schema(schema, self.listing.spec), self.settings.record_type)
        return schema

    def file_scan(self, spark: SparkSession, schema: StructType) -> FileScan:
        """The tasks of the scan, packed with the session's settings (options win)."""
        from sparktf.model.fused import FileScan
        from sparktf.planning import plan_tasks
        from sparktf.spark.confs import scan_options
        from sparktf.spark.datasource import pack_settings

        given = {k: v for k, v in self.settings.to_options().items()}
        settings = ReadSettings.from_options({**scan_options(spark), **given})
        tasks = plan_tasks(self.listing.files, pack_settings(settings))
        return FileScan(tuple(tasks), schema.json(), settings, self.listing.spec)


def plan_scan(
    path: str | list[str], schema_hint: str | StructType | None, options: dict[str, Any],
) -> ScanPlan:
    """Check the options, list the files and infer the schema, on the driver (a planning
    worker would import TensorFlow just for this)."""
    from sparktf.spark.datasource import scan_listing, schema_ddl

    settings = _settings(schema_hint, options)  # checks every option up front
    target: Any = [str(p) for p in path] if isinstance(path, (list, tuple)) else str(path)
    listing = scan_listing([target] if isinstance(target, str) else target, settings)
    return ScanPlan(target, listing, settings, schema_ddl(listing, settings))


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
    return ScanPlan(target, listing_from_json(found["listing"]), settings, found["ddl"])


def plan_files(target: str | list[str], options: dict[str, str]) -> dict[str, Any]:
    """The listing and DDL schema of a scan, as JSON data (run by :func:`planned_scan` on a
    Spark Connect server)."""
    scan = plan_scan(target, None, options)
    return {"listing": listing_json(scan.listing), "ddl": scan.ddl}


def listing_json(listing: Listing) -> dict[str, Any]:
    """A listing as JSON data (:func:`listing_from_json` reads it back)."""
    spec = listing.spec
    return {"files": [[f.path, f.size, f.splittable, f.partition] for f in listing.files],
            "columns": [list(c) for c in spec.columns], "values": [list(v) for v in spec.values]}


def listing_from_json(data: dict[str, Any]) -> Listing:
    from sparktf.partitions import PartitionSpec
    from sparktf.planning import FileInfo

    spec = PartitionSpec(tuple(tuple(c) for c in data["columns"]),
                         tuple(tuple(v) for v in data["values"]))
    return Listing(tuple(FileInfo(p, int(s), bool(sp), int(r)) for p, s, sp, r in data["files"]),
                   spec)


def write_tfrecords(
    df: DataFrame,
    path: str,
    *,
    mode: str = "errorifexists",
    record_type: str = "Example",
    compression: str = "none",
    partition_by: str | list[str] | tuple[str, ...] = (),
    **options: Any,
) -> None:
    """Write ``df`` as TFRecord files under the directory ``path``.

    ``mode`` is ``errorifexists`` (default), ``overwrite``, ``append`` or ``ignore``. The
    files appear together with ``_SUCCESS`` when the job commits; a failed job leaves the
    path as it was (an existing output untouched, an absent one absent). ``partition_by``
    writes those columns as ``key=value/`` directories (Hive style) instead of features;
    ``partition_overwrite_mode="dynamic"`` (default: the session's
    ``spark.sql.sources.partitionOverwriteMode``) makes ``overwrite`` replace only the
    directories written to. ``options`` are the settings of
    :class:`~sparktf.tfrecord.options.WriteSettings`.

    Examples
    --------
    >>> write_tfrecords(spark.range(3), f"{tmp}/ids", mode="overwrite", compression="gzip")
    >>> read_tfrecords(spark, f"{tmp}/ids").count()
    3
    >>> write_tfrecords(spark.range(4).selectExpr("id", "id % 2 AS odd"), f"{tmp}/tree",
    ...                 partition_by=["odd"])
    >>> import os
    >>> sorted(os.listdir(f"{tmp}/tree"))
    ['_SUCCESS', 'odd=0', 'odd=1']
    """
    from sparktf import fs
    from sparktf.spark.confs import scan_options

    spark = df.sparkSession
    register(spark)
    session = {"time_zone": scan_options(spark)["timeZone"],
               "partition_overwrite_mode": _conf(spark, OVERWRITE_MODE) or "static"}
    settings = WriteSettings.from_options(
        {**session, "record_type": record_type, "compression": compression,
         "partition_by": partition_by, **options})
    from sparktf.partitioned import check_partition_by

    check_partition_by(df.schema, settings.partition_by)
    mode = str(mode).lower()
    if mode not in SAVE_MODES:
        raise TFRecordError(f"mode: expected one of {', '.join(SAVE_MODES)}, found {mode!r}")
    location = fs.parse(path)  # a malformed URL or unknown scheme fails before any job
    target = location.url if not location.is_local else fs.local_path(path)
    if not location.is_local:
        fs.check_container(target)
    claimed = None
    if mode in ("errorifexists", "error", "ignore") and not is_connect(spark):
        import uuid

        from sparktf.spark.claim import claim

        # one writer per new output: of two jobs started together, one fails here
        claimed = claim(target, job=uuid.uuid4().hex[:12])
        settings = dataclasses.replace(settings, job_id=claimed.job)
    try:
        _write(df, path, target, location, settings, mode)
    finally:
        if claimed is not None:
            claimed.release()


def _write(df: DataFrame, path: str, target: str, location: Any, settings: WriteSettings,
           mode: str) -> None:
    """The body of :func:`write_tfrecords` once its output is claimed."""
    from sparktf.spark.serverside import output_state

    spark = df.sparkSession
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
