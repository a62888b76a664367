"""Every public entry point from a Spark Connect client and from a classic session.

Each test runs twice (``any_spark``: the classic local session, then a client of the
suite's Connect server, tests/connect_server.py) and checks the same observable results.
Client and server share this machine's filesystem, so paths are the same on both sides.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel

import sparktf
from sparktf.cli.main import main
from sparktf.errors import TFRecordError
from sparktf.ml.fusion import fused_transform, parquet_pieces
from sparktf.spark.compat import default_parallelism, is_connect
from tests.models import mnist_numpy

HINT = "struct<image:array<float>,label:array<float>,id:bigint>"
ROWS = 120


@pytest.fixture(scope="module")
def records(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    images = np.random.default_rng(5).random((ROWS, 784), dtype=np.float32)
    rows = [(images[i].tolist(), np.eye(10)[i % 10].tolist(), i) for i in range(ROWS)]
    df = spark.createDataFrame(rows, "image array<float>, label array<float>, id bigint")
    out = tmp_path_factory.mktemp("connect") / "tfr"
    sparktf.write_tfrecords(df.repartition(3), str(out))
    return out, images


@pytest.fixture(scope="module")
def expected(records: tuple[Path, np.ndarray], mnist_export: Path) -> list[int]:
    return mnist_numpy(records[1])[0].tolist()


def _model(export: Path, **params: Any) -> sparktf.TFModel:
    return sparktf.TFModel(exportDir=str(export), inputMapping={"image": "x"},
                           outputMapping={"prediction": "prediction"},
                           passthroughColumns=["id"], batchSize=32, **params)


def _predictions(df: Any) -> list[int]:
    rows = sorted(df.collect(), key=lambda r: r.id)
    assert [r.id for r in rows] == list(range(ROWS))
    return [r.prediction for r in rows]


def test_session_kinds(spark: Any, connect_spark: Any) -> None:
    assert not is_connect(spark) and is_connect(connect_spark)
    # the server runs local[2] with spark.default.parallelism=2, as the classic session
    assert default_parallelism(connect_spark) == default_parallelism(spark) == 2


def test_format_and_read_tfrecords(any_spark: Any, records: tuple[Path, np.ndarray]) -> None:
    path, _ = records
    sparktf.register(any_spark)
    assert any_spark.read.format("tfrecord").load(str(path)).count() == ROWS
    df = sparktf.read_tfrecords(any_spark, str(path), schema_hint=HINT)
    assert df.schema.simpleString() == HINT
    rows = sorted(df.select("id", "label").collect())
    assert [r.id for r in rows] == list(range(ROWS))
    assert [r.label.index(1.0) for r in rows] == [i % 10 for i in range(ROWS)]


def test_write_tfrecords_modes(any_spark: Any, tmp_path: Path) -> None:
    df = any_spark.createDataFrame([(i, [float(i)]) for i in range(5)], "id bigint, v array<float>")
    out = str(tmp_path / "out")

    def count() -> int:
        return sparktf.read_tfrecords(any_spark, out).count()

    sparktf.write_tfrecords(df, out)  # errorifexists, on a new path
    for mode in ("errorifexists", "error"):
        with pytest.raises(TFRecordError, match="already exists"):
            sparktf.write_tfrecords(df, out, mode=mode)
    sparktf.write_tfrecords(df, out, mode="ignore")
    assert count() == 5
    sparktf.write_tfrecords(df, out, mode="append")
    assert count() == 10
    sparktf.write_tfrecords(df, out, mode="overwrite")
    assert count() == 5


def test_fusion_follows_the_plan(any_spark: Any, records: tuple[Path, np.ndarray],
                                 mnist_export: Path, expected: list[int]) -> None:
    df = sparktf.read_tfrecords(any_spark, str(records[0]), schema_hint=HINT)
    model = _model(mnist_export)
    plan, schema = model.plan(df.schema)
    cases = {"scan": (df, True), "alias": (df.alias("a"), True),
             "projection": (df.select("id", "image"), True),
             "filter": (df.filter("id >= 0"), False), "limit": (df.limit(ROWS), False)}
    for name, (derived, fuses) in cases.items():
        assert (fused_transform(derived, plan, schema) is not None) is fuses, name
    assert _predictions(model.transform(df.alias("a"))) == expected
    assert _predictions(model.transform(df.filter("id >= 0"))) == expected  # general path


def test_parquet_fusion(any_spark: Any, records: tuple[Path, np.ndarray], mnist_export: Path,
                        expected: list[int], tmp_path: Path) -> None:
    source = sparktf.read_tfrecords(any_spark, str(records[0]), schema_hint=HINT)
    source.select("id", "image").write.parquet(str(tmp_path / "pq"))
    df = any_spark.read.parquet(str(tmp_path / "pq"))
    assert parquet_pieces(df.alias("p")) and parquet_pieces(df.select("image", "id"))
    assert not parquet_pieces(df.filter("id >= 0"))
    assert _predictions(_model(mnist_export).transform(df)) == expected
    assert _predictions(_model(mnist_export).transform(df.filter("id >= 0"))) == expected


def test_ship_model(any_spark: Any, records: tuple[Path, np.ndarray], mnist_export: Path,
                    expected: list[int], tmp_path: Path) -> None:
    local = tmp_path / "local_copy"
    shutil.copytree(mnist_export, local)
    df = sparktf.read_tfrecords(any_spark, str(records[0]), schema_hint=HINT)
    fused = _model(local, shipModel=True).transform(df)
    local.rename(tmp_path / "moved_away")  # workers can only use the shipped copy
    assert _predictions(fused) == expected


def test_save_load_and_pipeline(any_spark: Any, records: tuple[Path, np.ndarray],
                                mnist_export: Path, expected: list[int], tmp_path: Path) -> None:
    df = sparktf.read_tfrecords(any_spark, str(records[0]), schema_hint=HINT)
    model = _model(mnist_export)
    target = str(tmp_path / "tfmodel")
    model.save(target)
    model.write().overwrite().save(target)
    loaded = sparktf.TFModel.load(target)
    assert loaded.getOutputMapping() == {"prediction": "prediction"}
    assert (loaded.getBatchSize(), loaded.getPassthroughColumns()) == (32, ["id"])
    fitted = Pipeline(stages=[loaded]).fit(df)
    fitted.write().overwrite().save(str(tmp_path / "pipeline"))
    reloaded = PipelineModel.load(str(tmp_path / "pipeline"))
    assert _predictions(reloaded.transform(df)) == expected


def test_streaming_dataframe(any_spark: Any, records: tuple[Path, np.ndarray],
                             mnist_export: Path, expected: list[int], tmp_path: Path) -> None:
    source = str(tmp_path / "stream_in")
    df = sparktf.read_tfrecords(any_spark, str(records[0]), schema_hint=HINT)
    df.select("id", "image").write.parquet(source)
    stream = any_spark.readStream.schema("id bigint, image array<float>").parquet(source)
    name = f"tfmodel_stream_{'connect' if is_connect(any_spark) else 'classic'}"
    query = (_model(mnist_export).transform(stream).writeStream.format("memory")
             .queryName(name).option("checkpointLocation", str(tmp_path / "checkpoint"))
             .trigger(availableNow=True).start())
    query.awaitTermination(120)
    assert query.exception() is None
    assert _predictions(any_spark.table(name)) == expected


def _infer_args(export: Path, source: Path, out: Path) -> list[str]:
    return ["infer", "--export_dir", str(export), "--input", str(source),
            "--schema_hint", HINT, "--input_mapping", '{"image": "x", "label": "y_"}',
            "--output_mapping", '{"prediction": "prediction", "Relu": "features"}',
            "--keep_columns", "id", "--output", str(out)]


def _json_rows(out: Path) -> list[dict]:
    rows = []
    for part in sorted(out.glob("part-*.json")):
        rows += [json.loads(line) for line in part.read_text().splitlines()]
    return sorted(rows, key=lambda r: r["id"])


def test_infer_remote_matches_a_classic_run(spark: Any, connect_server: Any,
                                            records: tuple[Path, np.ndarray],
                                            mnist_export: Path, expected: list[int],
                                            tmp_path: Path) -> None:
    classic, remote = tmp_path / "classic", tmp_path / "remote"
    assert main(_infer_args(mnist_export, records[0], classic)) == 0
    env = {**os.environ, "SPARK_REMOTE": connect_server.url,
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    command = [sys.executable, "-m", "sparktf", *_infer_args(mnist_export, records[0], remote)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Skipping" not in done.stderr  # PySpark's exit 0 without the Connect packages
    assert f"sparktf infer: {ROWS} rows in" in done.stderr.strip().splitlines()[-1]
    rows = _json_rows(remote)
    assert [r["prediction"] for r in rows] == expected
    assert rows == _json_rows(classic)  # same predictions, features and ids
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    last = again.stderr.strip().splitlines()[-1]
    assert again.returncode == 1 and "already exists on the server" in last, again.stderr
    assert _json_rows(remote) == rows  # the refused run left the output as it was
    missing = [*command[:command.index("--input") + 1], str(records[0] / "nope-*"),
               *command[command.index("--input") + 2:-1], str(tmp_path / "missing")]
    failed = subprocess.run(missing, env=env, capture_output=True, text=True, timeout=300)
    last = failed.stderr.strip().splitlines()[-1]
    assert failed.returncode == 1 and "nope-*: matches nothing" in last, failed.stderr[-2000:]


def test_infer_refuses_master_with_remote(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    args = _infer_args(tmp_path / "m", tmp_path / "in", tmp_path / "out")
    code = main([*args, "--master", "local[1]", "--remote", "sc://127.0.0.1:1"])
    assert code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--master and --remote" in last
