"""Query-level fusion for TFModel: score a plain file scan inside the reading task.

When the DataFrame handed to :meth:`TFModel.transform` is exactly a file scan — a
``read_tfrecords`` result, or a Parquet relation with at most a column projection — the
input columns need not travel Python → JVM → Python. Instead a ``spark.range`` of task
indices is mapped by a Python function that reads its task's pieces (TFRecord files and
splits of files as ``read_tfrecords`` planned them, or Parquet row groups packed the same
way: :mod:`sparktf.planning`), scores them, and returns only the outputs. Anything else
(filters, joins, computed columns) takes the general ``mapInArrow`` path; both give the same
rows.
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
from sparktf.planning import FileInfo, PackSettings, plan_tasks
from sparktf.spark.scans import same_plan, scan_of

log = logging.getLogger(__name__)


def fused_transform(dataset: DataFrame, plan: Plan, schema: T.StructType) -> DataFrame | None:
    """The fused plan for ``dataset``, or None when it is not a plain file scan."""
    spark = dataset.sparkSession
    scan = scan_of(dataset)
    pieces = [] if scan is not None else parquet_pieces(dataset)
    if scan is not None and scan.tasks:
        count = len(scan.tasks)
        fn = functools.partial(score_files, scan=scan, plan=plan)
    elif pieces:
        tasks = parquet_tasks(pieces, PackSettings(**_pack_options(spark)))
        count = len(tasks)
        fn = functools.partial(score_parquet, pieces=tuple(pieces), plan=plan, tasks=tasks)
    else:
        return None
    log.info("TFModel: fused scan in %d tasks", count)
    return spark.range(0, count, 1, count).mapInArrow(fn, schema)


def _pack_options(spark: Any) -> dict[str, int]:
    from sparktf.spark.confs import scan_options

    found = scan_options(spark)
    return {"max_partition_bytes": int(found["maxPartitionBytes"]),
            "open_cost_in_bytes": int(found["openCostInBytes"]),
            "min_partitions": int(found["minPartitions"])}


def parquet_tasks(pieces: list[ParquetPiece],
                  settings: PackSettings) -> tuple[tuple[int, ...], ...]:
    """Row groups packed into tasks by :mod:`sparktf.planning` (a row group is never cut):
    the piece indices of each task.

    Examples
    --------
    >>> pieces = [ParquetPiece("a", i, 10, size) for i, size in enumerate([50, 50, 30])]
    >>> parquet_tasks(pieces, PackSettings(max_partition_bytes=100, open_cost_in_bytes=0))
    ((0, 2), (1,))
    """
    files = [FileInfo(str(i), max(p.size, 1)) for i, p in enumerate(pieces)]
    return tuple(tuple(int(s.path) for s in task) for task in plan_tasks(files, settings))


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
                pieces += [ParquetPiece(path, i, meta.row_group(i).num_rows,
                                        _stored_size(meta.row_group(i)))
                           for i in range(meta.num_row_groups)]
    except OSError as exc:
        log.info("TFModel: Parquet footers not readable here (%s); general path", exc)
        return []
    return pieces


def _stored_size(row_group: Any) -> int:
    """The bytes a row group takes in its file (its column chunks, compressed)."""
    return sum(row_group.column(j).total_compressed_size for j in range(row_group.num_columns))


def _local_path(uri: str) -> str | None:
    """The local path of a file Spark lists (``file:/...``); None for a remote one, which
    Spark's own connector reads: no fusion."""
    location = fs.parse(uri)
    return location.path if location.is_local else None
