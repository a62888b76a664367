"""The one place where sparktf tells a Spark Connect session from a classic one.

Library code calls only public PySpark API that both kinds of session offer; the few
calls that exist on a classic session only (``sparkContext``) live here, each with a
Connect branch. ``tests/test_connect_api.py`` checks that no other module uses them.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

log = logging.getLogger(__name__)
_LOCAL = re.compile(r"local(?:-cluster)?\[(\d+)")


def is_connect(spark: Any) -> bool:
    """Whether ``spark`` is a Spark Connect client session (``SparkSession.builder.remote``).

    Examples
    --------
    >>> is_connect(object())
    False
    """
    return type(spark).__module__.startswith("pyspark.sql.connect")


def session_key(spark: Any) -> str:
    """An id of the session that artifacts are added to (Connect's session id, or the
    classic application's id)."""
    if is_connect(spark):
        return str(spark.session_id)
    return str(spark.conf.get("spark.app.id"))


def _conf(spark: Any, key: str) -> str | None:
    try:
        value = spark.conf.get(key, None)
    except Exception:  # a key the server refuses to show
        return None
    return None if value in (None, "") else str(value)


def default_parallelism(spark: Any) -> int:
    """The number of task slots Spark plans with (``SparkContext.defaultParallelism``).

    A Connect client has no ``SparkContext``: it reads ``spark.default.parallelism``, else
    the thread count of a ``local[N]`` master, else the partition count Spark gives
    ``spark.range`` by default (``leafNodeDefaultParallelism``), which costs one small job
    run inside the JVM.
    """
    if not is_connect(spark):
        return max(1, int(spark.sparkContext.defaultParallelism))
    for key in ("spark.default.parallelism", "spark.sql.leafNodeDefaultParallelism"):
        value = _conf(spark, key)
        if value and value.isdigit() and int(value) > 0:
            return int(value)
    match = _LOCAL.match(_conf(spark, "spark.master") or "")
    if match:
        return max(1, int(match.group(1)))
    from pyspark.sql import functions as F

    row = spark.range(0, 1 << 16).select(F.max(F.spark_partition_id())).first()
    return max(1, int(row[0]) + 1)


def on_this_host(spark: Any) -> bool:
    """Whether the executors of ``spark`` run on this machine (a classic session with a
    ``local`` master): a model made here needs no shipping then. A Spark Connect server may
    be anywhere: False."""
    if is_connect(spark):
        return False
    return (_conf(spark, "spark.master") or "").startswith("local")


def set_log_level(spark: Any, level: str) -> None:
    """``SparkContext.setLogLevel`` on a classic session; a Connect client leaves the
    server's log level alone (it is the server's, shared by every client)."""
    if is_connect(spark):
        log.debug("Spark Connect: the server's log level is left as it is")
        return
    spark.sparkContext.setLogLevel(level)


def add_archive(spark: Any, path: str) -> None:
    """Ship a local archive to the executors, unpacked under its file name for
    ``SparkFiles.get``: ``addArtifacts(archive=True)`` on Connect (the archive goes to this
    client's session only), ``SparkContext.addArchive`` on a classic session."""
    if is_connect(spark):
        spark.addArtifacts(path, archive=True)
    else:
        spark.sparkContext.addArchive(path)


def make_active(spark: Any) -> None:
    """Make ``spark`` the active session of the calling thread, on a classic session.

    Spark finds a Python data source (``format("tfrecord")``) through the *calling
    thread's* active session (a thread-local of the JVM), not the default one. A session
    built in another thread (``sparktf infer`` starts Spark in a thread while it checks the
    model) is active there only, so a later ``load``/``save`` in the main thread failed with
    ``DATA_SOURCE_NOT_FOUND``. PySpark offers no public setter; ``createDataFrame`` sets the
    active session of the calling thread before anything else (an empty local relation: no
    job). A Spark Connect session resolves data sources on the server: nothing to do.
    """
    if not is_connect(spark):
        spark.createDataFrame([], "sparktf_active int")


def is_remote_builder(builder: Any) -> bool:
    """Whether ``builder.getOrCreate()`` would return a Spark Connect client session
    (``builder.remote(url)``, or ``SPARK_REMOTE`` set). PySpark's builder shows its options
    only through its ``_options`` attribute."""
    if type(builder).__module__.startswith("pyspark.sql.connect"):
        return True
    options = getattr(builder, "_options", {}) or {}
    return "spark.remote" in options or bool(os.environ.get("SPARK_REMOTE"))
