"""TFRecord → Parquet by the Python tasks (``tfrecords_to_parquet``, ``sparktf convert``):
the rows and types ``read_tfrecords`` gives, read back by Spark, under the commit protocol
(local, Connect, S3), and the task writer's row groups on their own."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparktf
from sparktf import fs, manifest
from sparktf.errors import SchemaError, SparkTFError, TFRecordError
from sparktf.spark import commit
from sparktf.spark.parquet_parts import PartTarget, write_parts
from sparktf.tfrecord.framing import RecordFileWriter

HINT = "image array<float>"


def write_digits(folder: Path, files: int = 3, per_file: int = 40, *, start: int = 0) -> None:
    from sparktf._tf import example_pb2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for part in range(files):
        with RecordFileWriter(str(folder / f"part-{part}.tfrecord")) as writer:
            for i in range(start + part * per_file, start + (part + 1) * per_file):
                example = example_pb2().Example()
                feature = example.features.feature
                feature["id"].int64_list.value.append(i)
                feature["image"].float_list.value.extend(rng.random(6, dtype=np.float32))
                feature["name"].bytes_list.value.append(f"n{i % 7}".encode())
                writer.write(example.SerializeToString())


def rows(df: Any) -> list[tuple]:
    return sorted(tuple(r) for r in df.select(*sorted(df.columns)).collect())


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("convert") / "tfr"
    write_digits(folder)
    return folder


def test_spark_reads_back_the_rows_and_types_of_read_tfrecords(any_spark, digits,
                                                               tmp_path) -> None:
    out = str(tmp_path / "pq")
    assert sparktf.tfrecords_to_parquet(any_spark, str(digits), out, schema_hint=HINT,
                                        max_partition_bytes=2000) == 120
    source = sparktf.read_tfrecords(any_spark, str(digits), schema_hint=HINT)
    back = any_spark.read.parquet(out)
    assert {f.name: f.dataType for f in back.schema} == {f.name: f.dataType
                                                           for f in source.schema}
    assert rows(back) == rows(source)
    names = sorted(p.name for p in Path(out).iterdir())
    assert names[0] == "_SUCCESS" and len(names) > 2, names  # one file per task
    assert all(n.endswith(".snappy.parquet") for n in names[1:]), names


def test_partitioned_input_and_output_trees(spark, tmp_path) -> None:
    tree = tmp_path / "tree"
    write_digits(tree / "day=1" / "kind=a", 1, 10)
    write_digits(tree / "day=2" / "kind=b", 2, 10, start=100)
    out = tmp_path / "by-kind"
    assert sparktf.tfrecords_to_parquet(spark, str(tree), str(out), schema_hint=HINT,
                                        partition_by=["kind"], codec="zstd") == 30
    assert sorted(p.name for p in out.iterdir()) == ["_SUCCESS", "kind=a", "kind=b"]
    one = next(out.rglob("*.parquet"))
    assert one.name.endswith(".zstd.parquet")
    assert pq.ParquetFile(one).metadata.row_group(0).column(0).compression == "ZSTD"
    assert "kind" not in pq.read_schema(one).names  # the value lives in the path
    source = sparktf.read_tfrecords(spark, str(tree), schema_hint=HINT)
    assert rows(spark.read.parquet(str(out))) == rows(source)


def test_save_modes_and_a_failed_job(spark, digits, tmp_path) -> None:
    out = tmp_path / "modes"
    sparktf.tfrecords_to_parquet(spark, str(digits), str(out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(TFRecordError, match=rf"^output path {out} already exists \(\d+ "
                       r"entries\); use mode='overwrite'"):
        sparktf.tfrecords_to_parquet(spark, str(digits), str(out))
    assert sparktf.tfrecords_to_parquet(spark, str(digits), str(out), mode="ignore") == 0
    broken = tmp_path / "broken"
    write_digits(broken, 2, 30)
    data = (broken / "part-1.tfrecord").read_bytes()
    (broken / "part-1.tfrecord").write_bytes(data[:100] + b"\xff" + data[101:])
    with pytest.raises(TFRecordError, match=r"part-1\.tfrecord"):
        sparktf.tfrecords_to_parquet(spark, str(broken), str(out), mode="overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    assert not (out / commit.TEMPORARY).exists()
    sparktf.tfrecords_to_parquet(spark, str(broken / "part-0.tfrecord"), str(out),
                                 mode="overwrite")
    assert spark.read.parquet(str(out)).count() == 30
    fresh = tmp_path / "fresh"
    with pytest.raises(TFRecordError):
        sparktf.tfrecords_to_parquet(spark, str(broken), str(fresh))
    assert not fresh.exists()


def test_no_records_give_a_file_with_the_schema(spark, tmp_path) -> None:
    empty = tmp_path / "empty.tfrecord"
    with RecordFileWriter(str(empty)):
        pass
    out = tmp_path / "none"
    assert sparktf.tfrecords_to_parquet(spark, str(empty), str(out),
                                        schema_hint="id bigint, image array<float>") == 0
    back = spark.read.parquet(str(out))
    assert back.count() == 0 and back.schema.simpleString() == \
        "struct<id:bigint,image:array<float>>"


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "append"}, r"^mode: expected one of errorifexists, error, overwrite, ignore, "
                         r"found 'append'$"),
    ({"codec": "lzo"}, r"^codec: expected one of none, snappy, gzip, brotli, lz4, zstd, "
                       r"found 'lzo'$"),
    ({"partition_by": ["nmae"]}, r"^partition column 'nmae' is not a column .*'name'"),
    ({"max_partition_byte": 5}, r"max_partition_byte"),
])
def test_bad_arguments_are_refused_before_any_job(spark, digits, tmp_path, kwargs,
                                                  match) -> None:
    out = tmp_path / "never"
    with pytest.raises((SparkTFError, SchemaError), match=match):
        sparktf.tfrecords_to_parquet(spark, str(digits), str(out), **kwargs)
    assert not out.exists()


def test_s3_output_commits_a_manifest_and_a_failure_leaves_nothing(spark, digits, s3,
                                                                   tmp_path) -> None:
    from tests import s3server

    url = f"s3://{s3}/{uuid.uuid4().hex[:8]}/pq"
    assert sparktf.tfrecords_to_parquet(spark, str(digits), url, schema_hint=HINT,
                                        partition_by=["name"]) == 120
    entries = manifest.read(url)
    assert entries is not None and sum(e.records for e in entries) == 120
    assert all(e.name.startswith("name=n") for e in entries)
    table = pa.concat_tables(pq.read_table(pa.BufferReader(
        fs.open_input(fs.child(url, e.name)).read())) for e in entries)
    assert sorted(table.column("id").to_pylist()) == list(range(120))
    broken = tmp_path / "broken"
    write_digits(broken, 2, 30)
    (broken / "part-1.tfrecord").write_bytes(b"not a tfrecord file at all")
    failed = f"s3://{s3}/{uuid.uuid4().hex[:8]}/pq"
    with pytest.raises(TFRecordError):
        sparktf.tfrecords_to_parquet(spark, str(broken), failed)
    prefix = failed[len(f"s3://{s3}/"):]
    assert not [k for k in s3server.keys(s3) if k.startswith(prefix)]


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 300), min_size=1, max_size=6),
       limit=st.sampled_from([1, 4000, 1 << 20]))
def test_the_task_writer_keeps_every_row_in_order(tmp_path_factory, sizes, limit) -> None:
    """Batches of any sizes, gathered into row groups of about ``limit`` bytes, read back
    as they went in."""
    out = str(tmp_path_factory.mktemp("parts"))
    commit.start_job(out, "j")
    start = np.cumsum([0, *sizes])
    batches = [pa.RecordBatch.from_pydict(
        {"id": np.arange(a, b, dtype=np.int64),
         "v": pa.array([[float(i)] * (i % 3) for i in range(a, b)], pa.list_(pa.float32()))})
        for a, b in zip(start[:-1], start[1:])]
    results = list(write_parts(iter(batches), PartTarget(out=out, job="j",
                                                         row_group_bytes=limit)))
    if not sum(sizes):
        assert results == []  # no rows, no file
        return
    done = pa.Table.from_batches(results)
    (staged,) = done.column("staged").to_pylist()
    back = pq.read_table(staged)
    assert back.column("id").to_pylist() == list(range(int(start[-1])))
    assert back.column("v").to_pylist() == [[float(i)] * (i % 3) for i in range(int(start[-1]))]
    groups = pq.ParquetFile(staged).metadata.num_row_groups
    if limit == 1:  # each batch its own row group
        assert groups == len([s for s in sizes if s])
    elif limit == 1 << 20:  # all in one
        assert groups == 1
