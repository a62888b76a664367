"""Recognise a plain TFRecord scan, by its plan, on classic and Spark Connect sessions.

:func:`~sparktf.read_tfrecords` notes each scan it makes here. A DataFrame is a plain scan
(or a column projection of it) when Spark finds its plan semantically equal to a noted scan,
or to that scan's ``select`` of the same columns (:meth:`DataFrame.sameSemantics`, public on
both kinds of session). Only noted scans whose columns hold all of the DataFrame's columns,
with the same types, are compared, newest first (at most :data:`MAX_COMPARED`).
``df.alias("a")``, ``df.select(...)`` of plain columns, or the same DataFrame derived again
all count as the scan; a filter, a join, a limit or a computed column does not. Nothing is
added to the DataFrame itself: its schema is exactly the schema read.

The note is a bounded table (:data:`MAX_SCANS` most recent scans of this process): a
DataFrame whose scan fell out of it is scored through the general path, with the same rows.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from sparktf.model.fused import FileScan

log = logging.getLogger(__name__)

MAX_SCANS = 256
MAX_COMPARED = 8  # noted scans with fitting columns compared to a DataFrame, newest first
_SCANS: deque[tuple[DataFrame, dict[str, str], FileScan]] = deque(maxlen=MAX_SCANS)
_LOCK = threading.Lock()


def _types(df: DataFrame) -> dict[str, str]:
    return {f.name: f.dataType.simpleString() for f in df.schema.fields}


def remember(df: DataFrame, scan: FileScan) -> None:
    """Note ``df`` as a plain scan (the oldest note goes past :data:`MAX_SCANS`)."""
    with _LOCK:
        _SCANS.append((df, _types(df), scan))


def scan_of(df: DataFrame) -> FileScan | None:
    """The :class:`~sparktf.model.fused.FileScan` behind ``df`` if ``df`` is exactly a
    ``read_tfrecords`` result or a projection of its columns, else None."""
    try:
        wanted = _types(df)
    except Exception:  # noqa: BLE001 - a plan Spark cannot analyse: not ours to fuse
        return None
    with _LOCK:
        noted = [(original, scan) for original, types, scan in reversed(_SCANS)
                 if all(types.get(name) == kind for name, kind in wanted.items())]
    for original, scan in noted[:MAX_COMPARED]:
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

