"""Session settings sparktf recommends, and per-process set-up of TensorFlow."""

from __future__ import annotations

import gc
from typing import Any

import pytest

import sparktf
from sparktf.spark.session import ARROW_JAVA_OPTIONS, JAVA_OPTION_KEYS, merge_java_options


class RecordingBuilder:
    """Stands in for ``SparkSession.builder``: records what is configured."""

    def __init__(self) -> None:
        self.conf: dict[str, str] = {}

    def config(self, key: str, value: str) -> RecordingBuilder:
        self.conf[key] = value
        return self

    def appName(self, name: str) -> RecordingBuilder:  # noqa: N802 - Spark's spelling
        return self

    def master(self, master: str) -> RecordingBuilder:
        return self.config("master", master)

    def getOrCreate(self) -> Any:  # noqa: N802
        class Context:
            def setLogLevel(self, level: str) -> None:  # noqa: N802
                pass

        return type("Session", (), {"sparkContext": Context(), "conf": self.conf})()


def test_the_suite_session_runs_without_arrow_checks(spark) -> None:
    system = spark.sparkContext._jvm.java.lang.System
    assert system.getProperty("arrow.enable_unsafe_memory_access") == "true"
    assert system.getProperty("arrow.enable_null_check_for_get") == "false"


@pytest.mark.parametrize(
    ("mine", "expected"),
    [
        ("", " ".join(ARROW_JAVA_OPTIONS)),
        ("-Xss4m", "-Xss4m " + " ".join(ARROW_JAVA_OPTIONS)),
        (" ".join(ARROW_JAVA_OPTIONS) + " -Dx=1", " ".join(ARROW_JAVA_OPTIONS) + " -Dx=1"),
    ],
)
def test_java_options_keep_the_users_first_and_add_ours_once(mine: str, expected: str) -> None:
    assert merge_java_options(mine) == expected


def test_configure_session_sets_driver_and_executor_options() -> None:
    builder = RecordingBuilder()
    assert sparktf.configure_session(builder, java_options="-Dmine=1") is builder
    for key in JAVA_OPTION_KEYS:
        assert builder.conf[key] == "-Dmine=1 " + " ".join(ARROW_JAVA_OPTIONS)


def test_infer_session_adds_arrow_options_after_the_users_conf(monkeypatch) -> None:
    import pyspark.sql

    from sparktf.cli.infer import spark_session

    builder = RecordingBuilder()
    monkeypatch.setattr(pyspark.sql, "SparkSession", type("S", (), {"builder": builder}))
    confs = {"spark.executor.extraJavaOptions": "-Xss8m", "spark.sql.shuffle.partitions": "3"}
    spark_session("local[2]", confs, verbose=False)
    assert builder.conf["spark.executor.extraJavaOptions"] == "-Xss8m " + " ".join(
        ARROW_JAVA_OPTIONS)
    driver = builder.conf["spark.driver.extraJavaOptions"]
    assert driver.startswith(" ".join(ARROW_JAVA_OPTIONS) + " -Dlog4j2.configurationFile=file:")
    assert builder.conf["spark.sql.shuffle.partitions"] == "3"
    assert builder.conf["spark.python.daemon.module"] == "sparktf.spark.daemon"
    assert builder.conf["spark.ui.showConsoleProgress"] == "false"  # stderr is no terminal


def test_configure_session_preloads_tensorflow_in_the_workers_daemon() -> None:
    builder = RecordingBuilder()
    sparktf.configure_session(builder)
    assert builder.conf["spark.python.daemon.module"] == "sparktf.spark.daemon"
    assert "spark.python.daemon.module" not in sparktf.configure_session(
        RecordingBuilder(), preload=False).conf


def test_task_workers_are_forked_with_tensorflow_imported(spark) -> None:
    def probe(_: object) -> tuple[bool, str]:
        import os
        import sys

        with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
            parent = handle.read().replace(b"\0", b" ").decode()
        return "tensorflow" in sys.modules, parent

    loaded, parent = spark.sparkContext.parallelize([0], 1).map(probe).collect()[0]
    assert loaded and "sparktf.spark.daemon pyspark.worker" in parent


def test_tensorflow_objects_are_kept_out_of_the_cyclic_gc() -> None:
    from sparktf._tf import tensorflow

    tensorflow()
    # PySpark's daemon calls gc.collect() after each task of a reused worker; TensorFlow's
    # module objects must not be walked each time
    assert gc.get_freeze_count() > 100_000


def test_freeze_survivors_frees_garbage_and_freezes_what_lives() -> None:
    import weakref

    from sparktf._tf import freeze_survivors

    class Node:
        pass

    garbage, kept = Node(), Node()
    garbage.self, kept.self = garbage, kept  # cycles: only the cyclic GC frees them
    gone = weakref.ref(garbage)
    del garbage
    before = gc.get_freeze_count()
    freeze_survivors()
    assert gone() is None  # collected, not frozen forever
    assert gc.get_freeze_count() > before
    assert not any(o is kept for o in gc.get_objects())  # frozen objects are not tracked
