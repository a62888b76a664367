"""The start-up floor of any Spark job that runs TensorFlow in its Python workers.

One whole process: start a ``local[*]`` SparkSession configured as ``sparktf infer`` does,
run one ``mapInArrow`` job of two tasks whose Python workers import TensorFlow (or not,
with ``--no-tf``), write to the ``noop`` sink, stop. No data, no model: what is left is the
JVM, the first job, the Python workers and their TensorFlow import. ``bench/run.py`` times
it beside ``sparktf infer`` to show how much of infer's fixed cost is Spark's own.

Usage: python bench/spark_floor.py [--no-tf]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pyarrow as pa


def _work(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    if os.environ.get("FLOOR_TF") == "1":
        import tensorflow  # noqa: F401
    yield from batches


def main() -> None:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["FLOOR_TF"] = "0" if "--no-tf" in sys.argv else "1"
    from pyspark.sql import SparkSession

    from sparktf.spark.session import (  # as sparktf infer's session
        LOCAL_JOB_JAVA_OPTIONS,
        configure_session,
    )

    builder = SparkSession.builder.master("local[*]").appName("spark floor").config(
        "spark.driver.host", "127.0.0.1")
    spark = configure_session(builder, java_options=" ".join(LOCAL_JOB_JAVA_OPTIONS)
                              ).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    spark.range(0, 2, 1, 2).mapInArrow(_work, "id long").write.format("noop").mode(
        "overwrite").save()
    spark.stop()
    sys.stdout.flush()
    os._exit(0)  # as the sparktf console script does once done


if __name__ == "__main__":
    main()
