"""The fused TFRecord -> model path gives exactly what the general DataFrame path gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sparktf
from sparktf.errors import TFRecordError
from sparktf.spark.errors import reraise
from tests.models import mnist_numpy

HINT = "struct<image:array<float>,label:array<float>,id:bigint>"


@pytest.fixture(scope="module")
def records(spark, tmp_path_factory) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(3)
    images = rng.random((300, 784), dtype=np.float32)
    rows = [(images[i].tolist(), np.eye(10)[i % 10].tolist(), i) for i in range(300)]
    df = spark.createDataFrame(rows, "image array<float>, label array<float>, id bigint")
    out = tmp_path_factory.mktemp("fused") / "tfr"
    sparktf.write_tfrecords(df.repartition(3), str(out))
    return out, images


def _model(export: Path, **kw) -> sparktf.TFModel:
    return sparktf.TFModel(exportDir=str(export), inputMapping={"image": "x"},
                           outputMapping={"prediction": "prediction", "Relu": "features"},
                           passthroughColumns=["id"], batchSize=64, **kw)


def test_fused_plan_reads_files_directly(spark, records, mnist_export) -> None:
    df = sparktf.read_tfrecords(spark, str(records[0]), schema_hint=HINT)
    fused = _model(mnist_export).transform(df)
    general = _model(mnist_export, fuseScan=False).transform(df)
    assert "Range" in fused._jdf.queryExecution().optimizedPlan().toString()
    assert "Range" not in general._jdf.queryExecution().optimizedPlan().toString()
    assert fused.schema == general.schema


def test_fused_and_general_outputs_are_identical(spark, records, mnist_export) -> None:
    path, images = records
    df = sparktf.read_tfrecords(spark, str(path), schema_hint=HINT)
    fused = sorted(_model(mnist_export).transform(df).collect(), key=lambda r: r.id)
    general = sorted(_model(mnist_export, fuseScan=False).transform(df).collect(),
                     key=lambda r: r.id)
    assert fused == general and len(fused) == 300
    expected, _ = mnist_numpy(images)
    assert [r.prediction for r in fused] == expected.tolist()


def test_a_derived_dataframe_takes_the_general_path(spark, records, mnist_export) -> None:
    df = sparktf.read_tfrecords(spark, str(records[0]), schema_hint=HINT).filter("id < 10")
    out = _model(mnist_export).transform(df)
    assert "Range" not in out._jdf.queryExecution().optimizedPlan().toString()
    assert sorted(r.id for r in out.collect()) == list(range(10))


def test_fused_path_reports_corrupt_files(spark, records, mnist_export, tmp_path) -> None:
    source = sorted(records[0].glob("part-*"))[0]
    bad = tmp_path / "bad.tfrecord"
    blob = bytearray(source.read_bytes())
    blob[5000] ^= 0xFF
    bad.write_bytes(bytes(blob))
    df = sparktf.read_tfrecords(spark, str(bad), schema_hint=HINT)
    with pytest.raises(TFRecordError, match=r"bad.tfrecord: record \d+ at byte offset \d+: "
                       "corrupt data CRC"), reraise():
        _model(mnist_export).transform(df).collect()


def test_parquet_scan_is_fused_and_identical(spark, records, mnist_export, tmp_path) -> None:
    source = sparktf.read_tfrecords(spark, str(records[0]), schema_hint=HINT)
    source.repartition(2).write.parquet(str(tmp_path / "pq"))
    df = spark.read.parquet(str(tmp_path / "pq"))
    fused = _model(mnist_export).transform(df)
    general = _model(mnist_export, fuseScan=False).transform(df)
    assert "Range" in fused._jdf.queryExecution().optimizedPlan().toString()
    key = lambda r: r.id  # noqa: E731
    assert sorted(fused.collect(), key=key) == sorted(general.collect(), key=key)
    projected = _model(mnist_export).transform(df.select("id", "image"))
    assert "Range" in projected._jdf.queryExecution().optimizedPlan().toString()
    computed = _model(mnist_export).transform(df.withColumn("id", df.id + 1))
    assert "Range" not in computed._jdf.queryExecution().optimizedPlan().toString()
    assert sorted(r.id for r in computed.collect()) == list(range(1, 301))


def test_many_small_files_are_scored_in_few_tasks(spark, records, mnist_export,
                                                  tmp_path) -> None:
    """One Spark task per piece costs more than scoring a small file: small files share
    tasks (packed as Spark's file sources pack them: here the 12 files' bytes, each with
    Spark's open cost of 4 MiB, spread over the 2 task slots)."""
    path, images = records
    many = tmp_path / "many"
    df = sparktf.read_tfrecords(spark, str(path), schema_hint=HINT)
    sparktf.write_tfrecords(df.repartition(12), str(many))
    fused = _model(mnist_export).transform(
        sparktf.read_tfrecords(spark, str(many), schema_hint=HINT))
    assert fused.rdd.getNumPartitions() == spark.sparkContext.defaultParallelism == 2
    rows = sorted(fused.collect(), key=lambda r: r.id)
    assert [r.id for r in rows] == list(range(300))
    assert [r.prediction for r in rows] == mnist_numpy(images)[0].tolist()


def test_scan_without_the_data_source_reads_the_same_rows(spark, records) -> None:
    """``sparktf infer``'s input: the same rows and schema as ``read_tfrecords``."""
    from sparktf.spark.api import plan_scan, scan_tfrecords
    from sparktf.spark.scans import scan_of

    path, _ = records
    light = scan_tfrecords(spark, plan_scan(str(path), None, {}))
    full = sparktf.read_tfrecords(spark, str(path))
    assert light.schema.simpleString() == full.schema.simpleString()
    assert scan_of(light) is not None and scan_of(full) is not None
    assert sorted(light.collect(), key=lambda r: r.id) == sorted(full.collect(),
                                                                 key=lambda r: r.id)
