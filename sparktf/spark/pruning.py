"""Partition pruning: which ``key=value`` directories a scan's filters can match.

Spark hands a Python data source the filters of a query (``pushFilters``, PySpark 4.1+ with
``spark.sql.python.filterPushdown.enabled``). Those on partition columns are evaluated here
against each partition directory's values, on the driver's planning worker, so the files of
directories no row of which could pass are never listed into a task. Every filter is still
handed back to Spark, which evaluates it on the rows as well: pruning only drops files.

Examples
--------
>>> from pyspark.sql.datasource import EqualTo, GreaterThan
>>> spec = PartitionSpec((("day", "int"),), (("1",), ("2",), ("3",)))
>>> sorted(matching_rows(spec, [GreaterThan(("day",), 1)]))
[1, 2]
>>> sorted(matching_rows(spec, [EqualTo(("other",), 1)]))  # not a partition column
[0, 1, 2]
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from pyspark.sql import datasource as ds

from sparktf.partitions import PartitionSpec

_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ds.EqualTo: operator.eq, ds.GreaterThan: operator.gt, ds.GreaterThanOrEqual: operator.ge,
    ds.LessThan: operator.lt, ds.LessThanOrEqual: operator.le,
}


def matching_rows(spec: PartitionSpec, filters: Sequence[Any],
                  time_zone: str = "UTC") -> set[int]:
    """The partition rows of ``spec`` whose values may pass every filter (a filter that is
    not on a partition column, or that this module does not know, passes all rows)."""
    names = spec.names
    rows = set(range(len(spec.values)))
    for flt in filters:
        column = _column(flt)
        if column not in names:
            continue
        where = names.index(column)
        rows = {r for r in rows
                if _test(flt, spec.typed(r, time_zone)[where]) is not False}
    return rows


def _column(flt: Any) -> str | None:
    while isinstance(flt, ds.Not):
        flt = flt.child
    attribute = getattr(flt, "attribute", None)
    return attribute[0] if attribute and len(attribute) == 1 else None


def _test(flt: Any, value: Any) -> bool | None:
    """SQL's three-valued result of ``flt`` on ``value`` (None: unknown or not handled)."""
    if isinstance(flt, ds.Not):
        inner = _test(flt.child, value)
        return None if inner is None else not inner
    if isinstance(flt, ds.IsNull):
        return value is None
    if isinstance(flt, ds.IsNotNull):
        return value is not None
    if isinstance(flt, ds.EqualNullSafe):
        return value == flt.value if value is not None and flt.value is not None else (
            value is None and flt.value is None)
    if value is None:
        return None
    try:
        if type(flt) in _COMPARE:
            return None if flt.value is None else bool(_COMPARE[type(flt)](value, flt.value))
        if isinstance(flt, ds.In):
            if value in [v for v in flt.value if v is not None]:
                return True
            return None if any(v is None for v in flt.value) else False
        if isinstance(flt, ds.StringStartsWith):
            return str(value).startswith(flt.value)
        if isinstance(flt, ds.StringEndsWith):
            return str(value).endswith(flt.value)
        if isinstance(flt, ds.StringContains):
            return flt.value in str(value)
    except TypeError:  # values Python cannot compare (another type than the column's)
        return None
    return None
