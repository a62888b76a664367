"""Typed settings of the TFRecord reader and writer: names, defaults and checks in one place.

Options reach sparktf three ways: as keyword arguments (``read_tfrecords(spark, p,
batch_size=1024)``), as Spark data source options (``.option("batchSize", "1024")``, strings,
names case-insensitive) and as command-line flags. All of them end in :class:`ReadSettings`
or :class:`WriteSettings`, which refuse an unknown name (with the accepted names and the
closest match) and a bad value (with the accepted values) before any file is touched.

Examples
--------
>>> ReadSettings.from_options({"batchSize": "512", "ignore_corrupt_records": "true"}).batch_size
512
>>> ReadSettings.from_options({"ignoreCorruptRecord": "true"})
Traceback (most recent call last):
    ...
sparktf.errors.TFRecordError: unknown read option 'ignoreCorruptRecord'; closest: \
'ignoreCorruptRecords'; accepted: recordType, compression, schemaHint, sampleRecords, \
batchSize, ignoreCorruptFiles, ignoreCorruptRecords, maxPartitionBytes, openCostInBytes, \
minPartitions, splitFiles, basePath, timeZone
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from sparktf.errors import TFRecordError, close_matches

RECORD_TYPES = ("Example", "SequenceExample", "ByteArray")
OVERWRITE_MODES = ("static", "dynamic")
READ_COMPRESSIONS = ("auto", "none", "gzip", "zlib")
WRITE_COMPRESSIONS = ("none", "gzip", "zlib")
#: Names Spark itself puts among a data source's options (the path or paths given to load/save).
SPARK_OPTIONS = frozenset({"path", "paths"})
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _camel(name: str) -> str:
    """``sample_records`` -> ``sampleRecords``."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _key(name: str) -> str:
    """What two spellings of one option share: ``batch_size``, ``batchSize``, ``BATCHSIZE``."""
    return re.sub(r"[_\-]", "", name).lower()


