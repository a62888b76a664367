"""Schema inference and hints as a new user meets them: image datasets, odd feature names,
one meaning of ``schemaHint`` on both paths, files that are not TFRecords."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sparktf
from sparktf.errors import TFRecordError
from sparktf.spark.errors import reraise
from sparktf.tfrecord.framing import RecordFileWriter

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb"


def _example(features: dict) -> bytes:
    from tensorflow.core.example import example_pb2

    ex = example_pb2.Example()
    for name, value in features.items():
        feature = ex.features.feature[name]
        if isinstance(value, bytes):
            feature.bytes_list.value.append(value)
        elif isinstance(value, int):
            feature.int64_list.value.append(value)
        else:
            feature.float_list.value.extend(value)
    return ex.SerializeToString()


def _images(path: Path, n: int = 6, text_first: int = 0) -> Path:
    """An image dataset in the usual layout: JPEG bytes, label, format, a float box."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with RecordFileWriter(str(path)) as writer:
        for i in range(n):
            blob = b"plain text %d" % i if i < text_first else JPEG + bytes([i])
            writer.write(_example({"image/encoded": blob, "image/class/label": i % 3,
                                   "image/format": b"jpeg", "bbox.x-min": [0.25 * i]}))
    return path


def test_image_bytes_are_inferred_as_binary(spark, tmp_path: Path) -> None:
    path = _images(tmp_path / "img" / "part-0.tfrecord")
    df = sparktf.read_tfrecords(spark, str(path))
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    assert types == {"bbox.x-min": "float", "image/class/label": "bigint",
                     "image/encoded": "binary", "image/format": "string"}
    assert df.count() == 6
    assert sorted(r[0] for r in df.select("`image/class/label`").collect()) == [0, 0, 1, 1, 2, 2]
    rows = sorted(df.collect(), key=lambda r: r["image/class/label"])
    assert rows[0]["image/encoded"] == JPEG + b"\x00" and rows[0]["image/format"] == "jpeg"


def test_a_later_record_that_breaks_an_inferred_string_names_the_fix(spark, tmp_path) -> None:
    path = _images(tmp_path / "late" / "part-0.tfrecord", n=8, text_first=4)
    df = sparktf.read_tfrecords(spark, str(path), sample_records=2)
    assert df.schema["image/encoded"].dataType.simpleString() == "string"
    with pytest.raises(TFRecordError) as caught, reraise():
        df.collect()
    message = str(caught.value)
    assert f"{path}: record 4: feature 'image/encoded': value is not valid UTF-8" in message
    assert "schemaHint (schema_hint) 'image/encoded binary'" in message
    fixed = sparktf.read_tfrecords(spark, str(path), sample_records=2,
                                   schema_hint="image/encoded binary")
    assert fixed.count() == 8


@pytest.mark.parametrize("hint", [
    "image/encoded binary",
    "struct<image/encoded:binary>",
    "struct<`image/encoded`:binary>",
    "`image/encoded`: binary, `bbox.x-min` double",
])
@pytest.mark.parametrize("path_kind", ["read_tfrecords", "format"])
def test_schema_hint_is_partial_on_both_paths(spark, tmp_path, hint: str, path_kind: str) -> None:
    path = _images(tmp_path / "both" / "part-0.tfrecord", n=4, text_first=4)
    if path_kind == "read_tfrecords":
        df = sparktf.read_tfrecords(spark, str(path), schema_hint=hint)
    else:
        sparktf.register(spark)
        df = spark.read.format("tfrecord").option("schemaHint", hint).load(str(path))
    fields = [(f.name, f.dataType.simpleString()) for f in df.schema.fields]
    assert fields[0] == ("image/encoded", "binary")
    assert {name for name, _ in fields} == {"image/encoded", "image/class/label",
                                             "image/format", "bbox.x-min"}
    assert dict(fields)["bbox.x-min"] == ("double" if "double" in hint else "float")
    assert sorted(r["image/class/label"] for r in df.collect()) == [0, 0, 1, 2]


