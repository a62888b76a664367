"""Query-level fusion for TFModel: score a plain file scan inside the reading task.

When the DataFrame handed to :meth:`TFModel.transform` is exactly a file scan — a
``read_tfrecords`` result, or a Parquet relation with at most a column projection — the
input columns need not travel Python → JVM → Python. Instead a ``spark.range`` of group
indices is mapped by a Python function that reads its group of pieces (TFRecord files, or
Parquet row groups), scores them, and returns only the outputs. Pieces are grouped into
runs of about equal size, two per task slot: each Spark task costs a few hundred
milliseconds of its own, so one task per small piece wastes a quarter of the time.
Anything else (filters, joins, computed columns) takes the general ``mapInArrow`` path;
both give the same rows.
"""

from __future__ import annotations

import functools
import logging
import os

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from sparktf import fs
from sparktf.model.fused import ParquetPiece, score_files, score_parquet
from sparktf.model.runtime import Plan
from sparktf.spark.compat import default_parallelism
from sparktf.spark.scans import same_plan, scan_of

log = logging.getLogger(__name__)


def fused_transform(dataset: DataFrame, plan: Plan, schema: T.StructType) -> DataFrame | None:
    """The fused plan for ``dataset``, or None when it is not a plain file scan."""
    spark = dataset.sparkSession
    scan = scan_of(dataset)
    pieces = [] if scan is not None else parquet_pieces(dataset)
    if scan is not None and scan.files:
        slots = default_parallelism(spark)
        groups = contiguous_groups([_size(f) for f in scan.files], TASKS_PER_SLOT * slots)
        fn = functools.partial(score_files, scan=scan, plan=plan, groups=groups)
    elif pieces:
        slots = default_parallelism(spark)
        groups = contiguous_groups([p.rows for p in pieces], TASKS_PER_SLOT * slots)
        fn = functools.partial(score_parquet, pieces=tuple(pieces), plan=plan, groups=groups)
    else:
        return None
    log.info("TFModel: fused scan of %d pieces in %d tasks", sum(map(len, groups)), len(groups))
    return spark.range(0, len(groups), 1, len(groups)).mapInArrow(fn, schema)


TASKS_PER_SLOT = 2


def contiguous_groups(sizes: list[int], parts: int) -> tuple[tuple[int, ...], ...]:
    """Split piece indices ``0..len(sizes)-1`` into at most ``parts`` runs of consecutive
    pieces with about equal total size (order kept, so output order follows the input).

    Examples
    --------
    >>> contiguous_groups([5, 5, 5, 5, 1, 1], 2)
    ((0, 1), (2, 3, 4, 5))
    >>> contiguous_groups([1, 1, 1], 4)
    ((0,), (1,), (2,))
    """
    if len(sizes) <= parts:
        return tuple((i,) for i in range(len(sizes)))
    weights = [max(s, 1) for s in sizes]
    total = sum(weights)
    groups: list[tuple[int, ...]] = []
    current: list[int] = []
    done = 0  # size of the pieces placed so far
    for index, weight in enumerate(weights):
        target = total * (len(groups) + 1) / parts  # where the open group should end
        closer_before = done + weight - target > target - done
        if current and closer_before and len(groups) < parts - 1:
            groups.append(tuple(current))
            current = []
        current.append(index)
        done += weight
    if current:
        groups.append(tuple(current))
    return tuple(groups)


def _size(path: str) -> int:
    if fs.is_remote(path):  # one request a file is not worth it: count it as one unit
        return 1
    try:
        return os.path.getsize(path)
    except OSError:
        return 1


def parquet_pieces(dataset: DataFrame) -> list[ParquetPiece]:
    """Row groups of a plain, unpartitioned Parquet scan (or a projection of its columns);
    [] for anything else.

    The files come from ``inputFiles()``; the scan is plain when Spark finds ``dataset``
    semantically equal to ``spark.read.parquet`` of their folder (or of the one file),
    optionally with the same column selection. Footers are read here, on the client: a
    client that cannot open them gets the general path.
    """
    try:
        uris = dataset.inputFiles()
    except Exception:  # a plan Spark cannot list files of
        return []
    paths = [_local_path(u) for u in uris]
    if not paths or any(p is None for p in paths):
        return []
    folders = {os.path.dirname(p) for p in paths}
    if len(folders) != 1:  # partitioned, or files from several folders
        return []
    spark = dataset.sparkSession
    candidates = [next(iter(folders))] + (paths if len(paths) == 1 else [])
    if not any(same_plan(spark.read.parquet(c), dataset) for c in candidates):
        return []
    import pyarrow.parquet as pq

    pieces = []
    try:
        for path in paths:
            with pq.ParquetFile(path) as handle:
                meta = handle.metadata
                pieces += [ParquetPiece(path, i, meta.row_group(i).num_rows)
                           for i in range(meta.num_row_groups)]
    except OSError as exc:
        log.info("TFModel: Parquet footers not readable here (%s); general path", exc)
        return []
    return pieces


def _local_path(uri: str) -> str | None:
    """The local path of a file Spark lists (``file:/...``); None for a remote one, which
    Spark's own connector reads: no fusion."""
    location = fs.parse(uri)
    return location.path if location.is_local else None
