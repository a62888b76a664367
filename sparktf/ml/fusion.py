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
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from sparktf import fs
from sparktf.model.fused import ParquetPiece, score_files, score_parquet
from sparktf.model.runtime import Plan
from sparktf.spark.api import scan_of

log = logging.getLogger(__name__)


def fused_transform(dataset: DataFrame, plan: Plan, schema: T.StructType) -> DataFrame | None:
    """The fused plan for ``dataset``, or None when it is not a plain file scan."""
    spark = dataset.sparkSession
    scan = scan_of(dataset)
    slots = max(1, int(spark.sparkContext.defaultParallelism))
    if scan is not None and scan.files:
        groups = contiguous_groups([_size(f) for f in scan.files], TASKS_PER_SLOT * slots)
        fn = functools.partial(score_files, scan=scan, plan=plan, groups=groups)
    else:
        pieces = parquet_pieces(dataset)
        if not pieces:
            return None
        groups = contiguous_groups([p.rows for p in pieces], TASKS_PER_SLOT * slots)
        fn = functools.partial(score_parquet, pieces=tuple(pieces), plan=plan, groups=groups)
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
    """Row groups of a plain, unpartitioned Parquet scan; [] for anything else."""
    try:
        plan = dataset._jdf.queryExecution().optimizedPlan()
    except Exception:  # Spark Connect or an unexpected plan: no fusion
        return []
    if plan.nodeName() == "Project":
        if any(e.nodeName() != "AttributeReference" for e in _seq(plan.projectList())):
            return []
        plan = plan.child()
    if plan.nodeName() != "LogicalRelation" or not _is_plain_parquet(plan):
        return []
    import pyarrow.parquet as pq

    pieces = []
    for uri in dataset.inputFiles():
        location = fs.parse(uri)
        if not location.is_local:  # read by Spark's own connector: no fusion
            return []
        path = location.path
        with pq.ParquetFile(path) as handle:
            meta = handle.metadata
            pieces += [ParquetPiece(path, i, meta.row_group(i).num_rows)
                       for i in range(meta.num_row_groups)]
    return pieces


def _is_plain_parquet(relation: Any) -> bool:
    try:
        fs_relation = relation.relation()
        fmt = fs_relation.fileFormat().toString().lower()
        partitioned = fs_relation.partitionSchema().length() > 0
    except Exception:
        return False
    return "parquet" in fmt and not partitioned


def _seq(scala_seq: Any) -> list[Any]:
    return [scala_seq.apply(i) for i in range(scala_seq.size())]
