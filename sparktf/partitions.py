"""Hive-style ``key=value/`` directories: parse, type and write them as Spark does.

The one module that turns partition directories into columns and back, with Spark's rules
(``PartitioningUtils``, ``ExternalCatalogUtils``):

- below a base path (the ``basePath`` option, else each input directory), the run of
  ``key=value`` directories right above a data file gives its partition values;
- each column's type is inferred from all its values: ``int``, then ``bigint``, then
  ``decimal(38,0)`` for larger integers, ``double``, ``timestamp`` (``yyyy-MM-dd
  HH:mm:ss[.S]``), ``date`` (``yyyy-MM-dd``), else ``string``; values of different types widen
  (``int`` and ``bigint`` to ``bigint``, ``int`` and ``double`` to ``double``, ``date`` and
  ``timestamp`` to ``timestamp``), and to ``string`` where widening would lose precision;
  a schema hint naming the column gives its type instead;
- ``__HIVE_DEFAULT_PARTITION__`` is null;
- names and values escape ``"#%'*/:=?\\{[]^``, DEL and control characters as ``%XX``.

Nothing here imports Spark or TensorFlow: the driver plans with it and workers turn the raw
values into Arrow constants (:func:`constant`).

Examples
--------
>>> infer_type("7"), infer_type("3000000000"), infer_type("1.5"), infer_type("2024-01-31")
('int', 'bigint', 'double', 'date')
>>> fragment([("day", "2024-01-31"), ("kind", "a/b")])
'day=2024-01-31/kind=a%2Fb'
>>> parse_dir("kind=a%2Fb")  # the value stays raw: types are inferred from it
('kind', 'a%2Fb')
>>> cast("a%2Fb", "string"), cast("2024-01-31", "date")
('a/b', datetime.date(2024, 1, 31))
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sparktf.errors import SchemaError

DEFAULT_PARTITION_NAME = "__HIVE_DEFAULT_PARTITION__"
_ESCAPED = frozenset('"#%\'*/:=?\\\x7f{[]^') | {chr(c) for c in range(1, 32)}
_INT = re.compile(r"^[+-]?\d+$")
_DOUBLE = re.compile(r"^[+-]?(NaN|Infinity|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)[fFdD]?$")
_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_TIMESTAMP = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2}):(\d{2})(\.\d{1,9})?$")
_NUMERIC = ("int", "bigint", "decimal(38,0)", "double")


def escape(text: str) -> str:
    """A partition name or value as written in a path (Spark's ``escapePathName``).

    Examples
    --------
    >>> escape("2024-01-31 10:00:00")
    '2024-01-31 10%3A00%3A00'
    """
    return "".join(f"%{ord(c):02X}" if c in _ESCAPED else c for c in text)


def unescape(text: str) -> str:
    """The inverse of :func:`escape` (``%XX`` with two hex digits; anything else is kept).

    Examples
    --------
    >>> unescape("a%2Fb%zz")
    'a/b%zz'
    """
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


def parse_dir(name: str) -> tuple[str, str] | None:
    """``(column, raw value)`` of a ``key=value`` directory name, else None. The value stays
    raw (escaped): types are inferred from it as Spark does."""
    key, sep, value = name.partition("=")
    if not sep or not key or not value:
        return None
    return unescape(key), value


def fragment(values: Sequence[tuple[str, str | None]]) -> str:
    """The relative directory of partition values (``None``: the default partition name)."""
    return "/".join(f"{escape(k)}={DEFAULT_PARTITION_NAME if v is None or v == '' else escape(v)}"
                    for k, v in values)


def infer_type(raw: str) -> str:
    """The Spark type name Spark infers for the raw (escaped) value ``raw``; ``void`` for
    the default partition name."""
    if raw == DEFAULT_PARTITION_NAME:
        return "void"
    if _INT.match(raw):
        number = int(raw)
        if -(1 << 31) <= number < 1 << 31:
            return "int"
        if -(1 << 63) <= number < 1 << 63:
            return "bigint"
        if len(raw.lstrip("+-").lstrip("0")) <= 38:
            return "decimal(38,0)"
    if _DOUBLE.match(raw):
        return "double"
    if _timestamp(unescape(raw)) is not None:
        return "timestamp"
    if _date(raw) is not None:
        return "date"
    return "string"


def wider(a: str, b: str) -> str:
    """The type that holds values of types ``a`` and ``b`` (Spark's partition widening).

    Examples
    --------
    >>> wider("int", "bigint"), wider("bigint", "double"), wider("date", "timestamp")
    ('bigint', 'string', 'timestamp')
    """
    if a == b or b == "void":
        return a
    if a == "void":
        return b
    if a in _NUMERIC and b in _NUMERIC:
        pair = {a, b}
        if "double" in pair:
            return "double" if pair <= {"int", "double"} else "string"
        return max(pair, key=_NUMERIC.index)
    if {a, b} == {"date", "timestamp"}:
        return "timestamp"
    return "string"


@dataclass(frozen=True)
class PartitionSpec:
    """The partition columns of a listing (name, Spark type) and the raw values of each
    partition directory; data files point at a row of ``values`` by index."""

    columns: tuple[tuple[str, str], ...] = ()
    values: tuple[tuple[str | None, ...], ...] = ((),)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def typed(self, index: int, time_zone: str = "UTC") -> list[Any]:
        """The Python values of partition row ``index``."""
        return [cast(raw, kind, time_zone) for raw, (_, kind) in
                zip(self.values[index], self.columns, strict=True)]


def discover(dirs: Sequence[tuple[str, ...]], *, hint: dict[str, str] | None = None,
             shown: Sequence[str] = ()) -> tuple[PartitionSpec, list[int]]:
    """The :class:`PartitionSpec` of data files whose directories below their base path are
    ``dirs`` (one tuple of names per file), and each file's row in it.

    Raises
    ------
    SchemaError
        When files lie at different depths of partition directories or under different
        column names (``shown`` names the files), naming the paths and ``basePath``.
    """
    hint = hint or {}
    parsed = [_columns_of(d) for d in dirs]
    with_values = [p for p in parsed if p]
    if not with_values:
        return PartitionSpec(), [0] * len(dirs)
    layouts = {tuple(k for k, _ in p) for p in parsed}
    if len(layouts) > 1:
        examples = {tuple(k for k, _ in p): shown[i] if i < len(shown) else "/".join(dirs[i])
                    for i, p in enumerate(parsed)}
        listed = "; ".join(f"{', '.join(k) or 'no partition columns'}: {v}"
                           for k, v in sorted(examples.items()))
        raise SchemaError(
            "conflicting directory structures: data files lie under different partition "
            f"columns ({listed}); data files must lie only in leaf directories of the same "
            "key=value columns; give the option basePath (the table's root) if the inputs "
            "are partition directories themselves")
    names = [k for k, _ in with_values[0]]
    rows: dict[tuple[str, ...], int] = {}
    order: list[tuple[str, ...]] = []
    index = []
    for p in parsed:
        row = tuple(v for _, v in p)
        if row not in rows:
            rows[row] = len(order)
            order.append(row)
        index.append(rows[row])
    columns = []
    for i, name in enumerate(names):
        kind = hint.get(name)
        if kind is None:
            kind = "void"
            for row in order:
                kind = wider(kind, infer_type(row[i]))
            kind = "string" if kind == "void" else kind
        columns.append((name, kind))
    values = tuple(tuple(None if v == DEFAULT_PARTITION_NAME else v for v in row)
                   for row in order)
    return PartitionSpec(tuple(columns), values), index


def _columns_of(dirs: tuple[str, ...]) -> list[tuple[str, str]]:
    """The run of ``key=value`` names nearest the file (Spark's ``parsePartition``: other
    names below the run are passed over, the first one above it ends it)."""
    found: list[tuple[str, str]] = []
    for name in reversed(dirs):
        parsed = parse_dir(name)
        if parsed is None:
            if found:
                break
            continue
        found.append(parsed)
    return found[::-1]


def cast(raw: str | None, kind: str, time_zone: str = "UTC") -> Any:
    """The Python value of the raw partition value ``raw`` as Spark type ``kind``."""
    if raw is None:
        return None
    try:
        return _cast(raw, kind, time_zone)
    except (ValueError, ArithmeticError, decimal.InvalidOperation):
        raise SchemaError(f"partition value {unescape(raw)!r} cannot be read as {kind}") from None


def _cast(raw: str, kind: str, time_zone: str) -> Any:
    text = unescape(raw)
    if kind in ("string", "void"):
        return text
    if kind in ("int", "bigint", "smallint", "tinyint"):
        return int(raw)
    if kind in ("double", "float"):
        return float(raw.rstrip("fFdD").replace("Infinity", "inf"))
    if kind.startswith("decimal"):
        return decimal.Decimal(raw)
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise ValueError(text)
        return text.lower() == "true"
    if kind == "binary":
        return text.encode()
    if kind == "date":
        found = _date(raw) or _date_of_timestamp(text)
        if found is None:
            raise ValueError(raw)
        return found
    if kind in ("timestamp", "timestamp_ntz"):
        stamp = _timestamp(text)
        if stamp is None:
            day = _date(raw)
            if day is None:
                raise ValueError(raw)
            stamp = dt.datetime(day.year, day.month, day.day)
        return stamp if kind == "timestamp_ntz" else _in_zone(stamp, time_zone)
    raise ValueError(f"unsupported partition column type {kind}")


def _date(text: str) -> dt.date | None:
    match = _DATE.match(text)
    if match is None:
        return None
    try:
        return dt.date(*map(int, match.groups()))
    except ValueError:
        return None


def _date_of_timestamp(text: str) -> dt.date | None:
    stamp = _timestamp(text)
    return stamp.date() if stamp is not None else None


def _timestamp(text: str) -> dt.datetime | None:
    match = _TIMESTAMP.match(text)
    if match is None:
        return None
    *parts, fraction = match.groups()
    micros = int((fraction or ".0")[1:7].ljust(6, "0"))
    try:
        return dt.datetime(*map(int, parts), micros)
    except ValueError:
        return None


def _in_zone(stamp: dt.datetime, time_zone: str) -> dt.datetime:
    """``stamp`` (wall time in ``time_zone``, as Spark reads a partition timestamp in the
    session time zone) as an aware UTC datetime."""
    from zoneinfo import ZoneInfo

    return stamp.replace(tzinfo=ZoneInfo(time_zone)).astimezone(dt.timezone.utc)


def check_no_overlap(partition_names: Iterable[str], features: Iterable[str]) -> None:
    """A feature inside the records named like a partition column is an error."""
    both = sorted(set(partition_names) & set(features))
    if both:
        raise SchemaError(
            f"feature {both[0]!r} of the records has the name of a partition column (a "
            f"'{both[0]}=...' directory); rename one of them, or read the directories below "
            "that level (basePath)")
