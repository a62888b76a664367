"""The suite's SparkSession, shared by the tests and the docstring examples (doctest).

Docstring examples run with these names: ``spark`` (the session), ``examples`` (a small
TFRecord file), ``tmp`` (an empty folder), ``mnist_export`` (a TF1 SavedModel: ``x`` [None,
784] -> ``Relu`` [None, 128] -> ``prediction``), ``mnist_model`` (a TF1 checkpoint) and ``df``
(a DataFrame of 8 rows: ``id`` bigint, ``image`` array<float> of 784).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A local[2] SparkSession bound to loopback, shared by every test."""
    from pyspark.sql import SparkSession

    import sparktf

    session = sparktf.configure_session(
        SparkSession.builder.master("local[2]")
        .appName("sparktf-tests")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.executorEnv.TF_CPP_MIN_LOG_LEVEL", "2")
    ).getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def _doctest_names(request: pytest.FixtureRequest) -> None:
    """Fill ``doctest_namespace`` for docstring examples only (other tests skip the cost)."""
    if not isinstance(request.node, pytest.DoctestItem):
        return
    namespace = request.getfixturevalue("doctest_namespace")
    if "spark" not in namespace:
        namespace.update(request.getfixturevalue("_doctest_objects"))
    namespace["tmp"] = str(request.getfixturevalue("tmp_path"))


@pytest.fixture(scope="session")
def _doctest_objects(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import numpy as np

    from tests.models import Checkpoint, build_mnist

    root = tmp_path_factory.mktemp("doctest")
    images = np.random.default_rng(0).random((8, 784), dtype=np.float32)
    return {
        "spark": spark,
        "examples": str(Path(__file__).parent / "tests" / "data" / "examples.tfrecord"),
        "mnist_export": str(build_mnist(root / "mnist_export")),
        "mnist_model": str(Checkpoint(root / "mnist_model").dir),
        "df": spark.createDataFrame([(i, images[i].tolist()) for i in range(8)],
                                    "id bigint, image array<float>"),
    }
