"""Shared pytest fixtures of the tests (the SparkSession ``spark`` is in ../conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import s3server

DATA = Path(__file__).parent / "data"
S3_ENDPOINT = s3server.configure()  # before any Spark session: workers inherit it


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the session, with a fresh bucket; the bucket name.
    The endpoint and dummy credentials are in ``os.environ`` (see tests/s3server.py)."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc = s3server.start(S3_ENDPOINT, log)
    try:
        yield s3server.make_bucket("sparktf-test")
    finally:
        s3server.stop(proc)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of small binary fixtures."""
    return DATA


# -- small SavedModels built once per session (see tests/models.py) ----------------------


@pytest.fixture(scope="session")
def mnist_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The TF1 MNIST-style SavedModel (x, y_, Relu, prediction; signature img -> pred)."""
    from tests.models import build_mnist

    return build_mnist(tmp_path_factory.mktemp("models") / "mnist_export")


@pytest.fixture(scope="session")
def tf2_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tf.saved_model.save model whose signature aliases differ from its tensor names."""
    from tests.models import build_tf2

    return build_tf2(tmp_path_factory.mktemp("models") / "tf2_export")


@pytest.fixture(scope="session")
def nobatch_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TF1 model with outputs that have no batch dimension."""
    from tests.models import build_nobatch

    return build_nobatch(tmp_path_factory.mktemp("models") / "nobatch_export")


@pytest.fixture(scope="session")
def types_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TF1 model with inputs and outputs of many dtypes and ranks."""
    from tests.models import build_types

    return build_types(tmp_path_factory.mktemp("models") / "types_export")


# -- Spark Connect (see tests/connect_server.py) -----------------------------------------


@pytest.fixture(scope="session")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Spark Connect server for the suite, on 127.0.0.1; stopped at the end even when
    tests fail, with a check that it left no process running."""
    from tests.connect_server import ConnectServer

    server = ConnectServer(tmp_path_factory.mktemp("connect-server")).start()
    try:
        yield server
    finally:
        left = server.stop()
        assert not left, f"the Connect server left processes running: {left}"


@pytest.fixture(scope="session")
def _connect_session(connect_server: Any) -> Iterator[Any]:
    from pyspark.sql.connect.session import SparkSession as RemoteSparkSession

    session = RemoteSparkSession.builder.remote(connect_server.url).getOrCreate()
    yield session
    session.stop()


@pytest.fixture
def connect_spark(_connect_session: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A Spark Connect client session. PySpark marks a process that holds one with
    ``SPARK_CONNECT_MODE_ENABLED`` (``pyspark.sql.functions`` then builds Connect columns);
    the mark is set for this test only, so classic tests around it keep classic columns."""
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    return _connect_session


@pytest.fixture(params=["classic", "connect"])
def any_spark(request: pytest.FixtureRequest) -> Any:
    """The classic session, then the Connect client session."""
    name = "spark" if request.param == "classic" else "connect_spark"
    return request.getfixturevalue(name)
