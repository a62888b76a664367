"""Recognise a plain TFRecord scan, by its plan, on classic and Spark Connect sessions.

:func:`~sparktf.read_tfrecords` marks every column of its schema with a scan id (field
metadata ``sparktf.scan``) and notes the scan here. A DataFrame is the plain scan (or a
column projection of it) when its columns carry one scan id *and* Spark finds its plan
semantically equal to the noted scan, or to that scan's ``select`` of the same columns
(:meth:`DataFrame.sameSemantics`, public on both kinds of session). Field metadata
survives projections, filters and joins alike; the plan comparison tells them apart.
``df.alias("a")``, ``df.select(...)`` of plain columns, or the same DataFrame derived
again all count as the scan; a filter, a join, a limit or a computed column does not.

The note is a bounded table keyed by the id in the plan (:data:`MAX_SCANS` most recent
scans of this process): a DataFrame whose scan fell out of it is scored through the
general path, with the same rows.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING

from pyspark.sql import types as T

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from sparktf.model.fused import FileScan

log = logging.getLogger(__name__)

MARKER = "sparktf.scan"
MAX_SCANS = 256
_SCANS: OrderedDict[str, tuple[DataFrame, FileScan]] = OrderedDict()
_LOCK = threading.Lock()


def new_scan_id() -> str:
    return uuid.uuid4().hex


def mark(schema: T.StructType, scan_id: str) -> T.StructType:
    """``schema`` with every field's metadata carrying ``scan_id``.

    Examples
    --------
    >>> s = mark(T.StructType([T.StructField("x", T.LongType())]), "abc")
    >>> s["x"].metadata
    {'sparktf.scan': 'abc'}
    """
    return T.StructType([
        T.StructField(f.name, f.dataType, f.nullable, {**(f.metadata or {}), MARKER: scan_id})
        for f in schema.fields
    ])


def unmark(field: T.StructField) -> T.StructField:
    """``field`` without the scan marker (for columns carried into other DataFrames)."""
    meta = {k: v for k, v in (field.metadata or {}).items() if k != MARKER}
    return T.StructField(field.name, field.dataType, field.nullable, meta)


def remember(scan_id: str, df: DataFrame, scan: FileScan) -> None:
    """Note ``df`` as the scan ``scan_id`` (the oldest note goes past :data:`MAX_SCANS`)."""
    with _LOCK:
        _SCANS[scan_id] = (df, scan)
        _SCANS.move_to_end(scan_id)
        while len(_SCANS) > MAX_SCANS:
            _SCANS.popitem(last=False)


def _scan_id(schema: T.StructType) -> str | None:
    ids = {(f.metadata or {}).get(MARKER) for f in schema.fields}
    if len(ids) != 1:
        return None
    return next(iter(ids))


def scan_of(df: DataFrame) -> FileScan | None:
    """The :class:`~sparktf.model.fused.FileScan` behind ``df`` if ``df`` is exactly a
    ``read_tfrecords`` result or a projection of its columns, else None."""
    scan_id = _scan_id(df.schema)
    if scan_id is None:
        return None
    with _LOCK:
        noted = _SCANS.get(scan_id)
    if noted is None:
        log.info("TFModel: scan %s is no longer noted; general path", scan_id)
        return None
    original, scan = noted
    if same_plan(original, df):
        return scan
    return None


def same_plan(original: DataFrame, df: DataFrame) -> bool:
    """Whether ``df`` is ``original`` or a projection of its plain columns."""
    try:
        if df.columns == original.columns and original.sameSemantics(df):
            return True
        quoted = ["`" + c.replace("`", "``") + "`" for c in df.columns]
        return original.select(*quoted).sameSemantics(df)
    except Exception as exc:  # a column original lacks, a plan Spark cannot compare
        log.debug("not a plain scan: %s", exc)
        return False

