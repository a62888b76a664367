"""The session settings a scan plans with, read on the driver (or a Spark Connect client).

A Python data source plans in a worker that has no session, so the settings Spark's own file
sources read there are read here and handed over as read options (explicit options win):
``spark.sql.files.maxPartitionBytes``, ``spark.sql.files.openCostInBytes`` (when the session
does not set it: sparktf's own, :data:`DEFAULTS`), ``spark.sql.files.minPartitionNum`` (else
the session's default parallelism, as Spark does) and ``spark.sql.session.timeZone``.
:func:`pushdown` tells whether this PySpark asks a Python data source to take filters
(``spark.sql.python.filterPushdown.enabled``).

Examples
--------
>>> scan_options(spark)["maxPartitionBytes"]
'134217728'
"""

from __future__ import annotations

from typing import Any

from sparktf.spark.compat import default_parallelism
from sparktf.tfrecord.options import check_bytes

PUSHDOWN = "spark.sql.python.filterPushdown.enabled"
#: Used when the session does not set the key: Spark's default of maxPartitionBytes, and
#: sparktf's measured cost of opening one more file in a task. Spark's own default open cost
#: (4 MiB) prices a file at 4 MiB of reading, so 4,000 files of 80 KB made 125 tasks; but a
#: Python task costs ~30 ms of Spark's own work (JVM and worker: ~50 ms of CPU, as much as
#: reading ~8 MB), while one more file in a task costs sparktf ~0.1 ms (~32 KB of reading):
#: see bench/README.md, "Datasets as they come".
DEFAULTS = {"spark.sql.files.maxPartitionBytes": "128m",
            "spark.sql.files.openCostInBytes": "32k"}


def conf_value(spark: Any, key: str) -> str | None:
    try:
        value = spark.conf.get(key, None)
    except Exception:  # noqa: BLE001 - a key this Spark does not know
        return None
    return None if value in (None, "") else str(value)


def scan_options(spark: Any) -> dict[str, str]:
    """The session's file-scan settings as read options of :class:`ReadSettings`."""
    sizes = {name: check_bytes(name, conf_value(spark, key) or DEFAULTS[key])
             for name, key in (("maxPartitionBytes", "spark.sql.files.maxPartitionBytes"),
                               ("openCostInBytes", "spark.sql.files.openCostInBytes"))}
    minimum = conf_value(spark, "spark.sql.files.minPartitionNum")
    options = {name: str(value) for name, value in sizes.items()}
    options["minPartitions"] = minimum if minimum and minimum.isdigit() else str(
        default_parallelism(spark))
    options["timeZone"] = conf_value(spark, "spark.sql.session.timeZone") or "UTC"
    return options


def pushdown(spark: Any) -> bool:
    """Whether Spark asks Python data sources to take filters (PySpark 4.1+, conf on)."""
    from pyspark.sql.datasource import DataSourceReader

    return hasattr(DataSourceReader, "pushFilters") and (
        (conf_value(spark, PUSHDOWN) or "false").lower() == "true")
