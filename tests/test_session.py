"""Session settings sparktf recommends, and per-process set-up of TensorFlow."""

from __future__ import annotations

import gc
from typing import Any

import pytest

import sparktf
from sparktf.spark.session import (
    ARROW_JAVA_OPTIONS,
    JAVA_OPTION_KEYS,
    LOCAL_JOB_JAVA_OPTIONS,
    merge_java_options,
)


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


@pytest.mark.parametrize(
    ("mine", "expected"),
    [
        ("", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"),
        ("-XX:+UseG1GC", "-XX:+UseG1GC -XX:TieredStopAtLevel=1"),
        ("-XX:TieredStopAtLevel=4 -Xmx2g", "-XX:TieredStopAtLevel=4 -Xmx2g -XX:+UseSerialGC"),
        ("-XX:+UseCompressedOops", "-XX:+UseCompressedOops -XX:TieredStopAtLevel=1 "
         "-XX:+UseSerialGC"),
    ],
)
def test_infers_local_jvm_options_yield_to_the_users_choice(mine: str, expected: str) -> None:
    assert merge_java_options(mine, LOCAL_JOB_JAVA_OPTIONS) == expected


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
    assert driver.startswith(" ".join(ARROW_JAVA_OPTIONS + LOCAL_JOB_JAVA_OPTIONS)
                             + " -Dlog4j2.configurationFile=file:")
    assert builder.conf["spark.sql.shuffle.partitions"] == "3"
    assert builder.conf["spark.python.daemon.module"] == "sparktf.spark.daemon"
    assert builder.conf["spark.ui.showConsoleProgress"] == "false"  # stderr is no terminal


def test_infer_session_keeps_jit_and_gc_defaults_off_local_masters(monkeypatch) -> None:
    import pyspark.sql

    from sparktf.cli.infer import spark_session

    builder = RecordingBuilder()
    monkeypatch.setattr(pyspark.sql, "SparkSession", type("S", (), {"builder": builder}))
    spark_session("spark://10.0.0.1:7077", {}, verbose=False)
    driver = builder.conf["spark.driver.extraJavaOptions"]
    assert not any(option in driver for option in LOCAL_JOB_JAVA_OPTIONS)


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


QUICK_START = """
import sys
from pyspark.sql import SparkSession
import sparktf
spark = sparktf.configure_session(SparkSession.builder.master("local[2]")).getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
df = sparktf.read_tfrecords(spark, sys.argv[1])
model = sparktf.TFModel(exportDir=sys.argv[2], inputMapping={"vals": "x"},
                        outputMapping={"doubled": "doubled"})
df.show(2)
model.transform(df).show(2)
print("done", df.limit(3).count())
"""


def test_a_script_ending_after_show_prints_no_worker_traceback(tmp_path) -> None:
    """``show()`` stops reading tasks early; neither PySpark's daemon nor TensorFlow may
    print to the console then (the script runs without TF_CPP_MIN_LOG_LEVEL)."""
    import os
    import subprocess
    import sys

    from sparktf._tf import example_pb2
    from sparktf.tfrecord.framing import RecordFileWriter
    from tests.models import build_rowsum

    model = build_rowsum(tmp_path / "rowsum", width=4)
    data = tmp_path / "vals"
    data.mkdir()
    for part in range(3):
        with RecordFileWriter(str(data / f"part-{part}.tfrecord")) as writer:
            for i in range(3000):
                example = example_pb2().Example()
                example.features.feature["vals"].float_list.value.extend([float(i)] * 4)
                writer.write(example.SerializeToString())
    script = tmp_path / "quick.py"
    script.write_text(QUICK_START)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, str(script), str(data), str(model)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("done 3")
    for noise in ("Traceback", "BrokenPipeError", "I0000", "cpu_feature_guard"):
        assert noise not in done.stderr, done.stderr[-3000:]
