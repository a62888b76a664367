"""Settings sparktf recommends for the SparkSessions that run it (driver side)."""

from __future__ import annotations

import shlex
import warnings
from typing import Any

#: Arrow Java's switches for its per-value bounds and null checks. Spark pays them for every
#: value it copies out of the Arrow batches that Python workers send back (the ``tfrecord``
#: reader, TFModel); Spark tests for null itself before it reads a value.
ARROW_JAVA_OPTIONS = (
    "-Darrow.enable_unsafe_memory_access=true",
    "-Darrow.enable_null_check_for_get=false",
)
JAVA_OPTION_KEYS = ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions")
#: The PySpark daemon that forks task workers with TensorFlow imported (sparktf.spark.daemon).
DAEMON = ("spark.python.daemon.module", "sparktf.spark.daemon")
#: Spark hands a query's filters to Python data sources (PySpark 4.1+): the ``tfrecord`` source
#: then skips the files of partition folders a filter rules out (sparktf.spark.pruning).
PUSHDOWN = ("spark.sql.python.filterPushdown.enabled", "true")


#: JVM options ``sparktf infer`` gives a local master's JVM (driver and executor in one), for
#: one job of scoring: the JIT's first tier only, and the serial collector. The fused path
#: leaves the JVM little per-record work (the outputs and their write), while the optimizing
#: JIT compiler spent 6-12 s of CPU compiling Spark for that one job; together they cut the
#: job's CPU by ~7 s (bench/README.md, "CPU account"). A user's own choice of either wins.
LOCAL_JOB_JAVA_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")


def merge_java_options(existing: str = "", extra: tuple[str, ...] = ARROW_JAVA_OPTIONS) -> str:
    """``existing`` JVM options followed by ``extra`` (default :data:`ARROW_JAVA_OPTIONS`),
    each unless ``existing`` already holds it or another choice of the same setting.

    Examples
    --------
    >>> merge_java_options("-XX:+UseG1GC", LOCAL_JOB_JAVA_OPTIONS)
    '-XX:+UseG1GC -XX:TieredStopAtLevel=1'
    """
    kept = existing.split()

    def chosen(option: str) -> bool:
        family = _family(option)
        return option in kept or family is not None and any(_family(k) == family for k in kept)

    return " ".join(kept + [o for o in extra if not chosen(o)])


def _family(option: str) -> str | None:
    """The setting ``option`` chooses (``-XX:+UseSerialGC``: "GC"), None for others."""
    if option.startswith("-XX:TieredStopAtLevel="):
        return "JIT tiers"
    if option.startswith("-XX:+Use") and option.endswith("GC"):
        return "GC"
    return None


def configure_session(builder: Any, *, java_options: str = "", preload: bool = True) -> Any:
    """Add sparktf's recommended settings to a SparkSession builder.

    With ``preload`` (the default), Python task workers are forked from a daemon that has
    imported TensorFlow once (``spark.python.daemon.module=sparktf.spark.daemon``): without
    it, each new worker reads the first second of its task with protobuf alone and then
    imports TensorFlow (3-4 s) for the rest (:mod:`sparktf.tfrecord.light`), and Spark ends a
    worker whenever a task stops reading early (``limit``, ``show``, ``take``).

    Turns off Arrow Java's bounds and null checks per value (the JVM system properties
    ``arrow.enable_unsafe_memory_access=true`` and ``arrow.enable_null_check_for_get=false``)
    on the driver and the executors. Spark copies every value of the Arrow batches that Python
    workers return through those checks: they took half of the JVM's CPU when reading
    MNIST-shaped records (``bench/README.md``). The trade, as Arrow's documentation states it:
    a malformed Arrow buffer would crash the JVM instead of raising an exception.

    Lets Spark hand filters to Python data sources
    (``spark.sql.python.filterPushdown.enabled=true``, where PySpark has it), so that a filter
    on a partition column skips the files of the folders it rules out.

    The settings take effect only when this builder starts the JVM (or, for executors, the
    SparkContext): call it before the process's first ``getOrCreate()``. A Spark Connect
    builder (``builder.remote(url)`` or ``SPARK_REMOTE``) is returned unchanged with a
    warning that prints the options for the server's start command: a client cannot set
    JVM options of a server that is already running.

    Parameters
    ----------
    builder : pyspark.sql.SparkSession.Builder
        The builder to configure.
    java_options : str, optional
        Your own extra JVM options for the driver and executors. A Spark setting holds one
        string, so pass them here: a later ``builder.config`` of the same keys replaces ours.
    preload : bool, optional
        Fork Python task workers from a daemon with TensorFlow imported (default True).

    Returns
    -------
    pyspark.sql.SparkSession.Builder
        The same builder, for chaining.

    Examples
    --------
    >>> from pyspark.sql import SparkSession
    >>> import sparktf
    >>> builder = sparktf.configure_session(SparkSession.builder.master("local[2]"))
    >>> # spark = builder.getOrCreate()
    """
    options = merge_java_options(java_options)
    from sparktf.spark.compat import is_remote_builder

    if is_remote_builder(builder):
        warnings.warn(server_options_message(options), UserWarning, stacklevel=2)
        return builder
    for key in JAVA_OPTION_KEYS:
        builder = builder.config(key, options)
    if preload:
        builder = builder.config(*DAEMON)
    if _has_pushdown():
        builder = builder.config(*PUSHDOWN)
    return builder


def _has_pushdown() -> bool:
    from pyspark.sql.datasource import DataSourceReader

    return hasattr(DataSourceReader, "pushFilters")


def server_options_message(options: str = "") -> str:
    """What to add to a Spark Connect server's start command for sparktf's settings.

    Examples
    --------
    >>> print(server_options_message())  # doctest: +ELLIPSIS
    configure_session: ... --conf 'spark.driver.extraJavaOptions=-Darrow...
    """
    options = options or merge_java_options()
    flags = " ".join(f"--conf {shlex.quote(f'{key}={options}')}" for key in JAVA_OPTION_KEYS)
    flags += f" --conf {DAEMON[0]}={DAEMON[1]}"
    if _has_pushdown():
        flags += f" --conf {PUSHDOWN[0]}={PUSHDOWN[1]}"
    return (
        "configure_session: this builder makes a Spark Connect client, which cannot set the "
        "server's JVM options; nothing was changed. Start the server with them instead: "
        f"sbin/start-connect-server.sh {flags}"
    )
