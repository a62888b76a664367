"""Query-level fusion for TFModel: score a plain file scan inside the reading task.

When the DataFrame handed to :meth:`TFModel.transform` is exactly a file scan — a
``read_tfrecords`` result, or a Parquet relation with at most a column projection — the
input columns need not travel Python → JVM → Python. Instead a ``spark.range`` of piece
indices is mapped by a Python function that reads its piece (one TFRecord file, or one
Parquet row group), scores it, and returns only the outputs. Anything else (filters, joins,
computed columns) takes the general ``mapInArrow`` path; both give the same rows.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from sparktf.model.fused import ParquetPiece, score_files, score_parquet
from sparktf.model.runtime import Plan
from sparktf.spark.api import scan_of

log = logging.getLogger(__name__)


def fused_transform(dataset: DataFrame, plan: Plan, schema: T.StructType) -> DataFrame | None:
    """The fused plan for ``dataset``, or None when it is not a plain file scan."""
    spark = dataset.sparkSession
    scan = scan_of(dataset)
    if scan is not None and scan.files:
        fn = functools.partial(score_files, scan=scan, plan=plan)
        count = len(scan.files)
    else:
        pieces = parquet_pieces(dataset)
        if not pieces:
            return None
        fn = functools.partial(score_parquet, pieces=tuple(pieces), plan=plan)
        count = len(pieces)
    log.info("TFModel: fused scan of %d pieces", count)
    return spark.range(0, count, 1, count).mapInArrow(fn, schema)


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
        path = uri[len("file:"):] if uri.startswith("file:") else uri
        if "://" in path:
            return []
        path = "/" + path.lstrip("/")
        with pq.ParquetFile(path) as handle:
            pieces += [ParquetPiece(path, i) for i in range(handle.num_row_groups)]
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
