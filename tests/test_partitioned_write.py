"""Partitioned writes: ``write_tfrecords(df, path, partition_by=[...])`` writes ``key=value/``
directories (the values out of the records), in every save mode, locally and on S3, and
reading the tree back gives the same rows."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest

import sparktf
from sparktf import fs, manifest
from sparktf._tf import example_pb2
from sparktf.errors import SchemaError, TFRecordError
from sparktf.tfrecord.framing import list_data_files, scan_records

ROWS = 40


def frame_of(spark: Any, n: int = ROWS, shift: int = 0) -> Any:
    return spark.range(shift, shift + n, numPartitions=3).selectExpr(
        "id", "array(cast(id as float)) AS x", "cast(id % 3 AS int) AS day",
        "CASE WHEN id % 4 = 0 THEN NULL WHEN id % 4 = 1 THEN 'a/b' ELSE 'c' END AS kind")


def rows(df: Any) -> list[tuple]:
    return sorted((tuple(r) for r in df.select("id", "x", "day", "kind").collect()), key=repr)


def test_a_partitioned_write_reads_back_the_same_rows(any_spark, tmp_path) -> None:
    out = tmp_path / "tree"
    df = frame_of(any_spark)
    sparktf.write_tfrecords(df, str(out), partition_by=["day", "kind"])
    folders = sorted(str(p.relative_to(out)) for p in out.glob("*/*"))
    assert folders == [f"day={d}/kind={k}" for d in range(3)
                       for k in ("__HIVE_DEFAULT_PARTITION__", "a%2Fb", "c")]
    assert (out / "_SUCCESS").exists()
    back = sparktf.read_tfrecords(any_spark, str(out), schema_hint="x array<float>")
    assert back.schema.simpleString() == "struct<x:array<float>,id:bigint,day:int,kind:string>"
    assert rows(back) == rows(df)
    record = next(scan_records(next(str(p) for p in out.rglob("part-*")), "none"))
    example = example_pb2().Example.FromString(record[2])
    assert sorted(example.features.feature) == ["id", "x"]  # values live in the path only


def test_save_modes_and_dynamic_overwrite(spark, tmp_path) -> None:
    out = str(tmp_path / "modes")
    sparktf.write_tfrecords(frame_of(spark), out, partition_by=["day"])
    with pytest.raises(TFRecordError, match="already exists"):
        sparktf.write_tfrecords(frame_of(spark), out, partition_by=["day"])
    sparktf.write_tfrecords(frame_of(spark, 3, 1000), out, mode="ignore", partition_by=["day"])
    assert sparktf.read_tfrecords(spark, out).count() == ROWS
    sparktf.write_tfrecords(frame_of(spark, 3, 1000), out, mode="append", partition_by=["day"])
    assert sparktf.read_tfrecords(spark, out).count() == ROWS + 3
    only_day_1 = frame_of(spark, 6, 2000).filter("day = 1")  # ids 2002, 2005
    sparktf.write_tfrecords(only_day_1, out, mode="overwrite", partition_by=["day"],
                            partition_overwrite_mode="dynamic")
    back = sparktf.read_tfrecords(spark, out)
    by_day = {d: sorted(r.id for r in back.filter(f"day = {d}").collect()) for d in range(3)}
    assert by_day[1] == [2002, 2005]  # replaced
    for day in (0, 2):  # kept, appended rows included
        assert by_day[day] == [i for i in [*range(ROWS), *range(1000, 1003)] if i % 3 == day]
    sparktf.write_tfrecords(only_day_1, out, mode="overwrite", partition_by=["day"])
    assert sorted(p.name for p in Path(out).iterdir()) == ["_SUCCESS", "day=1"]  # static


def test_the_session_setting_chooses_dynamic_overwrite(spark, tmp_path) -> None:
    out = str(tmp_path / "session")
    sparktf.write_tfrecords(frame_of(spark), out, partition_by=["day"])
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    try:
        sparktf.write_tfrecords(frame_of(spark, 1, 3000), out, mode="overwrite",
                                partition_by=["day"])
    finally:
        spark.conf.unset("spark.sql.sources.partitionOverwriteMode")
    assert sorted(p.name for p in Path(out).iterdir()) == ["_SUCCESS", "day=0", "day=1",
                                                          "day=2"]


def test_dates_and_timestamps_round_trip(spark, tmp_path) -> None:
    out = str(tmp_path / "times")
    df = spark.range(4, numPartitions=1).selectExpr(
        "id", "date_add(DATE'2024-01-30', cast(id % 2 AS int)) AS day",
        "timestamp_seconds(1706608800 + id % 2) AS at")
    sparktf.write_tfrecords(df, out, partition_by=["day", "at"])
    assert sorted(p.name for p in Path(out).iterdir())[1:] == ["day=2024-01-30", "day=2024-01-31"]
    back = sparktf.read_tfrecords(spark, out)
    assert back.schema.simpleString() == "struct<id:bigint,day:date,at:timestamp>"
    assert sorted(tuple(r) for r in back.collect()) == sorted(tuple(r) for r in df.collect())
    assert {r.day for r in back.collect()} == {dt.date(2024, 1, 30), dt.date(2024, 1, 31)}


def test_the_data_source_takes_the_option(spark, tmp_path) -> None:
    sparktf.register(spark)
    out = str(tmp_path / "option")
    frame_of(spark).write.format("tfrecord").option("partitionBy", "day").mode("append").save(out)
    back = spark.read.format("tfrecord").option("schemaHint", "x array<float>").load(out)
    assert rows(back) == rows(frame_of(spark))


@pytest.mark.parametrize(
    ("partition_by", "options", "error", "message"),
    [
        (["dya"], {}, SchemaError, r"partition column 'dya' is not a column.*closest: 'day'"),
        (["x"], {}, SchemaError, r"partition column 'x' has type array<float>"),
        (["id", "x", "day", "kind"], {}, SchemaError, r"are every column"),
        (["day"], {"record_type": "ByteArray"}, TFRecordError, r"recordType ByteArray"),
        (["day"], {"partition_overwrite_mode": "some"}, TFRecordError,
         r"partitionOverwriteMode: expected one of static, dynamic"),
    ],
)
def test_bad_partitioned_writes_fail_before_writing(spark, tmp_path, partition_by, options,
                                                    error, message) -> None:
    out = tmp_path / "bad"
    with pytest.raises(error, match=message):
        sparktf.write_tfrecords(frame_of(spark), str(out), partition_by=partition_by, **options)
    assert not out.exists()


def test_partitioned_writes_on_s3(spark, s3, tmp_path) -> None:
    out = f"s3://{s3}/{uuid.uuid4().hex[:8]}/tree"
    sparktf.write_tfrecords(frame_of(spark), out, partition_by=["day"])
    names = sorted(e.name for e in manifest.read(out))
    assert names and all(n.startswith(("day=0/", "day=1/", "day=2/")) for n in names)
    assert rows(sparktf.read_tfrecords(spark, out, schema_hint="x array<float>")) == rows(
        frame_of(spark))
    sparktf.write_tfrecords(frame_of(spark, 6, 2000).filter("day = 1"), out, mode="overwrite",
                            partition_by=["day"], partition_overwrite_mode="dynamic")
    back = sparktf.read_tfrecords(spark, out)
    assert sorted(r.id for r in back.filter("day = 1").collect()) == [2002, 2005]
    assert back.filter("day = 0").count() == len([i for i in range(ROWS) if i % 3 == 0])
    listed = {f.rsplit("/", 2)[-2] for f in list_data_files(out)}
    assert listed == {"day=0", "day=1", "day=2"}
    present = [name for name, _ in fs.walk(out)]  # the replaced objects are gone
    assert sum(n.startswith("day=1/") for n in present) == sum(
        n.startswith("day=1/") for n in (e.name for e in manifest.read(out)))


def test_partitioned_parquet_on_s3(spark, s3) -> None:
    """``sparktf infer --output s3://... --output_format parquet --partition_by``."""
    import pyarrow.parquet as pq

    from sparktf.spark.parquet_out import write_parquet

    out = f"s3://{s3}/{uuid.uuid4().hex[:8]}/pq"
    assert write_parquet(frame_of(spark), out, overwrite=False, partition_by=["day"]) == ROWS
    entries = manifest.read(out)
    assert {e.name.split("/")[0] for e in entries} == {"day=0", "day=1", "day=2"}
    ids = []
    for entry in entries:
        where = fs.parse(fs.child(out, entry.name))
        table = pq.read_table(where.path, filesystem=where.filesystem())
        assert "day" not in table.column_names
        day = int(entry.name.split("/")[0].split("=")[1])
        ids += [i for i in table.column("id").to_pylist() if i % 3 == day]
    assert sorted(ids) == list(range(ROWS))