def test_mapping_names_with_slashes_reach_the_model(spark, tmp_path, mnist_export) -> None:
    import numpy as np

    path = tmp_path / "mnist-like" / "part-0.tfrecord"
    path.parent.mkdir()
    pixels = np.random.default_rng(3).random((5, 784), dtype=np.float32)
    with RecordFileWriter(str(path)) as writer:
        for i, row in enumerate(pixels):
            writer.write(_example({"image/pixels": row.tolist(), "image/id": i}))
    df = sparktf.read_tfrecords(spark, str(path))
    model = sparktf.TFModel(exportDir=str(mnist_export), inputMapping={"image/pixels": "x"},
                            outputMapping={"prediction": "class/pred"},
                            passthroughColumns=["image/id"])
    out = model.transform(df)
    assert out.columns == ["image/id", "class/pred"]
    assert sorted(r["image/id"] for r in out.collect()) == [0, 1, 2, 3, 4]


def _parquet_dir(root: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True)
    pq.write_table(pa.table({"image": [[0.5] * 4] * 3}), root / "part-00000.parquet")
    (root / "_SUCCESS").write_bytes(b"")
    return root


@pytest.mark.parametrize("hint", [None, "image array<float>"])
def test_a_parquet_directory_is_named_as_such(spark, tmp_path: Path, hint) -> None:
    root = _parquet_dir(tmp_path / "pq")
    with pytest.raises(TFRecordError) as caught:
        sparktf.read_tfrecords(spark, str(root), schema_hint=hint)
    assert str(caught.value).startswith(
        f"{root / 'part-00000.parquet'} does not look like a TFRecord file: "
        "it looks like a Parquet file")


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (json.dumps({"image": [0.5]}).encode() * 3, "JSON text"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 40, "a gzip file (read it with compression auto"),
        (b"id,label\n1,2\n" * 4, "text"),
    ],
)
def test_other_files_say_what_they_look_like(spark, tmp_path, content: bytes, what) -> None:
    path = tmp_path / "input.tfrecord"
    path.write_bytes(content)
    with pytest.raises(TFRecordError) as caught:
        sparktf.read_tfrecords(spark, str(path), compression="none")
    assert f"does not look like a TFRecord file: it looks like {what}" in str(caught.value)


def test_unknown_options_are_refused_on_both_paths(spark, data_dir: Path) -> None:
    with pytest.raises(TFRecordError, match="closest: 'ignoreCorruptRecords'"):
        sparktf.read_tfrecords(spark, str(data_dir / "examples.tfrecord"),
                               ignoreCorruptRecord=True)
    sparktf.register(spark)
    reader = spark.read.format("tfrecord").option("ignoreCorruptFiles", "ture")
    with pytest.raises(TFRecordError, match="expected true or false, found 'ture'"), reraise():
        reader.load(str(data_dir / "examples.tfrecord")).collect()


def test_failed_write_leaves_an_absent_output_absent(spark, tmp_path: Path) -> None:
    df = spark.createDataFrame([([1.0, None],)], "vals array<float>")
    out = tmp_path / "never"
    with pytest.raises(TFRecordError, match="holds a null element"):
        sparktf.write_tfrecords(df, str(out))
    assert not out.exists()


def test_take_show_and_limit_read_only_the_files_they_need(spark, tmp_path: Path) -> None:
    """Files 1-3 are corrupt: reading any of them would fail the action."""
    root = tmp_path / "few"
    _images(root / "part-0.tfrecord", n=6)
    for i in (1, 2, 3):
        (root / f"part-{i}.tfrecord").write_bytes(b"\x00" * 40)
    df = sparktf.read_tfrecords(spark, str(root), schema_hint="image/encoded binary")
    assert len(df.take(5)) == 5
    assert len(df.limit(5).collect()) == 5
    df.show(5)
    # two tasks run at once: whichever corrupt file fails first is named
    with pytest.raises(TFRecordError, match=r"part-[123]\.tfrecord: record 0"), reraise():
        df.count()