def check_choice(option: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` as spelled in ``choices`` (case-insensitive), or a :class:`TFRecordError`.

    Examples
    --------
    >>> check_choice("recordType", "example", RECORD_TYPES)
    'Example'
    """
    text = str(value).strip()
    for choice in choices:
        if text.lower() == choice.lower():
            return choice
    raise TFRecordError(f"option {option}: expected one of {', '.join(choices)}, found {value!r}")


def check_flag(option: str, value: Any) -> bool:
    """A boolean option: ``True``/``False`` or ``true``/``false``/``1``/``0``/``yes``/``no``.

    Examples
    --------
    >>> check_flag("ignoreCorruptFiles", "Yes")
    True
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise TFRecordError(f"option {option}: expected true or false, found {value!r}")


def check_positive(option: str, value: Any) -> int:
    """A positive integer option (``512`` or ``"512"``)."""
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else 0
    except ValueError:
        number = 0
    if number <= 0:
        raise TFRecordError(f"option {option}: expected a positive integer, found {value!r}")
    return number


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}


def check_bytes(option: str, value: Any) -> int:
    """A size in bytes, as Spark writes them (``134217728``, ``"128m"``, ``"1g"``).

    Examples
    --------
    >>> check_bytes("maxPartitionBytes", "128m"), check_bytes("maxPartitionBytes", "4194304b")
    (134217728, 4194304)
    """
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(value))
    unit = match.group(2).lower() if match else None
    if isinstance(value, bool) or match is None or unit not in _UNITS:
        raise TFRecordError(f"option {option}: expected a size in bytes such as 134217728 or "
                            f"128m, found {value!r}")
    number = int(match.group(1)) * _UNITS[unit]
    if number <= 0 and option != "openCostInBytes":
        raise TFRecordError(f"option {option}: expected a positive size, found {value!r}")
    return number


def check_names(option: str, value: Any) -> tuple[str, ...]:
    """Column names: a list, a JSON list, or one comma-separated string.

    Examples
    --------
    >>> check_names("partitionBy", "day, kind"), check_names("partitionBy", '["a,b"]')
    (('day', 'kind'), ('a,b',))
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise TFRecordError(f"option {option}: expected a JSON list of column names, "
                                    f"found {value!r}") from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, str) and v for v in value):
        raise TFRecordError(f"option {option}: expected column names, found {value!r}")
    return tuple(value)


def check_time_zone(value: str) -> str:
    """A time zone name (``UTC``, ``Europe/Paris``) that Python knows."""
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except Exception:  # noqa: BLE001 - ZoneInfoNotFoundError, ValueError
        raise TFRecordError(f"option timeZone: unknown time zone {value!r}") from None
    return value


@dataclass(frozen=True, kw_only=True)
class _Settings:
    """Shared parsing of option mappings into a frozen dataclass."""

    WHAT: ClassVar[str] = ""

    @classmethod
    def names(cls) -> list[str]:
        """The accepted option names, camelCase (snake_case is accepted too)."""
        return [_camel(f.name) for f in dataclasses.fields(cls)]

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Any:
        """Settings from options named in camelCase or snake_case, any case; ``None`` values
        are left at their defaults. Unknown names and bad values raise
        :class:`~sparktf.errors.TFRecordError`."""
        fields = {_key(f.name): f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, value in options.items():
            if _key(name) in SPARK_OPTIONS:
                continue
            field = fields.get(_key(name))
            if field is None:
                raise TFRecordError(
                    f"unknown {cls.WHAT} option {name!r}; "
                    f"{close_matches(name, cls.names(), n=1)}; accepted: {', '.join(cls.names())}"
                )
            if value is not None:
                values[field] = value
        return cls(**values)

    def to_options(self) -> dict[str, str]:
        """The settings as Spark data source options (camelCase names, string values)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[_camel(f.name)] = str(value).lower() if isinstance(value, bool) else str(value)
        return out


@dataclass(frozen=True, kw_only=True)
class ReadSettings(_Settings):
    """How to read TFRecord files.

    Parameters
    ----------
    record_type : {"Example", "SequenceExample", "ByteArray"}
    compression : {"auto", "none", "gzip", "zlib"}
        ``auto`` reads gzip when a file starts with gzip's magic bytes, else none.
    schema_hint : str, optional
        A partial or full schema (DDL such as ``image binary, label bigint``, Spark's
        ``struct<...>`` form or Spark's JSON); the fields it does not name are inferred.
    sample_records : int
        Records schema inference looks at, spread over up to 32 files.
    batch_size : int
        Rows per Arrow batch.
    ignore_corrupt_files, ignore_corrupt_records : bool
        Keep a corrupt file's records before its fault and skip the rest; skip records whose
        data CRC or payload is bad and go on.
    max_partition_bytes, open_cost_in_bytes : int or str, optional
        How files are packed into tasks (``134217728``, ``"128m"``); by default the session's
        ``spark.sql.files.maxPartitionBytes`` and ``spark.sql.files.openCostInBytes``.
    min_partitions : int, optional
        Spread the bytes over at least this many tasks; by default the session's
        ``spark.sql.files.minPartitionNum``, else its default parallelism.
    split_files : bool
        Read an uncompressed local file larger than a task in several tasks (default true).
    base_path : str, optional
        The table's root above its ``key=value`` directories (default: each input folder).
    time_zone : str, optional
        The time zone of timestamp partition values (default: the session's).
    """

    WHAT: ClassVar[str] = "read"
    record_type: str = "Example"
    compression: str = "auto"
    schema_hint: str | None = None
    sample_records: int = 1000
    batch_size: int = 4096
    ignore_corrupt_files: bool = False
    ignore_corrupt_records: bool = False
    max_partition_bytes: int | None = None
    open_cost_in_bytes: int | None = None
    min_partitions: int | None = None
    split_files: bool = True
    base_path: str | None = None
    time_zone: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "record_type", check_choice("recordType", self.record_type, RECORD_TYPES))
        set_(self, "compression", check_choice("compression", self.compression or "auto",
                                               READ_COMPRESSIONS))
        set_(self, "sample_records", check_positive("sampleRecords", self.sample_records))
        set_(self, "batch_size", check_positive("batchSize", self.batch_size))
        for name in ("ignore_corrupt_files", "ignore_corrupt_records", "split_files"):
            set_(self, name, check_flag(_camel(name), getattr(self, name)))
        for name in ("max_partition_bytes", "open_cost_in_bytes"):
            if getattr(self, name) is not None:
                set_(self, name, check_bytes(_camel(name), getattr(self, name)))
        if self.min_partitions is not None:
            set_(self, "min_partitions", check_positive("minPartitions", self.min_partitions))
        for name in ("schema_hint", "base_path", "time_zone"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TFRecordError(f"option {_camel(name)}: expected a non-empty string, "
                                    f"found {value!r}")
        if self.time_zone is not None:
            check_time_zone(self.time_zone)


@dataclass(frozen=True, kw_only=True)
class WriteSettings(_Settings):
    """How to write TFRecord files.

    Parameters
    ----------
    record_type : {"Example", "SequenceExample", "ByteArray"}
    compression : {"none", "gzip", "zlib"}
        Written gzip files end in ``.gz``, zlib files in ``.zlib``.
    partition_by : tuple of str
        Columns written as ``key=value/`` directories instead of features.
    partition_overwrite_mode : {"static", "dynamic"}
        What ``overwrite`` replaces: the whole output (static), or only the partition
        directories the job writes into (dynamic; Spark's ``partitionOverwriteMode``).
    time_zone : str, optional
        The time zone timestamp partition values are written in (default: the session's).
    job_id : str, optional
        The write job's id in the names of its files; set by ``write_tfrecords`` (for the
        claim on a new output, :mod:`sparktf.spark.claim`); random when not given.
    """

    WHAT: ClassVar[str] = "write"
    record_type: str = "Example"
    compression: str = "none"
    partition_by: tuple[str, ...] = ()
    partition_overwrite_mode: str = "static"
    time_zone: str | None = None
    job_id: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "record_type", check_choice("recordType", self.record_type, RECORD_TYPES))
        set_(self, "compression", check_choice("compression", self.compression or "none",
                                               WRITE_COMPRESSIONS))
        set_(self, "partition_by", check_names("partitionBy", self.partition_by))
        set_(self, "partition_overwrite_mode", check_choice(
            "partitionOverwriteMode", self.partition_overwrite_mode, OVERWRITE_MODES))
        if self.time_zone is not None:
            check_time_zone(self.time_zone)
        if self.partition_by and self.record_type == "ByteArray":
            raise TFRecordError("option partitionBy: recordType ByteArray writes one binary "
                                "column as the records; partition an Example or "
                                "SequenceExample write")

    def to_options(self) -> dict[str, str]:
        out = super().to_options()
        out["partitionBy"] = json.dumps(list(self.partition_by))
        return out
