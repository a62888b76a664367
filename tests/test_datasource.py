"""The ``tfrecord`` data source through Spark: reading, writing, inference, modes, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import sparktf
from sparktf.errors import SchemaError, TFRecordError
from sparktf.spark.errors import reraise
from sparktf.tfrecord.framing import RecordFileWriter

ALL_TYPES = (
    "id bigint, n int, f float, d double, flag boolean, s string, raw binary, "
    "fa array<float>, da array<double>, ia array<bigint>, ba array<boolean>, sa array<string>"
)
ROWS = [
    (1, 7, 1.5, 2.25, True, "héllo", b"\x00\x01", [1.0, 2.0], [0.5], [1, -2], [True, False], ["a"]),
    (2, None, None, None, False, "", b"", [], [], [], [], []),
    (3, -1, -0.0, 1e10, None, None, None, None, None, None, None, None),
]


def _tf_rows(path: Path, pattern: str = "*.tfrecord*") -> list:
    import tensorflow as tf

    files = sorted(str(p) for p in path.glob(pattern))
    kind = "GZIP" if files[0].endswith(".gz") else ("ZLIB" if files[0].endswith(".zlib") else "")
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type=kind)]


@pytest.mark.parametrize("compression", ["none", "gzip", "zlib"])
def test_round_trip_every_type(spark, tmp_path: Path, compression: str) -> None:
    df = spark.createDataFrame(ROWS, ALL_TYPES)
    out = tmp_path / "out"
    sparktf.write_tfrecords(df, str(out), compression=compression)
    names = sorted(p.name for p in out.iterdir())
    assert "_SUCCESS" in names and not (out / "_temporary").exists()
    suffix = {"none": ".tfrecord", "gzip": ".tfrecord.gz", "zlib": ".tfrecord.zlib"}[compression]
    assert all(n.endswith(suffix) for n in names if n != "_SUCCESS")
    assert len(_tf_rows(out)) == 3  # tf.data reads what we wrote
    back = sparktf.read_tfrecords(spark, str(out), schema_hint=ALL_TYPES,
                                  compression=None if compression == "none" else compression)
    assert back.schema.simpleString() == df.schema.simpleString()
    got = sorted(back.collect(), key=lambda r: r.id)
    # doubles are stored as float32; the values above are exact in float32
    want = sorted(df.collect(), key=lambda r: r.id)
    assert [r.asDict() for r in got] == [r.asDict() for r in want]


def test_infers_tf_written_fixture(spark, data_dir: Path) -> None:
    df = sparktf.read_tfrecords(spark, str(data_dir / "examples.tfrecord"))
    assert df.schema.simpleString() == (
        "struct<id:bigint,name:string,tags:array<string>,vals:array<float>>"
    )
    rows = {r.id: r for r in df.collect()}
    assert rows[1].vals == [0.0, 0.5] and rows[0].vals == [0.0]
    assert rows[3].name is None and rows[3].tags == [b"t0".decode(), "t1", "t2"]
    assert rows[0].tags == []


def test_gzip_detected_without_gz_name_and_plain_file_named_gz(spark, data_dir, tmp_path) -> None:
    shutil.copy(data_dir / "examples.tfrecord.gz", tmp_path / "a.tfrecord")
    shutil.copy(data_dir / "examples.tfrecord", tmp_path / "b.tfrecord.gz")
    paths = [str(tmp_path / "a.tfrecord"), str(tmp_path / "b.tfrecord.gz")]
    df = sparktf.read_tfrecords(spark, paths)
    assert df.count() == 10


def test_array_inferred_from_a_later_file(spark, tmp_path: Path) -> None:
    one = spark.createDataFrame([(1.0,)] * 3, "x float")
    sparktf.write_tfrecords(one.coalesce(1), str(tmp_path / "d"), mode="append")
    three = spark.createDataFrame([([1.0, 2.0, 3.0],)], "x array<float>")
    sparktf.write_tfrecords(three.coalesce(1), str(tmp_path / "d"), mode="append")
    df = sparktf.read_tfrecords(spark, str(tmp_path / "d"))
    assert df.schema.simpleString() == "struct<x:array<float>>"
    assert sorted(len(r.x) for r in df.collect()) == [1, 1, 1, 3]


def test_partial_hint_keeps_hint_order_and_infers_the_rest(spark, data_dir: Path) -> None:
    df = sparktf.read_tfrecords(spark, str(data_dir / "examples.tfrecord"),
                                schema_hint="struct<vals:array<double>,id:long>")
    assert df.schema.simpleString() == (
        "struct<vals:array<double>,id:bigint,name:string,tags:array<string>>"
    )
    assert sorted(r.id for r in df.collect()) == [0, 1, 2, 3, 4]


def test_raw_reader_with_ddl_hint_and_options(spark, data_dir: Path) -> None:
    sparktf.register(spark)
    df = (spark.read.format("tfrecord").option("schemaHint", "id bigint, vals array<float>")
          .load(str(data_dir / "examples.tfrecord")))
    # partial, as read_tfrecords: hinted fields first, the rest inferred
    assert df.columns == ["id", "vals", "name", "tags"] and df.count() == 5
    assert df.schema["vals"].dataType.simpleString() == "array<float>"
    seq = spark.read.format("tfrecord").option("recordType", "SequenceExample").load(
        str(data_dir / "sequence.tfrecord"))
    assert seq.schema.simpleString() == "struct<id:bigint,tokens:array<array<bigint>>>"
    assert sorted((r.id, r.tokens) for r in seq.collect())[2] == (2, [[0], [0, 1], [0, 1, 2]])


def test_user_schema_is_used_without_inference(spark, data_dir: Path) -> None:
    sparktf.register(spark)
    df = spark.read.format("tfrecord").schema("id int").load(str(data_dir / "examples.tfrecord"))
    assert [r.id for r in df.orderBy("id").collect()] == [0, 1, 2, 3, 4]


def test_byte_array_round_trip(spark, data_dir: Path, tmp_path: Path) -> None:
    raw = sparktf.read_tfrecords(spark, str(data_dir / "examples.tfrecord"), recordType="ByteArray")
    assert raw.schema.simpleString() == "struct<byteArray:binary>"
    sparktf.write_tfrecords(raw, str(tmp_path / "copy"), record_type="ByteArray")
    assert sorted(_tf_rows(tmp_path / "copy")) == sorted(_tf_rows(data_dir, "examples.tfrecord"))


def test_unicode_and_dotted_feature_names(spark, tmp_path: Path) -> None:
    df = spark.createDataFrame([(1, 2.0)], "`größe.cm` bigint, `a.b` float")
    sparktf.write_tfrecords(df, str(tmp_path / "u"))
    back = sparktf.read_tfrecords(spark, str(tmp_path / "u"))
    assert sorted(back.columns) == ["a.b", "größe.cm"]
    assert back.collect()[0]["größe.cm"] == 1


def test_zero_record_file_reads_as_no_rows(spark, tmp_path: Path) -> None:
    (tmp_path / "empty.tfrecord").write_bytes(b"")
    df = sparktf.read_tfrecords(spark, str(tmp_path), schema_hint="struct<x:float>")
    assert df.count() == 0


@pytest.mark.parametrize(
    ("hint", "match"),
    [
        ("struct<image:array<float>", r"schema hint .* is malformed"),
        ("struct<image:tensor>", r"schema hint .* is malformed"),
        ("array<float>", r"expected a struct"),
        ("struct<m:map<string,int>>", r"column 'm': type map<string,int> is not supported"),
    ],
)
def test_bad_schema_hints(spark, data_dir: Path, hint: str, match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        sparktf.read_tfrecords(spark, str(data_dir / "examples.tfrecord"), schema_hint=hint)


def test_feature_kinds_that_differ_across_files(spark, tmp_path: Path) -> None:
    sparktf.write_tfrecords(spark.createDataFrame([(1,)], "v bigint"), str(tmp_path / "a"))
    sparktf.write_tfrecords(spark.createDataFrame([(1.5,)], "v float"), str(tmp_path / "b"))
    paths = [str(tmp_path / "a"), str(tmp_path / "b")]
    with pytest.raises(SchemaError, match=r"feature 'v' has different kinds.*float in .*int64 in"):
        sparktf.read_tfrecords(spark, paths)
    df = sparktf.read_tfrecords(spark, paths, schema_hint="struct<v:double>")
    assert sorted(r.v for r in df.collect()) == [1.0, 1.5]


def test_save_modes(spark, tmp_path: Path) -> None:
    out = str(tmp_path / "m")
    df = spark.createDataFrame([(1,), (2,)], "x bigint")
    sparktf.write_tfrecords(df, out)
    with pytest.raises(TFRecordError, match=r"output path .*/m already exists .*mode='overwrite'"):
        sparktf.write_tfrecords(df, out)
    sparktf.write_tfrecords(spark.createDataFrame([(9,)], "x bigint"), out, mode="ignore")
    assert sorted(r.x for r in sparktf.read_tfrecords(spark, out).collect()) == [1, 2]
    sparktf.write_tfrecords(df, out, mode="append")
    assert sparktf.read_tfrecords(spark, out).count() == 4
    sparktf.write_tfrecords(spark.createDataFrame([(5,)], "x bigint"), out, mode="overwrite")
    assert [r.x for r in sparktf.read_tfrecords(spark, out).collect()] == [5]
    with pytest.raises(TFRecordError, match="mode: expected one of"):
        sparktf.write_tfrecords(df, out, mode="upsert")


def test_unsupported_type_fails_before_any_file(spark, tmp_path: Path) -> None:
    df = spark.createDataFrame([({"a": 1},)], "m map<string,int>")
    with pytest.raises(SchemaError, match=r"column 'm': type map<string,int> is not supported"):
        sparktf.write_tfrecords(df, str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()


def test_failed_write_leaves_existing_output_untouched(spark, tmp_path: Path) -> None:
    from pyspark.sql.functions import udf

    out = tmp_path / "keep"
    sparktf.write_tfrecords(spark.createDataFrame([(1,)], "x bigint"), str(out))
    before = sorted(p.name for p in out.iterdir())

    @udf("bigint")
    def explode(x: int) -> int:
        if x == 7:
            raise ValueError("boom at row 7")
        return x

    bad = spark.range(0, 10, numPartitions=2).select(explode("id").alias("x"))
    with pytest.raises(Exception, match="boom at row 7"):
        sparktf.write_tfrecords(bad, str(out), mode="overwrite")
    assert sorted(p.name for p in out.iterdir()) == before
    with pytest.raises(Exception, match="boom at row 7"):
        sparktf.write_tfrecords(bad, str(tmp_path / "fresh"))
    assert not (tmp_path / "fresh" / "_SUCCESS").exists()
    fresh = tmp_path / "fresh"
    assert not fresh.exists() or not list(fresh.glob("**/*.tfrecord*"))


def _corrupt(tmp_path: Path, where: str) -> Path:
    path = tmp_path / f"{where}.tfrecord"
    with RecordFileWriter(str(path)) as writer:
        import pyarrow as pa
        from pyspark.sql.types import StructType

        from sparktf.tfrecord.encode import Encoder

        schema = StructType.fromJson({"type": "struct", "fields": [
            {"name": "x", "type": "long", "nullable": True, "metadata": {}}]})
        batch = pa.record_batch([pa.array(range(10), pa.int64())], names=["x"])
        for data in Encoder(schema, "Example").encode(batch):
            writer.write(data)
    blob = bytearray(path.read_bytes())
    size = len(blob) // 10
    if where == "data":
        blob[3 * size + 14] ^= 0xFF  # a data byte of record 3
    elif where == "length":
        blob[3 * size + 9] ^= 0xFF  # the length CRC of record 3
    else:
        blob = blob[: 3 * size + 5]  # cut inside record 3
    path.write_bytes(bytes(blob))
    return path


@pytest.mark.parametrize(
    ("where", "match"),
    [
        ("data", r"data.tfrecord: record 3 at byte offset \d+: corrupt data CRC"),
        ("length", r"length.tfrecord: record 3 at byte offset \d+: corrupt length CRC"),
        ("cut", r"cut.tfrecord: record 3 at byte offset \d+: truncated record header"),
    ],
)
def test_corrupt_records_are_named(spark, tmp_path, where, match) -> None:
    path = _corrupt(tmp_path, where)
    df = sparktf.read_tfrecords(spark, str(path), schema_hint="struct<x:bigint>")
    with pytest.raises(TFRecordError, match=match), reraise():
        df.collect()


@pytest.mark.parametrize(
    ("where", "option", "expected"),
    [
        ("data", "ignoreCorruptRecords", [0, 1, 2, 4, 5, 6, 7, 8, 9]),
        ("data", "ignoreCorruptFiles", [0, 1, 2]),
        ("length", "ignoreCorruptRecords", [0, 1, 2]),
        ("cut", "ignoreCorruptFiles", [0, 1, 2]),
    ],
)
def test_skip_modes(spark, tmp_path, where, option, expected) -> None:
    path = _corrupt(tmp_path, where)
    df = sparktf.read_tfrecords(spark, str(path), schema_hint="struct<x:bigint>", **{option: True})
    assert sorted(r.x for r in df.collect()) == expected


def test_wrong_record_type(spark, data_dir: Path) -> None:
    # A SequenceExample's context has the wire layout of an Example's features (documented)
    df = sparktf.read_tfrecords(spark, str(data_dir / "sequence.tfrecord"))
    assert df.schema.simpleString() == "struct<id:bigint>"
    assert sorted(r.id for r in df.collect()) == [0, 1, 2]
    with pytest.raises(TFRecordError, match="option recordType: expected one of Example"):
        sparktf.read_tfrecords(spark, str(data_dir / "sequence.tfrecord"), recordType="Proto")


def test_missing_input_path_is_named(spark, tmp_path: Path) -> None:
    with pytest.raises(TFRecordError, match=r"input path .*nothing-here: matches nothing"):
        sparktf.read_tfrecords(spark, str(tmp_path / "nothing-here"))
